//! The integration tests run inside the sched_ext guest (`stress-tests/vm test`). Each prints
//! PASS/FAIL with the figure it checked; the run ends with `N passed, N failed`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::sys::{self, Brisk, Procs};
use super::workloads;

pub type TestFn = fn() -> Result<String>;

pub const TESTS: &[(&str, TestFn)] = &[
    ("attach", attach),
    ("no-stall", no_stall),
    ("fairness", fairness),
    ("weights", weights),
    ("short-first", short_first),
    ("bad-input", bad_input),
    ("hotplug", hotplug),
    ("latency", latency),
    ("control", control),
    ("auto", auto),
];

/// Runs the tests of `set` whose names are in `only` (all when empty), then prints a table of
/// every case with its figure and result; returns the number failed.
pub fn run(set: &[(&str, TestFn)], only: &[String]) -> Result<usize> {
    for name in only {
        if !set.iter().any(|(n, _)| n == name) {
            let names: Vec<_> = set.iter().map(|(n, _)| *n).collect();
            bail!("no test named {name:?}; tests: {}", names.join(", "));
        }
    }
    println!(
        "guest: kernel {}, {} CPUs, clocksource {}, sched_ext state {}",
        sys::read_trim("/proc/sys/kernel/osrelease"),
        sys::nr_cpus(),
        sys::read_trim("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        sys::scx_state()
    );
    let (mut passed, mut failed) = (0, 0);
    let mut table = Vec::new();
    for (i, (name, test)) in set.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        println!("--- {}. {name}", i + 1);
        let start = Instant::now();
        let res = test();
        let secs = start.elapsed().as_secs_f64();
        let (verdict, fig) = match res {
            Ok(fig) => {
                passed += 1;
                println!("PASS {}. {name} ({secs:.1} s): {fig}", i + 1);
                ("PASS", fig)
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}. {name} ({secs:.1} s): {e:#}", i + 1);
                ("FAIL", format!("{e:#}"))
            }
        };
        let first_line = fig.lines().next().unwrap_or("").to_string();
        table.push(format!(
            "| {name} | {secs:.0} s | {verdict} | {first_line} |"
        ));
        // Leave the next test a clean system.
        if sys::scx_state() != "disabled" {
            let cleared = sys::wait_for(Duration::from_secs(10), || sys::scx_state() == "disabled");
            ensure!(
                cleared.is_some(),
                "a scheduler is still attached after {name}"
            );
        }
    }
    println!("\n| case | time | result | figure checked |\n|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed)
}

/// 1. Attach, detach on SIGINT (exit 0), and fall back to the default scheduler on SIGKILL.
fn attach() -> Result<String> {
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
    let code = b.stop();
    ensure!(
        code == Some(0),
        "scx_brisk exited with {code:?} on SIGINT; output:\n{}",
        b.output()
    );
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

/// 2. 30 s of stress-ng (cpu, switch, fork) plus hackbench: still attached, every path used.
fn no_stall() -> Result<String> {
    let n = (2 * sys::nr_cpus()).to_string();
    let (mut b, _) = Brisk::start(&[])?;
    let seq = sys::scx_enable_seq();
    let mut cmd = Command::new("stress-ng");
    cmd.args([
        "--cpu",
        &n,
        "--switch",
        &n,
        "--fork",
        &n,
        "--timeout",
        "30s",
        "--quiet",
    ]);
    let mut stress = Procs::spawn(cmd)?;
    let mut hackbench_runs = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(28) {
        let st = Command::new("hackbench")
            .args(["-g", "4", "-l", "100"])
            .stdout(Stdio::null())
            .status()
            .context("running hackbench")?;
        ensure!(st.success(), "hackbench failed: {st}");
        hackbench_runs += 1;
        ensure!(
            sys::brisk_attached(),
            "scx_brisk detached after {:?}",
            start.elapsed()
        );
    }
    let st = sys::wait_exit(&mut stress.0[0], Duration::from_secs(60));
    ensure!(st == Some(0), "stress-ng exit: {st:?}");
    ensure!(
        sys::brisk_attached(),
        "scx_brisk is no longer attached (state {})",
        sys::scx_state()
    );
    ensure!(
        sys::scx_enable_seq() == seq,
        "the scheduler was re-enabled during the run"
    );
    let code = b.stop();
    ensure!(
        code == Some(0),
        "scx_brisk exit {code:?}; output:\n{}",
        b.output()
    );
    let counters = b.exit_counters();
    ensure!(
        !counters.is_empty(),
        "no counters in the output:\n{}",
        b.output()
    );
    let get = |k: &str| {
        counters
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    for path in [
        "nr_direct_idle",
        "nr_queued_shared",
        "nr_queued_pinned",
        "nr_idle_kicks",
        "nr_short_wakeups",
        "nr_preempts",
        "nr_dispatched",
    ] {
        ensure!(
            get(path) > 0,
            "{path} = 0: that path was never taken; counters: {counters:?}"
        );
    }
    let list: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "attached throughout, {hackbench_runs} hackbench runs; {}",
        list.join(" ")
    ))
}

/// Runtime each process got over `secs`, after a 1 s warm-up.
fn measure_runtimes(procs: &Procs, secs: u64) -> Result<Vec<u64>> {
    std::thread::sleep(Duration::from_secs(1));
    let r0 = procs.runtimes()?;
    std::thread::sleep(Duration::from_secs(secs));
    let r1 = procs.runtimes()?;
    Ok(r1.iter().zip(r0).map(|(a, b)| a - b).collect())
}

/// 3. Four equal hogs for 10 s get CPU shares within 10% of each other.
fn fairness() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let hogs = Procs::hogs(4, &[])?;
    let run = measure_runtimes(&hogs, 10)?;
    drop(hogs);
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    ensure!(
        b.stop() == Some(0),
        "scx_brisk did not exit cleanly:\n{}",
        b.output()
    );
    let (min, max) = (*run.iter().min().unwrap(), *run.iter().max().unwrap());
    ensure!(min > 0, "a hog got no CPU: {run:?}");
    let spread = max as f64 / min as f64;
    let ms: Vec<u64> = run.iter().map(|r| r / 1_000_000).collect();
    ensure!(
        spread <= 1.10,
        "max/min share {spread:.3} > 1.10; runtimes ms {ms:?}"
    );
    Ok(format!("runtimes {ms:?} ms, max/min {spread:.3} (<= 1.10)"))
}

