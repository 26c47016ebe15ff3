//! Command line of scx_brisk. The doc comments are the `--help` text.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser, Subcommand};

use crate::settings;
use crate::tunables::{self, Value};

/// scx_brisk: a sched_ext scheduler with weighted virtual runtime that favours short-running
/// tasks.
///
/// Tasks that run briefly and sleep are picked before CPU hogs and may preempt them on wakeup;
/// every task keeps its nice-weighted share of CPU time. Needs root and a kernel with
/// CONFIG_SCHED_CLASS_EXT (6.12+). Ctrl-C hands the CPUs back to the default scheduler.
#[derive(Debug, Parser)]
///
/// Settings: defaults, then --policy FILE, then the options given here. A running instance is
/// changed with `scx_brisk ctl` (root only); SIGHUP re-reads its --policy file.
#[command(
    name = "scx_brisk",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Start with the settings of this policy file (TOML; see scheduler-policies/).
    ///
    /// A policy file is a whole profile: keys it leaves out take their defaults, and options
    /// given on the command line override it. SIGHUP makes scx_brisk re-read it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Let the auto-tuner hold the short tasks' p99 wakeup latency under --target-p99-us.
    ///
    /// It shortens the slice and the preemption margin while the probes measure the short
    /// class's p99 over the target, and gives slice back to hogs while it is well under.
    /// The --slice-us and --preempt-margin-us values are its relaxed end. Needs the probes.
    #[arg(long)]
    pub auto: bool,

    /// The auto-tuner's target for the short class's p99 wakeup latency, in microseconds.
    ///
    /// Lower targets cost hogs slice length and more context switches.
    #[arg(long, value_name = "US", default_value_t = settings::TARGET_P99_US.default)]
    pub target_p99_us: u64,

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
    /// The floor under the shared-out slice: below it, switching costs more than it buys. A
    /// slice shorter than the kernel's tick (4 ms at HZ=250) ends at the next tick anyway;
    /// short tasks do not need it, since they preempt hogs when they wake.
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
    /// longer than a short task of equal vruntime; while more tasks wait than there are CPUs,
    /// the burst is scaled down by that share. Larger favours short tasks more; a hog's
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
    /// The average falls twice as fast as it rises, so a task that turns short regains its
    /// privileges within a few bursts. Larger values remember a task's past longer, so a few long
    /// bursts do not demote an interactive task; smaller values react faster when a task changes
    /// behaviour.
    #[arg(long, default_value_t = tunables::BURST_EWMA_SHIFT.default)]
    pub burst_ewma_shift: u64,

    /// Largest duty cycle of a latency-critical task, in percent (0: no latency-critical lane).
    ///
    /// A task woken by a timer, an interrupt or a futex (not by a pipe or socket partner),
    /// whose average burst fits in one --slice-us and fills at most this share of the time
    /// between its wakeups, skips the fair queue and may preempt any other task. At 100 the
    /// burst bound alone decides; lower values also refuse busy tasks (a request worker that
    /// has fallen behind), which then wait in the fair queue.
    #[arg(long, default_value_t = tunables::LAT_DUTY_MAX_PCT.default)]
    pub lat_duty_max_pct: u64,

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

    /// Show the stats of the running scx_brisk every SECS seconds, without loading anything.
    ///
    /// Reads them over the root-only control socket; the format follows --stats-json.
    /// Stops when the scheduler does. Loads nothing, so it takes none of the scheduler's
    /// options (change a running scx_brisk with `scx_brisk ctl`).
    #[arg(long, value_name = "SECS", conflicts_with_all = SCHEDULER_ONLY)]
    pub monitor: Option<u64>,

    /// Reload up to N times after the kernel ejects scx_brisk for an error (0: exit at once).
    ///
    /// An ejection (a stalled task, a BPF error) hands the CPUs back to the default scheduler
    /// at once; with this, scx_brisk prints why and loads itself again after 1, 2, 4, ...
    /// seconds (at most 30), with the same settings. A bug that repeats still ends the run.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub restart_on_error: u32,

    /// Testing only: park every hog where it never runs, so the watchdog ejects scx_brisk.
    #[arg(long, hide = true)]
    pub debug_stall_hogs: bool,

    /// Verbose output, including libbpf's messages.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The options that configure the scheduler this process loads: meaningless for `--monitor`,
/// which loads nothing and only reads the running one's stats.
const SCHEDULER_ONLY: [&str; 18] = [
    "policy",
    "auto",
    "target_p99_us",
    "slice_us",
    "slice_min_us",
    "short_burst_us",
    "burst_cap_us",
    "sleep_credit_us",
    "preempt_margin_us",
    "starve_us",
    "burst_ewma_shift",
    "lat_duty_max_pct",
    "no_wakeup_preempt",
    "stats",
    "no_latency_probes",
    "exit_dump_len",
    "restart_on_error",
    "debug_stall_hogs",
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or change the settings of the running scx_brisk (root only).
    Ctl {
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Measure the running scheduler's latency with the probes alone, replacing nothing.
    ///
    /// Loads only the tracepoint probes, so it works on any kernel with BTF (no sched_ext
    /// needed) and measures whatever scheduler runs, the kernel's default included: the same
    /// per-class histograms and report as --stats, and a total at the end.
    Probe(ProbeOpts),
}

#[derive(Debug, clap::Args)]
pub struct ProbeOpts {
    /// Stop after SECS seconds (0: run until Ctrl-C).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub duration_s: u64,
    /// Print a report every SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub stats: u64,
    /// Print the reports as JSON lines (the --stats-json format).
    #[arg(long)]
    pub stats_json: bool,
    /// Average burst under which a task counts as short, in microseconds (as scx_brisk's).
    #[arg(long, default_value_t = tunables::SHORT_BURST_US.default,
          value_parser = clap::value_parser!(u64)
              .range(tunables::SHORT_BURST_US.min..=tunables::SHORT_BURST_US.max))]
    pub short_burst_us: u64,
}

