//! Guest test `probe`.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use super::helpers::timer_wakeups;
use crate::guest::sys::{self, Brisk};

/// 11. `scx_brisk probe`, the probes alone: under the kernel's default scheduler (nothing of
///     sched_ext attached, before or after) and beside a running scx_brisk (which stays
///     attached), it sees a thread's 1000 timer wakeups and classes them short.
pub(super) fn probe() -> Result<String> {
    let mut fig = Vec::new();
    for beside in [false, true] {
        let brisk = if beside {
            Some(Brisk::start(&[])?.0)
        } else {
            ensure!(sys::scx_state() == "disabled", "a scheduler is attached");
            None
        };
        let reports = run_probe(4)?;
        ensure!(
            reports.len() >= 3,
            "{} reports; want intervals and a total",
            reports.len()
        );
        let total = &reports[reports.len() - 1];
        let count = |class: &str| total["latency"]["wakeup"][class]["count"].as_u64();
        let all = count("all").context("no wakeup count")?;
        ensure!(all >= 1000, "only {all} wakeups seen, 1000 made: {total}");
        // The timer thread runs microseconds per 2 ms sleep: its wakeups are classed short,
        // but for the first few while its average falls from where a new task starts (the
        // border itself). ("all" is the classes' sum, so only the split itself is checked.)
        let short = count("short").unwrap_or(0);
        ensure!(
            short >= 990,
            "only {short} short wakeups of {all}, 1000 made by a thread that runs microseconds: {total}"
        );
        ensure!(
            total["bpf"]["ns_per_call"]["tp_switch"].as_f64().is_some(),
            "no cost for the probe's tp_switch: {total}"
        );
        let p99 = total["latency"]["wakeup"]["all"]["p99_us"]
            .as_f64()
            .context("no p99")?;
        match brisk {
            Some(mut b) => {
                ensure!(sys::brisk_attached(), "scx_brisk detached beside the probe");
                b.stop_cleanly()?;
                fig.push(format!(
                    "beside scx_brisk: {all} wakeups ({short} short), p99 {p99:.0} us"
                ));
            }
            None => {
                ensure!(
                    sys::scx_state() == "disabled",
                    "the probe attached a scheduler"
                );
                fig.push(format!(
                    "under the default scheduler: {all} wakeups ({short} short), p99 {p99:.0} us"
                ));
            }
        }
    }
    Ok(fig.join("; "))
}

/// `scx_brisk probe --stats-json` for `secs` seconds while this process makes 1000 timer
/// wakeups: its reports (intervals, then the total), every stdout line checked as JSON.
fn run_probe(secs: u32) -> Result<Vec<serde_json::Value>> {
    let probe = Command::new(sys::SCX_BRISK)
        .args([
            "probe",
            "--duration-s",
            &secs.to_string(),
            "--stats",
            "1",
            "--stats-json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting scx_brisk probe")?;
    // Let it load and attach before the wakeups start.
    std::thread::sleep(Duration::from_millis(700));
    timer_wakeups(1000, false)?;
    let out = probe.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "scx_brisk probe: {}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| {
            serde_json::from_str(l).with_context(|| format!("probe stdout line not JSON: {l:?}"))
        })
        .collect()
}
