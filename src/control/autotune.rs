//! The auto-tuner (`mode = "auto"`): a feedback loop that keeps the short class's p99 wakeup
//! latency (from the in-kernel probes) under `target_p99_us` while giving hogs as long a slice
//! as that allows.
//!
//! It works on one number, a *level* from 0 (the slice and preemption margin as set: the
//! relaxed end) to `MAX_LEVEL` (slice at `slice_min_us`, margin 0: the tight end). Slices step
//! geometrically between the two, the margin linearly. Each interval:
//! - too few short-class wakeups to judge: hold;
//! - p99 above target: tighten one level (two if above twice the target), at once;
//! - p99 below `RELAX_BELOW` x target for `patience` intervals in a row: relax one level;
//! - in between (the hysteresis band): hold.
//!
//! A relax that brings the p99 back over the target within `patience` intervals was a failed
//! probe: patience doubles (up to `MAX_PATIENCE`), so near its limit the tuner tries a longer
//! slice ever more rarely instead of oscillating. A violation that no relax caused (the load
//! changed) resets patience, so the tuner reacts afresh.

use crate::control::tunables::Tunables;

pub const MAX_LEVEL: u32 = 8;
/// Fewer short-class wakeups than this in an interval say nothing about its p99.
pub const MIN_SAMPLES: u64 = 20;
/// Relax only when the p99 is well under the target: the lower edge of the hysteresis band.
pub const RELAX_BELOW: f64 = 0.6;
pub const BASE_PATIENCE: u32 = 5;
pub const MAX_PATIENCE: u32 = 80;

#[derive(Debug, Clone)]
pub struct Tuner {
    pub level: u32,
    /// Consecutive calm intervals (p99 under RELAX_BELOW x target).
    calm: u32,
    pub patience: u32,
    /// Intervals since the last relax, while it is still on probation.
    since_relax: Option<u32>,
}

impl Default for Tuner {
    fn default() -> Self {
        Self {
            level: 0,
            calm: 0,
            patience: BASE_PATIENCE,
            since_relax: None,
        }
    }
}

/// A level change and the figures that caused it, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub from: u32,
    pub to: u32,
    pub why: String,
}

impl Tuner {
    /// One interval's observation: the short class's wakeup p99 and its sample count.
    pub fn observe(&mut self, target_us: f64, p99_us: Option<f64>, samples: u64) -> Option<Change> {
        let p99 = match p99_us {
            Some(p) if samples >= MIN_SAMPLES => p,
            _ => return None,
        };
        if let Some(n) = self.since_relax.as_mut() {
            *n += 1;
        }
        let from = self.level;
        if p99 > target_us {
            self.calm = 0;
            let probe_failed = self.since_relax.is_some_and(|n| n <= self.patience);
            self.patience = if probe_failed {
                (self.patience * 2).min(MAX_PATIENCE)
            } else {
                BASE_PATIENCE
            };
            self.since_relax = None;
            let step = if p99 > 2.0 * target_us { 2 } else { 1 };
            self.level = (self.level + step).min(MAX_LEVEL);
            return (self.level != from).then(|| Change {
                from,
                to: self.level,
                why: format!(
                    "short p99 {p99:.0} us > target {target_us:.0} us over {samples} wakeups{}",
                    if probe_failed {
                        format!("; the last relax failed, patience now {}", self.patience)
                    } else {
                        String::new()
                    }
                ),
            });
        }
        if self.since_relax.is_some_and(|n| n > self.patience) {
            // The last relax held: it was not a failed probe.
            self.since_relax = None;
            self.patience = (self.patience / 2).max(BASE_PATIENCE);
        }
        if p99 >= RELAX_BELOW * target_us {
            self.calm = 0;
            return None;
        }
        self.calm += 1;
        if self.calm < self.patience || self.level == 0 {
            return None;
        }
        self.calm = 0;
        self.level -= 1;
        self.since_relax = Some(0);
        Some(Change {
            from,
            to: self.level,
            why: format!(
                "short p99 {p99:.0} us < {:.0}% of target {target_us:.0} us for {} intervals",
                RELAX_BELOW * 100.0,
                self.patience
            ),
        })
    }

