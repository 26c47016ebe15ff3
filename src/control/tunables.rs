//! The policy's tunables, declared once in the table below (`tunables!`): name, unit, range,
//! default, and a help text that says what the tunable does and what it trades off. The
//! command-line options (`cli::TunableArgs`), the policy-file and `ctl set` keys, `ctl show`,
//! the stats and the values the BPF side reads (`to_bpf`, which must name every field of
//! `struct brisk_tunables`, so a tunable missing on either side does not compile) all derive
//! from it. Validation happens here and only here.
//!
//! Adding a tunable: one entry here, its field in `struct brisk_tunables` (src/bpf/intf.h) and
//! its use in the policy (src/bpf/main.bpf.c). See docs/design.md.

use anyhow::{bail, Result};

use crate::bpf_intf;
use crate::bpf_skel::types::brisk_tunables;

/// The unit a tunable is given in; the BPF side gets nanoseconds for `Us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (BPF: nanoseconds).
    Us,
    /// Percent.
    Pct,
    /// A plain count (e.g. a shift).
    Steps,
    /// true or false (BPF: 1 or 0).
    Bool,
}

impl Unit {
    /// The suffix shown after a value ("5000us", "80%").
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Us => "us",
            Unit::Pct => "%",
            Unit::Steps | Unit::Bool => "",
        }
    }

    /// The unit's name in an error message.
    fn name(self) -> &'static str {
        match self {
            Unit::Us => "microseconds",
            Unit::Pct => "percent",
            Unit::Steps => "steps",
            Unit::Bool => "booleans",
        }
    }

    /// The command line's placeholder for a value.
    pub fn value_name(self) -> &'static str {
        match self {
            Unit::Us => "US",
            Unit::Pct => "PCT",
            Unit::Steps => "N",
            Unit::Bool => "BOOL",
        }
    }

    /// A value in this unit as the BPF side reads it.
    fn to_bpf(self, v: u64) -> u64 {
        match self {
            Unit::Us => v * 1000,
            _ => v,
        }
    }
}

/// Definition of one setting, in the units the user gives it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub key: &'static str,
    pub unit: Unit,
    pub min: u64,
    pub max: u64,
    pub default: u64,
    /// First line: what it is (the short `--help`); the rest: what it trades off.
    pub help: &'static str,
}

impl Spec {
    /// The one-line summary of `help`.
    pub fn summary(&self) -> &'static str {
        self.help.lines().next().unwrap_or_default().trim()
    }

    /// The allowed range, e.g. "100..=100000us".
    pub fn allowed(&self) -> String {
        match self.unit {
            Unit::Bool => "true or false".to_string(),
            u => format!("{}..={}{}", self.min, self.max, u.suffix()),
        }
    }

    /// A value as text: "true"/"false" for a boolean, else the number.
    pub fn show(&self, v: u64) -> String {
        match self.unit {
            Unit::Bool => (v != 0).to_string(),
            _ => v.to_string(),
        }
    }

    fn range_error(&self, value: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!(
            "{} = {}{} is out of range: allowed {}",
            self.key,
            value,
            self.unit.suffix(),
            self.allowed()
        )
    }

    /// Checks a user's value (type and range) and returns it in this spec's unit; the error
    /// names the key, the value and what is allowed.
    pub fn parse(&self, value: &Value) -> Result<u64> {
        let key = self.key;
        if self.unit == Unit::Bool {
            return Ok(match value {
                Value::Bool(b) => *b as u64,
                Value::Str(s) => match s.trim() {
                    "true" | "on" | "1" => 1,
                    "false" | "off" | "0" => 0,
                    _ => bail!("{key} = {s:?} is not a boolean: use true or false"),
                },
                Value::Int(i) => bail!("{key} = {i} is not a boolean: use true or false"),
                other => bail!(
                    "{key} must be a boolean (true or false), not {}",
                    kind(other)
                ),
            });
        }
        let v: u64 = match value {
            Value::Int(i) if *i < 0 => return Err(self.range_error(i)),
            Value::Int(i) => *i as u64,
            Value::Str(s) => match s.trim().parse::<u64>() {
                Ok(v) => v,
                Err(_) if s.trim().parse::<i128>().is_ok() => return Err(self.range_error(s)),
                Err(_) => bail!(
                    "{key} = {s:?} is not a whole number of {}: allowed {}",
                    self.unit.name(),
                    self.allowed()
                ),
            },
            other => bail!(
                "{key} must be a whole number of {}, not {}: allowed {}",
                self.unit.name(),
                kind(other),
                self.allowed()
            ),
        };
        if v < self.min || v > self.max {
            return Err(self.range_error(v));
        }
        Ok(v)
    }
}

