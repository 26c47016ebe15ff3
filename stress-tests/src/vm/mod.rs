//! The host side of the VM harness: kernel, initramfs, qemu.

pub mod bench;
pub mod cli;
pub mod cpio;
pub mod extra;
pub mod initramfs;
pub mod kernel;
pub mod peers;
pub mod plots;
pub mod qemu;
pub mod report;
pub mod service;

use anyhow::{bail, Context, Result};
use cli::{Cli, Command, VmOpts};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Exit code of the harness when the guest did not report an exit code of its own.
const EXIT_VM_FAILED: i32 = 3;
/// Exit code after Ctrl-C / SIGTERM.
const EXIT_INTERRUPTED: i32 = 130;
/// Lines of console.log shown when the guest failed.
const CONSOLE_EXCERPT_LINES: usize = 80;

/// Runs one phase, printing `==> [name] what` before and `    [name] done in X.X s` after.
pub fn phase<T>(name: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("==> [{name}] {what}");
    let start = Instant::now();
    let value = f()?;
    println!(
        "    [{name}] done in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(value)
}

/// Workspace paths the harness uses.
pub struct Paths {
    /// `target/release`: scx_brisk and brisk-guest are taken from here.
    pub release: PathBuf,
    /// `target/vm`: kernel cache, apt state, initramfs and logs.
    pub vm: PathBuf,
    /// `target/stress`: the benchmark report.
    pub stress: PathBuf,
}

impl Paths {
    /// `$BRISK_ROOT` if set, else derived from this executable (`<root>/target/release/brisk-vm`).
    fn locate() -> Result<Paths> {
        let root = match std::env::var_os("BRISK_ROOT") {
            Some(root) => PathBuf::from(root),
            None => {
                let exe = std::env::current_exe().context("locating the brisk-vm executable")?;
                exe.ancestors()
                    .nth(3)
                    .map(Path::to_path_buf)
                    .with_context(|| {
                        format!(
                            "cannot derive the workspace root from {} (expected \
                             <root>/target/release/brisk-vm); set BRISK_ROOT",
                            exe.display()
                        )
                    })?
            }
        };
        if !root.join("stress-tests").is_dir() {
            bail!(
                "{} does not look like the scx_brisk workspace (no stress-tests/ in it); \
                 set BRISK_ROOT to the workspace root",
                root.display()
            );
        }
        let target = root.join("target");
        Ok(Paths {
            release: target.join("release"),
            vm: target.join("vm"),
            stress: target.join("stress"),
        })
    }
}

/// Runs `brisk-vm`; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    // Extra host files for the guest, and whether the guest runs the benchmark.
    let mut extra_files = Vec::new();
    let mut is_bench = false;
    let (opts, timeout_s, guest_argv) = match cli.command {
        Command::Run {
            vm,
            duration_s,
            timeout_s,
            scx_args,
        } => {
            if duration_s + 60 > timeout_s {
                eprintln!(
                    "warning: --duration-s {duration_s} leaves less than a minute of \
                     --timeout-s {timeout_s} for boot and teardown"
                );
            }
            let mut argv = vec!["run".into(), "--duration-s".into(), duration_s.to_string()];
            if !scx_args.is_empty() {
                argv.push("--".into());
                argv.extend(scx_args);
            }
            (vm, timeout_s, argv)
        }
        Command::Test {
            vm,
            timeout_s,
            reliability,
            topology_tests,
            service,
            guest_args,
        } => {
            if service {
                if !guest_args.is_empty() {
                    bail!("--service runs its one test: it takes no test names or guest arguments");
                }
                let paths = Paths::locate()?;
                return boot(&paths, &vm, timeout_s, &Guest::Service, &[]);
            }
            let mut argv = vec!["test".to_string()];
            if reliability {
                argv.push("--reliability".to_string());
            }
            if topology_tests {
                argv.push("--topology-tests".to_string());
            }
            argv.extend(guest_args);
            (vm, timeout_s, argv)
        }
        Command::Bench {
            vm,
            rounds,
            scenarios,
            quick,
            mut candidates,
            peers,
            policy,
            timeout_s,
            args,
        } => {
            if peers {
                let cache = Paths::locate()?.vm.join("peers");
                // Before the user's own candidates: `ARGS` after `--` go to the last one.
                let mut specs = phase(
                    "peers",
                    &format!("upstream schedulers in {}", cache.display()),
                    || peers::ensure(&cache),
                )?;
                specs.append(&mut candidates);
                candidates = specs;
            }
            let req = bench::BenchRequest {
                rounds,
                scenarios,
                quick,
                candidates,
                policy,
                args,
            };
            let (argv, files) = bench::guest_argv(&req)?;
            extra_files = files;
            is_bench = true;
            // Instruction-counted time runs a guest second in about 2.5 host seconds.
            let slowdown = if vm.timing == cli::Timing::Icount {
                3
            } else {
                1
            };
            let timeout_s = timeout_s.unwrap_or_else(|| bench::default_timeout_s(&req) * slowdown);
            (vm, timeout_s, argv)
        }
        Command::Report { results, out_dir } => {
            let r = bench::load(&results)?;
            let dir = match out_dir {
                Some(dir) => dir,
                None => Paths::locate()?.stress,
            };
            let problems = bench::write_report(&r, &dir)?;
            return Ok(if problems.is_empty() { 0 } else { 1 });
        }
    };
    let paths = Paths::locate()?;
    let code = boot(
        &paths,
        &opts,
        timeout_s,
        &Guest::Init(guest_argv),
        &extra_files,
    )?;
    if !is_bench || code == EXIT_INTERRUPTED {
        return Ok(code);
    }
    phase(
        "report",
        &format!("benchmark report in {}", paths.stress.display()),
        || bench::finish(&paths.vm.join("result.log"), code, &paths.stress),
    )
}

