//! `workload build`: a compile-like background. Each worker thread forks a job process that
//! burns 20-200 ms of CPU time and exits (a compiler run), then a few helper processes that exit
//! at once (a build driver's short-lived children), and waits for each in a blocking wait, as
//! make does; the result is the job CPU time completed per second of the measured window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, ensure, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::burn_cpu;
use super::cli::{duration, window};

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
    /// Count job CPU time from this many seconds after the start, so that time the build had
    /// the machine to itself (before the measured load began) is left out.
    #[arg(long, default_value_t = 0.0)]
    pub measure_from_s: f64,
    /// Count job CPU time for this many seconds (default: to the end of the run).
    #[arg(long)]
    pub measure_s: Option<f64>,
}

/// `workload build` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    pub workload: String,
    /// The measured window (--measure-from-s, --measure-s), in seconds.
    pub duration_s: f64,
    pub workers: usize,
    /// Jobs that finished before the end of the run (the ones still running then are killed).
    pub jobs: u64,
    /// The finished jobs' CPU time that fell in the measured window, per second of it: each
    /// job's length shared out evenly over its run, fork to exit.
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

/// A finished job: its CPU time and when it ran (fork to exit), in seconds from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    pub ms: u64,
    pub start_s: f64,
    pub end_s: f64,
}

/// The jobs' CPU time (ms) inside `from_s..to_s`, each job's length spread evenly over its run
/// (pure). A job's burn is not even, but the job sequence is the same under every scheduler.
pub fn window_ms(jobs: &[Job], from_s: f64, to_s: f64) -> f64 {
    jobs.iter()
        .map(|j| {
            let run = j.end_s - j.start_s;
            let inside = (j.end_s.min(to_s) - j.start_s.max(from_s)).max(0.0);
            if run > 0.0 {
                j.ms as f64 * inside / run
            } else if (from_s..to_s).contains(&j.start_s) {
                j.ms as f64
            } else {
                0.0
            }
        })
        .sum()
}

/// Forks a child that burns `work_ns` of CPU time (none: exits at once) and waits for it in a
/// blocking wait, its pid in `running` meanwhile so that the end of the run can kill it (see
/// `kill_running`). Returns whether it finished.
fn run_child(work_ns: u64, stop: &AtomicBool, running: &Mutex<libc::pid_t>) -> Result<bool> {
    // SAFETY: the child calls only clock_gettime (in burn_cpu) and _exit, both
    // async-signal-safe, so forking a multi-threaded process is sound.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => {
            burn_cpu(work_ns);
            unsafe { libc::_exit(0) }
        }
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        _ => {
            *running.lock().unwrap_or_else(|e| e.into_inner()) = pid;
            // The end of the run sets `stop` before it looks at `running`: if it looked
            // before the pid was there, `stop` is seen here.
            if stop.load(Ordering::SeqCst) {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            // Wait for the exit without reaping (WNOWAIT): the pid cannot be reused while
            // `running` still names it.
            loop {
                // SAFETY: a zeroed siginfo_t is valid; waitid writes it.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: waits for our own child; writes `info`.
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if r == 0 {
                    break;
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    bail!("waitid: {err}");
                }
            }
            *running.lock().unwrap_or_else(|e| e.into_inner()) = 0;
            let mut status = 0;
            // SAFETY: reaps our own child, which has exited; writes its status.
            if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
                bail!("waitpid: {}", std::io::Error::last_os_error());
            }
            Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
        }
    }
}

