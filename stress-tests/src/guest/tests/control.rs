//! Guest test `control`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use super::helpers::{brisk_cmd, ctl_show, raw_exchange, shown, stats_lines};
use super::Cases;
use crate::guest::sys::{self, Brisk, Procs};

/// 9. Runtime control of a running scx_brisk, all without a reload (same enable_seq):
///    `ctl set` of the slice changes the hogs' measured stints within 2 s; `ctl apply` of each
///    shipped policy; a bad value, a broken file and a non-root caller are refused with the
///    running values unchanged; SIGHUP re-reads --policy; `--monitor` reads the stats from a
///    second process.
pub(super) fn control() -> Result<String> {
    let policy = "/tmp/control-policy.toml";
    // slice_min_us low enough for the ctl set slice_us=1000 leg below.
    std::fs::write(
        policy,
        "description = \"test\"\nslice_us = 40000\nslice_min_us = 500\n",
    )?;
    let seq0 = sys::scx_enable_seq();
    let args: Vec<String> = ["--stats-json", "--stats", "1", "--policy", policy]
        .map(String::from)
        .to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    let seq = sys::scx_enable_seq();
    ensure!(seq == seq0 + 1, "enable_seq {seq0} -> {seq} at start");
    let mut cases = Cases::new("control");

    cases.run("policy file at start", || {
        let v = ctl_show()?;
        ensure!(
            shown(&v, "slice_us") == ("40000".into(), format!("policy {policy}")),
            "slice_us from the policy file: {:?}",
            shown(&v, "slice_us")
        );
        Ok(format!("slice_us 40000 from {policy}"))
    });
    cases.run("socket root-only", || {
        // Only root reaches the channel: the directory is root's with mode 0700, the socket 0600.
        {
            use std::os::unix::fs::MetadataExt;
            let dir = std::fs::metadata("/run/scx_brisk")?;
            let sock = std::fs::metadata("/run/scx_brisk/ctl.sock")?;
            ensure!(
                dir.uid() == 0 && dir.mode() & 0o777 == 0o700 && sock.mode() & 0o777 == 0o600,
                "control channel modes: dir uid {} mode {:o}, socket mode {:o}",
                dir.uid(),
                dir.mode() & 0o777,
                sock.mode() & 0o777
            );
        }
        Ok("/run/scx_brisk 0700 root, ctl.sock 0600".to_string())
    });
    cases.run("ctl set moves the hogs' stints", || {
        // The slice, changed live, shows in the hogs' stints. 4 hogs on 2 CPUs: at slice_us 40000
        // a stint is about half the slice (~20 ms), at 1000 one 4 ms tick. Each change must move the
        // stint by half or double from where it was, within 2 s.
        let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
        let base = hog_run_after(&b, stats_lines(&b).len(), Duration::from_secs(4), |_| true)
            .context("no stats line with hog stints")?
            .0;
        let mut stints = vec![format!(
            "slice_us=40000 (policy): hog stint {:.1} ms",
            base / 1000.0
        )];
        let mut prev = base;
        for (slice, down) in [("1000", true), ("40000", false)] {
            let seen = stats_lines(&b).len();
            let (ok, out) = brisk_cmd(&["ctl", "set", &format!("slice_us={slice}")], None)?;
            ensure!(
                ok && out.contains("in use by the BPF scheduler"),
                "ctl set slice_us={slice}: {out}"
            );
            // From here the change is live. It must show in the first whole 1 s stats interval
            // after it (the line after the one under way at the change), which starts within 1 s
            // and ends within 2 s of the change. Judged by the line, not by when it was read: the
            // read lags the interval's end by the emulator's delays.
            let t = Instant::now();
            let from = prev;
            let cond = move |v: f64| if down { v < from / 2.0 } else { v > from * 2.0 };
            let (us, line) = hog_run_after(&b, seen, Duration::from_secs(4), cond).with_context(|| {
                format!(
                    "hogs' stints did not follow slice_us={slice} from {:.1} ms within 4 s; stats: {:?}",
                    from / 1000.0,
                    stats_lines(&b)
                        .iter()
                        .map(|l| l["hog_avg_run_us"].clone())
                        .collect::<Vec<_>>()
                )
            })?;
            let took = t.elapsed().as_secs_f64();
            ensure!(
                line == seen + 1,
                "slice_us={slice} showed in the stints only in the stats interval {} after the \
                 change, not the first whole one ({took:.1} s after ctl set)",
                line - seen
            );
            let last = stats_lines(&b);
            let last_change = &last[last.len() - 1]["settings"]["last_change"];
            ensure!(
                last_change == "ctl",
                "--stats-json names {last_change} as the last change after ctl set"
            );
            stints.push(format!(
                "ctl set slice_us={slice}: hog stint {:.1} ms ({took:.1} s after ctl set)",
                us / 1000.0
            ));
            prev = us;
        }
        drop(hogs);
        Ok(stints.join(", "))
    });
    cases.run("ctl apply of every shipped policy", || {
        let mut fig = Vec::new();
        // Every shipped policy applies live: every key it sets is what ctl show then reports, and
        // the BPF side confirms the new values. --stats names the file as the last change.
        let mut names: Vec<String> = std::fs::read_dir("/policies")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        names.sort();
        ensure!(names.len() >= 4, "shipped policies in /policies: {names:?}");
        for name in &names {
            let file = format!("/policies/{name}");
            let seen = stats_lines(&b).len();
            let (ok, out) = brisk_cmd(&["ctl", "apply", &file], None)?;
            ensure!(
                ok && out.contains("in use by the BPF scheduler"),
                "ctl apply {file}: {out}"
            );
            let v = ctl_show()?;
            let text = std::fs::read_to_string(&file)?;
            let mut checked = 0;
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                let Some((key, want)) = line.split_once('=') else {
                    continue;
                };
                let (key, want) = (key.trim(), want.trim().trim_matches('"'));
                if key == "description" {
                    continue;
                }
                let (value, source) = shown(&v, key);
                // The auto-tuner may already have moved what it tunes.
                if source == "auto" {
                    continue;
                }
                ensure!(
                    value == want && source == format!("policy {file}"),
                    "after ctl apply {file}: {key} = {value} ({source}), the file says {want}"
                );
                checked += 1;
            }
            ensure!(checked >= 8, "only {checked} keys of {file} checked");
            wait_last_change(&b, seen, &format!("policy {file}"))?;
            fig_push_once(&mut fig, "applied live, every key checked:", name);
        }
        Ok(fig.join("; "))
    });
    cases.run("bad requests refused", || {
        // Refusals leave everything as it was.
        let before = ctl_show()?;
        let bad_file = "/tmp/bad-policy.toml";
        std::fs::write(bad_file, "slice_us = 6000\nburst_cap_us = -1\n")?;
        let cases: [(&[&str], Option<u32>, &[&str]); 5] = [
            (
                &["ctl", "set", "slice_us=6000", "preempt_margin_us=999999"],
                None,
                &["preempt_margin_us", "0..=100000", "nothing was changed"],
            ),
            (
                &["ctl", "set", "slice_us=fast"],
                None,
                &["slice_us", "not a whole number"],
            ),
            (
                &["ctl", "set", "no_such_key=1"],
                None,
                &["unknown key \"no_such_key\""],
            ),
            (
                &["ctl", "apply", bad_file],
                None,
                &["bad-policy.toml:2", "burst_cap_us"],
            ),
            (
                &["ctl", "set", "slice_us=6000"],
                Some(65534),
                &["permission denied"],
            ),
        ];
        for (args, uid, want) in cases {
            let (ok, out) = brisk_cmd(args, uid)?;
            ensure!(!ok, "{args:?} (uid {uid:?}) was accepted: {out}");
            for w in want {
                ensure!(out.contains(w), "{args:?}: message lacks {w:?}: {out}");
            }
            ensure!(
                ctl_show()? == before,
                "{args:?} changed the running settings"
            );
        }
        Ok(format!(
            "{} bad requests refused, settings unchanged",
            cases.len()
        ))
    });
    cases.run("hostile socket messages refused", || {
        let before = ctl_show()?;
        // Hostile bytes on the socket itself (what a broken or malicious root client could send):
        // each gets an error answer, and the running settings stay as they were.
        let raw: [(&str, Vec<u8>, bool, &str); 6] = [
            (
                "garbage",
                b"hello \x00\n".to_vec(),
                false,
                "malformed request",
            ),
            ("not UTF-8", b"\xff\xfe{}\n".to_vec(), false, "valid UTF-8"),
            (
                "wrong shape",
                b"{\"op\":\"set\",\"pairs\":5}\n".to_vec(),
                false,
                "malformed request",
            ),
            (
                "truncated",
                b"{\"op\":\"set\",\"pai".to_vec(),
                true,
                "truncated request",
            ),
            ("oversized", vec![b' '; 300 * 1024], true, "larger than"),
            ("empty", Vec::new(), true, "truncated request"),
        ];
        for (what, bytes, close, want) in &raw {
            let answer = ctl_raw(bytes, *close).with_context(|| format!("raw {what} message"))?;
            ensure!(
                answer.contains(want) && answer.contains("\"ok\":false"),
                "{what} message: answer {answer:?}, want an error with {want:?}"
            );
            ensure!(
                ctl_show()? == before,
                "the {what} message changed the running settings"
            );
        }
        Ok(format!(
            "{} messages ({}) refused, settings unchanged",
            raw.len(),
            raw.map(|r| r.0).join(", ")
        ))
    });
    cases.run("uid 65534 on an opened-up socket refused", || {
        let before = ctl_show()?;
        // The server checks the caller's uid itself: with the directory and socket opened up
        // (as a careless admin might), a uid 65534 client reaches the socket and is still refused.
        {
            use std::os::unix::fs::PermissionsExt;
            let perm =
                |p: &str, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
            perm("/run/scx_brisk", 0o711)?;
            perm("/run/scx_brisk/ctl.sock", 0o666)?;
            use std::os::unix::process::CommandExt;
            let out = Command::new(std::env::current_exe()?)
                .args([
                    "sock-send",
                    "/run/scx_brisk/ctl.sock",
                    r#"{"op":"set","pairs":[["slice_us","3000"]]}"#,
                ])
                .uid(65534)
                .gid(65534)
                .output();
            perm("/run/scx_brisk/ctl.sock", 0o600)?;
            perm("/run/scx_brisk", 0o700)?;
            let out = out?;
            let answer = String::from_utf8_lossy(&out.stdout);
            ensure!(
                answer.contains("\"ok\":false")
                    && answer.contains("permission denied")
                    && answer.contains("uid 65534"),
                "uid 65534 on an opened-up socket: {answer} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            ensure!(
                ctl_show()? == before,
                "the uid 65534 request changed the settings"
            );
        }
        Ok("refused by the server's own uid check, settings unchanged".to_string())
    });
    cases.run("broken policy sent raw refused", || {
        let before = ctl_show()?;
        // A broken policy text sent straight to the server (the ctl client checks files before
        // sending, so only a raw request reaches the server's own check).
        let answer = ctl_raw(
            b"{\"op\":\"apply\",\"path\":\"/x/raw.toml\",\"text\":\"slice_us = 6000\\nstarve_us = true\\n\"}\n",
            false,
        )?;
        ensure!(
            answer.contains("\"ok\":false")
                && answer.contains("/x/raw.toml:2")
                && answer.contains("starve_us"),
            "a broken policy over the socket: {answer}"
        );
        ensure!(
            ctl_show()? == before,
            "the broken raw apply changed the settings"
        );
        Ok("refused with file:line, settings unchanged".to_string())
    });
    cases.run("SIGHUP re-reads --policy", || {
        // SIGHUP re-reads --policy.
        std::fs::write(policy, "slice_us = 9000\n")?;
        sys::signal(&b.child, libc::SIGHUP);
        let t = sys::wait_for(Duration::from_secs(3), || {
            ctl_show().is_ok_and(|v| shown(&v, "slice_us").0 == "9000")
        })
        .with_context(|| {
            format!(
                "SIGHUP did not re-read the policy file within 3 s; output:\n{}",
                b.output()
            )
        })?;
        let want_change = format!("policy {policy}");
        wait_last_change(&b, stats_lines(&b).len(), &want_change)?;
        // A broken file on SIGHUP: logged, and the running settings stay.
        let before = ctl_show()?;
        std::fs::write(policy, "slice_us = 9000\nslice_min_us = \"x\"\n")?;
        sys::signal(&b.child, libc::SIGHUP);
        sys::wait_for(Duration::from_secs(3), || {
            b.output().lines().any(|l| {
                l.contains("SIGHUP: ")
                    && l.contains("control-policy.toml:2")
                    && l.contains("settings unchanged")
            })
        })
        .with_context(|| format!("no log line for the broken file on SIGHUP:\n{}", b.output()))?;
        ensure!(
            ctl_show()? == before,
            "a broken file on SIGHUP changed the settings"
        );
        Ok(format!(
            "slice_us 9000 from the file in {:.1} s (stats: last change {want_change}); \
             a broken file on SIGHUP logged with file:line, settings unchanged",
            t.as_secs_f64()
        ))
    });
    cases.run("--monitor from a second process", || {
        // --monitor from a second process, which loads nothing (no BPF fds), in JSON and text.
        let mon = Command::new(sys::SCX_BRISK)
            .args(["--monitor", "1", "--stats-json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(2000));
        let mon_bpf_fds = bpf_fds(mon.id())?;
        let brisk_bpf_fds = bpf_fds(b.child.id())?;
        std::thread::sleep(Duration::from_millis(1500));
        sys::signal(&mon, libc::SIGINT);
        let out = mon.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let reports: Vec<serde_json::Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str(l).with_context(|| format!("monitor line not JSON: {l:?}"))
            })
            .collect::<Result<_>>()?;
        ensure!(
            out.status.success() && reports.len() >= 2,
            "--monitor: exit {:?}, {} reports: {text} {}",
            out.status,
            reports.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            mon_bpf_fds == 0 && brisk_bpf_fds > 0,
            "BPF fds: {mon_bpf_fds} in the monitor (want 0), {brisk_bpf_fds} in scx_brisk"
        );
        let r = &reports[reports.len() - 1];
        ensure!(
            r["counters"]["nr_dispatched"].as_u64().is_some()
                && r["latency"]["wakeup"]["all"]["count"].as_u64().unwrap_or(0) > 0
                && r["settings"]["values"]["slice_us"]["value"] == "9000"
                && r["bpf"]["ns_per_call"]["dispatch"].as_f64().unwrap_or(0.0) > 0.0,
            "--monitor report lacks counters, latency, settings or BPF costs: {r}"
        );
        let mon = Command::new(sys::SCX_BRISK)
            .args(["--monitor", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(2500));
        sys::signal(&mon, libc::SIGINT);
        let out = mon.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let text_lines = text
            .lines()
            .filter(|l| l.contains("wakeup p50/p99 us:") && l.contains(" slice_us=9000 "))
            .count();
        ensure!(
            out.status.success() && text_lines >= 1,
            "--monitor text mode: exit {:?}: {text}",
            out.status
        );
        Ok(format!(
            "{} JSON reports and {text_lines} text lines from a process holding no BPF fds \
             (scx_brisk: {brisk_bpf_fds})",
            reports.len()
        ))
    });
    cases.run("no reload, clean exit", || {
        ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
        ensure!(
            sys::scx_enable_seq() == seq,
            "the scheduler was reloaded during the test (enable_seq {seq} -> {})",
            sys::scx_enable_seq()
        );
        b.stop_cleanly()?;
        Ok(format!("enable_seq {seq} throughout, exit 0"))
    });
    cases.finish()
}

