//! The read side of the stats over upstream's scx_stats protocol, at its standard socket
//! (`/var/run/scx/root/stats`): `stats` answers with the report since the previous request
//! ([`BriskStats`]) and `stats_meta` describes every field, so that generic scx_stats clients
//! and upstream's OpenMetrics converter read scx_brisk as they read the upstream schedulers.
//! Writes stay on the root-only control socket (src/control/socket.rs).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use scx_stats::prelude::*;
use scx_stats_derive::Stats;
use serde::{Deserialize, Serialize};

use super::latency::Summary;
use super::stats::Report;

/// One task class's latency over the interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Stats)]
#[stat(desc = "Latency of one task class over the interval")]
pub struct ClassLatency {
    #[stat(desc = "Samples in the interval")]
    pub count: u64,
    #[stat(desc = "Median, us (0 without samples)")]
    pub p50_us: f64,
    #[stat(desc = "99th percentile, us (0 without samples)")]
    pub p99_us: f64,
    #[stat(desc = "Largest sample since the scheduler started, us")]
    pub max_us: f64,
}

impl From<&Summary> for ClassLatency {
    fn from(s: &Summary) -> Self {
        Self {
            count: s.count,
            p50_us: s.p50_us.unwrap_or(0.0),
            p99_us: s.p99_us.unwrap_or(0.0),
            max_us: s.max_us.unwrap_or(0.0),
        }
    }
}

/// What `stats` answers: scx_brisk over the interval since the previous request (from any
/// client; the first covers the time since scx_brisk started).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Stats)]
#[stat(
    top,
    desc = "scx_brisk over the interval since the previous stats request"
)]
pub struct BriskStats {
    #[stat(desc = "Length of the interval, s")]
    pub interval_s: f64,
    #[stat(desc = "Tasks runnable on the system at the end of the interval")]
    pub nr_runnable: u64,
    #[stat(desc = "Slice most recently handed out, us")]
    pub slice_us: f64,
    #[stat(desc = "Average CPU time of a hog's stint on a CPU, us (0: no hog ran)")]
    pub hog_avg_run_us: f64,
    #[stat(desc = "Share of all CPUs' time the latency-critical lane ran, percent")]
    pub lat_lane_pct: f64,
    #[stat(
        desc = "Decision counters over the interval (nr_*: src/bpf/intf.h)",
        _om_label = "counter"
    )]
    pub counters: BTreeMap<String, u64>,
    #[stat(
        desc = "Latency per kind and task class, keyed KIND.CLASS: KIND is wakeup (woken to \
                running), preempted (preempted to running again) or dispatch (queued to \
                running); CLASS is short, hog or all. Empty with --no-latency-probes",
        _om_label = "kind_class"
    )]
    pub latency: BTreeMap<String, ClassLatency>,
    #[stat(
        desc = "Cost of each BPF program, ns per call (only with --stats: BPF run-time \
                statistics cost every program two clock reads)",
        _om_label = "prog"
    )]
    pub bpf_ns_per_call: BTreeMap<String, f64>,
    #[stat(
        desc = "Share of all CPUs' time spent in the scheduler's BPF programs (every callback \
                and probe; not the kernel's sched_ext code around them), percent"
    )]
    pub bpf_cpu_pct: f64,
    #[stat(
        desc = "Share of all CPUs' time spent in the latency probes' own programs (tp_*), percent; \
                in the scheduler only the wakeup tracepoints, the switch side runs in \
                ops.running/ops.stopping"
    )]
    pub probes_cpu_pct: f64,
}

