//! scx_brisk: a sched_ext scheduler that favours short-running tasks. See README.md.

use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use log::{info, warn};

use scx_brisk::cli::{self, Command, Opts};
use scx_brisk::control::client;
use scx_brisk::control::controller::Controller;
use scx_brisk::scheduler::Scheduler;
use scx_brisk::{preflight, probe, top};

fn main() -> ExitCode {
    let matches = Opts::command().get_matches();
    let opts = match Opts::from_arg_matches(&matches) {
        Ok(o) => o,
        Err(e) => e.exit(),
    };
    // Errors are for users: one line with its causes, no backtrace.
    match run(opts, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts, matches: &clap::ArgMatches) -> Result<()> {
    let level = if opts.verbose {
        simplelog::LevelFilter::Debug
    } else {
        simplelog::LevelFilter::Info
    };
    simplelog::TermLogger::init(
        level,
        simplelog::ConfigBuilder::new()
            .set_time_level(simplelog::LevelFilter::Off)
            .build(),
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    )?;

    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("failed to install the SIGINT handler")?;
    // SIGTERM stops too; SIGHUP does not (it re-reads --policy, see controller.rs).
    signal_hook::flag::register(signal_hook::consts::SIGTERM, shutdown.clone())
        .context("failed to install the SIGTERM handler")?;

    match &opts.command {
        Some(Command::Ctl { action }) => return client::ctl(action),
        Some(Command::Probe(p)) => return probe::run(p, opts.verbose, &shutdown),
        Some(Command::Top(t)) => return top::run(t, opts.verbose, &shutdown),
        None => {}
    }
    if let Some(secs) = opts.monitor {
        return client::monitor(secs, opts.stats_json, &shutdown);
    }

    let cli = cli::cli_changes(&opts, matches);
    let probes = !opts.no_latency_probes;
    let settings = Controller::settings_at_start(opts.policy.as_ref(), &cli, probes)?;
    preflight::check_environment()?;
    let mut ctl = Controller::new(settings, cli, opts.policy.clone(), probes)?;
    ctl.listen()?;
    if let Some(addr) = opts.metrics_addr {
        ctl.serve_metrics(addr)?;
    }

    let mut open_object = MaybeUninit::uninit();
    let mut restarts = 0;
    loop {
        let mut sched = Scheduler::init(&mut open_object, &opts, &ctl.effective(), ctl.gen())?;
        match sched.run(&shutdown, &mut ctl) {
            Ok(uei) if !uei.should_restart() || shutdown.load(Ordering::Relaxed) => return Ok(()),
            Ok(_) => info!(
                "the kernel asked for a restart (e.g. CPU hotplug): reloading with the same settings"
            ),
            Err(e) if restarts < opts.restart_on_error && !shutdown.load(Ordering::Relaxed) => {
                restarts += 1;
                let wait = restart_backoff(restarts);
                warn!(
                    "scx_brisk was ejected ({e:#}); the default scheduler runs meanwhile. \
                     Restart {restarts} of {} in {} s, with the same settings",
                    opts.restart_on_error,
                    wait.as_secs()
                );
                std::thread::sleep(wait);
                if shutdown.load(Ordering::Relaxed) {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Wait before the n-th restart after an error (n >= 1): 1, 2, 4, ... s, at most 30 s.
fn restart_backoff(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs((1u64 << (n - 1).min(5)).min(30))
}

#[cfg(test)]
mod tests {
    #[test]
    fn restart_backoff_doubles_up_to_30_s() {
        let secs: Vec<u64> = (1..=8)
            .map(|n| super::restart_backoff(n).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
