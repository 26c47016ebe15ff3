//! What the scheduler is set to and who may change it.
//!
//! - `tunables`: the one table of the policy's tunables, and their validation;
//! - `settings`: the running settings, where each value came from, all-or-nothing changes;
//! - `policy_file`: policy files (`--policy`, `ctl apply`, SIGHUP);
//! - `socket`: the root-only control socket (protocol and server); `client`: `scx_brisk ctl`
//!   and `--monitor`;
//! - `controller`: answers requests and SIGHUP, runs the auto-tuner (`autotune`), and writes
//!   the tunables through the BPF side's interface (`BpfSide`).

pub mod autotune;
pub mod client;
pub mod controller;
pub mod policy_file;
pub mod settings;
pub mod socket;
pub mod tunables;
