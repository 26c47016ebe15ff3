//! Booting the guest in qemu (TCG: this host's KVM hangs qemu), showing the guest's output
//! live, and working out how it ended.

use super::initramfs::EXIT_MARKER;
use anyhow::{Context, Result};
use brisk_stress::results::HideResults;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const QEMU: &str = "qemu-system-x86_64";
/// Seconds `timeout` waits after SIGTERM before it SIGKILLs qemu.
const KILL_AFTER_S: u64 = 10;
/// A guest that has written nothing to either serial port this long after qemu started hung
/// while booting: /init writes its first line within seconds (a systemd guest's check within
/// a minute), also under instruction-counted time. `BRISK_SILENT_BOOT_S` overrides it (the
/// harness's own tests, with a stand-in for qemu).
const SILENT_BOOT_S: u64 = 240;

const POLL: Duration = Duration::from_millis(100);

fn silent_boot_limit() -> Duration {
    let secs = std::env::var("BRISK_SILENT_BOOT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SILENT_BOOT_S);
    Duration::from_secs(secs)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Clone)]
pub struct Vm {
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    pub cpus: u32,
    pub mem_mb: u32,
    /// Hard limit on the qemu process.
    pub timeout_s: u64,
    /// First serial port: the kernel console.
    pub console_log: PathBuf,
    /// Second serial port: brisk-guest's output and the exit line.
    pub result_log: PathBuf,
    /// Extra kernel command-line arguments, after the harness's own.
    pub kernel_args: String,
    /// Instruction-counted guest time (`--timing icount`) instead of multi-threaded TCG.
    pub icount: bool,
    /// Sockets, cores and threads instead of `cpus` flat vCPUs (`--topology`), and whether
    /// each socket is a NUMA node (`--numa`).
    pub topology: Option<(Topology, bool)>,
}

/// A guest CPU topology: `sockets` x `dies` x `cores` x `threads` (`--topology 2x2x2`, or
/// `2x2x2x1` with dies). The guest gets one L3 per die, so dies are its LLCs: several per
/// socket, and so per NUMA node with `--numa`, when `dies` > 1 (an AMD CCD's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

impl Topology {
    pub fn cpus(&self) -> u32 {
        self.sockets * self.dies * self.cores * self.threads
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dies == 1 {
            write!(f, "{}x{}x{}", self.sockets, self.cores, self.threads)
        } else {
            let (s, d, c, t) = (self.sockets, self.dies, self.cores, self.threads);
            write!(f, "{s}x{d}x{c}x{t}")
        }
    }
}

impl std::str::FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let form = || {
            format!(
                "{s:?} is not SOCKETSxCORES[xTHREADS] or SOCKETSxDIESxCORESxTHREADS \
                 (e.g. 2x4, 2x2x2 or 2x2x2x1)"
            )
        };
        let parts: Vec<u32> = s
            .split('x')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| form())?;
        let (sockets, dies, cores, threads) = match parts[..] {
            [sockets, cores] => (sockets, 1, cores, 1),
            [sockets, cores, threads] => (sockets, 1, cores, threads),
            [sockets, dies, cores, threads] => (sockets, dies, cores, threads),
            _ => return Err(form()),
        };
        let t = Topology {
            sockets,
            dies,
            cores,
            threads,
        };
        if t.sockets == 0
            || t.dies == 0
            || t.cores == 0
            || !(1..=2).contains(&t.threads)
            || t.cpus() > 256
        {
            return Err(format!(
                "{s:?}: sockets, dies and cores at least 1, threads 1 or 2, at most 256 vCPUs \
                 in all"
            ));
        }
        Ok(t)
    }
}

/// The qemu arguments of a topology: `-smp` with its shape (with dies, an L3 per die rather
/// than per socket), and with `numa` one memory backend and node per socket.
fn topology_args(t: &Topology, numa: bool, mem_mb: u32) -> Vec<String> {
    let mut out = vec![
        "-smp".to_string(),
        format!(
            "{},sockets={}{},cores={},threads={}",
            t.cpus(),
            t.sockets,
            if t.dies > 1 {
                format!(",dies={}", t.dies)
            } else {
                String::new()
            },
            t.cores,
            t.threads
        ),
    ];
    if numa {
        let per_cpus = t.dies * t.cores * t.threads;
        let per_mb = mem_mb / t.sockets;
        for n in 0..t.sockets {
            out.push("-object".into());
            out.push(format!("memory-backend-ram,id=mem{n},size={per_mb}M"));
            out.push("-numa".into());
            out.push(format!(
                "node,nodeid={n},cpus={}-{},memdev=mem{n}",
                n * per_cpus,
                (n + 1) * per_cpus - 1
            ));
        }
    }
    out
}

