//! Pure statistics shared by the workloads (in the guest) and the benchmark report (on the
//! host): percentiles, CDF points, Jain's fairness index, the kernel's nice weights, medians,
//! and the coordinated-omission bookkeeping of a periodic task.

use serde::{Deserialize, Serialize};

/// The q-quantile (0..=1) of already sorted samples by nearest rank; 0 for no samples.
pub fn quantile_sorted(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Quantiles at which a latency CDF is sampled: every 2% up to 98%, then the tail.
pub fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..50).map(|i| i as f64 / 50.0).collect();
    q.extend([0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0]);
    q
}

/// Latency samples (ns) summarised in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// `[quantile, latency_us]` at `cdf_quantiles()`; empty for no samples.
    pub cdf_us: Vec<[f64; 2]>,
}

impl Latency {
    /// Summarises samples in ns (sorts them in place). No samples give all zeros.
    pub fn from_ns(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let us = |q: f64| quantile_sorted(samples, q) as f64 / 1000.0;
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Latency {
            count: samples.len() as u64,
            mean_us: sum as f64 / samples.len() as f64 / 1000.0,
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: us(1.0),
            cdf_us: cdf_quantiles().into_iter().map(|q| [q, us(q)]).collect(),
        }
    }
}

/// Jain's fairness index `(sum x)^2 / (n * sum x^2)`: 1 when all shares are equal, 1/n when one
/// gets everything. `None` for no shares; all-zero shares are equal, so 1.
pub fn jain(x: &[f64]) -> Option<f64> {
    if x.is_empty() {
        return None;
    }
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if sq == 0.0 {
        return Some(1.0);
    }
    Some(sum * sum / (x.len() as f64 * sq))
}

/// The kernel's load weight of a nice level (`sched_prio_to_weight`, nice 0 = 1024).
pub fn nice_weight(nice: i32) -> Option<u32> {
    const WEIGHTS: [u32; 40] = [
        88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100,
        4904, 3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172,
        137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
    ];
    let i = usize::try_from(nice + 20).ok()?;
    WEIGHTS.get(i).copied()
}

/// Jain's index of the shares divided by their tasks' nice weights: 1 when every task got
/// exactly its weighted share. `None` if the lengths differ, a nice level is out of range, or
/// there are no shares.
pub fn weighted_jain(x: &[f64], nice: &[i32]) -> Option<f64> {
    if x.len() != nice.len() {
        return None;
    }
    let norm: Option<Vec<f64>> = x
        .iter()
        .zip(nice)
        .map(|(v, &n)| Some(v / nice_weight(n)? as f64))
        .collect();
    jain(&norm?)
}

/// Median (mean of the middle two for an even count); `None` for no values. NaNs sort last.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Smallest and largest value; `None` for no values.
pub fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let min = v.iter().copied().min_by(f64::total_cmp)?;
    let max = v.iter().copied().max_by(f64::total_cmp)?;
    Some((min, max))
}

/// Coordinated-omission bookkeeping of a periodic task that finished a period's work at
/// `done_ns`, with its next deadline at `next_ns`. Every deadline that passed while it was
/// busy is a missed period: it is not skipped but counted, with its lateness from the
/// deadline to `done_ns` (when the task could first have started it). Returns those lateness
/// values (empty if on time) and the first deadline still ahead (or exactly at) `done_ns`.
pub fn missed_periods(next_ns: u64, done_ns: u64, period_ns: u64) -> (Vec<u64>, u64) {
    let mut missed = Vec::new();
    let mut next = next_ns;
    if period_ns == 0 {
        return (missed, next.max(done_ns));
    }
    while next < done_ns {
        missed.push(done_ns - next);
        next += period_ns;
    }
    (missed, next)
}

/// A `/proc/<pid>/schedstat` line: "<run time> <run delay> <timeslices>".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedStat {
    /// CPU time it ran, in ns.
    pub run_ns: u64,
    /// Time it spent runnable, waiting for a CPU, in ns.
    pub delay_ns: u64,
    /// How many times it was switched in (its stints on a CPU).
    pub timeslices: u64,
}

