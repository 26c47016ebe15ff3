//! Runs the scx_brisk binary on the host, which has no sched_ext: what it must say there.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scx_brisk"))
        .args(args)
        .output()
        .expect("run scx_brisk");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

#[test]
fn refuses_with_the_reason_a_user_can_act_on() {
    let root = unsafe { libc::geteuid() } == 0;
    if root && Path::new("/sys/kernel/sched_ext").exists() {
        // Run here, scx_brisk would load: it would replace this machine's scheduler and run
        // until stopped. Loading is tested in the VM (stress-tests/vm), not on the host.
        eprintln!(
            "SKIPPED refuses_with_the_reason_a_user_can_act_on: running as root on a host with \
             sched_ext, where scx_brisk would attach to this machine; this test checks the \
             error on hosts without it (or as a non-root user)"
        );
        return;
    }
    let (ok, text) = run(&[]);
    assert!(!ok, "scx_brisk succeeded on the host: {text}");
    if !root {
        assert!(text.contains("needs root"), "{text}");
    } else {
        // This host's kernel lacks sched_ext: say so and name the VM command.
        assert!(text.contains("has no sched_ext"), "{text}");
        assert!(text.contains("CONFIG_SCHED_CLASS_EXT"), "{text}");
        assert!(text.contains("stress-tests/vm run"), "{text}");
    }
}

#[test]
fn bad_values_are_refused_before_the_environment_is_checked() {
    let (ok, text) = run(&["--slice-us", "5"]);
    assert!(!ok);
    assert!(
        text.contains("slice_us = 5us is out of range: allowed 100..=100000us"),
        "{text}"
    );
    assert!(!text.contains("sched_ext"), "{text}");
}

#[test]
fn help_documents_every_tunable_with_units() {
    let (ok, text) = run(&["--help"]);
    assert!(ok, "{text}");
    for opt in [
        "--slice-us",
        "--slice-min-us",
        "--short-burst-us",
        "--burst-cap-us",
        "--sleep-credit-us",
        "--preempt-margin-us",
        "--starve-us",
        "--burst-ewma-shift",
        "--no-wakeup-preempt",
        "--exit-dump-len",
        "--policy",
        "--auto",
        "--target-p99-us",
        "--monitor",
        "ctl",
        "--verbose",
        "--version",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn a_broken_policy_file_is_refused_with_file_and_line_before_anything_else() {
    let dir = std::env::temp_dir().join(format!("brisk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("broken.toml");
    std::fs::write(&f, "slice_us = 3000\nslice_us_typo = 4\n").unwrap();
    let (ok, text) = run(&["--policy", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("broken.toml:2: unknown key \"slice_us_typo\""),
        "{text}"
    );
    assert!(!text.contains("sched_ext"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctl_without_a_running_scheduler_says_so() {
    let (ok, text) = run(&["ctl", "show"]);
    assert!(!ok);
    assert!(
        text.contains("no scx_brisk is running") || text.contains("permission denied"),
        "{text}"
    );
    let (ok, text) = run(&["ctl", "set", "slice_us"]);
    assert!(!ok);
    assert!(text.contains("is not KEY=VALUE"), "{text}");
}

/// `scx_brisk probe` loads only tracepoint programs, so it runs on this host (no sched_ext) and
/// measures the kernel's own scheduler: a thread that sleeps 2 ms 300 times is seen waking.
#[test]
fn probe_measures_the_running_scheduler_without_sched_ext() {
    if unsafe { libc::geteuid() } != 0 {
        let (ok, text) = run(&["probe", "--duration-s", "1"]);
        assert!(!ok && text.contains("needs root"), "{text}");
        return;
    }
    let sleeper = std::thread::spawn(|| {
        for _ in 0..300 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    let (ok, text) = run(&["probe", "--duration-s", "2", "--stats", "1", "--stats-json"]);
    sleeper.join().unwrap();
    assert!(ok, "{text}");
    let reports: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // two intervals and the total
    assert!(reports.len() >= 3, "{text}");
    let total = reports.last().unwrap();
    let wakeups = total["latency"]["wakeup"]["all"]["count"].as_u64().unwrap();
    assert!(wakeups >= 300, "only {wakeups} wakeups seen: {total}");
    assert!(total["latency"]["wakeup"]["all"]["p99_us"]
        .as_f64()
        .is_some());
    assert!(total["settings"].is_null());
    assert!(
        total["bpf"]["ns_per_call"]["tp_switch"].as_f64().is_some(),
        "{total}"
    );
}
