//! Guest test `attach`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk};

/// 1. Attach, detach on SIGINT (exit 0), and fall back to the default scheduler on SIGKILL.
pub(super) fn attach() -> Result<String> {
    ensure!(
        sys::scx_state() == "disabled",
        "sched_ext is {} before start",
        sys::scx_state()
    );
    let seq0 = sys::scx_enable_seq();
    let (mut b, t_on) = Brisk::start(&[])?;
    let ops = sys::scx_ops();
    ensure!(ops.starts_with("brisk"), "root/ops is {ops:?}");
    ensure!(
        sys::scx_enable_seq() == seq0 + 1,
        "enable_seq did not advance by one"
    );
    b.stop_cleanly()?;
    ensure!(
        sys::scx_state() == "disabled",
        "state after SIGINT: {}",
        sys::scx_state()
    );
    let out = b.output();
    ensure!(
        out.contains("unregistered from user space"),
        "exit reason not printed; output:\n{out}"
    );

    let (b2, _) = Brisk::start(&[])?;
    sys::signal(&b2.child, libc::SIGKILL);
    let t_off = sys::wait_for(Duration::from_secs(5), || sys::scx_state() == "disabled")
        .context("state did not return to disabled within 5 s of SIGKILL")?;
    drop(b2);
    Ok(format!(
        "enabled as {ops} in {:.2} s; SIGINT -> exit 0, disabled; SIGKILL -> disabled in {:.2} s",
        t_on.as_secs_f64(),
        t_off.as_secs_f64()
    ))
}