/// The guest CPU: qemu's `max`. With dies, as an Intel CPU, whose cache leaf (4) gives each die
/// its own L3: the AMD model reports one L3 per socket (TCG has no topology extensions), and
/// CPUID level 0xd keeps qemu (10.0.2) from encoding leaf 0x1F, where it aborts with dies.
fn cpu_model(vm: &Vm) -> &'static str {
    match vm.topology {
        Some((t, _)) if t.dies > 1 => "max,vendor=GenuineIntel,level=0xd",
        _ => "max",
    }
}

/// The guest's memory: with one NUMA node per socket, rounded down to split evenly.
pub fn guest_mem_mb(vm: &Vm) -> u32 {
    match vm.topology {
        Some((t, true)) => vm.mem_mb / t.sockets * t.sockets,
        _ => vm.mem_mb,
    }
}

/// The guest kernel's command line: the harness's own, then the user's extra arguments.
fn cmdline(extra: &str, icount: bool, topology: Option<(Topology, bool)>) -> String {
    // The markers are for the guest's /proc/cmdline, which the bench report shows and from
    // which the guest learns the topology to check: the kernel ignores a parameter it does
    // not know.
    let mut base = "console=ttyS0 panic=-1 quiet loglevel=4".to_string();
    if icount {
        base.push_str(" brisk_timing=icount");
    }
    if let Some((t, numa)) = topology {
        base.push_str(&format!(
            " brisk_topology={t}{}",
            if numa { ",numa" } else { "" }
        ));
    }
    match extra.trim() {
        "" => base,
        extra => format!("{base} {extra}"),
    }
}

/// How the guest run ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The guest wrote `BRISK-GUEST-EXIT <code>`.
    Exited { code: i32, timed_out: bool },
    /// Ctrl-C or SIGTERM on the harness.
    Interrupted,
    /// qemu hit --timeout-s before the guest reported.
    TimedOut,
    /// The guest kernel panicked (the panic line).
    Panicked(String),
    /// qemu ended without the exit line (how it exited).
    NoExitLine(String),
    /// The guest wrote nothing at all within SILENT_BOOT_S seconds; qemu was stopped.
    SilentBoot,
}

impl Outcome {
    pub fn describe(&self, timeout_s: u64) -> String {
        match self {
            Outcome::Exited { code, .. } => format!("the guest exited with code {code}"),
            Outcome::Interrupted => "interrupted".into(),
            Outcome::TimedOut => format!(
                "timeout: the guest did not finish within --timeout-s {timeout_s}; qemu was killed"
            ),
            Outcome::Panicked(line) => format!("the guest kernel panicked: {line}"),
            Outcome::SilentBoot => format!(
                "the guest wrote nothing, neither a kernel message nor a line of /init, within \
                 {} s: the emulator hung while booting it; qemu was stopped",
                silent_boot_limit().as_secs()
            ),
            Outcome::NoExitLine(how) => format!(
                "qemu {how} but the guest never reported an exit code ({EXIT_MARKER} line \
                 missing): it crashed, or qemu failed (see its messages above)"
            ),
        }
    }
}

/// Nice value given to qemu's vCPU threads.
const VCPU_NICE: i32 = 10;

/// Lowers the host priority of qemu's vCPU threads below its main loop. With as many busy vCPU
/// threads as host cores, the main loop (which delivers the guest's timer interrupts) otherwise
/// waits behind them for a host time slice now and then, which shows in the guest as
/// millisecond-scale wakeup delays that belong to the emulator, not to the guest's scheduler.
/// Best effort: a failure only costs measurement noise.
fn deprioritise_vcpus(timeout_pid: u32) {
    let children = fs::read_to_string(format!("/proc/{timeout_pid}/task/{timeout_pid}/children"))
        .unwrap_or_default();
    for qemu in children.split_whitespace() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{qemu}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if comm.starts_with("CPU ") {
                // SAFETY: setpriority(2) on a thread id has no memory-safety preconditions.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, VCPU_NICE) };
            }
        }
    }
}

