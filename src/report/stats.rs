//! The periodic stats report (`--stats SECS`, `--stats-json`, `--monitor SECS`): decision
//! counters, latency percentiles per task class, runnable tasks, the slice and the running
//! settings, per interval. A report is the difference of two cumulative `Snapshot`s, taken by
//! the scheduler itself or, for `--monitor`, sent over the control socket.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::control::settings::View;
use crate::report::latency::{Hist, Summary, CLASSES, KINDS};
use crate::report::overhead::{self, Overhead};

/// Everything cumulative the scheduler knows at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC of the scheduler's host, ns.
    pub at_ns: u64,
    /// Decision counters since load (`nr_*`, see src/bpf/intf.h), summed over CPUs.
    pub counters: BTreeMap<String, u64>,
    /// Latency histograms indexed kind * 3 + class; None with --no-latency-probes.
    pub hists: Option<Vec<Hist>>,
    /// Per-program cumulative (run_time_ns, run_cnt), while BPF run-time statistics are on.
    pub progs: Option<overhead::Snapshot>,
    pub nr_cpus: usize,
    /// The slice scx_brisk handed out most recently; with several LLCs, the shortest of
    /// them (the most contended LLC's).
    pub slice_ns: u64,
    pub nr_runnable: u64,
    /// The running settings (None for `scx_brisk probe`, which schedules nothing).
    pub settings: Option<View>,
}

/// CLOCK_MONOTONIC in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One interval's report. Field names are stable (they are the JSON keys); units are in the
/// names.
#[derive(Debug, Serialize)]
pub struct Report {
    pub interval_s: f64,
    /// Decision counters over the interval (`nr_*`, see src/bpf/intf.h).
    pub counters: BTreeMap<String, u64>,
    /// Counters that read lower than at the interval's start (their figure above is then 0).
    /// They only ever grow, so anything here is a bug; absent when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counters_went_back: Vec<String>,
    /// kind ("wakeup", "preempted", "dispatch") -> class ("short", "hog", "all") -> figures.
    /// Empty with --no-latency-probes.
    pub latency: BTreeMap<&'static str, BTreeMap<&'static str, Summary>>,
    /// Tasks runnable on the system at the end of the interval (/proc/stat procs_running).
    pub nr_runnable: u64,
    /// The slice scx_brisk handed out most recently (with several LLCs, the most contended
    /// LLC's, the shortest).
    pub slice_us: f64,
    /// Average CPU time of a hog's stint on a CPU over the interval: the slice hogs really
    /// get (None when no hog ran).
    pub hog_avg_run_us: Option<f64>,
    /// Share of all CPUs' time the latency-critical lane ran over the interval, in percent
    /// (None for an empty interval): what `lat_share_max_pct` bounds while fair tasks wait.
    pub lat_lane_pct: Option<f64>,
    /// Cost of each BPF program (ns per run) and the probes' share of CPU time, from
    /// BPF run-time statistics; absent if the kernel would not keep those stats.
    pub bpf: Option<Overhead>,
    /// The running settings: each key's value and source, and the last change's source
    /// (null for `scx_brisk probe`).
    pub settings: Option<View>,
}

