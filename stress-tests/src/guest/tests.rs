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
    ("probe", probe),
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
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
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
            Err(e) if e.is::<Skip>() => {
                skipped += 1;
                println!("SKIP {}. {name}: {e}", i + 1);
                ("SKIP", e.to_string())
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
    if skipped > 0 {
        println!("{skipped} skipped: this guest cannot run them (see SKIP above)");
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed)
}

/// A test that this guest cannot run (too few CPUs): reported as SKIP, neither passed nor
/// failed. Only for what the machine lacks, never for a result.
#[derive(Debug)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

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

/// 2. 30 s of stress-ng (cpu, switch, fork) plus hackbench, then pipe ping-pong and
///    message/worker pairs: still attached, every path used.
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
    // Pipe ping-pong on the quiet machine: the synchronous hand-off path (under the load
    // above the queues are rarely empty, so it is seldom taken there).
    let pipe = Command::new(std::env::current_exe()?)
        .args(["workload", "pipe", "--duration-s", "2"])
        .stdout(Stdio::null())
        .status()
        .context("running the pipe workload")?;
    ensure!(pipe.success(), "pipe workload failed: {pipe}");
    // Then message/worker pairs at half load: a futex wakeup by a short thread (request or
    // reply) that finds the other CPU busy takes the futex hand-off to the waker's CPU.
    let pairs = Command::new(std::env::current_exe()?)
        .args([
            "workload",
            "wakeup",
            "--duration-s",
            "2",
            "--load-pct",
            "50",
        ])
        .stdout(Stdio::null())
        .status()
        .context("running the wakeup workload")?;
    ensure!(pairs.success(), "wakeup workload failed: {pairs}");
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
        "nr_sync_handoff",
        "nr_wake_handoff",
    ] {
        ensure!(
            get(path) > 0,
            "{path} = 0: that path was never taken; counters: {counters:?}"
        );
    }
    let list: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "attached throughout, {hackbench_runs} hackbench runs, then 2 s of pipe ping-pong and \
         2 s of wakeup pairs; {}",
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

/// 5. Short tasks are picked first: the periodic task's queue wait (time runnable before it
///    runs, the scheduler's part of its wakeup latency) has a p99 under scx_brisk at most half
///    the default scheduler's, and its whole wakeup lateness p99 is no worse; in the same boot,
///    rounds interleaved, judged by the median of the per-round ratios.
///
///    The lateness also holds the emulator's timer delivery, which no scheduler controls and
///    which varies from one host to the next: on the idle machine alone it has been 30-60% of
///    the default scheduler's loaded p99. So it gets the weaker bound, and the queue wait
///    carries the claim.
fn short_first() -> Result<String> {
    const ROUNDS: usize = 5;
    const SAMPLES: usize = 400;
    const MAX_WAIT_RATIO: f64 = 0.5;
    const MAX_LATENESS_RATIO: f64 = 1.0;
    let (mut dfl, mut brisk) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    let (mut wait_ratios, mut late_ratios) = (Vec::new(), Vec::new());
    let mut kicks = [
        ("nr_short_wakeups", 0),
        ("nr_preempts", 0),
        ("nr_preempt_none", 0),
        ("nr_direct_idle", 0),
    ];
    let p99 = |v: &[u64]| workloads::quantile(v, 0.99);
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
        ensure!(
            !d.queue_wait_ns.is_empty() && !s.queue_wait_ns.is_empty(),
            "the kernel accounts no run_delay (/proc/thread-self/schedstat): cannot tell the \
             queue wait from the rest of the lateness"
        );

        wait_ratios.push(p99(&s.queue_wait_ns) as f64 / p99(&d.queue_wait_ns).max(1) as f64);
        late_ratios.push(p99(&s.lateness_ns) as f64 / p99(&d.lateness_ns).max(1) as f64);
        rounds.push(format!(
            "wait p99 {}/{} us, lateness p99 {}/{} us ({} missed)",
            p99(&d.queue_wait_ns) / 1000,
            p99(&s.queue_wait_ns) / 1000,
            p99(&d.lateness_ns) / 1000,
            p99(&s.lateness_ns) / 1000,
            s.missed
        ));
        dfl.extend(d.queue_wait_ns);
        brisk.extend(s.queue_wait_ns);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let show = |v: &[f64]| v.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>();
    let (wait, late) = (median(&mut wait_ratios), median(&mut late_ratios));
    let fig = format!(
        "{ROUNDS} interleaved rounds, scx_brisk/default p99 per round (sorted): queue wait {:?}, \
         median {wait:.2} (<= {MAX_WAIT_RATIO:.2}); lateness {:?}, median {late:.2} \
         (<= {MAX_LATENESS_RATIO:.2}); pooled queue wait p99 {} us vs {} us; rounds \
         (default/scx_brisk): {}; scx_brisk {:?}",
        show(&wait_ratios),
        show(&late_ratios),
        p99(&brisk) / 1000,
        p99(&dfl) / 1000,
        rounds.join("; "),
        kicks
    );
    ensure!(
        wait <= MAX_WAIT_RATIO && late <= MAX_LATENESS_RATIO,
        "{fig}"
    );
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

/// The JSON stats lines scx_brisk has printed so far (a line still being written is skipped).
fn stats_lines(b: &Brisk) -> Vec<serde_json::Value> {
    b.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// After scx_brisk exited: its standard output, every line of which must be a JSON object with
/// the report's top-level fields (the interface --stats-json promises).
fn json_stats(b: &Brisk) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for (i, line) in b.stdout().lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("stdout line {} is not JSON: {line:?}", i + 1))?;
        for key in [
            "interval_s",
            "counters",
            "latency",
            "nr_runnable",
            "slice_us",
        ] {
            ensure!(
                v.get(key).is_some(),
                "stdout line {} lacks {key:?}: {line}",
                i + 1
            );
        }
        out.push(v);
    }
    Ok(out)
}

