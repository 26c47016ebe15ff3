//! Guest test `weights`.

use anyhow::{ensure, Context, Result};

use super::helpers::split_10s;
use crate::guest::sys::{self, Brisk, Procs};

/// 4. A nice-0 and a nice-5 hog pinned to one CPU split it by the kernel's weights (1024:335).
///
/// They still do when the nice-5 hog passes through the real-time class every 2 ms (as a lock
/// holder boosted by priority inheritance does): it comes back with the vruntime and burst
/// history it left with. Placed at the clock as a new task instead, it took 99 % of the CPU.
pub(super) fn weights() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let plain = pinned_split(&[])?;
    let bounced = pinned_split(&["--bounce-rt-ms", "2"])
        .with_context(|| format!("{plain}; the nice-5 hog through the RT class every 2 ms"));
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    Ok(format!(
        "{plain}; through the RT class every 2 ms: {}",
        bounced?
    ))
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
