//! Guest test `request-tail`.

use anyhow::{ensure, Context, Result};

use super::helpers::median;
use crate::guest::bench::scenarios;
use crate::guest::sys::Brisk;

/// 24. Under the mixed load (a hog per CPU, the periodic task, request pairs at half load,
///     hackbench) the request workers' wakeup p99 stays under a tenth of the default
///     scheduler's, rounds interleaved in one boot, judged by the median of the per-round
///     ratios. The workers are woken by a task, so they queue in the fair order; while the
///     lane is over its share (`nr_lat_fair_deferred`, which must be > 0 here) they queue as
///     tasks that just woke. Fails where such a wakeup is charged what it ran ahead of the
///     crowd: it then sorts behind a crowd of sleepers for tens to hundreds of ms (the bench
///     measured 0.16-0.17x of the default's p99 so, 0.04x since).
pub(super) fn request_tail() -> Result<String> {
    const ROUNDS: usize = 3;
    const SECS: f64 = 6.0;
    const MAX_RATIO: f64 = 0.10;
    let mut ratios = Vec::new();
    let mut rounds = Vec::new();
    let (mut deferred, mut lat_fair) = (0, 0);
    for _ in 0..ROUNDS {
        let default = scenarios::mixed_for(SECS).context("the mixed load, default scheduler")?;
        let (mut b, _) = Brisk::start(&[])?;
        let brisk = scenarios::mixed_for(SECS).context("the mixed load, scx_brisk");
        b.stop_cleanly()?;
        let brisk = brisk?;
        deferred += b.exit_counter("nr_lat_fair_deferred").unwrap_or(0);
        lat_fair += b.exit_counter("nr_lat_fair").unwrap_or(0);
        let p99 = |o: &scenarios::Outcome| o.metrics.get("wakeup_p99_us").copied().unwrap_or(0.0);
        let (d, s) = (p99(&default), p99(&brisk));
        ensure!(
            d > 0.0 && s > 0.0,
            "a mixed run reported no request wakeups: default p99 {d} us, scx_brisk {s} us"
        );
        ratios.push(s / d);
        rounds.push(format!("{s:.0}/{d:.0} us"));
    }
    let ratio = median(&mut ratios);
    let fig = format!(
        "request wakeup p99 scx_brisk/default in {ROUNDS} interleaved rounds: {}; median ratio \
         {ratio:.3} (<= {MAX_RATIO:.2}); {deferred} of {lat_fair} worker wakeups queued while \
         the lane was over its share",
        rounds.join(", ")
    );
    ensure!(
        deferred > 0,
        "the lane never went over its share, so this load did not test its deferral: {fig}"
    );
    ensure!(
        ratio <= MAX_RATIO,
        "the request workers' wakeup tail is too long: {fig}"
    );
    Ok(fig)
}
