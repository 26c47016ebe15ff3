//! `workload build`: a compile-like background. Each worker thread forks a job process that
//! burns 20-200 ms of CPU time and exits (a compiler run), then a few helper processes that exit
//! at once (a build driver's short-lived children), and waits for each; the result is the job
//! CPU time completed per second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::burn_cpu;
use super::cli::duration;

#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Worker threads, each running one job process at a time (default: 2 per CPU).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Shortest job, in ms of CPU time.
    #[arg(long, default_value_t = 20)]
    pub job_min_ms: u64,
    /// Longest job, in ms of CPU time.
    #[arg(long, default_value_t = 200)]
    pub job_max_ms: u64,
    /// Helper processes forked (one after the other) after each job.
    #[arg(long, default_value_t = 3)]
    pub helpers: u32,
}

/// `workload build` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    pub workload: String,
    pub duration_s: f64,
    pub workers: usize,
    /// Jobs that finished before the end (the ones still running then are killed).
    pub jobs: u64,
    /// CPU time of the finished jobs per second of the run.
    pub job_ms_per_s: f64,
    pub helpers: u64,
}

/// The `i`th job length of worker `seed`, in ms: a fixed pseudo-random sequence in
/// `min..=max`, the same under every scheduler.
pub fn job_ms(seed: u64, i: u64, min: u64, max: u64) -> u64 {
    // splitmix64 of (seed, i)
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    min + z % (max - min + 1)
}

/// Forks a child that burns `work_ns` of CPU time (none: exits at once) and waits for it,
/// unless `stop` is set first; then the child is killed. Returns whether it finished.
fn run_child(work_ns: u64, stop: &AtomicBool) -> Result<bool> {
    // SAFETY: the child calls only clock_gettime (in burn_cpu) and _exit, both
    // async-signal-safe, so forking a multi-threaded process is sound.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => {
            burn_cpu(work_ns);
            unsafe { libc::_exit(0) }
        }
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        _ => loop {
            let mut status = 0;
            // SAFETY: polls our own child; writes its status.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                return Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
            if r == -1 {
                bail!("waitpid: {}", std::io::Error::last_os_error());
            }
            if stop.load(Ordering::Relaxed) {
                // SAFETY: kill(2) and waitpid(2) on our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        },
    }
}

pub fn run(o: &Opts) -> Result<BuildReport> {
    let dur = duration(o.duration_s)?;
    let workers = o
        .workers
        .unwrap_or_else(|| 2 * crate::guest::sys::nr_cpus());
    ensure!(workers > 0, "--workers must be at least 1");
    ensure!(
        o.job_min_ms > 0 && o.job_min_ms <= o.job_max_ms,
        "need 0 < --job-min-ms <= --job-max-ms"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (stop, o) = (stop.clone(), o.clone());
            std::thread::spawn(move || -> Result<(u64, u64, u64)> {
                let (mut jobs, mut ms, mut helpers) = (0, 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let len = job_ms(w as u64 + 1, jobs, o.job_min_ms, o.job_max_ms);
                    if !run_child(len * 1_000_000, &stop)? {
                        break;
                    }
                    jobs += 1;
                    ms += len;
                    for _ in 0..o.helpers {
                        if run_child(0, &stop)? {
                            helpers += 1;
                        }
                    }
                }
                Ok((jobs, ms, helpers))
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let (mut jobs, mut ms, mut helpers) = (0, 0, 0);
    for h in handles {
        let (j, m, hl) = h
            .join()
            .map_err(|_| anyhow::anyhow!("build worker panicked"))??;
        jobs += j;
        ms += m;
        helpers += hl;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(BuildReport {
        workload: "build".into(),
        duration_s: elapsed,
        workers,
        jobs,
        job_ms_per_s: ms as f64 / elapsed,
        helpers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_lengths_are_fixed_spread_and_in_range() {
        let lens: Vec<u64> = (0..1000).map(|i| job_ms(3, i, 20, 200)).collect();
        assert!(lens.iter().all(|&l| (20..=200).contains(&l)));
        assert_eq!(
            lens,
            (0..1000).map(|i| job_ms(3, i, 20, 200)).collect::<Vec<_>>()
        );
        let mean = lens.iter().sum::<u64>() as f64 / 1000.0;
        assert!((95.0..=125.0).contains(&mean), "{mean}");
        assert_ne!(job_ms(1, 0, 20, 200), job_ms(2, 0, 20, 200));
        assert_eq!(job_ms(1, 5, 7, 7), 7);
    }

    #[test]
    fn a_short_build_completes_jobs_and_helpers() {
        let r = run(&Opts {
            duration_s: 0.3,
            workers: Some(2),
            job_min_ms: 1,
            job_max_ms: 3,
            helpers: 1,
        })
        .unwrap();
        assert!(r.jobs >= 2, "{r:?}");
        assert!(r.helpers >= r.jobs - 2, "{r:?}");
        assert!(r.job_ms_per_s > 0.0, "{r:?}");
    }
}
