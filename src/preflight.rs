//! Checks made before anything is loaded, each with a message a user can act on.

use std::fs;
use std::path::Path;

use anyhow::{bail, Result};

const SCHED_EXT_DIR: &str = "/sys/kernel/sched_ext";

/// The state of the kernel's sched_ext core ("disabled", "enabled", ...).
pub fn sched_ext_state() -> Option<String> {
    fs::read_to_string(Path::new(SCHED_EXT_DIR).join("state"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The name of the attached sched_ext scheduler, if any.
pub fn attached_scheduler() -> Option<String> {
    let state = sched_ext_state()?;
    if state == "disabled" {
        return None;
    }
    let ops = fs::read_to_string(Path::new(SCHED_EXT_DIR).join("root/ops"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Some(if ops.is_empty() {
        format!("unknown scheduler (state: {state})")
    } else {
        ops
    })
}

/// Root, a sched_ext kernel, and no other sched_ext scheduler attached.
pub fn check_environment() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("scx_brisk needs root: CAP_SYS_ADMIN and CAP_BPF (run it with sudo)");
    }
    if !Path::new(SCHED_EXT_DIR).exists() {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        bail!(
            "this kernel ({}) has no sched_ext: scx_brisk needs Linux 6.12+ built with \
             CONFIG_SCHED_CLASS_EXT=y. To run it in a VM with such a kernel instead, run \
             `stress-tests/vm run` from the scx_brisk source tree",
            release.trim()
        );
    }
    if let Some(name) = attached_scheduler() {
        bail!(
            "another sched_ext scheduler is already attached: {name}; stop it before \
             starting scx_brisk"
        );
    }
    Ok(())
}
