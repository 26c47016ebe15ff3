//! Workloads run in the guest: CPU hogs and a periodic interactive task that measures its own
//! wakeup lateness, and the benchmark's workloads (`brisk-guest workload ...`, in the
//! submodules), each printing one JSON object.

pub mod build;
pub mod cli;
pub mod hogs;
pub mod pipe;
pub mod wakeup;

use std::time::Duration;

use anyhow::{bail, Result};
use brisk_stress::stats;

pub fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Makes the calling thread SCHED_FIFO priority 10: the kernel's RT class runs it, not sched_ext.
pub fn set_fifo() -> Result<()> {
    set_policy(libc::SCHED_FIFO, 10, "SCHED_FIFO")
}

/// Sets the calling thread's scheduling policy (a normal policy keeps the thread's nice value).
fn set_policy(policy: i32, sched_priority: i32, name: &str) -> Result<()> {
    let param = libc::sched_param { sched_priority };
    // SAFETY: 0 is the calling thread; param is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        bail!(
            "sched_setscheduler({name}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// What `brisk-guest hog` burns CPU as.
#[derive(clap::Args, Debug)]
pub struct HogArgs {
    #[arg(long, default_value_t = 0)]
    pub nice: i32,
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Run as a SCHED_FIFO (real-time) task.
    #[arg(long)]
    pub fifo: bool,
    /// Every N ms, pass through the real-time class: SCHED_FIFO, then back to SCHED_OTHER at
    /// once (what a priority-inheritance boost does to a lock holder).
    #[arg(long, conflicts_with = "fifo")]
    pub bounce_rt_ms: Option<u64>,
    /// Burn the CPU as a chain of child processes, one at a time, each running N ms of CPU
    /// time and exiting (what a build's short compiler jobs do); the parent only forks and
    /// waits.
    #[arg(long, conflicts_with_all = ["fifo", "bounce_rt_ms"])]
    pub fork_chain_ms: Option<u64>,
}

/// Burns CPU forever, as `args` say.
pub fn hog(args: &HogArgs) -> Result<()> {
    if args.fifo {
        // A real-time hog: it bypasses sched_ext and takes its CPU from every normal task
        // (the kernel's RT throttling leaves them a few percent).
        set_fifo()?;
    }
    let nice = args.nice;
    if nice != 0 && unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        bail!("setpriority({nice}): {}", std::io::Error::last_os_error());
    }
    if let Some(cpu) = args.cpu {
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
                bail!(
                    "sched_setaffinity({cpu}): {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    if let Some(ms) = args.fork_chain_ms {
        loop {
            fork_burn(ms * 1_000_000)?;
        }
    }
    let bounce_ns = args.bounce_rt_ms.map(|ms| ms.max(1) * 1_000_000);
    let mut next_bounce = bounce_ns.map(|ns| mono_ns() + ns);
    let mut x: u64 = 1;
    loop {
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
        if let (Some(at), Some(every)) = (next_bounce, bounce_ns) {
            let now = mono_ns();
            if now >= at {
                set_fifo()?;
                set_policy(libc::SCHED_OTHER, 0, "SCHED_OTHER")?;
                next_bounce = Some(now + every);
            }
        }
    }
}

/// Lateness samples of a periodic task, in ns.
pub struct Periodic {
    pub lateness_ns: Vec<u64>,
    /// Periods that started after the next one was already due (overruns).
    pub missed: u64,
    /// For each wakeup taken, how long the task waited runnable before it ran (the kernel's
    /// `run_delay`): the part of its lateness the scheduler is responsible for. Empty where
    /// the kernel does not account it.
    pub queue_wait_ns: Vec<u64>,
    /// For each wakeup taken, how long its work took on the wall clock, and how much of that
    /// it waited runnable (preempted): a stall in the middle of a burst shows in these, not in
    /// `queue_wait_ns`. The wait is empty where the kernel does not account it.
    pub work_wall_ns: Vec<u64>,
    pub work_wait_ns: Vec<u64>,
}

/// The calling thread's `run_delay` (ns spent runnable but not running, summed by the kernel
/// from enqueue to switch-in whatever the scheduling class), read from
/// `/proc/thread-self/schedstat`.
pub(crate) struct RunDelay(Option<std::fs::File>);

impl RunDelay {
    pub(crate) fn open() -> RunDelay {
        RunDelay(std::fs::File::open("/proc/thread-self/schedstat").ok())
    }

    /// The running total in ns, or None if the kernel does not provide it.
    pub(crate) fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = self.0.as_ref()?.read_at(&mut buf, 0).ok()?;
        stats::SchedStat::parse(std::str::from_utf8(&buf[..n]).ok()?).map(|s| s.delay_ns)
    }
}

