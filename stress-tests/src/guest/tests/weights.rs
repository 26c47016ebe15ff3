//! Guest test `weights`.

use std::time::Duration;

use anyhow::{ensure, Result};

use crate::guest::sys::{self, Brisk, Procs};

/// 4. A nice-0 and a nice-5 hog pinned to one CPU split it by the kernel's weights (1024:335).
pub(super) fn weights() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let nice0 = Procs::hogs(1, &["--cpu", "0"])?;
    let nice5 = Procs::hogs(1, &["--cpu", "0", "--nice", "5"])?;
    std::thread::sleep(Duration::from_secs(1));
    let (a0, b0) = (nice0.runtimes()?[0], nice5.runtimes()?[0]);
    std::thread::sleep(Duration::from_secs(10));
    let (a1, b1) = (nice0.runtimes()?[0], nice5.runtimes()?[0]);
    drop((nice0, nice5));
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    let (ra, rb) = (a1 - a0, b1 - b0);
    ensure!(
        rb > 0,
        "the nice-5 hog got no CPU (nice 0: {} ms)",
        ra / 1_000_000
    );
    let ratio = ra as f64 / rb as f64;
    let want = 1024.0 / 335.0;
    let err = (ratio / want - 1.0).abs();
    ensure!(
        err <= 0.20,
        "ratio {ratio:.2}, want {want:.2} +-20% (off by {:.0}%)",
        err * 100.0
    );
    Ok(format!(
        "nice0 {} ms : nice5 {} ms = {ratio:.2} (kernel weights {want:.2}, off by {:.0}%)",
        ra / 1_000_000,
        rb / 1_000_000,
        err * 100.0
    ))
}
