//! The clients: `scx_brisk ctl ...` (the control socket) and `scx_brisk --monitor` (the
//! scx_stats socket).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::CtlAction;
use crate::control::policy_file::{self, PolicyFile};
use crate::control::socket::{self, Request};
use crate::report::stats::{Lines, Reporter, Snapshot};
use scx_stats::prelude::StatsClient;

fn socket() -> &'static Path {
    Path::new(socket::SOCKET)
}

/// `scx_brisk ctl show|set|apply`.
pub fn ctl(action: &CtlAction) -> Result<()> {
    let req = match action {
        CtlAction::Show { .. } => Request::Show,
        CtlAction::Set { pairs } => {
            let mut out = Vec::new();
            for p in pairs {
                let (k, v) = p
                    .split_once('=')
                    .with_context(|| format!("{p:?} is not KEY=VALUE (e.g. slice_us=6000)"))?;
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
            Request::Set { pairs: out }
        }
        CtlAction::Apply { file } => {
            // Check it here first, so errors name the file as the user wrote it; the
            // scheduler checks it again before it applies anything.
            let parsed = PolicyFile::load(file)?;
            parsed.settings()?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("policy file {}", file.display()))?;
            if text.len() as u64 > policy_file::MAX_BYTES {
                bail!("policy file {} changed while being read", file.display());
            }
            Request::Apply {
                path: file.display().to_string(),
                text,
            }
        }
    };
    let resp = socket::request(socket(), &req)?;
    if let Some(msg) = &resp.message {
        println!("{msg}");
    }
    let view = resp.settings.context("scx_brisk sent no settings")?;
    match action {
        CtlAction::Show { json: true } => println!("{}", serde_json::to_string(&view)?),
        _ => print!("{}", view.to_table()),
    }
    Ok(())
}

/// `scx_brisk --monitor SECS`: the running scheduler's stats every SECS seconds, from its
/// scx_stats socket (cumulative snapshots, differenced here).
pub fn monitor(interval_s: u64, json: bool, shutdown: &Arc<AtomicBool>) -> Result<()> {
    if interval_s == 0 {
        bail!("--monitor needs an interval of at least 1 second");
    }
    let mut client = StatsClient::new().connect(None).context(
        "connecting to scx_brisk's scx_stats socket (/var/run/scx/root/stats): is it running?",
    )?;
    let mut snap = || -> Result<Snapshot> {
        client.request("stats", vec![("target".into(), "snapshot".into())])
    };
    let mut reporter = Reporter::new(Duration::from_secs(interval_s), json, Lines::Stdout);
    // The first snapshot must come: it is how a missing scheduler is reported.
    reporter.record(snap()?);
    if let Err(e) = reporter.run(|| shutdown.load(Ordering::Relaxed), snap) {
        eprintln!("scx_brisk is gone ({e:#}); monitor stops");
    }
    Ok(())
}