/// Total wakeup samples of all classes in `lines`.
fn wakeups_counted(lines: &[serde_json::Value]) -> u64 {
    lines
        .iter()
        .map(|v| v["latency"]["wakeup"]["all"]["count"].as_u64().unwrap_or(0))
        .sum()
}

/// Runs `count` timer wakeups 2 ms apart in a thread of this process, as SCHED_FIFO if `fifo`.
fn timer_wakeups(count: usize, fifo: bool) -> Result<()> {
    std::thread::spawn(move || -> Result<()> {
        if fifo {
            workloads::set_fifo()?;
        }
        workloads::periodic(Duration::from_millis(2), Duration::ZERO, count);
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the wakeup thread panicked"))?
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
    let lines = json_stats(&b)?;
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
    // Per-callback cost from BPF run-time statistics, for struct_ops and probe programs.
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
    let lines = json_stats(&b)?;
    ensure!(!lines.is_empty(), "no JSON stats without probes");
    ensure!(
        lines
            .iter()
            .all(|v| v["latency"].as_object().is_some_and(|o| o.is_empty())),
        "latency figures reported with the probes off"
    );

    // The text line (--stats without JSON): counters, per-class percentiles, runnable tasks,
    // the slice, per-program costs and the tunables, once per interval.
    let text_args: Vec<String> = ["--stats", "1"].map(String::from).to_vec();
    let (mut b, _) = Brisk::start(&text_args)?;
    let hogs = Procs::hogs(sys::nr_cpus(), &[])?;
    workloads::periodic(Duration::from_millis(10), Duration::from_millis(1), 250);
    drop(hogs);
    ensure!(
        b.stop() == Some(0),
        "scx_brisk did not exit cleanly:\n{}",
        b.output()
    );
    let log = b.output();
    let text_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("wakeup p50/p99 us:"))
        .collect();
    ensure!(
        text_lines.len() >= 2,
        "fewer than 2 --stats lines in 2.5 s:\n{log}"
    );
    let line = text_lines[text_lines.len() - 1];
    for part in [
        "direct ",
        "queued ",
        "preempt ",
        "| runnable ",
        " slice ",
        " short ",
        " hog ",
        " all ",
        "| bpf ns/run: ",
        "dispatch ",
        "tp_switch ",
        "| probes ",
        "| tun burst_cap_us=",
        " slice_us=5000 ",
        "(last change: default)",
    ] {
        ensure!(line.contains(part), "--stats line lacks {part:?}: {line}");
    }

    // Only tasks scx_brisk runs are measured: 1000 timer wakeups of a SCHED_FIFO thread (the
    // kernel's RT class runs it) must not show up, the same wakeups at SCHED_OTHER must.
    let mut seen = Vec::new();
    for fifo in [true, false] {
        let (mut b, _) = Brisk::start(&args)?;
        timer_wakeups(1000, fifo)?;
        std::thread::sleep(Duration::from_millis(1200));
        ensure!(
            b.stop() == Some(0),
            "scx_brisk did not exit cleanly:\n{}",
            b.output()
        );
        seen.push(wakeups_counted(&json_stats(&b)?));
    }
    let (rt_seen, other_seen) = (seen[0], seen[1]);
    let rt_fig = format!(
        "wakeups counted: {rt_seen} with 1000 SCHED_FIFO timer wakeups, {other_seen} with the \
         same at SCHED_OTHER"
    );
    ensure!(
        other_seen >= 1000 && other_seen >= rt_seen + 700,
        "{rt_fig}: the RT task's wakeups were measured as scx_brisk's"
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
         links {links_on:?} with probes, {links_off:?} without; {} text stats lines complete; \
         {rt_fig}; hackbench median {on:.2} s probes on / {off:.2} s off = {:.3} (informative)",
        text_lines.len(),
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

/// `scx_brisk ctl show --json`: key -> (value, source).
/// Sends raw bytes to the control socket (optionally closing the write side) and returns the
/// answer line.
fn ctl_raw(bytes: &[u8], close: bool) -> Result<String> {
    raw_exchange("/run/scx_brisk/ctl.sock", bytes, close)
}

/// `brisk-guest sock-send PATH LINE`: one line to a UNIX socket, the answer line back.
pub fn sock_send(path: &str, line: &str) -> Result<String> {
    raw_exchange(path, format!("{line}\n").as_bytes(), false)
}

fn raw_exchange(path: &str, bytes: &[u8], close: bool) -> Result<String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connecting to {path}"))?;
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

/// 9. Runtime control of a running scx_brisk, all without a reload (same enable_seq):
///    `ctl set` of the slice changes the hogs' measured stints within 2 s; `ctl apply` of each
///    shipped policy; a bad value, a broken file and a non-root caller are refused with the
///    running values unchanged; SIGHUP re-reads --policy; `--monitor` reads the stats from a
///    second process.
fn control() -> Result<String> {
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
    let mut fig = Vec::new();

    let v = ctl_show()?;
    ensure!(
        shown(&v, "slice_us") == ("40000".into(), format!("policy {policy}")),
        "slice_us from the policy file: {:?}",
        shown(&v, "slice_us")
    );

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
    fig.push(stints.join(", "));

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
    fig.push(format!(
        "{} bad requests, a uid 65534 request on an opened-up socket, a broken policy sent raw \
         and {} hostile socket messages ({}) refused, settings unchanged",
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
    fig.push(format!(
        "SIGHUP: slice_us 9000 from the file in {:.1} s (stats: last change {want_change}); \
         a broken file on SIGHUP logged with file:line, settings unchanged",
        t.as_secs_f64()
    ));

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
        .map(|l| serde_json::from_str(l).with_context(|| format!("monitor line not JSON: {l:?}")))
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
    fig.push(format!(
        "--monitor: {} JSON reports and {text_lines} text lines from a second process holding \
         no BPF fds (scx_brisk: {brisk_bpf_fds})",
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

/// 10. The auto-tuner, turned on from the command line (`--auto`; auto.toml's mode = "auto" is
///     applied live in the control test): from the relaxed end given (20 ms slices, 30 ms
///     margin), beside a periodic task and 2 hogs per CPU, it tightens the slice and margin
///     until the short class's p99 (the probes) is under the target, or as far as it can go
///     with the p99 cut threefold, logs each change, and --stats names it as the source.
///     The latency-critical lane is off: with it, the timer-woken periodic task preempts at
///     once whatever the slice and margin, its p99 is under the target from the relaxed end
///     and the tuner rightly has nothing to do (in the VM: 1.4 ms, no change logged).
fn auto() -> Result<String> {
    const TARGET_US: f64 = 2000.0;
    let args: Vec<String> = [
        "--lat-duty-max-pct",
        "0",
        "--auto",
        "--slice-us",
        "20000",
        "--preempt-margin-us",
        "30000",
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
    let final_value = |key: &str| {
        lines
            .last()
            .and_then(|l| {
                l["settings"]["values"][key]["value"]
                    .as_str()
                    .map(String::from)
            })
            .unwrap_or_default()
    };
    let (final_slice, final_margin) = (final_value("slice_us"), final_value("preempt_margin_us"));
    let auto_named = lines.iter().any(|l| l["settings"]["last_change"] == "auto");
    let q = |p| workloads::quantile(&res.lateness_ns, p) as f64 / 1000.0;
    let fig = format!(
        "short p99 {first:.0} us in the first interval -> {settled:.0} us (median of the last 8) \
         vs target {TARGET_US:.0} us; {} tuner changes, final slice_us {final_slice} (from 20000), \
         preempt_margin_us {final_margin} (from 30000); \
         the periodic task's own lateness p50 {:.0} us p99 {:.0} us; first change: {}",
        changes.len(),
        q(0.5),
        q(0.99),
        changes[0].trim()
    );
    // The target is met, or the tuner went as far as it can (slice at slice_min_us, 4000 by
    // default, and no margin) and that cut the p99 at least threefold: on a host whose timer
    // delivery alone puts the short class's p99 over 2 ms, no setting meets the target, and
    // the tuner's job is then to sit at the tight end.
    let at_tight_end = final_slice == "4000" && final_margin == "0";
    ensure!(
        settled < TARGET_US || (at_tight_end && settled * 3.0 <= first),
        "neither under the target nor at the tight end with the p99 cut threefold: {fig}"
    );
    let fig = if settled < TARGET_US {
        fig
    } else {
        format!("{fig} (target not reachable here: the tuner ended at the tight end)")
    };
    ensure!(
        final_slice.parse::<u64>().unwrap_or(20000) < 20000,
        "the slice was not lowered: {fig}"
    );
    ensure!(
        final_margin.parse::<u64>().unwrap_or(30000) < 30000,
        "the preemption margin was not lowered: {fig}"
    );
    ensure!(
        auto_named,
        "--stats-json never named auto as the last change: {fig}"
    );
    Ok(fig)
}

/// `scx_brisk probe --stats-json` for `secs` seconds while this process makes 1000 timer
/// wakeups: its reports (intervals, then the total), every stdout line checked as JSON.
fn run_probe(secs: u32) -> Result<Vec<serde_json::Value>> {
    let probe = Command::new(sys::SCX_BRISK)
        .args([
            "probe",
            "--duration-s",
            &secs.to_string(),
            "--stats",
            "1",
            "--stats-json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting scx_brisk probe")?;
    // Let it load and attach before the wakeups start.
    std::thread::sleep(Duration::from_millis(700));
    timer_wakeups(1000, false)?;
    let out = probe.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "scx_brisk probe: {}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| {
            serde_json::from_str(l).with_context(|| format!("probe stdout line not JSON: {l:?}"))
        })
        .collect()
}

/// 11. `scx_brisk probe`, the probes alone: under the kernel's default scheduler (nothing of
///     sched_ext attached, before or after) and beside a running scx_brisk (which stays
///     attached), it sees a thread's 1000 timer wakeups and classes them short.
fn probe() -> Result<String> {
    let mut fig = Vec::new();
    for beside in [false, true] {
        let brisk = if beside {
            Some(Brisk::start(&[])?.0)
        } else {
            ensure!(sys::scx_state() == "disabled", "a scheduler is attached");
            None
        };
        let reports = run_probe(4)?;
        ensure!(
            reports.len() >= 3,
            "{} reports; want intervals and a total",
            reports.len()
        );
        let total = &reports[reports.len() - 1];
        let count = |class: &str| total["latency"]["wakeup"][class]["count"].as_u64();
        let all = count("all").context("no wakeup count")?;
        ensure!(all >= 1000, "only {all} wakeups seen, 1000 made: {total}");
        // The timer thread runs microseconds per 2 ms sleep: its wakeups are classed short,
        // but for the first few while its average falls from where a new task starts (the
        // border itself). ("all" is the classes' sum, so only the split itself is checked.)
        let short = count("short").unwrap_or(0);
        ensure!(
            short >= 990,
            "only {short} short wakeups of {all}, 1000 made by a thread that runs microseconds: {total}"
        );
        ensure!(
            total["bpf"]["ns_per_call"]["probe_switch"]
                .as_f64()
                .is_some(),
            "no cost for probe_switch: {total}"
        );
        let p99 = total["latency"]["wakeup"]["all"]["p99_us"]
            .as_f64()
            .context("no p99")?;
        match brisk {
            Some(mut b) => {
                ensure!(sys::brisk_attached(), "scx_brisk detached beside the probe");
                ensure!(b.stop() == Some(0), "scx_brisk exit:\n{}", b.output());
                fig.push(format!(
                    "beside scx_brisk: {all} wakeups ({short} short), p99 {p99:.0} us"
                ));
            }
            None => {
                ensure!(
                    sys::scx_state() == "disabled",
                    "the probe attached a scheduler"
                );
                fig.push(format!(
                    "under the default scheduler: {all} wakeups ({short} short), p99 {p99:.0} us"
                ));
            }
        }
    }
    Ok(fig.join("; "))
}
