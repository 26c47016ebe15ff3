//! Latency histograms filled by the BPF probes (src/bpf/probes.bpf.h): reading them, taking
//! the difference between two readings, and estimating percentiles.
//!
//! Buckets are log-linear (src/bpf/lat_hist.h): below 4 us one per microsecond, above that four
//! per power of two. A percentile is estimated by the midpoint of the bucket holding its rank,
//! so the estimate is within half a bucket of the true value: at most 0.5 us below 4 us, and at
//! most 12.5% of the value above. The mean is exact (sum / count).

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bpf_intf;

pub const NR_BUCKETS: usize = bpf_intf::brisk_lat_consts_BRISK_LAT_NR_BUCKETS as usize;
const MAX_LOG2: u32 = bpf_intf::brisk_lat_consts_BRISK_LAT_MAX_LOG2;

/// The measured delays, in the order of `enum brisk_lat_kind`.
pub const KINDS: [&str; 3] = ["wakeup", "preempted", "dispatch"];
/// The task classes, in the order of `enum brisk_lat_class`.
pub const CLASSES: [&str; 3] = ["short", "hog", "all"];

// SAFETY: plain C struct of u64 fields.
unsafe impl plain::Plain for bpf_intf::brisk_lat_hist {}

/// One histogram, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hist {
    pub count: u64,
    pub sum_ns: u64,
    /// Largest sample since the scheduler started (not per interval).
    pub max_ns: u64,
    pub buckets: Vec<u64>,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            count: 0,
            sum_ns: 0,
            max_ns: 0,
            buckets: vec![0; NR_BUCKETS],
        }
    }
}

/// Lower bound of bucket `b`, in ns (same formula as lat_hist.h).
pub fn bucket_lo_ns(b: usize) -> u64 {
    if b == 0 {
        return 0;
    }
    if b >= NR_BUCKETS - 1 {
        return (1u64 << MAX_LOG2) * 1000;
    }
    let (k, sub) = ((b - 1) / 4, (b - 1) % 4);
    ((1u64 << k) * (4 + sub as u64) / 4) * 1000
}

/// Width of bucket `b`, in ns (the overflow bucket: 0, it has no upper bound).
pub fn bucket_width_ns(b: usize) -> u64 {
    match b {
        0 => 1000,
        b if b >= NR_BUCKETS - 1 => 0,
        b => (((1u64 << ((b - 1) / 4)) / 4).max(1)) * 1000,
    }
}

impl Hist {
    /// Sums the per-CPU copies of one histogram.
    pub fn sum_percpu(values: &[Vec<u8>]) -> Result<Self> {
        let mut h = Self::default();
        for bytes in values {
            let c: &bpf_intf::brisk_lat_hist = plain::from_bytes(bytes)
                .map_err(|e| anyhow!("malformed latency histogram from the BPF map: {e:?}"))?;
            h.count += c.count;
            h.sum_ns += c.sum_ns;
            h.max_ns = h.max_ns.max(c.max_ns);
            for (a, b) in h.buckets.iter_mut().zip(c.buckets.iter()) {
                *a += *b;
            }
        }
        Ok(h)
    }

    /// Every histogram of a `lat_hists` map, summed over CPUs, indexed kind * 3 + class as in
    /// [`CLASSES`]. The map holds the short and hog classes only (every task is in exactly
    /// one); "all" is their sum, made here.
    pub fn read_all(map: &impl libbpf_rs::MapCore) -> Result<Vec<Hist>> {
        let recorded = bpf_intf::brisk_lat_class_BRISK_NR_CLASSES as usize;
        let mut out = Vec::with_capacity(KINDS.len() * CLASSES.len());
        for kind in 0..KINDS.len() {
            let mut all = Hist::default();
            for class in 0..recorded {
                let key = (kind * recorded + class) as u32;
                let values = map
                    .lookup_percpu(&key.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
                    .context("failed to read the latency histograms")?
                    .context("latency histogram entry missing")?;
                let h = Hist::sum_percpu(&values)?;
                all.add(&h);
                out.push(h);
            }
            out.push(all);
        }
        Ok(out)
    }

    /// Adds `other`'s samples to this histogram.
    pub fn add(&mut self, other: &Hist) {
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += *b;
        }
    }

    /// What was added since `earlier` (an older reading of the same histogram).
    pub fn since(&self, earlier: &Hist) -> Hist {
        Hist {
            count: self.count.saturating_sub(earlier.count),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
            max_ns: self.max_ns,
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        }
    }

