//! Small wrappers over the guest's /proc, /sys and process control.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

pub const SCX_BRISK: &str = "/bin/scx_brisk";
const SCHED_EXT: &str = "/sys/kernel/sched_ext";

pub fn read_trim(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// sched_ext state: "disabled", "enabled", ...
pub fn scx_state() -> String {
    read_trim(Path::new(SCHED_EXT).join("state"))
}

/// Name of the attached sched_ext scheduler ("" when none).
pub fn scx_ops() -> String {
    read_trim(Path::new(SCHED_EXT).join("root/ops"))
}

/// How many times a sched_ext scheduler has been enabled since boot.
pub fn scx_enable_seq() -> u64 {
    read_trim(Path::new(SCHED_EXT).join("enable_seq"))
        .parse()
        .unwrap_or(0)
}

pub fn brisk_attached() -> bool {
    scx_state() == "enabled" && scx_ops().starts_with("brisk")
}

pub fn nr_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns the time it took.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CPU time a process has run, in ns (first field of /proc/PID/schedstat).
pub fn runtime_ns(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .with_context(|| format!("reading /proc/{pid}/schedstat"))?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("malformed schedstat")
}

/// Field `n` of /proc/PID/stat, counted from 1 as proc(5) does (3, the state, is the first
/// after the command, which may hold spaces and parentheses).
pub fn proc_stat_field(pid: u32, n: usize) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = text.rsplit_once(") ").context("malformed stat")?.1;
    rest.split_whitespace()
        .nth(n.checked_sub(3).context("fields 1 and 2 are not numbers")?)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no field {n} in /proc/{pid}/stat: {text}"))
}

/// CPU time of a process's reaped children (cutime + cstime, fields 16 and 17 of
/// /proc/PID/stat), in ns, to the clock tick.
pub fn children_cpu_ns(pid: u32) -> Result<u64> {
    let ticks = proc_stat_field(pid, 16)? + proc_stat_field(pid, 17)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(ticks * 1_000_000_000 / hz)
}

pub fn signal(child: &Child, sig: i32) {
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Waits for `child` to exit for at most `timeout`; returns its exit code (signal: 128+sig).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What scx_brisk warns at exit when a count kept in BPF is not back at zero after detach
/// (`Scheduler::check_load_accounting`).
pub const DRIFT_WARNING: &str = "accounting drifted";

/// A running scx_brisk, its standard output (the JSON stats) and standard error (the log)
/// captured to two files.
pub struct Brisk {
    pub child: Child,
    pub log: PathBuf,
    pub err_log: PathBuf,
}

/// How long a test waits for scx_brisk to attach. Under TCG, loading (libbpf, the verifier's
/// 85k instructions) takes about 5 s on an idle guest on a slow host, and the loader gets only
/// its share of CPUs that hogs keep busy: 15 to over 20 s beside 2 hogs per CPU. The bench
/// gives its candidates as long: scx_lavd 1.1.4 took over 20 s in 4 of 30 runs of one bench.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

impl Brisk {
    /// Starts scx_brisk with `args`; with `echo` its output also goes to our stdout.
    pub fn spawn(args: &[String], echo: bool) -> Result<Self> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = PathBuf::from(format!("/tmp/scx_brisk.{n}.out"));
        let err_log = PathBuf::from(format!("/tmp/scx_brisk.{n}.err"));
        let child = if echo {
            Command::new(SCX_BRISK).args(args).spawn()
        } else {
            Command::new(SCX_BRISK)
                .args(args)
                .stdout(fs::File::create(&log)?)
                .stderr(fs::File::create(&err_log)?)
                .stdin(Stdio::null())
                .spawn()
        }
        .context("starting /bin/scx_brisk")?;
        Ok(Self {
            child,
            log,
            err_log,
        })
    }

    /// Starts scx_brisk and waits until the kernel reports it enabled.
    ///
    /// Also waits for `enable_seq` to advance: the kernel bumps it a moment after the state
    /// file says enabled, and a caller that reads it right after attach must see the new value
    /// (a stale read later looks like a re-enable).
    pub fn start(args: &[String]) -> Result<(Self, Duration)> {
        let seq0 = scx_enable_seq();
        let mut b = Self::spawn(args, false)?;
        match wait_for(ATTACH_TIMEOUT, || {
            brisk_attached() && scx_enable_seq() > seq0
        }) {
            Some(t) => Ok((b, t)),
            None => {
                signal(&b.child, libc::SIGKILL);
                let _ = b.child.wait();
                bail!(
                    "scx_brisk did not attach within {} s (state {}); its output:\n{}",
                    ATTACH_TIMEOUT.as_secs(),
                    scx_state(),
                    b.output()
                )
            }
        }
    }

    /// Everything it printed: standard output, then standard error.
    pub fn output(&self) -> String {
        self.stdout() + &fs::read_to_string(&self.err_log).unwrap_or_default()
    }

    /// Its standard output alone: with --stats-json, one JSON object per line and nothing else.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT, then the exit code (None: did not exit within 15 s, killed).
    pub fn stop(&mut self) -> Option<i32> {
        signal(&self.child, libc::SIGINT);
        let code = wait_exit(&mut self.child, Duration::from_secs(15));
        if code.is_none() {
            signal(&self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
        code
    }

    /// SIGINT, then checks how it left: exit 0, and its accounting back at zero once every
    /// task has left (each queue's waiting count, the hint the hand-off paths read, and each
    /// LLC's load; scx_brisk warns [`DRIFT_WARNING`] otherwise).
    pub fn stop_cleanly(&mut self) -> Result<()> {
        let code = self.stop();
        ensure!(
            code == Some(0),
            "scx_brisk exit {code:?}; output:\n{}",
            self.output()
        );
        ensure!(
            !self.output().contains(DRIFT_WARNING),
            "scx_brisk's accounting was not back at zero after detach:\n{}",
            self.output()
        );
        Ok(())
    }

    /// The counters each instance printed at exit (`counters: nr_x=1 nr_y=2 ...`), oldest
    /// first: a reload after CPU hotplug starts a new instance with fresh counters.
    fn counters_per_instance(&self) -> Vec<Vec<(String, u64)>> {
        self.output()
            .lines()
            .filter_map(|l| l.split_once("counters: "))
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                    .collect()
            })
            .collect()
    }

    /// The counters scx_brisk printed at exit (the last instance's).
    pub fn exit_counters(&self) -> Vec<(String, u64)> {
        self.counters_per_instance().pop().unwrap_or_default()
    }

    /// One counter summed over every instance that printed it at exit, and how many did.
    pub fn counter_over_instances(&self, name: &str) -> (u64, usize) {
        let values: Vec<u64> = self
            .counters_per_instance()
            .into_iter()
            .filter_map(|c| c.into_iter().find_map(|(k, v)| (k == name).then_some(v)))
            .collect();
        (values.iter().sum(), values.len())
    }

    /// One counter of those printed at exit; `None` if it was not printed.
    pub fn exit_counter(&self, name: &str) -> Option<u64> {
        self.exit_counters()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }
}

