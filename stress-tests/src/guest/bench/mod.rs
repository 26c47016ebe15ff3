//! `brisk-guest bench`: the A/B benchmark. For each scenario, the kernel's default scheduler
//! and each candidate (scx_brisk, and any `--candidate`) run it in turn, interleaved
//! (A B A B ...) for R rounds, in one boot. Progress goes to stdout; at the end the raw
//! results are printed as JSON between marker lines (`brisk_stress::results`) for the host.

pub mod runner;
pub mod scenarios;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use brisk_stress::results::{self, BenchResults, Scheduler, BRISK, DEFAULT};
use clap::Args;

use crate::guest::sys;

/// Seconds a candidate's start and stop add to a run, for the progress estimate.
const CANDIDATE_OVERHEAD_S: f64 = 1.0;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Rounds per scenario and scheduler [default: 3, or 2 with --quick]
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    /// Run only this scenario (repeatable)
    #[arg(long = "scenario", value_name = "S", value_parser = clap::builder::PossibleValuesParser::new(scenarios::ALL))]
    pub scenarios: Vec<String>,
    /// Short scenarios: the whole bench takes about 2 minutes (for CI)
    #[arg(long)]
    pub quick: bool,
    /// Policy file for scx_brisk (passed on as `--policy FILE`)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<String>,
    /// Another sched_ext scheduler to compare (repeatable): `NAME=PATH`, or `NAME=PATH ARGS...`
    /// as one argument. Arguments after `--` go to the last --candidate (to scx_brisk if
    /// there is none)
    #[arg(long = "candidate", value_name = "NAME=PATH")]
    pub candidates: Vec<String>,
    /// Development: run only the default scheduler (works without sched_ext, e.g. on a host)
    #[arg(long, hide = true)]
    pub default_only: bool,
    /// Also write the results JSON to this file
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Arguments for the last --candidate, or for scx_brisk
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// A `--candidate` value: `NAME=PATH [ARGS...]`.
pub fn parse_candidate(spec: &str) -> Result<Scheduler> {
    let mut words = spec.split_whitespace();
    let first = words.next().context("empty --candidate")?;
    let (name, path) = first
        .split_once('=')
        .with_context(|| format!("--candidate {spec:?} is not NAME=PATH"))?;
    ensure!(
        !name.is_empty() && !path.is_empty(),
        "--candidate {spec:?} is not NAME=PATH"
    );
    ensure!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)),
        "candidate name {name:?}: use letters, digits, '_', '-', '.'"
    );
    ensure!(
        name != DEFAULT && name != BRISK,
        "candidate name {name:?} is reserved"
    );
    Ok(Scheduler {
        name: name.to_string(),
        path: Some(path.to_string()),
        args: words.map(str::to_string).collect(),
    })
}