/// Declares the tunables: the `Tunables` struct, `TABLE`, its defaults and `to_bpf`.
macro_rules! tunables {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $unit:ident in $min:literal..=$max:expr, default $default:literal,
            bpf $bpf:ident;
    )+) => {
        /// The values of all tunables, in user units (booleans as 0 or 1).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Tunables {
            $(pub $key: u64,)+
        }

        /// Every tunable, in the order of `--help` and `ctl show`.
        pub const TABLE: &[Spec] = &[$(
            Spec {
                key: stringify!($key),
                unit: Unit::$unit,
                min: $min,
                max: $max,
                default: $default,
                help: concat!($($doc, "\n"),+),
            },
        )+];

        impl Default for Tunables {
            fn default() -> Self {
                Self { $($key: $default,)+ }
            }
        }

        impl Tunables {
            fn slot(&mut self, key: &str) -> Option<&mut u64> {
                match key {
                    $(stringify!($key) => Some(&mut self.$key),)+
                    _ => None,
                }
            }

            /// The values in `TABLE`'s order.
            pub fn values(&self) -> Vec<(&'static Spec, u64)> {
                TABLE.iter().zip([$(self.$key),+]).collect()
            }

            /// The values as the BPF side reads them (ns), tagged with generation `gen`.
            pub fn to_bpf(self, gen: u64) -> brisk_tunables {
                brisk_tunables {
                    $($bpf: Unit::$unit.to_bpf(self.$key),)+
                    gen,
                }
            }
        }
    };
}