#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// Print every setting's running value and where it came from.
    Show {
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Change settings (KEY=VALUE ...): all of them are applied, or none.
    ///
    /// Keys are the long options with `-` written `_` (slice_us=6000), plus mode=fixed|auto
    /// and target_p99_us.
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Switch to the settings of a policy file (keys it leaves out take their defaults).
    Apply {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

impl Opts {
    /// Stats interval in seconds, 0 for none.
    pub fn stats_interval_s(&self) -> u64 {
        match (self.stats, self.stats_json) {
            (0, true) => 1,
            (s, _) => s,
        }
    }
}

/// The settings given explicitly on the command line (not defaults), as changes to apply on
/// top of the defaults or policy file.
pub fn cli_changes(m: &ArgMatches) -> Vec<(String, Value)> {
    let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let mut out = Vec::new();
    for key in tunables::NUMERIC
        .iter()
        .map(|s| s.key)
        .chain([settings::TARGET_P99_US.key])
    {
        if given(key) {
            let v = m.get_one::<u64>(key).copied().unwrap_or_default();
            out.push((key.to_string(), Value::Str(v.to_string())));
        }
    }
    if m.get_flag("no_wakeup_preempt") {
        out.push((tunables::WAKEUP_PREEMPT.to_string(), Value::Bool(false)));
    }
    if m.get_flag("auto") {
        out.push((settings::MODE.to_string(), Value::Str("auto".into())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn changes(args: &[&str]) -> Vec<(String, Value)> {
        let m = Opts::command().try_get_matches_from(args).unwrap();
        Opts::from_arg_matches(&m).unwrap();
        cli_changes(&m)
    }

    #[test]
    fn cli_is_consistent() {
        Opts::command().debug_assert();
    }

    #[test]
    fn only_given_options_become_changes() {
        assert!(changes(&["scx_brisk"]).is_empty());
        // a value equal to the default still counts: the user asked for it
        let c = changes(&[
            "scx_brisk",
            "--slice-us",
            "5000",
            "--short-burst-us",
            "300",
            "--no-wakeup-preempt",
            "--auto",
            "--target-p99-us",
            "900",
        ]);
        let s = |v: &str| Value::Str(v.into());
        assert_eq!(
            c,
            vec![
                ("slice_us".to_string(), s("5000")),
                ("short_burst_us".to_string(), s("300")),
                ("target_p99_us".to_string(), s("900")),
                ("wakeup_preempt".to_string(), Value::Bool(false)),
                ("mode".to_string(), s("auto")),
            ]
        );
    }

    #[test]
    fn ctl_subcommands_parse_and_do_not_mix_with_scheduler_options() {
        let o = Opts::try_parse_from(["scx_brisk", "ctl", "set", "slice_us=3000", "mode=auto"])
            .unwrap();
        match o.command {
            Some(Command::Ctl {
                action: CtlAction::Set { pairs },
            }) => assert_eq!(pairs, ["slice_us=3000", "mode=auto"]),
            other => panic!("{other:?}"),
        }
        assert!(Opts::try_parse_from(["scx_brisk", "ctl", "set"]).is_err());
        assert!(Opts::try_parse_from(["scx_brisk", "--slice-us", "3000", "ctl", "show"]).is_err());
        assert!(Opts::try_parse_from(["scx_brisk", "ctl", "apply"]).is_err());
    }

    #[test]
    fn monitor_refuses_the_scheduler_options() {
        assert!(Opts::try_parse_from(["scx_brisk", "--monitor", "1", "--stats-json"]).is_ok());
        for opt in [
            &["--slice-us", "3000"][..],
            &["--policy", "p.toml"],
            &["--auto"],
            &["--target-p99-us", "900"],
            &["--no-wakeup-preempt"],
            &["--stats", "2"],
            &["--restart-on-error", "3"],
        ] {
            let e = Opts::try_parse_from(["scx_brisk", "--monitor", "1"].iter().chain(opt))
                .unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{opt:?}"
            );
            assert!(e.to_string().contains("cannot be used with"), "{e}");
        }
        // every listed id is an argument (debug_assert checks conflicts_with names too)
        for id in SCHEDULER_ONLY {
            assert!(
                Opts::command().get_arguments().any(|a| a.get_id() == id),
                "{id}"
            );
        }
    }

    #[test]
    fn probe_short_burst_is_range_checked() {
        let parse = |v: &str| Opts::try_parse_from(["scx_brisk", "probe", "--short-burst-us", v]);
        let min = tunables::SHORT_BURST_US.min;
        let max = tunables::SHORT_BURST_US.max;
        assert!(parse(&min.to_string()).is_ok());
        assert!(parse(&max.to_string()).is_ok());
        for bad in [
            "0",
            &(min - 1).to_string(),
            &(max + 1).to_string(),
            "18446744073709551615",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn malformed_numbers_are_refused_by_the_parser() {
        for bad in ["-5", "abc", "1.5", "99999999999999999999999"] {
            assert!(Opts::try_parse_from(["scx_brisk", "--slice-us", bad]).is_err());
        }
    }
}
