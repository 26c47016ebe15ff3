//! What scx_brisk measures and how it reports it: the decision counters (`counters`), the
//! latency histograms (`latency`), the BPF programs' costs (`overhead`) and the periodic report
//! behind `--stats`, `--monitor` and `scx_brisk probe` (`stats`).

pub mod counters;
pub mod latency;
pub mod overhead;
pub mod stats;
