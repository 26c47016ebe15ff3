//! Code shared by `brisk-guest` (inside the VM) and `brisk-vm` (on the host): the statistics
//! and the benchmark results format. Everything else lives in the binaries' own modules
//! (`src/guest`, `src/vm`).

pub mod results;
pub mod stats;

/// Where the service test's guest (`brisk-vm test --service`) has the files of the checkout
/// that the README's install command, `dist/install`, reads: brisk-vm puts them there, with
/// the built binary in target/release, and `brisk-guest test --service` runs the install.
pub const SERVICE_CHECKOUT: &str = "/usr/src/scx_brisk";