impl From<&Report> for BriskStats {
    fn from(r: &Report) -> Self {
        let latency = r
            .latency
            .iter()
            .flat_map(|(kind, classes)| {
                classes
                    .iter()
                    .map(move |(class, s)| (format!("{kind}.{class}"), s.into()))
            })
            .collect();
        Self {
            interval_s: r.interval_s,
            nr_runnable: r.nr_runnable,
            slice_us: r.slice_us,
            hog_avg_run_us: r.hog_avg_run_us.unwrap_or(0.0),
            lat_lane_pct: r.lat_lane_pct.unwrap_or(0.0),
            counters: r.counters.clone(),
            latency,
            bpf_ns_per_call: r
                .bpf
                .as_ref()
                .map(|b| b.ns_per_call.clone())
                .unwrap_or_default(),
            bpf_cpu_pct: r.bpf.as_ref().and_then(|b| b.bpf_cpu_pct).unwrap_or(0.0),
            probes_cpu_pct: r.bpf.as_ref().and_then(|b| b.probes_cpu_pct).unwrap_or(0.0),
        }
    }
}

/// What a client asked for: `top` (the interval since the previous such request, for generic
/// clients) or `snapshot` (the cumulative state, which `--monitor` differences itself, so that
/// monitors and other clients do not cut each other's intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Interval,
    Snapshot,
}

/// The server's answer to one request: the stats as JSON, or why there are none.
type Answer = std::result::Result<serde_json::Value, String>;

/// The scx_stats server. Requests come in on its own thread; the controller's loop answers
/// them (`pending`, `answer`), since only it reads the BPF maps.
pub struct StatsService {
    server: StatsServer<Ask, Answer>,
}

impl StatsService {
    /// Listens at `path`, or at the standard `/var/run/scx/root/stats`.
    pub fn launch(path: Option<&Path>) -> Result<Self> {
        let ask = |what: Ask| -> Box<dyn StatsReaderSend<Ask, Answer>> {
            Box::new(move |_args, (tx, rx)| {
                tx.send(what)?;
                rx.recv()?.map_err(anyhow::Error::msg)
            })
        };
        let data = StatsServerData::<Ask, Answer>::new()
            .add_meta(BriskStats::meta())
            .add_meta(ClassLatency::meta())
            .add_stats("top", ask(Ask::Interval))
            .add_stats("snapshot", ask(Ask::Snapshot));
        let mut server = StatsServer::new(data);
        if let Some(p) = path {
            server = server.set_path(p);
        }
        let server = server
            .launch()
            .context("starting the scx_stats server (/var/run/scx/root/stats)")?;
        Ok(Self { server })
    }

    /// What a waiting client asked for, if one waits.
    pub fn pending(&self) -> Option<Ask> {
        self.server.channels().1.try_recv().ok()
    }

    /// Answers the client that `pending` saw.
    pub fn answer(&self, stats: Result<serde_json::Value>) {
        let _ = self
            .server
            .channels()
            .0
            .send(stats.map_err(|e| format!("{e:#}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generic client (scx_stats' own) reads `stats_meta` and `stats` from a live server;
    /// the answer is what the controller's loop handed over.
    #[test]
    fn a_generic_client_reads_meta_and_stats() {
        let dir = std::env::temp_dir().join(format!("brisk-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats");
        let svc = StatsService::launch(Some(&path)).unwrap();
        let mut want = BriskStats {
            interval_s: 1.5,
            nr_runnable: 3,
            ..Default::default()
        };
        want.counters.insert("nr_dispatched".into(), 42);
        let served = want.clone();
        let answerer = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while t0.elapsed() < std::time::Duration::from_secs(10) {
                if let Some(ask) = svc.pending() {
                    assert_eq!(ask, Ask::Interval);
                    svc.answer(served.to_json());
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            panic!("no stats request reached the controller's side");
        });
        let mut client = StatsClient::new().set_path(&path).connect(None).unwrap();
        let meta: serde_json::Value = client.request("stats_meta", vec![]).unwrap();
        assert_eq!(meta["BriskStats"]["top"], "true");
        assert!(meta["BriskStats"]["fields"]["counters"]["desc"].is_string());
        assert!(meta["ClassLatency"]["fields"]["p99_us"]["desc"].is_string());
        let got: BriskStats = client.request("stats", vec![]).unwrap();
        answerer.join().unwrap();
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
