//! Command line of scx_brisk. The doc comments are the `--help` text.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Parser, Subcommand};

use crate::control::settings;
use crate::control::tunables::{self, Spec, Unit, Value};

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

    /// The policy's tunables (src/tunables.rs): one option per entry of its table.
    #[command(flatten)]
    pub tunables: TunableArgs,

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

    /// Serve OpenMetrics for Prometheus at http://ADDR/metrics (e.g. 127.0.0.1:9464; off by
    /// default).
    ///
    /// Decision counters, the latency histograms with their buckets, each BPF program's run
    /// time (this turns BPF run-time statistics on, as --stats does) and the running tunables.
    /// Anyone who can reach ADDR can read them: keep it on localhost or behind a firewall.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Show the stats of the running scx_brisk every SECS seconds, without loading anything.
    ///
    /// Reads them over the root-only control socket; the format follows --stats-json.
    /// Stops when the scheduler does. Loads nothing, so it takes none of the scheduler's
    /// options (change a running scx_brisk with `scx_brisk ctl`).
    #[arg(long, value_name = "SECS", conflicts_with_all = scheduler_only())]
    pub monitor: Option<u64>,

    /// Reload up to N times after the kernel ejects scx_brisk for an error (0: exit at once).
    ///
    /// An ejection (a stalled task, a BPF error) hands the CPUs back to the default scheduler
    /// at once; with this, scx_brisk prints why and loads itself again after 1, 2, 4, ...
    /// seconds (at most 30), with the same settings. A bug that repeats still ends the run.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub restart_on_error: u32,

    /// Experimental: let the kernel queue a wakeup on the target CPU's wake list (an IPI)
    /// instead of locking that CPU's runqueue from the waker (SCX_OPS_ALLOW_QUEUED_WAKEUP,
    /// Linux 6.15+). Off by default: it has not been shown to help (docs/design.md).
    #[arg(long, hide = true)]
    pub queued_wakeup: bool,

    /// Testing only: park every hog where it never runs, so the watchdog ejects scx_brisk.
    #[arg(long, hide = true)]
    pub debug_stall_hogs: bool,

    /// Verbose output, including libbpf's messages.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The options that configure the scheduler this process loads: meaningless for `--monitor`,
/// which loads nothing and only reads the running one's stats. The tunables' options are added
/// from their table.
const SCHEDULER_ONLY: [&str; 10] = [
    "policy",
    "metrics_addr",
    "auto",
    "target_p99_us",
    "stats",
    "no_latency_probes",
    "exit_dump_len",
    "restart_on_error",
    "debug_stall_hogs",
    "queued_wakeup",
];

fn scheduler_only() -> Vec<&'static str> {
    SCHEDULER_ONLY
        .iter()
        .copied()
        .chain(tunables::keys())
        .collect()
}

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
    /// Show per task who waits for a CPU, how long, and behind whom (live; q quits).
    ///
    /// Loads the probes alone (as `probe` does), so it works beside a running scx_brisk and
    /// under any other scheduler. Per task over each interval: wakeups, wakeup latency
    /// p50/p99/max, CPU share, and the tasks its CPU switched from when it finally ran.
    Top(TopOpts),
}

#[derive(Debug, clap::Args)]
pub struct TopOpts {
    /// Refresh (or, with --once, measure) every SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub interval_s: u64,
    /// Measure one interval, print it and exit (for scripts).
    #[arg(long)]
    pub once: bool,
    /// With --once: print the rows as one JSON array.
    #[arg(long, requires = "once")]
    pub json: bool,
    /// Order of the rows, largest first.
    #[arg(long, value_enum, default_value_t = TopSort::P99)]
    pub sort: TopSort,
    /// Show at most N tasks.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub limit: usize,
    /// Average burst under which a task counts as short, in microseconds (as scx_brisk's).
    #[arg(long, default_value_t = short_burst().default,
          value_parser = clap::value_parser!(u64).range(short_burst().min..=short_burst().max))]
    pub short_burst_us: u64,
}

/// What `scx_brisk top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopSort {
    /// Wakeup latency p99.
    P99,
    /// Largest wakeup latency.
    Max,
    /// Wakeups.
    Wakeups,
    /// CPU share.
    Cpu,
}

impl TopSort {
    pub fn name(self) -> &'static str {
        match self {
            Self::P99 => "p99",
            Self::Max => "max",
            Self::Wakeups => "wakeups",
            Self::Cpu => "cpu",
        }
    }
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
    #[arg(long, default_value_t = short_burst().default,
          value_parser = clap::value_parser!(u64).range(short_burst().min..=short_burst().max))]
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

fn short_burst() -> &'static Spec {
    tunables::spec("short_burst_us").expect("short_burst_us is in the table")
}

