//! `workload wakeup`: message/worker thread pairs, like a request-serving server.
//!
//! Each pair's message thread sends requests on a fixed schedule (absolute times, one every
//! `interval`): it stamps the time, posts the request in a futex word and wakes the worker,
//! then sleeps on a second futex word until the worker replies. The worker records the delay
//! from the stamp to running (wakeup latency), burns `--work-us` of CPU time and replies.
//! Request latency runs from the time the request was *due* to the reply, so a pair that falls
//! behind its schedule shows the backlog (no coordinated omission).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Result};
use brisk_stress::stats::Latency;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::cli::duration;
use super::{burn_cpu, mono_ns, process_cpu_s, sleep_until, RunDelay};

#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Message/worker pairs (default: one per CPU).
    #[arg(long)]
    pub pairs: Option<usize>,
    /// CPU time a worker spends on one request, in microseconds.
    #[arg(long, default_value_t = 1000)]
    pub work_us: u64,
    /// Offered load: the workers' CPU demand as a percentage of all CPUs. Sets the request
    /// rate unless --rate-per-s is given.
    #[arg(long, default_value_t = 50.0)]
    pub load_pct: f64,
    /// Total requests per second over all pairs (overrides --load-pct).
    #[arg(long)]
    pub rate_per_s: Option<f64>,
}

/// `workload wakeup` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WakeupReport {
    pub workload: String,
    pub duration_s: f64,
    pub pairs: usize,
    pub work_us: u64,
    /// Offered load in % of all CPUs (from the rate if --rate-per-s was given).
    pub load_pct: f64,
    /// Time between a pair's requests, as scheduled.
    pub interval_us: f64,
    /// Requests completed.
    pub requests: u64,
    /// CPU time the pairs used, in seconds: the workers' work and both sides' system time.
    #[serde(default)]
    pub cpu_s: f64,
    pub requests_per_s: f64,
    /// Requests due but never sent: the pairs could not keep up. Their lateness up to the
    /// end is in `request`.
    pub unsent: u64,
    /// Stamp to worker running.
    pub wakeup: Latency,
    /// Of each worker wakeup, the time spent runnable before running (the kernel's run_delay).
    /// Not comparable across schedulers: where the kernel hands a wakeup to an idle CPU to
    /// enqueue (EEVDF's queued wakeups), that CPU's wait to wake up is outside it. All zero
    /// where the kernel does not account it.
    #[serde(default)]
    pub queue_wait: Latency,
    /// Due time to reply received.
    pub request: Latency,
}

/// The time between one pair's requests, in ns, for a total rate or an offered load.
pub fn interval_ns(o: &Opts, pairs: usize, nr_cpus: usize) -> Result<u64> {
    let total_rate = match o.rate_per_s {
        Some(r) => r,
        None => {
            ensure!(o.work_us > 0, "--load-pct needs a non-zero --work-us");
            o.load_pct / 100.0 * nr_cpus as f64 / (o.work_us as f64 / 1e6)
        }
    };
    ensure!(
        total_rate.is_finite() && total_rate > 0.0,
        "the request rate must be positive (--load-pct / --rate-per-s)"
    );
    Ok((pairs as f64 / total_rate * 1e9).round().max(1.0) as u64)
}

/// Futex word values of a request slot.
const IDLE: u32 = 0;
const POSTED: u32 = 1;
const STOP: u32 = 2;

