//! The benchmark report, a pure function of the guest's results: per scenario, each metric's
//! median over rounds, its range and the ratio to the default scheduler; the targets of the
//! benchmark issue, met or not; and a sanity check of the run itself.

use std::collections::BTreeSet;

use brisk_stress::results::{BenchResults, Run, BRISK, DEFAULT};
use brisk_stress::stats;
use serde::Serialize;

/// Median, range and count of one metric over the rounds that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let (min, max) = stats::min_max(values)?;
        Some(Stat {
            median: stats::median(values)?,
            min,
            max,
            rounds: values.len(),
        })
    }
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
    /// A part of a whole, neither good nor bad on its own (`cpus_*`: where the CPU went).
    Neither,
}

impl Better {
    /// How the report's tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
            Better::Neither => "-",
        }
    }

    /// From the metric's name: rates (per second, per CPU-second) and fairness indices are
    /// better higher, latencies, times and missed periods lower; of the CPU split (`cpus_*`)
    /// only the part no workload was charged with (`cpus_other`: kernel, scheduler,
    /// interrupts) is better lower, and a stint's length (`*_stint_us`) explains, it is no goal.
    pub fn of(metric: &str) -> Better {
        if (metric.starts_with("cpus_") && metric != "cpus_other") || metric.ends_with("_stint_us")
        {
            Better::Neither
        } else if metric.ends_with("_per_s")
            || metric.ends_with("_per_cpu_s")
            || metric.contains("jain")
        {
            Better::Higher
        } else {
            Better::Lower
        }
    }
}

/// One metric of one scenario under every scheduler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub metric: String,
    pub better: Better,
    /// Per scheduler, in the results' order (the default first).
    pub stats: Vec<Option<Stat>>,
    /// Per scheduler: its median / the default's (`None` for the default itself, or if either
    /// is missing or the default's is 0).
    pub ratios: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub scenario: String,
    pub rows: Vec<Row>,
    /// Latency CDFs measured in this scenario.
    pub cdfs: Vec<String>,
}

/// A target of the benchmark issue, for one candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetCheck {
    pub scheduler: String,
    pub scenario: String,
    pub metric: String,
    /// What the target says, e.g. `ratio <= 0.20 (aim 0.10)`.
    pub rule: String,
    /// The ratio (or absolute value) measured; `None`: not measured.
    pub value: Option<f64>,
    pub met: Option<bool>,
    pub aim_met: Option<bool>,
    /// Whether the verdict holds beyond the noise: met (or missed) even between the candidate's
    /// worst round and the default's best (their min-max ranges, scaled by the limit, are
    /// apart). `false`: met or missed in the medians only.
    pub clear: Option<bool>,
    pub text: String,
}

/// Who leads one headline metric (a target's metric), by median.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leader {
    pub scenario: String,
    pub metric: String,
    pub better: Better,
    /// The scheduler with the best median (the default scheduler included).
    pub best: String,
    pub best_median: f64,
    /// scx_brisk's median, if it ran.
    pub brisk_median: Option<f64>,
    /// scx_brisk is at least as good as every other candidate (ties count as good).
    pub brisk_leads_candidates: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schedulers: Vec<String>,
    pub tables: Vec<Table>,
    pub targets: Vec<TargetCheck>,
    pub leaders: Vec<Leader>,
    /// What is wrong with the run itself (empty: sane).
    pub sanity: Vec<String>,
}

enum Rule {
    RatioAtMost,
    RatioAtLeast,
    AtLeast,
}

impl Rule {
    /// Whether `met` holds beyond the noise: also for the candidate's worst round against the
    /// default's best (for a miss: its best against the default's worst). `def` is the default
    /// scheduler's stat, unused for an absolute rule.
    fn clear(&self, limit: f64, met: bool, cand: &Stat, def: Option<&Stat>) -> Option<bool> {
        Some(match (self, met) {
            (Rule::RatioAtMost, true) => cand.max <= limit * def?.min,
            (Rule::RatioAtMost, false) => cand.min > limit * def?.max,
            (Rule::RatioAtLeast, true) => cand.min >= limit * def?.max,
            (Rule::RatioAtLeast, false) => cand.max < limit * def?.min,
            (Rule::AtLeast, true) => cand.min >= limit,
            (Rule::AtLeast, false) => cand.max < limit,
        })
    }
}