/// How many BPF objects (programs, maps, links) the process `pid` holds fds of, from fdinfo.
fn bpf_fds(pid: u32) -> Result<usize> {
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let info = std::fs::read_to_string(fd?.path()).unwrap_or_default();
        if info.lines().any(|l| {
            l.starts_with("prog_type:") || l.starts_with("map_type:") || l.starts_with("link_type:")
        }) {
            n += 1;
        }
    }
    Ok(n)
}

/// Waits (3 s at most) for a --stats-json line after the first `seen` that names `want` as the
/// source of the last change.
fn wait_last_change(b: &Brisk, seen: usize, want: &str) -> Result<()> {
    sys::wait_for(Duration::from_secs(3), || {
        stats_lines(b)
            .iter()
            .skip(seen)
            .any(|l| l["settings"]["last_change"] == want)
    })
    .map(|_| ())
    .with_context(|| format!("--stats-json never named {want} as the last change"))
}

/// Appends `item` to the entry of `fig` that starts with `label` (creating it).
fn fig_push_once(fig: &mut Vec<String>, label: &str, item: &str) {
    match fig.iter_mut().find(|f| f.starts_with(label)) {
        Some(f) => f.push_str(&format!(", {item}")),
        None => fig.push(format!("{label} {item}")),
    }
}

/// Sends raw bytes to the control socket (optionally closing the write side) and returns the
/// answer line.
fn ctl_raw(bytes: &[u8], close: bool) -> Result<String> {
    raw_exchange("/run/scx_brisk/ctl.sock", bytes, close)
}

/// Waits (at most `within`) for a --stats-json line after the first `seen + 1`, whose hogs' average
/// stint satisfies `cond`; returns it and the line's index.
fn hog_run_after(
    b: &Brisk,
    seen: usize,
    within: Duration,
    cond: impl Fn(f64) -> bool,
) -> Option<(f64, usize)> {
    let start = Instant::now();
    while start.elapsed() < within {
        let lines = stats_lines(b);
        // Skip the first line after the change: its interval began before it.
        if let Some((i, v)) = lines
            .iter()
            .enumerate()
            .skip(seen + 1)
            .filter_map(|(i, l)| Some((i, l["hog_avg_run_us"].as_f64()?)))
            .find(|&(_, v)| cond(v))
        {
            return Some((v, i));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