/// 4. A nice-0 and a nice-5 hog pinned to one CPU split it by the kernel's weights (1024:335).
fn weights() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let nice0 = Procs::hogs(1, &["--cpu", "0"])?;
    let nice5 = Procs::hogs(1, &["--cpu", "0", "--nice", "5"])?;
    std::thread::sleep(Duration::from_secs(1));
    let (a0, b0) = (nice0.runtimes()?[0], nice5.runtimes()?[0]);
    std::thread::sleep(Duration::from_secs(10));
    let (a1, b1) = (nice0.runtimes()?[0], nice5.runtimes()?[0]);
    drop((nice0, nice5));
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    ensure!(
        b.stop() == Some(0),
        "scx_brisk did not exit cleanly:\n{}",
        b.output()
    );
    let (ra, rb) = (a1 - a0, b1 - b0);
    ensure!(
        rb > 0,
        "the nice-5 hog got no CPU (nice 0: {} ms)",
        ra / 1_000_000
    );
    let ratio = ra as f64 / rb as f64;
    let want = 1024.0 / 335.0;
    let err = (ratio / want - 1.0).abs();
    ensure!(
        err <= 0.20,
        "ratio {ratio:.2}, want {want:.2} +-20% (off by {:.0}%)",
        err * 100.0
    );
    Ok(format!(
        "nice0 {} ms : nice5 {} ms = {ratio:.2} (kernel weights {want:.2}, off by {:.0}%)",
        ra / 1_000_000,
        rb / 1_000_000,
        err * 100.0
    ))
}

/// One round of the periodic task (10 ms period, 1 ms work) beside 2 hogs per CPU.
fn periodic_round(samples: usize) -> Result<workloads::Periodic> {
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let res = workloads::periodic(Duration::from_millis(10), Duration::from_millis(1), samples);
    drop(hogs);
    Ok(res)
}

