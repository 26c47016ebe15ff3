//! The benchmark's scenarios: workloads (`brisk-guest workload ...` child processes, and
//! hackbench) combined, each for a fixed time, reduced to named metrics.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brisk_stress::stats::{self, Latency};
use serde_json::{json, Value};

use crate::guest::sys;
use crate::guest::workloads::build::BuildReport;
use crate::guest::workloads::cli::PeriodicReport;
use crate::guest::workloads::hogs::HogsReport;
use crate::guest::workloads::pipe::PipeReport;
use crate::guest::workloads::wakeup::WakeupReport;

/// Every scenario, in the order the bench runs them.
pub use brisk_stress::results::SCENARIOS as ALL;

/// hackbench's arguments in the messaging scenario.
pub const HACKBENCH_ARGS: [&str; 4] = ["-g", "4", "-l", "100"];
/// A lighter hackbench for the mixed scenario, so runs end near its deadline.
const HACKBENCH_MIXED_ARGS: [&str; 4] = ["-g", "2", "-l", "50"];
/// Time the hogs get to spread over the CPUs before the measured task starts.
const SETTLE: Duration = Duration::from_millis(500);

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub metrics: BTreeMap<String, f64>,
    pub cdfs: BTreeMap<String, Vec<[f64; 2]>>,
    pub raw: serde_json::Map<String, Value>,
}

impl Outcome {
    /// Keeps a workload's own JSON, without its CDFs (already in `cdfs`).
    fn keep(&mut self, name: &str, report: &impl serde::Serialize) {
        let mut v = json!(report);
        strip_cdfs(&mut v);
        self.raw.insert(name.to_string(), v);
    }

    fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }

    /// Adds `prefix_p50_us`, `prefix_p99_us`, ... and the CDF under `cdf_name`.
    fn latency(&mut self, prefix: &str, l: &Latency, cdf_name: &str, all: bool) {
        self.metric(&format!("{prefix}_p50_us"), l.p50_us);
        if all {
            self.metric(&format!("{prefix}_p90_us"), l.p90_us);
        }
        self.metric(&format!("{prefix}_p99_us"), l.p99_us);
        if all {
            self.metric(&format!("{prefix}_p999_us"), l.p999_us);
            self.metric(&format!("{prefix}_max_us"), l.max_us);
        }
        self.cdfs.insert(cdf_name.to_string(), l.cdf_us.clone());
    }

    /// The periodic task's queue wait (`periodic_queue_wait_*`): the scheduler's part of its
    /// lateness. Left out where the kernel does not account it.
    fn queue_wait(&mut self, periodic: &PeriodicReport) {
        if periodic.queue_wait.count > 0 {
            let wait = &periodic.queue_wait;
            self.latency("periodic_queue_wait", wait, "periodic queue wait", false);
        }
    }
}

/// Durations of one scenario's parts, in seconds.
struct Plan {
    /// Main measuring time.
    main: f64,
    /// Time for extra parts (server's second load, messaging's pipe ping-pong, desktop's
    /// periodic task alone).
    extra: f64,
    /// Minimum hackbench runs (messaging).
    min_runs: usize,
}

fn plan(name: &str, quick: bool) -> Plan {
    let (main, extra, min_runs) = match (name, quick) {
        ("server", false) => (10.0, 10.0, 0),
        ("server", true) => (2.5, 2.5, 0),
        ("batch", false) => (15.0, 0.0, 0),
        ("batch", true) => (4.0, 0.0, 0),
        ("messaging", false) => (20.0, 5.0, 3),
        ("messaging", true) => (0.0, 1.5, 1),
        ("desktop", false) => (20.0, 4.0, 0),
        ("desktop", true) => (5.0, 1.0, 0),
        ("game", false) => (20.0, 0.0, 0),
        ("game", true) => (4.0, 0.0, 0),
        (_, false) => (20.0, 0.0, 0),
        (_, true) => (5.0, 0.0, 0),
    };
    Plan {
        main,
        extra,
        min_runs,
    }
}

