/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: the latency probes, one implementation for both BPF objects: the scheduler
 * (main.bpf.c, where they use the policy's own task storage, burst tracking and
 * classification; the loader leaves them unloaded with --no-latency-probes) and the standalone
 * probe (probe.bpf.c, `scx_brisk probe`, which measures whatever scheduler runs).
 *
 * Three delays are measured per task class into log-linear per-CPU histograms (lat_hist.h)
 * that userspace reads and differences:
 * - wakeup: sched_waking / sched_wakeup_new -> the task is switched in;
 * - preempted: switched out while still runnable -> switched in again;
 * - dispatch: scx_brisk put it on a DSQ (any path) -> switched in (empty in the standalone
 *   probe, which sees no queues).
 * Timestamps never outlive a run of the task (lat_stamps.h).
 *
 * The object that includes this defines, before it:
 * - probed_task(p, &lat, &burst): false for a task it does not measure, else true with the
 *   task's timestamps and burst tracker (policy.h);
 * - PROBES_SWITCH_TRACEPOINT: 1 to see context switches from the sched_switch tracepoint (the
 *   standalone object), 0 when the object calls probes_switched_out() and probes_switched_in()
 *   itself (the scheduler, from ops.stopping and ops.running: the same moments, with the
 *   task's context in hand, so no second program and task-storage lookups on every switch;
 *   a running task whose nice, affinity or cgroup changes passes through both callbacks
 *   without a switch, as not runnable: its stamps are cleared and no sample is added);
 * - PROBES_TRACK_BURSTS: 1 when the probes track bursts at each context switch (the standalone
 *   object), 0 when the policy does in ops.running/ops.stopping;
 * - probes_short_burst_ns, probes_burst_shift, probes_burst_cap_ns: the classification's
 *   border, and the average's smoothing and sample cap (brisk_burst_sleep);
 * - with PROBES_SWITCH_TRACEPOINT, probes_task_off(p, now) and probes_task_on(p, prev,
 *   is_short, burst_ns, waited_ns, now): per-task figures as a task leaves and takes a CPU
 *   (`scx_brisk top`).
 */
#ifndef __BRISK_PROBES_BPF_H
#define __BRISK_PROBES_BPF_H

#include "lat_record.bpf.h"

#if !defined(PROBES_SWITCH_TRACEPOINT) || !defined(PROBES_TRACK_BURSTS)
#error "define PROBES_SWITCH_TRACEPOINT and PROBES_TRACK_BURSTS before including probes.bpf.h"
#endif

static __always_inline int probes_mark_woken(struct task_struct *p)
{
	struct brisk_lat_stamps *lat;
	struct brisk_burst *burst;

	if (probed_task(p, &lat, &burst))
		lat->wake_at = bpf_ktime_get_ns();
	return 0;
}

/*
 * sched_waking fires as try_to_wake_up() starts, sched_wakeup once the task is queued; the
 * earlier one is the task's real wake time (a remote wakeup can sit in an IPI in between).
 */
SEC("tp_btf/sched_waking")
int BPF_PROG(brisk_tp_wakeup, struct task_struct *p)
{
	return probes_mark_woken(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(brisk_tp_wakeup_new, struct task_struct *p)
{
	return probes_mark_woken(p);
}

/*
 * A context switch, @prev's side: it left its CPU at @now, still @runnable (preempted, its
 * slice over) or going to sleep.
 */
static __always_inline void probes_switched_out(struct brisk_lat_stamps *lat,
						struct brisk_burst *burst, bool runnable, u64 now)
{
	brisk_lat_switched_out(lat, runnable, now);
	if (PROBES_TRACK_BURSTS) {
		brisk_burst_stop(burst, now);
		/* Going to sleep: the burst is complete. */
		if (!runnable) {
			brisk_burst_sleep(burst, probes_burst_shift, probes_burst_cap_ns);
			brisk_burst_wake(burst);
		}
	}
}

/*
 * A context switch, @next's side: it takes a CPU at @now. Records its delays; returns the
 * wakeup's (0 when it was not woken since it last ran) and whether it counts as short.
 */
static __always_inline u64 probes_switched_in(struct brisk_lat_stamps *lat,
					      struct brisk_burst *burst, u64 now, bool *is_short)
{
	u64 waited;

	if (PROBES_TRACK_BURSTS)
		brisk_burst_start(burst, now);
	*is_short = brisk_is_short(brisk_burst_now(burst), probes_short_burst_ns);
	waited = lat_record(BRISK_LAT_WAKEUP, *is_short, &lat->wake_at, now);
	lat_record(BRISK_LAT_PREEMPTED, *is_short, &lat->preempt_at, now);
	lat_record(BRISK_LAT_DISPATCH, *is_short, &lat->enq_at, now);
	return waited;
}

#if PROBES_SWITCH_TRACEPOINT
SEC("tp_btf/sched_switch")
int BPF_PROG(brisk_tp_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	bool runnable = preempt || prev_state == 0 /* TASK_RUNNING */, is_short;
	u64 now = bpf_ktime_get_ns(), waited;
	struct brisk_lat_stamps *lat;
	struct brisk_burst *burst;

	if (probed_task(prev, &lat, &burst)) {
		probes_switched_out(lat, burst, runnable, now);
		probes_task_off(prev, now);
	}
	if (probed_task(next, &lat, &burst)) {
		waited = probes_switched_in(lat, burst, now, &is_short);
		probes_task_on(next, prev, is_short, brisk_burst_now(burst), waited, now);
	}
	return 0;
}
#endif

#endif /* __BRISK_PROBES_BPF_H */