struct Target {
    scenario: &'static str,
    metric: &'static str,
    what: &'static str,
    rule: Rule,
    limit: f64,
    aim: Option<f64>,
}

/// The targets of the benchmark issue (medians, same boot). Each one's metric is also a
/// headline metric on which scx_brisk should be at least as good as every other candidate
/// (`Leader`).
const TARGETS: [Target; 14] = [
    Target {
        scenario: "mixed",
        metric: "periodic_p99_us",
        what: "periodic task p99 lateness",
        rule: Rule::RatioAtMost,
        limit: 0.1,
        aim: None,
    },
    Target {
        scenario: "mixed",
        metric: "wakeup_p99_us",
        what: "request wakeup p99",
        rule: Rule::RatioAtMost,
        limit: 0.15,
        aim: None,
    },
    Target {
        scenario: "mixed",
        metric: "requests_per_s",
        what: "requests served",
        rule: Rule::RatioAtLeast,
        limit: 3.0,
        aim: None,
    },
    Target {
        scenario: "mixed",
        metric: "hogs_work_per_s",
        what: "hog work",
        rule: Rule::RatioAtLeast,
        limit: 0.6,
        aim: None,
    },
    Target {
        scenario: "mixed",
        metric: "hackbench_time_s",
        what: "hackbench time",
        rule: Rule::RatioAtMost,
        limit: 1.2,
        aim: None,
    },
    Target {
        scenario: "desktop",
        metric: "periodic_p99_us",
        what: "periodic task p99 lateness",
        rule: Rule::RatioAtMost,
        limit: 0.2,
        aim: None,
    },
    Target {
        scenario: "desktop",
        metric: "periodic_p50_us",
        what: "periodic task p50 lateness",
        rule: Rule::RatioAtMost,
        limit: 0.25,
        aim: None,
    },
    Target {
        scenario: "game",
        metric: "frame_missed_pct",
        what: "frames missed",
        rule: Rule::RatioAtMost,
        limit: 0.25,
        aim: None,
    },
    Target {
        scenario: "server",
        metric: "load50_wakeup_p99_us",
        what: "wakeup p99 at 50% load",
        rule: Rule::RatioAtMost,
        limit: 0.4,
        aim: None,
    },
    Target {
        scenario: "server",
        metric: "load100_wakeup_p99_us",
        what: "wakeup p99 at 100% load",
        rule: Rule::RatioAtMost,
        limit: 1.0,
        aim: None,
    },
    Target {
        scenario: "messaging",
        metric: "hackbench_time_s",
        what: "hackbench time",
        rule: Rule::RatioAtMost,
        limit: 0.85,
        aim: None,
    },
    Target {
        scenario: "messaging",
        metric: "pipe_round_trips_per_s",
        what: "pipe round trips",
        rule: Rule::RatioAtLeast,
        limit: 0.9,
        aim: None,
    },
    Target {
        scenario: "batch",
        metric: "work_per_s",
        what: "hog throughput",
        rule: Rule::RatioAtLeast,
        limit: 0.98,
        aim: None,
    },
    Target {
        scenario: "batch",
        metric: "jain_index",
        what: "hogs' fairness index",
        rule: Rule::AtLeast,
        limit: 0.99,
        aim: None,
    },
];

/// Probes on vs off: scx_brisk's hackbench time over that of a candidate running scx_brisk with
/// `--no-latency-probes`, at most this.
const PROBES_LIMIT: f64 = 1.03;

