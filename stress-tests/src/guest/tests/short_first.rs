//! Guest test `short-first`.

use std::time::Duration;

use anyhow::{ensure, Result};

use super::helpers::median;
use crate::guest::sys::{self, Brisk, Procs};
use crate::guest::workloads;

/// 5. Short tasks are picked first: the periodic task's queue wait (time runnable before it
///    runs, the scheduler's part of its wakeup latency) has a p99 under scx_brisk at most half
///    the default scheduler's, and its whole wakeup lateness p99 is no worse; in the same boot,
///    rounds interleaved, judged by the median of the per-round ratios.
///
///    The lateness also holds the emulator's timer delivery, which no scheduler controls and
///    which varies from one host to the next: on the idle machine alone it has been 30-60% of
///    the default scheduler's loaded p99. So it gets the weaker bound, and the queue wait
///    carries the claim.
pub(super) fn short_first() -> Result<String> {
    const ROUNDS: usize = 5;
    const SAMPLES: usize = 400;
    const MAX_WAIT_RATIO: f64 = 0.5;
    const MAX_LATENESS_RATIO: f64 = 1.0;
    let (mut dfl, mut brisk) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    let (mut wait_ratios, mut late_ratios) = (Vec::new(), Vec::new());
    let mut kicks = [
        ("nr_short_wakeups", 0),
        ("nr_preempts", 0),
        ("nr_preempt_none", 0),
        ("nr_direct_idle", 0),
    ];
    let p99 = |v: &[u64]| workloads::quantile(v, 0.99);
    for _ in 0..ROUNDS {
        ensure!(
            sys::scx_state() == "disabled",
            "default scheduler round with sched_ext on"
        );
        let d = periodic_round(SAMPLES)?;

        let (mut b, _) = Brisk::start(&[])?;
        let s = periodic_round(SAMPLES)?;
        ensure!(sys::brisk_attached(), "scx_brisk detached during the round");
        b.stop_cleanly()?;
        for (k, v) in b.exit_counters() {
            if let Some(slot) = kicks.iter_mut().find(|(n, _)| *n == k) {
                slot.1 += v;
            }
        }
        ensure!(
            !d.queue_wait_ns.is_empty() && !s.queue_wait_ns.is_empty(),
            "the kernel accounts no run_delay (/proc/thread-self/schedstat): cannot tell the \
             queue wait from the rest of the lateness"
        );

        wait_ratios.push(p99(&s.queue_wait_ns) as f64 / p99(&d.queue_wait_ns).max(1) as f64);
        late_ratios.push(p99(&s.lateness_ns) as f64 / p99(&d.lateness_ns).max(1) as f64);
        rounds.push(format!(
            "wait p99 {}/{} us, lateness p99 {}/{} us ({} missed)",
            p99(&d.queue_wait_ns) / 1000,
            p99(&s.queue_wait_ns) / 1000,
            p99(&d.lateness_ns) / 1000,
            p99(&s.lateness_ns) / 1000,
            s.missed
        ));
        dfl.extend(d.queue_wait_ns);
        brisk.extend(s.queue_wait_ns);
    }
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>();
    let (wait, late) = (median(&mut wait_ratios), median(&mut late_ratios));
    let fig = format!(
        "{ROUNDS} interleaved rounds, scx_brisk/default p99 per round (sorted): queue wait {:?}, \
         median {wait:.2} (<= {MAX_WAIT_RATIO:.2}); lateness {:?}, median {late:.2} \
         (<= {MAX_LATENESS_RATIO:.2}); pooled queue wait p99 {} us vs {} us; rounds \
         (default/scx_brisk): {}; scx_brisk {:?}",
        show(&wait_ratios),
        show(&late_ratios),
        p99(&brisk) / 1000,
        p99(&dfl) / 1000,
        rounds.join("; "),
        kicks
    );
    ensure!(
        wait <= MAX_WAIT_RATIO && late <= MAX_LATENESS_RATIO,
        "{fig}"
    );
    Ok(fig)
}

/// One round of the periodic task (10 ms period, 1 ms work) beside 2 hogs per CPU.
fn periodic_round(samples: usize) -> Result<workloads::Periodic> {
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let res = workloads::periodic(Duration::from_millis(10), Duration::from_millis(1), samples);
    drop(hogs);
    Ok(res)
}
