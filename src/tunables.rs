//! The policy's tunables: one definition (name, unit, range, default, meaning) that the CLI,
//! policy files, `scx_brisk ctl`, the auto-tuner and the BPF side all use. Validation happens
//! here and only here.

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

pub const LAT_DUTY_MAX_PCT: Spec = Spec {
    key: "lat_duty_max_pct",
    unit: "%",
    min: 0,
    max: 100,
    default: bpf_intf::BRISK_DFL_LAT_DUTY_MAX_PCT as u64,
};

/// The numeric tunables, in the order of `Tunables::numeric`.
pub const NUMERIC: [Spec; 9] = [
    SLICE_US,
    SLICE_MIN_US,
    SHORT_BURST_US,
    BURST_CAP_US,
    SLEEP_CREDIT_US,
    PREEMPT_MARGIN_US,
    STARVE_US,
    BURST_EWMA_SHIFT,
    LAT_DUTY_MAX_PCT,
];
/// The one boolean tunable.
pub const WAKEUP_PREEMPT: &str = "wakeup_preempt";

/// Every tunable's key, numeric ones first.
pub fn keys() -> Vec<&'static str> {
    NUMERIC
        .iter()
        .map(|s| s.key)
        .chain([WAKEUP_PREEMPT])
        .collect()
}

/// A value as given by a user: typed (a policy file) or a string (command line, `ctl set`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    Str(String),
    /// Any other type (float, array, table, date), named for the error message.
    Other(&'static str),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Other(kind) => write!(f, "({kind})"),
        }
    }
}

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
    pub lat_duty_max_pct: u64,
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
            lat_duty_max_pct: LAT_DUTY_MAX_PCT.default,
            wakeup_preempt: bpf_intf::BRISK_DFL_WAKEUP_PREEMPT != 0,
        }
    }
}

/// The allowed range of `spec`, e.g. "100..=1000000us".
fn allowed(spec: &Spec) -> String {
    format!("{}..={}{}", spec.min, spec.max, spec.unit)
}

fn range_error(spec: &Spec, value: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{} = {}{} is out of range: allowed {}",
        spec.key,
        value,
        spec.unit,
        allowed(spec)
    )
}

impl Tunables {
    pub fn numeric(&self) -> [(Spec, u64); 9] {
        [
            (SLICE_US, self.slice_us),
            (SLICE_MIN_US, self.slice_min_us),
            (SHORT_BURST_US, self.short_burst_us),
            (BURST_CAP_US, self.burst_cap_us),
            (SLEEP_CREDIT_US, self.sleep_credit_us),
            (PREEMPT_MARGIN_US, self.preempt_margin_us),
            (STARVE_US, self.starve_us),
            (BURST_EWMA_SHIFT, self.burst_ewma_shift),
            (LAT_DUTY_MAX_PCT, self.lat_duty_max_pct),
        ]
    }

    fn numeric_mut(&mut self, key: &str) -> Option<(Spec, &mut u64)> {
        let slot = match key {
            "slice_us" => &mut self.slice_us,
            "slice_min_us" => &mut self.slice_min_us,
            "short_burst_us" => &mut self.short_burst_us,
            "burst_cap_us" => &mut self.burst_cap_us,
            "sleep_credit_us" => &mut self.sleep_credit_us,
            "preempt_margin_us" => &mut self.preempt_margin_us,
            "starve_us" => &mut self.starve_us,
            "burst_ewma_shift" => &mut self.burst_ewma_shift,
            "lat_duty_max_pct" => &mut self.lat_duty_max_pct,
            _ => return None,
        };
        let spec = *NUMERIC.iter().find(|s| s.key == key)?;
        Some((spec, slot))
    }

    /// Sets one tunable, checking its type and range (not the cross-field rules: see
    /// `validate`). On error nothing is changed and the message names the key, the value and
    /// what is allowed.
    pub fn set(&mut self, key: &str, value: &Value) -> Result<()> {
        if key == WAKEUP_PREEMPT {
            self.wakeup_preempt = match value {
                Value::Bool(b) => *b,
                Value::Str(s) => match s.as_str() {
                    "true" | "on" | "1" => true,
                    "false" | "off" | "0" => false,
                    _ => bail!("{key} = {s:?} is not a boolean: use true or false"),
                },
                Value::Int(i) => bail!("{key} = {i} is not a boolean: use true or false"),
                other => bail!(
                    "{key} must be a boolean (true or false), not {}",
                    kind(other)
                ),
            };
            return Ok(());
        }
        let Some((spec, slot)) = self.numeric_mut(key) else {
            bail!("unknown tunable {key:?}; tunables: {}", keys().join(", "));
        };
        let v: u64 = match value {
            Value::Int(i) if *i < 0 => return Err(range_error(&spec, i)),
            Value::Int(i) => *i as u64,
            Value::Str(s) => match s.trim().parse::<u64>() {
                Ok(v) => v,
                Err(_) if s.trim().parse::<i128>().is_ok() => return Err(range_error(&spec, s)),
                Err(_) => bail!(
                    "{key} = {s:?} is not a whole number of {}: allowed {}",
                    unit_name(&spec),
                    allowed(&spec)
                ),
            },
            other => bail!(
                "{key} must be a whole number of {}, not {}: allowed {}",
                unit_name(&spec),
                kind(other),
                allowed(&spec)
            ),
        };
        if v < spec.min || v > spec.max {
            return Err(range_error(&spec, v));
        }
        *slot = v;
        Ok(())
    }