/// The tunables' options, one per entry of `tunables::TABLE`: `--slice-us US` for a number,
/// `--no-wakeup-preempt` for a boolean that is on by default (`--KEY` for one that is off).
/// Only the options given on the command line count (as changes over the defaults or the
/// policy file), so their defaults are shown in the help rather than set in clap.
#[derive(Debug, Clone, Default)]
pub struct TunableArgs {
    /// The tunables given on the command line, in the table's order.
    pub given: Vec<(String, Value)>,
}

fn tunable_arg(spec: &'static Spec) -> Arg {
    let help = format!("{} [default: {}]", spec.summary(), spec.show(spec.default));
    // Paragraphs as clap makes them of doc comments: lines joined, a blank line between.
    let paragraphs: Vec<String> = spec
        .help
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let long_help = format!(
        "{}\n\n[allowed: {}] [default: {}]",
        paragraphs.join("\n\n"),
        spec.allowed(),
        spec.show(spec.default)
    );
    let arg = Arg::new(spec.key).help(help).long_help(long_help);
    match (spec.unit, spec.default) {
        (Unit::Bool, 0) => arg
            .long(spec.key.replace('_', "-"))
            .action(ArgAction::SetTrue),
        (Unit::Bool, _) => arg
            .long(format!("no-{}", spec.key.replace('_', "-")))
            .action(ArgAction::SetFalse),
        _ => arg
            .long(spec.key.replace('_', "-"))
            .value_name(spec.unit.value_name())
            .value_parser(clap::value_parser!(u64)),
    }
}

impl clap::FromArgMatches for TunableArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for spec in tunables::TABLE {
            if m.value_source(spec.key) != Some(ValueSource::CommandLine) {
                continue;
            }
            let v = match spec.unit {
                Unit::Bool => Value::Bool(m.get_flag(spec.key)),
                _ => Value::Str(
                    m.get_one::<u64>(spec.key)
                        .copied()
                        .unwrap_or_default()
                        .to_string(),
                ),
            };
            given.push((spec.key.to_string(), v));
        }
        Ok(Self { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for TunableArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.next_help_heading("Tunables (also the keys of policy files and `scx_brisk ctl set`)")
            .args(tunables::TABLE.iter().map(tunable_arg))
            .next_help_heading(None::<&'static str>)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The settings given explicitly on the command line (not defaults), as changes to apply on
/// top of the defaults or policy file.
pub fn cli_changes(opts: &Opts, m: &ArgMatches) -> Vec<(String, Value)> {
    let mut out = opts.tunables.given.clone();
    if m.value_source(settings::TARGET_P99_US.key) == Some(ValueSource::CommandLine) {
        out.push((
            settings::TARGET_P99_US.key.to_string(),
            Value::Str(opts.target_p99_us.to_string()),
        ));
    }
    if opts.auto {
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
        let o = Opts::from_arg_matches(&m).unwrap();
        cli_changes(&o, &m)
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
                ("wakeup_preempt".to_string(), Value::Bool(false)),
                ("target_p99_us".to_string(), s("900")),
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
            &["--lat-duty-max-pct", "50"],
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
        for id in scheduler_only() {
            assert!(
                Opts::command().get_arguments().any(|a| a.get_id() == id),
                "{id}"
            );
        }
    }

    #[test]
    fn probe_short_burst_is_range_checked() {
        let parse = |v: &str| Opts::try_parse_from(["scx_brisk", "probe", "--short-burst-us", v]);
        let (min, max) = (short_burst().min, short_burst().max);
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

    /// Every entry of the table is an option, with its help, range and default in `--help`.
    #[test]
    fn every_tunable_is_an_option_with_its_help() {
        let help = Opts::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for spec in tunables::TABLE {
            let long = spec.key.replace('_', "-");
            assert!(help.contains(&long), "{} missing from --help", spec.key);
            assert!(help.contains(spec.summary()), "{}", spec.key);
            assert!(help.contains(&spec.allowed()), "{}", spec.key);
        }
        let c = changes(&[
            "scx_brisk",
            "--lat-duty-max-pct",
            "0",
            "--burst-ewma-shift",
            "3",
        ]);
        assert_eq!(
            c,
            vec![
                ("burst_ewma_shift".to_string(), Value::Str("3".into())),
                ("lat_duty_max_pct".to_string(), Value::Str("0".into())),
            ]
        );
    }

    #[test]
    fn malformed_numbers_are_refused_by_the_parser() {
        for bad in ["-5", "abc", "1.5", "99999999999999999999999"] {
            assert!(Opts::try_parse_from(["scx_brisk", "--slice-us", bad]).is_err());
        }
    }
}
