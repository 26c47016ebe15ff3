//! Guest test `fairness`.

use std::time::Duration;

use anyhow::{ensure, Result};

use super::helpers::split_10s;
use crate::guest::sys::{self, Brisk, Procs};

/// 3. Two equal hogs per CPU (at least four) for 10 s get CPU shares within 10% of each other.
///
/// Two per CPU so that they contend on a guest of any size: on 16 CPUs, four hogs would each
/// have a CPU to itself and show only that nothing starves. Then a hog and a chain of short
/// processes (one at a time, as a build's short jobs; 2 ms each, then 5 ms) pinned to one CPU
/// split it with neither getting more than 1.25x the other's: a new task does not start ahead
/// of the tasks it joins (the chain took 1.5x the hog's), nor a round behind them.
pub(super) fn fairness() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let hogs = Procs::hogs((2 * sys::nr_cpus()).max(4), &[])?;
    let run = measure_runtimes(&hogs, 10)?;
    drop(hogs);
    let chain = [2, 5]
        .into_iter()
        .map(chain_split)
        .collect::<Result<Vec<_>>>()
        .map(|v| v.join("; "));
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    let chain = chain?;
    let (min, max) = (*run.iter().min().unwrap(), *run.iter().max().unwrap());
    ensure!(min > 0, "a hog got no CPU: {run:?}");
    let spread = max as f64 / min as f64;
    let ms: Vec<u64> = run.iter().map(|r| r / 1_000_000).collect();
    ensure!(
        spread <= 1.10,
        "max/min share {spread:.3} > 1.10; runtimes ms {ms:?}"
    );
    Ok(format!(
        "runtimes {ms:?} ms, max/min {spread:.3} (<= 1.10); {chain}"
    ))
}

/// A hog and a chain of `ms` ms processes on CPU 0 for 10 s: their CPU times' ratio, neither
/// above 1.25x the other's.
fn chain_split(ms: u64) -> Result<String> {
    let hog = Procs::hogs(1, &["--cpu", "0"])?;
    let chain = Procs::hogs(1, &["--cpu", "0", "--fork-chain-ms", &ms.to_string()])?;
    let parent = chain.0[0].id();
    let split = split_10s(["the hog", "the chain"], || {
        Ok((
            hog.runtimes()?[0],
            sys::runtime_ns(parent)? + sys::children_cpu_ns(parent)?,
        ))
    });
    drop((hog, chain));
    let (h, c) = split?;
    let ratio = h as f64 / c as f64;
    let figure = format!(
        "a hog : a chain of {ms} ms processes on one CPU = {} ms : {} ms = {ratio:.2}",
        h / 1_000_000,
        c / 1_000_000
    );
    let spread = ratio.max(1.0 / ratio);
    ensure!(
        spread <= 1.25,
        "{figure}: one got {spread:.2}x the other's, want <= 1.25x"
    );
    Ok(figure)
}

/// Runtime each process got over `secs`, after a 1 s warm-up.
fn measure_runtimes(procs: &Procs, secs: u64) -> Result<Vec<u64>> {
    std::thread::sleep(Duration::from_secs(1));
    let r0 = procs.runtimes()?;
    std::thread::sleep(Duration::from_secs(secs));
    let r1 = procs.runtimes()?;
    Ok(r1.iter().zip(r0).map(|(a, b)| a - b).collect())
}
