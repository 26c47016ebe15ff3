//! `workload pipe` (thread pairs bouncing a byte over two pipes) and `workload forkstorm`
//! (threads forking processes that exit at once): scheduling overhead, as operations/s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::cli::duration;

#[derive(Debug, Clone, Args)]
pub struct PipeOpts {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Thread pairs (default: one per CPU).
    #[arg(long)]
    pub pairs: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct ForkOpts {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Threads forking in parallel (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `workload pipe` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipeReport {
    pub workload: String,
    pub duration_s: f64,
    pub pairs: usize,
    pub round_trips: u64,
    pub round_trips_per_s: f64,
    /// Mean time of one round trip within a pair.
    pub round_trip_mean_us: f64,
}

/// `workload forkstorm` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForkReport {
    pub workload: String,
    pub duration_s: f64,
    pub threads: usize,
    pub forks: u64,
    pub forks_per_s: f64,
}

fn pipe2() -> Result<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

fn read1(fd: i32) -> bool {
    let mut b = 0u8;
    // SAFETY: reads at most one byte into `b`.
    unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) == 1 }
}

fn write1(fd: i32) -> bool {
    let b = 0u8;
    // SAFETY: writes one byte from `b`.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) == 1 }
}

fn close(fd: i32) {
    // SAFETY: each fd is closed once, by the thread that owns it.
    unsafe { libc::close(fd) };
}

pub fn pingpong(o: &PipeOpts) -> Result<PipeReport> {
    let dur = duration(o.duration_s)?;
    let pairs = o.pairs.unwrap_or_else(crate::guest::sys::nr_cpus);
    ensure!(pairs > 0, "--pairs must be at least 1");
    let stop = Arc::new(AtomicBool::new(false));
    let mut pingers = Vec::new();
    let mut pongers = Vec::new();
    for _ in 0..pairs {
        let (ping_rd, ping_wr) = pipe2()?;
        let (pong_rd, pong_wr) = pipe2()?;
        // The echo side: answers every byte until the pinger closes its end.
        pongers.push(std::thread::spawn(move || {
            while read1(ping_rd) && write1(pong_wr) {}
            close(ping_rd);
            close(pong_wr);
        }));
        let stop = stop.clone();
        pingers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && write1(ping_wr) && read1(pong_rd) {
                n += 1;
            }
            close(ping_wr);
            close(pong_rd);
            n
        }));
    }
    let start = Instant::now();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let mut round_trips = 0;
    for t in pingers {
        round_trips += t
            .join()
            .map_err(|_| anyhow::anyhow!("pipe thread panicked"))?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    for t in pongers {
        let _ = t.join();
    }
    Ok(PipeReport {
        workload: "pipe".into(),
        duration_s: dur.as_secs_f64(),
        pairs,
        round_trips,
        round_trips_per_s: round_trips as f64 / elapsed,
        round_trip_mean_us: if round_trips == 0 {
            0.0
        } else {
            elapsed * 1e6 * pairs as f64 / round_trips as f64
        },
    })
}

pub fn forkstorm(o: &ForkOpts) -> Result<ForkReport> {
    let dur = duration(o.duration_s)?;
    let threads = o.threads.unwrap_or_else(crate::guest::sys::nr_cpus);
    ensure!(threads > 0, "--threads must be at least 1");
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || -> Result<u64> {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: the child calls only _exit, which is async-signal-safe.
                    let pid = unsafe { libc::fork() };
                    match pid {
                        0 => unsafe { libc::_exit(0) },
                        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
                        _ => {
                            let mut status = 0;
                            // SAFETY: waits for our own child; writes its status.
                            unsafe { libc::waitpid(pid, &mut status, 0) };
                            n += 1;
                        }
                    }
                }
                Ok(n)
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let mut forks = 0;
    for h in handles {
        forks += h
            .join()
            .map_err(|_| anyhow::anyhow!("fork thread panicked"))??;
    }
    Ok(ForkReport {
        workload: "forkstorm".into(),
        duration_s: dur.as_secs_f64(),
        threads,
        forks,
        forks_per_s: forks as f64 / start.elapsed().as_secs_f64(),
    })
}