tunables! {
    /// Base time slice, in microseconds.
    ///
    /// A task runs at most this long before the next waiting task gets the CPU; the slice is
    /// shared out (down to slice_min_us) as more tasks wait than there are CPUs. Longer slices
    /// give hogs fewer context switches and better cache use; shorter ones bound the wait of
    /// tasks that could not preempt. Only a task whose bursts average at most two slices can be latency-critical.
    slice_us: Us in 100..=100_000, default 5000, bpf slice_ns;

    /// Smallest time slice, in microseconds.
    ///
    /// The floor under the shared-out slice: below it, switching costs more than it buys. A
    /// slice shorter than the kernel's tick (4 ms at HZ=250) ends at the next tick anyway, at
    /// the price of a switch; short tasks do not need it, since they preempt hogs on wakeup.
    slice_min_us: Us in 50..=100_000, default 4000, bpf slice_min_ns;

    /// Average burst under which a task counts as short, in microseconds.
    ///
    /// A burst is the CPU time a task uses between sleeps. Short tasks are queued first, may
    /// preempt hogs on wakeup and are never preempted for another task. Raising it lets
    /// heavier tasks be treated as interactive, at the cost of more preemption of hogs.
    short_burst_us: Us in 10..=100_000, default 2000, bpf short_burst_ns;

    /// Cap on the burst added to a task's deadline, in microseconds.
    ///
    /// Tasks run in order of vruntime + burst (weighted), so a hog waits at most this much
    /// longer than a short task of equal vruntime; while more tasks wait than there are CPUs,
    /// the burst is scaled down by that share. Larger favours short tasks more and lengthens
    /// a hog's wait behind a stream of them; its vruntime still catches up, so it keeps its
    /// weighted share and is never starved.
    burst_cap_us: Us in 100..=1_000_000, default 20_000, bpf burst_cap_ns;

    /// Most CPU time credit a sleeping task can bank, in microseconds.
    ///
    /// On wakeup a task's vruntime is raised to at least its LLC's clock minus this. Larger
    /// rewards sleepers for longer: under overload a crowd of short sleepers (message
    /// passers) sorts further ahead of the hogs and takes more of the CPU from them; 0 is
    /// strict fairness between sleepers and hogs. It also bounds lat_fair_lead_us.
    sleep_credit_us: Us in 0..=1_000_000, default 1000, bpf sleep_credit_ns;

    /// Deadline lead a waking short task needs to preempt a hog, in microseconds.
    ///
    /// Smaller preempts more eagerly: lower wakeup latency for interactive tasks, more
    /// context switches for hogs. (Latency-critical wakeups preempt without it.)
    preempt_margin_us: Us in 0..=100_000, default 1000, bpf preempt_margin_ns;

    /// Longest a queued task waits before it is run out of order, in microseconds.
    ///
    /// The starvation guard: strict weighted fairness can leave a low-weight task waiting for
    /// seconds behind many hogs, and the kernel ejects a scheduler whose task waits 5 s (at
    /// most half that is allowed, so a rescue always comes in time). While latency-critical
    /// wakeups wait, only tasks past halfway from this to 5 s go before them. Lower values
    /// bound every wait tighter; weights are honoured less exactly under overload.
    starve_us: Us in 10_000..=(bpf_intf::brisk_consts_BRISK_TIMEOUT_MS as u64 * 1000 / 2),
        default 1_000_000, bpf starve_ns;

    /// Smoothing of the per-task burst average (new = old + (burst - old) / 2^shift).
    ///
    /// The average falls twice as fast as it rises, so a task that turns short regains its
    /// privileges within a few bursts. Larger values remember a task's past longer, so a few
    /// long bursts do not demote an interactive task; smaller values react faster when a task
    /// changes behaviour.
    burst_ewma_shift: Steps in 0..=8, default 2, bpf burst_ewma_shift;

    /// Largest duty cycle of a latency-critical task, in percent (0: no latency-critical lane).
    ///
    /// A task woken by a timer or an interrupt (and by a futex with lat_lane_task_wakeups;
    /// never by a pipe or socket partner), whose average burst fits in two slice_us (a frame
    /// whose interrupts stretch it past one) and fills at most this share of the time between
    /// its wakeups, skips the fair queue and may preempt any task that is not
    /// latency-critical itself. At 100 the burst bound alone decides; lower values also refuse
    /// busy tasks, but a request worker that falls behind then flips between the lanes and
    /// waits a round of the fair queue each time it is refused (docs/design.md).
    lat_duty_max_pct: Pct in 0..=100, default 100, bpf lat_duty_max_pct;

    /// Largest share of an LLC's CPU time the latency-critical lane takes while fair tasks
    /// wait, in percent.
    ///
    /// Past it (by two base slices) the lane's busy tasks (over 30% duty) wait behind the fair
    /// queue's first task and preempt nobody, until the fair queue has had its share; light
    /// ones (audio, frames, timers) keep going first up to four times that. Busy tasks that
    /// saturate the lane (request workers catching up a backlog) are what it holds back. Higher serves them more and hogs
    /// and message crowds less; 100 leaves the fair queue only the starvation guard.
    lat_share_max_pct: Pct in 10..=100, default 67, bpf lat_share_max_pct;

    /// Whether waking short tasks may preempt a running task (false: --no-wakeup-preempt).
    ///
    /// Off, waking tasks wait for the running task's slice to end (at the next tick): better
    /// for throughput-only machines, worse for interactive latency.
    wakeup_preempt: Bool in 0..=1, default 1, bpf wakeup_preempt;

    /// Whether a latency-critical wakeup that finds no idle CPU waits for a CPU of its LLC
    /// that runs a short task, rather than preempting a hog (true: --lat-wait-for-short).
    ///
    /// On, the hogs keep their CPUs through the lane's wakeups and the lane bets that the
    /// short task sleeps within its burst: under the 2-CPU mixed overload about 10 % more hog
    /// work for the same tails. With more CPUs to an LLC one nearly always runs some short
    /// task and the bet often loses: on 8 CPUs a game's frame and audio tails grew 3-4x
    /// beside a build. Off, a timer-woken task runs at once on a hog's CPU.
    lat_wait_for_short: Bool in 0..=1, default 0, bpf lat_wait_for_short;

    /// Whether a fair task the latency-critical lane preempts resumes its slice after the
    /// lane's task (false: --no-lat-resume).
    ///
    /// On, the lane's time is an interruption of the fair order: the hog it preempted runs on
    /// with what was left of its slice (short wakeups due earlier still go before it), so the
    /// lane's wakeups no longer end the hogs' stints and hand their CPU to the message crowd.
    /// Under the 2-CPU mixed overload the hogs did a fifth to a quarter more work, in stints
    /// twice as long, for a request tail up to a fifth longer. Off, it queues in the fair
    /// order and the queue's first task runs after the lane's (docs/design.md).
    lat_resume: Bool in 0..=1, default 1, bpf lat_resume;

    /// Whether a latency-critical task woken by another task goes in the lane (true:
    /// --lat-lane-task-wakeups).
    ///
    /// Off, only timer and interrupt wakeups (frames, audio, periodic work) take the lane; a
    /// task woken through a futex (a request worker) queues in the fair order among the short
    /// tasks, by deadline, placed never behind its clock and lat_fair_lead_us before it: ahead
    /// of hogs, interleaved with message crowds rather than before them, within
    /// lat_share_max_pct. On, such tasks go first as timers do: shorter request tails under
    /// overload, paid by the crowds and the hogs (docs/design.md has the figures).
    lat_lane_task_wakeups: Bool in 0..=1, default 0, bpf lat_lane_task_wakeups;

    /// How far before its LLC's clock a latency-critical task woken by another task is
    /// placed in the fair order, in microseconds (bounded by sleep_credit_us; unused with
    /// lat_lane_task_wakeups).
    ///
    /// Its place among the short tasks that woke with their sleep credit: 0 interleaves a
    /// request worker with a message crowd by deadline (best for the crowd and the hogs, with
    /// request tails of a crowd's round); the default 1000 puts it before most of them (under
    /// overload under half the request p99 of 0, for about three quarters of the hogs' work);
    /// larger, towards the lane's tails, paid by the hogs and the crowd.
    lat_fair_lead_us: Us in 0..=1_000_000, default 1000, bpf lat_fair_lead_ns;

    /// How much later a CPU's own first fair task may be due than another queue's of its LLC
    /// and still run first there, in microseconds.
    ///
    /// A waking task is queued on the CPU it was placed on, in that CPU's fair queue; a CPU
    /// runs its own queue's first task unless it finds one due earlier by more than this in a
    /// queue of another CPU of its LLC (it looks at two; all of them when its own is empty).
    /// Its own is on its runqueue with its cache; another's moves over (both runqueues
    /// locked, a cold cache). Larger takes fewer of those moves and lets the LLC's queues
    /// drift further apart in virtual time (a waiting task runs later by up to this much of
    /// weighted CPU time); 0 keeps the LLC's fair order as one queue would.
    locality_margin_us: Us in 0..=100_000, default 1000, bpf locality_margin_ns;
}