impl SchedStat {
    /// None if the line does not have that shape.
    pub fn parse(line: &str) -> Option<SchedStat> {
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        match fields[..] {
            [run_ns, delay_ns, timeslices] => Some(SchedStat {
                run_ns,
                delay_ns,
                timeslices,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_fields_in_order() {
        assert_eq!(
            SchedStat::parse("1234567 89012 34\n"),
            Some(SchedStat {
                run_ns: 1234567,
                delay_ns: 89012,
                timeslices: 34
            }),
            "run time, run delay, timeslices"
        );
        assert_eq!(SchedStat::parse("1 2"), None);
        assert_eq!(SchedStat::parse("1 x 3"), None);
        assert_eq!(SchedStat::parse("1 2 3 4"), None);
        assert_eq!(SchedStat::parse(""), None);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile_sorted(&v, 0.5), 50);
        assert_eq!(quantile_sorted(&v, 0.9), 90);
        assert_eq!(quantile_sorted(&v, 0.99), 99);
        assert_eq!(quantile_sorted(&v, 0.999), 100);
        assert_eq!(quantile_sorted(&v, 1.0), 100);
        assert_eq!(quantile_sorted(&v, 0.0), 1);
        assert_eq!(quantile_sorted(&[], 0.5), 0);
        assert_eq!(quantile_sorted(&[7], 0.99), 7);
        assert_eq!(quantile_sorted(&[7], 0.0), 7);
    }

    #[test]
    fn latency_summary() {
        // 1..=1000 us, shuffled.
        let mut ns: Vec<u64> = (1..=1000u64)
            .map(|i| (i * 7919 % 1000 + 1) * 1000)
            .collect();
        let l = Latency::from_ns(&mut ns);
        assert_eq!(l.count, 1000);
        assert_eq!(l.mean_us, 500.5);
        assert_eq!(l.p50_us, 500.0);
        assert_eq!(l.p90_us, 900.0);
        assert_eq!(l.p99_us, 990.0);
        assert_eq!(l.p999_us, 999.0);
        assert_eq!(l.max_us, 1000.0);
        assert_eq!(l.cdf_us.len(), cdf_quantiles().len());
        assert_eq!(l.cdf_us.first(), Some(&[0.0, 1.0]));
        assert_eq!(l.cdf_us.last(), Some(&[1.0, 1000.0]));
        assert!(l
            .cdf_us
            .windows(2)
            .all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]));
    }

    #[test]
    fn latency_edge_cases() {
        assert_eq!(Latency::from_ns(&mut []), Latency::default());
        let one = Latency::from_ns(&mut [2500]);
        assert_eq!(
            (one.count, one.p50_us, one.p999_us, one.max_us),
            (1, 2.5, 2.5, 2.5)
        );
        assert_eq!(one.mean_us, 2.5);
        let same = Latency::from_ns(&mut [4000; 10]);
        assert_eq!((same.p50_us, same.p99_us, same.max_us), (4.0, 4.0, 4.0));
        assert!(same.cdf_us.iter().all(|p| p[1] == 4.0));
    }

    #[test]
    fn jain_index() {
        assert_eq!(jain(&[]), None);
        assert_eq!(jain(&[5.0]), Some(1.0));
        assert_eq!(jain(&[3.0, 3.0, 3.0, 3.0]), Some(1.0));
        assert_eq!(jain(&[0.0, 0.0]), Some(1.0));
        // One of four gets everything: 1/n.
        assert_eq!(jain(&[8.0, 0.0, 0.0, 0.0]), Some(0.25));
        // (1+2+3)^2 / (3 * 14) = 36/42.
        assert!((jain(&[1.0, 2.0, 3.0]).unwrap() - 36.0 / 42.0).abs() < 1e-12);
    }

    #[test]
    fn nice_weights_and_weighted_jain() {
        assert_eq!(nice_weight(0), Some(1024));
        assert_eq!(nice_weight(5), Some(335));
        assert_eq!(nice_weight(-20), Some(88761));
        assert_eq!(nice_weight(19), Some(15));
        assert_eq!(nice_weight(20), None);
        assert_eq!(nice_weight(-21), None);
        // Shares exactly proportional to the weights are perfectly fair once normalised.
        assert_eq!(
            weighted_jain(&[1024.0, 1024.0, 335.0], &[0, 0, 5]),
            Some(1.0)
        );
        // Equal shares for unequal weights are not.
        let w = weighted_jain(&[1.0, 1.0], &[0, 5]).unwrap();
        let expect = jain(&[1.0 / 1024.0, 1.0 / 335.0]).unwrap();
        assert!((w - expect).abs() < 1e-12 && w < 0.9);
        assert_eq!(weighted_jain(&[1.0], &[0, 0]), None);
        assert_eq!(weighted_jain(&[1.0], &[25]), None);
        assert_eq!(weighted_jain(&[], &[]), None);
    }

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[2.0, 2.0]), Some(2.0));
        assert_eq!(min_max(&[]), None);
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), Some((1.0, 3.0)));
        assert_eq!(min_max(&[5.0]), Some((5.0, 5.0)));
    }

    #[test]
    fn coordinated_omission() {
        // On time: nothing missed, the next deadline stays.
        assert_eq!(missed_periods(1000, 900, 100), (vec![], 1000));
        // Finished exactly at the deadline: not missed.
        assert_eq!(missed_periods(1000, 1000, 100), (vec![], 1000));
        // Busy until 1250: the deadlines at 1000, 1100 and 1200 passed while busy and count,
        // each late from its deadline to 1250; the next one ahead is 1300.
        assert_eq!(missed_periods(1000, 1250, 100), (vec![250, 150, 50], 1300));
        // A zero period cannot loop forever.
        assert_eq!(missed_periods(1000, 1250, 0), (vec![], 1250));
    }
}