/// 5. The periodic task's wakeup p99 under scx_brisk is at most half the default scheduler's,
///    in the same boot, rounds interleaved.
fn short_first() -> Result<String> {
    const ROUNDS: usize = 5;
    const SAMPLES: usize = 400;
    let (mut dfl, mut brisk) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    let mut kicks = [
        ("nr_short_wakeups", 0),
        ("nr_preempts", 0),
        ("nr_preempt_none", 0),
        ("nr_direct_idle", 0),
    ];
    for _ in 0..ROUNDS {
        ensure!(
            sys::scx_state() == "disabled",
            "default scheduler round with sched_ext on"
        );
        let d = periodic_round(SAMPLES)?;

        let (mut b, _) = Brisk::start(&[])?;
        let s = periodic_round(SAMPLES)?;
        ensure!(sys::brisk_attached(), "scx_brisk detached during the round");
        ensure!(
            b.stop() == Some(0),
            "scx_brisk did not exit cleanly:\n{}",
            b.output()
        );
        for (k, v) in b.exit_counters() {
            if let Some(slot) = kicks.iter_mut().find(|(n, _)| *n == k) {
                slot.1 += v;
            }
        }

        let over = |v: &[u64]| v.iter().filter(|&&x| x >= 3_000_000).count();
        rounds.push(format!(
            "dfl p99 {} us ({} >= 3 ms) / brisk p99 {} us ({} >= 3 ms, {} missed)",
            workloads::quantile(&d.lateness_ns, 0.99) / 1000,
            over(&d.lateness_ns),
            workloads::quantile(&s.lateness_ns, 0.99) / 1000,
            over(&s.lateness_ns),
            s.missed
        ));
        dfl.extend(d.lateness_ns);
        brisk.extend(s.lateness_ns);
    }
    let q = |v: &[u64], p| workloads::quantile(v, p) as f64 / 1000.0;
    let (d50, d99, b50, b99) = (q(&dfl, 0.5), q(&dfl, 0.99), q(&brisk, 0.5), q(&brisk, 0.99));
    let fig = format!(
        "wakeup lateness over {ROUNDS} interleaved rounds: default p50 {d50:.0} us p99 {d99:.0} us, \
         scx_brisk p50 {b50:.0} us p99 {b99:.0} us, p99 ratio {:.2} (<= 0.50); rounds: {}; scx_brisk {:?}",
        b99 / d99.max(1.0),
        rounds.join(", "),
        kicks
    );
    ensure!(b99 <= 0.5 * d99, "{fig}");
    Ok(fig)
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

/// 6. Bad options, not root, another scheduler attached: a clear message and non-zero exit.
fn bad_input() -> Result<String> {
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
    std::fs::write(secret, "slice_us = 3000\n")?;
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
    let code = first.stop();
    res?;
    ensure!(
        still,
        "the running scx_brisk was disturbed by the second instance"
    );
    ensure!(code == Some(0), "the first instance exited {code:?}");
    checked.push("second instance".into());
    Ok(format!(
        "{} cases refused: {}",
        checked.len(),
        checked.join("; ")
    ))
}

/// 7. CPU hotplug while attached: the kernel ejects the scheduler with a restart request and
///    scx_brisk reloads itself (for the offline and for the online transition).
fn hotplug() -> Result<String> {
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
        let t = sys::wait_for(Duration::from_secs(30), || {
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
    let code = b.stop();
    ensure!(
        code == Some(0),
        "scx_brisk exit {code:?} after hotplug; output:\n{}",
        b.output()
    );
    ensure!(
        seq >= seq0 + 2,
        "enable_seq went {seq0} -> {seq}: expected two re-enables"
    );
    Ok(format!(
        "{}; enable_seq {seq0} -> {seq}; exit 0",
        figures.join(", ")
    ))
}

/// The BPF links the process `pid` holds, as "link_type/attach_type" from fdinfo.
fn bpf_links(pid: u32) -> Result<Vec<String>> {
    let mut links = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let info = std::fs::read_to_string(fd?.path()).unwrap_or_default();
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if let Some(t) = field("link_type:") {
            links.push(format!("{t}/{}", field("attach_type:").unwrap_or_default()));
        }
    }
    links.sort();
    Ok(links)
}

/// The JSON stats lines scx_brisk printed.
fn stats_lines(b: &Brisk) -> Vec<serde_json::Value> {
    b.output()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// 8. The latency probes: per-class samples in --stats-json, the short class's wakeup p99
///    agrees with what a periodic task (woken through a pipe, so that it can stamp its own
///    wakeup) measures itself (within 2x), --no-latency-probes leaves
///    the tracepoints unattached, and their cost on hackbench (informative).
fn latency() -> Result<String> {
    let args: Vec<String> = ["--stats-json", "--stats", "1"].map(String::from).to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    let links_on = bpf_links(b.child.id())?;
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let woken = workloads::piped_wakeups(Duration::from_millis(10), Duration::from_millis(1), 500);
    drop(hogs);
    std::thread::sleep(Duration::from_millis(1200));
    ensure!(
        b.stop() == Some(0),
        "scx_brisk did not exit cleanly:\n{}",
        b.output()
    );
    let lines = stats_lines(&b);
    ensure!(
        lines.len() >= 3,
        "only {} JSON stats lines:\n{}",
        lines.len(),
        b.output()
    );
    let total = |kind: &str, class: &str| -> u64 {
        lines
            .iter()
            .map(|v| v["latency"][kind][class]["count"].as_u64().unwrap_or(0))
            .sum()
    };
    for class in ["short", "hog", "all"] {
        ensure!(
            total("wakeup", class) > 0,
            "no wakeup samples for class {class}"
        );
    }
    ensure!(total("preempted", "hog") > 0, "no preempted-hog samples");
    ensure!(total("dispatch", "all") > 0, "no dispatch samples");
    // Per-callback cost from kernel.bpf_stats_enabled, for struct_ops and probe programs.
    let cost = |prog: &str| -> Vec<f64> {
        lines
            .iter()
            .filter_map(|v| v["bpf"]["ns_per_call"][prog].as_f64())
            .collect()
    };
    for prog in [
        "enqueue",
        "dispatch",
        "running",
        "stopping",
        "tp_switch",
        "tp_wakeup",
    ] {
        ensure!(
            cost(prog).iter().any(|&ns| ns > 0.0),
            "no per-call cost reported for {prog}"
        );
    }
    let mut pct: Vec<f64> = lines
        .iter()
        .filter_map(|v| v["bpf"]["probes_cpu_pct"].as_f64())
        .collect();
    ensure!(!pct.is_empty(), "no probes_cpu_pct in the stats");
    pct.sort_by(|a, b| a.total_cmp(b));
    let probes_pct = pct[pct.len() / 2];
    // The short class's p99 in the intervals the periodic task ran (median over them).
    let mut p99s: Vec<f64> = lines
        .iter()
        .filter(|v| {
            v["latency"]["wakeup"]["short"]["count"]
                .as_u64()
                .unwrap_or(0)
                >= 50
        })
        .filter_map(|v| v["latency"]["wakeup"]["short"]["p99_us"].as_f64())
        .collect();
    ensure!(!p99s.is_empty(), "no interval with short-class wakeups");
    p99s.sort_by(|a, b| a.total_cmp(b));
    let probe_p99 = p99s[p99s.len() / 2];
    // The same statistic on the task's side: median of its per-second (100 samples) p99s.
    let mut chunk_p99s: Vec<f64> = woken
        .chunks(100)
        .map(|c| workloads::quantile(c, 0.99) as f64 / 1000.0)
        .collect();
    chunk_p99s.sort_by(|a, b| a.total_cmp(b));
    let task_p99 = chunk_p99s[chunk_p99s.len() / 2];
    let ratio = probe_p99 / task_p99.max(1.0);
    let agree = format!(
        "short-class wakeup p99 {probe_p99:.0} us (probes, median of {} intervals) vs {task_p99:.0} us \
         (the piped periodic task itself, median of per-second p99s): ratio {ratio:.2}",
        p99s.len()
    );
    ensure!((0.5..=2.0).contains(&ratio), "{agree}, not within 2x");

    let off: Vec<String> = ["--no-latency-probes", "--stats-json", "--stats", "1"]
        .map(String::from)
        .to_vec();
    let (mut b, _) = Brisk::start(&off)?;
    let links_off = bpf_links(b.child.id())?;
    std::thread::sleep(Duration::from_millis(1500));
    ensure!(
        b.stop() == Some(0),
        "scx_brisk did not exit cleanly:\n{}",
        b.output()
    );
    let raw_tp = |l: &[String]| l.iter().filter(|t| t.starts_with("raw_tracepoint")).count();
    ensure!(
        (raw_tp(&links_on), raw_tp(&links_off)) == (3, 0),
        "tracepoint links: with probes {links_on:?}, without {links_off:?}; expected 3 and 0"
    );
    let lines = stats_lines(&b);
    ensure!(!lines.is_empty(), "no JSON stats without probes");
    ensure!(
        lines
            .iter()
            .all(|v| v["latency"].as_object().is_some_and(|o| o.is_empty())),
        "latency figures reported with the probes off"
    );

    // Probe cost: hackbench with probes on and off, 5 interleaved rounds (informative).
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..5 {
        for (i, a) in [&args[..0], &off[..1]].iter().enumerate() {
            let (mut b, _) = Brisk::start(a)?;
            let t = Instant::now();
            let st = Command::new("hackbench")
                .args(["-g", "4", "-l", "100"])
                .stdout(Stdio::null())
                .status()?;
            times[i].push(t.elapsed().as_secs_f64());
            ensure!(
                st.success() && b.stop() == Some(0),
                "hackbench round failed"
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (on, off) = (median(&mut times[0]), median(&mut times[1]));
    Ok(format!(
        "{agree}; probes {probes_pct:.2}% of CPU time (median interval); \
         links {links_on:?} with probes, {links_off:?} without; \
         hackbench median {on:.2} s probes on / {off:.2} s off = {:.3} (informative)",
        on / off
    ))
}

/// Runs `scx_brisk ARGS` to completion (as `uid` if given): (exit ok, stdout + stderr).
fn brisk_cmd(args: &[&str], uid: Option<u32>) -> Result<(bool, String)> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(sys::SCX_BRISK);
    cmd.args(args).stdin(Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().context("running scx_brisk")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    ))
}

/// `scx_brisk ctl show --json`: key -> (value, source).
/// Sends raw bytes to the control socket (optionally closing the write side) and returns the
/// answer line.
fn ctl_raw(bytes: &[u8], close: bool) -> Result<String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect("/run/scx_brisk/ctl.sock")
        .context("connecting to the control socket")?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The server stops reading at its size limit, so a long write may fail; the answer counts.
    let _ = s.write_all(bytes);
    if close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .context("reading the answer")?;
    Ok(line)
}

fn ctl_show() -> Result<serde_json::Value> {
    let (ok, out) = brisk_cmd(&["ctl", "show", "--json"], None)?;
    ensure!(ok, "ctl show failed: {out}");
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("ctl show output: {out}"))?;
    Ok(v["values"].clone())
}

fn shown(values: &serde_json::Value, key: &str) -> (String, String) {
    (
        values[key]["value"].as_str().unwrap_or("?").to_string(),
        values[key]["source"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| values[key]["source"].to_string()),
    )
}

/// Waits (at most `within`) for a --stats-json line, printed after `since`, whose hogs' average
/// stint satisfies `cond`; returns it and how long after `since` it came.
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
        if let Some(v) = lines
            .iter()
            .skip(seen + 1)
            .filter_map(|l| l["hog_avg_run_us"].as_f64())
            .find(|&v| cond(v))
        {
            return Some((v, lines.len()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// 9. Runtime control of a running scx_brisk, all without a reload (same enable_seq):
///    `ctl set` of the slice changes the hogs' measured stints within 2 s; `ctl apply` of each
///    shipped policy; a bad value, a broken file and a non-root caller are refused with the
///    running values unchanged; SIGHUP re-reads --policy; `--monitor` reads the stats from a
///    second process.
fn control() -> Result<String> {
    let policy = "/tmp/control-policy.toml";
    std::fs::write(policy, "description = \"test\"\nslice_us = 7000\n")?;
    let seq0 = sys::scx_enable_seq();
    let args: Vec<String> = ["--stats-json", "--stats", "1", "--policy", policy]
        .map(String::from)
        .to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    let seq = sys::scx_enable_seq();
    ensure!(seq == seq0 + 1, "enable_seq {seq0} -> {seq} at start");
    let mut fig = Vec::new();

    let v = ctl_show()?;
    ensure!(
        shown(&v, "slice_us") == ("7000".into(), format!("policy {policy}")),
        "slice_us from the policy file: {:?}",
        shown(&v, "slice_us")
    );

    // The slice, changed live, shows in the hogs' stints (4 hogs on 2 CPUs: stints are about
    // half the slice, rounded up to the 4 ms tick).
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_millis(1500));
    let mut stints = Vec::new();
    for (slice, cond) in [
        (
            "1000",
            Box::new(|v: f64| v < 6000.0) as Box<dyn Fn(f64) -> bool>,
        ),
        ("40000", Box::new(|v: f64| v > 12000.0)),
    ] {
        let seen = stats_lines(&b).len();
        let (ok, out) = brisk_cmd(&["ctl", "set", &format!("slice_us={slice}")], None)?;
        ensure!(
            ok && out.contains("in use by the BPF scheduler"),
            "ctl set slice_us={slice}: {out}"
        );
        // From here the change is live; the first whole 1 s stats interval after it ends
        // within 2 s (this loop polls every 100 ms).
        let t = Instant::now();
        let (us, _) = hog_run_after(&b, seen, Duration::from_secs(4), cond).with_context(|| {
            format!(
                "hogs' stints did not follow slice_us={slice} within 4 s; stats: {:?}",
                stats_lines(&b)
                    .iter()
                    .map(|l| l["hog_avg_run_us"].clone())
                    .collect::<Vec<_>>()
            )
        })?;
        let took = t.elapsed().as_secs_f64();
        ensure!(
            took <= 2.1,
            "slice_us={slice} showed in the stints only after {took:.1} s"
        );
        stints.push(format!(
            "slice_us={slice}: hog stint {:.1} ms ({took:.1} s after ctl set)",
            us / 1000.0
        ));
    }
    drop(hogs);
    fig.push(stints.join(", "));

    // Every shipped policy applies live and is what ctl show then reports.
    let mut applied = Vec::new();
    for name in ["interactive", "throughput", "auto", "balanced"] {
        let file = format!("/policies/{name}.toml");
        let (ok, out) = brisk_cmd(&["ctl", "apply", &file], None)?;
        ensure!(ok, "ctl apply {file}: {out}");
        let v = ctl_show()?;
        let want = std::fs::read_to_string(&file)?;
        let want_slice = want
            .lines()
            .find_map(|l| l.strip_prefix("slice_us = "))
            .and_then(|r| r.split_whitespace().next())
            .context("no slice_us in the policy file")?;
        let (slice, source) = shown(&v, "slice_us");
        ensure!(
            slice == want_slice && source == format!("policy {file}"),
            "after ctl apply {file}: slice_us {slice} ({source}), want {want_slice}"
        );
        let mode = shown(&v, "mode").0;
        ensure!(
            (mode == "auto") == (name == "auto"),
            "mode {mode} after {file}"
        );
        applied.push(format!("{name} (slice_us {slice})"));
    }
    fig.push(format!("applied live: {}", applied.join(", ")));

    // Refusals leave everything as it was.
    let before = ctl_show()?;
    let bad_file = "/tmp/bad-policy.toml";
    std::fs::write(bad_file, "slice_us = 3000\nburst_cap_us = -1\n")?;
    let cases: [(&[&str], Option<u32>, &[&str]); 5] = [
        (
            &["ctl", "set", "slice_us=3000", "preempt_margin_us=999999"],
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
            &["ctl", "set", "slice_us=3000"],
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
    fig.push(format!(
        "{} bad requests and {} hostile socket messages ({}) refused, settings unchanged",
        cases.len(),
        raw.len(),
        raw.map(|r| r.0).join(", ")
    ));

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
    fig.push(format!(
        "SIGHUP: slice_us 9000 from the file in {:.1} s",
        t.as_secs_f64()
    ));

    // --monitor from a second process.
    let mon = Command::new(sys::SCX_BRISK)
        .args(["--monitor", "1", "--stats-json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(3500));
    sys::signal(&mon, libc::SIGINT);
    let out = mon.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    ensure!(
        out.status.success() && reports.len() >= 2,
        "--monitor: exit {:?}, {} reports: {text} {}",
        out.status,
        reports.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &reports[reports.len() - 1];
    ensure!(
        r["counters"]["nr_dispatched"].as_u64().is_some()
            && r["latency"]["wakeup"]["all"]["count"].as_u64().unwrap_or(0) > 0
            && r["settings"]["values"]["slice_us"]["value"] == "9000",
        "--monitor report lacks counters, latency or settings: {r}"
    );
    fig.push(format!(
        "--monitor: {} reports from a second process",
        reports.len()
    ));

    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    ensure!(
        sys::scx_enable_seq() == seq,
        "the scheduler was reloaded during the test (enable_seq {seq} -> {})",
        sys::scx_enable_seq()
    );
    let code = b.stop();
    ensure!(code == Some(0), "scx_brisk exit {code:?}:\n{}", b.output());
    fig.push(format!("enable_seq {seq} throughout"));
    Ok(fig.join("; "))
}

/// 10. The auto-tuner: from auto.toml's relaxed end (20 ms slices, 30 ms margin), beside a
///     periodic task and 2 hogs per CPU, it tightens the slice and margin until the short
///     class's p99 (the probes) is under the target, and logs each change.
fn auto() -> Result<String> {
    const TARGET_US: f64 = 2000.0;
    let args: Vec<String> = [
        "--policy",
        "/policies/auto.toml",
        "--target-p99-us",
        "2000",
        "--stats-json",
        "--stats",
        "1",
    ]
    .map(String::from)
    .to_vec();
    let (mut b, _) = Brisk::start(&args)?;
    let hogs = Procs::hogs(2 * sys::nr_cpus(), &[])?;
    // 20 s of the periodic task (10 ms period, 1 ms work): 2000 wakeups.
    let res = workloads::periodic(Duration::from_millis(10), Duration::from_millis(1), 2000);
    drop(hogs);
    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    let code = b.stop();
    ensure!(code == Some(0), "scx_brisk exit {code:?}:\n{}", b.output());
    let out = b.output();
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("auto-tuner: level"))
        .collect();
    ensure!(
        !changes.is_empty(),
        "the auto-tuner changed nothing:\n{out}"
    );
    let lines = stats_lines(&b);
    let p99 = |v: &serde_json::Value| -> Option<f64> {
        let s = &v["latency"]["wakeup"]["short"];
        (s["count"].as_u64()? >= 20)
            .then(|| s["p99_us"].as_f64())
            .flatten()
    };
    let series: Vec<f64> = lines.iter().filter_map(p99).collect();
    ensure!(
        series.len() >= 10,
        "only {} intervals with short wakeups",
        series.len()
    );
    let first = series[0];
    let mut last: Vec<f64> = series[series.len() - 8..].to_vec();
    last.sort_by(|a, b| a.total_cmp(b));
    let settled = last[last.len() / 2];
    let final_slice = lines
        .last()
        .and_then(|l| {
            l["settings"]["values"]["slice_us"]["value"]
                .as_str()
                .map(String::from)
        })
        .unwrap_or_default();
    let q = |p| workloads::quantile(&res.lateness_ns, p) as f64 / 1000.0;
    let fig = format!(
        "short p99 {first:.0} us in the first interval -> {settled:.0} us (median of the last 8) \
         vs target {TARGET_US:.0} us; {} tuner changes, final slice_us {final_slice} (from 20000); \
         the periodic task's own lateness p50 {:.0} us p99 {:.0} us; first change: {}",
        changes.len(),
        q(0.5),
        q(0.99),
        changes[0].trim()
    );
    ensure!(settled < TARGET_US, "{fig}");
    ensure!(
        final_slice.parse::<u64>().unwrap_or(20000) < 20000,
        "the slice was not lowered: {fig}"
    );
    Ok(fig)
}