#[derive(Default)]
struct Pair {
    request: AtomicU32,
    replied: AtomicU32,
    sent_ns: AtomicU64,
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Serves requests until told to stop; returns the wakeup latencies and the queue waits of
/// those wakeups (the kernel's run_delay: woken to running), in ns.
fn worker(pair: &Pair, work_ns: u64) -> (Vec<u64>, Vec<u64>) {
    let (mut wakeups, mut waits) = (Vec::new(), Vec::new());
    let run_delay = RunDelay::open();
    let mut slept_at = run_delay.read();
    loop {
        let mut state = pair.request.load(Ordering::Acquire);
        while state == IDLE {
            futex_wait(&pair.request, IDLE);
            state = pair.request.load(Ordering::Acquire);
        }
        if state == STOP {
            return (wakeups, waits);
        }
        let running = mono_ns();
        wakeups.push(running.saturating_sub(pair.sent_ns.load(Ordering::Relaxed)));
        if let (Some(before), Some(now)) = (slept_at, run_delay.read()) {
            waits.push(now.saturating_sub(before));
        }
        burn_cpu(work_ns);
        slept_at = run_delay.read();
        pair.request.store(IDLE, Ordering::Relaxed);
        pair.replied.store(1, Ordering::Release);
        futex_wake(&pair.replied);
    }
}

/// Sends requests every `interval_ns` from `start_ns` until `end_ns`; returns the request
/// latencies in ns (due time to reply) and how many requests were due but never sent because
/// the pair had fallen behind (each is in the latencies too, late from its due time to the
/// end).
fn messenger(pair: &Pair, start_ns: u64, end_ns: u64, interval_ns: u64) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut due = start_ns;
    let mut unsent = 0;
    while due < end_ns {
        let now = mono_ns();
        if now >= end_ns {
            // Out of time with requests still due: they count, not vanish.
            while due < end_ns {
                latencies.push(now - due);
                unsent += 1;
                due += interval_ns;
            }
            break;
        }
        sleep_until(due);
        pair.replied.store(0, Ordering::Relaxed);
        pair.sent_ns.store(mono_ns(), Ordering::Relaxed);
        pair.request.store(POSTED, Ordering::Release);
        futex_wake(&pair.request);
        while pair.replied.load(Ordering::Acquire) == 0 {
            futex_wait(&pair.replied, 0);
        }
        latencies.push(mono_ns().saturating_sub(due));
        due += interval_ns;
    }
    pair.request.store(STOP, Ordering::Release);
    futex_wake(&pair.request);
    (latencies, unsent)
}

pub fn run(o: &Opts) -> Result<WakeupReport> {
    let dur = duration(o.duration_s)?;
    let nr_cpus = crate::guest::sys::nr_cpus();
    let pairs = o.pairs.unwrap_or(nr_cpus);
    ensure!(pairs > 0, "--pairs must be at least 1");
    let interval = interval_ns(o, pairs, nr_cpus)?;
    let work_ns = o.work_us * 1000;
    let start = mono_ns() + 1_000_000;
    let end = start + dur.as_nanos() as u64;
    let mut threads = Vec::new();
    for i in 0..pairs {
        let pair = Arc::new(Pair::default());
        let p = pair.clone();
        let w = std::thread::spawn(move || worker(&p, work_ns));
        // Stagger the pairs over one interval so they do not all fire at once.
        let first = start + interval * i as u64 / pairs as u64;
        let m = std::thread::spawn(move || messenger(&pair, first, end, interval));
        threads.push((m, w));
    }
    let (mut wakeups, mut waits, mut requests, mut unsent) = (vec![], vec![], vec![], 0);
    for (m, w) in threads {
        let (latencies, late) = m
            .join()
            .map_err(|_| anyhow::anyhow!("messenger panicked"))?;
        requests.extend(latencies);
        unsent += late;
        let (woke, waited) = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
        wakeups.extend(woke);
        waits.extend(waited);
    }
    let elapsed_s = (mono_ns() - start) as f64 / 1e9;
    let count = requests.len() as u64 - unsent;
    Ok(WakeupReport {
        workload: "wakeup".into(),
        duration_s: dur.as_secs_f64(),
        pairs,
        work_us: o.work_us,
        load_pct: pairs as f64 * o.work_us as f64 * 1e3 / interval as f64 / nr_cpus as f64 * 100.0,
        interval_us: interval as f64 / 1e3,
        requests: count,
        cpu_s: process_cpu_s(),
        unsent,
        requests_per_s: count as f64 / elapsed_s,
        wakeup: Latency::from_ns(&mut wakeups),
        queue_wait: Latency::from_ns(&mut waits),
        request: Latency::from_ns(&mut requests),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(work_us: u64, load_pct: f64, rate_per_s: Option<f64>) -> Opts {
        Opts {
            duration_s: 1.0,
            pairs: None,
            work_us,
            load_pct,
            rate_per_s,
        }
    }

    #[test]
    fn interval_from_load_or_rate() {
        // 2 CPUs at 50%: 1 CPU of demand = 1000 requests/s of 1 ms; 2 pairs -> 2 ms each.
        assert_eq!(
            interval_ns(&opts(1000, 50.0, None), 2, 2).unwrap(),
            2_000_000
        );
        // 100%: twice the rate.
        assert_eq!(
            interval_ns(&opts(1000, 100.0, None), 2, 2).unwrap(),
            1_000_000
        );
        // An explicit rate wins: 500/s over 4 pairs -> 8 ms each.
        assert_eq!(
            interval_ns(&opts(1000, 50.0, Some(500.0)), 4, 2).unwrap(),
            8_000_000
        );
        assert!(interval_ns(&opts(0, 50.0, None), 2, 2).is_err());
        assert!(interval_ns(&opts(1000, 0.0, None), 2, 2).is_err());
    }
}