impl Drop for Brisk {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(&self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// `brisk-guest workload KIND ARGS`: one of this binary's workloads, as a command to start.
pub fn workload(kind: &str, args: &[&str]) -> Result<Command> {
    let exe = std::env::current_exe().context("locating brisk-guest")?;
    let mut cmd = Command::new(exe);
    cmd.args(["workload", kind]).args(args);
    Ok(cmd)
}

/// Child processes, each in its own process group, killed with their descendants when dropped
/// (so a failed test never leaves load running into the next one).
pub struct Procs(pub Vec<Child>);

impl Procs {
    /// Starts `cmd` in a new process group.
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        Ok(Self(vec![child]))
    }

    /// Starts `n` copies of this binary's `hog` subcommand with `args`.
    pub fn hogs(n: usize, args: &[&str]) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut v = Vec::new();
        for _ in 0..n {
            let mut cmd = Command::new(&exe);
            cmd.arg("hog").args(args);
            v.append(&mut Self::spawn(cmd)?.0);
        }
        Ok(Self(v))
    }

    pub fn runtimes(&self) -> Result<Vec<u64>> {
        self.0.iter().map(|c| runtime_ns(c.id())).collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

/// A CPU list as sysfs writes it ("0-3,8,10-11") as CPU numbers.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

/// The guest's CPU topology as sysfs shows it (what scx_utils::Topology reads too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub cpus: usize,
    /// The online CPUs of each LLC (distinct L3 sharing lists; one LLC if there is no L3).
    pub llcs: Vec<Vec<usize>>,
    /// Hardware threads per core (the largest sibling list).
    pub threads: usize,
    /// NUMA nodes with CPUs.
    pub nodes: Vec<Vec<usize>>,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs, {} LLCs, {} thread(s) per core, {} NUMA node(s)",
            self.cpus,
            self.llcs.len(),
            self.threads,
            self.nodes.len()
        )
    }
}

/// Reads the online CPUs' topology from sysfs.
pub fn shape() -> Shape {
    let online = parse_cpu_list(&read_trim("/sys/devices/system/cpu/online"));
    let cpu = |c: usize, f: &str| read_trim(format!("/sys/devices/system/cpu/cpu{c}/{f}"));
    let mut llcs: Vec<Vec<usize>> = Vec::new();
    let mut threads = 1;
    for &c in &online {
        let mut l3: Vec<usize> = parse_cpu_list(&cpu(c, "cache/index3/shared_cpu_list"));
        l3.retain(|x| online.contains(x));
        if l3.is_empty() {
            l3 = online.clone();
        }
        if !llcs.contains(&l3) {
            llcs.push(l3);
        }
        threads = threads.max(parse_cpu_list(&cpu(c, "topology/thread_siblings_list")).len());
    }
    let mut nodes = Vec::new();
    for n in 0..64 {
        let dir = format!("/sys/devices/system/node/node{n}");
        if !Path::new(&dir).exists() {
            continue;
        }
        let cpus = parse_cpu_list(&read_trim(format!("{dir}/cpulist")));
        if !cpus.is_empty() {
            nodes.push(cpus);
        }
    }
    if nodes.is_empty() {
        nodes.push(online.clone());
    }
    Shape {
        cpus: online.len(),
        llcs,
        threads,
        nodes,
    }
}

