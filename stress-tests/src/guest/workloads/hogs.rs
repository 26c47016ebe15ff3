//! `workload hogs`: N CPU-bound threads, each counting the work units it completes.

use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use brisk_stress::stats;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::cli::{duration, window};

/// Iterations of the busy loop in one work unit (tens of microseconds on a real CPU).
const UNIT_ITERS: u32 = 10_000;

#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Number of hogs (default: 2 per CPU, or one per --nice value).
    #[arg(long)]
    pub count: Option<usize>,
    /// Nice level of each hog, comma-separated (`0,0,5`), or one level for all.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub nice: Vec<i32>,
    /// Count work and CPU time from this many seconds after the start, so that time the hogs
    /// had the machine to themselves (before the measured load began) is left out.
    #[arg(long, default_value_t = 0.0)]
    pub measure_from_s: f64,
    /// Count work and CPU time for this many seconds (default: to the end of the run).
    #[arg(long)]
    pub measure_s: Option<f64>,
}

/// One hog's result, over the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hog {
    pub nice: i32,
    pub work_units: u64,
    pub cpu_ms: f64,
    /// How many times it was switched in (its stints on a CPU; schedstat's timeslices), 0
    /// where the kernel does not count them.
    #[serde(default)]
    pub stints: u64,
}

/// `workload hogs` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HogsReport {
    pub workload: String,
    /// The measured window (--measure-from-s, --measure-s): the hogs' work and CPU time,
    /// the rate and the fairness indices count only what happened in it.
    pub duration_s: f64,
    pub hogs: Vec<Hog>,
    pub total_work_units: u64,
    pub work_per_s: f64,
    /// Work units per second of the CPU time the hogs were charged (0 with none).
    #[serde(default)]
    pub work_per_cpu_s: f64,
    /// Their CPU time per switch-in, in us (0 where the kernel counts no stints).
    #[serde(default)]
    pub stint_us: f64,
    /// Jain's index over the hogs' work units (1 = all equal).
    pub jain_index: f64,
    /// Jain's index over work units divided by nice weights; only with mixed nice levels.
    pub weighted_jain_index: Option<f64>,
}

/// The nice level of each hog from `--count` and `--nice`.
pub fn nice_levels(count: Option<usize>, nice: &[i32], nr_cpus: usize) -> Result<Vec<i32>> {
    let levels = match (count, nice.len()) {
        (None, 0) => vec![0; 2 * nr_cpus],
        (Some(n), 0) => vec![0; n],
        (None, _) => nice.to_vec(),
        (Some(n), 1) => vec![nice[0]; n],
        (Some(n), k) if n == k => nice.to_vec(),
        (Some(n), k) => bail!("--count {n} but {k} --nice levels"),
    };
    if levels.is_empty() {
        bail!("no hogs to run");
    }
    if let Some(bad) = levels.iter().find(|&&n| stats::nice_weight(n).is_none()) {
        bail!("nice level {bad} is out of range (-20..=19)");
    }
    Ok(levels)
}

pub fn run(o: &Opts) -> Result<HogsReport> {
    let dur = duration(o.duration_s)?;
    let (from, len) = window(o.duration_s, o.measure_from_s, o.measure_s)?;
    let levels = nice_levels(o.count, &o.nice, crate::guest::sys::nr_cpus())?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = levels.iter().map(|_| Arc::default()).collect();
    let tids: Vec<Arc<AtomicI32>> = levels.iter().map(|_| Arc::default()).collect();
    let start = std::time::Instant::now();
    let mut threads = Vec::new();
    for ((&nice, counter), tid) in levels.iter().zip(&counters).zip(&tids) {
        let (stop, counter, tid) = (stop.clone(), counter.clone(), tid.clone());
        threads.push(std::thread::spawn(move || hog(nice, &stop, &counter, &tid)));
    }
    let clocks = threads
        .iter()
        .map(|t| cpu_clock(t.as_pthread_t()))
        .collect::<Result<Vec<_>>>()?;
    let snapshot = || -> Vec<(u64, u64, u64)> {
        counters
            .iter()
            .zip(&clocks)
            .zip(&tids)
            .map(|((c, &clock), tid)| {
                (
                    c.load(Ordering::Relaxed),
                    super::now_ns(clock),
                    timeslices(tid.load(Ordering::Relaxed)),
                )
            })
            .collect()
    };
    std::thread::sleep(from);
    let first = snapshot();
    std::thread::sleep((from + len).saturating_sub(start.elapsed()));
    let last = snapshot();
    std::thread::sleep(dur.saturating_sub(start.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a hog thread panicked"))?
            .context("hog thread")?;
    }
    let hogs = levels
        .iter()
        .zip(first.iter().zip(&last))
        .map(|(&nice, (a, b))| Hog {
            nice,
            work_units: b.0 - a.0,
            cpu_ms: b.1.saturating_sub(a.1) as f64 / 1e6,
            stints: b.2.saturating_sub(a.2),
        })
        .collect();
    Ok(report(len.as_secs_f64(), hogs))
}

/// How many times thread `tid` of this process was switched in (0 before it has published its
/// id, or where the kernel keeps no schedstat).
fn timeslices(tid: i32) -> u64 {
    if tid == 0 {
        return 0;
    }
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|l| stats::SchedStat::parse(&l))
        .map_or(0, |s| s.timeslices)
}

