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
        /// Arguments passed on to `brisk-guest test` in the guest
        #[arg(last = true, value_name = "GUEST_TEST_ARGS")]
        guest_args: Vec<String>,
    },
}

/// Options shared by `run` and `test`.
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
    /// Guest memory in MiB
    #[arg(long, value_name = "N", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(256..))]
    pub mem_mb: u32,
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
                ..
            } => {
                assert_eq!(timeout_s, 1500);
                assert!(guest_args.is_empty());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn kernel_config_needs_kernel() {
        assert!(Cli::try_parse_from(["brisk-vm", "test", "--kernel-config", "x"]).is_err());
        assert!(Cli::try_parse_from(["brisk-vm", "test", "--duration-s", "5"]).is_err());
    }
}