    /// Estimated q-quantile (0 < q <= 1) in ns: the midpoint of the bucket holding the sample
    /// of rank ceil(q * count). The overflow bucket yields its lower bound. None when empty.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_lo_ns(b) + bucket_width_ns(b) / 2);
            }
        }
        unreachable!("rank {rank} <= total {total}")
    }

    /// Upper end of the highest non-empty bucket, capped by the all-time max: a bound on the
    /// largest sample of this (differenced) histogram.
    pub fn max_estimate_ns(&self) -> Option<u64> {
        let b = self.buckets.iter().rposition(|&n| n > 0)?;
        if b == NR_BUCKETS - 1 {
            // no upper bound but the all-time max
            return Some(self.max_ns.max(bucket_lo_ns(b)));
        }
        let top = bucket_lo_ns(b) + bucket_width_ns(b);
        Some(if self.max_ns > 0 {
            top.min(self.max_ns).max(bucket_lo_ns(b))
        } else {
            top
        })
    }

    pub fn summary(&self) -> Summary {
        let us = |ns: Option<u64>| ns.map(|v| v as f64 / 1000.0);
        Summary {
            count: self.count,
            mean_us: (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64 / 1000.0),
            p50_us: us(self.quantile_ns(0.50)),
            p90_us: us(self.quantile_ns(0.90)),
            p99_us: us(self.quantile_ns(0.99)),
            p999_us: us(self.quantile_ns(0.999)),
            max_us: us(self.max_estimate_ns()),
        }
    }
}

