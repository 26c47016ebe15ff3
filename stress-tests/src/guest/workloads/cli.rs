//! `brisk-guest workload <name>`: each workload runs for `--duration-s` and prints one JSON
//! object with its results (units in the field names).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use brisk_stress::stats::Latency;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::{build, hogs, pipe, wakeup};

#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Interactive task: wakes every --period-ms on absolute deadlines (clock_nanosleep),
    /// works --work-ms of CPU time, and records how late each wakeup was. A period whose
    /// deadline passed while it was still working counts as missed, with its lateness.
    Periodic(PeriodicOpts),
    /// Message/worker pairs: a message thread stamps the time and wakes its worker through a
    /// futex; the worker records its wakeup latency, works, and replies.
    Wakeup(wakeup::Opts),
    /// CPU-bound loops counting work units: per-hog work, total work/s, Jain's fairness index.
    Hogs(hogs::Opts),
    /// Thread pairs bouncing a byte over two pipes: round trips/s.
    Pipe(pipe::PipeOpts),
    /// Threads forking short-lived processes that exit at once: forks/s.
    Forkstorm(pipe::ForkOpts),
    /// A compile-like background: workers forking 20-200 ms CPU jobs and short helpers.
    Build(build::Opts),
}

#[derive(Debug, Clone, Args)]
pub struct PeriodicOpts {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Wakeup period in ms.
    #[arg(long, default_value_t = 10.0)]
    pub period_ms: f64,
    /// CPU time worked after each wakeup, in ms.
    #[arg(long, default_value_t = 1.0)]
    pub work_ms: f64,
}

/// `workload periodic` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeriodicReport {
    pub workload: String,
    pub period_us: f64,
    pub work_us: f64,
    pub duration_s: f64,
    /// Periods that were due before the task could start them (their lateness is included).
    pub missed: u64,
    /// Lateness of every period, deadline to start.
    pub lateness: Latency,
    /// Of each wakeup taken, the time spent runnable before running (the kernel's run_delay,
    /// scheduler-independent): the scheduler's part of the lateness. Absent (all zero) if the
    /// kernel does not account it.
    #[serde(default)]
    pub queue_wait: Latency,
    /// Of each wakeup taken, its work's wall time and the part of that it waited runnable
    /// (preempted): where a stall in the middle of a burst shows.
    #[serde(default)]
    pub work_wall: Latency,
    #[serde(default)]
    pub work_wait: Latency,
    /// CPU time the process used, in seconds (the task's work, its wakeups' system time).
    #[serde(default)]
    pub cpu_s: f64,
}

pub fn periodic(o: &PeriodicOpts) -> Result<PeriodicReport> {
    duration(o.duration_s)?;
    ensure!(o.period_ms > 0.0, "--period-ms must be positive");
    ensure!(o.work_ms >= 0.0, "--work-ms must not be negative");
    let period = Duration::from_secs_f64(o.period_ms / 1000.0);
    let count = ((o.duration_s * 1000.0 / o.period_ms) as usize).max(1);
    // Named for what it is, so per-task views (ps, top, traces) tell it from the other workloads.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"periodic".as_ptr()) };
    let mut p = super::periodic(period, Duration::from_secs_f64(o.work_ms / 1000.0), count);
    Ok(PeriodicReport {
        workload: "periodic".into(),
        period_us: o.period_ms * 1000.0,
        work_us: o.work_ms * 1000.0,
        duration_s: o.duration_s,
        missed: p.missed,
        lateness: Latency::from_ns(&mut p.lateness_ns),
        queue_wait: Latency::from_ns(&mut p.queue_wait_ns),
        work_wall: Latency::from_ns(&mut p.work_wall_ns),
        work_wait: Latency::from_ns(&mut p.work_wait_ns),
        cpu_s: super::process_cpu_s(),
    })
}

/// Runs a workload; returns its results as JSON.
pub fn run(w: &Workload) -> Result<serde_json::Value> {
    let value = match w {
        Workload::Periodic(o) => serde_json::to_value(periodic(o)?),
        Workload::Wakeup(o) => serde_json::to_value(wakeup::run(o)?),
        Workload::Hogs(o) => serde_json::to_value(hogs::run(o)?),
        Workload::Pipe(o) => serde_json::to_value(pipe::pingpong(o)?),
        Workload::Forkstorm(o) => serde_json::to_value(pipe::forkstorm(o)?),
        Workload::Build(o) => serde_json::to_value(build::run(o)?),
    };
    value.context("serialising the workload's results")
}

/// `brisk-guest workload ...`: runs it and prints its JSON on one line.
pub fn main(w: &Workload) -> Result<i32> {
    println!("{}", run(w)?);
    Ok(0)
}

/// `--duration-s` as a Duration, refusing nonsense.
pub fn duration(secs: f64) -> Result<Duration> {
    ensure!(
        secs.is_finite() && secs > 0.0 && secs < 86400.0,
        "--duration-s must be between 0 and 86400 (got {secs})"
    );
    Ok(Duration::from_secs_f64(secs))
}

/// The measured window (`--measure-from-s`, `--measure-s`) of a run of `run_s` seconds: its
/// start and length.
pub fn window(run_s: f64, from_s: f64, len_s: Option<f64>) -> Result<(Duration, Duration)> {
    let len_s = len_s.unwrap_or(run_s - from_s);
    if !(from_s >= 0.0 && len_s > 0.0 && from_s + len_s <= run_s + 1e-9) {
        bail!(
            "the measured window ({from_s} s from the start, {len_s} s long) is not inside the \
             {run_s} s run"
        );
    }
    Ok((
        Duration::from_secs_f64(from_s),
        Duration::from_secs_f64(len_s),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_inside_the_run() {
        let s = |d: Duration| d.as_secs_f64();
        let (from, len) = window(21.0, 0.5, Some(20.0)).unwrap();
        assert_eq!((s(from), s(len)), (0.5, 20.0));
        let (from, len) = window(10.0, 0.0, None).unwrap();
        assert_eq!((s(from), s(len)), (0.0, 10.0));
        let (from, len) = window(10.0, 2.0, None).unwrap();
        assert_eq!((s(from), s(len)), (2.0, 8.0));
        assert!(window(10.0, 0.5, Some(10.0)).is_err());
        assert!(window(10.0, -1.0, None).is_err());
        assert!(window(10.0, 10.0, None).is_err());
        assert!(window(10.0, 0.0, Some(0.0)).is_err());
    }
}
