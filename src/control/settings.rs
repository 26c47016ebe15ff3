//! What the running scheduler is set to: the tunables the user asked for, the controller's
//! mode, and where each value came from. Every change (command line, policy file, `ctl`,
//! SIGHUP) goes through `Settings::with`, which applies all of it or none of it.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::control::tunables::{self, Tunables, Value};

/// Where a value came from. In JSON it is its display text: "default", "cli",
/// "policy PATH", "ctl" or "auto".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Source {
    Default,
    Cli,
    /// A policy file (its path): `--policy`, SIGHUP or `ctl apply`.
    Policy(String),
    Ctl,
    Auto,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::Cli => write!(f, "cli"),
            Source::Policy(p) => write!(f, "policy {p}"),
            Source::Ctl => write!(f, "ctl"),
            Source::Auto => write!(f, "auto"),
        }
    }
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Source {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "default" => Source::Default,
            "cli" => Source::Cli,
            "ctl" => Source::Ctl,
            "auto" => Source::Auto,
            _ => match s.strip_prefix("policy ") {
                Some(p) => Source::Policy(p.to_string()),
                None => return Err(format!("unknown source {s:?}")),
            },
        })
    }
}

/// Whether the controller tunes the slice and preemption margin itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The tunables stay as set.
    Fixed,
    /// The auto-tuner keeps the short class's wakeup p99 under `target_p99_us`, giving hogs
    /// as long a slice as that allows (see autotune.rs).
    Auto,
}

pub const MODE: &str = "mode";
/// The auto-tuner's target for the short class's p99 wakeup latency.
pub const TARGET_P99_US: tunables::Spec = tunables::Spec {
    key: "target_p99_us",
    unit: tunables::Unit::Us,
    min: 50,
    max: 1_000_000,
    default: 2000,
    help: "The auto-tuner's target for the short class's p99 wakeup latency, in microseconds.",
};

/// Every key a policy file or `ctl set` accepts.
pub fn keys() -> Vec<&'static str> {
    let mut k = tunables::keys();
    k.extend([MODE, TARGET_P99_US.key]);
    k
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The tunables as asked for; in auto mode the tuner moves slice_us and preempt_margin_us
    /// below these (see `Controller`).
    pub tunables: Tunables,
    pub mode: Mode,
    pub target_p99_us: u64,
    /// Source of each key's value.
    pub sources: BTreeMap<&'static str, Source>,
    /// Where the most recent change came from.
    pub last_change: Source,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tunables: Tunables::default(),
            mode: Mode::Fixed,
            target_p99_us: TARGET_P99_US.default,
            sources: keys().into_iter().map(|k| (k, Source::Default)).collect(),
            last_change: Source::Default,
        }
    }
}

impl Settings {
    /// Sets one key (tunable or controller setting), checking type and range; on error
    /// nothing is changed.
    pub fn set(&mut self, key: &str, value: &Value, source: &Source) -> Result<()> {
        let Some(&k) = keys().iter().find(|k| **k == key) else {
            bail!("unknown key {key:?}; keys: {}", keys().join(", "));
        };
        match k {
            MODE => {
                self.mode = match value {
                    Value::Str(s) if s == "fixed" => Mode::Fixed,
                    Value::Str(s) if s == "auto" => Mode::Auto,
                    Value::Str(s) => bail!("mode = {s:?}: use \"fixed\" or \"auto\""),
                    _ => bail!("mode must be a string: \"fixed\" or \"auto\""),
                }
            }
            k if k == TARGET_P99_US.key => self.target_p99_us = TARGET_P99_US.parse(value)?,
            k => self.tunables.set(k, value)?,
        }
        self.sources.insert(k, source.clone());
        Ok(())
    }

    /// These settings with `changes` applied, all checked (types, ranges, cross-field rules);
    /// an error leaves `self` as it was and names the first bad key.
    pub fn with(&self, changes: &[(String, Value)], source: Source) -> Result<Settings> {
        let mut next = self.clone();
        for (k, v) in changes {
            next.set(k, v, &source)?;
        }
        next.tunables.validate()?;
        next.last_change = source;
        Ok(next)
    }