    /// The tunables to run at `level`: `base` (the relaxed end) with a shorter slice and a
    /// smaller preemption margin.
    pub fn apply(base: &Tunables, level: u32) -> Tunables {
        let level = level.min(MAX_LEVEL);
        let frac = level as f64 / MAX_LEVEL as f64;
        let floor = base.slice_min_us.min(base.slice_us) as f64;
        let slice = base.slice_us as f64 * (floor / base.slice_us as f64).powf(frac);
        let margin = base.preempt_margin_us as f64 * (1.0 - frac);
        Tunables {
            slice_us: (slice.round() as u64)
                .clamp(base.slice_min_us.min(base.slice_us), base.slice_us),
            preempt_margin_us: margin.round() as u64,
            ..*base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake latency response: the short class's p99 grows with the hogs' slice and the
    /// preemption margin (a waker that cannot preempt waits out the slice), times `load`,
    /// with +-10% deterministic noise.
    struct Plant {
        load: f64,
        seed: u64,
    }

    impl Plant {
        fn p99(&mut self, t: &Tunables) -> f64 {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = 0.9 + 0.2 * ((self.seed >> 33) as f64 / (1u64 << 31) as f64);
            self.load
                * (300.0 + 0.25 * t.slice_us as f64 + 0.2 * t.preempt_margin_us as f64)
                * noise
        }
        fn worst(&self, t: &Tunables) -> f64 {
            self.load * (300.0 + 0.25 * t.slice_us as f64 + 0.2 * t.preempt_margin_us as f64) * 1.1
        }
    }

    fn base() -> Tunables {
        Tunables {
            slice_us: 20_000,
            slice_min_us: 500,
            preempt_margin_us: 8000,
            ..Tunables::default()
        }
    }

    struct Run {
        levels: Vec<u32>,
        p99s: Vec<f64>,
    }

    fn simulate(
        plant: &mut Plant,
        steps: usize,
        target: f64,
        mut load_at: impl FnMut(usize) -> f64,
    ) -> Run {
        let mut tuner = Tuner::default();
        let (mut levels, mut p99s) = (Vec::new(), Vec::new());
        for i in 0..steps {
            plant.load = load_at(i);
            let t = Tuner::apply(&base(), tuner.level);
            t.validate().unwrap();
            let p = plant.p99(&t);
            p99s.push(p);
            tuner.observe(target, Some(p), 200);
            levels.push(tuner.level);
        }
        Run { levels, p99s }
    }

    fn changes(levels: &[u32]) -> usize {
        levels.windows(2).filter(|w| w[0] != w[1]).count()
    }

    #[test]
    fn levels_span_base_to_tight() {
        let b = base();
        assert_eq!(Tuner::apply(&b, 0), b);
        let tight = Tuner::apply(&b, MAX_LEVEL);
        assert_eq!((tight.slice_us, tight.preempt_margin_us), (500, 0));
        for l in 0..MAX_LEVEL {
            let (a, c) = (Tuner::apply(&b, l), Tuner::apply(&b, l + 1));
            assert!(c.slice_us < a.slice_us && c.preempt_margin_us < a.preempt_margin_us);
        }
    }

    /// From the relaxed end, far over target: converges under the target quickly, stays there,
    /// does not oscillate, and does not tighten more than needed.
    #[test]
    fn converges_without_oscillating_on_a_simulated_plant() {
        let target = 2000.0;
        let mut plant = Plant {
            load: 1.0,
            seed: 42,
        };
        let run = simulate(&mut plant, 400, target, |_| 1.0);
        let first_ok = run.p99s.iter().position(|&p| p < target).unwrap();
        assert!(first_ok <= 10, "first under target at step {first_ok}");
        let over = run.p99s[50..].iter().filter(|&&p| p > target).count();
        assert!(
            over * 100 <= 350 * 3,
            "{over} of 350 intervals over target after convergence"
        );
        let late_changes = changes(&run.levels[100..]);
        assert!(
            late_changes <= 10,
            "{late_changes} level changes in the last 300 intervals: {:?}",
            &run.levels[100..]
        );
        // The loosest level whose worst case meets the target: the tuner ends there or one
        // step tighter, never lower (that would violate) and never needlessly tight.
        let feasible = (0..=MAX_LEVEL)
            .find(|&l| plant.worst(&Tuner::apply(&base(), l)) < target)
            .unwrap();
        let end = *run.levels.last().unwrap();
        assert!(
            (feasible..=feasible + 1).contains(&end),
            "ended at level {end}, loosest feasible {feasible}"
        );
        assert!(
            Tuner::apply(&base(), end).slice_us > base().slice_min_us,
            "slice not given back"
        );
    }

    /// The load doubles mid-run: the tuner tightens within a few intervals and holds again;
    /// when it drops back, it slowly gives the slice back.
    #[test]
    fn follows_a_load_change() {
        let target = 2000.0;
        let mut plant = Plant { load: 1.0, seed: 7 };
        let load = |i: usize| if (200..400).contains(&i) { 1.8 } else { 1.0 };
        let run = simulate(&mut plant, 700, target, load);
        let before = run.levels[199];
        let recovered = run.p99s[200..].iter().position(|&p| p < target).unwrap();
        assert!(
            recovered <= 4,
            "took {recovered} intervals to get back under target"
        );
        assert!(
            run.levels[399] > before,
            "did not tighten for the heavier load"
        );
        assert!(
            run.levels[699] < run.levels[399],
            "never relaxed after the load dropped"
        );
        assert!(
            changes(&run.levels[250..400]) <= 8,
            "oscillates under the heavy load"
        );
    }

    #[test]
    fn unreachable_target_pins_the_tight_end_without_oscillating() {
        let mut plant = Plant { load: 1.0, seed: 3 };
        let run = simulate(&mut plant, 200, 100.0, |_| 1.0);
        assert!(
            run.levels[10..].iter().all(|&l| l == MAX_LEVEL),
            "{:?}",
            run.levels
        );
    }

    #[test]
    fn easy_target_stays_relaxed() {
        let mut plant = Plant { load: 1.0, seed: 9 };
        let run = simulate(&mut plant, 200, 50_000.0, |_| 1.0);
        assert!(run.levels.iter().all(|&l| l == 0));
    }

    #[test]
    fn too_few_samples_change_nothing() {
        let mut t = Tuner::default();
        for _ in 0..50 {
            assert_eq!(t.observe(1000.0, Some(9000.0), MIN_SAMPLES - 1), None);
            assert_eq!(t.observe(1000.0, None, 500), None);
        }
        assert_eq!(t.level, 0);
        let c = t.observe(1000.0, Some(9000.0), 100).unwrap();
        assert_eq!((c.from, c.to), (0, 2));
        assert!(c.why.contains("9000 us > target 1000 us"), "{}", c.why);
    }
}
