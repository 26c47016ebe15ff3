//! The topology tests (`brisk-guest test --topology-tests`): what only matters on a machine
//! of several LLCs, SMT siblings and NUMA nodes. Run them in a guest of that shape
//! (`stress-tests/vm test --topology-tests --topology 2x2x2 --numa`); on a guest of one LLC
//! they SKIP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::sys::{self, set_affinity, Brisk, Procs, Shape};
use super::tests::{Skip, TestFn};

pub const TESTS: &[(&str, TestFn)] = &[
    ("llc-placement", llc_placement),
    ("llc-steal", llc_steal),
    ("smt-cores", smt_cores),
    ("smt-move", smt_move),
    ("llc-fairness", llc_fairness),
    ("llc-offline", llc_offline),
];

/// The guest's shape, or Skip when it has a single LLC.
fn multi_llc() -> Result<Shape> {
    let shape = sys::shape();
    if shape.llcs.len() < 2 || shape.llcs.iter().any(|l| l.len() < 2) {
        return Err(Skip(format!(
            "needs 2 LLCs of 2 CPUs or more ({shape} here; run the VM with --topology 2x2x2)"
        ))
        .into());
    }
    Ok(shape)
}

/// The guest's shape, or Skip when it has a single LLC or no SMT.
fn smt_shape() -> Result<Shape> {
    let shape = multi_llc()?;
    if shape.threads < 2 {
        return Err(Skip(format!(
            "needs SMT ({shape}); run the VM with --topology 2x2x2"
        ))
        .into());
    }
    Ok(shape)
}

/// The CPU `pid` last ran on (field 39 of /proc/PID/stat).
fn last_cpu(pid: u32) -> Option<usize> {
    sys::proc_stat_field(pid, 39).ok().map(|c| c as usize)
}

/// Hogs pinned one per CPU of `cpus`.
fn pinned_hogs(cpus: &[usize]) -> Result<Procs> {
    let mut all = Procs(Vec::new());
    for &c in cpus {
        let mut h = Procs::hogs(1, &["--cpu", &c.to_string()])?;
        all.0.append(&mut h.0);
    }
    Ok(all)
}

/// A thread of this process that sleeps 5 ms `n` times, starting on `start_cpu` and free to run
/// anywhere after; returns the CPU of each wakeup.
fn wakeup_cpus(start_cpu: usize, n: usize) -> Vec<usize> {
    // All CPUs, counted before the thread pins itself (the count follows the caller's mask).
    let all: Vec<usize> = (0..sys::shape().cpus).collect();
    std::thread::spawn(move || {
        (0..n)
            .map(|_| {
                // Every wakeup starts from `start_cpu` (its previous CPU), so that each one
                // tests the pick from there, not from wherever the last one went.
                set_affinity(0, &[start_cpu]);
                set_affinity(0, &all);
                std::thread::sleep(Duration::from_millis(5));
                // SAFETY: plain libc call.
                unsafe { libc::sched_getcpu() }.max(0) as usize
            })
            .collect()
    })
    .join()
    .unwrap_or_default()
}

fn share_in(cpus: &[usize], of: &[usize]) -> f64 {
    of.iter().filter(|c| cpus.contains(c)).count() as f64 / of.len().max(1) as f64
}

