//! Guest test `costs`.

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};

use super::helpers::median;
use super::latency::json_stats;
use crate::guest::bench::scenarios;
use crate::guest::sys::{self, Brisk};

/// The callbacks every load makes scx_brisk run, whose cost must be reported.
const CALLBACKS: &[&str] = &["select_cpu", "enqueue", "dispatch", "running", "stopping"];

/// 13. What each BPF program costs per call under the mixed load (hogs, the periodic task,
///     wakeup pairs, hackbench; sized to the guest's CPUs), from BPF run-time statistics in
///     --stats-json: the median over 2 s intervals. Checks that every callback the load runs
///     reports a cost; the figure is what the scale targets read (docs/testing.md: the same
///     test at 2, 8 and 16 vCPUs, under --timing icount so that time is instructions).
pub(super) fn costs() -> Result<String> {
    let args: Vec<String> = ["--stats-json", "--stats", "2"].map(String::from).to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    scenarios::mixed_for(12.0).context("the mixed scenario")?;
    b.stop_cleanly()?;
    let lines = json_stats(&b)?;
    let mut per_prog: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for v in &lines {
        if let Some(costs) = v["bpf"]["ns_per_call"].as_object() {
            for (prog, ns) in costs {
                if let Some(ns) = ns.as_f64().filter(|ns| *ns > 0.0) {
                    per_prog.entry(prog.clone()).or_default().push(ns);
                }
            }
        }
    }
    let mut bpf_pct: Vec<f64> = lines
        .iter()
        .filter_map(|v| v["bpf"]["bpf_cpu_pct"].as_f64())
        .collect();
    ensure!(!bpf_pct.is_empty(), "no bpf_cpu_pct in the stats");
    let medians: BTreeMap<String, f64> = per_prog
        .iter_mut()
        .map(|(p, v)| (p.clone(), median(v)))
        .collect();
    let missing: Vec<&&str> = CALLBACKS
        .iter()
        .filter(|c| !medians.contains_key(**c))
        .collect();
    ensure!(
        missing.is_empty(),
        "no per-call cost for {missing:?} in {} stats lines: {medians:?}",
        lines.len()
    );
    let shape = sys::shape();
    let list: Vec<String> = medians
        .iter()
        .map(|(p, ns)| format!("{p} {ns:.0}"))
        .collect();
    Ok(format!(
        "{shape}: ns per call under the mixed load (median of {} intervals): {}; all programs \
         {:.1}% of the CPUs",
        lines.len(),
        list.join(", "),
        median(&mut bpf_pct)
    ))
}