/// The topology the harness asked for (`brisk_topology=SxCxT[,numa]` or `SxDxCxT[,numa]` on
/// the kernel command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub sockets: usize,
    /// LLCs per socket.
    pub dies: usize,
    pub cores: usize,
    pub threads: usize,
    /// One NUMA node per socket.
    pub numa: bool,
}

pub fn asked_topology() -> Option<Asked> {
    parse_asked(&read_trim("/proc/cmdline"))
}

fn parse_asked(cmdline: &str) -> Option<Asked> {
    let spec = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("brisk_topology="))?;
    let (shape, numa) = match spec.split_once(',') {
        Some((s, flag)) => (s, flag == "numa"),
        None => (spec, false),
    };
    let n: Vec<usize> = shape.split('x').filter_map(|p| p.parse().ok()).collect();
    let (sockets, dies, cores, threads) = match n[..] {
        [s, c, t] => (s, 1, c, t),
        [s, d, c, t] => (s, d, c, t),
        _ => return None,
    };
    Some(Asked {
        sockets,
        dies,
        cores,
        threads,
        numa,
    })
}

/// Checks that the guest came out in the topology the harness asked for (if it asked): CPU
/// count, one LLC per die, SMT siblings, one NUMA node per socket with `numa`. A guest of
/// another shape would test something else than it claims, so this is an error.
pub fn check_topology() -> Result<Option<Shape>> {
    let Some(a) = asked_topology() else {
        return Ok(None);
    };
    let got = shape();
    let want_nodes = if a.numa { a.sockets } else { 1 };
    let (cpus, llcs) = (a.sockets * a.dies * a.cores * a.threads, a.sockets * a.dies);
    if got.cpus != cpus
        || got.llcs.len() != llcs
        || got.threads != a.threads
        || got.nodes.len() != want_nodes
    {
        bail!(
            "the guest came out as {got} (LLCs {:?}, nodes {:?}), not the {}x{}x{}x{}{} \
             asked for: {cpus} CPUs, {llcs} LLCs, {} thread(s) per core, {want_nodes} node(s)",
            got.llcs,
            got.nodes,
            a.sockets,
            a.dies,
            a.cores,
            a.threads,
            if a.numa { " with NUMA" } else { "" },
            a.threads,
        );
    }
    Ok(Some(got))
}

/// Restricts thread `pid` (0: the calling thread) to `cpus`.
pub fn set_affinity(pid: u32, cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET, passed with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(pid as i32, std::mem::size_of_val(&set), &set);
    }
}

/// The nice levels the renice tests cycle a task through, every few ms: up, to the lowest
/// weight, below 0 and back, so each change both raises and lowers its weight.
pub const NICE_CYCLE: [i32; 5] = [0, 5, 19, -5, 10];

/// Sets the nice level of the (single-threaded) process `pid`.
pub fn set_nice(pid: u32, nice: i32) -> Result<()> {
    // SAFETY: setpriority(2) on a process id has no memory-safety preconditions.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, nice) } != 0 {
        bail!(
            "setpriority({pid}, {nice}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Idle and busy jiffies of each CPU (cpuN lines of /proc/stat).
pub fn cpu_times() -> Vec<(u64, u64)> {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (idle, v.iter().sum::<u64>() - idle)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_as_proc5_counts_them() {
        let me = std::process::id();
        // field 4 is the parent's pid, 1 and 2 (pid, command) are no numbers to read
        let ppid = unsafe { libc::getppid() } as u64;
        assert_eq!(proc_stat_field(me, 4).unwrap(), ppid);
        assert!(proc_stat_field(me, 2).is_err());
        assert!(proc_stat_field(me, 100).is_err());
        // field 39 is a CPU, 16-17 (children's times) are counted in clock ticks
        assert!(proc_stat_field(me, 39).unwrap() < 4096);
        assert!(children_cpu_ns(me).is_ok());
    }

    #[test]
    fn the_asked_topology_is_read_from_the_command_line() {
        let a = parse_asked("console=ttyS0 brisk_topology=2x2x2,numa quiet").unwrap();
        assert_eq!(
            (a.sockets, a.dies, a.cores, a.threads, a.numa),
            (2, 1, 2, 2, true)
        );
        let d = parse_asked("brisk_topology=2x2x2x1").unwrap();
        assert_eq!(
            (d.sockets, d.dies, d.cores, d.threads, d.numa),
            (2, 2, 2, 1, false)
        );
        assert_eq!(parse_asked("console=ttyS0 quiet"), None);
        assert_eq!(parse_asked("brisk_topology=2x4"), None);
    }
}