/// Wakes every `period` at absolute times (CLOCK_MONOTONIC), records how late each wakeup was
/// against its intended time, then burns `work` of its own CPU time. Missed periods are not
/// skipped: the next wakeup is due at the next period boundary, and its lateness counts from
/// there, so a stall shows in every sample it delayed. Ends after `count` periods.
pub fn periodic(period: Duration, work: Duration, count: usize) -> Periodic {
    periodic_with(period, work, count, None)
}

/// `periodic`, where every `n`th wakeup taken (`long = Some((n, work))`) burns `work` instead:
/// a frame that takes longer now and then.
pub fn periodic_with(
    period: Duration,
    work: Duration,
    count: usize,
    long: Option<(usize, Duration)>,
) -> Periodic {
    let period_ns = period.as_nanos() as u64;
    let mut next = now_ns(libc::CLOCK_MONOTONIC) + period_ns;
    let mut out = Periodic {
        lateness_ns: Vec::with_capacity(count),
        missed: 0,
        queue_wait_ns: Vec::with_capacity(count),
        work_wall_ns: Vec::with_capacity(count),
        work_wait_ns: Vec::with_capacity(count),
    };
    let run_delay = RunDelay::open();
    let mut slept_at = run_delay.read();
    // `count` periods, taken or missed: the run lasts count * period whatever the load.
    while out.lateness_ns.len() < count {
        let ts = libc::timespec {
            tv_sec: (next / 1_000_000_000) as i64,
            tv_nsec: (next % 1_000_000_000) as i64,
        };
        unsafe {
            while libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            ) == libc::EINTR
            {}
        }
        let woke = now_ns(libc::CLOCK_MONOTONIC);
        out.lateness_ns.push(woke.saturating_sub(next));
        // The wait since going to sleep is this wakeup's: preemptions while working were
        // counted before it slept.
        let woke_delay = run_delay.read();
        if let (Some(before), Some(now)) = (slept_at, woke_delay) {
            out.queue_wait_ns.push(now.saturating_sub(before));
        }
        let work = match long {
            Some((n, long_work)) if n > 0 && out.work_wall_ns.len() % n == n - 1 => long_work,
            _ => work,
        };
        let cpu0 = now_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        while now_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0 < work.as_nanos() as u64 {
            std::hint::spin_loop();
        }
        out.work_wall_ns
            .push(now_ns(libc::CLOCK_MONOTONIC).saturating_sub(woke));
        slept_at = run_delay.read();
        if let (Some(before), Some(after)) = (woke_delay, slept_at) {
            out.work_wait_ns.push(after.saturating_sub(before));
        }
        // Overran: the wakeups we could not take are recorded as late as they were.
        let (missed, ahead) =
            stats::missed_periods(next + period_ns, now_ns(libc::CLOCK_MONOTONIC), period_ns);
        out.missed += missed.len() as u64;
        out.lateness_ns.extend(missed);
        next = ahead;
    }
    out
}