impl Report {
    /// The report for the interval from `then` to `now`.
    pub fn between(then: &Snapshot, now: &Snapshot) -> Self {
        let counters: BTreeMap<String, u64> = now
            .counters
            .iter()
            .map(|(k, v)| {
                let before = then.counters.get(k).copied().unwrap_or(0);
                (k.clone(), v.saturating_sub(before))
            })
            .collect();
        let counters_went_back = now
            .counters
            .iter()
            .filter(|(k, v)| then.counters.get(*k).is_some_and(|b| b > *v))
            .map(|(k, _)| k.clone())
            .collect();
        let mut latency = BTreeMap::new();
        if let (Some(a), Some(b)) = (&now.hists, &then.hists) {
            for (k, kind) in KINDS.iter().enumerate() {
                let per_class = CLASSES
                    .iter()
                    .enumerate()
                    .map(|(c, class)| {
                        let i = k * CLASSES.len() + c;
                        (*class, a[i].since(&b[i]).summary())
                    })
                    .collect();
                latency.insert(*kind, per_class);
            }
        }
        let interval_s = now.at_ns.saturating_sub(then.at_ns) as f64 / 1e9;
        let bpf = match (&now.progs, &then.progs) {
            (Some(a), Some(b)) => Some(overhead::per_call(a, b, interval_s, now.nr_cpus)),
            _ => None,
        };
        let stints = counters.get("nr_hog_stints").copied().unwrap_or(0);
        let hog_ns = counters.get("hog_run_ns").copied().unwrap_or(0);
        let lat_ns = counters.get("lat_run_ns").copied().unwrap_or(0);
        Self {
            interval_s,
            counters,
            counters_went_back,
            latency,
            nr_runnable: now.nr_runnable,
            slice_us: now.slice_ns as f64 / 1000.0,
            hog_avg_run_us: (stints > 0).then(|| hog_ns as f64 / stints as f64 / 1000.0),
            lat_lane_pct: overhead::cpus_pct(lat_ns, interval_s, now.nr_cpus),
            bpf,
            settings: now.settings.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a stats report always serialises")
    }

    /// The short class's wakeup p99 and sample count over the interval, if measured.
    pub fn short_wakeup_p99(&self) -> Option<(Option<f64>, u64)> {
        let s = self.latency.get("wakeup")?.get("short")?;
        Some((s.p99_us, s.count))
    }

    /// One compact line for a terminal.
    pub fn to_line(&self) -> String {
        let c = |k: &str| self.counters.get(k).copied().unwrap_or(0);
        let mut line = if self.counters.is_empty() {
            // `scx_brisk probe`: no scheduler of ours, no counters.
            format!("runnable {}", self.nr_runnable)
        } else {
            format!(
                "direct {} queued {} pinned {} preempt {}/{} keep {} starve {} | runnable {} slice {:.0}us hog-run {} lane {}",
                c("nr_direct_idle"),
                c("nr_queued_shared"),
                c("nr_queued_pinned"),
                c("nr_preempts"),
                c("nr_short_wakeups"),
                c("nr_keep_running"),
                c("nr_starve_rescues"),
                self.nr_runnable,
                self.slice_us,
                self.hog_avg_run_us
                    .map_or("-".to_string(), |v| format!("{v:.0}us")),
                self.lat_lane_pct
                    .map_or("-".to_string(), |v| format!("{v:.0}%"))
            )
        };
        if let Some(wakeup) = self.latency.get("wakeup") {
            line.push_str(" | wakeup p50/p99 us:");
            for class in CLASSES {
                let s = &wakeup[class];
                let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
                line.push_str(&format!(
                    " {class} {}/{} (n={})",
                    f(s.p50_us),
                    f(s.p99_us),
                    s.count
                ));
            }
        }
        if let Some(bpf) = &self.bpf {
            line.push_str(" | bpf ns/run:");
            for (prog, ns) in &bpf.ns_per_call {
                line.push_str(&format!(" {prog} {ns:.0}"));
            }
            if let Some(pct) = bpf.bpf_cpu_pct {
                line.push_str(&format!(" | bpf {pct:.2}% cpu"));
            }
            if let Some(pct) = bpf.probes_cpu_pct {
                line.push_str(&format!(" | probes {pct:.2}% cpu"));
            }
        }
        let Some(settings) = &self.settings else {
            return line;
        };
        // Every setting, in the order `ctl show` lists them, and where the last change came from.
        line.push_str(" | tun");
        for (k, e) in &settings.values {
            line.push_str(&format!(" {k}={}", e.value));
        }
        line.push_str(&format!(" (last change: {})", settings.last_change));
        line
    }
}

/// Where a reporter's text lines go (JSON always goes to stdout, one object per line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// The log (stderr), beside the scheduler's other messages.
    Log,
    /// Stdout, for `--monitor` and `scx_brisk probe`.
    Stdout,
}

/// The one "snapshot every interval, diff, print" behind `--stats`, `--monitor` and
/// `scx_brisk probe`: give it a snapshot when `due()`, or let `run` drive it.
pub struct Reporter {
    interval: Duration,
    json: bool,
    lines: Lines,
    due: Instant,
    first: Option<Snapshot>,
    last: Option<Snapshot>,
}

impl Reporter {
    pub fn new(interval: Duration, json: bool, lines: Lines) -> Self {
        Self {
            interval,
            json,
            lines,
            due: Instant::now() + interval,
            first: None,
            last: None,
        }
    }