/// What each scenario runs, for the report.
pub fn describe(scenario: &str) -> &'static str {
    match scenario {
        "desktop" => "A periodic task (10 ms period, 1 ms of work) beside 2 CPU hogs per CPU: its wakeup lateness (deadline to running; missed periods count); `hogs_work_per_s` counts only while the periodic task runs. `alone_periodic_*` is the same task first on the idle machine: the lateness the machine itself adds (timer interrupts and the wakeup path; under emulation most of it), a floor below which no scheduler gets. `periodic_queue_wait_*` is the scheduler's part of the lateness: how long each wakeup waited runnable before it ran (the kernel's `run_delay` from /proc, the same accounting under every scheduler; a wakeup that preempts at once counts as 0, since the kernel skips the clock update between the two; the timer wakes the task on its own CPU, so both schedulers enqueue it there and count alike); the rest is the timer's delivery and the switch to the task.",
        "server" => "Message/worker thread pairs (one per CPU, 1 ms of work per request) at 50% and 100% offered load: worker wakeup latency, request latency from the due time, requests/s.",
        "batch" => "2 equal CPU hogs per CPU: total work/s and Jain's fairness index.",
        "messaging" => "`hackbench -g 4 -l 100` (median time of the runs in a round), then pipe ping-pong between thread pairs. `hackbench_time_s` is hackbench's own time, from when every sender and receiver is ready to the end; `hackbench_wall_s` adds their start-up and exit; `hackbench_cpu_s_per_run` and `hackbench_own_switches_per_run` are what its processes used (their rusage); `hackbench_switches_per_run` counts the whole machine's switches.",
        "game" => "A game while a build runs: a 60 Hz frame loop (4 ms of work per frame) and an audio-like loop (5 ms period, 0.4 ms of work) beside a compile-like background (2 worker processes per CPU forking 20-200 ms CPU jobs and 3 short helpers after each). `frame_missed_pct`: frames that started after the next one was due (stutter); `audio_missed`: audio periods likewise (crackles); `build_job_ms_per_s`: the background's completed job CPU time per second while the loops run.",
        "mixed" => "All at once: one hog per CPU, the periodic task, wakeup pairs at 50% load and a `hackbench -g 2 -l 50` loop. `hogs_work_per_s` counts only while the rest runs (not the half second the hogs start alone); `periodic_queue_wait_*` as in desktop, `hackbench_*` as in messaging; `idle_pct`: the CPUs' idle share (work left waiting, since the hogs keep every CPU busy). `cpus_*` splits the CPUs' time among the workloads, in CPUs (the CPU time each was charged, user and system, over the run): `cpus_requests` is the wakeup pairs (1 ms of work per request served), `cpus_hackbench` the hackbench runs over their wall time, and `cpus_other` the busy time no workload was charged with (kernel threads, interrupts, the scheduler's own user-space part). What one scheduler gives the request workers has to come out of the others. `hogs_work_per_cpu_s` is the hogs' work per second of CPU time they were charged (what a switch, an interrupt or a callback in their context costs them), `hogs_stint_us` their CPU time per switch-in.",
        _ => "",
    }
}

/// File name of the SVG of CDF `name` in `scenario`.
pub fn cdf_file(scenario: &str, name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("cdf-{scenario}-{slug}.svg")
}

pub const THROUGHPUT_FILE: &str = "throughput.svg";
pub const FAIRNESS_FILE: &str = "fairness.svg";

fn ok_runs<'a>(
    r: &'a BenchResults,
    scenario: &'a str,
    sched: &'a str,
) -> impl Iterator<Item = &'a Run> {
    r.runs
        .iter()
        .filter(move |x| x.ok && x.scenario == scenario && x.scheduler == sched)
}

/// Builds the report.
pub fn analyse(r: &BenchResults) -> Report {
    let schedulers: Vec<String> = r.schedulers.iter().map(|s| s.name.clone()).collect();
    let mut tables = Vec::new();
    for scenario in &r.scenarios {
        let runs: Vec<&Run> = r.runs.iter().filter(|x| &x.scenario == scenario).collect();
        let metrics: BTreeSet<&String> = runs.iter().flat_map(|x| x.metrics.keys()).collect();
        let cdfs: BTreeSet<&String> = runs.iter().flat_map(|x| x.cdfs.keys()).collect();
        let rows = metrics
            .into_iter()
            .map(|metric| {
                let stats: Vec<Option<Stat>> = schedulers
                    .iter()
                    .map(|s| {
                        let v: Vec<f64> = ok_runs(r, scenario, s)
                            .filter_map(|x| x.metrics.get(metric).copied())
                            .collect();
                        Stat::of(&v)
                    })
                    .collect();
                let base = stats.first().copied().flatten().map(|s| s.median);
                let ratios = stats
                    .iter()
                    .enumerate()
                    .map(|(i, s)| match (i, s, base) {
                        (0, _, _) => None,
                        (_, Some(s), Some(b)) if b != 0.0 => Some(s.median / b),
                        _ => None,
                    })
                    .collect();
                Row {
                    metric: metric.clone(),
                    better: Better::of(metric),
                    stats,
                    ratios,
                }
            })
            .collect();
        tables.push(Table {
            scenario: scenario.clone(),
            rows,
            cdfs: cdfs.into_iter().cloned().collect(),
        });
    }
    let mut report = Report {
        targets: Vec::new(),
        leaders: Vec::new(),
        sanity: sanity(r),
        schedulers,
        tables,
    };
    report.targets = targets(r, &report);
    report.leaders = leaders(&report);
    report
}

