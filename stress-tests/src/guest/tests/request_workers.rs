//! Guest test `request-workers`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk, Procs};
use crate::guest::workloads::wakeup;

/// Request pairs at half load beside two hogs per CPU, 3 s: `(requests/s, offered/s,
/// nr_lat_fair, nr_lat_wakeups)` under scx_brisk started with `args`.
fn pairs_beside_hogs(args: &[String]) -> Result<(f64, f64, u64, u64)> {
    let (mut b, _) = Brisk::start(args)?;
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_millis(300));
    let opts = wakeup::Opts {
        duration_s: 3.0,
        pairs: None,
        work_us: 1000,
        load_pct: 50.0,
        rate_per_s: None,
    };
    let r = wakeup::run(&opts);
    drop(hogs);
    b.stop_cleanly()?;
    let r = r.context("the request pairs")?;
    let offered = 1e9 / r.interval_us / 1000.0 * r.pairs as f64;
    let counter = |name| {
        b.exit_counter(name)
            .with_context(|| format!("no {name} among the exit counters"))
    };
    Ok((
        r.requests_per_s,
        offered,
        counter("nr_lat_fair")?,
        counter("nr_lat_wakeups")?,
    ))
}

/// 21. Request workers woken through a futex by their message threads, beside two hogs per
///     CPU, are latency-critical wakeups queued in the fair order (`nr_lat_fair`, at least
///     one per request) and are served: 90 % of the requests offered at half load. The
///     control run shows the rule can fail: without latency-critical wakeups
///     (`--lat-duty-max-pct 0`) the workers get a per-task fair share (a third of a CPU each
///     against the half they ask) and fewer than 90 % are served. With
///     `--lat-lane-task-wakeups` the same wakeups take the lane instead (`nr_lat_fair` 0)
///     and are served as well.
pub(super) fn request_workers() -> Result<String> {
    let (rate, offered, fair, lane) = pairs_beside_hogs(&[])?;
    let mut figure = format!(
        "default: {rate:.0} of {offered:.0} requests/s, nr_lat_fair {fair}, nr_lat_wakeups {lane}"
    );
    ensure!(
        rate >= 0.9 * offered && fair as f64 >= rate * 3.0,
        "{figure}"
    );
    let (rate0, _, fair0, _) = pairs_beside_hogs(&["--lat-duty-max-pct".into(), "0".into()])?;
    figure += &format!("; --lat-duty-max-pct 0: {rate0:.0} requests/s, nr_lat_fair {fair0}");
    ensure!(rate0 < 0.9 * offered && fair0 == 0, "{figure}");
    let (rate2, _, fair2, lane2) = pairs_beside_hogs(&["--lat-lane-task-wakeups".into()])?;
    figure += &format!(
        "; --lat-lane-task-wakeups: {rate2:.0} requests/s, nr_lat_fair {fair2}, \
         nr_lat_wakeups {lane2}"
    );
    ensure!(rate2 >= 0.9 * offered && fair2 == 0, "{figure}");
    Ok(figure)
}
