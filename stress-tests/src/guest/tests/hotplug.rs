//! Guest test `hotplug`.

use anyhow::{ensure, Context, Result};

use super::helpers::{brisk_cmd, ctl_show, shown};
use crate::guest::sys::{self, Brisk};

/// 7. CPU hotplug while attached: the kernel ejects the scheduler with a restart request and
///    scx_brisk reloads itself (for the offline and for the online transition).
pub(super) fn hotplug() -> Result<String> {
    const ONLINE: &str = "/sys/devices/system/cpu/cpu1/online";
    ensure!(
        std::path::Path::new(ONLINE).exists(),
        "{ONLINE} missing: no second CPU to unplug"
    );
    // Read before starting: enable_seq can lag the state file by a moment.
    let seq0 = sys::scx_enable_seq();
    // Settings from all three sources (a policy file, the command line, ctl) must survive
    // the reloads.
    let args: Vec<String> = [
        "--policy",
        "/policies/interactive.toml",
        "--slice-us",
        "4000",
    ]
    .map(String::from)
    .to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    let (ok, out) = brisk_cmd(&["ctl", "set", "preempt_margin_us=700"], None)?;
    ensure!(ok, "ctl set preempt_margin_us=700: {out}");
    let before = ctl_show()?;
    let restarts = |b: &Brisk| b.output().matches("asked for a restart").count();
    let mut figures = Vec::new();
    for (value, want) in [("0", 1), ("1", 2)] {
        std::fs::write(ONLINE, value).with_context(|| format!("writing {value} to {ONLINE}"))?;
        // A reload is an attach: as slow as one under emulation (sys::ATTACH_TIMEOUT).
        let t = sys::wait_for(sys::ATTACH_TIMEOUT, || {
            restarts(&b) >= want && sys::brisk_attached()
        })
        .with_context(|| {
            format!(
                "no restart after cpu1 online={value} (state {}); output:\n{}",
                sys::scx_state(),
                b.output()
            )
        })?;
        let after = ctl_show()?;
        ensure!(
            after == before,
            "settings changed across the reload after online={value}: {before} -> {after}"
        );
        figures.push(format!(
            "online={value}: reattached in {:.1} s",
            t.as_secs_f64()
        ));
    }
    figures.push(format!(
        "settings kept (slice_us {:?}, preempt_margin_us {:?}, short_burst_us {:?})",
        shown(&before, "slice_us"),
        shown(&before, "preempt_margin_us"),
        shown(&before, "short_burst_us")
    ));
    let seq = sys::scx_enable_seq();
    b.stop_cleanly().context("stopping after the hotplug")?;
    ensure!(
        seq >= seq0 + 2,
        "enable_seq went {seq0} -> {seq}: expected two re-enables"
    );
    Ok(format!(
        "{}; enable_seq {seq0} -> {seq}; exit 0",
        figures.join(", ")
    ))
}