/// Roughly how long a scenario takes, in seconds (for the progress line).
pub fn planned_secs(name: &str, quick: bool) -> f64 {
    let p = plan(name, quick);
    let settle = match name {
        "desktop" | "mixed" | "game" => 1.0 + SETTLE.as_secs_f64(),
        _ => 0.0,
    };
    // A hackbench run takes a few seconds in the TCG guest.
    p.main.max(p.min_runs as f64 * 4.0) + p.extra + settle
}

/// The mixed scenario for `secs` seconds (the reliability soak).
pub fn mixed_for(secs: f64) -> Result<Outcome> {
    let p = Plan {
        main: secs,
        extra: 0.0,
        min_runs: 0,
    };
    mixed(&p, sys::nr_cpus())
}

/// Runs the scenario `name`.
pub fn run(name: &str, quick: bool) -> Result<Outcome> {
    let p = plan(name, quick);
    let cpus = sys::nr_cpus();
    match name {
        "desktop" => desktop(&p, cpus),
        "game" => game(&p, cpus),
        "server" => server(&p),
        "batch" => batch(&p, cpus),
        "messaging" => messaging(&p),
        "mixed" => mixed(&p, cpus),
        other => bail!("unknown scenario {other:?} (known: {})", ALL.join(", ")),
    }
}

/// Periodic task (10 ms period, 1 ms work) beside 2 hogs per CPU. First the same task runs
/// alone on the idle machine: its lateness there is what the machine itself adds (timer
/// interrupts, wakeup path; under emulation most of it), a floor no scheduler goes below.
fn desktop(p: &Plan, cpus: usize) -> Result<Outcome> {
    let alone: PeriodicReport =
        Workload::start("periodic", &periodic_args(p.extra))?.finish(p.extra)?;
    let hogs = Workload::start("hogs", &settled_args(p.main, 0.5, "--count", 2 * cpus))?;
    std::thread::sleep(SETTLE);
    let periodic = Workload::start("periodic", &periodic_args(p.main))?;
    let periodic: PeriodicReport = periodic.finish(p.main)?;
    let hogs: HogsReport = hogs.finish(p.main)?;
    let mut o = Outcome::default();
    o.latency("periodic", &periodic.lateness, "periodic lateness", true);
    o.metric("periodic_missed", periodic.missed as f64);
    o.queue_wait(&periodic);
    o.latency(
        "alone_periodic",
        &alone.lateness,
        "periodic lateness, alone",
        false,
    );
    o.keep("periodic_alone", &alone);
    o.metric("hogs_work_per_s", hogs.work_per_s);
    o.keep("periodic", &periodic);
    o.keep("hogs", &hogs);
    Ok(o)
}

/// A game while a build runs: a 60 Hz frame loop (4 ms of work per frame) and an audio-like
/// loop (5 ms period, 0.4 ms of work) beside a compile-like background (2 job processes per
/// CPU, 20-200 ms each, plus short helpers). A frame that starts after the next frame was due
/// is missed (stutter); an audio period likewise (a crackle).
fn game(p: &Plan, cpus: usize) -> Result<Outcome> {
    let build = Workload::start("build", &settled_args(p.main, 0.5, "--workers", 2 * cpus))?;
    std::thread::sleep(SETTLE);
    let frame = Workload::start(
        "periodic",
        &loop_args(p.main, FRAME_PERIOD_MS, FRAME_WORK_MS),
    )?;
    let audio = Workload::start(
        "periodic",
        &loop_args(p.main, AUDIO_PERIOD_MS, AUDIO_WORK_MS),
    )?;
    let frame: PeriodicReport = frame.finish(p.main)?;
    let audio: PeriodicReport = audio.finish(p.main)?;
    let build: BuildReport = build.finish(p.main)?;
    let mut o = Outcome::default();
    o.metric("frame_missed_pct", missed_pct(&frame));
    o.latency("frame", &frame.lateness, "frame lateness", false);
    o.latency("audio", &audio.lateness, "audio lateness", false);
    o.metric("audio_missed", audio.missed as f64);
    o.metric("build_job_ms_per_s", build.job_ms_per_s);
    o.keep("frame", &frame);
    o.keep("audio", &audio);
    o.keep("build", &build);
    Ok(o)
}