/// The qemu command line (without the `timeout` wrapper).
pub fn qemu_args(vm: &Vm) -> Vec<String> {
    let serial = |p: &Path| format!("file:{}", p.display());
    // Never kvm: this host's KVM is PVM-only and qemu hangs instead of exiting. icount needs
    // single-threaded TCG (qemu refuses MTTCG with it); sleep=off lets an idle guest's clock
    // jump to the next timer instead of waiting in real time.
    let (accel, icount): (&str, &[&str]) = if vm.icount {
        ("tcg,thread=single", &["-icount", "shift=1,sleep=off"])
    } else {
        ("tcg", &[])
    };
    let smp = match &vm.topology {
        Some((t, numa)) => topology_args(t, *numa, guest_mem_mb(vm)),
        None => vec!["-smp".to_string(), vm.cpus.to_string()],
    };
    let head = [
        "-nodefaults",
        // Name qemu's threads ("CPU 0/TCG", ...) so the harness can find the vCPU threads.
        "-name",
        "scx_brisk-guest,debug-threads=on",
        "-accel",
        accel,
    ]
    .into_iter()
    .chain(icount.iter().copied())
    .chain(["-cpu", cpu_model(vm)]);
    let tail = [
        "-m".to_string(),
        format!("{}M", guest_mem_mb(vm)),
        "-kernel".into(),
        vm.vmlinuz.display().to_string(),
        "-initrd".into(),
        vm.initramfs.display().to_string(),
        "-append".into(),
        cmdline(&vm.kernel_args, vm.icount, vm.topology),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        serial(&vm.console_log),
        "-serial".into(),
        serial(&vm.result_log),
    ];
    head.map(String::from).chain(smp).chain(tail).collect()
}

/// Boots the guest, printing each line it writes to the result port as it arrives.
pub fn run(vm: &Vm) -> Result<Outcome> {
    if !in_path(QEMU) {
        anyhow::bail!("{QEMU} not found: install qemu-system-x86 >= 8 (`stress-tests/vm install`)");
    }
    for log in [&vm.console_log, &vm.result_log] {
        File::create(log).with_context(|| format!("creating {}", log.display()))?;
    }
    let mut result = File::open(&vm.result_log)
        .with_context(|| format!("opening {}", vm.result_log.display()))?;

    install_signal_handlers()?;

    let mut child = Command::new("timeout")
        .arg(format!("--kill-after={KILL_AFTER_S}"))
        .arg(vm.timeout_s.to_string())
        .arg(QEMU)
        .args(qemu_args(vm))
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting timeout {QEMU}"))?;

    let mut lines = LineSplitter::default();
    let mut hide = HideResults::default();
    let mut stopping = false;
    let mut silent = false;
    let (started, limit) = (std::time::Instant::now(), silent_boot_limit());
    let mut polls = 0u32;
    let status = loop {
        polls += 1;
        if polls == 20 {
            deprioritise_vcpus(child.id());
        }
        let status = child.try_wait().context("waiting for qemu")?;
        pump(&mut result, &mut lines, &mut hide)?;
        if let Some(status) = status {
            break status;
        }
        if !stopping {
            silent = silent_for(started.elapsed(), limit, &[&vm.console_log, &vm.result_log]);
        }
        if (silent || INTERRUPTED.load(Ordering::SeqCst)) && !stopping {
            stopping = true;
            // SIGTERM to `timeout`, which passes it on to qemu.
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        std::thread::sleep(POLL);
    };
    pump(&mut result, &mut lines, &mut hide)?;
    if let Some(rest) = lines.finish() {
        if let Some(line) = hide.show(&rest) {
            print_guest_line(line);
        }
    }

    if INTERRUPTED.load(Ordering::SeqCst) {
        return Ok(Outcome::Interrupted);
    }
    if silent {
        return Ok(Outcome::SilentBoot);
    }
    let result_text = read_lossy(&vm.result_log)?;
    let console_text = read_lossy(&vm.console_log)?;
    Ok(classify(&result_text, &console_text, status))
}

/// Whether a guest running for `elapsed` has hung while booting: `limit` passed and every one
/// of its `logs` is still empty.
fn silent_for(elapsed: Duration, limit: Duration, logs: &[&Path]) -> bool {
    elapsed >= limit
        && logs
            .iter()
            .all(|log| fs::metadata(log).is_ok_and(|m| m.len() == 0))
}

/// `timeout` runs qemu in its own process group, so Ctrl-C reaches only us: we pass it on.
/// Installed once per process (a run may boot the guest twice).
fn install_signal_handlers() -> Result<()> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, &INTERRUPTED).context("installing a signal handler")?;
    }
    Ok(())
}

