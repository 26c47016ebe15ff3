//! Code shared by `brisk-guest` (inside the VM) and `brisk-vm` (on the host): the statistics
//! and the benchmark results format. Everything else lives in the binaries' own modules
//! (`src/guest`, `src/vm`).

pub mod results;
pub mod stats;
