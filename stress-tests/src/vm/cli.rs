//! Command line of brisk-vm.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Boot a sched_ext kernel in qemu (TCG software emulation) and run scx_brisk inside it.
///
/// The kernel is Debian trixie-backports' linux-image-cloud-amd64 (fetched with a private apt
/// configuration and cached under target/vm/kernel) unless --kernel is given. The guest's
/// output is shown live; the harness exits with the guest's exit code, or 3 if the guest never
/// reported one (timeout, kernel panic, crash).
#[derive(Debug, Parser)]
#[command(name = "brisk-vm", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scx_brisk under a mixed load in the guest and report (brisk-guest run)
    Run {
        #[command(flatten)]
        vm: VmOpts,
        /// How long the guest runs the scheduler under load, in seconds
        #[arg(long, value_name = "N", default_value_t = 30)]
        duration_s: u64,
        /// Hard limit on the qemu process, in seconds
        #[arg(long, value_name = "N", default_value_t = 300)]
        timeout_s: u64,
        /// Arguments passed on to scx_brisk in the guest
        #[arg(last = true, value_name = "SCX_BRISK_ARGS")]
        scx_args: Vec<String>,
    },
    /// Run the integration tests in the guest (brisk-guest test)
    Test {
        #[command(flatten)]
        vm: VmOpts,
        /// Hard limit on the qemu process, in seconds
        #[arg(long, value_name = "N", default_value_t = 1500)]
        timeout_s: u64,
        /// Run the reliability tests (stress, churn, RT hog, attach cycles, SIGKILL, a
        /// provoked ejection) instead of the integration tests
        #[arg(long)]
        reliability: bool,
        /// Run the topology tests (placement in the LLC, stealing between LLCs, SMT cores,
        /// fairness and nice across LLCs, an LLC offline) instead; they need a guest of
        /// several LLCs, e.g. --topology 2x2x2 --numa
        #[arg(long, conflicts_with = "reliability")]
        topology_tests: bool,
        /// Run the service test instead: boot Debian trixie with systemd as PID 1 (a rootfs
        /// made once with debootstrap, cached in target/vm/systemd-rootfs), install
        /// scx_brisk with dist/install, enable its unit, and check start at boot, the stats
        /// and control sockets, reload, restart after a crash, stop and bad flags
        #[arg(long, conflicts_with_all = ["reliability", "topology_tests"])]
        service: bool,
        /// Arguments passed on to `brisk-guest test` in the guest
        #[arg(last = true, value_name = "GUEST_TEST_ARGS")]
        guest_args: Vec<String>,
    },
    /// A/B benchmark in the guest: every scenario under the default scheduler, scx_brisk and
    /// each --candidate, interleaved for R rounds; writes target/stress/report.md,
    /// report.json and SVG plots, and exits non-zero if the run was not sane (a scheduler
    /// missed a scenario, a scenario failed, a candidate detached)
    Bench {
        #[command(flatten)]
        vm: VmOpts,
        /// Rounds per scenario and scheduler [default: 3, or 2 with --quick]
        #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: Option<u32>,
        /// Run only this scenario (repeatable)
        #[arg(long = "scenario", value_name = "S",
              value_parser = clap::builder::PossibleValuesParser::new(brisk_stress::results::SCENARIOS))]
        scenarios: Vec<String>,
        /// Short scenarios: about 2 minutes of guest time (for CI)
        #[arg(long)]
        quick: bool,
        /// Another sched_ext scheduler (repeatable): NAME=PATH, a binary on this host that is
        /// copied into the guest, or NAME=/bin/scx_brisk for scx_brisk with other options;
        /// `NAME=PATH ARGS...` as one argument, or ARGS after `--` for the last --candidate
        #[arg(long = "candidate", value_name = "NAME=PATH")]
        candidates: Vec<String>,
        /// Also run the upstream schedulers scx_bpfland, scx_cosmos and scx_lavd with their
        /// defaults, as candidates named bpfland, cosmos, lavd (pinned versions from crates.io,
        /// built once into target/vm/peers with `cargo install --locked`)
        #[arg(long)]
        peers: bool,
        /// scx_brisk's policy: a NAME from the guest's /policies (NAME.toml), or a guest path
        #[arg(long, value_name = "NAME")]
        policy: Option<String>,
        /// Hard limit on the qemu process, in seconds [default: from the rounds and scenarios]
        #[arg(long, value_name = "N")]
        timeout_s: Option<u64>,
        /// Arguments for the last --candidate, or for scx_brisk if there is none
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Write the benchmark report (target/stress) from saved results: a bench run's
    /// result.log, or the JSON of `brisk-guest bench --out FILE` (e.g. run on a sched_ext host)
    Report {
        /// result.log or results JSON
        #[arg(value_name = "FILE")]
        results: PathBuf,
        /// Output directory [default: target/stress]
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Options shared by `run`, `test` and `bench`.
#[derive(Debug, Args)]
pub struct VmOpts {
    /// Boot this kernel image (bzImage) instead of Debian's trixie-backports cloud kernel;
    /// it needs CONFIG_SCHED_CLASS_EXT=y and everything the guest uses built in (no modules)
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Config of --kernel; installed as /boot/config-<KVER> in the guest (libbpf reads it)
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub kernel_config: Option<PathBuf>,
    /// Number of guest vCPUs
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub cpus: u32,
    /// Guest CPU topology instead of --cpus: SOCKETSxCORES[xTHREADS], e.g. 2x4 (8 vCPUs in
    /// two sockets, each its own LLC) or 2x2x2 (the same with SMT pairs), or
    /// SOCKETSxDIESxCORESxTHREADS, e.g. 2x2x2x1 (an LLC per die: two per socket, and per NUMA
    /// node with --numa). The guest checks from sysfs that it came out so (LLCs, SMT
    /// siblings, NUMA nodes) and fails otherwise
    #[arg(long, value_name = "SxC[xT]|SxDxCxT", conflicts_with = "cpus")]
    pub topology: Option<super::qemu::Topology>,
    /// With --topology: one NUMA node per socket, the memory split evenly between them
    #[arg(long, requires = "topology")]
    pub numa: bool,
    /// Guest memory in MiB
    #[arg(long, value_name = "N", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(256..))]
    pub mem_mb: u32,
    /// Extra guest kernel command-line arguments (e.g. "mitigations=off"), appended to the
    /// harness's own; both schedulers of a bench run boot with the same line
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub kernel_args: String,
    /// Guest clock: `mttcg` (one host thread per vCPU, real time: noisy between boots) or
    /// `icount` (instruction-counted time, one host thread for all vCPUs: repeatable to about
    /// 1%, for choosing between policy variants; cross-CPU IPIs are slower than on hardware, so
    /// confirm preemption figures under mttcg). Recorded in the report's kernel command line
    /// as brisk_timing=icount
    #[arg(long, value_enum, default_value_t = Timing::Mttcg)]
    pub timing: Timing,
}

/// How the emulator keeps the guest's time (`--timing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Timing {
    /// Multi-threaded TCG: guest time is host time
    Mttcg,
    /// `-icount shift=1,sleep=off`, single-threaded TCG: guest time counts instructions
    Icount,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_and_passthrough() {
        let cli = Cli::try_parse_from(["brisk-vm", "run", "--cpus", "4", "--", "--slice-us", "5"])
            .unwrap();
        match cli.command {
            Command::Run {
                vm,
                duration_s,
                timeout_s,
                scx_args,
            } => {
                assert_eq!(vm.cpus, 4);
                assert_eq!(vm.mem_mb, 2048);
                assert_eq!(duration_s, 30);
                assert_eq!(timeout_s, 300);
                assert_eq!(scx_args, ["--slice-us", "5"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn test_defaults() {
        let cli = Cli::try_parse_from(["brisk-vm", "test"]).unwrap();
        match cli.command {
            Command::Test {
                timeout_s,
                guest_args,
                reliability,
                ..
            } => {
                assert!(!reliability);
                assert_eq!(timeout_s, 1500);
                assert!(guest_args.is_empty());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bench_options() {
        let cli = Cli::try_parse_from([
            "brisk-vm",
            "bench",
            "--quick",
            "--scenario",
            "desktop",
            "--candidate",
            "lavd=/usr/bin/scx_lavd",
            "--policy",
            "latency",
            "--",
            "--performance",
        ])
        .unwrap();
        match cli.command {
            Command::Bench {
                quick,
                scenarios,
                candidates,
                policy,
                args,
                rounds,
                timeout_s,
                vm,
                peers,
            } => {
                assert!(!peers);
                assert!(quick);
                assert_eq!(scenarios, ["desktop"]);
                assert_eq!(candidates, ["lavd=/usr/bin/scx_lavd"]);
                assert_eq!(policy.as_deref(), Some("latency"));
                assert_eq!(args, ["--performance"]);
                assert_eq!((rounds, timeout_s, vm.cpus), (None, None, 2));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["brisk-vm", "bench", "--scenario", "nope"]).is_err());
        assert!(Cli::try_parse_from(["brisk-vm", "report"]).is_err());
    }

    #[test]
    fn kernel_config_needs_kernel() {
        assert!(Cli::try_parse_from(["brisk-vm", "test", "--kernel-config", "x"]).is_err());
        assert!(Cli::try_parse_from(["brisk-vm", "test", "--duration-s", "5"]).is_err());
    }
}