    /// The value of `key` as text.
    pub fn get(&self, key: &str) -> Option<String> {
        if key == WAKEUP_PREEMPT {
            return Some(self.wakeup_preempt.to_string());
        }
        self.numeric()
            .iter()
            .find(|(s, _)| s.key == key)
            .map(|(_, v)| v.to_string())
    }

    /// Checks every value against its range and the cross-field rules; the error names the
    /// key, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        for (spec, value) in self.numeric() {
            if value < spec.min || value > spec.max {
                return Err(range_error(&spec, value));
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

    /// The values as the BPF side reads them (ns), tagged with generation `gen`.
    pub fn to_bpf(self, gen: u64) -> brisk_tunables {
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
            lat_duty_max_pct: self.lat_duty_max_pct as u32,
            pad: 0,
            gen,
        }
    }
}

fn unit_name(spec: &Spec) -> &'static str {
    if spec.unit == "us" {
        "microseconds"
    } else if spec.unit == "%" {
        "percent"
    } else {
        "steps"
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Int(_) => "an integer",
        Value::Bool(_) => "a boolean",
        Value::Str(_) => "a string",
        Value::Other(k) => k,
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
        let b = t.to_bpf(7);
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
        assert_eq!(b.burst_ewma_shift, bpf_intf::BRISK_DFL_BURST_EWMA_SHIFT);
        assert_eq!(b.wakeup_preempt, 1);
        assert_eq!(b.lat_duty_max_pct, bpf_intf::BRISK_DFL_LAT_DUTY_MAX_PCT);
        assert_eq!(b.gen, 7);
    }

    /// Every key through `set`: in range, at both ends, below, above, negative, wrong type.
    #[test]
    fn every_key_checked_at_both_ends_and_by_type() {
        // Baseline with the slice at its widest so the cross-field rule never interferes.
        let base = Tunables {
            slice_us: SLICE_US.max,
            slice_min_us: SLICE_MIN_US.min,
            ..Tunables::default()
        };
        for spec in NUMERIC {
            for (value, ok) in [
                (Value::Int(spec.min as i64), true),
                (Value::Int(spec.max as i64), true),
                (Value::Str(format!(" {} ", spec.min)), true),
                (Value::Int(spec.max as i64 + 1), false),
                (Value::Str((spec.max + 1).to_string()), false),
                (Value::Int(spec.min as i64 - 1), false),
                (Value::Int(-1), false),
                (Value::Str("-1".into()), false),
                (Value::Str("1.5".into()), false),
                (Value::Str("abc".into()), false),
                (Value::Str("99999999999999999999999".into()), false),
                (Value::Bool(true), false),
                (Value::Other("a float"), false),
            ] {
                let mut t = base;
                let res = t.set(spec.key, &value).and_then(|_| t.validate());
                assert_eq!(res.is_ok(), ok, "{} = {:?}: {:?}", spec.key, value, res);
                match res {
                    Ok(()) => assert_eq!(
                        t.get(spec.key).unwrap(),
                        match &value {
                            Value::Int(i) => i.to_string(),
                            Value::Str(s) => s.trim().to_string(),
                            _ => unreachable!(),
                        }
                    ),
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(msg.contains(spec.key), "{msg}");
                        assert_eq!(t, base, "{}: a refused value changed something", spec.key);
                        // Every refusal, of a wrong type too, says what is allowed.
                        assert!(
                            msg.contains(&format!("{}..={}", spec.min, spec.max)),
                            "{msg}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn booleans_and_unknown_keys() {
        let mut t = Tunables::default();
        t.set("wakeup_preempt", &Value::Str("off".into())).unwrap();
        assert!(!t.wakeup_preempt);
        t.set("wakeup_preempt", &Value::Bool(true)).unwrap();
        assert!(t.wakeup_preempt);
        for bad in [Value::Int(1), Value::Str("maybe".into())] {
            let msg = t.set("wakeup_preempt", &bad).unwrap_err().to_string();
            assert!(msg.contains("wakeup_preempt"), "{msg}");
        }
        let msg = t.set("slice", &Value::Int(5000)).unwrap_err().to_string();
        assert!(
            msg.contains("unknown tunable \"slice\"") && msg.contains("slice_us"),
            "{msg}"
        );
        assert_eq!(keys().len(), 10);
        assert!(keys().iter().all(|k| Tunables::default().get(k).is_some()));
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
