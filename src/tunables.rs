//! The policy's tunables: one definition (name, unit, range, default, meaning) that the CLI,
//! the validation and the BPF side all use.

use anyhow::{bail, Result};

use crate::bpf_intf;
use crate::bpf_skel::types::brisk_tunables;

/// Definition of one numeric tunable, in the units the user gives it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub key: &'static str,
    pub unit: &'static str,
    pub min: u64,
    pub max: u64,
    pub default: u64,
}

const fn us(ns: u64) -> u64 {
    ns / 1000
}

pub const SLICE_US: Spec = Spec {
    key: "slice_us",
    unit: "us",
    min: 100,
    max: 100_000,
    default: us(bpf_intf::BRISK_DFL_SLICE_NS as u64),
};
pub const SLICE_MIN_US: Spec = Spec {
    key: "slice_min_us",
    unit: "us",
    min: 50,
    max: 100_000,
    default: us(bpf_intf::BRISK_DFL_SLICE_MIN_NS as u64),
};
pub const SHORT_BURST_US: Spec = Spec {
    key: "short_burst_us",
    unit: "us",
    min: 10,
    max: 100_000,
    default: us(bpf_intf::BRISK_DFL_SHORT_BURST_NS as u64),
};
pub const BURST_CAP_US: Spec = Spec {
    key: "burst_cap_us",
    unit: "us",
    min: 100,
    max: 1_000_000,
    default: us(bpf_intf::BRISK_DFL_BURST_CAP_NS as u64),
};
pub const SLEEP_CREDIT_US: Spec = Spec {
    key: "sleep_credit_us",
    unit: "us",
    min: 0,
    max: 1_000_000,
    default: us(bpf_intf::BRISK_DFL_SLEEP_CREDIT_NS as u64),
};
pub const PREEMPT_MARGIN_US: Spec = Spec {
    key: "preempt_margin_us",
    unit: "us",
    min: 0,
    max: 100_000,
    default: us(bpf_intf::BRISK_DFL_PREEMPT_MARGIN_NS as u64),
};
/// At most half the kernel watchdog (BRISK_TIMEOUT_MS), so a rescue always comes in time.
pub const STARVE_US: Spec = Spec {
    key: "starve_us",
    unit: "us",
    min: 10_000,
    max: bpf_intf::brisk_consts_BRISK_TIMEOUT_MS as u64 * 1000 / 2,
    default: us(bpf_intf::BRISK_DFL_STARVE_NS as u64),
};
pub const BURST_EWMA_SHIFT: Spec = Spec {
    key: "burst_ewma_shift",
    unit: "",
    min: 0,
    max: 8,
    default: bpf_intf::BRISK_DFL_BURST_EWMA_SHIFT as u64,
};

/// The values of all tunables, in user units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunables {
    pub slice_us: u64,
    pub slice_min_us: u64,
    pub short_burst_us: u64,
    pub burst_cap_us: u64,
    pub sleep_credit_us: u64,
    pub preempt_margin_us: u64,
    pub starve_us: u64,
    pub burst_ewma_shift: u64,
    pub wakeup_preempt: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Self {
            slice_us: SLICE_US.default,
            slice_min_us: SLICE_MIN_US.default,
            short_burst_us: SHORT_BURST_US.default,
            burst_cap_us: BURST_CAP_US.default,
            sleep_credit_us: SLEEP_CREDIT_US.default,
            preempt_margin_us: PREEMPT_MARGIN_US.default,
            starve_us: STARVE_US.default,
            burst_ewma_shift: BURST_EWMA_SHIFT.default,
            wakeup_preempt: bpf_intf::BRISK_DFL_WAKEUP_PREEMPT != 0,
        }
    }
}

impl Tunables {
    fn numeric(&self) -> [(Spec, u64); 8] {
        [
            (SLICE_US, self.slice_us),
            (SLICE_MIN_US, self.slice_min_us),
            (SHORT_BURST_US, self.short_burst_us),
            (BURST_CAP_US, self.burst_cap_us),
            (SLEEP_CREDIT_US, self.sleep_credit_us),
            (PREEMPT_MARGIN_US, self.preempt_margin_us),
            (STARVE_US, self.starve_us),
            (BURST_EWMA_SHIFT, self.burst_ewma_shift),
        ]
    }

