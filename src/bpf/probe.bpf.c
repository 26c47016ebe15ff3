/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk probe: the latency probes alone, for whatever scheduler runs (the kernel's default
 * included), without sched_ext. `scx_brisk probe` loads this object; it needs only BTF and
 * tracepoints, so it also runs on kernels without sched_ext.
 *
 * The same probes as the scheduler's own (probes.bpf.h), for tasks of the fair classes
 * (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_EXT: what a sched_ext scheduler would run),
 * classified short or hog by the same burst tracker and rule as the policy (policy.h), with
 * the bursts measured here from context switches.
 */
/* Not scx/common.bpf.h: it brings a program that needs a sched_ext kernel to load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "intf.h"
#include "policy.h"
#include "lat_stamps.h"
#include "lat_record.bpf.h"

char _license[] SEC("license") = "GPL";

/*
 * The classification's parameters, set by the loader (probe.rs): the border from
 * --short-burst-us, the burst cap and the average's smoothing from the policy's defaults
 * (src/tunables.rs), so the probe classifies as a scx_brisk started without options would.
 */
const volatile u64 short_burst_ns = 1;
const volatile u64 burst_cap_ns = 1;
const volatile u32 burst_ewma_shift;

struct probe_task {
	struct brisk_lat_stamps lat; /* enq_at stays 0: no dispatch queues to see here */
	struct brisk_burst burst;
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

/* probes.bpf.h: every task of the fair classes is measured. */
static __always_inline bool probed_task(struct task_struct *p, struct brisk_lat_stamps **lat,
					struct brisk_burst **burst)
{
	struct probe_task *t;

	if (!fair_class(p))
		return false;
	t = bpf_task_storage_get(&probe_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t)
		return false;
	/* A task seen for the first time starts on the border, as in the policy. */
	if (!t->burst.avg_ns)
		t->burst.avg_ns = short_burst_ns;
	*lat = &t->lat;
	*burst = &t->burst;
	return true;
}

/* `scx_brisk top` turns on the per-task figures (intf.h, struct brisk_top_task). */
const volatile bool top_on;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BRISK_TOP_MAX_TASKS);
	__type(key, u32);
	__type(value, struct brisk_top_task);
} top_tasks SEC(".maps");

/* A zeroed entry to insert from (one is larger than the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct brisk_top_task);
} top_blank SEC(".maps");

static __always_inline void probes_task_off(struct task_struct *p, u64 now)
{
	u32 pid = p->pid;
	struct brisk_top_task *t;

	if (!top_on || !(t = bpf_map_lookup_elem(&top_tasks, &pid)) || !t->on_at)
		return;
	t->run_ns += now - t->on_at;
	t->on_at = 0;
}

/*
 * @p takes a CPU from @prev after waiting @waited_ns since its wakeup (0: not a wakeup). The
 * wait is put down to @prev, the task it waited behind last, in the BRISK_TOP_NR_BEHIND
 * entries that cost it most (a new one replaces the smallest if it cost more).
 */
static __always_inline void probes_task_on(struct task_struct *p, struct task_struct *prev,
					   bool is_short, u64 burst_ns, u64 waited_ns, u64 now)
{
	u32 pid = p->pid, zero = 0, i, min = 0;
	struct brisk_top_task *t, *blank;
	struct brisk_top_behind *b;

	if (!top_on)
		return;
	t = bpf_map_lookup_elem(&top_tasks, &pid);
	if (!t) {
		blank = bpf_map_lookup_elem(&top_blank, &zero);
		if (!blank)
			return;
		bpf_map_update_elem(&top_tasks, &pid, blank, BPF_NOEXIST);
		if (!(t = bpf_map_lookup_elem(&top_tasks, &pid)))
			return;
	}
	t->on_at = now;
	t->is_short = is_short;
	t->burst_ns = burst_ns;
	/* Named when first seen and at each wakeup (an exec renames it). */
	if (!t->comm[0] || waited_ns) {
		t->tgid = p->tgid;
		bpf_probe_read_kernel_str(t->comm, sizeof(t->comm), p->comm);
	}
	if (!waited_ns)
		return;
	hist_add(&t->wakeup, waited_ns);
	bpf_for (i, 0, BRISK_TOP_NR_BEHIND) {
		b = &t->behind[i];
		if (b->count && b->pid == prev->pid) {
			b->wait_ns += waited_ns;
			b->count++;
			return;
		}
		if (b->wait_ns < t->behind[min].wait_ns)
			min = i;
	}
	b = &t->behind[min];
	if (b->count && b->wait_ns >= waited_ns)
		return;
	b->pid = prev->pid;
	b->wait_ns = waited_ns;
	b->count = 1;
	bpf_probe_read_kernel_str(b->comm, sizeof(b->comm), prev->comm);
}

#define PROBES_TRACK_BURSTS 1
/* Context switches are seen from the sched_switch tracepoint. */
#define PROBES_SWITCH_TRACEPOINT 1
#define probes_short_burst_ns	 short_burst_ns
#define probes_burst_shift	 burst_ewma_shift
#define probes_burst_cap_ns	 brisk_burst_sample_cap(burst_cap_ns, short_burst_ns)
#include "probes.bpf.h"