/// For each target's metric, the best scheduler by median and whether scx_brisk is at least as
/// good as every other candidate.
fn leaders(rep: &Report) -> Vec<Leader> {
    let mut seen = BTreeSet::new();
    let brisk = rep.schedulers.iter().position(|s| s == BRISK);
    let mut out = Vec::new();
    for t in &TARGETS {
        if !seen.insert((t.scenario, t.metric)) {
            continue;
        }
        let Some(row) = row(rep, t.scenario, t.metric) else {
            continue;
        };
        let better_than = |a: f64, b: f64| match row.better {
            Better::Lower => a < b,
            Better::Higher => a > b,
            Better::Neither => false,
        };
        let mut best: Option<(usize, f64)> = None;
        for (i, st) in row.stats.iter().enumerate() {
            if let Some(st) = st {
                if best.is_none_or(|(_, b)| better_than(st.median, b)) {
                    best = Some((i, st.median));
                }
            }
        }
        let Some((best_i, best_median)) = best else {
            continue;
        };
        let brisk_median = brisk.and_then(|b| row.stats[b]).map(|s| s.median);
        let brisk_leads_candidates = brisk_median.map(|m| {
            row.stats
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(i, _)| Some(*i) != brisk)
                .all(|(_, st)| st.is_none_or(|st| !better_than(st.median, m)))
        });
        out.push(Leader {
            scenario: t.scenario.to_string(),
            metric: t.metric.to_string(),
            better: row.better,
            best: rep.schedulers[best_i].clone(),
            best_median,
            brisk_median,
            brisk_leads_candidates,
        });
    }
    out
}

fn row<'a>(rep: &'a Report, scenario: &str, metric: &str) -> Option<&'a Row> {
    rep.tables
        .iter()
        .find(|t| t.scenario == scenario)?
        .rows
        .iter()
        .find(|row| row.metric == metric)
}

fn targets(r: &BenchResults, rep: &Report) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    for (i, sched) in rep.schedulers.iter().enumerate().skip(1) {
        for t in &TARGETS {
            let row = row(rep, t.scenario, t.metric);
            let (value, rule) = match t.rule {
                Rule::RatioAtMost => (row.and_then(|r| r.ratios[i]), "<="),
                Rule::RatioAtLeast => (row.and_then(|r| r.ratios[i]), ">="),
                Rule::AtLeast => (row.and_then(|r| r.stats[i]).map(|s| s.median), ">="),
            };
            let pass =
                |limit: f64| value.map(|v| if rule == "<=" { v <= limit } else { v >= limit });
            let met = pass(t.limit);
            let clear = met.and_then(|m| {
                let row = row?;
                t.rule
                    .clear(t.limit, m, row.stats[i].as_ref()?, row.stats[0].as_ref())
            });
            let is_ratio = !matches!(t.rule, Rule::AtLeast);
            let unit = if is_ratio { "x" } else { "" };
            let rule_text = match t.aim {
                Some(aim) => format!("{rule} {:.2}{unit} (aim {aim:.2}{unit})", t.limit),
                None => format!("{rule} {:.2}{unit}", t.limit),
            };
            let of = if is_ratio {
                " of the default scheduler's"
            } else {
                ""
            };
            out.push(check(
                sched,
                t.scenario,
                t.metric,
                format!("{}: {}{of} {rule_text}", t.scenario, t.what),
                rule_text,
                value.map(|v| (v, unit)),
                met,
                t.aim.and_then(pass),
                clear,
            ));
        }
    }
    if !rep.schedulers.iter().any(|s| s == BRISK) {
        return out;
    }
    // Probes on vs off, if a candidate ran scx_brisk without its probes.
    let noprobes = r.schedulers.iter().find(|s| {
        s.path.as_deref().is_some_and(|p| p.ends_with("scx_brisk"))
            && s.args.iter().any(|a| a == "--no-latency-probes")
    });
    let rule_text = format!("<= {PROBES_LIMIT:.2}x");
    let what = format!(
        "messaging: hackbench time of scx_brisk over scx_brisk --no-latency-probes {rule_text}"
    );
    let on_off = noprobes.and_then(|np| {
        let row = row(rep, "messaging", "hackbench_time_s")?;
        let on = rep.schedulers.iter().position(|s| s == BRISK)?;
        let off = rep.schedulers.iter().position(|s| s == &np.name)?;
        Some((row.stats[on]?, row.stats[off]?))
    });
    let value = on_off.map(|(on, off)| on.median / off.median);
    let met = value.map(|v| v <= PROBES_LIMIT);
    let clear = on_off
        .zip(met)
        .and_then(|((on, off), m)| Rule::RatioAtMost.clear(PROBES_LIMIT, m, &on, Some(&off)));
    let what = match noprobes {
        Some(_) => what,
        None => format!("{what} (needs `--candidate NAME=/bin/scx_brisk -- --no-latency-probes`)"),
    };
    out.push(check(
        BRISK,
        "messaging",
        "hackbench_time_s",
        what,
        rule_text,
        value.map(|v| (v, "x")),
        met,
        None,
        clear,
    ));
    out
}

