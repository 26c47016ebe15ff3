//! Guest test `no-stall`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk, Procs};

/// 2. 30 s of stress-ng (cpu, switch, fork) plus hackbench, then pipe ping-pong and
///    message/worker pairs: still attached, every path used.
pub(super) fn no_stall() -> Result<String> {
    let n = (2 * sys::nr_cpus()).to_string();
    let (mut b, _) = Brisk::start(&[])?;
    let seq = sys::scx_enable_seq();
    let mut cmd = Command::new("stress-ng");
    cmd.args([
        "--cpu",
        &n,
        "--switch",
        &n,
        "--fork",
        &n,
        "--timeout",
        "30s",
        "--quiet",
    ]);
    let mut stress = Procs::spawn(cmd)?;
    let mut hackbench_runs = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(28) {
        let st = Command::new("hackbench")
            .args(["-g", "4", "-l", "100"])
            .stdout(Stdio::null())
            .status()
            .context("running hackbench")?;
        ensure!(st.success(), "hackbench failed: {st}");
        hackbench_runs += 1;
        ensure!(
            sys::brisk_attached(),
            "scx_brisk detached after {:?}",
            start.elapsed()
        );
    }
    let st = sys::wait_exit(&mut stress.0[0], Duration::from_secs(60));
    ensure!(st == Some(0), "stress-ng exit: {st:?}");
    // Pipe ping-pong on the quiet machine: the synchronous hand-off path (under the load
    // above the queues are rarely empty, so it is seldom taken there).
    let pipe = sys::workload("pipe", &["--duration-s", "2"])?
        .stdout(Stdio::null())
        .status()
        .context("running the pipe workload")?;
    ensure!(pipe.success(), "pipe workload failed: {pipe}");
    // Then message/worker pairs at half load: a futex wakeup by a short thread (request or
    // reply) that finds the other CPU busy takes the futex hand-off to the waker's CPU.
    let pairs = sys::workload("wakeup", &["--duration-s", "2", "--load-pct", "50"])?
        .stdout(Stdio::null())
        .status()
        .context("running the wakeup workload")?;
    ensure!(pairs.success(), "wakeup workload failed: {pairs}");
    ensure!(
        sys::brisk_attached(),
        "scx_brisk is no longer attached (state {})",
        sys::scx_state()
    );
    ensure!(
        sys::scx_enable_seq() == seq,
        "the scheduler was re-enabled during the run"
    );
    b.stop_cleanly()?;
    let counters = b.exit_counters();
    ensure!(
        !counters.is_empty(),
        "no counters in the output:\n{}",
        b.output()
    );
    let get = |k: &str| {
        counters
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    for path in [
        "nr_direct_idle",
        "nr_queued_shared",
        "nr_queued_pinned",
        "nr_idle_kicks",
        "nr_short_wakeups",
        "nr_preempts",
        "nr_dispatched",
        "nr_sync_handoff",
        "nr_wake_handoff",
        "nr_wake_affine",
    ] {
        ensure!(
            get(path) > 0,
            "{path} = 0: that path was never taken; counters: {counters:?}"
        );
    }
    let list: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "attached throughout, {hackbench_runs} hackbench runs, then 2 s of pipe ping-pong and \
         2 s of wakeup pairs; {}",
        list.join(" ")
    ))
}
