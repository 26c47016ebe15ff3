//! The BPF side's decision counters, summed over CPUs.

use std::fmt;

use crate::bpf_intf::brisk_counters;

// SAFETY: brisk_counters is a plain C struct of u64 fields: any bytes are a valid value.
unsafe impl plain::Plain for brisk_counters {}

/// Each field of `struct brisk_counters`, in its order: the one list of the counters' names.
/// `names_match_the_struct` proves each name is the field at its place.
macro_rules! counter_names {
    ($($f:ident),+ $(,)?) => {
        pub const COUNTER_NAMES: &[&str] = &[$(stringify!($f)),+];

        #[cfg(test)]
        fn field_offsets() -> Vec<usize> {
            vec![$(std::mem::offset_of!(brisk_counters, $f)),+]
        }
    };
}

counter_names!(
    nr_direct_idle,
    nr_queued_shared,
    nr_queued_pinned,
    nr_idle_kicks,
    nr_short_wakeups,
    nr_preempts,
    nr_preempt_none,
    nr_dispatched,
    nr_stolen,
    nr_keep_running,
    nr_starve_rescues,
    nr_sync_affine,
    nr_sync_handoff,
    nr_wake_handoff,
    nr_wake_affine,
    nr_irq_wakeups,
    nr_cpu_released,
    nr_lat_wakeups,
    nr_lat_preempts,
    nr_ipi_preempts,
    nr_lat_deferred,
    nr_lat_no_burst,
    nr_lat_no_duty,
    nr_lat_demoted,
    nr_lat_fair,
    nr_balanced,
    nr_smt_spread,
    nr_last_requeued,
    nr_pin_rechecks,
    nr_fair_own,
    nr_fair_other,
    nr_unlisted_local,
    nr_lat_resumed,
    nr_resume_ahead,
    nr_lat_fair_deferred,
    nr_lat_stints,
    lat_run_ns,
    nr_hog_stints,
    hog_run_ns,
);

/// The counters, summed over CPUs.
#[derive(Debug, Clone, Copy)]
pub struct Counters(pub brisk_counters);

impl Default for Counters {
    fn default() -> Self {
        // SAFETY: all-zero is a valid brisk_counters (plain u64 fields).
        Self(unsafe { std::mem::zeroed() })
    }
}

impl Counters {
    /// Sums per-CPU copies of the counters as returned by a per-CPU map lookup.
    pub fn sum_percpu(values: &[Vec<u8>]) -> anyhow::Result<Self> {
        let mut total = Self::default();
        for bytes in values {
            let c: &brisk_counters = plain::from_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("malformed counters from the BPF map: {e:?}"))?;
            total.add(c);
        }
        Ok(total)
    }

    /// The counters as (name, value), in the order of `intf.h` (`COUNTER_NAMES`).
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        COUNTER_NAMES.iter().copied().zip(self.words()).collect()
    }

    /// The struct as its u64 words, in field order.
    fn words(&self) -> Vec<u64> {
        // SAFETY: brisk_counters is a plain C struct of u64 fields.
        unsafe { plain::as_bytes(&self.0) }
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap()))
            .collect()
    }

    fn add(&mut self, o: &brisk_counters) {
        let sum: Vec<u8> = self
            .words()
            .iter()
            .zip(Counters(*o).words())
            .flat_map(|(a, b)| a.wrapping_add(b).to_ne_bytes())
            .collect();
        plain::copy_from_bytes(&mut self.0, &sum).expect("the struct's own size");
    }

    /// The counters by name, for a stats snapshot.
    pub fn to_map(self) -> std::collections::BTreeMap<String, u64> {
        self.fields()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(c: &brisk_counters) -> Vec<u8> {
        // SAFETY: reading a plain C struct as bytes.
        unsafe { plain::as_bytes(c) }.to_vec()
    }

    #[test]
    fn sums_over_cpus_and_formats_every_field() {
        let mut a = Counters::default().0;
        a.nr_direct_idle = 1;
        a.nr_preempts = 5;
        let mut b = Counters::default().0;
        b.nr_direct_idle = 2;
        b.nr_keep_running = 7;
        let total = Counters::sum_percpu(&[bytes(&a), bytes(&b)]).unwrap();
        assert_eq!(total.0.nr_direct_idle, 3);
        assert_eq!(total.0.nr_preempts, 5);
        assert_eq!(total.0.nr_keep_running, 7);
        let text = total.to_string();
        assert!(text.starts_with("nr_direct_idle=3 "), "{text}");
        assert!(text.contains(" nr_keep_running=7 "), "{text}");
        assert!(text.ends_with("hog_run_ns=0"), "{text}");
        // One name=value per u64 field of the BPF struct: a field added to intf.h but not
        // to fields() fails here.
        assert_eq!(
            text.split(' ').count(),
            std::mem::size_of::<brisk_counters>() / 8
        );
        assert_eq!(total.to_map()["nr_keep_running"], 7);
    }

    /// The names are the struct's fields in order, and cover all of it.
    #[test]
    fn names_match_the_struct() {
        let offsets = field_offsets();
        assert_eq!(
            offsets,
            (0..offsets.len()).map(|i| i * 8).collect::<Vec<_>>()
        );
        assert_eq!(
            COUNTER_NAMES.len() * 8,
            std::mem::size_of::<brisk_counters>()
        );
    }

    #[test]
    fn short_buffer_is_an_error() {
        assert!(Counters::sum_percpu(&[vec![0u8; 3]]).is_err());
    }
}
