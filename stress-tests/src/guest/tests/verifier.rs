//! Guest test `verifier`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::guest::sys::Brisk;

/// The verifier budget: each program's verified instruction count when it was last reviewed
/// (`stress-tests/verifier-budget.json`), as scx_brisk logs them at load.
const BUDGET: &str = include_str!("../../../verifier-budget.json");

/// A program may grow by a quarter (or 1000 instructions, for small ones) and all of them
/// together by 15% before the growth has to be explained by updating the budget file.
const PROG_GROWTH: f64 = 1.25;
const PROG_SLACK: u64 = 1000;
const TOTAL_GROWTH: f64 = 1.15;

/// "verifier: N programs, T instructions verified (name n, ...)" -> name -> n.
fn parse(out: &str) -> Result<BTreeMap<String, u64>> {
    let line = out
        .lines()
        .find_map(|l| l.split_once("verifier: ").map(|(_, rest)| rest))
        .context("scx_brisk logged no verifier line")?;
    let inner = line
        .split_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .with_context(|| format!("malformed verifier line {line:?}"))?;
    inner
        .split(", ")
        .map(|item| {
            let (name, n) = item
                .rsplit_once(' ')
                .with_context(|| format!("malformed entry {item:?}"))?;
            Ok((name.to_string(), n.parse()?))
        })
        .collect()
}

/// 12. Verifier budget: every BPF program of scx_brisk loads within its recorded instruction
///     budget (a quarter more per program, 15% more in all), and none appears or vanishes
///     without the budget file saying so.
pub(super) fn verifier() -> Result<String> {
    let budget: serde_json::Value = serde_json::from_str(BUDGET).context("verifier-budget.json")?;
    let budget: BTreeMap<String, u64> = budget["programs"]
        .as_object()
        .context("verifier-budget.json has no \"programs\" object")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    let (mut b, _) = Brisk::start(&[])?;
    b.stop_cleanly()?;
    let seen = parse(&b.output())?;
    let mut problems = Vec::new();
    for (name, &n) in &seen {
        match budget.get(name) {
            None => problems.push(format!("{name} ({n}) is not in the budget")),
            Some(&max) => {
                let allowed = ((max as f64 * PROG_GROWTH) as u64).max(max + PROG_SLACK);
                if n > allowed {
                    problems.push(format!("{name}: {n} > {allowed} (budget {max})"));
                }
            }
        }
    }
    for name in budget.keys().filter(|k| !seen.contains_key(*k)) {
        problems.push(format!("{name} is in the budget but was not loaded"));
    }
    let (total, budget_total) = (seen.values().sum::<u64>(), budget.values().sum::<u64>());
    if total as f64 > budget_total as f64 * TOTAL_GROWTH {
        problems.push(format!(
            "total {total} > {TOTAL_GROWTH} x budget {budget_total}"
        ));
    }
    let table: Vec<String> = seen.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if !problems.is_empty() {
        bail!(
            "{}; measured: {}. If the growth is intended, say why in the commit and update \
             stress-tests/verifier-budget.json",
            problems.join("; "),
            table.join(", ")
        );
    }
    Ok(format!(
        "{} programs, {total} instructions verified (budget {budget_total}): {}",
        seen.len(),
        table.join(", ")
    ))
}
