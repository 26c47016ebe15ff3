//! `brisk-guest run`: scx_brisk under a mixed load, its output shown live, for a newcomer to
//! see it work.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::sys::{self, Brisk, Procs};
use super::workloads;

/// Periodic task (10 ms period, 1 ms work) beside one hog per CPU and a hackbench loop.
fn mixed_load(secs: u64) -> Result<workloads::Periodic> {
    let hogs = Procs::hogs(sys::nr_cpus(), &[])?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let hackbench = std::thread::spawn(move || {
        let mut runs = 0;
        while !flag.load(Ordering::Relaxed) {
            let ok = Command::new("hackbench")
                .args(["-g", "2", "-l", "50"])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            runs += ok as u32;
        }
        runs
    });
    let res = workloads::periodic(
        Duration::from_millis(10),
        Duration::from_millis(1),
        secs as usize * 100,
    );
    stop.store(true, Ordering::Relaxed);
    let runs = hackbench.join().unwrap_or(0);
    drop(hogs);
    println!(
        "    ({} hogs, {runs} hackbench runs alongside)",
        sys::nr_cpus()
    );
    Ok(res)
}

fn summary(label: &str, p: &workloads::Periodic) {
    let q = |x| workloads::quantile(&p.lateness_ns, x) as f64 / 1000.0;
    println!(
        "{label}: periodic task wakeup lateness p50 {:.0} us, p99 {:.0} us, max {:.0} us ({} wakeups, {} overruns)",
        q(0.5),
        q(0.99),
        q(1.0),
        p.lateness_ns.len(),
        p.missed
    );
    if !p.queue_wait_ns.is_empty() {
        let w = |x| workloads::quantile(&p.queue_wait_ns, x) as f64 / 1000.0;
        println!(
            "{label}: of which waiting runnable (the scheduler's part) p50 {:.0} us, p99 {:.0} us",
            w(0.5),
            w(0.99)
        );
    }
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
    if sys::wait_for(Duration::from_secs(20), sys::brisk_attached).is_none() {
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