/// The game's loops: period and work, in ms.
const FRAME_PERIOD_MS: f64 = 1000.0 / 60.0;
const FRAME_WORK_MS: f64 = 4.0;
const AUDIO_PERIOD_MS: f64 = 5.0;
const AUDIO_WORK_MS: f64 = 0.4;

/// Missed periods as a percentage of the periods due.
fn missed_pct(r: &PeriodicReport) -> f64 {
    let due = r.duration_s * 1e6 / r.period_us;
    if due > 0.0 {
        100.0 * r.missed as f64 / due
    } else {
        0.0
    }
}

/// Wakeup pairs at 50% load, then at 100%.
fn server(p: &Plan) -> Result<Outcome> {
    let mut o = Outcome::default();
    for (load, secs) in [(50, p.main), (100, p.extra)] {
        let w: WakeupReport = Workload::start("wakeup", &wakeup_args(secs, load))?.finish(secs)?;
        let prefix = format!("load{load}");
        let cdf = format!("wakeup latency, {load}% load");
        o.latency(&format!("{prefix}_wakeup"), &w.wakeup, &cdf, false);
        o.metric(&format!("{prefix}_request_p99_us"), w.request.p99_us);
        o.metric(&format!("{prefix}_requests_per_s"), w.requests_per_s);
        o.keep(&prefix, &w);
    }
    Ok(o)
}

/// Equal-nice hogs only: throughput and fairness.
fn batch(p: &Plan, cpus: usize) -> Result<Outcome> {
    let hogs: HogsReport = Workload::start("hogs", &hog_args(p.main, 2 * cpus))?.finish(p.main)?;
    let mut o = Outcome::default();
    o.metric("work_per_s", hogs.work_per_s);
    o.metric("jain_index", hogs.jain_index);
    o.keep("hogs", &hogs);
    Ok(o)
}

/// hackbench runs (median time), then pipe ping-pong.
fn messaging(p: &Plan) -> Result<Outcome> {
    let deadline = Instant::now() + Duration::from_secs_f64(p.main);
    let runs = hackbench_loop(&HACKBENCH_ARGS, deadline, p.min_runs)?;
    let mut o = Outcome::default();
    runs.record(&mut o, &HACKBENCH_ARGS)?;
    let pipe: PipeReport = Workload::start("pipe", &secs_arg(p.extra))?.finish(p.extra)?;
    o.metric("pipe_round_trips_per_s", pipe.round_trips_per_s);
    o.keep("pipe", &pipe);
    Ok(o)
}

