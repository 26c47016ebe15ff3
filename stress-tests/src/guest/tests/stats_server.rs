//! Guest test `stats-server`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use scx_stats::StatsClient;
use serde_json::Value;

use crate::guest::sys::{self, Brisk, Procs};

/// Where upstream's scx_stats clients look for a running scheduler's stats.
const STATS_SOCKET: &str = "/var/run/scx/root/stats";

/// 14. A generic scx_stats client (the crate's own, knowing nothing of scx_brisk's types)
///     reads a live scx_brisk at the standard socket: `stats_meta` describes the top-level
///     stats and their fields, and `stats` answers with the interval since the previous
///     request, in which the hogs running meanwhile were dispatched and wakeups measured.
pub(super) fn stats_server() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let mut client = StatsClient::new()
        .set_path(STATS_SOCKET)
        .connect(None)
        .with_context(|| format!("connecting to {STATS_SOCKET}"))?;
    let meta: Value = client.request("stats_meta", vec![])?;
    let top = meta
        .as_object()
        .and_then(|m| m.values().find(|s| s["top"] == "true"))
        .context(format!("no top-level stats in stats_meta: {meta}"))?;
    let fields = top["fields"]
        .as_object()
        .context("top stats without fields")?;
    let undescribed: Vec<&String> = fields
        .iter()
        .filter(|(_, f)| !f["desc"].is_string())
        .map(|(k, _)| k)
        .collect();
    ensure!(
        undescribed.is_empty(),
        "fields without a description: {undescribed:?}"
    );
    let _: Value = client.request("stats", vec![])?;
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_secs(2));
    let stats: Value = client.request("stats", vec![])?;
    drop(hogs);
    b.stop_cleanly()?;
    let interval = stats["interval_s"].as_f64().unwrap_or(0.0);
    let dispatched = stats["counters"]["nr_dispatched"].as_u64().unwrap_or(0);
    ensure!(
        (1.5..10.0).contains(&interval) && dispatched > 0,
        "stats over {interval:.2} s with {dispatched} dispatches (want about 2 s, some): {stats}"
    );
    let wakeups = stats["latency"]["wakeup.all"]["count"]
        .as_u64()
        .unwrap_or(0);
    ensure!(
        wakeups > 0,
        "no wakeup latency samples in the stats: {stats}"
    );
    Ok(format!(
        "stats_meta: {} top-level fields, all described; stats: {interval:.2} s, \
         {dispatched} dispatches, {wakeups} wakeups measured, {} runnable",
        fields.len(),
        stats["nr_runnable"]
    ))
}
