//! `brisk-vm bench` and `brisk-vm report`: the guest command line of the A/B benchmark, and
//! the report (markdown, JSON, SVG plots) from the results the guest printed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use brisk_stress::results::{self, BenchResults};

use super::{plots, report};

/// Where candidate binaries from the host go in the guest.
pub const CANDIDATE_DIR: &str = "/opt/candidates";
/// Where policy files are in the guest.
pub const POLICY_DIR: &str = "/policies";
/// scx_brisk in the guest (a candidate may run it with other options).
const GUEST_BRISK: &str = "/bin/scx_brisk";

/// What the host asked for.
#[derive(Debug, Clone, Default)]
pub struct BenchRequest {
    pub rounds: Option<u32>,
    pub scenarios: Vec<String>,
    pub quick: bool,
    pub candidates: Vec<String>,
    pub policy: Option<String>,
    pub args: Vec<String>,
}

/// Host files to put in the guest: (host path, guest path).
pub type GuestFiles = Vec<(PathBuf, String)>;

/// The guest's `brisk-guest bench ...` arguments, and the host files the guest needs.
pub fn guest_argv(req: &BenchRequest) -> Result<(Vec<String>, GuestFiles)> {
    let mut argv = vec!["bench".to_string()];
    let mut files = Vec::new();
    if let Some(r) = req.rounds {
        argv.extend(["--rounds".into(), r.to_string()]);
    }
    for s in &req.scenarios {
        argv.extend(["--scenario".into(), s.clone()]);
    }
    if req.quick {
        argv.push("--quick".into());
    }
    if let Some(p) = &req.policy {
        let file = if p.contains('/') {
            p.clone()
        } else {
            format!("{POLICY_DIR}/{p}.toml")
        };
        argv.extend(["--policy".into(), file]);
    }
    for spec in &req.candidates {
        let mut words = spec.split_whitespace();
        let first = words.next().context("empty --candidate")?;
        let Some((name, path)) = first.split_once('=') else {
            bail!("--candidate {spec:?} is not NAME=PATH");
        };
        let guest = if path == GUEST_BRISK || path == "scx_brisk" {
            GUEST_BRISK.to_string()
        } else {
            let host = PathBuf::from(path);
            if !host.is_file() {
                bail!("--candidate {name}: {path} is not a file on this host");
            }
            let guest = format!("{CANDIDATE_DIR}/{name}");
            files.push((host, guest.clone()));
            guest
        };
        let rest: Vec<&str> = words.collect();
        let value = std::iter::once(format!("{name}={guest}"))
            .chain(rest.iter().map(|s| s.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        argv.extend(["--candidate".into(), value]);
    }
    if !req.args.is_empty() {
        argv.push("--".into());
        argv.extend(req.args.iter().cloned());
    }
    Ok((argv, files))
}

/// A default limit on the whole VM run, in seconds.
pub fn default_timeout_s(req: &BenchRequest) -> u64 {
    let scheds = 2 + req.candidates.len() as u64;
    let scenarios = if req.scenarios.is_empty() {
        brisk_stress::results::SCENARIOS.len() as u64
    } else {
        req.scenarios.len() as u64
    };
    let rounds = u64::from(req.rounds.unwrap_or(if req.quick { 2 } else { 3 }));
    // Per scenario run: ~7 s quick, ~25 s full in the TCG guest; generously doubled.
    let per_run = if req.quick { 15 } else { 50 };
    300 + scheds * scenarios * rounds * per_run
}

/// Reads results from a guest log (the marker block) or a plain results JSON file.
pub fn load(path: &Path) -> Result<BenchResults> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if let Some(r) = results::extract(&text)? {
        return Ok(r);
    }
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} holds neither a {} block nor a results JSON",
            path.display(),
            results::BEGIN
        )
    })
}