/// The CPU-time clock of a running thread.
fn cpu_clock(thread: libc::pthread_t) -> Result<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is not joined before the last read, so its pthread_t stays valid
    // (a hog that failed early reads as 0 CPU time and its join reports the error), and
    // `clock` is a valid out-pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    if rc != 0 {
        bail!(
            "pthread_getcpuclockid: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    Ok(clock)
}

/// The report from the hogs' counts (pure).
pub fn report(duration_s: f64, hogs: Vec<Hog>) -> HogsReport {
    let work: Vec<f64> = hogs.iter().map(|h| h.work_units as f64).collect();
    let nice: Vec<i32> = hogs.iter().map(|h| h.nice).collect();
    let total: u64 = hogs.iter().map(|h| h.work_units).sum();
    let mixed = nice.iter().any(|&n| n != nice[0]);
    let cpu_ms: f64 = hogs.iter().map(|h| h.cpu_ms).sum();
    let stints: u64 = hogs.iter().map(|h| h.stints).sum();
    HogsReport {
        workload: "hogs".into(),
        duration_s,
        total_work_units: total,
        work_per_s: total as f64 / duration_s,
        work_per_cpu_s: if cpu_ms > 0.0 {
            total as f64 / cpu_ms * 1e3
        } else {
            0.0
        },
        stint_us: if stints > 0 {
            cpu_ms * 1e3 / stints as f64
        } else {
            0.0
        },
        jain_index: stats::jain(&work).unwrap_or(0.0),
        weighted_jain_index: if mixed {
            stats::weighted_jain(&work, &nice)
        } else {
            None
        },
        hogs,
    }
}

/// One hog: publishes its thread id in `tid`, renices its own thread, then counts work units
/// into `counter` until `stop`.
fn hog(nice: i32, stop: &AtomicBool, counter: &AtomicU64, tid: &AtomicI32) -> Result<()> {
    // SAFETY: gettid has no preconditions.
    tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    if nice != 0 {
        // SAFETY: gettid and setpriority on our own thread id have no memory preconditions.
        let rc = unsafe {
            let tid = libc::gettid() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if rc != 0 {
            bail!("setpriority({nice}): {}", std::io::Error::last_os_error());
        }
    }
    let mut x: u64 = 1;
    let mut units = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..UNIT_ITERS {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
        units += 1;
        counter.store(units, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_from_options() {
        assert_eq!(nice_levels(None, &[], 2).unwrap(), [0, 0, 0, 0]);
        assert_eq!(nice_levels(Some(3), &[], 2).unwrap(), [0, 0, 0]);
        assert_eq!(nice_levels(None, &[0, 0, 5], 2).unwrap(), [0, 0, 5]);
        assert_eq!(nice_levels(Some(2), &[5], 2).unwrap(), [5, 5]);
        assert_eq!(nice_levels(Some(2), &[0, 5], 2).unwrap(), [0, 5]);
        assert!(nice_levels(Some(3), &[0, 5], 2).is_err());
        assert!(nice_levels(Some(0), &[], 2).is_err());
        assert!(nice_levels(None, &[0, 20], 2).is_err());
    }

    #[test]
    fn report_fairness() {
        let hog = |nice, work_units| Hog {
            nice,
            work_units,
            cpu_ms: 0.0,
            stints: 0,
        };
        let r = report(2.0, vec![hog(0, 100), hog(0, 100)]);
        assert_eq!(
            (r.total_work_units, r.work_per_s, r.jain_index),
            (200, 100.0, 1.0)
        );
        // no CPU time or stints counted: no rate per CPU-second, no stint length
        assert_eq!((r.work_per_cpu_s, r.stint_us), (0.0, 0.0));
        let h = |cpu_ms, stints| Hog {
            nice: 0,
            work_units: 300,
            cpu_ms,
            stints,
        };
        // 600 units in 1.5 CPU-s; 1500 ms over 300 switch-ins
        let r = report(2.0, vec![h(1000.0, 100), h(500.0, 200)]);
        assert_eq!((r.work_per_cpu_s, r.stint_us), (400.0, 5000.0));
        assert_eq!(r.weighted_jain_index, None);
        let r = report(1.0, vec![hog(0, 1024), hog(5, 335)]);
        assert!(r.jain_index < 0.8);
        assert_eq!(r.weighted_jain_index, Some(1.0));
    }
}