    /// Whether the next interval's report is due.
    pub fn due(&self) -> bool {
        Instant::now() >= self.due
    }

    /// Takes `now` as the end of the current interval: prints the interval's report (none
    /// for the first snapshot, which only starts the first interval) and starts the next.
    pub fn record(&mut self, now: Snapshot) {
        if let Some(last) = &self.last {
            self.print(&Report::between(last, &now), "");
        }
        if self.first.is_none() {
            self.first = Some(now.clone());
        }
        self.last = Some(now);
        self.next_interval();
    }

    /// No snapshot this time (it could not be read): the next one ends a longer interval.
    pub fn skip(&mut self) {
        self.next_interval();
    }

    fn next_interval(&mut self) {
        while self.due <= Instant::now() {
            self.due += self.interval;
        }
    }

    /// Prints the report from the first snapshot to `now`, labelled "total: ".
    pub fn total(&self, now: &Snapshot) {
        if let Some(first) = &self.first {
            self.print(&Report::between(first, now), "total: ");
        }
    }

    fn print(&self, report: &Report, label: &str) {
        match (self.json, self.lines) {
            (true, _) => println!("{}", report.to_json()),
            (false, Lines::Log) => log::info!("{label}{}", report.to_line()),
            (false, Lines::Stdout) => println!("{label}{}", report.to_line()),
        }
    }

    /// Reports every interval until `stop` says so, starting with a first snapshot unless one
    /// was recorded already; a snapshot that fails ends the run with its error (`--monitor`:
    /// the scheduler is gone; `probe`: the maps cannot be read).
    pub fn run(
        &mut self,
        mut stop: impl FnMut() -> bool,
        mut snapshot: impl FnMut() -> anyhow::Result<Snapshot>,
    ) -> anyhow::Result<()> {
        if self.last.is_none() {
            self.record(snapshot()?);
        }
        while !stop() {
            std::thread::sleep(Duration::from_millis(50));
            if self.due() {
                self.record(snapshot()?);
            }
        }
        Ok(())
    }
}