/// Everything at once: one hog per CPU, the periodic task, wakeup pairs at 50% load and a
/// hackbench loop.
fn mixed(p: &Plan, cpus: usize) -> Result<Outcome> {
    let hogs = Workload::start("hogs", &settled_args(p.main, 0.5, "--count", cpus))?;
    std::thread::sleep(SETTLE);
    let deadline = Instant::now() + Duration::from_secs_f64(p.main);
    let cpu_before = sys::cpu_times();
    let periodic = Workload::start("periodic", &periodic_args(p.main))?;
    let wakeup = Workload::start("wakeup", &wakeup_args(p.main, 50))?;
    let hackbench = std::thread::spawn(move || hackbench_loop(&HACKBENCH_MIXED_ARGS, deadline, 1));
    let periodic: PeriodicReport = periodic.finish(p.main)?;
    let wakeup: WakeupReport = wakeup.finish(p.main)?;
    let cpu_after = sys::cpu_times();
    let runs = hackbench
        .join()
        .map_err(|_| anyhow::anyhow!("hackbench thread panicked"))??;
    let hogs: HogsReport = hogs.finish(p.main)?;
    let mut o = Outcome::default();
    o.latency("periodic", &periodic.lateness, "periodic lateness", false);
    o.queue_wait(&periodic);
    o.latency("wakeup", &wakeup.wakeup, "wakeup latency", false);
    o.metric("requests_per_s", wakeup.requests_per_s);
    o.metric("hogs_work_per_s", hogs.work_per_s);
    // What the switches in their context cost the hogs, and how many there were.
    o.metric("hogs_work_per_cpu_s", hogs.work_per_cpu_s);
    if hogs.stint_us > 0.0 {
        o.metric("hogs_stint_us", hogs.stint_us);
    }
    runs.record(&mut o, &HACKBENCH_MIXED_ARGS)?;
    // The hogs keep every CPU busy, so idle time is work the scheduler left waiting.
    if let Some(pct) = idle_pct(&cpu_before, &cpu_after) {
        o.metric("idle_pct", pct);
        // Where the CPUs' time went: what the request workers gain comes out of the rest.
        let hogs_cpus = hogs.hogs.iter().map(|h| h.cpu_ms).sum::<f64>() / 1e3 / hogs.duration_s;
        let wall: f64 = runs.wall_s.iter().sum();
        let hackbench_cpus = if wall > 0.0 {
            runs.cpu_s.iter().sum::<f64>() / wall
        } else {
            0.0
        };
        let split = [
            ("cpus_hogs", hogs_cpus),
            ("cpus_requests", wakeup.cpu_s / wakeup.duration_s),
            ("cpus_periodic", periodic.cpu_s / periodic.duration_s),
            ("cpus_hackbench", hackbench_cpus),
        ];
        let busy = cpus as f64 * (1.0 - pct / 100.0);
        for (name, value) in split {
            o.metric(name, value);
        }
        o.metric(
            "cpus_other",
            busy - split.iter().map(|(_, v)| v).sum::<f64>(),
        );
    }
    o.keep("periodic", &periodic);
    o.keep("wakeup", &wakeup);
    o.keep("hogs", &hogs);
    Ok(o)
}

/// Removes every `cdf_us` field (the CDFs are kept once, in the run's `cdfs`).
fn strip_cdfs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("cdf_us");
            map.values_mut().for_each(strip_cdfs);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_cdfs),
        _ => {}
    }
}

fn secs_arg(secs: f64) -> Vec<String> {
    vec!["--duration-s".into(), format!("{secs}")]
}

fn hog_args(secs: f64, count: usize) -> Vec<String> {
    [secs_arg(secs), vec!["--count".into(), count.to_string()]].concat()
}

/// A background of `count` (`--count` hogs, `--workers` build workers) started `SETTLE`
/// before a load of `main` seconds and running `tail` seconds past it (so that the build's
/// jobs still running as the load ends finish and count), its work counted only while the
/// load runs (`--measure-from-s`, `--measure-s`).
fn settled_args(main: f64, tail: f64, count_flag: &str, count: usize) -> Vec<String> {
    let settle = SETTLE.as_secs_f64();
    [
        secs_arg(settle + main + tail),
        vec![count_flag.into(), count.to_string()],
        vec![
            "--measure-from-s".into(),
            format!("{settle}"),
            "--measure-s".into(),
            format!("{main}"),
        ],
    ]
    .concat()
}

fn loop_args(secs: f64, period_ms: f64, work_ms: f64) -> Vec<String> {
    let rest = [
        "--period-ms".to_string(),
        format!("{period_ms}"),
        "--work-ms".into(),
        format!("{work_ms}"),
    ];
    [secs_arg(secs), rest.to_vec()].concat()
}

fn periodic_args(secs: f64) -> Vec<String> {
    let rest = ["--period-ms", "10", "--work-ms", "1"].map(String::from);
    [secs_arg(secs), rest.to_vec()].concat()
}

fn wakeup_args(secs: f64, load_pct: u32) -> Vec<String> {
    [
        secs_arg(secs),
        vec!["--load-pct".into(), load_pct.to_string()],
    ]
    .concat()
}

/// What a hackbench loop measured, one entry per run.
#[derive(Default)]
pub struct HackbenchRuns {
    /// Each run's time, in seconds.
    pub times: Vec<f64>,
    /// Context switches on the whole machine during each run (`ctxt` of /proc/stat), where
    /// /proc/stat could be read. Under the mixed load the request pairs add about two per
    /// request served.
    pub switches: Vec<u64>,
    /// CPU time of each run's hackbench processes (user + system, all of them), in seconds:
    /// a run's cost, apart from the CPU share it got.
    pub cpu_s: Vec<f64>,
    /// Context switches of each run's hackbench processes alone (voluntary + involuntary).
    pub own_switches: Vec<u64>,
    /// Each run's wall time, start-up and exit included, in seconds (hackbench's own time
    /// starts once every sender and receiver is ready).
    pub wall_s: Vec<f64>,
}

