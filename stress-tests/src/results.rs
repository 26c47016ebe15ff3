//! What `brisk-guest bench` hands to the host: the raw results of every run, as JSON between
//! two marker lines in the guest's output (the result port, `target/vm/result.log`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The line before the results JSON.
pub const BEGIN: &str = "BRISK-BENCH-RESULTS-BEGIN";
/// The line after it.
pub const END: &str = "BRISK-BENCH-RESULTS-END";
/// Name of the kernel's own scheduler in the results.
pub const DEFAULT: &str = "default";
/// Name of scx_brisk in the results.
pub const BRISK: &str = "scx_brisk";
/// Every benchmark scenario, in the order the bench runs them.
pub const SCENARIOS: [&str; 6] = ["desktop", "game", "server", "batch", "messaging", "mixed"];

/// Everything one `brisk-guest bench` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResults {
    pub version: u32,
    /// Seconds since the epoch when the bench started (the guest's clock).
    pub started_unix_s: u64,
    /// `uname -r` of the machine measured.
    pub kernel: String,
    /// Its kernel command line (/proc/cmdline); empty in results from before it was kept.
    #[serde(default)]
    pub cmdline: String,
    pub nr_cpus: usize,
    pub quick: bool,
    pub rounds: u32,
    /// The bench's own command line.
    pub command: Vec<String>,
    /// The default scheduler first, then the candidates.
    pub schedulers: Vec<Scheduler>,
    pub scenarios: Vec<String>,
    /// In the order they ran.
    pub runs: Vec<Run>,
}

/// A scheduler under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheduler {
    pub name: String,
    /// Its binary; `None` for the kernel's default scheduler.
    pub path: Option<String>,
    pub args: Vec<String>,
}

/// One scenario, one round, one scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub scenario: String,
    pub scheduler: String,
    /// 0-based.
    pub round: u32,
    pub duration_s: f64,
    /// The scenario ran and the scheduler behaved (attached throughout, exited 0).
    pub ok: bool,
    pub error: Option<String>,
    /// For a candidate: it was attached from start to end of the scenario.
    pub attached: Option<bool>,
    /// For a candidate: `/sys/kernel/sched_ext/root/ops` while it ran.
    pub ops: Option<String>,
    /// For a candidate: its exit code after SIGINT.
    pub exit_code: Option<i32>,
    /// Metric name (with its unit) -> value.
    pub metrics: BTreeMap<String, f64>,
    /// Latency CDFs: name -> `[quantile, latency_us]`.
    pub cdfs: BTreeMap<String, Vec<[f64; 2]>>,
    /// The workloads' own JSON output.
    pub raw: serde_json::Value,
}

/// The results as the lines the guest prints: begin marker, one line of JSON, end marker.
pub fn wrap(results: &BenchResults) -> Result<String> {
    let json = serde_json::to_string(results).context("serialising the bench results")?;
    Ok(format!("{BEGIN}\n{json}\n{END}\n"))
}

/// The last complete results block in the guest's output. `Ok(None)` if there is none at all;
/// an error if a block began but never ended (the guest died while printing it) or does not
/// parse.
pub fn extract(output: &str) -> Result<Option<BenchResults>> {
    let lines: Vec<&str> = output.lines().map(|l| l.trim_end_matches('\r')).collect();
    let Some(begin) = lines.iter().rposition(|l| l.trim() == BEGIN) else {
        return Ok(None);
    };
    let Some(len) = lines[begin + 1..].iter().position(|l| l.trim() == END) else {
        bail!("the results block in the guest's output has no {END} line (cut short)");
    };
    let json = lines[begin + 1..begin + 1 + len].join("\n");
    serde_json::from_str(&json)
        .map(Some)
        .context("parsing the results JSON from the guest")
}

/// Hides the results block from the live view of the guest's output: `show` returns the
/// line to print, or `None` inside a block (the markers included).
#[derive(Default)]
pub struct HideResults {
    inside: bool,
}

impl HideResults {
    pub fn show<'a>(&mut self, line: &'a str) -> Option<&'a str> {
        match line.trim() {
            BEGIN => {
                self.inside = true;
                None
            }
            END if self.inside => {
                self.inside = false;
                None
            }
            _ if self.inside => None,
            _ => Some(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BenchResults {
        BenchResults {
            version: 1,
            started_unix_s: 1,
            kernel: "7.3".into(),
            cmdline: "console=ttyS0".into(),
            nr_cpus: 2,
            quick: true,
            rounds: 1,
            command: vec!["bench".into()],
            schedulers: vec![Scheduler {
                name: DEFAULT.into(),
                path: None,
                args: vec![],
            }],
            scenarios: vec!["batch".into()],
            runs: vec![Run {
                scenario: "batch".into(),
                scheduler: DEFAULT.into(),
                round: 0,
                duration_s: 4.0,
                ok: true,
                error: None,
                attached: None,
                ops: None,
                exit_code: None,
                metrics: [("work_per_s".to_string(), 12.5)].into(),
                cdfs: BTreeMap::new(),
                raw: serde_json::json!({"x": 1}),
            }],
        }
    }

    #[test]
    fn round_trip_through_markers() {
        let r = sample();
        let text = format!("progress\r\n{}BRISK-GUEST-EXIT 0\n", wrap(&r).unwrap());
        assert_eq!(extract(&text).unwrap(), Some(r.clone()));
        // With \r\n line ends, and the last of two blocks wins.
        let mut second = r.clone();
        second.rounds = 2;
        let text = format!("{}{}", wrap(&r).unwrap(), wrap(&second).unwrap()).replace('\n', "\r\n");
        assert_eq!(extract(&text).unwrap().unwrap().rounds, 2);
    }

    #[test]
    fn missing_or_truncated_blocks() {
        assert_eq!(extract("").unwrap(), None);
        assert_eq!(extract("just progress\n").unwrap(), None);
        let cut = format!("{BEGIN}\n{{\"version\": 1");
        assert!(extract(&cut).unwrap_err().to_string().contains("cut short"));
        let bad = format!("{BEGIN}\nnot json\n{END}\n");
        assert!(extract(&bad).is_err());
    }

    #[test]
    fn hiding_the_block_from_the_live_view() {
        let text = format!("a\n{}b\n", wrap(&sample()).unwrap());
        let mut hide = HideResults::default();
        let shown: Vec<&str> = text.lines().filter_map(|l| hide.show(l)).collect();
        assert_eq!(shown, ["a", "b"]);
        // A stray end marker outside a block is shown.
        assert_eq!(HideResults::default().show(END), Some(END));
    }
}
