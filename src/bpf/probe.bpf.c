/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk probe: the latency probes alone, for whatever scheduler runs (the kernel's default
 * included), without sched_ext. `scx_brisk probe` loads this object; it needs only BTF and
 * tracepoints, so it also runs on kernels without sched_ext.
 *
 * Same histograms as the scheduler's own probes (lat_record.bpf.h) for tasks of the fair
 * classes (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_EXT: what a sched_ext scheduler would
 * run), classified short or hog by the same burst rule as the policy (policy.h), with the
 * burst measured here from context switches:
 * - wakeup: sched_waking / sched_wakeup_new -> switched in;
 * - preempted: switched out while still runnable -> switched in again.
 * (The third kind, dispatch, is scx_brisk's own queueing and stays empty here.)
 */
/* Not scx/common.bpf.h: it brings a program that needs a sched_ext kernel to load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "intf.h"
#include "policy.h"
#include "lat_record.bpf.h"

char _license[] SEC("license") = "GPL";

/* A task whose average burst is under this counts as short (the policy's short_burst_ns). */
const volatile u64 short_burst_ns = BRISK_DFL_SHORT_BURST_NS;
/*
 * The burst cap (what one burst counts in the average at most) and the average's smoothing are
 * the policy's defaults, fixed: the probe classifies as a scx_brisk started without options
 * would, and offers only the border (--short-burst-us) to change.
 */
static const u64 burst_cap_ns = BRISK_DFL_BURST_CAP_NS;
static const u32 burst_ewma_shift = BRISK_DFL_BURST_EWMA_SHIFT;

struct probe_task {
	struct brisk_lat_stamps lat; /* enq_at stays 0: no dispatch queues to see here */
	u64 started_at;
	u64 avg_burst_ns;
	u64 cur_burst_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct probe_task);
} probe_tasks SEC(".maps");

/* The classes a sched_ext scheduler runs: SCHED_NORMAL 0, BATCH 3, IDLE 5, EXT 7. */
static bool fair_class(const struct task_struct *p)
{
	u32 policy = p->policy;

	return p->pid && (policy == 0 || policy == 3 || policy == 5 || policy == 7);
}

static struct probe_task *task_of(struct task_struct *p)
{
	struct probe_task *t;

	if (!fair_class(p))
		return NULL;
	t = bpf_task_storage_get(&probe_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	/* A task seen for the first time starts on the border, as in the policy. */
	if (t && !t->avg_burst_ns)
		t->avg_burst_ns = short_burst_ns;
	return t;
}

static int mark_woken(struct task_struct *p)
{
	struct probe_task *t = task_of(p);

	if (t)
		t->lat.wake_at = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(probe_wakeup, struct task_struct *p)
{
	return mark_woken(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(probe_wakeup_new, struct task_struct *p)
{
	return mark_woken(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	u64 now = bpf_ktime_get_ns();
	struct probe_task *t;
	bool is_short, runnable;

	t = task_of(prev);
	if (t) {
		if (t->started_at && now > t->started_at)
			t->cur_burst_ns += now - t->started_at;
		t->started_at = 0;
		runnable = preempt || prev_state == 0 /* TASK_RUNNING */;
		brisk_lat_switched_out(&t->lat, runnable, now);
		/* Going to sleep: the burst is complete. */
		if (!runnable) {
			t->avg_burst_ns = brisk_burst_avg(
				t->avg_burst_ns, t->cur_burst_ns, burst_ewma_shift,
				brisk_burst_sample_cap(burst_cap_ns, short_burst_ns));
			t->cur_burst_ns = 0;
		}
	}

	t = task_of(next);
	if (t) {
		t->started_at = now;
		is_short = brisk_is_short(brisk_effective_burst(t->avg_burst_ns, t->cur_burst_ns),
					  short_burst_ns);
		lat_record(BRISK_LAT_WAKEUP, is_short, &t->lat.wake_at, now);
		lat_record(BRISK_LAT_PREEMPTED, is_short, &t->lat.preempt_at, now);
	}
	return 0;
}