/// Writes report.md, report.json and the plots into `dir`, prints the targets and the sanity
/// problems; returns the problems.
pub fn write_report(r: &BenchResults, dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let rep = report::analyse(r);
    let md = dir.join("report.md");
    std::fs::write(&md, report::markdown(r, &rep))
        .with_context(|| format!("writing {}", md.display()))?;
    let json = dir.join("report.json");
    let text = serde_json::to_string_pretty(&report::json(r, &rep))?;
    std::fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
    let raw = dir.join("results.json");
    std::fs::write(&raw, serde_json::to_string_pretty(r)? + "\n")
        .with_context(|| format!("writing {}", raw.display()))?;
    let svgs = plots::write_all(r, &rep, dir)?;

    println!("==> [report] targets:");
    for t in &rep.targets {
        println!("    {}", t.text);
    }
    if rep.sanity.is_empty() {
        println!(
            "    sanity: all {} runs ok (every scheduler ran every scenario; candidates stayed attached)",
            r.runs.len()
        );
    } else {
        println!("    sanity: {} problem(s):", rep.sanity.len());
        for p in &rep.sanity {
            println!("      - {p}");
        }
    }
    println!(
        "    wrote {}, {}, {} and {} plots in {}",
        md.display(),
        json.display(),
        raw.display(),
        svgs.len(),
        dir.display()
    );
    Ok(rep.sanity)
}

/// After the guest ran `bench`: the report from `result_log`; the harness's exit code.
pub fn finish(result_log: &Path, guest_code: i32, dir: &Path) -> Result<i32> {
    let text = std::fs::read(result_log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let results = match results::extract(&text) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "error: the guest printed no bench results ({} is missing from {})",
                results::BEGIN,
                result_log.display()
            );
            return Ok(if guest_code == 0 { 1 } else { guest_code });
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(if guest_code == 0 { 1 } else { guest_code });
        }
    };
    let problems = write_report(&results, dir)?;
    Ok(match (guest_code, problems.is_empty()) {
        (0, true) => 0,
        (0, false) => 1,
        (code, _) => code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_command_line() {
        let req = BenchRequest {
            rounds: Some(2),
            scenarios: vec!["desktop".into()],
            quick: true,
            candidates: vec!["noprobes=/bin/scx_brisk".into()],
            policy: Some("latency".into()),
            args: vec!["--no-latency-probes".into()],
        };
        let (argv, files) = guest_argv(&req).unwrap();
        assert_eq!(
            argv,
            [
                "bench",
                "--rounds",
                "2",
                "--scenario",
                "desktop",
                "--quick",
                "--policy",
                "/policies/latency.toml",
                "--candidate",
                "noprobes=/bin/scx_brisk",
                "--",
                "--no-latency-probes"
            ]
        );
        assert!(files.is_empty());

        // A host binary is copied to /opt/candidates/NAME; its arguments stay with it.
        let exe = std::env::current_exe().unwrap();
        let req = BenchRequest {
            candidates: vec![format!("other={} -s 5000", exe.display())],
            policy: Some("/tmp/p.toml".into()),
            ..Default::default()
        };
        let (argv, files) = guest_argv(&req).unwrap();
        assert_eq!(
            argv,
            [
                "bench",
                "--policy",
                "/tmp/p.toml",
                "--candidate",
                "other=/opt/candidates/other -s 5000"
            ]
        );
        assert_eq!(files, [(exe, "/opt/candidates/other".to_string())]);

        let bad = |c: &str| BenchRequest {
            candidates: vec![c.into()],
            ..Default::default()
        };
        assert!(guest_argv(&bad("x=/no/such/file")).is_err());
        assert!(guest_argv(&bad("/bin/scx_brisk")).is_err());
    }

    #[test]
    fn timeouts() {
        let quick = BenchRequest {
            quick: true,
            ..Default::default()
        };
        assert_eq!(default_timeout_s(&quick), 300 + 2 * 6 * 2 * 15);
        assert_eq!(
            default_timeout_s(&BenchRequest::default()),
            300 + 2 * 6 * 3 * 50
        );
    }

    #[test]
    fn finish_without_results_fails() {
        let dir = std::env::temp_dir().join(format!("brisk-finish-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("result.log");
        std::fs::write(&log, "progress only\nBRISK-GUEST-EXIT 0\n").unwrap();
        assert_eq!(finish(&log, 0, &dir).unwrap(), 1);
        assert_eq!(finish(&log, 3, &dir).unwrap(), 3);
        // With the fixture's results: sane, so the guest's code stands.
        let fixture: BenchResults =
            serde_json::from_str(include_str!("../../tests/fixtures/bench-results.json")).unwrap();
        std::fs::write(&log, results::wrap(&fixture).unwrap()).unwrap();
        assert_eq!(finish(&log, 0, &dir).unwrap(), 0);
        assert!(dir.join("report.md").is_file() && dir.join("fairness.svg").is_file());
        assert_eq!(load(&log).unwrap(), fixture);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
