//! The BPF side's decision counters, summed over CPUs.

use std::fmt;

use crate::bpf_intf::brisk_counters;

// SAFETY: brisk_counters is a plain C struct of u64 fields: any bytes are a valid value.
unsafe impl plain::Plain for brisk_counters {}

/// Names and values of the counters, in the order of `intf.h`.
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

    pub fn fields(&self) -> [(&'static str, u64); 22] {
        let c = &self.0;
        [
            ("nr_direct_idle", c.nr_direct_idle),
            ("nr_queued_shared", c.nr_queued_shared),
            ("nr_queued_pinned", c.nr_queued_pinned),
            ("nr_idle_kicks", c.nr_idle_kicks),
            ("nr_short_wakeups", c.nr_short_wakeups),
            ("nr_preempts", c.nr_preempts),
            ("nr_preempt_none", c.nr_preempt_none),
            ("nr_dispatched", c.nr_dispatched),
            ("nr_stolen", c.nr_stolen),
            ("nr_keep_running", c.nr_keep_running),
            ("nr_starve_rescues", c.nr_starve_rescues),
            ("nr_sync_affine", c.nr_sync_affine),
            ("nr_sync_handoff", c.nr_sync_handoff),
            ("nr_wake_handoff", c.nr_wake_handoff),
            ("nr_cpu_released", c.nr_cpu_released),
            ("nr_lat_wakeups", c.nr_lat_wakeups),
            ("nr_lat_preempts", c.nr_lat_preempts),
            ("nr_lat_deferred", c.nr_lat_deferred),
            ("nr_lat_no_burst", c.nr_lat_no_burst),
            ("nr_lat_no_duty", c.nr_lat_no_duty),
            ("nr_hog_stints", c.nr_hog_stints),
            ("hog_run_ns", c.hog_run_ns),
        ]
    }

    fn add(&mut self, o: &brisk_counters) {
        let c = &mut self.0;
        c.nr_direct_idle += o.nr_direct_idle;
        c.nr_queued_shared += o.nr_queued_shared;
        c.nr_queued_pinned += o.nr_queued_pinned;
        c.nr_idle_kicks += o.nr_idle_kicks;
        c.nr_short_wakeups += o.nr_short_wakeups;
        c.nr_preempts += o.nr_preempts;
        c.nr_preempt_none += o.nr_preempt_none;
        c.nr_dispatched += o.nr_dispatched;
        c.nr_stolen += o.nr_stolen;
        c.nr_keep_running += o.nr_keep_running;
        c.nr_starve_rescues += o.nr_starve_rescues;
        c.nr_sync_affine += o.nr_sync_affine;
        c.nr_sync_handoff += o.nr_sync_handoff;
        c.nr_wake_handoff += o.nr_wake_handoff;
        c.nr_cpu_released += o.nr_cpu_released;
        c.nr_lat_wakeups += o.nr_lat_wakeups;
        c.nr_lat_preempts += o.nr_lat_preempts;
        c.nr_lat_deferred += o.nr_lat_deferred;
        c.nr_lat_no_burst += o.nr_lat_no_burst;
        c.nr_lat_no_duty += o.nr_lat_no_duty;
        c.nr_hog_stints += o.nr_hog_stints;
        c.hog_run_ns += o.hog_run_ns;
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

    #[test]
    fn short_buffer_is_an_error() {
        assert!(Counters::sum_percpu(&[vec![0u8; 3]]).is_err());
    }
}
