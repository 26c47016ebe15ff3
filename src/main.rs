//! scx_brisk: a sched_ext scheduler that favours short-running tasks. See README.md.

mod bpf_intf;
mod bpf_skel;
mod cli;
mod counters;
mod latency;
mod overhead;
mod policy;
mod preflight;
mod scheduler;
mod stats;
mod tunables;

use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use log::info;

use cli::Opts;
use scheduler::Scheduler;

fn main() -> ExitCode {
    // Errors are for users: one line with its causes, no backtrace.
    match run(Opts::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: Opts) -> Result<()> {
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

    let tunables = opts.tunables();
    tunables.validate().context("invalid option")?;
    preflight::check_environment()?;

    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("failed to install the SIGINT/SIGTERM handler")?;

    let mut open_object = MaybeUninit::uninit();
    loop {
        let mut sched = Scheduler::init(&mut open_object, &opts, &tunables)?;
        let uei = sched.run(&shutdown)?;
        if !uei.should_restart() || shutdown.load(Ordering::Relaxed) {
            return Ok(());
        }
        info!(
            "the kernel asked for a restart (e.g. CPU hotplug): reloading with the same settings"
        );
    }
}