/// The spec of tunable `key`.
pub fn spec(key: &str) -> Option<&'static Spec> {
    TABLE.iter().find(|s| s.key == key)
}

/// Every tunable's key.
pub fn keys() -> Vec<&'static str> {
    TABLE.iter().map(|s| s.key).collect()
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

impl Tunables {
    /// Sets one tunable, checking its type and range (not the cross-field rules: see
    /// `validate`). On error nothing is changed and the message names the key, the value and
    /// what is allowed.
    pub fn set(&mut self, key: &str, value: &Value) -> Result<()> {
        let Some(spec) = spec(key) else {
            bail!("unknown tunable {key:?}; tunables: {}", keys().join(", "));
        };
        let v = spec.parse(value)?;
        if let Some(slot) = self.slot(key) {
            *slot = v;
        }
        Ok(())
    }

    /// The value of `key` as text.
    pub fn get(&self, key: &str) -> Option<String> {
        self.values()
            .into_iter()
            .find(|(s, _)| s.key == key)
            .map(|(s, v)| s.show(v))
    }

    /// Checks every value against its range and the cross-field rules; the error names the
    /// key, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        for (spec, value) in self.values() {
            if value < spec.min || value > spec.max {
                return Err(spec.range_error(value));
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
        let parts: Vec<String> = self
            .values()
            .into_iter()
            .map(|(s, v)| format!("{}={}", s.key, s.show(v)))
            .collect();
        write!(f, "{}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BPF side and the table agree: every value reaches its field in the unit the BPF
    /// side reads (a field missing on either side fails to compile in `to_bpf`), and the
    /// struct holds exactly one u64 per tunable plus the generation.
    #[test]
    fn table_and_bpf_struct_agree() {
        let t = Tunables::default();
        t.validate().unwrap();
        assert_eq!(
            std::mem::size_of::<brisk_tunables>(),
            8 * (TABLE.len() + 1),
            "struct brisk_tunables (intf.h) has a field the table lacks, or is not all u64"
        );
        // Each tunable set alone to a distinct value moves exactly one u64 of the BPF struct,
        // by that value in BPF units.
        for spec in TABLE {
            let mut u = Tunables::default();
            let v = if spec.unit == Unit::Bool {
                1 - spec.default
            } else if spec.default < spec.max {
                spec.default + 1
            } else {
                spec.default - 1
            };
            *u.slot(spec.key).unwrap() = v;
            let words = |b: brisk_tunables| -> Vec<u64> {
                // SAFETY: brisk_tunables is plain data made of u64 fields (checked above).
                let bytes = unsafe { plain::as_bytes(&b) };
                bytes
                    .chunks(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                    .collect()
            };
            let (a, b) = (words(t.to_bpf(7)), words(u.to_bpf(7)));
            let moved: Vec<usize> = (0..a.len()).filter(|&j| a[j] != b[j]).collect();
            assert_eq!(moved.len(), 1, "{}: {moved:?}", spec.key);
            assert_eq!(b[moved[0]], spec.unit.to_bpf(v), "{}", spec.key);
            assert!(moved[0] != a.len() - 1, "{} landed on gen", spec.key);
        }
        assert_eq!(t.to_bpf(7).gen, 7);
    }

    #[test]
    fn every_spec_is_documented_and_its_default_in_range() {
        for s in TABLE {
            assert!(s.min <= s.default && s.default <= s.max, "{}", s.key);
            assert!(!s.summary().is_empty(), "{}", s.key);
            assert!(
                s.help.lines().count() >= 3,
                "{}: say what it trades off",
                s.key
            );
        }
    }

    /// Every key through `set`: in range, at both ends, below, above, negative, wrong type.
    #[test]
    fn every_key_checked_at_both_ends_and_by_type() {
        // Baseline with the slice at its widest so the cross-field rule never interferes.
        let base = Tunables {
            slice_us: spec("slice_us").unwrap().max,
            slice_min_us: spec("slice_min_us").unwrap().min,
            ..Tunables::default()
        };
        for spec in TABLE.iter().filter(|s| s.unit != Unit::Bool) {
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
        assert_eq!(t.wakeup_preempt, 0);
        assert_eq!(t.get("wakeup_preempt").unwrap(), "false");
        t.set("wakeup_preempt", &Value::Bool(true)).unwrap();
        assert_eq!(t.wakeup_preempt, 1);
        for bad in [Value::Int(1), Value::Str("maybe".into())] {
            let msg = t.set("wakeup_preempt", &bad).unwrap_err().to_string();
            assert!(msg.contains("wakeup_preempt"), "{msg}");
        }
        let msg = t.set("slice", &Value::Int(5000)).unwrap_err().to_string();
        assert!(
            msg.contains("unknown tunable \"slice\"") && msg.contains("slice_us"),
            "{msg}"
        );
        assert_eq!(keys().len(), TABLE.len());
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
