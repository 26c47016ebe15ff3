//! scx_brisk: a sched_ext scheduler that favours short-running tasks. See README.md.
//!
//! - `src/bpf/`: the BPF scheduler (policy, its pure arithmetic in `policy.h`, the probes).
//! - `scheduler`: load, attach, and the run loop that owns the BPF side (`BpfSide`).
//! - `control`: what the scheduler is set to and who may change it: the table of tunables,
//!   settings, policy files, the control socket and its client, the controller, the
//!   auto-tuner.
//! - `report`: what it measures: counters, latency histograms, BPF costs, the periodic report.
//! - `cli`, `preflight`, `probe`, `top`: the command line, checks made before loading,
//!   `scx_brisk probe` and `scx_brisk top`.
//!
//! The binary (`main.rs`) only wires these together; the library exists so that the pure
//! parts (policy files, the control protocol, tunables) can also be fuzzed (`fuzz/`).

pub mod bpf_intf;
pub mod bpf_skel;
pub mod cli;
pub mod control;
pub mod preflight;
pub mod probe;
pub mod probe_skel;
pub mod report;
pub mod scheduler;
pub mod top;

#[cfg(test)]
mod bpf_arith_tests;