impl HackbenchRuns {
    /// Adds the medians (`hackbench_time_s`, `_wall_s`, `_cpu_s_per_run`, `_switches_per_run`,
    /// `_own_switches_per_run`) to `o`, and every run to its raw data.
    fn record(&self, o: &mut Outcome, args: &[&str]) -> Result<()> {
        o.metric(
            "hackbench_time_s",
            stats::median(&self.times).context("no hackbench run")?,
        );
        let as_f64 = |v: &[u64]| v.iter().map(|&n| n as f64).collect::<Vec<_>>();
        let medians = [
            ("hackbench_wall_s", self.wall_s.clone()),
            ("hackbench_cpu_s_per_run", self.cpu_s.clone()),
            ("hackbench_switches_per_run", as_f64(&self.switches)),
            ("hackbench_own_switches_per_run", as_f64(&self.own_switches)),
        ];
        for (name, values) in medians {
            if let Some(median) = stats::median(&values) {
                o.metric(name, median);
            }
        }
        o.raw.insert(
            "hackbench".into(),
            json!({
                "args": args,
                "times_s": self.times,
                "switches": self.switches,
                "cpu_s": self.cpu_s,
                "own_switches": self.own_switches,
                "wall_s": self.wall_s,
            }),
        );
        Ok(())
    }
}

/// Runs hackbench with `args` until `deadline` has passed and at least `min_runs` ran (a run
/// started before the deadline finishes).
pub fn hackbench_loop(args: &[&str], deadline: Instant, min_runs: usize) -> Result<HackbenchRuns> {
    let mut runs = HackbenchRuns::default();
    while runs.times.len() < min_runs.max(1) || Instant::now() < deadline {
        let start = Instant::now();
        let ctxt_before = context_switches();
        let mut child = Command::new("hackbench")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running hackbench")?;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut stdout)
                .context("reading hackbench's output")?;
        }
        if let Some(mut err) = child.stderr.take() {
            err.read_to_string(&mut stderr)
                .context("reading hackbench's errors")?;
        }
        let (status, usage) = wait_with_usage(&child)?;
        if !status.success() {
            bail!(
                "hackbench {} failed ({status}): {}",
                args.join(" "),
                stderr.trim()
            );
        }
        if let (Some(a), Some(b)) = (ctxt_before, context_switches()) {
            runs.switches.push(b.saturating_sub(a));
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        runs.cpu_s.push(secs(usage.ru_utime) + secs(usage.ru_stime));
        runs.own_switches
            .push((usage.ru_nvcsw + usage.ru_nivcsw).max(0) as u64);
        let wall_s = start.elapsed().as_secs_f64();
        runs.wall_s.push(wall_s);
        runs.times
            .push(parse_hackbench_time(&stdout).unwrap_or(wall_s));
    }
    Ok(runs)
}

/// Reaps `child` and returns its exit status with the resources it and the children it
/// waited for used (`wait4`).
fn wait_with_usage(child: &Child) -> Result<(std::process::ExitStatus, libc::rusage)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain syscall; `usage` is written by the kernel on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((std::process::ExitStatus::from_raw(status), usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for hackbench");
        }
    }
}

/// Share of all CPUs' time spent idle between two `sys::cpu_times` readings, in percent
/// (None if /proc/stat could not be read or no time passed).
pub fn idle_pct(before: &[(u64, u64)], after: &[(u64, u64)]) -> Option<f64> {
    let (mut idle, mut busy) = (0u64, 0u64);
    for (b, a) in before.iter().zip(after) {
        idle += a.0.saturating_sub(b.0);
        busy += a.1.saturating_sub(b.1);
    }
    (idle + busy > 0).then(|| 100.0 * idle as f64 / (idle + busy) as f64)
}