/// Reads what qemu appended to `file` and prints the complete lines (not the bench's results
/// block, which goes to the report).
fn pump(file: &mut File, lines: &mut LineSplitter, hide: &mut HideResults) -> Result<()> {
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).context("reading result.log")?;
    let new = lines.push(&buf);
    if !new.is_empty() {
        for line in new.iter().filter_map(|l| hide.show(l)) {
            print_guest_line(line);
        }
        std::io::stdout().flush().ok();
    }
    Ok(())
}

/// Prints a guest line; the exit marker is reported separately.
fn print_guest_line(line: &str) {
    match line.find(EXIT_MARKER) {
        Some(0) => {}
        Some(i) => println!("{}", &line[..i]),
        None => println!("{line}"),
    }
}

fn classify(result: &str, console: &str, status: ExitStatus) -> Outcome {
    // `timeout` exits 124 when it stopped qemu with SIGTERM, 137 when it had to SIGKILL it.
    let timed_out = matches!(status.code(), Some(124 | 137));
    if let Some(code) = parse_exit_code(result) {
        return Outcome::Exited { code, timed_out };
    }
    if timed_out {
        return Outcome::TimedOut;
    }
    if let Some(line) = console.lines().find(|l| l.contains("Kernel panic")) {
        return Outcome::Panicked(line.trim().to_string());
    }
    let how = match status.code() {
        Some(0) => "exited normally".to_string(),
        Some(code) => format!("exited with status {code}"),
        None => format!("was killed ({status})"),
    };
    Outcome::NoExitLine(how)
}

fn read_lossy(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What of a failed guest's kernel log to show: from the first oops, BUG or warning on (so the
/// report starts where the trouble did, not in the middle of a backtrace), at most `max` lines;
/// without one, the last `max` lines.
pub fn console_excerpt(path: &Path, max: usize) -> Result<Vec<String>> {
    let text = read_lossy(path)?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let first_report = lines
        .iter()
        .position(|l| ["Oops:", "BUG:", "cut here"].iter().any(|m| l.contains(m)));
    Ok(match first_report {
        Some(i) => lines[i..].iter().take(max).cloned().collect(),
        None => lines[lines.len().saturating_sub(max)..].to_vec(),
    })
}

/// Recognises the one guest crash that is the emulator's, not the guest's: qemu's multi-threaded
/// TCG now and then runs a stale translation of kernel text that the kernel has just re-patched
/// (static keys, static calls, trampolines: they change whenever a scheduler or a tracepoint
/// probe is attached or detached). The kernel patches through a temporary `int3`; a vCPU that
/// executes that `int3` after the patch is complete takes an "int3" oops the kernel cannot
/// explain. The proof it was stale code: the byte before the trapping RIP, as the oops dumps it
/// from memory, is no longer `cc`. A real `int3` (still in memory) is not matched. Returns the
/// oops line and the RIP line.
pub fn stale_code_crash(console: &str) -> Option<String> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let oops = lines.iter().position(|l| l.contains("Oops: int3"))?;
    let rip = lines[oops..].iter().find(|l| l.contains("RIP: 0010:"))?;
    let code = lines[oops..].iter().find(|l| l.contains("Code: "))?;
    let bytes: Vec<&str> = code.split("Code: ").nth(1)?.split_whitespace().collect();
    let at = bytes.iter().position(|b| b.starts_with('<'))?;
    let before = bytes.get(at.checked_sub(1)?)?;
    if before.eq_ignore_ascii_case("cc") {
        return None;
    }
    Some(format!("{}; {}", lines[oops].trim(), rip.trim()))
}

/// qemu's version line, for the log (`QEMU emulator version 10.0.2 (...)`).
pub fn version() -> Option<String> {
    let out = Command::new(QEMU).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    Some(
        line.strip_prefix("QEMU emulator ")
            .unwrap_or(line)
            .to_string(),
    )
}

fn in_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

// ---- pure helpers ----

/// The code of the last `BRISK-GUEST-EXIT <code>` in the guest's output.
pub fn parse_exit_code(result: &str) -> Option<i32> {
    result.lines().rev().find_map(|line| {
        let rest = &line[line.find(EXIT_MARKER)? + EXIT_MARKER.len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Splits a byte stream into lines (without `\r\n`/`\n`), keeping a partial last line.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            lines.push(clean(&line[..pos]));
        }
        lines
    }

    /// The partial last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.is_empty()).then(|| clean(&rest))
    }
}

