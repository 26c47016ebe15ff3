//! Helpers shared by the guest tests: stats lines, timer wakeups, running scx_brisk
//! commands and reading its control socket.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk};
use crate::guest::workloads;

/// The median of `v` (the upper one of an even count), sorting it in place. Panics if empty.
pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The JSON stats lines scx_brisk has printed so far (a line still being written is skipped).
pub(super) fn stats_lines(b: &Brisk) -> Vec<serde_json::Value> {
    b.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The CPU time two competitors got over 10 s, after a 1 s warm-up: `cpu_ns` reads both
/// (cumulative ns). Fails when the second got none, naming the first's.
pub(super) fn split_10s(
    what: [&str; 2],
    cpu_ns: impl Fn() -> Result<(u64, u64)>,
) -> Result<(u64, u64)> {
    std::thread::sleep(Duration::from_secs(1));
    let (a0, b0) = cpu_ns()?;
    std::thread::sleep(Duration::from_secs(10));
    let (a1, b1) = cpu_ns()?;
    let (a, b) = (a1 - a0, b1 - b0);
    ensure!(
        b > 0,
        "{} got no CPU ({}: {} ms)",
        what[1],
        what[0],
        a / 1_000_000
    );
    Ok((a, b))
}

/// Runs `count` timer wakeups 2 ms apart in a thread of this process, as SCHED_FIFO if `fifo`.
pub(super) fn timer_wakeups(count: usize, fifo: bool) -> Result<()> {
    std::thread::spawn(move || -> Result<()> {
        if fifo {
            workloads::set_fifo()?;
        }
        workloads::periodic(Duration::from_millis(2), Duration::ZERO, count);
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the wakeup thread panicked"))?
}

/// `brisk-guest workload periodic` for `duration_s` seconds: 1 ms of work every 10 ms.
pub(super) fn periodic_workload(duration_s: u32) -> Result<Command> {
    sys::workload(
        "periodic",
        &[
            "--period-ms",
            "10",
            "--work-ms",
            "1",
            "--duration-s",
            &duration_s.to_string(),
        ],
    )
}

/// Runs `scx_brisk ARGS` to completion (as `uid` if given): (exit ok, stdout + stderr).
pub(super) fn brisk_cmd(args: &[&str], uid: Option<u32>) -> Result<(bool, String)> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(sys::SCX_BRISK);
    cmd.args(args).stdin(Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().context("running scx_brisk")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    ))
}

pub(super) fn ctl_show() -> Result<serde_json::Value> {
    let (ok, out) = brisk_cmd(&["ctl", "show", "--json"], None)?;
    ensure!(ok, "ctl show failed: {out}");
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("ctl show output: {out}"))?;
    Ok(v["values"].clone())
}

pub(super) fn shown(values: &serde_json::Value, key: &str) -> (String, String) {
    (
        values[key]["value"].as_str().unwrap_or("?").to_string(),
        values[key]["source"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| values[key]["source"].to_string()),
    )
}

pub(super) fn raw_exchange(path: &str, bytes: &[u8], close: bool) -> Result<String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connecting to {path}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The server stops reading at its size limit, so a long write may fail; the answer counts.
    let _ = s.write_all(bytes);
    if close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .context("reading the answer")?;
    Ok(line)
}

/// `brisk-guest sock-send PATH LINE`: one line to a UNIX socket, the answer line back.
pub fn sock_send(path: &str, line: &str) -> Result<String> {
    raw_exchange(path, format!("{line}\n").as_bytes(), false)
}
