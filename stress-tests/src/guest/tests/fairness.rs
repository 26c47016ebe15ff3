//! Guest test `fairness`.

use std::time::Duration;

use anyhow::{ensure, Result};

use crate::guest::sys::{self, Brisk, Procs};

/// 3. Two equal hogs per CPU (at least four) for 10 s get CPU shares within 10% of each other.
///
/// Two per CPU so that they contend on a guest of any size: on 16 CPUs, four hogs would each
/// have a CPU to itself and show only that nothing starves.
pub(super) fn fairness() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let hogs = Procs::hogs((2 * sys::nr_cpus()).max(4), &[])?;
    let run = measure_runtimes(&hogs, 10)?;
    drop(hogs);
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    let (min, max) = (*run.iter().min().unwrap(), *run.iter().max().unwrap());
    ensure!(min > 0, "a hog got no CPU: {run:?}");
    let spread = max as f64 / min as f64;
    let ms: Vec<u64> = run.iter().map(|r| r / 1_000_000).collect();
    ensure!(
        spread <= 1.10,
        "max/min share {spread:.3} > 1.10; runtimes ms {ms:?}"
    );
    Ok(format!("runtimes {ms:?} ms, max/min {spread:.3} (<= 1.10)"))
}

/// Runtime each process got over `secs`, after a 1 s warm-up.
fn measure_runtimes(procs: &Procs, secs: u64) -> Result<Vec<u64>> {
    std::thread::sleep(Duration::from_secs(1));
    let r0 = procs.runtimes()?;
    std::thread::sleep(Duration::from_secs(secs));
    let r1 = procs.runtimes()?;
    Ok(r1.iter().zip(r0).map(|(a, b)| a - b).collect())
}
