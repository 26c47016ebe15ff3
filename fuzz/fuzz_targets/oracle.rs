//! What the BPF side relies on, checked on the values it would be handed (`to_bpf`), written
//! out here rather than calling `Tunables::validate` again: a fuzz input that `validate`
//! wrongly accepts must fail this.

use scx_brisk::bpf_intf;
use scx_brisk::control::tunables::Tunables;

pub fn assert_bpf_safe(t: &Tunables) {
    let b = t.to_bpf(1);
    let ms = 1_000_000u64;
    // Microseconds to nanoseconds did not wrap.
    assert_eq!(b.slice_ns / 1000, t.slice_us, "{t:?}");
    assert_eq!(b.starve_ns / 1000, t.starve_us, "{t:?}");
    assert_eq!(b.burst_cap_ns / 1000, t.burst_cap_us, "{t:?}");
    // A slice is between 0.1 and 100 ms, its floor is positive and not above it.
    assert!((100_000..=100 * ms).contains(&b.slice_ns), "{b:?}");
    assert!(b.slice_min_ns > 0 && b.slice_min_ns <= b.slice_ns, "{b:?}");
    // A rescue comes before the kernel's watchdog fires (half of its timeout at most).
    let watchdog_ns = bpf_intf::brisk_consts_BRISK_TIMEOUT_MS as u64 * ms;
    assert!(b.starve_ns >= 10 * ms && b.starve_ns <= watchdog_ns / 2, "{b:?}");
    // The short border and the burst cap are positive; the average's shift is a small one.
    assert!(b.short_burst_ns > 0 && b.burst_cap_ns > 0, "{b:?}");
    assert!(b.burst_ewma_shift <= 8, "{b:?}");
    assert!(b.wakeup_preempt <= 1, "{b:?}");
    assert!(b.lat_lane_task_wakeups <= 1, "{b:?}");
    // The fair-order lead is set in microseconds and reaches BPF in ns (bounded there by the
    // sleep credit).
    assert_eq!(b.lat_fair_lead_ns / 1000, t.lat_fair_lead_us, "{t:?}");
}