/// 1. Cache-hot placement: a task that wakes while its LLC has an idle CPU stays in that LLC
///    (and its NUMA node); when its LLC has none, it wakes on another LLC's idle CPU, and in
///    its own node if that node has another LLC (a guest with dies, e.g. 2x2x2x1 --numa).
fn llc_placement() -> Result<String> {
    let shape = multi_llc()?;
    let (own, other) = (&shape.llcs[0], &shape.llcs[1]);
    let (mut b, _) = Brisk::start(&[])?;
    // One CPU of its LLC left idle.
    let idle = *own.last().unwrap();
    let busy: Vec<usize> = own.iter().copied().filter(|&c| c != idle).collect();
    let hogs = pinned_hogs(&busy)?;
    std::thread::sleep(Duration::from_millis(300));
    let stay = wakeup_cpus(idle, 200);
    let node = shape
        .nodes
        .iter()
        .find(|n| n.contains(&idle))
        .cloned()
        .unwrap_or_default();
    let stay_share = share_in(own, &stay);
    let node_share = share_in(&node, &stay);
    // Its whole LLC busy.
    let hog_idle = pinned_hogs(&[idle])?;
    std::thread::sleep(Duration::from_millis(300));
    let moved = wakeup_cpus(idle, 200);
    let away_share = 1.0 - share_in(own, &moved);
    let other_share = share_in(other, &moved);
    // Another LLC in its node: a full LLC's wakeups stay in the node.
    let node_has_other_llc = shape
        .llcs
        .iter()
        .any(|l| l != own && l.iter().all(|c| node.contains(c)));
    let moved_node_share = share_in(&node, &moved);
    drop((hogs, hog_idle));
    b.stop_cleanly()?;
    ensure!(
        stay_share >= 0.9 && node_share >= 0.9,
        "with an idle CPU in its LLC, {:.0}% of wakeups stayed in it and {:.0}% in its node \
         (want 90%): {stay:?}",
        stay_share * 100.0,
        node_share * 100.0
    );
    ensure!(
        away_share >= 0.9,
        "with its LLC full, only {:.0}% of wakeups went to another LLC (want 90%): {moved:?}",
        away_share * 100.0
    );
    ensure!(
        !node_has_other_llc || moved_node_share >= 0.9,
        "with its LLC full and another LLC idle in its node, only {:.0}% of wakeups stayed in \
         the node (want 90%): {moved:?}",
        moved_node_share * 100.0
    );
    Ok(format!(
        "idle CPU in its LLC: {:.0}% of 200 wakeups stayed in the LLC, {:.0}% in the node; \
         LLC full: {:.0}% went elsewhere ({:.0}% to LLC 1, {:.0}% in its node{})",
        stay_share * 100.0,
        node_share * 100.0,
        away_share * 100.0,
        other_share * 100.0,
        moved_node_share * 100.0,
        if node_has_other_llc {
            ", which has another LLC: want 90%"
        } else {
            ""
        }
    ))
}

/// 2. An idle LLC takes work from a loaded one: twice as many hogs as CPUs, all started in
///    one LLC, then free to run anywhere. Over 5 s no CPU idles more than 10% of the time
///    while they wait.
fn llc_steal() -> Result<String> {
    let shape = multi_llc()?;
    let (mut b, _) = Brisk::start(&[])?;
    let own = &shape.llcs[0];
    let hogs = Procs::hogs(2 * shape.cpus, &[])?;
    for (i, h) in hogs.0.iter().enumerate() {
        set_affinity(h.id(), &[own[i % own.len()]]);
    }
    std::thread::sleep(Duration::from_millis(500));
    for h in &hogs.0 {
        set_affinity(h.id(), &(0..shape.cpus).collect::<Vec<_>>());
    }
    std::thread::sleep(Duration::from_secs(1));
    let t0 = sys::cpu_times();
    std::thread::sleep(Duration::from_secs(5));
    let t1 = sys::cpu_times();
    drop(hogs);
    b.stop_cleanly()?;
    let idle_pct: Vec<f64> = t1
        .iter()
        .zip(&t0)
        .map(|(a, b)| {
            let (idle, busy) = (a.0 - b.0, a.1 - b.1);
            idle as f64 * 100.0 / (idle + busy).max(1) as f64
        })
        .collect();
    let worst = idle_pct.iter().cloned().fold(0.0, f64::max);
    ensure!(
        worst <= 10.0,
        "a CPU idled {worst:.0}% of 5 s while {} hogs waited: idle % per CPU {idle_pct:.0?}",
        2 * shape.cpus
    );
    Ok(format!(
        "{} hogs started in LLC 0: most idle CPU {worst:.1}% idle over 5 s",
        2 * shape.cpus
    ))
}

/// The core of each CPU: the first CPU of its sibling list.
fn core_of(cpu: usize) -> usize {
    sys::parse_cpu_list(&sys::read_trim(format!(
        "/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
    )))
    .first()
    .copied()
    .unwrap_or(cpu)
}

