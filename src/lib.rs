//! scx_brisk: a sched_ext scheduler that favours short-running tasks. See README.md.
//!
//! The binary (`main.rs`) only wires these together; the library exists so that the pure
//! parts (policy files, the control protocol, tunables) can also be fuzzed (`fuzz/`).

pub mod autotune;
pub mod bpf_intf;
pub mod bpf_skel;
pub mod cli;
pub mod client;
pub mod controller;
pub mod counters;
pub mod ctl;
pub mod latency;
pub mod overhead;
pub mod policy;
pub mod policy_file;
pub mod preflight;
pub mod probe;
pub mod probe_skel;
pub mod scheduler;
pub mod settings;
pub mod stats;
pub mod tunables;
