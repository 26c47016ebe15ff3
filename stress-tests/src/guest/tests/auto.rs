//! Guest test `auto`.

use std::time::Duration;

use anyhow::{ensure, Result};

use super::helpers::stats_lines;
use crate::guest::sys::{self, Brisk, Procs};
use crate::guest::workloads;

/// 10. The auto-tuner, turned on from the command line (`--auto`; auto.toml's mode = "auto" is
///     applied live in the control test): from the relaxed end given (20 ms slices, 30 ms
///     margin), beside a periodic task and 2 hogs per CPU, it tightens the slice and margin
///     until the short class's p99 (the probes) is under the target, or as far as it can go
///     with the p99 cut threefold, logs each change, and --stats names it as the source.
///     The latency-critical lane is off: with it, the timer-woken periodic task preempts at
///     once whatever the slice and margin, its p99 is under the target from the relaxed end
///     and the tuner rightly has nothing to do (in the VM: 1.4 ms, no change logged).
pub(super) fn auto() -> Result<String> {
    const TARGET_US: f64 = 2000.0;
    let args: Vec<String> = [
        "--lat-duty-max-pct",
        "0",
        "--auto",
        "--slice-us",
        "20000",
        "--preempt-margin-us",
        "30000",
        "--target-p99-us",
        "2000",
        "--stats-json",
        "--stats",
        "1",
    ]
    .map(String::from)
    .to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    // 20 s of the periodic task (10 ms period, 1 ms work): 2000 wakeups.
    let res = workloads::periodic(Duration::from_millis(10), Duration::from_millis(1), 2000);
    drop(hogs);
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    let out = b.output();
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("auto-tuner: level"))
        .collect();
    ensure!(
        !changes.is_empty(),
        "the auto-tuner changed nothing:\n{out}"
    );
    let lines = stats_lines(&b);
    let p99 = |v: &serde_json::Value| -> Option<f64> {
        let s = &v["latency"]["wakeup"]["short"];
        (s["count"].as_u64()? >= 20)
            .then(|| s["p99_us"].as_f64())
            .flatten()
    };
    let series: Vec<f64> = lines.iter().filter_map(p99).collect();
    ensure!(
        series.len() >= 10,
        "only {} intervals with short wakeups",
        series.len()
    );
    let first = series[0];
    let mut last: Vec<f64> = series[series.len() - 8..].to_vec();
    last.sort_by(|a, b| a.total_cmp(b));
    let settled = last[last.len() / 2];
    let final_value = |key: &str| {
        lines
            .last()
            .and_then(|l| {
                l["settings"]["values"][key]["value"]
                    .as_str()
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    let (final_slice, final_margin) = (final_value("slice_us"), final_value("preempt_margin_us"));
    let auto_named = lines.iter().any(|l| l["settings"]["last_change"] == "auto");
    let q = |p| workloads::quantile(&res.lateness_ns, p) as f64 / 1000.0;
    let fig = format!(
        "short p99 {first:.0} us in the first interval -> {settled:.0} us (median of the last 8) \
         vs target {TARGET_US:.0} us; {} tuner changes, final slice_us {final_slice} (from 20000), \
         preempt_margin_us {final_margin} (from 30000); \
         the periodic task's own lateness p50 {:.0} us p99 {:.0} us; first change: {}",
        changes.len(),
        q(0.5),
        q(0.99),
        changes[0].trim()
    );
    // The target is met, or the tuner went as far as it can (slice at slice_min_us, 4000 by
    // default, and no margin) and that cut the p99 at least threefold: on a host whose timer
    // delivery alone puts the short class's p99 over 2 ms, no setting meets the target, and
    // the tuner's job is then to sit at the tight end.
    let at_tight_end = final_slice == "4000" && final_margin == "0";
    ensure!(
        settled < TARGET_US || (at_tight_end && settled * 3.0 <= first),
        "neither under the target nor at the tight end with the p99 cut threefold: {fig}"
    );
    let fig = if settled < TARGET_US {
        fig
    } else {
        format!("{fig} (target not reachable here: the tuner ended at the tight end)")
    };
    ensure!(
        final_slice.parse::<u64>().unwrap_or(20000) < 20000,
        "the slice was not lowered: {fig}"
    );
    ensure!(
        final_margin.parse::<u64>().unwrap_or(30000) < 30000,
        "the preemption margin was not lowered: {fig}"
    );
    ensure!(
        auto_named,
        "--stats-json never named auto as the last change: {fig}"
    );
    Ok(fig)
}