/// A histogram's figures, in microseconds; None where there were no samples.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean_us: Option<f64>,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn brisk_host_lat_bucket(ns: u64) -> u32;
        fn brisk_host_lat_bucket_lo_ns(b: u32) -> u64;
        fn brisk_host_lat_switched_out(s: *mut Stamps, runnable: i32, now: u64);
        fn brisk_host_lat_take(since: *mut u64, now: u64) -> u64;
    }

    /// struct brisk_lat_stamps (src/bpf/lat_stamps.h).
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy, PartialEq)]
    struct Stamps {
        wake_at: u64,
        preempt_at: u64,
        enq_at: u64,
    }

    fn switched_out(s: &mut Stamps, runnable: bool, now: u64) {
        unsafe { brisk_host_lat_switched_out(s, runnable as i32, now) }
    }

    fn take(since: &mut u64, now: u64) -> u64 {
        unsafe { brisk_host_lat_take(since, now) }
    }

    #[test]
    fn stamps_never_outlive_a_run_of_the_task() {
        // Woken at 100, queued at 110, switched in at 150: 50 and 40, then nothing pending.
        let mut s = Stamps {
            wake_at: 100,
            enq_at: 110,
            ..Default::default()
        };
        assert_eq!(take(&mut s.wake_at, 150), 50);
        assert_eq!(take(&mut s.enq_at, 150), 40);
        assert_eq!(take(&mut s.preempt_at, 150), 0, "nothing was pending");
        assert_eq!(s, Stamps::default());

        // Woken at 200 while still running (before it got to sleep), then preempted at 300 and
        // re-queued at 300: the wakeup is over, the wait for the CPU starts at 300.
        s.wake_at = 200;
        s.enq_at = 300;
        switched_out(&mut s, true, 300);
        assert_eq!(
            s,
            Stamps {
                wake_at: 0,
                preempt_at: 300,
                enq_at: 300
            }
        );
        assert_eq!(take(&mut s.wake_at, 400), 0, "no bogus wakeup sample");
        assert_eq!(take(&mut s.preempt_at, 400), 100);
        assert_eq!(take(&mut s.enq_at, 400), 100);

        // Switched out to sleep: nothing carries over into the next wakeup.
        s = Stamps {
            wake_at: 500,
            preempt_at: 450,
            enq_at: 460,
        };
        switched_out(&mut s, false, 600);
        assert_eq!(s, Stamps::default());

        // A clock that went back gives no sample, and the stamp is still consumed.
        let mut t = 1000;
        assert_eq!(take(&mut t, 900), 0);
        assert_eq!(t, 0);
    }

    fn bucket(ns: u64) -> usize {
        unsafe { brisk_host_lat_bucket(ns) as usize }
    }

    fn hist_of(samples_ns: &[u64]) -> Hist {
        let mut h = Hist::default();
        for &s in samples_ns {
            h.count += 1;
            h.sum_ns += s;
            h.max_ns = h.max_ns.max(s);
            h.buckets[bucket(s)] += 1;
        }
        h
    }

    #[test]
    fn bpf_and_rust_agree_on_bucket_bounds() {
        for b in 0..NR_BUCKETS {
            assert_eq!(
                unsafe { brisk_host_lat_bucket_lo_ns(b as u32) },
                bucket_lo_ns(b),
                "{b}"
            );
        }
    }

    #[test]
    fn every_value_lands_in_the_bucket_that_covers_it() {
        let mut v = 0u64;
        while v < (1u64 << MAX_LOG2) * 1000 {
            let b = bucket(v);
            assert!(b < NR_BUCKETS - 1, "{v} ns in overflow");
            let (lo, w) = (bucket_lo_ns(b), bucket_width_ns(b));
            assert!(
                lo <= v && v < lo + w,
                "{v} ns in bucket {b} [{lo}, {})",
                lo + w
            );
            // never wider than a quarter of the bucket's start (or 1 us)
            assert!(w <= (lo / 4).max(1000), "bucket {b} width {w} at {lo}");
            v = v * 9 / 8 + 1;
        }
        assert_eq!(bucket(1u64 << 40), NR_BUCKETS - 1);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1000), 1);
    }

    #[test]
    fn known_samples_give_known_percentiles_within_half_a_bucket() {
        // 1..=1000 us, one sample each
        let samples: Vec<u64> = (1..=1000).map(|us| us * 1000).collect();
        let h = hist_of(&samples);
        for (q, truth_us) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (0.999, 999.0)] {
            let est = h.quantile_ns(q).unwrap() as f64 / 1000.0;
            let b = bucket((truth_us * 1000.0) as u64);
            let half = bucket_width_ns(b) as f64 / 2000.0;
            assert!(
                (est - truth_us).abs() <= half,
                "q{q}: {est} vs {truth_us} (+-{half})"
            );
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.mean_us, Some(500.5)); // exact
        assert!(s.max_us.unwrap() >= 896.0 && s.max_us.unwrap() <= 1000.0);
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let s = Hist::default().summary();
        assert_eq!(s.count, 0);
        assert_eq!(
            (s.mean_us, s.p50_us, s.p99_us, s.max_us),
            (None, None, None, None)
        );
    }

    #[test]
    fn all_in_overflow_reports_the_overflow_bound() {
        let h = hist_of(&[20_000_000_000, 30_000_000_000]);
        let lo = bucket_lo_ns(NR_BUCKETS - 1);
        assert_eq!(h.quantile_ns(0.5), Some(lo));
        assert_eq!(h.quantile_ns(0.99), Some(lo));
        assert_eq!(h.max_estimate_ns(), Some(30_000_000_000));
    }

    #[test]
    fn one_bucket_gives_its_midpoint_everywhere() {
        let h = hist_of(&[100_000, 101_000, 102_000]); // all in [96, 112) us
        let b = bucket(100_000);
        let mid = bucket_lo_ns(b) + bucket_width_ns(b) / 2;
        for q in [0.01, 0.5, 0.99, 1.0] {
            assert_eq!(h.quantile_ns(q), Some(mid));
        }
    }

    #[test]
    fn difference_of_readings_keeps_only_the_interval() {
        let a = hist_of(&[5_000, 7_000]);
        let b = hist_of(&[5_000, 7_000, 2_000_000, 3_000_000]);
        let d = b.since(&a);
        assert_eq!(d.count, 2);
        assert_eq!(d.sum_ns, 5_000_000);
        assert!(d.quantile_ns(0.5).unwrap() >= 1_792_000);
    }

    #[test]
    fn classes_add_up_to_all() {
        let short = hist_of(&[5_000, 7_000, 9_000]);
        let hog = hist_of(&[2_000_000]);
        let mut all = short.clone();
        all.add(&hog);
        assert_eq!(all, hist_of(&[5_000, 7_000, 9_000, 2_000_000]));
        // the recorded classes come first, "all" last, as CLASSES lists them
        assert_eq!(
            bpf_intf::brisk_lat_class_BRISK_NR_CLASSES as usize + 1,
            CLASSES.len()
        );
    }

    #[test]
    fn percpu_bytes_are_summed() {
        let mut c: bpf_intf::brisk_lat_hist = unsafe { std::mem::zeroed() };
        c.count = 2;
        c.sum_ns = 10;
        c.max_ns = 7;
        c.buckets[3] = 2;
        let bytes = unsafe { plain::as_bytes(&c) }.to_vec();
        let h = Hist::sum_percpu(&[bytes.clone(), bytes]).unwrap();
        assert_eq!((h.count, h.sum_ns, h.max_ns, h.buckets[3]), (4, 20, 7, 4));
        assert!(Hist::sum_percpu(&[vec![1, 2, 3]]).is_err());
    }
}