/// Runnable tasks right now, from /proc/stat.
pub fn nr_runnable() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("procs_running "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::settings::Settings;

    fn snapshot(at_s: u64, scale: u64, with_latency: bool) -> Snapshot {
        let counters = [
            ("nr_preempts", 7 * scale),
            ("nr_short_wakeups", 9 * scale),
            ("nr_hog_stints", 4 * scale),
            ("hog_run_ns", 20_000_000 * scale),
            ("lat_run_ns", 1_000_000_000 * scale),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        let mut hist = Hist {
            count: scale,
            ..Default::default()
        };
        hist.buckets[10] = scale;
        Snapshot {
            at_ns: at_s * 1_000_000_000,
            counters,
            hists: with_latency.then(|| vec![hist; 9]),
            progs: Some(
                [
                    ("brisk_enqueue".to_string(), (1_000 * scale, 10 * scale)),
                    (
                        "brisk_tp_switch".to_string(),
                        (10_000_000 * scale, 10 * scale),
                    ),
                ]
                .into(),
            ),
            nr_cpus: 2,
            slice_ns: 2_500_000,
            nr_runnable: 3,
            settings: Some(Settings::default().view(&Settings::default().tunables)),
        }
    }

    fn report(with_latency: bool) -> Report {
        Report::between(
            &snapshot(10, 1, with_latency),
            &snapshot(12, 2, with_latency),
        )
    }

    #[test]
    fn report_is_the_difference_of_two_snapshots() {
        let r = report(true);
        assert_eq!(r.interval_s, 2.0);
        assert_eq!(r.counters["nr_preempts"], 7);
        assert_eq!(r.hog_avg_run_us, Some(5000.0));
        // 1 s of the lane over 2 s on 2 CPUs = 25%
        assert!((r.lat_lane_pct.unwrap() - 25.0).abs() < 1e-9);
        assert!(r.to_line().contains("lane 25%"), "{}", r.to_line());
        assert_eq!(r.latency["wakeup"]["short"].count, 1);
        let bpf = r.bpf.unwrap();
        assert_eq!(bpf.ns_per_call["enqueue"], 100.0);
        // 10 ms of probe time over 2 s on 2 CPUs = 0.25%
        assert!((bpf.probes_cpu_pct.unwrap() - 0.25).abs() < 1e-9);
        // a snapshot survives the control socket's JSON
        let s = snapshot(1, 1, true);
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.hists, s.hists);
        assert_eq!(back.settings, s.settings);
    }

    /// A counter that reads lower than before is named (its interval figure is clamped at 0),
    /// and shows in the JSON only then.
    #[test]
    fn a_counter_going_back_is_reported() {
        assert!(report(true).counters_went_back.is_empty());
        let r = Report::between(&snapshot(12, 2, true), &snapshot(10, 1, true));
        assert!(r.counters_went_back.contains(&"nr_preempts".to_string()));
        assert_eq!(r.counters["nr_preempts"], 0);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v["counters_went_back"]
            .as_array()
            .unwrap()
            .contains(&"nr_preempts".into()));
    }

    /// The JSON keys are an interface: changing them breaks users' scripts.
    #[test]
    fn json_field_names_are_stable() {
        let v: serde_json::Value = serde_json::from_str(&report(true).to_json()).unwrap();
        let top: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            top,
            [
                "bpf",
                "counters",
                "hog_avg_run_us",
                "interval_s",
                "lat_lane_pct",
                "latency",
                "nr_runnable",
                "settings",
                "slice_us"
            ]
        );
        assert_eq!(v["bpf"]["ns_per_call"]["enqueue"], 100.0);
        assert_eq!(v["counters"]["nr_preempts"], 7);
        assert_eq!(v["slice_us"], 2500.0);
        assert_eq!(v["settings"]["values"]["slice_us"]["value"], "5000");
        assert_eq!(v["settings"]["values"]["slice_us"]["source"], "default");
        assert_eq!(v["settings"]["last_change"], "default");
        for kind in ["wakeup", "preempted", "dispatch"] {
            for class in ["short", "hog", "all"] {
                let s = &v["latency"][kind][class];
                let keys: Vec<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
                assert_eq!(
                    keys,
                    ["count", "max_us", "mean_us", "p50_us", "p90_us", "p999_us", "p99_us"]
                );
            }
        }
    }

    #[test]
    fn line_shows_counters_latency_and_tunables_or_omits_latency() {
        let line = report(true).to_line();
        assert!(line.contains("preempt 7/9"), "{line}");
        assert!(line.contains("slice 2500us hog-run 5000us"), "{line}");
        assert!(line.contains("short 6/6 (n=1)"), "{line}");
        assert!(
            line.contains(
                "bpf ns/run: enqueue 100 tp_switch 1000000 | bpf 0.25% cpu | probes 0.25% cpu"
            ),
            "{line}"
        );
        assert!(line.contains("runnable 3 "), "{line}");
        let tun = &line[line.find(" | tun ").expect("tunables in the line")..];
        for k in crate::control::settings::keys() {
            assert!(tun.contains(&format!(" {k}=")), "{k} missing: {line}");
        }
        assert!(
            tun.contains(" slice_us=5000 ") && tun.contains(" wakeup_preempt=true "),
            "{line}"
        );
        assert!(tun.ends_with("(last change: default)"), "{line}");
        assert!(!report(false).to_line().contains("wakeup p50"));
    }

    /// Where the last change came from shows in the line and the JSON, for every source.
    #[test]
    fn stats_name_the_source_of_the_last_change() {
        use crate::control::settings::Source;
        use crate::control::tunables::Value;
        for (source, shown) in [
            (Source::Cli, "cli"),
            (Source::Policy("/etc/p.toml".into()), "policy /etc/p.toml"),
            (Source::Ctl, "ctl"),
            (Source::Auto, "auto"),
        ] {
            let st = Settings::default()
                .with(
                    &[("slice_us".to_string(), Value::Int(4000))],
                    source.clone(),
                )
                .unwrap();
            let mut snap = snapshot(12, 2, true);
            snap.settings = Some(st.view(&st.tunables));
            let r = Report::between(&snapshot(10, 1, true), &snap);
            let line = r.to_line();
            assert!(
                line.ends_with(&format!("(last change: {shown})"))
                    && line.contains(" slice_us=4000 "),
                "{line}"
            );
            let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
            assert_eq!(v["settings"]["last_change"], shown);
            assert_eq!(v["settings"]["values"]["slice_us"]["value"], "4000");
        }
    }
}