/// Kills the children the workers wait for (after `stop` is set).
fn kill_running(running: &[Arc<Mutex<libc::pid_t>>]) {
    for r in running {
        let pid = r.lock().unwrap_or_else(|e| e.into_inner());
        if *pid > 0 {
            // SAFETY: a child of ours not yet reaped (its worker clears the slot, under this
            // lock, before it reaps it).
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
}

pub fn run(o: &Opts) -> Result<BuildReport> {
    let dur = duration(o.duration_s)?;
    let (from, len) = window(o.duration_s, o.measure_from_s, o.measure_s)?;
    let workers = o
        .workers
        .unwrap_or_else(|| 2 * crate::guest::sys::nr_cpus());
    ensure!(workers > 0, "--workers must be at least 1");
    ensure!(
        o.job_min_ms > 0 && o.job_min_ms <= o.job_max_ms,
        "need 0 < --job-min-ms <= --job-max-ms"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let running: Vec<Arc<Mutex<libc::pid_t>>> = (0..workers).map(|_| Arc::default()).collect();
    let start = Instant::now();
    let handles: Vec<_> = running
        .iter()
        .enumerate()
        .map(|(w, slot)| {
            let (stop, slot, o) = (stop.clone(), slot.clone(), o.clone());
            std::thread::spawn(move || -> Result<(Vec<Job>, u64)> {
                let (mut jobs, mut helpers) = (Vec::new(), 0);
                while !stop.load(Ordering::SeqCst) {
                    let ms = job_ms(w as u64 + 1, jobs.len() as u64, o.job_min_ms, o.job_max_ms);
                    let start_s = start.elapsed().as_secs_f64();
                    if !run_child(ms * 1_000_000, &stop, &slot)? {
                        break;
                    }
                    let end_s = start.elapsed().as_secs_f64();
                    jobs.push(Job { ms, start_s, end_s });
                    for _ in 0..o.helpers {
                        if run_child(0, &stop, &slot)? {
                            helpers += 1;
                        }
                    }
                }
                Ok((jobs, helpers))
            })
        })
        .collect();
    std::thread::sleep(dur.saturating_sub(start.elapsed()));
    stop.store(true, Ordering::SeqCst);
    kill_running(&running);
    let (mut jobs, mut helpers) = (Vec::new(), 0);
    for h in handles {
        let (j, hl) = h
            .join()
            .map_err(|_| anyhow::anyhow!("build worker panicked"))??;
        jobs.extend(j);
        helpers += hl;
    }
    let (from_s, len_s) = (from.as_secs_f64(), len.as_secs_f64());
    Ok(BuildReport {
        workload: "build".into(),
        duration_s: len_s,
        workers,
        jobs: jobs.len() as u64,
        job_ms_per_s: window_ms(&jobs, from_s, from_s + len_s) / len_s,
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
            measure_from_s: 0.0,
            measure_s: None,
        })
        .unwrap();
        assert!(r.jobs >= 2, "{r:?}");
        assert!(r.helpers >= r.jobs - 2, "{r:?}");
        assert!(r.job_ms_per_s > 0.0, "{r:?}");
    }

    #[test]
    fn the_end_of_the_run_kills_a_job_it_waits_for() {
        // One worker, one 60 s job: the run must end at its 0.3 s, not the job's end.
        let t = Instant::now();
        let r = run(&Opts {
            duration_s: 0.3,
            workers: Some(1),
            job_min_ms: 60_000,
            job_max_ms: 60_000,
            helpers: 0,
            measure_from_s: 0.0,
            measure_s: None,
        })
        .unwrap();
        assert!(t.elapsed().as_secs_f64() < 10.0, "{:?}", t.elapsed());
        assert_eq!(r.jobs, 0, "{r:?}");
        assert_eq!(r.job_ms_per_s, 0.0, "{r:?}");
    }

    #[test]
    fn only_the_window_counts() {
        let job = |ms, start_s, end_s| Job { ms, start_s, end_s };
        // Inside, across each edge, outside.
        let jobs = [
            job(100, 1.0, 1.2),
            job(100, 0.4, 0.6),
            job(200, 2.9, 3.3),
            job(50, 0.0, 0.3),
            job(80, 3.5, 3.7),
        ];
        let ms = window_ms(&jobs, 0.5, 3.0);
        assert!((ms - (100.0 + 50.0 + 50.0)).abs() < 1e-9, "{ms}");
        // The whole run counts every job whole.
        assert!((window_ms(&jobs, 0.0, 4.0) - 530.0).abs() < 1e-9);
        assert_eq!(window_ms(&jobs, 5.0, 6.0), 0.0);
        // A job that took no time counts where it started.
        assert_eq!(window_ms(&[job(7, 1.0, 1.0)], 0.5, 3.0), 7.0);
        assert_eq!(window_ms(&[job(7, 4.0, 4.0)], 0.5, 3.0), 0.0);
    }
}
