//! Command line of scx_brisk. The doc comments are the `--help` text.

use clap::Parser;

use crate::tunables::{self, Tunables};

/// scx_brisk: a sched_ext scheduler with weighted virtual runtime that favours short-running
/// tasks.
///
/// Tasks that run briefly and sleep are picked before CPU hogs and may preempt them on wakeup;
/// every task keeps its nice-weighted share of CPU time. Needs root and a kernel with
/// CONFIG_SCHED_CLASS_EXT (6.12+). Ctrl-C hands the CPUs back to the default scheduler.
#[derive(Debug, Parser)]
#[command(name = "scx_brisk", version, verbatim_doc_comment)]
pub struct Opts {
    /// Base time slice, in microseconds.
    ///
    /// A task runs at most this long before the next waiting task gets the CPU; the slice is
    /// shared out (down to --slice-min-us) as more tasks wait than there are CPUs. Longer
    /// slices give hogs fewer context switches and better cache use; shorter ones bound the
    /// wait of tasks that could not preempt.
    #[arg(long, default_value_t = tunables::SLICE_US.default)]
    pub slice_us: u64,

    /// Smallest time slice, in microseconds.
    ///
    /// The floor under the shared-out slice: below it, switching costs more than it buys.
    #[arg(long, default_value_t = tunables::SLICE_MIN_US.default)]
    pub slice_min_us: u64,

    /// Average burst under which a task counts as short, in microseconds.
    ///
    /// A burst is the CPU time a task uses between sleeps. Short tasks are queued first, may
    /// preempt hogs on wakeup and are never preempted for another task. Raising it lets
    /// heavier tasks be treated as interactive, at the cost of more preemption of hogs.
    #[arg(long, default_value_t = tunables::SHORT_BURST_US.default)]
    pub short_burst_us: u64,

    /// Cap on the burst added to a task's deadline, in microseconds.
    ///
    /// Tasks run in order of vruntime + burst, so a hog waits at most this much (weighted)
    /// longer than a short task of equal vruntime. Larger favours short tasks more; a hog's
    /// vruntime still catches up, so it keeps its weighted share and is never starved.
    #[arg(long, default_value_t = tunables::BURST_CAP_US.default)]
    pub burst_cap_us: u64,

    /// Most CPU time credit a sleeping task can bank, in microseconds.
    ///
    /// On wakeup a task's vruntime is raised to at least the scheduler's clock minus this.
    /// Larger rewards sleepers for longer; 0 is strict fairness between sleepers and hogs.
    #[arg(long, default_value_t = tunables::SLEEP_CREDIT_US.default)]
    pub sleep_credit_us: u64,

    /// Deadline lead a waking short task needs to preempt a hog, in microseconds.
    ///
    /// Smaller preempts more eagerly: lower wakeup latency for interactive tasks, more
    /// context switches for hogs.
    #[arg(long, default_value_t = tunables::PREEMPT_MARGIN_US.default)]
    pub preempt_margin_us: u64,

    /// Longest a queued task waits before it is run out of order, in microseconds.
    ///
    /// The starvation guard: strict weighted fairness can leave a low-weight task waiting for
    /// seconds behind many hogs, and the kernel ejects a scheduler whose task waits 5 s. Lower
    /// values bound every wait tighter; weights are honoured less exactly under overload.
    #[arg(long, default_value_t = tunables::STARVE_US.default)]
    pub starve_us: u64,

    /// Smoothing of the per-task burst average (new = old + (burst - old) / 2^shift).
    ///
    /// Larger values remember a task's past longer, so one long burst does not demote an
    /// interactive task; smaller values react faster when a task changes behaviour.
    #[arg(long, default_value_t = tunables::BURST_EWMA_SHIFT.default)]
    pub burst_ewma_shift: u64,

    /// Never preempt a running task on wakeup.
    ///
    /// Waking short tasks then wait for the running task's slice to end (at the next tick):
    /// better for throughput-only machines, worse for interactive latency.
    #[arg(long)]
    pub no_wakeup_preempt: bool,

    /// Print stats every SECS seconds (0: only the counters, at exit).
    ///
    /// One line per interval: decision counters, wakeup latency p50/p99 per task class
    /// (short, hog, all) measured by the in-kernel probes, runnable tasks and the current slice.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub stats: u64,

    /// Print the stats as one JSON object per line on stdout (every --stats SECS, default 1).
    ///
    /// Stable field names with units in them (`_us`, `nr_*`); latency per kind ("wakeup",
    /// "preempted", "dispatch") and class: count, mean, p50, p90, p99, p99.9 and max.
    #[arg(long)]
    pub stats_json: bool,

    /// Do not load the latency probes (their tracepoints stay unattached).
    ///
    /// The probes cost a few tens of ns per context switch and wakeup; turning them off
    /// measures that cost, and removes the latency figures from the stats.
    #[arg(long)]
    pub no_latency_probes: bool,

    /// Bytes of the kernel's debug dump to print when the scheduler is ejected (0: default).
    ///
    /// The dump shows what each CPU ran and queued at the moment of an error exit.
    #[arg(long, default_value_t = 0)]
    pub exit_dump_len: u32,

    /// Verbose output, including libbpf's messages.
    #[arg(short, long)]
    pub verbose: bool,
}

impl Opts {
    /// Stats interval in seconds, 0 for none.
    pub fn stats_interval_s(&self) -> u64 {
        match (self.stats, self.stats_json) {
            (0, true) => 1,
            (s, _) => s,
        }
    }

    pub fn tunables(&self) -> Tunables {
        Tunables {
            slice_us: self.slice_us,
            slice_min_us: self.slice_min_us,
            short_burst_us: self.short_burst_us,
            burst_cap_us: self.burst_cap_us,
            sleep_credit_us: self.sleep_credit_us,
            preempt_margin_us: self.preempt_margin_us,
            starve_us: self.starve_us,
            burst_ewma_shift: self.burst_ewma_shift,
            wakeup_preempt: !self.no_wakeup_preempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_to_default_tunables() {
        let opts = Opts::try_parse_from(["scx_brisk"]).unwrap();
        assert_eq!(opts.tunables(), Tunables::default());
    }

    #[test]
    fn options_reach_tunables() {
        let opts = Opts::try_parse_from([
            "scx_brisk",
            "--slice-us",
            "8000",
            "--short-burst-us",
            "300",
            "--no-wakeup-preempt",
        ])
        .unwrap();
        let t = opts.tunables();
        assert_eq!(
            (t.slice_us, t.short_burst_us, t.wakeup_preempt),
            (8000, 300, false)
        );
    }

    #[test]
    fn malformed_numbers_are_refused_by_the_parser() {
        for bad in ["-5", "abc", "1.5", "99999999999999999999999"] {
            assert!(Opts::try_parse_from(["scx_brisk", "--slice-us", bad]).is_err());
        }
    }
}