#[allow(clippy::too_many_arguments)]
fn check(
    sched: &str,
    scenario: &str,
    metric: &str,
    what: String,
    rule: String,
    value: Option<(f64, &str)>,
    met: Option<bool>,
    aim_met: Option<bool>,
    clear: Option<bool>,
) -> TargetCheck {
    let verdict = match (value, met, aim_met) {
        (Some((v, unit)), Some(true), Some(true)) => {
            format!("{sched} {v:.2}{unit}: met, aim met too")
        }
        (Some((v, unit)), Some(true), Some(false)) => {
            format!("{sched} {v:.2}{unit}: met, aim not met")
        }
        (Some((v, unit)), Some(true), None) => format!("{sched} {v:.2}{unit}: met"),
        (Some((v, unit)), _, _) => format!("{sched} {v:.2}{unit}: **NOT MET**"),
        _ => format!("{sched}: not measured in this run"),
    };
    let verdict = match clear {
        Some(false) => format!("{verdict} (in the medians only: the min-max ranges overlap)"),
        _ => verdict,
    };
    TargetCheck {
        scheduler: sched.to_string(),
        scenario: scenario.to_string(),
        metric: metric.to_string(),
        rule,
        value: value.map(|v| v.0),
        met,
        aim_met,
        clear,
        text: format!("{what}: {verdict}"),
    }
}

/// What is wrong with the run: a scheduler that missed a scenario round, a failed scenario,
/// a candidate that detached or did not exit cleanly.
pub fn sanity(r: &BenchResults) -> Vec<String> {
    let mut problems = Vec::new();
    if r.runs.is_empty() {
        problems.push("no runs at all".to_string());
    }
    for scenario in &r.scenarios {
        for s in &r.schedulers {
            for round in 0..r.rounds {
                let n = r
                    .runs
                    .iter()
                    .filter(|x| {
                        &x.scenario == scenario && x.scheduler == s.name && x.round == round
                    })
                    .count();
                if n != 1 {
                    problems.push(format!(
                        "{scenario} round {}: {} ran {n} times, not once",
                        round + 1,
                        s.name
                    ));
                }
            }
        }
    }
    for x in &r.runs {
        let at = format!("{} round {} under {}", x.scenario, x.round + 1, x.scheduler);
        if !x.ok {
            let err = x.error.as_deref().unwrap_or("no reason given");
            problems.push(format!("{at} failed: {}", err.lines().next().unwrap_or("")));
            continue;
        }
        if x.metrics.is_empty() {
            problems.push(format!("{at} measured nothing"));
        }
        if x.scheduler != DEFAULT {
            if x.attached != Some(true) {
                problems.push(format!("{at}: {} did not stay attached", x.scheduler));
            }
            if x.exit_code != Some(0) {
                problems.push(format!(
                    "{at}: {} exited with {:?}",
                    x.scheduler, x.exit_code
                ));
            }
        }
    }
    problems
}

/// A number with about 3 significant digits.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_stat(s: &Option<Stat>) -> String {
    match s {
        Some(s) if s.rounds > 1 => format!(
            "{} ({}-{})",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max)
        ),
        Some(s) => fmt_num(s.median),
        None => "-".into(),
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
pub fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86400) as i64;
    let secs = unix_s % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The table rows of one scenario, as markdown lines.
