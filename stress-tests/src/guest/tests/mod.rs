//! The integration tests run inside the sched_ext guest (`stress-tests/vm test`). Each prints
//! PASS/FAIL with the figure it checked; the run ends with `N passed, N failed`. One file per
//! test; what several share is in `helpers`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};

use super::sys;

mod attach;
mod auto;
mod bad_input;
mod cgroups;
mod control;
mod costs;
mod fairness;
mod frame_loop;
mod helpers;
mod hotplug;
mod lane_resume;
mod latency;
mod long_burst;
mod metrics;
mod no_stall;
mod probe;
mod request_tail;
mod request_workers;
mod short_first;
mod stats_server;
mod timer_wakeups;
mod top;
mod verifier;
mod weights;
mod woken_hogs;

pub use helpers::sock_send;

pub type TestFn = fn() -> Result<String>;

pub const TESTS: &[(&str, TestFn)] = &[
    ("attach", attach::attach),
    ("no-stall", no_stall::no_stall),
    ("fairness", fairness::fairness),
    ("weights", weights::weights),
    ("short-first", short_first::short_first),
    ("bad-input", bad_input::bad_input),
    ("hotplug", hotplug::hotplug),
    ("latency", latency::latency),
    ("control", control::control),
    ("auto", auto::auto),
    ("probe", probe::probe),
    ("verifier", verifier::verifier),
    ("costs", costs::costs),
    ("stats-server", stats_server::stats_server),
    ("timer-wakeups", timer_wakeups::timer_wakeups),
    ("long-burst", long_burst::long_burst),
    ("cgroups", cgroups::cgroups),
    ("metrics", metrics::metrics),
    ("top", top::top),
    ("frame-loop", frame_loop::frame_loop),
    ("request-workers", request_workers::request_workers),
    ("woken-hogs", woken_hogs::woken_hogs),
    ("lane-resume", lane_resume::lane_resume),
    ("request-tail", request_tail::request_tail),
];

/// Runs the tests of `set` whose names are in `only` (all when empty), each `repeat` times in a
/// row, then prints a table of every case with its figure and result; returns the number of
/// runs failed.
pub fn run(set: &[(&str, TestFn)], only: &[String], repeat: u32) -> Result<usize> {
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
    let selected = set
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| only.is_empty() || only.iter().any(|n| n == name));
    for (i, (name, test)) in selected.flat_map(|t| std::iter::repeat_n(t, repeat as usize)) {
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
        for (sub, secs, verdict, fig) in SUB_CASES.lock().unwrap().drain(..) {
            table.push(format!(
                "| {name}: {sub} | {secs:.0} s | {verdict} | {fig} |"
            ));
        }
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

/// Sub-cases reported by the running test (`Cases`), for the summary table.
static SUB_CASES: std::sync::Mutex<Vec<(String, f64, &'static str, String)>> =
    std::sync::Mutex::new(Vec::new());

/// The sub-cases of a long test, each run and reported PASS/FAIL on its own (a failed one does
/// not stop the next); the test passes only if all of them did.
pub struct Cases {
    test: &'static str,
    failed: Vec<String>,
    passed: usize,
}

impl Cases {
    pub fn new(test: &'static str) -> Self {
        Self {
            test,
            failed: Vec::new(),
            passed: 0,
        }
    }

    /// Runs sub-case `sub` and reports it.
    pub fn run(&mut self, sub: &str, case: impl FnOnce() -> Result<String>) {
        let start = Instant::now();
        let res = case();
        let secs = start.elapsed().as_secs_f64();
        let (verdict, fig) = match res {
            Ok(fig) => {
                self.passed += 1;
                println!("  PASS {}: {sub} ({secs:.1} s): {fig}", self.test);
                ("PASS", fig)
            }
            Err(e) => {
                println!("  FAIL {}: {sub} ({secs:.1} s): {e:#}", self.test);
                self.failed.push(format!("{sub}: {e:#}"));
                ("FAIL", format!("{e:#}"))
            }
        };
        let first_line = fig.lines().next().unwrap_or("").to_string();
        SUB_CASES
            .lock()
            .unwrap()
            .push((sub.to_string(), secs, verdict, first_line));
    }

    /// The test's result: every sub-case passed, or the ones that failed.
    pub fn finish(self) -> Result<String> {
        ensure!(
            self.failed.is_empty(),
            "{} of {} sub-cases failed: {}",
            self.failed.len(),
            self.failed.len() + self.passed,
            self.failed.join("; ")
        );
        Ok(format!("{} sub-cases passed", self.passed))
    }
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