/// 3. SMT: with half as many hogs as cores, each hog gets a whole core: in at most 5% of the
///    samples (every 50 ms for 5 s) do two hogs share a core while another core is idle.
fn smt_cores() -> Result<String> {
    let shape = smt_shape()?;
    let cores = shape.cpus / shape.threads;
    let n = (cores / 2).max(2);
    let (mut b, _) = Brisk::start(&[])?;
    let hogs = Procs::hogs(n, &[])?;
    std::thread::sleep(Duration::from_secs(1));
    let (shared, samples) = sample_shared_cores(&hogs, Duration::from_secs(5));
    drop(hogs);
    b.stop_cleanly()?;
    let pct = shared as f64 * 100.0 / samples.max(1) as f64;
    ensure!(
        pct <= 5.0,
        "{n} hogs on {cores} cores: two shared a core in {shared} of {samples} samples ({pct:.0}%)"
    );
    Ok(format!(
        "{n} hogs on {cores} cores: siblings shared in {shared} of {samples} samples"
    ))
}

/// Samples every 50 ms for `time` whether two of `hogs` last ran on one core; returns
/// (samples where they did, samples).
fn sample_shared_cores(hogs: &Procs, time: Duration) -> (usize, usize) {
    let (mut shared, mut samples) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < time {
        let mut used: Vec<usize> = hogs
            .0
            .iter()
            .filter_map(|h| last_cpu(h.id()))
            .map(core_of)
            .collect();
        let n_used = used.len();
        used.sort_unstable();
        used.dedup();
        if used.len() < n_used {
            shared += 1;
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    (shared, samples)
}

/// 3b. SMT, from a bad start: two hogs on the two threads of one core and one pinned to each
///    other CPU; the two are allowed to run anywhere (no CPU is idle, so they stay), then the
///    others exit (a build's jobs finishing). The two left are on different cores within
///    200 ms, and after 1 s share a core in at most 5% of the samples (every 50 ms for 3 s).
///    Nothing else wants their CPUs, so only the scheduler's check when a slice ends moves
///    them that soon (a hog beside a busy sibling while a whole core idles is queued again
///    and placed on that core); otherwise a kernel thread's wakeup on their CPU does, at some
///    point (after 0.34-0.85 s in four of five runs measured without the check).
fn smt_move() -> Result<String> {
    let shape = smt_shape()?;
    let core: Vec<usize> = sys::parse_cpu_list(&sys::read_trim(
        "/sys/devices/system/cpu/cpu0/topology/thread_siblings_list",
    ));
    ensure!(core.len() >= 2, "CPU 0 lists no SMT sibling: {core:?}");
    let all: Vec<usize> = (0..shape.cpus).collect();
    let others: Vec<usize> = all.iter().copied().filter(|c| !core.contains(c)).collect();
    let (mut b, _) = Brisk::start(&[])?;
    let fillers = pinned_hogs(&others)?;
    let pair = pinned_hogs(&core[..2])?;
    // Freed with every CPU busy, the two stay on their core; should a CPU with a filler take
    // one of them meanwhile, pin them back and free them again.
    let mut before = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        for h in &pair.0 {
            set_affinity(h.id(), &all);
        }
        std::thread::sleep(Duration::from_millis(300));
        before = pair.0.iter().map(|h| last_cpu(h.id())).collect();
        if before[0].map(core_of) == before[1].map(core_of) {
            break;
        }
        for (h, &c) in pair.0.iter().zip(&core) {
            set_affinity(h.id(), &[c]);
        }
    }
    if before[0].map(core_of) != before[1].map(core_of) {
        drop((fillers, pair));
        b.stop();
        bail!("5 times the two hogs, freed with every CPU busy, left their core (CPUs {before:?})");
    }
    drop(fillers);
    // Time until the two are on different cores, sampled every 5 ms for up to 2 s.
    let t0 = Instant::now();
    let split = loop {
        let cores: Vec<Option<usize>> = pair
            .0
            .iter()
            .map(|h| last_cpu(h.id()).map(core_of))
            .collect();
        if cores[0] != cores[1] || t0.elapsed() >= Duration::from_secs(2) {
            break t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_secs(1));
    let (shared, samples) = sample_shared_cores(&pair, Duration::from_secs(3));
    drop(pair);
    b.stop_cleanly()?;
    let moved = b.exit_counter("nr_smt_spread").unwrap_or(0);
    let pct = shared as f64 * 100.0 / samples.max(1) as f64;
    let split_ms = split.as_millis();
    ensure!(
        split_ms <= 200 && pct <= 5.0,
        "2 hogs left on one core (CPUs {before:?}): apart after {split_ms} ms (want 200 ms), \
         then shared it in {shared} of {samples} samples ({pct:.0}%, want 5%; nr_smt_spread \
         {moved})"
    );
    Ok(format!(
        "2 hogs left on one core (CPUs {before:?}): apart after {split_ms} ms, then shared it \
         in {shared} of {samples} samples (nr_smt_spread {moved})"
    ))
}

/// 4. Fairness across LLCs: one and a half hogs per CPU, three quarters of them started in
///    LLC 0, get CPU shares within 10% of each other over 10 s; and nice holds across LLCs:
///    nice-0 hogs in one LLC and nice-5 hogs in the other get about their weights' ratio
///    (1024:335, within 25%) once all may run anywhere. After detach, the LLCs' runnable-load
///    accounting the balancer works from is back at zero.
fn llc_fairness() -> Result<String> {
    let shape = multi_llc()?;
    let (mut b, _) = Brisk::start(&[])?;
    let all: Vec<usize> = (0..shape.cpus).collect();
    let n = shape.cpus * 3 / 2;
    let hogs = Procs::hogs(n, &[])?;
    for (i, h) in hogs.0.iter().enumerate() {
        let llc = if i < n * 3 / 4 {
            &shape.llcs[0]
        } else {
            &shape.llcs[1]
        };
        set_affinity(h.id(), &[llc[i % llc.len()]]);
    }
    std::thread::sleep(Duration::from_millis(300));
    for h in &hogs.0 {
        set_affinity(h.id(), &all);
    }
    std::thread::sleep(Duration::from_secs(1));
    let r0 = hogs.runtimes()?;
    let t0 = Instant::now();
    let mut trace = Vec::new();
    let mut prev = r0.clone();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        let now = hogs.runtimes()?;
        let line: Vec<String> = hogs
            .0
            .iter()
            .zip(now.iter().zip(&prev))
            .map(|(h, (a, b))| {
                let c = last_cpu(h.id()).unwrap_or(99);
                format!("{}:{}", c, (a - b) / 10_000_000)
            })
            .collect();
        trace.push(format!(
            "t={:.1} {}",
            t0.elapsed().as_secs_f64(),
            line.join(" ")
        ));
        prev = now;
    }
    let r1 = hogs.runtimes()?;
    let trace = trace.join("\n");
    drop(hogs);
    let ran: Vec<f64> = r1
        .iter()
        .zip(&r0)
        .map(|(a, b)| (a - b) as f64 / 1e6)
        .collect();
    let (min, max) = (
        ran.iter().cloned().fold(f64::MAX, f64::min),
        ran.iter().cloned().fold(0.0, f64::max),
    );

    // Weights: as many nice-0 hogs as CPUs started in LLC 0, as many nice-5 hogs in LLC 1,
    // then free to run anywhere: twice as many hogs as CPUs, so the weights decide.
    let nice0 = Procs::hogs(shape.cpus, &[])?;
    let nice5 = Procs::hogs(shape.cpus, &["--nice", "5"])?;
    for (group, llc) in [(&nice0, &shape.llcs[0]), (&nice5, &shape.llcs[1])] {
        for (i, h) in group.0.iter().enumerate() {
            set_affinity(h.id(), &[llc[i % llc.len()]]);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for h in nice0.0.iter().chain(&nice5.0) {
        set_affinity(h.id(), &all);
    }
    std::thread::sleep(Duration::from_secs(1));
    let (a0, c0) = (nice0.runtimes()?, nice5.runtimes()?);
    // Where the nice-0 hogs ran meanwhile: how many sat in LLC 1 (the nice-5 hogs' LLC), on
    // average over the samples, for the figure (the balancer should move about a third).
    let llc1 = &shape.llcs[1];
    let (mut in_llc1, mut samples) = (0usize, 0usize);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        in_llc1 += nice0
            .0
            .iter()
            .filter(|h| last_cpu(h.id()).is_some_and(|c| llc1.contains(&c)))
            .count();
        samples += 1;
    }
    let (a1, c1) = (nice0.runtimes()?, nice5.runtimes()?);
    drop((nice0, nice5));
    b.stop_cleanly()?;
    let moved = format!(
        "{:.1} of {} nice-0 hogs in LLC 1 on average, {} balancer moves",
        in_llc1 as f64 / samples.max(1) as f64,
        shape.cpus,
        b.exit_counter("nr_balanced").unwrap_or(0)
    );
    let sum = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(a, b)| a - b).sum::<u64>() as f64;
    let ratio = sum(&a1, &a0) / sum(&c1, &c0).max(1.0);
    let want = 1024.0 / 335.0;
    ensure!(
        min >= 0.9 * max,
        "{n} hogs started unevenly over the LLCs ran {min:.0}-{max:.0} ms in 10 s (want within \
         10%): {ran:.0?}; each second, every hog's CPU:share in %:\n{trace}"
    );
    ensure!(
        (ratio / want - 1.0).abs() <= 0.25,
        "nice 0 : nice 5 across LLCs ran {ratio:.2} : 1 (want {want:.2} within 25%); {moved}"
    );
    Ok(format!(
        "{n} hogs ran {min:.0}-{max:.0} ms in 10 s; nice 0 : nice 5 started in different LLCs \
         {ratio:.2} : 1 (weights {want:.2}); {moved}"
    ))
}

/// 5. A whole LLC's CPUs go offline and come back while attached: scx_brisk reloads itself
///    each time the kernel asks (no ejection for an error), and exits 0 at the end. Hogs and
///    pipe pairs run throughout, so that tasks wake and queue while a CPU the loaded topology
///    does not list is online (until the kernel's restart request is served) or, gone
///    offline, still marked idle. The figure counts the tasks each instance sent to such a
///    CPU's local DSQ (`nr_unlisted_local`, summed over the instances): how often the run hit
///    that path, which is chance, so it is printed rather than asserted.
fn llc_offline() -> Result<String> {
    let shape = multi_llc()?;
    let llc = shape.llcs[shape.llcs.len() - 1].clone();
    let (mut b, _) = Brisk::start(&[])?;
    let hogs = Procs::hogs(shape.cpus, &[])?;
    let mut pipe = sys::workload(
        "pipe",
        &["--duration-s", "600", "--pairs", &shape.cpus.to_string()],
    )?;
    pipe.stdout(Stdio::null());
    let pipes = Procs::spawn(pipe)?;
    let restarts = |b: &Brisk| b.output().matches("asked for a restart").count();
    let mut fig = Vec::new();
    for value in ["0", "1"] {
        let before = restarts(&b);
        for c in &llc {
            let path = format!("/sys/devices/system/cpu/cpu{c}/online");
            std::fs::write(&path, value).with_context(|| format!("writing {value} to {path}"))?;
        }
        // Each reload competes with the hogs and pipe pairs on 8 vCPUs that TCG runs on the
        // host's cores: 21-35 s on one host, over 60 s in CI's run on a slower one.
        let t = sys::wait_for(Duration::from_secs(180), || {
            restarts(&b) > before && sys::brisk_attached()
        })
        .with_context(|| {
            format!(
                "not reattached after CPUs {llc:?} online={value} (state {}):\n{}",
                sys::scx_state(),
                b.output()
            )
        })?;
        fig.push(format!(
            "CPUs {llc:?} online={value}: reattached in {:.1} s",
            t.as_secs_f64()
        ));
    }
    // Settle: it may restart more than once while CPUs come and go one by one.
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        sys::brisk_attached(),
        "scx_brisk not attached after the LLC came back"
    );
    drop((hogs, pipes));
    b.stop_cleanly()?;
    ensure!(
        !b.output().contains("scx_bpf_error") && !b.output().contains("runnable task stall"),
        "an error exit during the hotplug:\n{}",
        b.output()
    );
    let (unlisted, instances) = b.counter_over_instances("nr_unlisted_local");
    fig.push(format!(
        "nr_unlisted_local {unlisted} over {instances} instances"
    ));
    Ok(fig.join("; "))
}