fn clean(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn exit_code_parsing() {
        assert_eq!(parse_exit_code("hello\nBRISK-GUEST-EXIT 0\n"), Some(0));
        assert_eq!(parse_exit_code("hello\r\nBRISK-GUEST-EXIT 3\r\n"), Some(3));
        // After a partial line from the guest.
        assert_eq!(parse_exit_code("progress...BRISK-GUEST-EXIT 1"), Some(1));
        assert_eq!(parse_exit_code("hello\n"), None);
        assert_eq!(parse_exit_code("BRISK-GUEST-EXIT \n"), None);
        assert_eq!(parse_exit_code(""), None);
    }

    #[test]
    fn classification() {
        let ok = "line\nBRISK-GUEST-EXIT 2\n";
        assert_eq!(
            classify(ok, "", exited(0)),
            Outcome::Exited {
                code: 2,
                timed_out: false
            }
        );
        assert_eq!(
            classify(ok, "", exited(124)),
            Outcome::Exited {
                code: 2,
                timed_out: true
            }
        );
        assert_eq!(classify("line\n", "", exited(124)), Outcome::TimedOut);
        assert_eq!(classify("", "", exited(137)), Outcome::TimedOut);
        let panic = "[    1.0] Kernel panic - not syncing: Attempted to kill init!\r\n";
        assert_eq!(
            classify("", panic, exited(0)),
            Outcome::Panicked(
                "[    1.0] Kernel panic - not syncing: Attempted to kill init!".into()
            )
        );
        assert!(matches!(
            classify("", "", exited(1)),
            Outcome::NoExitLine(how) if how.contains("status 1")
        ));
    }

    /// The CI crash of 2026-11-28 (qemu 10.0.2, 2 vCPUs), trimmed: the oops header is the
    /// shape x86 prints for `die("int3")`; RIP and Code lines are as logged.
    const STALE_INT3: &str = "\
[   38.395000] Oops: int3: 0000 [#1] SMP NOPTI\r
[   38.395100] CPU: 1 UID: 0 PID: 0 Comm: swapper/1 Not tainted 7.3.4+deb13-cloud-amd64 #1\r
[   38.395200] RIP: 0010:_nohz_idle_balance.isra.0+0x1d7/0x390\r
[   38.395300] Code: 8f c1 c3 01 48 39 c1 0f 88 27 ff ff ff 4c 89 e7 e8 1e 73 fe ff 4c 89 e7 \
41 83 a4 24 a0 0f 00 00 03 49 89 c6 e8 5a d7 fd ff 0f <1f> 44 00 00 49 8d 7c 24 48 e8 eb 92\r
[   38.415633] Kernel panic - not syncing: Fatal exception in interrupt\r
";

    #[test]
    fn stale_code_crash_is_recognised_and_nothing_else() {
        let found = stale_code_crash(STALE_INT3).expect("the CI crash is the emulator's");
        assert!(found.contains("Oops: int3") && found.contains("_nohz_idle_balance"));
        // The int3 is still in memory: a real breakpoint, not stale code.
        let real = STALE_INT3.replace("ff 0f <1f>", "ff cc <1f>");
        assert_eq!(stale_code_crash(&real), None);
        // Other oopses, or an int3 oops without its code dump, are never the emulator's.
        let gp = STALE_INT3.replace("Oops: int3", "Oops: general protection fault");
        assert_eq!(stale_code_crash(&gp), None);
        let no_code: String = STALE_INT3
            .lines()
            .filter(|l| !l.contains("Code:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(stale_code_crash(&no_code), None);
        assert_eq!(stale_code_crash(""), None);
    }

    #[test]
    fn console_excerpt_starts_at_the_oops() {
        let dir = std::env::temp_dir().join(format!("brisk-excerpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("console.log");
        let mut text: String = (0..100).map(|i| format!("[ {i}] boot line\n")).collect();
        text.push_str(STALE_INT3);
        fs::write(&log, &text).unwrap();
        let lines = console_excerpt(&log, 3).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("Oops: int3: 0000 [#1] SMP NOPTI"));
        fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(console_excerpt(&log, 2).unwrap(), ["c", "d"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_splitting() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"ab"), Vec::<String>::new());
        assert_eq!(s.push(b"c\r\nde\nf"), ["abc", "de"]);
        assert_eq!(s.finish().as_deref(), Some("f"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn qemu_never_uses_kvm() {
        let vm = Vm {
            vmlinuz: "/k".into(),
            initramfs: "/i".into(),
            cpus: 2,
            mem_mb: 2048,
            timeout_s: 10,
            console_log: "/c.log".into(),
            result_log: "/r.log".into(),
            kernel_args: String::new(),
            icount: false,
            topology: None,
        };
        let args = qemu_args(&vm).join(" ");
        assert!(args.contains("-accel tcg"));
        assert!(!args.contains("kvm"));
        assert!(args.contains("-smp 2 -m 2048M"));
        assert!(args.contains("-serial file:/c.log -serial file:/r.log"));
        assert!(args.contains("-append console=ttyS0 panic=-1 quiet loglevel=4 -display"));
        let vm = Vm {
            kernel_args: " mitigations=off ".into(),
            ..vm
        };
        let args = qemu_args(&vm);
        let i = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(
            args[i + 1],
            "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off"
        );
        let vm = Vm { icount: true, ..vm };
        let args = qemu_args(&vm).join(" ");
        assert!(args.contains("-accel tcg,thread=single -icount shift=1,sleep=off -cpu max"));
        assert!(args.contains("loglevel=4 brisk_timing=icount mitigations=off"));
        // A topology: its shape in -smp, a node per socket, and the marker
        // the guest checks the shape against.
        let t: Topology = "2x2x2".parse().unwrap();
        let vm = Vm {
            topology: Some((t, true)),
            mem_mb: 2049,
            icount: false,
            ..vm
        };
        let args = qemu_args(&vm).join(" ");
        assert!(args.contains("-cpu max -smp 8,sockets=2,cores=2,threads=2"));
        assert!(args.contains("-object memory-backend-ram,id=mem0,size=1024M -numa node,nodeid=0,cpus=0-3,memdev=mem0"));
        assert!(args.contains("-numa node,nodeid=1,cpus=4-7,memdev=mem1 -m 2048M"));
        assert!(args.contains("brisk_topology=2x2x2,numa mitigations=off"));
        // Dies: in -smp, an Intel CPU (its cache leaf gives each die an L3), a node per socket.
        let d = Vm {
            topology: Some(("2x2x2x1".parse().unwrap(), true)),
            ..vm.clone()
        };
        let args = qemu_args(&d).join(" ");
        assert!(args.contains(
            "-cpu max,vendor=GenuineIntel,level=0xd -smp 8,sockets=2,dies=2,cores=2,threads=1"
        ));
        assert!(args.contains("-numa node,nodeid=1,cpus=4-7,memdev=mem1"));
        assert!(args.contains("brisk_topology=2x2x2x1,numa"));
        let vm = Vm {
            topology: Some(("2x4".parse().unwrap(), false)),
            ..vm
        };
        let args = qemu_args(&vm).join(" ");
        assert!(args.contains("-cpu max -smp 8,sockets=2,cores=4,threads=1 -m 2049M"));
        assert!(!args.contains("-numa"));
    }

    #[test]
    fn topology_parsing() {
        let t: Topology = "2x4".parse().unwrap();
        assert_eq!((t.sockets, t.cores, t.threads, t.cpus()), (2, 4, 1, 8));
        assert_eq!("4x4x2".parse::<Topology>().unwrap().cpus(), 32);
        // With dies: two LLCs per socket.
        let d: Topology = "2x2x2x1".parse().unwrap();
        assert_eq!(
            (d.sockets, d.dies, d.cores, d.threads, d.cpus()),
            (2, 2, 2, 1, 8)
        );
        assert_eq!(d.to_string(), "2x2x2x1");
        assert_eq!("2x2x2".parse::<Topology>().unwrap().to_string(), "2x2x2");
        for bad in [
            "",
            "8",
            "2x",
            "x4",
            "2x0",
            "0x4",
            "2x2x3",
            "2x2x2x3",
            "2x0x2x1",
            "2x2x2x2x1",
            "axb",
            "16x16x2",
        ] {
            assert!(bad.parse::<Topology>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_boot_is_silent_only_when_nothing_came_for_long() {
        let dir = std::env::temp_dir().join(format!("brisk-silent-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (console, result) = (dir.join("console.log"), dir.join("result.log"));
        fs::write(&console, b"").unwrap();
        fs::write(&result, b"").unwrap();
        let logs = [console.as_path(), result.as_path()];
        let late = Duration::from_secs(SILENT_BOOT_S);
        assert!(silent_for(late, late, &logs));
        assert!(!silent_for(late - Duration::from_secs(1), late, &logs));
        fs::write(&console, b"brisk-init: running\n").unwrap();
        assert!(!silent_for(late * 2, late, &logs));
        fs::remove_dir_all(&dir).unwrap();
    }
}
