//! brisk-guest: what runs inside the sched_ext guest: the integration tests, the `run` demo
//! and the workloads they spawn.

pub mod bench;
pub mod reliability;
pub mod run;
pub mod service;
pub mod sys;
pub mod tests;
pub mod topology;
pub mod workloads;

use clap::{Parser, Subcommand};

/// In-guest side of the scx_brisk VM harness (started by the guest's /init).
#[derive(Debug, Parser)]
#[command(name = "brisk-guest")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run scx_brisk under a mixed load and show its output.
    Run {
        /// How long scx_brisk runs, in seconds.
        #[arg(long, default_value_t = 30)]
        duration_s: u64,
        /// Arguments for scx_brisk.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the integration tests (all, or those named).
    Test {
        /// Test names (attach, no-stall, fairness, weights, short-first, bad-input, hotplug, latency,
        /// control, auto, probe, verifier, costs, stats-server; with --reliability: upstream-stress, churn, rt-hog, cycles,
        /// kill-restart, stall, soak, masks).
        names: Vec<String>,
        /// Run the reliability tests instead.
        #[arg(long)]
        reliability: bool,
        /// Run the topology tests instead (llc-placement, llc-steal, smt-cores, smt-move,
        /// llc-fairness, llc-offline; they need a guest of several LLCs).
        #[arg(long, conflicts_with = "reliability")]
        topology_tests: bool,
        /// Run the service test instead (scx_brisk.service under systemd; it needs the guest
        /// `stress-tests/vm test --service` boots).
        #[arg(long, conflicts_with_all = ["reliability", "topology_tests"])]
        service: bool,
        /// How long the reliability soak runs, in seconds.
        #[arg(long, default_value_t = 120)]
        soak_s: u64,
        /// Run each selected test this many times in a row (to see how often one fails).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
    },
    /// Run a benchmark workload for a fixed time and print its results as one JSON object.
    #[command(subcommand)]
    Workload(workloads::cli::Workload),
    /// A/B benchmark: every scenario under the default scheduler and each candidate,
    /// interleaved for R rounds; raw results as JSON between marker lines at the end.
    Bench(bench::BenchArgs),
    /// Send one line to a UNIX socket and print the answer line (tests run it as another uid).
    #[command(hide = true)]
    SockSend { path: String, line: String },
    /// A CPU hog that never sleeps (or a chain of short-lived ones).
    Hog(workloads::HogArgs),
}

pub fn main(cli: Cli) -> anyhow::Result<i32> {
    if matches!(cli.cmd, Cmd::Run { .. } | Cmd::Test { .. } | Cmd::Bench(_)) {
        if let Some(shape) = sys::check_topology()? {
            println!("guest topology as asked: {shape}");
        }
    }
    match cli.cmd {
        Cmd::Run { duration_s, args } => run::run(duration_s, &args),
        Cmd::Test {
            names,
            reliability,
            topology_tests,
            service,
            soak_s,
            repeat,
        } => {
            reliability::SOAK_S.store(soak_s, std::sync::atomic::Ordering::Relaxed);
            let set = if reliability {
                reliability::TESTS
            } else if topology_tests {
                topology::TESTS
            } else if service {
                service::TESTS
            } else {
                tests::TESTS
            };
            Ok(if tests::run(set, &names, repeat)? == 0 {
                0
            } else {
                1
            })
        }
        Cmd::SockSend { path, line } => tests::sock_send(&path, &line).map(|answer| {
            print!("{answer}");
            0
        }),
        Cmd::Hog(a) => workloads::hog(&a).map(|_| 0),
        Cmd::Workload(w) => workloads::cli::main(&w),
        Cmd::Bench(a) => bench::main(&a),
    }
}
