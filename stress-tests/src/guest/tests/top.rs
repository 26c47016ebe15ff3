//! Guest test `top`: `scx_brisk top --once --json`, beside scx_brisk and under the default
//! scheduler.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::helpers::periodic_workload;
use crate::guest::sys::{self, Brisk, Procs};

/// 19. `scx_brisk top --once --json --interval-s 3 --short-burst-us 4000` beside a periodic
///     task (1 ms of work every 10 ms) and a hog per CPU, once with scx_brisk attached and once
///     under the default scheduler: the periodic task's row has its name, at least half its 300
///     wakeups, class short, a wakeup p99, a CPU share of 5-30 % and a hog among the tasks it
///     waited behind; each hog's row (hogs never sleep) has its name, class hog and over 25 %
///     of a CPU. The border is twice the default: the guest's switches see a 1 ms burst as
///     1.3-1.8 ms (interrupts and the clock reads count), too close to the default 2 ms.
pub(super) fn top() -> Result<String> {
    let mut figures = Vec::new();
    for under in ["scx_brisk", "the default scheduler"] {
        let brisk = if under == "scx_brisk" {
            Some(Brisk::start(&[])?.0)
        } else {
            None
        };
        let hogs = Procs::hogs(sys::nr_cpus(), &[])?;
        let mut cmd = periodic_workload(8)?;
        cmd.stdout(Stdio::null());
        let periodic = Procs::spawn(cmd)?;
        std::thread::sleep(Duration::from_millis(500));
        let out = Command::new(sys::SCX_BRISK)
            .args([
                "top",
                "--once",
                "--json",
                "--interval-s",
                "3",
                "--limit",
                "10000",
                "--short-burst-us",
                "4000",
            ])
            .stdin(Stdio::null())
            .output()
            .context("running scx_brisk top")?;
        ensure!(
            out.status.success(),
            "under {under}: scx_brisk top failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "under {under}: top's output is not a JSON array: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        let row = |pid: u32| rows.iter().find(|r| r["pid"] == pid);
        let hog_pids: Vec<u32> = hogs.0.iter().map(|c| c.id()).collect();
        let p = row(periodic.0[0].id())
            .with_context(|| format!("under {under}: no row for the periodic task"))?;
        let (wakeups, cpu) = (
            p["wakeups"].as_u64().unwrap_or(0),
            p["cpu_pct"].as_f64().unwrap_or(0.0),
        );
        let p99 = p["p99_us"].as_f64();
        let burst = p["burst_us"].as_f64().unwrap_or(0.0);
        let behind: Vec<u64> = p["behind"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["pid"].as_u64()).collect())
            .unwrap_or_default();
        ensure!(
            p["comm"] == "periodic"
                && wakeups >= 150
                && p["class"] == "short"
                && p99.is_some()
                && (5.0..=30.0).contains(&cpu),
            "under {under}: periodic row {p}"
        );
        ensure!(
            behind.iter().any(|b| hog_pids.contains(&(*b as u32))),
            "under {under}: the periodic task waited behind {behind:?}, no hog ({hog_pids:?})"
        );
        for pid in &hog_pids {
            let h = row(*pid).with_context(|| format!("under {under}: no row for hog {pid}"))?;
            ensure!(
                h["comm"] == "brisk-guest"
                    && h["class"] == "hog"
                    && h["cpu_pct"].as_f64().unwrap_or(0.0) > 25.0,
                "under {under}: hog row {h}"
            );
        }
        drop((periodic, hogs));
        if let Some(mut b) = brisk {
            ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
            b.stop_cleanly()?;
        } else {
            ensure!(
                sys::scx_state() == "disabled",
                "a sched_ext scheduler was attached"
            );
        }
        figures.push(format!(
            "under {under}: {} rows, periodic {wakeups} wakeups, burst {burst:.0} us, p99 {:.0} us, {cpu:.1} % CPU, behind {behind:?}",
            rows.len(),
            p99.unwrap_or(0.0)
        ));
    }
    Ok(figures.join("; "))
}
