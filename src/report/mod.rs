//! What scx_brisk measures and how it reports it: the decision counters (`counters`), the
//! latency histograms (`latency`), the BPF programs' costs (`overhead`) and the periodic report
//! behind `--stats`, `--monitor` and `scx_brisk probe` (`stats`); the same report for
//! scx_stats clients (`stats_server`); the cumulative state as OpenMetrics for Prometheus
//! (`metrics`).

pub mod counters;
pub mod latency;
pub mod metrics;
pub mod overhead;
pub mod stats;
pub mod stats_server;