/// What the guest runs.
enum Guest {
    /// The harness's busybox /init, which runs `brisk-guest ARGS`.
    Init(Vec<String>),
    /// Debian with systemd as init, scx_brisk installed as a service, and a unit that runs
    /// `brisk-guest test --service` (`test --service`).
    Service,
}

fn boot(
    paths: &Paths,
    opts: &VmOpts,
    timeout_s: u64,
    guest: &Guest,
    extra_files: &[(PathBuf, String)],
) -> Result<i32> {
    std::fs::create_dir_all(&paths.vm)
        .with_context(|| format!("creating {}", paths.vm.display()))?;
    let guest_bins = initramfs::GuestBinaries::locate(&paths.release)?;

    let kernel = match &opts.kernel {
        Some(image) => phase("kernel", &format!("using {}", image.display()), || {
            kernel::user_kernel(image, opts.kernel_config.as_deref())
        })?,
        None => phase(
            "kernel",
            &format!(
                "Debian {} {} (private apt state in {})",
                kernel::SUITE,
                kernel::META_PACKAGE,
                paths.vm.join("apt").join(kernel::SUITE).display()
            ),
            || kernel::debian_kernel(&paths.vm),
        )?,
    };

    let initramfs_path = paths.vm.join("initramfs.cpio.gz");
    let guest_argv = match guest {
        Guest::Init(argv) => {
            phase(
                "initramfs",
                &format!(
                    "building {} (busybox, scx_brisk, brisk-guest, stress-ng, hackbench)",
                    initramfs_path.display()
                ),
                || initramfs::build(&initramfs_path, &guest_bins, &kernel, argv),
            )?;
            argv.clone()
        }
        Guest::Service => {
            let rootfs = phase(
                "rootfs",
                "Debian trixie with systemd (debootstrap, once)",
                || service::rootfs(&paths.vm),
            )?;
            phase(
                "initramfs",
                &format!(
                    "building {} (the rootfs, what dist/install needs of this checkout, the check)",
                    initramfs_path.display()
                ),
                || service::build(&initramfs_path, &rootfs, &guest_bins, &kernel),
            )?;
            ["test", "--service", "(from systemd)"]
                .map(String::from)
                .to_vec()
        }
    };
    if !extra_files.is_empty() {
        let list: Vec<String> = extra_files
            .iter()
            .map(|(host, guest)| format!("{} as {guest}", host.display()))
            .collect();
        phase(
            "initramfs",
            &format!("appending {}", list.join(", ")),
            || extra::append(&initramfs_path, extra_files),
        )?;
    }

    let vm = qemu::Vm {
        vmlinuz: kernel.vmlinuz.clone(),
        initramfs: initramfs_path,
        cpus: opts.topology.map_or(opts.cpus, |t| t.cpus()),
        mem_mb: opts.mem_mb,
        timeout_s,
        console_log: paths.vm.join("console.log"),
        result_log: paths.vm.join("result.log"),
        kernel_args: opts.kernel_args.clone(),
        icount: opts.timing == cli::Timing::Icount,
        topology: opts.topology.map(|t| (t, opts.numa)),
    };
    let what = format!(
        "booting {} ({}, {} vCPUs{}, {} MiB, limit {} s): brisk-guest {}",
        qemu::version().map_or_else(|| "qemu".to_string(), |v| format!("qemu {v}")),
        if vm.icount { "TCG, icount" } else { "TCG" },
        vm.cpus,
        vm.topology.map_or(String::new(), |(t, numa)| format!(
            " as {t}{}",
            if numa {
                " with a NUMA node per socket"
            } else {
                ""
            }
        )),
        vm.mem_mb,
        vm.timeout_s,
        guest_argv
            .iter()
            .map(|a| initramfs::sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut outcome = phase("guest", &what, || qemu::run(&vm))?;
    // One more boot, once, when the emulator failed the guest (see `emulator_fault`); any
    // other failure, or the same one twice, fails the run.
    if let Some(why) = emulator_fault(&outcome, &vm, paths)? {
        eprintln!("warning: {why} Booting the guest once more; a second failure fails the run.");
        outcome = phase("guest", &format!("{what} (second boot)"), || qemu::run(&vm))?;
    }

    let code = report(&outcome, &vm);
    println!("    console (kernel log): {}", vm.console_log.display());
    println!("    result (guest output): {}", vm.result_log.display());
    Ok(code)
}

/// Why `outcome` is the emulator's fault, not the guest's, if it is: a death on the
/// stale-code race (`qemu::stale_code_crash`; its kernel log is kept), or a boot that wrote
/// nothing at all (`qemu::Outcome::SilentBoot`: nothing of the project had run yet).
fn emulator_fault(outcome: &qemu::Outcome, vm: &qemu::Vm, paths: &Paths) -> Result<Option<String>> {
    match outcome {
        qemu::Outcome::Panicked(_) => {
            let console = std::fs::read(&vm.console_log).unwrap_or_default();
            let Some(oops) = qemu::stale_code_crash(&String::from_utf8_lossy(&console)) else {
                return Ok(None);
            };
            let kept = paths.vm.join("console-emulator-crash.log");
            std::fs::copy(&vm.console_log, &kept)
                .with_context(|| format!("keeping {}", kept.display()))?;
            Ok(Some(format!(
                "the guest kernel died on an int3 that is no longer in its memory ({oops}): \
                 qemu's multi-threaded TCG ran stale code while the kernel re-patched its text, \
                 a known emulator race when a scheduler or probe attaches or detaches, not a \
                 fault of the guest. Its kernel log is kept in {}.",
                kept.display()
            )))
        }
        qemu::Outcome::SilentBoot => Ok(Some(format!("{}.", outcome.describe(vm.timeout_s)))),
        _ => Ok(None),
    }
}

/// Prints the outcome; returns the harness's exit code.
fn report(outcome: &qemu::Outcome, vm: &qemu::Vm) -> i32 {
    use qemu::Outcome;
    match outcome {
        Outcome::Exited { code, timed_out } => {
            if *timed_out {
                eprintln!(
                    "warning: the guest reported its exit code but did not power off; \
                     qemu was killed after {} s",
                    vm.timeout_s
                );
            }
            println!("    guest exited with code {code}");
            *code
        }
        Outcome::Interrupted => {
            eprintln!("error: interrupted; qemu was stopped");
            EXIT_INTERRUPTED
        }
        failure => {
            eprintln!("error: {}", failure.describe(vm.timeout_s));
            match qemu::console_excerpt(&vm.console_log, CONSOLE_EXCERPT_LINES) {
                Ok(lines) if lines.is_empty() => eprintln!(
                    "({} is empty: the kernel printed nothing at loglevel 4)",
                    vm.console_log.display()
                ),
                Ok(lines) => {
                    eprintln!(
                        "---- {} lines of {}, from its first oops or warning if any ----",
                        lines.len(),
                        vm.console_log.display()
                    );
                    for line in lines {
                        eprintln!("{line}");
                    }
                    eprintln!("---- end of console log ----");
                }
                Err(e) => eprintln!("(cannot show the console log: {e:#})"),
            }
            EXIT_VM_FAILED
        }
    }
}