    /// The view shown by `ctl show`, in --stats-json and sent over the control socket.
    pub fn view(&self, effective: &Tunables) -> View {
        let mut values = BTreeMap::new();
        for k in tunables::keys() {
            let asked = self.tunables.get(k).unwrap_or_default();
            let running = effective.get(k).unwrap_or_default();
            let source = if asked != running {
                Source::Auto
            } else {
                self.sources[k].clone()
            };
            values.insert(
                k.to_string(),
                Entry {
                    value: running,
                    source,
                },
            );
        }
        values.insert(
            MODE.to_string(),
            Entry {
                value: serde_json::to_value(self.mode)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                source: self.sources[MODE].clone(),
            },
        );
        values.insert(
            TARGET_P99_US.key.to_string(),
            Entry {
                value: self.target_p99_us.to_string(),
                source: self.sources[TARGET_P99_US.key].clone(),
            },
        );
        View {
            values,
            last_change: self.last_change.clone(),
        }
    }
}

/// One key's running value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub value: String,
    pub source: Source,
}

/// The settings as reported: every key's running value and source, and the last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub values: BTreeMap<String, Entry>,
    pub last_change: Source,
}

impl View {
    /// A table for `ctl show`.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for (k, e) in &self.values {
            out.push_str(&format!("{k:<20} {:<10} ({})\n", e.value, e.source));
        }
        out.push_str(&format!("last change: {}\n", self.last_change));
        out
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|e| e.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn a_change_is_all_or_nothing() {
        let base = Settings::default();
        let changes = vec![
            ("slice_us".to_string(), s("8000")),
            ("preempt_margin_us".to_string(), s("200000")), // out of range
        ];
        let err = base.with(&changes, Source::Ctl).unwrap_err().to_string();
        assert!(err.contains("preempt_margin_us"), "{err}");
        // base was never touched; a good change goes through and records its source
        assert_eq!(base, Settings::default());
        let next = base
            .with(&[("slice_us".to_string(), s("8000"))], Source::Ctl)
            .unwrap();
        assert_eq!(next.tunables.slice_us, 8000);
        assert_eq!(next.sources["slice_us"], Source::Ctl);
        assert_eq!(next.sources["slice_min_us"], Source::Default);
        assert_eq!(next.last_change, Source::Ctl);
    }

    #[test]
    fn cross_field_rule_applies_to_the_whole_change() {
        let base = Settings::default();
        // lowering the slice below the floor alone is refused...
        assert!(base
            .with(&[("slice_us".to_string(), s("400"))], Source::Ctl)
            .is_err());
        // ...but together with a lower floor it is fine
        let next = base
            .with(
                &[
                    ("slice_us".to_string(), s("400")),
                    ("slice_min_us".to_string(), s("100")),
                ],
                Source::Ctl,
            )
            .unwrap();
        assert_eq!(
            (next.tunables.slice_us, next.tunables.slice_min_us),
            (400, 100)
        );
    }

    #[test]
    fn controller_keys() {
        let base = Settings::default();
        let next = base
            .with(
                &[
                    ("mode".to_string(), s("auto")),
                    ("target_p99_us".to_string(), s("1500")),
                ],
                Source::Ctl,
            )
            .unwrap();
        assert_eq!((next.mode, next.target_p99_us), (Mode::Auto, 1500));
        for (k, v) in [
            ("mode", s("turbo")),
            ("mode", Value::Int(1)),
            ("target_p99_us", s("10")),
            ("target_p99_us", s("2000000")),
            ("target_p99_us", s("x")),
            ("target_p99_us", Value::Bool(true)),
        ] {
            let err = base
                .with(&[(k.to_string(), v.clone())], Source::Ctl)
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{err}");
            if k == "target_p99_us" {
                // The value as the user wrote it (a wrong type: its type), and what is allowed.
                match &v {
                    Value::Str(t) => assert!(err.contains(t.as_str()), "{err}"),
                    _ => assert!(err.contains("not a boolean"), "{err}"),
                }
                assert!(err.contains("50..=1000000"), "{err}");
            }
        }
    }

    #[test]
    fn view_marks_tuned_values_as_auto() {
        let st = Settings::default();
        let mut running = st.tunables;
        running.slice_us = 1234;
        let v = st.view(&running);
        assert_eq!(v.get("slice_us"), Some("1234"));
        assert_eq!(v.values["slice_us"].source, Source::Auto);
        assert_eq!(v.values["starve_us"].source, Source::Default);
        assert_eq!(v.get("mode"), Some("fixed"));
        assert!(v.to_table().contains("last change: default"));
        // sources travel as their display text
        for src in [
            Source::Default,
            Source::Cli,
            Source::Ctl,
            Source::Auto,
            Source::Policy("/p q.toml".into()),
        ] {
            let json = serde_json::to_string(&src).unwrap();
            assert_eq!(json, format!("{:?}", src.to_string()));
            assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), src);
        }
    }
}
