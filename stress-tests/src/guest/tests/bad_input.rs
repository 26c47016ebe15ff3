//! Guest test `bad-input`.

use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk};

/// 6. Bad options, not root, another scheduler attached: a clear message and non-zero exit.
pub(super) fn bad_input() -> Result<String> {
    let mut checked = Vec::new();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--slice-us", "0"],
            &["slice_us", "out of range", "100..=100000"],
        ),
        (&["--slice-us", "100001"], &["slice_us", "100..=100000"]),
        (
            &["--short-burst-us", "5"],
            &["short_burst_us", "10..=100000"],
        ),
        (
            &["--burst-cap-us", "2000000"],
            &["burst_cap_us", "100..=1000000"],
        ),
        (&["--burst-ewma-shift", "9"], &["burst_ewma_shift", "0..=8"]),
        (
            &["--preempt-margin-us", "100001"],
            &["preempt_margin_us", "0..=100000"],
        ),
        (
            &["--sleep-credit-us", "1000001"],
            &["sleep_credit_us", "0..=1000000"],
        ),
        (
            &["--slice-us", "1000", "--slice-min-us", "2000"],
            &["slice_min_us", "larger than"],
        ),
        (&["--slice-us", "abc"], &["invalid value"]),
        (&["--slice-us", "-3"], &["unexpected argument '-3'"]),
        (&["--no-such-option"], &["unexpected argument"]),
        (
            &["--metrics-addr", "localhost"],
            &["--metrics-addr", "invalid socket address"],
        ),
        (
            &["--restart-on-error", "101"],
            &["--restart-on-error", "0..=100"],
        ),
        (
            &["--policy", "/nonexistent.toml"],
            &["/nonexistent.toml", "No such file"],
        ),
        (&["--policy", "/policies"], &["/policies is a directory"]),
        (
            &["--no-latency-probes", "--auto"],
            &["needs the latency probes"],
        ),
    ];
    for (args, want) in cases {
        refused(args, None, want)?;
        checked.push(args.join(" "));
    }
    refused(
        &[],
        Some(65534),
        &["needs root", "CAP_SYS_ADMIN", "CAP_BPF"],
    )?;
    checked.push("non-root".into());

    // Hostile policy files: each refused with the file named (and the line, where there is
    // one); nothing is loaded.
    use std::os::unix::fs::PermissionsExt;
    let secret = "/tmp/secret-policy.toml";
    std::fs::write(secret, "slice_us = 6000\n")?;
    std::fs::set_permissions(secret, std::fs::Permissions::from_mode(0o600))?;
    refused(
        &["--policy", secret],
        Some(65534),
        &["secret-policy.toml", "Permission denied"],
    )?;
    checked.push("unreadable policy file (uid 65534)".into());
    let hostile: [(&str, String, &[&str]); 5] = [
        (
            "nan",
            "slice_us = nan\n".into(),
            &["nan.toml:1", "slice_us"],
        ),
        (
            "huge",
            "slice_us = 99999999999999999999\n".into(),
            &["huge.toml:1"],
        ),
        (
            "negative",
            "\nsleep_credit_us = -1\n".into(),
            &["negative.toml:2", "sleep_credit_us", "out of range"],
        ),
        (
            "deep",
            format!("x = {}{}\n", "[".repeat(20_000), "]".repeat(20_000)),
            &["deep.toml:1"],
        ),
        (
            "10mb",
            "# padding\n".repeat(1_000_000),
            &["10mb.toml", "at most 65536 bytes"],
        ),
    ];
    for (name, text, want) in &hostile {
        let path = format!("/tmp/{name}.toml");
        std::fs::write(&path, text)?;
        refused(&["--policy", &path], None, want)?;
        checked.push(format!("{name} policy file"));
    }

    let (mut first, _) = Brisk::start(&[])?;
    let name = sys::scx_ops();
    let res = refused(&[], None, &["already attached", &name]);
    let still = sys::brisk_attached();
    let stopped = first.stop_cleanly();
    res?;
    ensure!(
        still,
        "the running scx_brisk was disturbed by the second instance"
    );
    stopped.context("the first instance")?;
    checked.push("second instance".into());
    Ok(format!(
        "{} cases refused: {}",
        checked.len(),
        checked.join("; ")
    ))
}

/// Runs scx_brisk to completion with `args` (as `uid` if given), expecting it to refuse.
fn refused(args: &[&str], uid: Option<u32>, want: &[&str]) -> Result<String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(sys::SCX_BRISK);
    cmd.args(args).stdin(Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let seq = sys::scx_enable_seq();
    let out = cmd.output().context("running scx_brisk")?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string();
    ensure!(
        !out.status.success(),
        "{args:?}: exit 0, expected a refusal; output: {text}"
    );
    for w in want {
        ensure!(text.contains(w), "{args:?}: message lacks {w:?}: {text}");
    }
    ensure!(
        sys::scx_enable_seq() == seq,
        "{args:?}: a scheduler was loaded anyway"
    );
    Ok(first)
}
