//! Runs one scenario under one scheduler: the kernel's default (checked to be in charge), or a
//! sched_ext candidate started before and stopped after, checked to have stayed attached.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brisk_stress::results::{Run, Scheduler, DEFAULT};

use super::scenarios;
use crate::guest::sys::{self, ATTACH_TIMEOUT};

/// How long a candidate may take to exit after SIGINT.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of a failed candidate's output kept in the results.
const LOG_TAIL: usize = 15;

/// Whether sched_ext exists here at all (not on a host without it).
pub fn have_sched_ext() -> bool {
    std::path::Path::new("/sys/kernel/sched_ext/state").exists()
}

/// Is `s` scx_brisk itself (its ops name is checked more strictly)?
fn is_brisk(s: &Scheduler) -> bool {
    s.path.as_deref() == Some(sys::SCX_BRISK)
}

/// The candidate's name in `/sys/kernel/sched_ext/root/ops` is as expected.
fn ops_matches(s: &Scheduler, ops: &str) -> bool {
    if is_brisk(s) {
        ops.starts_with("brisk")
    } else {
        !ops.is_empty()
    }
}

/// A running candidate scheduler, its output in a log file.
struct Candidate {
    child: Child,
    log: PathBuf,
    ops: String,
    enable_seq: u64,
}

impl Candidate {
    fn start(s: &Scheduler, seq: usize) -> Result<Candidate> {
        let path = s.path.as_deref().context("a candidate needs a binary")?;
        if sys::scx_state() != "disabled" {
            bail!(
                "another sched_ext scheduler is attached before {} starts (state {:?}, ops {:?})",
                s.name,
                sys::scx_state(),
                sys::scx_ops()
            );
        }
        // Read before starting: enable_seq can lag the state file by a moment after attach.
        let seq0 = sys::scx_enable_seq();
        let log = PathBuf::from(format!("/tmp/bench-{}.{seq}.log", s.name));
        let f = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(path)
            .args(&s.args)
            .stdout(f.try_clone()?)
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {path}"))?;
        let mut c = Candidate {
            child,
            log,
            ops: String::new(),
            enable_seq: 0,
        };
        let attached = sys::wait_for(ATTACH_TIMEOUT, || {
            sys::scx_state() == "enabled" && ops_matches(s, &sys::scx_ops())
        });
        if attached.is_none() {
            let code = c.kill();
            bail!(
                "{} did not attach within {ATTACH_TIMEOUT:?} (state {:?}, exit {code:?}); its output:\n{}",
                s.name,
                sys::scx_state(),
                c.log_tail()
            );
        }
        c.ops = sys::scx_ops();
        if sys::wait_for(Duration::from_secs(2), || sys::scx_enable_seq() > seq0).is_none() {
            c.kill();
            bail!("{} attached but enable_seq stayed at {seq0}", s.name);
        }
        c.enable_seq = sys::scx_enable_seq();
        Ok(c)
    }

