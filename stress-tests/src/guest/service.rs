//! The service test (`brisk-guest test --service`): scx_brisk as `dist/install` installs it
//! and systemd runs it, in a guest that boots Debian with systemd as PID 1 (`stress-tests/vm
//! test --service` builds that guest). Each step is what a user of the unit relies on.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use brisk_stress::SERVICE_CHECKOUT;
use scx_stats::StatsClient;
use serde_json::Value;

use super::sys;
use super::tests::{Cases, TestFn};

pub const TESTS: &[(&str, TestFn)] = &[("service", service)];

const UNIT: &str = "scx_brisk.service";
const DEFAULTS: &str = "/etc/default/scx_brisk";
const BIN: &str = "/usr/local/bin/scx_brisk";
const STATS_SOCKET: &str = "/run/scx/root/stats";
/// The scheduler's load and verification under emulation.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd`; its stdout, or an error with its stderr.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn systemctl(args: &[&str]) -> Result<String> {
    output(Command::new("systemctl").args(args))
}

/// A property of the unit (`systemctl show -p NAME --value`), "" if it cannot be read.
fn prop(name: &str) -> String {
    systemctl(&["show", "-p", name, "--value", UNIT])
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn main_pid() -> u32 {
    prop("MainPID").parse().unwrap_or(0)
}

/// The unit's journal of this boot, message text only.
fn journal() -> String {
    output(Command::new("journalctl").args(["-b", "-u", UNIT, "--no-pager", "-o", "cat"]))
        .unwrap_or_else(|e| format!("(journalctl failed: {e:#})"))
}

/// The unit is active with a main process and scx_brisk is the attached scheduler.
fn running() -> bool {
    prop("ActiveState") == "active" && main_pid() != 0 && sys::brisk_attached()
}

/// Waits until `running()`, or fails with the unit's state and journal.
fn wait_running(timeout: Duration) -> Result<Duration> {
    sys::wait_for(timeout, running).with_context(|| {
        format!(
            "{UNIT} not running with scx_brisk attached after {} s: ActiveState {}, \
             SubState {}, Result {}, sched_ext {} ({}); journal:\n{}",
            timeout.as_secs(),
            prop("ActiveState"),
            prop("SubState"),
            prop("Result"),
            sys::scx_state(),
            sys::scx_ops(),
            journal()
        )
    })
}

/// 1. The README's install command, `dist/install && systemctl enable --now scx_brisk`, run
///    in a checkout, installs, enables and starts the unit, and scx_brisk attaches; the unit's
///    hardening lets it load, serve scx_stats at the standard path
///    and take root's `ctl` writes; `systemctl reload` re-reads the policy in place; a crash
///    (SIGKILL) is restarted by `Restart=on-failure`; `systemctl stop` detaches cleanly; bad
///    flags fail the start once, with the message in the journal, and are not restarted in a
///    loop.
fn service() -> Result<String> {
    let mut cases = Cases::new("service");
    cases.run("installed and enabled as the README says", || {
        output(
            Command::new(format!("{SERVICE_CHECKOUT}/dist/install")).current_dir(SERVICE_CHECKOUT),
        )?;
        systemctl(&["enable", "--now", UNIT])?;
        let waited = wait_running(START_TIMEOUT)?;
        let enabled = prop("UnitFileState");
        ensure!(
            enabled == "enabled",
            "UnitFileState {enabled:?}, want enabled"
        );
        Ok(format!(
            "{} attached by pid {} {:.1} s after `systemctl enable --now`, unit {enabled}",
            sys::scx_ops(),
            main_pid(),
            waited.as_secs_f64()
        ))
    });
    cases.run("stats and control sockets", || {
        let mut client = StatsClient::new()
            .set_path(STATS_SOCKET)
            .connect(None)
            .with_context(|| format!("connecting to {STATS_SOCKET}"))?;
        let stats: Value = client.request("stats", vec![])?;
        ensure!(
            stats["counters"]["nr_dispatched"].as_u64().is_some(),
            "no counters in the stats: {stats}"
        );
        output(Command::new(BIN).args(["ctl", "set", "slice_us=7000"]))?;
        let show = output(Command::new(BIN).args(["ctl", "show"]))?;
        let line = show
            .lines()
            .find(|l| l.contains("slice_us"))
            .with_context(|| format!("no slice_us in `ctl show`:\n{show}"))?;
        ensure!(
            line.contains("7000") && line.contains("ctl"),
            "after `ctl set slice_us=7000`: {line}"
        );
        Ok(format!("scx_stats at {STATS_SOCKET}; ctl: {}", line.trim()))
    });
    cases.run("reload re-reads the policy", || {
        let pid = main_pid();
        let logged = |log: &str| log.matches("SIGHUP: re-read /etc/scx_brisk/").count();
        let before = logged(&journal());
        systemctl(&["reload", UNIT])?;
        let reread = sys::wait_for(Duration::from_secs(10), || logged(&journal()) > before);
        ensure!(
            reread.is_some(),
            "no \"SIGHUP: re-read\" in the journal after reload:\n{}",
            journal()
        );
        ensure!(
            running() && main_pid() == pid,
            "after reload: pid {} (was {pid}), attached {}",
            main_pid(),
            sys::brisk_attached()
        );
        Ok(format!("pid {pid} re-read its policy, still attached"))
    });
    cases.run("restarted after a crash", || {
        let (pid, seq) = (main_pid(), sys::scx_enable_seq());
        ensure!(pid != 0, "no main pid");
        // SAFETY: kill(2) on the unit's main process.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let waited = sys::wait_for(Duration::from_secs(60), || {
            running() && main_pid() != pid && sys::scx_enable_seq() > seq
        })
        .with_context(|| {
            format!(
                "not running again 60 s after SIGKILL: state {}, pid {}; journal:\n{}",
                prop("ActiveState"),
                main_pid(),
                journal()
            )
        })?;
        let restarts = prop("NRestarts");
        ensure!(restarts == "1", "NRestarts {restarts}, want 1");
        Ok(format!(
            "pid {pid} killed, pid {} attached {:.1} s later (NRestarts 1)",
            main_pid(),
            waited.as_secs_f64()
        ))
    });
    cases.run("stop detaches cleanly", || {
        systemctl(&["stop", UNIT])?;
        let (state, result, status) = (prop("ActiveState"), prop("Result"), prop("ExecMainStatus"));
        ensure!(
            state == "inactive" && result == "success" && status == "0",
            "after stop: ActiveState {state}, Result {result}, exit status {status}"
        );
        ensure!(
            sys::scx_state() == "disabled",
            "sched_ext {} after stop",
            sys::scx_state()
        );
        Ok("inactive, exit 0, the default scheduler back".to_string())
    });
    cases.run("bad flags fail once", || {
        let kept = std::fs::read_to_string(DEFAULTS).context(DEFAULTS)?;
        std::fs::write(DEFAULTS, "SCX_BRISK_FLAGS=\"--no-such-flag\"\n").context(DEFAULTS)?;
        let seq = sys::scx_enable_seq();
        let started = systemctl(&["start", UNIT]);
        let failed = sys::wait_for(Duration::from_secs(30), || prop("ActiveState") == "failed");
        // Settle: a restart (which must not come) would be due 2 s after the failure.
        std::thread::sleep(Duration::from_secs(4));
        let (state, result) = (prop("ActiveState"), prop("Result"));
        let log = journal();
        std::fs::write(DEFAULTS, kept).context(DEFAULTS)?;
        systemctl(&["reset-failed", UNIT])?;
        started?;
        ensure!(
            failed.is_some() && state == "failed" && result == "exit-code",
            "with --no-such-flag: ActiveState {state}, Result {result}"
        );
        ensure!(
            sys::scx_enable_seq() == seq,
            "a scheduler was attached with bad flags"
        );
        // One start, one message: each restart would log it again.
        let msgs: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("--no-such-flag"))
            .collect();
        let [msg] = msgs[..] else {
            bail!(
                "{} messages about --no-such-flag in the journal (want 1: no restart):\n{log}",
                msgs.len()
            );
        };
        // And the service starts again once the flags are fixed.
        systemctl(&["start", UNIT])?;
        wait_running(Duration::from_secs(60))?;
        systemctl(&["stop", UNIT])?;
        Ok(format!("failed once, not restarted: {}", msg.trim()))
    });
    cases.finish()
}