pub fn table_lines(rep: &Report, t: &Table) -> Vec<String> {
    let candidates = &rep.schedulers[1..];
    let mut head = vec!["metric".to_string(), "better".to_string()];
    head.extend(rep.schedulers.iter().cloned());
    head.extend(
        candidates
            .iter()
            .map(|c| format!("{c} / {}", rep.schedulers[0])),
    );
    let mut lines = vec![
        format!("| {} |", head.join(" | ")),
        format!("|{}", "---|".repeat(head.len())),
    ];
    for row in &t.rows {
        let mut cells = vec![row.metric.clone(), row.better.label().into()];
        cells.extend(row.stats.iter().map(fmt_stat));
        cells.extend(row.ratios.iter().skip(1).map(|r| match r {
            Some(r) => format!("{r:.2}x"),
            None => "-".into(),
        }));
        lines.push(format!("| {} |", cells.join(" | ")));
    }
    lines
}

/// report.md.
pub fn markdown(r: &BenchResults, rep: &Report) -> String {
    let mut md = String::from("# scx_brisk benchmark report\n\n");
    let scheds: Vec<String> = r
        .schedulers
        .iter()
        .map(|s| match &s.path {
            None => format!("{} (the kernel's own scheduler)", s.name),
            Some(p) if s.args.is_empty() => format!("{} (`{p}`)", s.name),
            Some(p) => format!("{} (`{p} {}`)", s.name, s.args.join(" ")),
        })
        .collect();
    md += &format!(
        "- Date: {} UTC (the measured machine's clock)\n- Kernel: {}, {} CPUs{}\n\
         - Rounds: {}{}, interleaved per scenario (default, candidates, default, ...)\n\
         - Schedulers: {}\n- Command: `{}`\n\n",
        utc(r.started_unix_s),
        r.kernel,
        r.nr_cpus,
        if r.cmdline.is_empty() {
            String::new()
        } else {
            format!(", command line `{}`", r.cmdline)
        },
        r.rounds,
        if r.quick {
            " (--quick: short scenarios)"
        } else {
            ""
        },
        scheds.join(", "),
        r.command.join(" ")
    );
    md += "Each cell is the median over the rounds, with the range (min-max) in brackets. A ratio \
           is the candidate's median over the default scheduler's: below 1 is better for a \
           metric that is better lower, above 1 for one that is better higher.\n\n";

    md += "## Targets\n\n";
    if rep.targets.is_empty() {
        md += "No candidate scheduler ran: nothing to compare with the default scheduler.\n";
    }
    for t in &rep.targets {
        md += &format!("- {}\n", t.text);
    }
    if !rep.leaders.is_empty() {
        md += "\n## Best per headline metric\n\n| scenario | metric | best (median) | scx_brisk | scx_brisk at least as good as every other candidate |\n|---|---|---|---|---|\n";
        for l in &rep.leaders {
            md += &format!(
                "| {} | {} ({} better) | {} ({}) | {} | {} |\n",
                l.scenario,
                l.metric,
                l.better.label(),
                l.best,
                fmt_num(l.best_median),
                l.brisk_median.map_or("-".into(), fmt_num),
                match l.brisk_leads_candidates {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "-",
                }
            );
        }
    }
    md += "\n## Sanity\n\n";
    if rep.sanity.is_empty() {
        md += &format!(
            "All {} runs completed: every scheduler ran every scenario in every round, and every \
             candidate stayed attached and exited with code 0.\n",
            r.runs.len()
        );
    } else {
        for p in &rep.sanity {
            md += &format!("- **{p}**\n");
        }
    }
    for t in &rep.tables {
        md += &format!("\n## {}\n\n{}\n\n", t.scenario, describe(&t.scenario));
        for line in table_lines(rep, t) {
            md += &line;
            md += "\n";
        }
        for cdf in &t.cdfs {
            md += &format!(
                "\n![{} CDF, {}]({})\n",
                cdf,
                t.scenario,
                cdf_file(&t.scenario, cdf)
            );
        }
    }
    md += &format!(
        "\n## Throughput and fairness\n\n![throughput relative to the default scheduler]({THROUGHPUT_FILE})\n\n\
         ![Jain's fairness index]({FAIRNESS_FILE})\n"
    );
    md
}