/// Context switches since boot, all CPUs (None if /proc/stat cannot be read).
fn context_switches() -> Option<u64> {
    parse_ctxt(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `ctxt N` line of /proc/stat.
pub fn parse_ctxt(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("ctxt ")?.trim().parse().ok())
}

/// The `Time: 1.234` hackbench prints at the end.
pub fn parse_hackbench_time(output: &str) -> Option<f64> {
    output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Time:")?.trim().parse().ok())
}

/// A `brisk-guest workload` child process with its stdout captured, in its own process group
/// (killed with its descendants if dropped before it finished).
struct Workload {
    name: String,
    child: Option<Child>,
}

impl Workload {
    fn start(name: &str, args: &[String]) -> Result<Workload> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().context("locating brisk-guest")?;
        let child = Command::new(exe)
            .arg("workload")
            .arg(name)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting workload {name}"))?;
        Ok(Workload {
            name: name.to_string(),
            child: Some(child),
        })
    }

    /// Waits for the workload (it should end about `secs` after it started; it gets 30 s
    /// more) and parses its JSON.
    fn finish<T: serde::de::DeserializeOwned>(mut self, secs: f64) -> Result<T> {
        let mut child = self.child.take().context("workload already finished")?;
        let timeout = Duration::from_secs_f64(secs + 30.0);
        let code = sys::wait_exit(&mut child, timeout);
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out).ok();
        }
        match code {
            Some(0) => {}
            Some(code) => bail!("workload {} exited with code {code}", self.name),
            None => {
                kill_group(&mut child);
                bail!("workload {} did not finish within {timeout:?}", self.name);
            }
        }
        serde_json::from_str(out.trim())
            .with_context(|| format!("parsing the output of workload {}: {out:?}", self.name))
    }
}

fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group we created for this child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdfs_are_stripped_from_raw() {
        let mut v = json!({"a": {"cdf_us": [[0.5, 1.0]], "p50_us": 1.0}, "b": [{"cdf_us": []}]});
        strip_cdfs(&mut v);
        assert_eq!(v, json!({"a": {"p50_us": 1.0}, "b": [{}]}));
    }

    #[test]
    fn idle_share() {
        // Two CPUs: 30 of 200 jiffies idle.
        let before = [(100, 1000), (50, 2000)];
        let after = [(120, 1080), (60, 2090)];
        assert_eq!(idle_pct(&before, &after), Some(15.0));
        assert_eq!(idle_pct(&before, &before), None);
        assert_eq!(idle_pct(&[], &[]), None);
    }

    #[test]
    fn hackbench_time_parsing() {
        let out = "Running in process mode with 4 groups using 40 file descriptors each \
                   (== 160 tasks)\nEach sender will pass 100 messages of 100 bytes\nTime: 3.456\n";
        assert_eq!(parse_hackbench_time(out), Some(3.456));
        assert_eq!(parse_hackbench_time("Time: x\n"), None);
        assert_eq!(parse_hackbench_time(""), None);
    }

    #[test]
    fn ctxt_parsing() {
        let stat = "cpu  6 0 727 525 0 0 2 0 0 0\ncpu0 3 0 300 200 0 0 1 0 0 0\n\
                    intr 12345 0 1\nctxt 23601\nbtime 1700000000\nprocesses 412\n";
        assert_eq!(parse_ctxt(stat), Some(23601));
        assert_eq!(parse_ctxt("cpu 1 2 3\nctxt x\n"), None);
        assert_eq!(parse_ctxt("intr 1\n"), None);
    }

    #[test]
    fn quick_bench_is_about_two_minutes() {
        // 2 schedulers x 2 rounds of every scenario, plus ~1 s per run to attach/detach.
        let per_round: f64 = ALL.iter().map(|s| planned_secs(s, true)).sum();
        let total = 2.0 * 2.0 * (per_round + ALL.len() as f64 * 0.5);
        assert!((90.0..=150.0).contains(&total), "{total} s");
        let full: f64 = ALL.iter().map(|s| planned_secs(s, false)).sum();
        assert!(full > 3.0 * per_round);
    }
}