/// The schedulers to compare: the default first, then scx_brisk, then the candidates.
pub fn schedulers(a: &BenchArgs) -> Result<Vec<Scheduler>> {
    let mut list = vec![Scheduler {
        name: DEFAULT.into(),
        path: None,
        args: Vec::new(),
    }];
    if a.default_only {
        ensure!(
            a.candidates.is_empty() && a.args.is_empty(),
            "--default-only runs no candidate"
        );
        return Ok(list);
    }
    let mut brisk_args = Vec::new();
    if let Some(policy) = &a.policy {
        brisk_args.extend(["--policy".to_string(), policy.clone()]);
    }
    let mut others = a
        .candidates
        .iter()
        .map(|c| parse_candidate(c))
        .collect::<Result<Vec<_>>>()?;
    match others.last_mut() {
        Some(last) => last.args.extend(a.args.iter().cloned()),
        None => brisk_args.extend(a.args.iter().cloned()),
    }
    list.push(Scheduler {
        name: BRISK.into(),
        path: Some(sys::SCX_BRISK.into()),
        args: brisk_args,
    });
    for c in others {
        ensure!(
            !list.iter().any(|s| s.name == c.name),
            "two candidates are named {:?}",
            c.name
        );
        list.push(c);
    }
    Ok(list)
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

pub fn main(a: &BenchArgs) -> Result<i32> {
    let scheds = schedulers(a)?;
    if !a.default_only && !runner::have_sched_ext() {
        bail!("this kernel has no sched_ext (/sys/kernel/sched_ext is missing)");
    }
    let scenario_list: Vec<String> = if a.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| s.to_string()).collect()
    } else {
        a.scenarios.clone()
    };
    let rounds = a.rounds.unwrap_or(if a.quick { 2 } else { 3 });
    let mut results = BenchResults {
        version: 1,
        started_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        kernel: sys::read_trim("/proc/sys/kernel/osrelease"),
        cmdline: sys::read_trim("/proc/cmdline"),
        nr_cpus: sys::nr_cpus(),
        quick: a.quick,
        rounds,
        command: std::env::args().collect(),
        schedulers: scheds.clone(),
        scenarios: scenario_list.clone(),
        runs: Vec::new(),
    };

    // The plan, in order: for each scenario, R rounds of every scheduler in turn.
    let mut plan = Vec::new();
    for scenario in &scenario_list {
        for round in 0..rounds {
            for s in &scheds {
                let overhead = if s.path.is_some() {
                    CANDIDATE_OVERHEAD_S
                } else {
                    0.0
                };
                let secs = scenarios::planned_secs(scenario, a.quick) + overhead;
                plan.push((scenario.as_str(), round, s, secs));
            }
        }
    }
    let total_planned: f64 = plan.iter().map(|p| p.3).sum();
    println!(
        "bench: {} scenario(s) x {} scheduler(s) ({}) x {rounds} round(s), about {} in all",
        scenario_list.len(),
        scheds.len(),
        scheds
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        fmt_secs(total_planned)
    );
    let started = Instant::now();
    let mut left = total_planned;
    for (i, &(scenario, round, s, secs)) in plan.iter().enumerate() {
        println!(
            "[{:>2}/{}] {scenario} round {}/{rounds}: {} (~{}); about {} left",
            i + 1,
            plan.len(),
            round + 1,
            s.name,
            fmt_secs(secs),
            fmt_secs(left)
        );
        std::io::stdout().flush().ok();
        let run = runner::run_one(s, scenario, round, a.quick, i);
        if let Some(err) = &run.error {
            println!("        FAILED: {err}");
        } else {
            println!("        done in {:.1} s", run.duration_s);
        }
        left -= secs;
        results.runs.push(run);
    }
    let failed = results.runs.iter().filter(|r| !r.ok).count();
    println!(
        "bench: {} runs in {}, {failed} failed",
        results.runs.len(),
        fmt_secs(started.elapsed().as_secs_f64())
    );

    let text = results::wrap(&results)?;
    if let Some(out) = &a.out {
        let json = serde_json::to_string_pretty(&results)?;
        std::fs::write(out, json + "\n").with_context(|| format!("writing {}", out.display()))?;
        println!("bench: results written to {}", out.display());
    }
    print!("{text}");
    std::io::stdout().flush().ok();
    Ok(if failed == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: BenchArgs,
    }

    fn args(argv: &[&str]) -> BenchArgs {
        Wrap::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn candidates() {
        let c = parse_candidate("bpfland=/bin/scx_bpfland -s 5000").unwrap();
        assert_eq!(c.name, "bpfland");
        assert_eq!(c.path.as_deref(), Some("/bin/scx_bpfland"));
        assert_eq!(c.args, ["-s", "5000"]);
        assert!(parse_candidate("").is_err());
        assert!(parse_candidate("/bin/x").is_err());
        assert!(parse_candidate("=/bin/x").is_err());
        assert!(parse_candidate("a b=/bin/x").is_err());
        assert!(parse_candidate("default=/bin/x").is_err());
    }

    #[test]
    fn scheduler_list() {
        let names = |a: &BenchArgs| -> Vec<String> {
            schedulers(a).unwrap().into_iter().map(|s| s.name).collect()
        };
        let a = args(&[]);
        assert_eq!(names(&a), ["default", "scx_brisk"]);
        assert!(schedulers(&a).unwrap()[1].args.is_empty());

        let a = args(&["--policy", "/policies/x.toml", "--", "--slice-us", "5000"]);
        let s = schedulers(&a).unwrap();
        assert_eq!(
            s[1].args,
            ["--policy", "/policies/x.toml", "--slice-us", "5000"]
        );

        // Trailing arguments go to the last candidate.
        let a = args(&[
            "--candidate",
            "lavd=/bin/scx_lavd",
            "--candidate",
            "noprobes=/bin/scx_brisk",
            "--",
            "--no-latency-probes",
        ]);
        let s = schedulers(&a).unwrap();
        assert_eq!(names(&a), ["default", "scx_brisk", "lavd", "noprobes"]);
        assert!(s[1].args.is_empty() && s[2].args.is_empty());
        assert_eq!(s[3].args, ["--no-latency-probes"]);

        let a = args(&["--candidate", "x=/a", "--candidate", "x=/b"]);
        assert!(schedulers(&a).is_err());
        assert_eq!(names(&args(&["--default-only"])), ["default"]);
        assert!(schedulers(&args(&["--default-only", "--candidate", "x=/a"])).is_err());
    }

    #[test]
    fn options() {
        let a = args(&["--quick", "--scenario", "batch", "--scenario", "desktop"]);
        assert!(a.quick);
        assert_eq!(a.scenarios, ["batch", "desktop"]);
        assert_eq!(a.rounds, None);
        assert!(Wrap::try_parse_from(["bench", "--scenario", "nope"]).is_err());
        assert!(Wrap::try_parse_from(["bench", "--rounds", "0"]).is_err());
        assert_eq!(fmt_secs(59.4), "59s");
        assert_eq!(fmt_secs(125.0), "2m05s");
    }
}
