//! Guest test `lane-resume`.

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};

use super::helpers::median;
use crate::guest::bench::scenarios;
use crate::guest::sys::Brisk;

/// 23. A hog the latency-critical lane preempts resumes the rest of its slice after the lane's
///     task (lat_resume) instead of handing its CPU to the fair queue's first task. Under the
///     mixed load (a hog per CPU, the periodic task, wakeup pairs, hackbench) the hogs then do
///     at least a tenth more work than under --no-lat-resume, and the periodic task's p99 is
///     no worse than a quarter beyond it; rounds interleaved in one boot, judged by the medians
///     of the per-round ratios (the guest test measured 1.24-1.29x the work, the 2-vCPU
///     bench 1.19-1.29x, with the request wakeup p99 a tenth to a fifth longer).
///     Fails where the preempted hog is queued in the fair order again, or the resume never
///     happens (nr_lat_resumed).
pub(super) fn lane_resume() -> Result<String> {
    const ROUNDS: usize = 3;
    const SECS: f64 = 6.0;
    const MIN_HOG_RATIO: f64 = 1.10;
    const MAX_PERIODIC_RATIO: f64 = 1.25;
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut rounds = Vec::new();
    let (mut resumed, mut lat_preempts) = (0, 0);
    for _ in 0..ROUNDS {
        let mut pair = Vec::new();
        for off in [false, true] {
            let args: Vec<String> = if off {
                vec!["--no-lat-resume".to_string()]
            } else {
                Vec::new()
            };
            let (mut b, _) = Brisk::start(&args)?;
            let o = scenarios::mixed_for(SECS).context("the mixed scenario")?;
            b.stop_cleanly()?;
            if !off {
                resumed += b.exit_counter("nr_lat_resumed").unwrap_or(0);
                lat_preempts += b.exit_counter("nr_lat_preempts").unwrap_or(0);
            }
            let m = |k: &str| o.metrics.get(k).copied().unwrap_or(0.0);
            pair.push([
                m("hogs_work_per_s"),
                m("periodic_p99_us"),
                m("wakeup_p99_us"),
            ]);
        }
        let (on, off) = (pair[0], pair[1]);
        ensure!(
            off[0] > 0.0 && off[1] > 0.0 && off[2] > 0.0,
            "the mixed load under --no-lat-resume reported no hog work or tails: {off:?}"
        );
        for (i, k) in ["hog work", "periodic p99", "request p99"]
            .iter()
            .enumerate()
        {
            ratios.entry(k).or_default().push(on[i] / off[i]);
        }
        rounds.push(format!(
            "hog work {:.0}/{:.0} per s, periodic p99 {:.0}/{:.0} us, request p99 {:.0}/{:.0} us",
            on[0], off[0], on[1], off[1], on[2], off[2]
        ));
    }
    let mut med = BTreeMap::new();
    for (k, v) in ratios.iter_mut() {
        med.insert(*k, median(v));
    }
    let fig = format!(
        "{ROUNDS} interleaved rounds (on/off): {}; medians of on/off: hog work {:.2} (>= \
         {MIN_HOG_RATIO:.2}), periodic p99 {:.2} (<= {MAX_PERIODIC_RATIO:.2}), request p99 \
         {:.2}; nr_lat_resumed {resumed} of {lat_preempts} lane preemptions",
        rounds.join("; "),
        med["hog work"],
        med["periodic p99"],
        med["request p99"]
    );
    ensure!(resumed > 0, "no hog resumed after the lane's task: {fig}");
    ensure!(
        med["hog work"] >= MIN_HOG_RATIO,
        "the hogs gained too little from resuming: {fig}"
    );
    ensure!(
        med["periodic p99"] <= MAX_PERIODIC_RATIO,
        "resuming the hogs delayed the lane: {fig}"
    );
    Ok(fig)
}