/// report.json: the analysis plus what was run.
pub fn json(r: &BenchResults, rep: &Report) -> serde_json::Value {
    serde_json::json!({
        "started_unix_s": r.started_unix_s,
        "kernel": r.kernel,
        "nr_cpus": r.nr_cpus,
        "quick": r.quick,
        "rounds": r.rounds,
        "command": r.command,
        "schedulers": r.schedulers,
        "report": rep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/bench-results.json");

    fn fixture() -> BenchResults {
        serde_json::from_str(FIXTURE).unwrap()
    }

    fn table(rep: &Report, scenario: &str) -> Vec<String> {
        let t = rep.tables.iter().find(|t| t.scenario == scenario).unwrap();
        table_lines(rep, t)
    }

    #[test]
    fn tables_from_fixture() {
        let r = fixture();
        let rep = analyse(&r);
        assert_eq!(rep.schedulers, ["default", "scx_brisk"]);
        assert_eq!(
            table(&rep, "desktop"),
            [
                "| metric | better | default | scx_brisk | scx_brisk / default |",
                "|---|---|---|---|---|",
                "| periodic_p50_us | lower | 1500 (1400-1600) | 400 (300-500) | 0.27x |",
                "| periodic_p99_us | lower | 4000 (3000-5000) | 650 (600-700) | 0.16x |",
            ]
        );
        assert_eq!(
            table(&rep, "batch"),
            [
                "| metric | better | default | scx_brisk | scx_brisk / default |",
                "|---|---|---|---|---|",
                "| jain_index | higher | 0.999 (0.998-1.00) | 0.980 (0.970-0.990) | 0.98x |",
                "| work_per_s | higher | 1000 (990-1010) | 990 (980-1000) | 0.99x |",
            ]
        );
        let desktop = rep.tables.iter().find(|t| t.scenario == "desktop").unwrap();
        assert_eq!(desktop.cdfs, ["periodic lateness"]);
        let p99 = &desktop.rows[1];
        assert_eq!(
            p99.stats[1],
            Some(Stat {
                median: 650.0,
                min: 600.0,
                max: 700.0,
                rounds: 2
            })
        );
        assert_eq!(p99.ratios, [None, Some(650.0 / 4000.0)]);
        assert!(rep.sanity.is_empty(), "{:?}", rep.sanity);
    }

    #[test]
    fn targets_from_fixture() {
        let rep = analyse(&fixture());
        assert_eq!(rep.targets.len(), TARGETS.len() + 1);
        let find = |scenario: &str, metric: &str| {
            rep.targets
                .iter()
                .find(|t| t.scenario == scenario && t.metric == metric)
                .unwrap()
        };
        let p99 = find("desktop", "periodic_p99_us");
        assert_eq!(
            p99.text,
            "desktop: periodic task p99 lateness of the default scheduler's <= 0.20x: scx_brisk 0.16x: met (in the medians only: the min-max ranges overlap)"
        );
        // p99: 600-700 us against 3000-5000 us; 700 > 0.2 x 3000, so met in the medians only.
        assert_eq!((p99.met, p99.clear), (Some(true), Some(false)));
        // p50: 0.27x against <= 0.25x: missed, and beyond the noise (300 > 0.25 x 1600 is false:
        // the ranges overlap, so in the medians only).
        let p50 = find("desktop", "periodic_p50_us");
        assert_eq!((p50.met, p50.clear), (Some(false), Some(false)));
        let jain = find("batch", "jain_index");
        assert_eq!(
            jain.text,
            "batch: hogs' fairness index >= 0.99: scx_brisk 0.98: **NOT MET** (in the medians only: the min-max ranges overlap)"
        );
        // hackbench: 5-5.5 s against 3-4 s (5 > 0.85 x 4), missed beyond the noise.
        let hb = find("messaging", "hackbench_time_s");
        assert_eq!(
            hb.text,
            "messaging: hackbench time of the default scheduler's <= 0.85x: scx_brisk 1.50x: **NOT MET**"
        );
        assert_eq!(hb.clear, Some(true));
        let server = find("server", "load50_wakeup_p99_us");
        assert_eq!(server.value, None);
        assert!(server.text.ends_with("scx_brisk: not measured in this run"));
        assert!(rep
            .targets
            .last()
            .unwrap()
            .text
            .contains("--no-latency-probes"));
    }

    #[test]
    fn leaders_name_the_best_scheduler_and_whether_brisk_matches_every_candidate() {
        let mut r = fixture();
        // A third scheduler, better than scx_brisk on the desktop p99 and worse on hackbench.
        let mut peer = r.schedulers[1].clone();
        peer.name = "peer".into();
        r.schedulers.push(peer);
        let extra: Vec<Run> = r
            .runs
            .iter()
            .filter(|x| x.scheduler == BRISK)
            .map(|x| {
                let mut x = x.clone();
                x.scheduler = "peer".into();
                for (k, v) in x.metrics.iter_mut() {
                    *v *= if k == "periodic_p99_us" { 0.5 } else { 1.5 };
                }
                x
            })
            .collect();
        r.runs.extend(extra);
        let rep = analyse(&r);
        let lead = |scenario: &str, metric: &str| {
            rep.leaders
                .iter()
                .find(|l| l.scenario == scenario && l.metric == metric)
                .unwrap()
        };
        let p99 = lead("desktop", "periodic_p99_us");
        assert_eq!((p99.best.as_str(), p99.best_median), ("peer", 325.0));
        assert_eq!(p99.brisk_leads_candidates, Some(false));
        // hackbench: the default is best (3.5 s); scx_brisk (5.25) beats the peer (7.9)
        let hb = lead("messaging", "hackbench_time_s");
        assert_eq!(hb.best, "default");
        assert_eq!(hb.brisk_leads_candidates, Some(true));
        // higher is better for throughput: scx_brisk 990 against the peer's 1485
        let work = lead("batch", "work_per_s");
        assert_eq!(
            (work.best.as_str(), work.brisk_leads_candidates),
            ("peer", Some(false))
        );
        // no row, no leader
        assert!(rep.leaders.iter().all(|l| l.scenario != "server"));
        let md = markdown(&r, &rep);
        assert!(md.contains("## Best per headline metric"), "{md}");
        assert!(
            md.contains("| desktop | periodic_p99_us (lower better) | peer (325) | 650 | **no** |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_and_json() {
        let r = fixture();
        let rep = analyse(&r);
        let md = markdown(&r, &rep);
        assert!(md.contains("- Date: 2026-11-25 10:00 UTC"));
        assert!(md.contains("\n## desktop\n"));
        assert!(
            md.contains("| periodic_p99_us | lower | 4000 (3000-5000) | 650 (600-700) | 0.16x |")
        );
        assert!(md.contains("(cdf-desktop-periodic-lateness.svg)"));
        assert!(md.contains("All 12 runs completed"));
        let j = json(&r, &rep);
        assert_eq!(
            j["report"]["tables"][0]["rows"][1]["metric"],
            "periodic_p99_us"
        );
        assert_eq!(
            j["report"]["tables"][0]["rows"][1]["stats"][0]["median"],
            4000.0
        );
    }

    #[test]
    fn sanity_problems() {
        let mut r = fixture();
        // A candidate that detached, one that crashed a scenario, and a missing round.
        let i = r.runs.iter().position(|x| x.scheduler == BRISK).unwrap();
        r.runs[i].attached = Some(false);
        let j = r.runs.iter().rposition(|x| x.scheduler == BRISK).unwrap();
        r.runs[j].ok = false;
        r.runs[j].error = Some("scx_brisk did not attach within 20s\nlog...".into());
        r.runs.remove(0);
        let problems = sanity(&r);
        assert_eq!(
            problems,
            [
                "desktop round 1: default ran 0 times, not once",
                "desktop round 1 under scx_brisk: scx_brisk did not stay attached",
                "messaging round 2 under scx_brisk failed: scx_brisk did not attach within 20s",
            ]
        );
        // A failed run's figures are left out of the medians.
        let rep = analyse(&r);
        let t = rep
            .tables
            .iter()
            .find(|t| t.scenario == "messaging")
            .unwrap();
        assert_eq!(t.rows[0].stats[1].unwrap().rounds, 1);
    }

    #[test]
    fn helpers() {
        assert_eq!(fmt_num(3671.4), "3671");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(0.99912), "0.999");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_795_783_724), "2026-11-27 12:48");
        assert_eq!(
            cdf_file("server", "wakeup latency, 50% load"),
            "cdf-server-wakeup-latency-50-load.svg"
        );
        assert_eq!(Better::of("load50_requests_per_s"), Better::Higher);
        assert_eq!(Better::of("jain_index"), Better::Higher);
        assert_eq!(Better::of("hackbench_time_s"), Better::Lower);
        assert_eq!(Better::of("periodic_missed"), Better::Lower);
        assert_eq!(Better::of("cpus_hogs"), Better::Neither);
        assert_eq!(Better::of("cpus_other"), Better::Lower);
        assert_eq!(Better::of("hogs_work_per_cpu_s"), Better::Higher);
        assert_eq!(Better::of("hogs_stint_us"), Better::Neither);
    }
}