    /// Still attached as when it started: running, state enabled, same ops, never re-enabled.
    fn still_attached(&mut self) -> Result<(), String> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Err(format!("it exited during the scenario ({st})"));
        }
        let (state, ops, seq) = (sys::scx_state(), sys::scx_ops(), sys::scx_enable_seq());
        if state != "enabled" || ops != self.ops {
            return Err(format!("detached: state {state:?}, ops {ops:?}"));
        }
        if seq != self.enable_seq {
            return Err(format!(
                "re-enabled during the scenario (enable_seq {} -> {seq})",
                self.enable_seq
            ));
        }
        Ok(())
    }

    /// SIGINT; the exit code (None: it had to be killed).
    fn stop(&mut self) -> Option<i32> {
        sys::signal(&self.child, libc::SIGINT);
        let code = sys::wait_exit(&mut self.child, EXIT_TIMEOUT);
        if code.is_none() {
            self.kill();
        }
        code
    }

    fn kill(&mut self) -> Option<i32> {
        sys::signal(&self.child, libc::SIGKILL);
        sys::wait_exit(&mut self.child, EXIT_TIMEOUT)
    }

    /// The last `counters: ...` line of its output, if it logged one.
    fn counters_line(&self) -> Option<String> {
        let text = self.log_text();
        let line = text.lines().rev().find(|l| l.contains("counters: "))?;
        Some(line.split_once("counters: ")?.1.to_string())
    }

    /// Everything it printed (standard output and error share the log); empty if unreadable.
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Runs `scenario` under `sched`; never fails: a failure is recorded in the run.
pub fn run_one(sched: &Scheduler, scenario: &str, round: u32, quick: bool, seq: usize) -> Run {
    let mut run = Run {
        scenario: scenario.to_string(),
        scheduler: sched.name.clone(),
        round,
        duration_s: 0.0,
        ok: false,
        error: None,
        attached: None,
        ops: None,
        exit_code: None,
        metrics: Default::default(),
        cdfs: Default::default(),
        raw: serde_json::Value::Null,
    };
    let start = Instant::now();
    let result = if sched.name == DEFAULT {
        run_default(scenario, quick)
    } else {
        run_candidate(sched, scenario, quick, seq, &mut run)
    };
    run.duration_s = start.elapsed().as_secs_f64();
    match result {
        Ok(outcome) => {
            run.metrics = outcome.metrics;
            run.cdfs = outcome.cdfs;
            run.raw = serde_json::Value::Object(outcome.raw);
            run.ok = run.error.is_none();
        }
        Err(e) => {
            let msg = format!("{e:#}");
            run.error = Some(match run.error.take() {
                Some(first) => format!("{first}; {msg}"),
                None => msg,
            });
        }
    }
    run
}

fn run_default(scenario: &str, quick: bool) -> Result<scenarios::Outcome> {
    if have_sched_ext() && sys::scx_state() != "disabled" {
        bail!(
            "a sched_ext scheduler is attached (state {:?}, ops {:?}): this would not measure \
             the default scheduler",
            sys::scx_state(),
            sys::scx_ops()
        );
    }
    scenarios::run(scenario, quick)
}

/// Starts the candidate, runs the scenario, checks the candidate stayed attached and exits 0.
/// Attachment problems are recorded in `run.error` (the scenario's figures are kept).
fn run_candidate(
    sched: &Scheduler,
    scenario: &str,
    quick: bool,
    seq: usize,
    run: &mut Run,
) -> Result<scenarios::Outcome> {
    let mut c = Candidate::start(sched, seq)?;
    run.ops = Some(c.ops.clone());
    let outcome = scenarios::run(scenario, quick);
    let attached = c.still_attached();
    run.attached = Some(attached.is_ok());
    let code = c.stop();
    run.exit_code = code;
    let counters = c.counters_line();
    let mut problems = Vec::new();
    if let Err(why) = attached {
        problems.push(format!("{} did not stay attached: {why}", sched.name));
    }
    match code {
        Some(0) => {}
        Some(code) => problems.push(format!("{} exited with code {code}", sched.name)),
        None => problems.push(format!(
            "{} did not exit within {EXIT_TIMEOUT:?} of SIGINT",
            sched.name
        )),
    }
    if c.log_text().contains(sys::DRIFT_WARNING) {
        problems.push(format!(
            "{}'s accounting was not back at zero after detach",
            sched.name
        ));
    }
    if sys::wait_for(Duration::from_secs(5), || sys::scx_state() == "disabled").is_none() {
        problems.push(format!(
            "sched_ext did not return to disabled after {} exited (state {:?})",
            sched.name,
            sys::scx_state()
        ));
    }
    if !problems.is_empty() {
        run.error = Some(format!(
            "{}; its output:\n{}",
            problems.join("; "),
            c.log_tail()
        ));
    }
    // The candidate's own counters for this run (scx_brisk logs them as it exits), so that a
    // round that went differently can be told apart by what the scheduler did.
    outcome.map(|mut o| {
        if let Some(line) = counters {
            o.raw.insert("scheduler_counters".into(), line.into());
        }
        o
    })
}
