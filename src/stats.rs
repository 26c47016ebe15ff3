//! The periodic stats report (`--stats SECS`, `--stats-json`): decision counters, latency
//! percentiles per task class, runnable tasks and the current slice, per interval.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::counters::Counters;
use crate::latency::{Hist, Summary, CLASSES, KINDS};
use crate::overhead::Overhead;

/// One interval's report. Field names are stable (they are the JSON keys); units are in the
/// names.
#[derive(Debug, Serialize)]
pub struct Report {
    pub interval_s: f64,
    /// Decision counters over the interval (`nr_*`, see src/bpf/intf.h).
    pub counters: BTreeMap<&'static str, u64>,
    /// kind ("wakeup", "preempted", "dispatch") -> class ("short", "hog", "all") -> figures.
    /// Empty with --no-latency-probes.
    pub latency: BTreeMap<&'static str, BTreeMap<&'static str, Summary>>,
    /// Tasks runnable on the system at the end of the interval (/proc/stat procs_running).
    pub nr_runnable: u64,
    /// The slice scx_brisk handed out most recently.
    pub slice_us: f64,
    /// Cost of each BPF program (ns per run) and the probes' share of CPU time, from
    /// kernel.bpf_stats_enabled; absent if the kernel would not keep those stats.
    pub bpf: Option<Overhead>,
}

impl Report {
    /// `hists` are the interval's histograms indexed kind * 3 + class (as in the BPF map).
    pub fn new(
        interval_s: f64,
        counters: &Counters,
        earlier: &Counters,
        hists: Option<&[Hist]>,
        nr_runnable: u64,
        slice_ns: u64,
        bpf: Option<Overhead>,
    ) -> Self {
        let mut latency = BTreeMap::new();
        if let Some(hists) = hists {
            for (k, kind) in KINDS.iter().enumerate() {
                let per_class = CLASSES
                    .iter()
                    .enumerate()
                    .map(|(c, class)| (*class, hists[k * CLASSES.len() + c].summary()))
                    .collect();
                latency.insert(*kind, per_class);
            }
        }
        Self {
            interval_s,
            counters: counters.since(earlier).into_iter().collect(),
            latency,
            nr_runnable,
            slice_us: slice_ns as f64 / 1000.0,
            bpf,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a stats report always serialises")
    }

    /// One compact line for a terminal.
    pub fn to_line(&self) -> String {
        let c = |k: &str| self.counters.get(k).copied().unwrap_or(0);
        let mut line = format!(
            "direct {} queued {} pinned {} preempt {}/{} keep {} starve {} | runnable {} slice {:.0}us",
            c("nr_direct_idle"),
            c("nr_queued_shared"),
            c("nr_queued_pinned"),
            c("nr_preempts"),
            c("nr_short_wakeups"),
            c("nr_keep_running"),
            c("nr_starve_rescues"),
            self.nr_runnable,
            self.slice_us
        );
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
            if let Some(pct) = bpf.probes_cpu_pct {
                line.push_str(&format!(" | probes {pct:.2}% cpu"));
            }
        }
        line
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

    fn report(with_latency: bool) -> Report {
        let mut now = Counters::default();
        now.0.nr_preempts = 7;
        now.0.nr_short_wakeups = 9;
        let hists: Vec<Hist> = (0..9).map(|_| Hist::default()).collect();
        Report::new(
            1.0,
            &now,
            &Counters::default(),
            with_latency.then_some(&hists[..]),
            3,
            2_500_000,
            Some(Overhead {
                ns_per_call: [("enqueue".to_string(), 812.0)].into(),
                probes_cpu_pct: Some(0.5),
            }),
        )
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
                "interval_s",
                "latency",
                "nr_runnable",
                "slice_us"
            ]
        );
        assert_eq!(v["bpf"]["ns_per_call"]["enqueue"], 812.0);
        assert_eq!(v["bpf"]["probes_cpu_pct"], 0.5);
        assert_eq!(v["counters"]["nr_preempts"], 7);
        assert_eq!(v["slice_us"], 2500.0);
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
    fn line_shows_counters_and_latency_or_omits_it() {
        let line = report(true).to_line();
        assert!(line.contains("preempt 7/9"), "{line}");
        assert!(line.contains("slice 2500us"), "{line}");
        assert!(line.contains("short -/- (n=0)"), "{line}");
        assert!(
            line.contains("bpf ns/run: enqueue 812 | probes 0.50% cpu"),
            "{line}"
        );
        assert!(
            line.contains("bpf ns/run: enqueue 812 | probes 0.50% cpu"),
            "{line}"
        );
        assert!(!report(false).to_line().contains("wakeup"));
    }
}
