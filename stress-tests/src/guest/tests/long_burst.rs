//! Guest test `long-burst`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use crate::guest::bench::scenarios::hackbench_loop;
use crate::guest::sys::{self, Brisk, Procs};
use crate::guest::workloads;

/// 16. A latency-critical task's occasional long burst (a long frame, or a burst an
///     interruption stretched past the latency slice) runs to its end without waiting behind
///     a crowd of sleepers. The mixed load (a hog per CPU, request pairs at 50 % load, a
///     hackbench loop) beside a periodic task that works 1 ms every 10 ms and every 10th
///     time 8 ms, past the 5 ms latency slice; its runnable wait from its wakeup to its next
///     sleep (schedstat), for the long bursts, stays under 5 periods at its maximum.
///
///     Sent to the fair queue after its first slice, such a burst queued behind the 80
///     message passers, each woken up to the sleep credit ahead of it: 100-630 ms
///     (docs/bench/findings.md).
pub(super) fn long_burst() -> Result<String> {
    const PERIODS: usize = 1500;
    const LONG_EVERY: usize = 10;
    const MAX_WAIT: Duration = Duration::from_millis(50);
    let period = Duration::from_millis(10);
    let secs = (PERIODS as f64 * period.as_secs_f64()).ceil() + 1.0;
    let (mut b, _) = Brisk::start(&[])?;
    let _hogs = Procs::hogs(sys::nr_cpus(), &[])?;
    let mut pairs = sys::workload(
        "wakeup",
        &["--load-pct", "50", "--duration-s", &secs.to_string()],
    )?;
    pairs.stdout(Stdio::null());
    let _pairs = Procs::spawn(pairs)?;
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + period * PERIODS as u32;
    let hackbench =
        std::thread::spawn(move || hackbench_loop(&["-g", "2", "-l", "50"], deadline, 1));
    let p = workloads::periodic_with(
        period,
        Duration::from_millis(1),
        PERIODS,
        Some((LONG_EVERY, Duration::from_millis(8))),
    );
    let runs = hackbench
        .join()
        .map_err(|_| anyhow::anyhow!("hackbench thread panicked"))??;
    ensure!(sys::brisk_attached(), "scx_brisk detached during the run");
    b.stop_cleanly()?;
    ensure!(
        !p.work_wait_ns.is_empty(),
        "the kernel accounts no run_delay (/proc/thread-self/schedstat)"
    );
    let (mut long, mut short): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for (i, w) in p.work_wait_ns.iter().enumerate() {
        if i % LONG_EVERY == LONG_EVERY - 1 {
            long.push(*w);
        } else {
            short.push(*w);
        }
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let max = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
    let over = long
        .iter()
        .filter(|w| **w > MAX_WAIT.as_nanos() as u64)
        .count();
    let fig = format!(
        "wait within a burst, long (8 ms) bursts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (< {} ms), {over} of {} over; short (1 ms): p99 {:.1} ms, max {:.1} ms; lateness \
         p99 {:.1} ms, {} periods missed; {} hackbench runs; scx_brisk: nr_lat_demoted {}",
        ms(workloads::quantile(&long, 0.5)),
        ms(workloads::quantile(&long, 0.99)),
        ms(max(&long)),
        MAX_WAIT.as_millis(),
        long.len(),
        ms(workloads::quantile(&short, 0.99)),
        ms(max(&short)),
        ms(workloads::quantile(&p.lateness_ns, 0.99)),
        p.missed,
        runs.times.len(),
        b.exit_counter("nr_lat_demoted").unwrap_or(0),
    );
    ensure!(max(&long) < MAX_WAIT.as_nanos() as u64, "{fig}");
    Ok(fig)
}