/// Like `periodic`, but woken through a pipe by a timer thread that writes the time it sends
/// the wakeup: each sample is woken -> running, the delay the scheduler is responsible for,
/// without the timer's own lateness (large under emulation). Then burns `work` of CPU time.
pub fn piped_wakeups(period: Duration, work: Duration, count: usize) -> PipedWakeups {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe()");
    let (rd, wr) = (fds[0], fds[1]);
    let period_ns = period.as_nanos() as u64;
    let waker = std::thread::spawn(move || {
        let run_delay = RunDelay::open();
        let mut waits = Vec::with_capacity(count);
        let mut next = now_ns(libc::CLOCK_MONOTONIC) + period_ns;
        for _ in 0..count {
            let ts = libc::timespec {
                tv_sec: (next / 1_000_000_000) as i64,
                tv_nsec: (next % 1_000_000_000) as i64,
            };
            let slept_at = run_delay.read();
            unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                );
            }
            if let (Some(before), Some(after)) = (slept_at, run_delay.read()) {
                waits.push(after.saturating_sub(before));
            }
            unsafe {
                let sent = now_ns(libc::CLOCK_MONOTONIC).to_ne_bytes();
                libc::write(wr, sent.as_ptr().cast(), 8);
            }
            next += period_ns;
        }
        unsafe { libc::close(wr) };
        waits
    });
    let mut woken = Vec::with_capacity(count);
    let mut buf = [0u8; 8];
    while unsafe { libc::read(rd, buf.as_mut_ptr().cast(), 8) } == 8 {
        woken.push(now_ns(libc::CLOCK_MONOTONIC).saturating_sub(u64::from_ne_bytes(buf)));
        let cpu0 = now_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        while now_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0 < work.as_nanos() as u64 {
            std::hint::spin_loop();
        }
    }
    let waker_waits = waker.join().unwrap_or_default();
    unsafe { libc::close(rd) };
    PipedWakeups { woken, waker_waits }
}

/// What `piped_wakeups` measured, per period, in ns.
pub struct PipedWakeups {
    /// The woken task: sent -> running.
    pub woken: Vec<u64>,
    /// The timer thread that wakes it: its own wait from its timer wakeup to running (schedstat
    /// run_delay across the sleep; empty without schedstats). The scheduler's probes see these
    /// wakeups too, so a comparison with their figures pools both.
    pub waker_waits: Vec<u64>,
}

/// The q-quantile (0..=1) of `v` by nearest rank; 0 for no samples.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    stats::quantile_sorted(&s, q)
}

/// Burns `work_ns` of this thread's CPU time (so preemption does not shorten the work).
pub fn burn_cpu(work_ns: u64) {
    let cpu0 = now_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    while now_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0 < work_ns {
        std::hint::spin_loop();
    }
}

/// Forks a child that burns `work_ns` of CPU time and exits, and waits for it.
fn fork_burn(work_ns: u64) -> Result<()> {
    // SAFETY: the hog is single-threaded; the child calls only clock_gettime and _exit.
    match unsafe { libc::fork() } {
        0 => {
            burn_cpu(work_ns);
            unsafe { libc::_exit(0) }
        }
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        pid => {
            // SAFETY: waits for our own child.
            while unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) } < 0 {
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    bail!("waitpid: {}", std::io::Error::last_os_error());
                }
            }
            Ok(())
        }
    }
}

/// Sleeps until `deadline_ns` on CLOCK_MONOTONIC (at once if it has passed).
pub fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as i64,
        tv_nsec: (deadline_ns % 1_000_000_000) as i64,
    };
    // SAFETY: clock_nanosleep reads `ts` and writes no remainder (null) with TIMER_ABSTIME.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// CPU time (user and system) this process has used so far, all its threads, in seconds.
pub fn process_cpu_s() -> f64 {
    now_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as f64 / 1e9
}

/// CLOCK_MONOTONIC in ns.
pub fn mono_ns() -> u64 {
    now_ns(libc::CLOCK_MONOTONIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&v, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }
}