    /// Checks every value against its range and the cross-field rules; the error names the
    /// key, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        for (spec, value) in self.numeric() {
            if value < spec.min || value > spec.max {
                bail!(
                    "{} = {}{} is out of range: allowed {}..={}{}",
                    spec.key,
                    value,
                    spec.unit,
                    spec.min,
                    spec.max,
                    spec.unit
                );
            }
        }
        if self.slice_min_us > self.slice_us {
            bail!(
                "slice_min_us = {}us is larger than slice_us = {}us: the floor of the slice \
                 must not exceed the base slice",
                self.slice_min_us,
                self.slice_us
            );
        }
        Ok(())
    }

    /// The values as the BPF side reads them (ns).
    pub fn to_bpf(self) -> brisk_tunables {
        brisk_tunables {
            slice_ns: self.slice_us * 1000,
            slice_min_ns: self.slice_min_us * 1000,
            short_burst_ns: self.short_burst_us * 1000,
            burst_cap_ns: self.burst_cap_us * 1000,
            sleep_credit_ns: self.sleep_credit_us * 1000,
            preempt_margin_ns: self.preempt_margin_us * 1000,
            starve_ns: self.starve_us * 1000,
            burst_ewma_shift: self.burst_ewma_shift as u32,
            wakeup_preempt: self.wakeup_preempt as u32,
        }
    }
}

impl std::fmt::Display for Tunables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (spec, value) in self.numeric() {
            write!(f, "{}={} ", spec.key, value)?;
        }
        write!(f, "wakeup_preempt={}", self.wakeup_preempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_bpf() {
        let t = Tunables::default();
        t.validate().unwrap();
        let b = t.to_bpf();
        assert_eq!(b.slice_ns, bpf_intf::BRISK_DFL_SLICE_NS as u64);
        assert_eq!(b.slice_min_ns, bpf_intf::BRISK_DFL_SLICE_MIN_NS as u64);
        assert_eq!(b.short_burst_ns, bpf_intf::BRISK_DFL_SHORT_BURST_NS as u64);
        assert_eq!(b.burst_cap_ns, bpf_intf::BRISK_DFL_BURST_CAP_NS as u64);
        assert_eq!(
            b.sleep_credit_ns,
            bpf_intf::BRISK_DFL_SLEEP_CREDIT_NS as u64
        );
        assert_eq!(
            b.preempt_margin_ns,
            bpf_intf::BRISK_DFL_PREEMPT_MARGIN_NS as u64
        );
        assert_eq!(b.starve_ns, bpf_intf::BRISK_DFL_STARVE_NS as u64);
        assert_eq!(b.wakeup_preempt, 1);
    }

    #[test]
    fn every_key_checked_at_both_ends() {
        let fields: [fn(&mut Tunables) -> &mut u64; 8] = [
            |t| &mut t.slice_us,
            |t| &mut t.slice_min_us,
            |t| &mut t.short_burst_us,
            |t| &mut t.burst_cap_us,
            |t| &mut t.sleep_credit_us,
            |t| &mut t.preempt_margin_us,
            |t| &mut t.starve_us,
            |t| &mut t.burst_ewma_shift,
        ];
        // Baseline with the slice at its widest so the cross-field rule never interferes.
        let base = Tunables {
            slice_us: SLICE_US.max,
            slice_min_us: SLICE_MIN_US.min,
            ..Tunables::default()
        };
        for (i, field) in fields.iter().enumerate() {
            let spec = base.numeric()[i].0;
            for (value, ok) in [
                (spec.min, true),
                (spec.max, true),
                (spec.max + 1, false),
                (spec.min.wrapping_sub(1), false),
            ] {
                let mut t = base;
                *field(&mut t) = value;
                let res = t.validate();
                assert_eq!(res.is_ok(), ok, "{} = {}: {:?}", spec.key, value, res);
                if let Err(e) = res {
                    let msg = e.to_string();
                    assert!(msg.contains(spec.key), "{msg}");
                    assert!(
                        msg.contains(&format!("{}..={}", spec.min, spec.max)),
                        "{msg}"
                    );
                }
            }
        }
    }

    #[test]
    fn slice_floor_above_slice_is_refused() {
        let t = Tunables {
            slice_us: 1000,
            slice_min_us: 2000,
            ..Tunables::default()
        };
        let msg = t.validate().unwrap_err().to_string();
        assert!(
            msg.contains("slice_min_us") && msg.contains("slice_us"),
            "{msg}"
        );
    }
}
