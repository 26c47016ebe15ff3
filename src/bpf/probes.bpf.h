/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: latency probes. Included by main.bpf.c so that they share the policy's task
 * storage (timestamps and the short/hog classification); the loader leaves them unloaded with
 * --no-latency-probes.
 *
 * Three delays are measured for every task scx_brisk runs (between ops.enable and ops.disable;
 * RT and other classes' tasks are left out), per class, into log-linear
 * per-CPU histograms (lat_hist.h) that userspace reads and differences:
 * - wakeup: sched_waking / sched_wakeup_new -> the task is switched in;
 * - preempted: switched out while still runnable -> switched in again;
 * - dispatch: scx_brisk put it on a DSQ (any path) -> switched in.
 * Timestamps never outlive a run of the task (lat_stamps.h).
 */
#include "lat_record.bpf.h"

static int mark_woken(struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (tctx && tctx->ours)
		tctx->lat.wake_at = bpf_ktime_get_ns();
	return 0;
}

/*
 * sched_waking fires as try_to_wake_up() starts, sched_wakeup once the task is queued; the
 * earlier one is the task's real wake time (a remote wakeup can sit in an IPI in between).
 */
SEC("tp_btf/sched_waking")
int BPF_PROG(brisk_tp_wakeup, struct task_struct *p)
{
	return mark_woken(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(brisk_tp_wakeup_new, struct task_struct *p)
{
	return mark_woken(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(brisk_tp_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	u64 now = bpf_ktime_get_ns();
	struct task_ctx *tctx;
	bool is_short;

	tctx = bpf_task_storage_get(&task_ctxs, prev, 0, 0);
	if (tctx && tctx->ours)
		brisk_lat_switched_out(&tctx->lat, preempt || prev_state == 0 /* TASK_RUNNING */,
				       now);

	tctx = bpf_task_storage_get(&task_ctxs, next, 0, 0);
	if (tctx && tctx->ours) {
		is_short = task_is_short(tctx);
		lat_record(BRISK_LAT_WAKEUP, is_short, &tctx->lat.wake_at, now);
		lat_record(BRISK_LAT_PREEMPTED, is_short, &tctx->lat.preempt_at, now);
		lat_record(BRISK_LAT_DISPATCH, is_short, &tctx->lat.enq_at, now);
	}
	return 0;
}
