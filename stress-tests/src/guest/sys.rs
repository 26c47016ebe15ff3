//! Small wrappers over the guest's /proc, /sys and process control.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

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

/// A running scx_brisk, its standard output (the JSON stats) and standard error (the log)
/// captured to two files.
pub struct Brisk {
    pub child: Child,
    pub log: PathBuf,
    pub err_log: PathBuf,
}

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
        match wait_for(Duration::from_secs(20), || {
            brisk_attached() && scx_enable_seq() > seq0
        }) {
            Some(t) => Ok((b, t)),
            None => {
                signal(&b.child, libc::SIGKILL);
                let _ = b.child.wait();
                bail!(
                    "scx_brisk did not attach within 20 s (state {}); its output:\n{}",
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

    /// The counters scx_brisk printed at exit (`counters: nr_x=1 nr_y=2 ...`).
    pub fn exit_counters(&self) -> Vec<(String, u64)> {
        let out = self.output();
        let Some(line) = out.lines().rev().find(|l| l.contains("counters: ")) else {
            return Vec::new();
        };
        let rest = &line[line.find("counters: ").unwrap() + "counters: ".len()..];
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
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
