//! Guest test `weights`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::helpers::split_10s;
use crate::guest::sys::{self, Brisk, Procs};

/// 4. A nice-0 and a nice-5 hog pinned to one CPU split it by the kernel's weights (1024:335).
///
/// They still do when the nice-5 hog passes through the real-time class every 2 ms (as a lock
/// holder boosted by priority inheritance does): it comes back with the vruntime and burst
/// history it left with. Placed at the clock as a new task instead, it took 99 % of the CPU.
///
/// A hog whose nice level another task changes every 5 ms gets about the share the kernel's
/// own scheduler gives it beside a nice-0 hog, measured first in the same boot: what it ran at
/// one weight is not charged again at the next (brisk_reweight_vruntime), and a task put back
/// after a change does not move its LLC's clock. Before those, it got 0.04-0.05 of the nice-0
/// hog's time against the kernel's 0.475. The bound is one-sided in effect: at least 0.75x of
/// the kernel's ratio, at most 1.5x, since scx_brisk rescales from its LLC's clock, not EEVDF's
/// weighted average, and gives the reniced hog more (1.18-1.30x in four runs; docs/design.md).
pub(super) fn weights() -> Result<String> {
    let kernel = renice_split().context("under the kernel's scheduler")?;
    let (mut b, _) = Brisk::start(&[])?;
    let plain = pinned_split(&[])?;
    let bounced = pinned_split(&["--bounce-rt-ms", "2"])
        .with_context(|| format!("{plain}; the nice-5 hog through the RT class every 2 ms"));
    let reniced = renice_split();
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    let (bounced, reniced) = (bounced?, reniced?);
    let figure = format!(
        "{plain}; through the RT class every 2 ms: {bounced}; a hog reniced every 5 ms \
         {:?} : a nice-0 hog = {reniced:.3}, {kernel:.3} under the kernel's scheduler",
        sys::NICE_CYCLE
    );
    let rel = reniced / kernel;
    ensure!(
        (0.75..=1.5).contains(&rel),
        "{figure}: {rel:.2}x the kernel's; want 0.75x-1.5x"
    );
    Ok(figure)
}

/// Runs a nice-0 hog and a hog whose nice level this task cycles through `sys::NICE_CYCLE`
/// every 5 ms, both on CPU 0, for 10 s: the second's CPU time over the first's.
fn renice_split() -> Result<f64> {
    let steady = Procs::hogs(1, &["--cpu", "0"])?;
    let reniced = Procs::hogs(1, &["--cpu", "0"])?;
    let pid = reniced.0[0].id();
    let stop = AtomicBool::new(false);
    let split = std::thread::scope(|s| {
        s.spawn(|| {
            for nice in sys::NICE_CYCLE.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = sys::set_nice(pid, *nice);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let split = split_10s(["nice 0", "the reniced hog"], || {
            Ok((steady.runtimes()?[0], reniced.runtimes()?[0]))
        });
        stop.store(true, Ordering::Relaxed);
        split
    });
    drop((steady, reniced));
    let (ra, rb) = split?;
    Ok(rb as f64 / ra as f64)
}

/// Runs a nice-0 hog and a nice-5 hog (with `nice5_args`) on CPU 0 for 10 s and checks their
/// CPU times' ratio against the weights'.
fn pinned_split(nice5_args: &[&str]) -> Result<String> {
    let nice0 = Procs::hogs(1, &["--cpu", "0"])?;
    let nice5 = Procs::hogs(1, &[&["--cpu", "0", "--nice", "5"], nice5_args].concat())?;
    let split = split_10s(["nice 0", "the nice-5 hog"], || {
        Ok((nice0.runtimes()?[0], nice5.runtimes()?[0]))
    });
    drop((nice0, nice5));
    let (ra, rb) = split?;
    let ratio = ra as f64 / rb as f64;
    let want = 1024.0 / 335.0;
    let err = (ratio / want - 1.0).abs();
    let figure = format!(
        "nice0 {} ms : nice5 {} ms = {ratio:.2} (kernel weights {want:.2}, off by {:.0}%)",
        ra / 1_000_000,
        rb / 1_000_000,
        err * 100.0
    );
    ensure!(err <= 0.20, "{figure}, want +-20%");
    Ok(figure)
}
