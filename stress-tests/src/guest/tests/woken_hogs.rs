//! Guest test `woken-hogs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk};
use crate::guest::workloads;

/// 22. Tasks that wake as latency-critical tasks woken by another task (short bursts, a low
///     duty cycle, woken through a futex: request workers) and then turn into hogs that never
///     sleep again do not keep counting against the latency lane's share. Two such tasks per
///     CPU beside a periodic task (10 ms period, 1 ms of work): its lateness p99 stays under 5
///     periods (the figure also prints the lane's deferrals and the starvation rescues).
///
///     Counted as lane time for as long as they ran, they held the lane over its share for
///     good: the periodic task's wakeups waited for a fair queue that never empties, until the
///     starvation guard ran them (lateness p50 512 ms, docs/bench/findings.md).
pub(super) fn woken_hogs() -> Result<String> {
    const WAKEUPS: usize = 30;
    const PERIODS: usize = 300;
    let period = Duration::from_millis(10);
    let max_p99 = period * 5;
    let (mut b, _) = Brisk::start(&[])?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..2 * sys::nr_cpus() {
        let (tx, rx) = mpsc::channel::<()>();
        let stop = Arc::clone(&stop);
        senders.push(tx);
        threads.push(std::thread::spawn(move || {
            // Latency-critical wakeups first (0.2 ms bursts every 2 ms), then a hog.
            for _ in 0..WAKEUPS {
                if rx.recv().is_err() {
                    return;
                }
                workloads::burn_cpu(200_000);
            }
            while !stop.load(Ordering::Relaxed) {
                workloads::burn_cpu(1_000_000);
            }
        }));
    }
    for _ in 0..WAKEUPS {
        std::thread::sleep(Duration::from_millis(2));
        for tx in &senders {
            tx.send(()).context("a woken hog exited early")?;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let p = workloads::periodic(period, Duration::from_millis(1), PERIODS);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a woken hog panicked"))?;
    }
    ensure!(sys::brisk_attached(), "scx_brisk detached during the run");
    b.stop_cleanly()?;
    let counter = |name: &str| b.exit_counter(name).unwrap_or(0);
    let p99 = workloads::quantile(&p.lateness_ns, 0.99);
    let fig = format!(
        "periodic lateness p50 {:.1} ms, p99 {:.1} ms (< {} ms), {} periods missed; \
         scx_brisk: nr_lat_fair {}, nr_lat_deferred {}, nr_starve_rescues {}",
        workloads::quantile(&p.lateness_ns, 0.5) as f64 / 1e6,
        p99 as f64 / 1e6,
        max_p99.as_millis(),
        p.missed,
        counter("nr_lat_fair"),
        counter("nr_lat_deferred"),
        counter("nr_starve_rescues"),
    );
    ensure!(p99 < max_p99.as_nanos() as u64, "{fig}");
    Ok(fig)
}
