//! `brisk-guest run`: scx_brisk under a mixed load, its output shown live, for a newcomer to
//! see it work.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::bench::scenarios::{self, Outcome};
use super::sys::{self, Brisk};

/// The bench's mixed scenario (one hog per CPU, the periodic task, request pairs at 50% load,
/// a hackbench loop) for `secs` seconds.
fn mixed_load(secs: u64) -> Result<Outcome> {
    scenarios::mixed_for(secs as f64)
}

fn summary(label: &str, o: &Outcome) {
    let m = |k: &str| o.metrics.get(k).copied().unwrap_or(f64::NAN);
    println!(
        "{label}: periodic task (10 ms period, 1 ms of work) lateness p50 {:.0} us, p99 {:.0} us; \
         of which waiting runnable (the scheduler's part) p99 {:.0} us",
        m("periodic_p50_us"),
        m("periodic_p99_us"),
        m("periodic_queue_wait_p99_us"),
    );
    println!(
        "{label}: request workers woken in p50 {:.0} us, p99 {:.0} us, {:.0} requests/s; \
         hog work {:.0}/s; hackbench {:.2} s",
        m("wakeup_p50_us"),
        m("wakeup_p99_us"),
        m("requests_per_s"),
        m("hogs_work_per_s"),
        m("hackbench_time_s"),
    );
}

pub fn run(secs: u64, args: &[String]) -> Result<i32> {
    let mut args = args.to_vec();
    if !args.iter().any(|a| a.starts_with("--stats")) {
        args.extend(["--stats".to_string(), "5".to_string()]);
    }
    println!(
        "guest: {} CPUs, kernel {}",
        sys::nr_cpus(),
        sys::read_trim("/proc/sys/kernel/osrelease")
    );
    println!("== baseline: the kernel's default scheduler, 5 s of the mixed load");
    let base = mixed_load(5)?;
    summary("default scheduler", &base);

    println!(
        "== scx_brisk {} (output below), {secs} s of the mixed load",
        args.join(" ")
    );
    let mut b = Brisk::spawn(&args, true)?;
    if sys::wait_for(sys::ATTACH_TIMEOUT, sys::brisk_attached).is_none() {
        let code = sys::wait_exit(&mut b.child, Duration::from_secs(1));
        bail!(
            "scx_brisk did not attach (exit {code:?}, state {})",
            sys::scx_state()
        );
    }
    println!(
        "sched_ext: state {}, ops {}",
        sys::scx_state(),
        sys::scx_ops()
    );
    let t = Instant::now();
    let res = mixed_load(secs).context("running the mixed load")?;
    let attached = sys::brisk_attached();
    summary("scx_brisk", &res);
    let code = b.stop().unwrap_or(-1);
    println!(
        "scx_brisk {} after {:.0} s, exit code {code}; sched_ext state now {}",
        if attached {
            "stayed attached"
        } else {
            "was DETACHED"
        },
        t.elapsed().as_secs_f64(),
        sys::scx_state()
    );
    Ok(if attached { code } else { 1 })
}
