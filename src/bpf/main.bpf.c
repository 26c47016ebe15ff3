/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: a weighted-vruntime scheduler that favours short-running tasks.
 *
 * Every task has a vruntime that advances with its runtime scaled by its weight (nice, shared
 * out by its cgroups' cpu.weight as CFS does: cg_refresh_weight). Tasks are queued by
 * deadline = vruntime + (capped, weighted) burst, where the burst is the CPU time a task uses
 * between sleeps, averaged per task. Tasks that run briefly and sleep therefore sort
 * ahead of CPU hogs with the same vruntime, while a hog's deadline stays within burst_cap of its
 * fair position, so it keeps its weighted share and is never starved.
 *
 * Placement: a waking task goes straight to an idle CPU when there is one (the kernel's
 * topology-aware pick: previous CPU first, then SMT/LLC siblings). Otherwise it is queued on
 * the deadline-ordered fair DSQ of the CPU it was placed on, which the CPUs of its LLC share
 * out in dispatch (tasks that may run on one CPU only use that CPU's pinned DSQ).
 *
 * Latency-critical wakeups (policy.h, brisk_is_lat_crit: tasks woken by a timer, an interrupt
 * or a futex rather than by a pipe partner, whose bursts fit in two slices) from a timer or an
 * interrupt skip the fair queue: they preempt a CPU running a hog, or wait in their LLC's
 * latency queue, which CPUs serve first unless the lane is over its share. A crowd of short
 * message passers therefore cannot stand between a timer-driven task and its CPU. Those a task
 * wakes (a futex hand-off to a request worker) queue in the fair order instead, placed never
 * behind their clock (brisk_lat_fair_vruntime): ahead of hogs, interleaved with the crowd
 * (lat_lane_task_wakeups, docs/design.md).
 */
#include <scx/common.bpf.h>
#include <bpf_experimental.h>
#include "intf.h"
#include "policy.h"
#include "lat_stamps.h"

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);

/* Topology, filled in by the loader from scx_utils::Topology before load. */
const volatile u32 nr_cpu_ids_seen = 1;
const volatile u32 nr_llcs = 1;
const volatile u32 cpu_llc[BRISK_MAX_CPUS];
/* Each LLC's NUMA node: an idle CPU takes work from its own node's LLCs first. */
const volatile u32 llc_node[BRISK_MAX_LLCS];
const volatile u32 llc_nr_cpus[BRISK_MAX_LLCS];
/* Each LLC's CPUs, listed together: llc_nr_cpus[llc] of them from llc_first_cpu[llc]. */
const volatile u32 llc_first_cpu[BRISK_MAX_LLCS];
const volatile u32 llc_cpu_list[BRISK_MAX_CPUS];
/* 1 for a CPU in the loaded topology: one that comes online later is in no LLC's list. */
const volatile u8 cpu_listed[BRISK_MAX_CPUS];
/*
 * Each CPU's SMT sibling (on a core of more than two threads, the next one), itself without
 * SMT: a hog on a core whose sibling is busy moves to a whole idle core (smt_contended).
 */
const volatile u32 cpu_sibling[BRISK_MAX_CPUS];

/*
 * Testing only (--debug-stall-hogs, hidden): hogs are parked in a DSQ that is never
 * dispatched, so the kernel's watchdog ejects the scheduler. Proves that an ejection is
 * reported and that --restart-on-error works.
 */
const volatile bool debug_stall_hogs;

/*
 * The latency probes (probes.bpf.h) are on: their wakeup tracepoints are loaded, and the
 * queueing and switch callbacks take and record their timestamps. False with
 * --no-latency-probes, so that "off" pays for no clock reads either.
 */
const volatile bool probes_on = true;

/* Probe timestamp: now, or 0 (nothing pending) when the probes are off. */
static u64 probe_stamp(void)
{
	return probes_on ? bpf_ktime_get_ns() : 0;
}

/*
 * The policy's tunables (see intf.h), read on every decision and changed while the scheduler
 * runs (scx_brisk ctl, policy files, the auto-tuner); the loader fills slot 0 before loading
 * (src/tunables.rs has the defaults). Two copies: the loader writes the one not
 * in use and then flips tun_active, so a change of several keys takes effect together and no
 * field is ever read half-written (only a decision running across the flip itself may read
 * some fields from each set). The loader never writes the active copy.
 */
struct brisk_tunables tun_slots[2] SEC(".data");
volatile u32 tun_active;
#define tun (tun_slots[tun_active & 1])

/* The generation of the tunables the policy last ran with: lets the loader confirm a change. */
u64 tun_gen_seen;

/*
 * What the policy keeps per LLC. Written on hot paths by that LLC's CPUs and read by the
 * others (the balancer, stealing), so each LLC's fields sit on a cache line of their own:
 * in a plain array, eight LLCs would share one line and every write on one LLC would take
 * the line from the other seven.
 */
struct llc_ctx {
	/*
	 * The virtual clock: the largest vruntime of a task its CPUs started from its own fair
	 * queue, never going back. Tasks run there in deadline order, so it tracks the low end
	 * of the LLC's runnable vruntimes. Tasks started out of that order (latency-critical
	 * ones, tasks stolen from another LLC, whose vruntime follows that LLC's clock) do not
	 * move it.
	 */
	u64 vtime;
	/*
	 * The latency-critical lane's debt to the fair queue (brisk_lat_debt): how far the lane
	 * has run beyond lat_share_max_pct while fair tasks waited. Written at a stint's end
	 * only while it changes (both lanes busy); a lost update between CPUs shifts the share
	 * by a stint.
	 */
	u64 lat_debt;
	/*
	 * The runnable load: the summed weights of the runnable tasks whose vruntime follows its
	 * clock (load_track). An LLC's fair queues are shared out only among its own CPUs;
	 * dispatch moves work toward the LLC with less load per CPU (balance_llcs), so that
	 * equal tasks get equal shares and nice weights hold machine-wide. Kept only with more
	 * than one LLC.
	 */
	u64 runnable_load;
	/* Tasks waiting when a slice was last handed out here: scales deadline offsets. */
	u64 nr_waiting;
	/* The slice last handed out here, for the stats. */
	u64 slice_ns;
	/* Tasks in its latency and fair queues (wait_track), a hint read without a kfunc call. */
	u64 nr_lat_waiting;
	u64 nr_fair_waiting;
} __attribute__((aligned(64)));

struct llc_ctx llc_ctxs[BRISK_MAX_LLCS];

struct task_ctx {
	u64 vruntime;
	struct brisk_burst burst; /* CPU time between sleeps: average and current (policy.h) */
	u64 queued_at;		  /* when it was last put on one of our DSQs (bpf_ktime_get_ns) */
	/* Latency probes' timestamps (bpf_ktime_get_ns), 0 when not pending. */
	struct brisk_lat_stamps lat;
	u64 last_woke_at;  /* when it last woke (scx_bpf_now), 0 before its first wakeup */
	u64 avg_period_ns; /* average time between wakeups (brisk_period_avg) */
	/* Between ops.enable and ops.disable: run by scx_brisk, so the probes measure it. */
	u32 ours;
	/*
	 * ops.enable ran for it before: it comes back from another class (sched_setscheduler, a
	 * real-time priority-inheritance boost), with its vruntime and burst history.
	 */
	u32 enabled_before;
	/*
	 * This wakeup is synchronous: the waker is about to sleep and free its CPU. Set by
	 * ops.select_cpu, cleared when the task sleeps, so a wakeup whose select_cpu the kernel
	 * skips (a task allowed on one CPU) never sees the last one's.
	 */
	u32 sync_wakeup;
	/*
	 * Its return to runnable was accounted (task_runnable): by ops.select_cpu or else
	 * ops.enqueue. Cleared when it sleeps or a change takes it off its queue, so the next
	 * ops.enqueue accounts it again when no ops.select_cpu did.
	 */
	u32 runnable;
	/* This wakeup is latency-critical (brisk_is_lat_crit); cleared when it is queued again. */
	u32 lat_crit;
	u32 lat_light;	     /* ... and light (BRISK_LAT_LIGHT_DUTY_PCT), set as it wakes */
	u64 lat_key;	     /* its key in the latency queue (brisk_lat_key), set as it wakes */
	u64 lat_woke_lag_ns; /* how far behind its clock it woke (brisk_lat_demoted_vruntime) */
	/*
	 * This wakeup would be latency-critical but came from a task (a futex hand-off) with
	 * lat_lane_task_wakeups off: it queues in the fair order, placed as a latency-critical
	 * wakeup is (brisk_lat_fair_vruntime), and what it runs counts against the lane's share
	 * until it ran what a wakeup buys (brisk_lane_stint). Set as it wakes; 0 when the lane
	 * is over its share (then it is placed as any sleeper) or once it ran past that.
	 */
	u32 lat_fair;
	/*
	 * Its next start does not move its LLC's clock: it was run out of the fair order by the
	 * starvation guard, or it is a new task placed past the clock (brisk_new_vruntime).
	 */
	u32 off_clock;
	u32 llc;	 /* the LLC whose clock its vruntime follows */
	u32 load_llc;	 /* the LLC whose runnable_load counts it, while runnable */
	u32 load_weight; /* the weight counted there, 0 while not runnable */
	/* Its cgroup's level below the root; 0 (the root cgroup) leaves cgroup weights out. */
	u32 cg_level;
	u32 cg_counted;	 /* the weight it added to its cgroup's load (cg_ctx), 0 when none */
	u64 weight_fp;	 /* its weight with its cgroups' shares folded in (task_weight_fp) */
	u32 weight_seen; /* p->scx.weight its vruntime is charged at (brisk_reweight_vruntime) */
	/* The waiting count that counts it (wait_track): BRISK_WAIT_* and the LLC or CPU. */
	u32 wait_kind;
	u32 wait_idx;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/*
 * What the policy keeps per cgroup (with the cpu controller) for cpu.weight: its weight and
 * its load, the summed weights of its runnable tasks and active child cgroups
 * (brisk_cg_level_weight). The lock keeps a change of load and the weight it is counted
 * with in the parent together, so a weight change racing a wakeup leaves no sum off.
 */
struct cg_ctx {
	struct bpf_spin_lock lock;
	s64 load;
	u32 weight;
	u32 dead; /* offline: no longer counted in its parent */
};

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cg_ctx);
} cg_ctxs SEC(".maps");

/* What each CPU runs, read by other CPUs looking for a preemption victim. */
struct cpu_ctx {
	u64 running_dl;	     /* deadline of the current task, 0 when idle or not ours */
	u32 running_short;   /* current task is short: no victim for a preempting short hog-waker */
	u32 running_lat;     /* current task is latency-critical: no victim for anyone */
	u64 last_scan_at;    /* last starvation scan of this CPU's queues */
	u64 last_balance_at; /* last look at the other LLCs' load (balance_llcs) */
	u32 rescued_last;    /* its last dispatch ran a starving task (rescue_any) */
	u64 nr_pinned_waiting; /* tasks in its pinned queue (wait_track) */
	u64 nr_fair_waiting;   /* tasks in its fair queue (wait_track) */
	u32 released;	       /* a higher class holds it (ops.cpu_release to ops.cpu_acquire) */
	u32 lat_preempted;     /* the lane preempted its fair task: that one resumes (lat_resume) */
	u64 slice_end_at;      /* when the current task's slice ends (scx_bpf_now's clock) */
	u64 resumed_dl;	       /* deadline of the fair task waiting to resume after the lane's */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BRISK_MAX_CPUS);
	__type(key, u32);
	__type(value, struct cpu_ctx);
} cpu_ctxs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct brisk_counters);
} counters SEC(".maps");

/* Each LLC's CPUs, for the idle pick (pick_idle_cpu); built by ops.init when there are two. */
struct llc_mask {
	struct bpf_cpumask __kptr *cpus;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BRISK_MAX_LLCS);
	__type(key, u32);
	__type(value, struct llc_mask);
} llc_masks SEC(".maps");

#define COUNT(field)                                                                  \
	do {                                                                          \
		u32 __zero = 0;                                                       \
		struct brisk_counters *__c = bpf_map_lookup_elem(&counters, &__zero); \
		if (__c)                                                              \
			__c->field++;                                                 \
	} while (0)

static struct task_ctx *lookup_task_ctx(const struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, (struct task_struct *)p, 0, 0);

	if (!tctx)
		scx_bpf_error("task_ctx missing for %s[%d]", p->comm, p->pid);
	return tctx;
}

static struct cpu_ctx *lookup_cpu_ctx(s32 cpu)
{
	u32 key = cpu;

	return bpf_map_lookup_elem(&cpu_ctxs, &key);
}

static u32 llc_of(s32 cpu)
{
	const volatile u32 *llc = MEMBER_VPTR(cpu_llc, [cpu]);

	/* MEMBER_VPTR bounds the index in a way the verifier can follow. */
	return llc ? *llc : 0;
}

/* Whether @cpu was online when the loader read the topology (in an LLC's list). */
static bool cpu_listed_in_topology(s32 cpu)
{
	const volatile u8 *listed = MEMBER_VPTR(cpu_listed, [cpu]);

	return listed && *listed;
}

static u32 llc_node_of(u32 llc)
{
	const volatile u32 *node = MEMBER_VPTR(llc_node, [llc]);

	return node ? *node : 0;
}

/* @cpu's fair queue: its LLC's other CPUs take from it too (fair_pick). */
static u64 fair_dsq(s32 cpu)
{
	return BRISK_FAIR_DSQ_BASE + cpu;
}

static u64 cpu_dsq(s32 cpu)
{
	return BRISK_CPU_DSQ_BASE + cpu;
}

static u64 lat_dsq(u32 llc)
{
	return BRISK_LAT_DSQ_BASE + llc;
}

/* @llc's own data, or NULL for an LLC id out of range. */
static struct llc_ctx *llc_ctx_of(u32 llc)
{
	return MEMBER_VPTR(llc_ctxs, [llc]);
}

/* @llc's virtual clock (llc_ctx.vtime), or NULL for an LLC id out of range. */
static u64 *llc_clock(u32 llc)
{
	struct llc_ctx *l = llc_ctx_of(llc);

	return l ? &l->vtime : NULL;
}

/*
 * How many tasks wait in each of our queues, for the hand-off paths that ask on every message
 * whether anything waits (nothing_waits_here). The exact count is a kfunc call that looks the
 * queue up in a hash table (scx_bpf_dsq_nr_queued), three of them per message; this count is
 * three plain loads. A task is counted from just before ops.enqueue inserts it into a queue
 * until it starts running, is queued anew or leaves scx_brisk (ops.running, ops.enqueue,
 * ops.disable). A queued task the kernel takes off its queue (a change of nice, affinity or
 * cgroup) is queued anew at once, so no ops.quiescent is needed for it: one callback less on
 * every sleep. So the count reads high while a task that dispatch moved to a CPU's local queue
 * has not started yet, or one taken off its queue is not back, and never low. A wrong read
 * costs a hand-off (a task waits one burst longer) or a fast path skipped, never a task:
 * dispatch, which must not miss one, asks the queues. scx_brisk checks after detach that
 * every count is back at zero.
 */
enum { BRISK_WAIT_NONE, BRISK_WAIT_LAT, BRISK_WAIT_FAIR, BRISK_WAIT_PINNED };

/*
 * Counts @delta tasks into the @kind queue of LLC (latency) or CPU (fair, pinned) @idx; a
 * CPU's fair queue is counted in its LLC's total as well. False for an index out of range.
 */
static bool wait_add(u32 kind, u32 idx, s64 delta)
{
	struct llc_ctx *l;
	struct cpu_ctx *c;

	if (kind == BRISK_WAIT_LAT) {
		if (!(l = llc_ctx_of(idx)))
			return false;
		__sync_fetch_and_add(&l->nr_lat_waiting, delta);
		return true;
	}
	if (!(c = lookup_cpu_ctx(idx)))
		return false;
	if (kind == BRISK_WAIT_PINNED) {
		__sync_fetch_and_add(&c->nr_pinned_waiting, delta);
		return true;
	}
	if (!(l = llc_ctx_of(llc_of(idx))))
		return false;
	__sync_fetch_and_add(&c->nr_fair_waiting, delta);
	__sync_fetch_and_add(&l->nr_fair_waiting, delta);
	return true;
}

/* @tctx's task no longer waits in our queues (it runs, sleeps, or is queued anew). */
static void wait_untrack(struct task_ctx *tctx)
{
	if (!tctx->wait_kind)
		return;
	wait_add(tctx->wait_kind, tctx->wait_idx, -1);
	tctx->wait_kind = BRISK_WAIT_NONE;
}

/* @tctx's task is about to be inserted into the @kind queue of LLC or CPU @idx. */
static void wait_track(struct task_ctx *tctx, u32 kind, u32 idx)
{
	wait_untrack(tctx);
	if (!wait_add(kind, idx, 1))
		return;
	tctx->wait_kind = kind;
	tctx->wait_idx = idx;
}

/*
 * Inserts @p into one of our queues: the @kind queue (BRISK_WAIT_*) of LLC (latency) or CPU
 * (fair, pinned) @idx, counted there (wait_track) from just before it is in it.
 */
static __always_inline void queue_task(struct task_struct *p, struct task_ctx *tctx, u32 kind,
				       u32 idx, u64 slice, u64 vtime, u64 enq_flags)
{
	u64 dsq_id = kind == BRISK_WAIT_PINNED ? cpu_dsq(idx)
		     : kind == BRISK_WAIT_LAT  ? lat_dsq(idx)
					       : fair_dsq(idx);

	wait_track(tctx, kind, idx);
	scx_bpf_dsq_insert_vtime(p, dsq_id, slice, vtime, enq_flags);
}

/* Whether a latency-critical task waits in @llc's queue (wait_add: a hint). */
static bool lat_waiting(u32 llc)
{
	struct llc_ctx *l = llc_ctx_of(llc);

	return l && l->nr_lat_waiting;
}

/* Whether a task waits in a fair queue of @llc's CPUs (wait_add: a hint). */
static bool fair_waiting(u32 llc)
{
	struct llc_ctx *l = llc_ctx_of(llc);

	return l && l->nr_fair_waiting;
}

/* Whether anything waits in @cpu's LLC queues or its pinned queue (wait_add: a hint). */
static bool queues_empty(s32 cpu)
{
	struct llc_ctx *l = llc_ctx_of(llc_of(cpu));
	struct cpu_ctx *c = lookup_cpu_ctx(cpu);

	return l && c && !l->nr_lat_waiting && !l->nr_fair_waiting && !c->nr_pinned_waiting;
}

static u64 clock_of(u32 llc)
{
	u64 *clock = llc_clock(llc);

	return clock ? *clock : 0;
}

static void load_add(u32 llc, u64 delta)
{
	struct llc_ctx *l = llc_ctx_of(llc);

	if (l)
		__sync_fetch_and_add(&l->runnable_load, delta);
}

/*
 * Keeps llc_ctx.runnable_load in step with @tctx's task: counted with @weight in the LLC it
 * follows while runnable (@on), nowhere otherwise. Idempotent: whatever it counted before is
 * taken out first.
 */
static void load_track(struct task_ctx *tctx, bool on, u32 weight)
{
	if (nr_llcs < 2)
		return;
	if (tctx->load_weight) {
		load_add(tctx->load_llc, -(u64)tctx->load_weight);
		tctx->load_weight = 0;
	}
	if (on) {
		tctx->load_llc = tctx->llc;
		tctx->load_weight = weight ? weight : 1;
		load_add(tctx->load_llc, tctx->load_weight);
	}
}

/*
 * The task is queued in @llc or starts on one of its CPUs: if it comes from another LLC, carry
 * its vruntime over to this LLC's clock, keeping its distance from the clock it followed up to
 * sleep_credit_ns either way (brisk_carry_vruntime); its load moves with it.
 */
static void follow_llc(struct task_ctx *tctx, u32 llc)
{
	if (tctx->llc == llc)
		return;
	tctx->vruntime = brisk_carry_vruntime(tctx->vruntime, clock_of(tctx->llc), clock_of(llc),
					      tun.sleep_credit_ns);
	tctx->llc = llc;
	if (tctx->load_weight)
		load_track(tctx, true, tctx->load_weight);
}

/*
 * cgroup cpu.weight (brisk_cg_level_weight). Only cgroups below the root are kept: the root
 * cgroup's tasks and the top level's cgroups share the machine at their own weights.
 */

/* The cg_ctx of @cgrp's ancestor at @level (@cgrp itself at its own), NULL if it has none. */
static struct cg_ctx *cg_ctx_at(struct cgroup *cgrp, u32 level)
{
	struct cgroup *anc = bpf_cgroup_ancestor(cgrp, level);
	struct cg_ctx *c;

	if (!anc)
		return NULL;
	c = bpf_cgrp_storage_get(&cg_ctxs, anc, 0, 0);
	bpf_cgroup_release(anc);
	return c;
}

/*
 * Adds @delta to @cgrp's load. A cgroup that becomes active or idle by it goes into or out of
 * its parent's load with its weight (brisk_cg_parent_delta), and so on up.
 */
static void cg_load_add(struct cgroup *cgrp, s64 delta)
{
	u32 i, lvl = cgrp->level, w, dead;
	struct cg_ctx *c;
	s64 old;

	bpf_for (i, 0, BRISK_CG_MAX_DEPTH) {
		if (!delta || i >= lvl || !(c = cg_ctx_at(cgrp, lvl - i)))
			break;
		bpf_spin_lock(&c->lock);
		old = c->load;
		c->load = old + delta;
		w = c->weight;
		dead = c->dead;
		bpf_spin_unlock(&c->lock);
		delta = dead ? 0 : brisk_cg_parent_delta(old, old + delta, w);
	}
}

/* Adds @delta to the load of @cgrp's parent, unless that is the root. */
static void cg_parent_add(struct cgroup *cgrp, s64 delta)
{
	struct cgroup *parent;

	if (!delta || cgrp->level < 2)
		return;
	parent = bpf_cgroup_ancestor(cgrp, cgrp->level - 1);
	if (!parent)
		return;
	cg_load_add(parent, delta);
	bpf_cgroup_release(parent);
}

/*
 * Counts @p's weight in its cgroup's load while it is runnable (@on), takes out what it counted
 * otherwise. @p must be the task the op runs for (scx_bpf_task_cgroup).
 */
static void cg_track(struct task_struct *p, struct task_ctx *tctx, bool on)
{
	u32 w = p->scx.weight ? p->scx.weight : 1;
	struct cgroup *cgrp;

	if (on ? tctx->cg_counted || !tctx->cg_level : !tctx->cg_counted)
		return;
	cgrp = scx_bpf_task_cgroup(p);
	if (!cgrp)
		return;
	cg_load_add(cgrp, on ? (s64)w : -(s64)tctx->cg_counted);
	tctx->cg_counted = on ? w : 0;
	bpf_cgroup_release(cgrp);
}

/*
 * Refreshes tctx->weight_fp: @p's weight times its cgroups' shares, from its own cgroup up
 * (brisk_cg_level_weight). @p must be the task the op runs for.
 */
static void cg_refresh_weight(struct task_struct *p, struct task_ctx *tctx)
{
	u64 fp = (u64)p->scx.weight << BRISK_WEIGHT_FP_SHIFT;
	struct cgroup *cgrp;
	struct cg_ctx *c;
	u32 i, lvl;

	if (!tctx->cg_level || !(cgrp = scx_bpf_task_cgroup(p)))
		return;
	lvl = cgrp->level;
	bpf_for (i, 0, BRISK_CG_MAX_DEPTH) {
		if (i >= lvl || !(c = cg_ctx_at(cgrp, lvl - i)))
			break;
		fp = brisk_cg_level_weight(fp, c->weight, c->load);
	}
	bpf_cgroup_release(cgrp);
	tctx->weight_fp = fp ? fp : 1;
}

/*
 * The weight @p's vruntime is charged with, in fixed point (BRISK_WEIGHT_FP_SHIFT): its nice
 * weight, shared out by its cgroups.
 */
static u64 task_weight_fp(const struct task_struct *p, const struct task_ctx *tctx)
{
	if (tctx->cg_level && tctx->weight_fp)
		return tctx->weight_fp;
	return (u64)p->scx.weight << BRISK_WEIGHT_FP_SHIFT;
}

/* ... rounded, for what scales with it (deadline offsets). */
static u32 task_weight(const struct task_struct *p, const struct task_ctx *tctx)
{
	return brisk_weight_of_fp(task_weight_fp(p, tctx));
}

static u64 task_burst(const struct task_ctx *tctx)
{
	return brisk_burst_now(&tctx->burst);
}

static bool task_is_short(const struct task_ctx *tctx)
{
	return brisk_is_short(task_burst(tctx), tun.short_burst_ns);
}

/* The longest average burst a latency-critical task may have (BRISK_LAT_BURST_SLICES). */
static u64 lat_burst_max_ns(void)
{
	return BRISK_LAT_BURST_SLICES * tun.slice_ns;
}

/* Whether a wakeup of @tctx's task (synchronous or not) is latency-critical. */
static bool wakes_lat_crit(const struct task_ctx *tctx, bool sync)
{
	return brisk_is_lat_crit(sync, tctx->burst.avg_ns, tctx->avg_period_ns, lat_burst_max_ns(),
				 tun.lat_duty_max_pct);
}

/* Whether @tctx's task is light as a latency-critical task (BRISK_LAT_LIGHT_DUTY_PCT). */
static bool lat_light(const struct task_ctx *tctx)
{
	return brisk_duty_pct(tctx->burst.avg_ns, tctx->avg_period_ns) <= BRISK_LAT_LIGHT_DUTY_PCT;
}

/*
 * Whether a latency-critical task, @light or busy, waits for @llc's fair queue: the lane has
 * run past its share (lat_share_max_pct) while fair tasks waited (llc_ctx.lat_debt,
 * brisk_lat_defer). Then it is not handed a CPU nor preempts one, and at a dispatch the fair
 * queue goes first.
 */
static bool lat_defers(u32 llc, bool light)
{
	struct llc_ctx *l = llc_ctx_of(llc);

	return l && brisk_lat_defer(l->lat_debt, BRISK_LAT_ALLOWANCE_SLICES * tun.slice_ns, light);
}

/* How many CPUs @llc has (at least 1). */
static u64 nr_cpus_of(u32 llc)
{
	const volatile u32 *nr = MEMBER_VPTR(llc_nr_cpus, [llc]);

	return nr && *nr ? *nr : 1;
}

/* The @k-th CPU of @llc (llc_cpu_list), or -1 past its last. */
static s32 llc_cpu(u32 llc, u32 k)
{
	const volatile u32 *first = MEMBER_VPTR(llc_first_cpu, [llc]);
	const volatile u32 *listed;

	if (k >= nr_cpus_of(llc) || !first || !(listed = MEMBER_VPTR(llc_cpu_list, [*first + k])))
		return -1;
	return *listed;
}

/* How many tasks wait in @cpu's LLC (as last seen) and how many CPUs it has. */
static void llc_load(s32 cpu, u64 *nr_waiting, u64 *nr_cpus)
{
	u32 llc = llc_of(cpu);
	struct llc_ctx *l = llc_ctx_of(llc);

	*nr_cpus = nr_cpus_of(llc);
	*nr_waiting = l ? l->nr_waiting : 0;
}

static u64 deadline_at(const struct task_struct *p, const struct task_ctx *tctx, u64 vruntime,
		       u64 burst, s32 cpu)
{
	u64 nr_waiting, nr_cpus;

	llc_load(cpu, &nr_waiting, &nr_cpus);
	return brisk_deadline_contended(vruntime, burst, tun.burst_cap_ns, task_weight(p, tctx),
					nr_waiting, nr_cpus);
}

static u64 task_deadline(const struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	return deadline_at(p, tctx, tctx->vruntime, task_burst(tctx), cpu);
}

/* Deadline of the task running now, counting the runtime of its current run. */
static u64 running_deadline(const struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	u64 ran = scx_bpf_now() - tctx->burst.started_at;
	u64 burst = brisk_effective_burst(tctx->burst.avg_ns, tctx->burst.cur_ns + ran);

	return deadline_at(p, tctx,
			   tctx->vruntime + brisk_scale_inverse_fp(ran, task_weight_fp(p, tctx)),
			   burst, cpu);
}

/*
 * Slice for @tctx's task about to run on @cpu: the base slice shrunk by the number of tasks
 * waiting there, but never less than short_burst_ns for a short task, so that its burst is
 * not cut at a tick and sent to the back of the queue (it sleeps before using it up anyway).
 */
static u64 task_slice_waiting(const struct task_ctx *tctx, s32 cpu, u64 waiting)
{
	u32 llc = llc_of(cpu);
	u64 slice = brisk_slice(tun.slice_ns, tun.slice_min_ns, waiting, nr_cpus_of(llc));
	struct llc_ctx *l = llc_ctx_of(llc);

	/* Shared by the LLC's CPUs: stored only when they change (no line bouncing). */
	if (l && l->nr_waiting != waiting)
		l->nr_waiting = waiting;
	if (l && l->slice_ns != slice)
		l->slice_ns = slice;
	return brisk_task_slice(slice, tctx && task_is_short(tctx), tun.short_burst_ns);
}

/* ... with the tasks that wait in @cpu's fair and pinned queues (wait_add). */
static u64 task_slice(const struct task_ctx *tctx, s32 cpu)
{
	struct llc_ctx *l = llc_ctx_of(llc_of(cpu));
	struct cpu_ctx *c = lookup_cpu_ctx(cpu);
	u64 waiting = l ? l->nr_fair_waiting : 0;

	if (c)
		waiting += c->nr_pinned_waiting;
	return task_slice_waiting(tctx, cpu, waiting);
}

/*
 * A latency-critical task's slice: the base slice, not shrunk by the queue, so that it
 * finishes the burst it qualified with rather than being cut at a tick and queued again as a
 * fair task behind the crowd.
 */
static u64 lat_slice(const struct task_ctx *tctx, s32 cpu, bool lat)
{
	u64 slice = task_slice(tctx, cpu);

	return lat && slice < tun.slice_ns ? tun.slice_ns : slice;
}

static bool is_pinned(const struct task_struct *p)
{
	return p->nr_cpus_allowed == 1 || is_migration_disabled(p);
}

/*
 * Whether @p may run on every CPU: its mask has all nr_cpu_ids bits set and migration is not
 * disabled (which narrows p->cpus_ptr to its CPU whatever the mask). Most tasks may, and for
 * them the cpumask tests (a kfunc call each, about a microsecond under emulation) are skipped.
 */
static bool runs_anywhere(const struct task_struct *p)
{
	return p->nr_cpus_allowed >= nr_cpu_ids_seen && !is_migration_disabled(p);
}

/* Whether @p may run on @cpu, without the cpumask test for a task that runs anywhere. */
static bool may_run_on(const struct task_struct *p, s32 cpu)
{
	return runs_anywhere(p) || bpf_cpumask_test_cpu(cpu, p->cpus_ptr);
}

/*
 * Queues @p on the local DSQ of the CPU ops.select_cpu returns, with @slice (@enq_flags
 * SCX_ENQ_HEAD: before a task waiting there to resume, lat_resume), stamped for the
 * latency probes: it runs there next, without ops.enqueue and ops.dispatch.
 */
static void insert_local(struct task_struct *p, struct task_ctx *tctx, u64 slice, u64 enq_flags)
{
	if (tctx)
		tctx->lat.enq_at = probe_stamp();
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
}

/*
 * No CPU is idle for a waking task, so it will wait in the fair queue of the CPU it is woken
 * on (its rq), which runs it unless another CPU of the LLC takes it first (fair_pick). The
 * waker's CPU (if the task may run there, in the same LLC) beats its previous one, which is
 * busy: the wakeup then needs no remote rq lock, and when the waker is about to sleep (a
 * request handed to a worker through a futex) that CPU takes the task without migrating it
 * from another rq. Under emulation that migration is tens of microseconds per wakeup.
 */
static s32 wake_affine_busy(const struct task_struct *p, s32 prev_cpu)
{
	s32 this_cpu = bpf_get_smp_processor_id();

	if (this_cpu != prev_cpu && llc_of(this_cpu) == llc_of(prev_cpu) && may_run_on(p, this_cpu))
		return this_cpu;
	return prev_cpu;
}

/*
 * Whether this runs in a task's own context: not in a hard or soft interrupt or an NMI.
 * bpf_in_task() tests the preempt count with masks compiled in from one kernel's layout, and
 * the layout moved (the hard IRQ count went from bit 16 to bit 24 when a count of disabled
 * interrupts took bits 16-23): on such a kernel it reads a timer interrupt as task context.
 * Every bit between the preemption count and PREEMPT_NEED_RESCHED is an interrupt level (or
 * interrupts disabled through that count) in both layouts, so test them all; the guest test
 * timer-wakeups checks that a timer-driven task's wakeups count as interrupts (nr_irq_wakeups).
 */
static bool in_task_context(void)
{
	return !(get_preempt_count() & 0x7fffff00);
}

/*
 * The task running here as it wakes another without SCX_WAKE_SYNC: its context, with this
 * wakeup ending one of its segments (brisk_burst_woke_other). NULL from an interrupt (a
 * timer's wakeup: the current task is whatever it interrupted) or for a task not ours.
 */
static struct task_ctx *waker_wakes(u64 now)
{
	struct task_ctx *w;

	if (!in_task_context()) {
		COUNT(nr_irq_wakeups);
		return NULL;
	}
	w = bpf_task_storage_get(&task_ctxs, bpf_get_current_task_btf(), 0, 0);
	if (!w || !w->ours)
		return NULL;
	brisk_burst_woke_other(&w->burst, now, tun.burst_ewma_shift,
			       brisk_burst_sample_cap(tun.burst_cap_ns, tun.short_burst_ns));
	return w;
}

/*
 * Whether the waker @w is about to sleep, as a thread that hands a request to a worker
 * through a futex and waits for the reply is. The kernel marks only pipe and socket wakeups
 * synchronous; this is the same bet for the others, made on how long the waker runs after it
 * wakes a task (its segments), not on its whole bursts: a request worker that fell behind and
 * finds the next request posted before it could sleep runs request after request in one long
 * burst, yet still hands each reply over within a short segment. Handing the reply's wakee
 * its CPU then makes it sleep before the next request comes. If the bet loses, the wakee
 * waits for the waker's slice on this CPU.
 */
static bool waker_is_short(const struct task_ctx *w, u64 now)
{
	return w && brisk_is_short(brisk_burst_segment_now(&w->burst, now), tun.short_burst_ns);
}

/* Nothing waits to run on @cpu (the CPU this runs on): not locally, nor in its queues. */
static bool nothing_waits_here(s32 cpu)
{
	return !scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL) && queues_empty(cpu);
}

/*
 * A wakeup of @p by @w, a task that sleeps soon after it runs (brisk_sleeps_soon): @p goes to
 * this CPU's local DSQ, before any idle CPU is tried, if nothing waits here and @p's cache is
 * in this LLC. It runs as soon as the waker sleeps, without an idle CPU woken for it (an IPI
 * and the idle exit, the tail of a request's wakeup under emulation). If the bet loses, @p
 * waits out the waker's burst while a CPU may idle. Returns this CPU, or -1 to pick as usual.
 */
static s32 wake_affine_sleeper(struct task_struct *p, struct task_ctx *tctx,
			       const struct task_ctx *w, s32 prev_cpu, u64 now)
{
	s32 cpu = bpf_get_smp_processor_id();

	if (!w || !brisk_sleeps_soon(w->burst.avg_ns, brisk_burst_ran(&w->burst, now)) ||
	    llc_of(cpu) != llc_of(prev_cpu) || !may_run_on(p, cpu) || !nothing_waits_here(cpu))
		return -1;
	insert_local(p, tctx, task_slice_waiting(tctx, cpu, 0), 0);
	COUNT(nr_wake_affine);
	return cpu;
}

/*
 * A synchronous wakeup (pipe, socket) of a task last on this CPU, whose waker is not exiting,
 * with nothing waiting here: the kernel's idle pick can only return this CPU then (with an idle
 * CPU anywhere it prefers the waker's CPU while nothing is queued there; with none it leaves
 * @p where it was), so the pick, one or two kfunc calls that scan the idle masks, is skipped.
 * Partners that share a CPU (pipe ping-pong) take this path on every message.
 */
static bool sync_wakes_here(const struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	return (wake_flags & SCX_WAKE_SYNC) && prev_cpu == bpf_get_smp_processor_id() &&
	       !(bpf_get_current_task_btf()->flags & PF_EXITING) && may_run_on(p, prev_cpu) &&
	       nothing_waits_here(prev_cpu);
}

/*
 * An idle CPU for @p, waking with @prev_cpu, claimed: first in @prev_cpu's LLC, where its
 * cache is (a whole idle core, then @prev_cpu, then any idle CPU there), and only then the
 * kernel's pick over all CPUs (a whole idle core in the node, then anywhere, then any idle
 * CPU). The kernel's pick alone sends a task to a whole idle core in another LLC or node
 * rather than to an idle CPU of its own LLC whose SMT sibling is busy: a cold cache, and
 * across nodes remote memory, for a core to itself. Sets *@is_idle as
 * scx_bpf_select_cpu_dfl() does; with one LLC (or before 6.16, which lacks the masked pick)
 * it is that pick.
 */
static s32 pick_idle_cpu(struct task_struct *p, s32 prev_cpu, u64 wake_flags, bool *is_idle)
{
	u32 llc = llc_of(prev_cpu);
	const struct cpumask *idle;
	struct llc_mask *m;
	bool none;
	s32 cpu;

	/*
	 * No CPU idle (a saturated machine, where most wakeups land): both picks would only
	 * scan their masks for nothing, each several times (whole cores in the LLC, the node,
	 * anywhere, then single CPUs), and return @prev_cpu.
	 */
	idle = scx_bpf_get_idle_cpumask();
	none = bpf_cpumask_empty(idle);
	scx_bpf_put_idle_cpumask(idle);
	if (none) {
		*is_idle = false;
		return prev_cpu;
	}
	if (nr_llcs > 1 && __COMPAT_HAS_scx_bpf_select_cpu_and &&
	    (m = bpf_map_lookup_elem(&llc_masks, &llc)) && m->cpus) {
		cpu = scx_bpf_select_cpu_and(p, prev_cpu, wake_flags, cast_mask(m->cpus), 0);
		if (cpu >= 0) {
			*is_idle = true;
			return cpu;
		}
	}
	return scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, is_idle);
}

/*
 * @p becomes runnable, to be queued from @cpu: it wakes (@wakeup), or it starts, comes to
 * scx_brisk or is queued again after a change of nice, affinity or cgroup took it off its
 * queue. What an ops.runnable would do, done instead as the last step of ops.select_cpu or,
 * where the kernel skips that (a wakeup of a task allowed on one CPU, a task queued again),
 * first in ops.enqueue: one BPF call less on every wakeup. Runs in the waker's context, as
 * ops.runnable would.
 */
static __always_inline void task_runnable(struct task_struct *p, struct task_ctx *tctx, s32 cpu,
					  bool wakeup)
{
	bool deferred = false;
	u64 now, clock;

	tctx->runnable = 1;
	cg_track(p, tctx, true);
	cg_refresh_weight(p, tctx);
	if (!wakeup) {
		load_track(tctx, true, p->scx.weight);
		return;
	}
	now = scx_bpf_now();
	if (tctx->last_woke_at)
		tctx->avg_period_ns =
			brisk_period_avg(tctx->avg_period_ns, now - tctx->last_woke_at);
	tctx->last_woke_at = now;
	/* A new burst starts; what it banked while asleep is bounded by sleep_credit_ns. */
	brisk_burst_wake(&tctx->burst);
	tctx->lat_crit = wakes_lat_crit(tctx, tctx->sync_wakeup);
	if (!tctx->lat_crit && !tctx->sync_wakeup && tctx->avg_period_ns && tun.lat_duty_max_pct) {
		if (tctx->burst.avg_ns > lat_burst_max_ns())
			COUNT(nr_lat_no_burst);
		else
			COUNT(nr_lat_no_duty);
	}
	/* The clock of the LLC it wakes in. */
	follow_llc(tctx, llc_of(cpu));
	load_track(tctx, true, p->scx.weight);
	clock = clock_of(tctx->llc);
	/*
	 * A wakeup is handled in the waker's context: a task's (a futex hand-off) or an
	 * interrupt's (a timer). Without lat_lane_task_wakeups the former queue in the fair order,
	 * ahead of most short tasks (brisk_lat_fair_vruntime) or, while the lane is over its
	 * share, as a task that just woke.
	 */
	tctx->lat_fair = 0;
	if (tctx->lat_crit && !tun.lat_lane_task_wakeups && in_task_context()) {
		tctx->lat_crit = 0;
		deferred = lat_defers(tctx->llc, lat_light(tctx));
		tctx->lat_fair = !deferred;
		COUNT(nr_lat_fair);
		if (deferred)
			COUNT(nr_lat_fair_deferred);
	}
	if (tctx->lat_fair) {
		tctx->vruntime = brisk_lat_fair_vruntime(tctx->vruntime, clock, tun.sleep_credit_ns,
							 tun.lat_fair_lead_ns);
	} else if (deferred) {
		/*
		 * No lead, and no later than the clock either: what it ran ahead of the crowd in
		 * its earlier wakeups is not held against it (brisk_lat_wake_vruntime). Charged, a
		 * request worker would sort a request's work past a clock that a crowd of sleepers
		 * moves at a few percent of real time: tens to hundreds of ms behind them.
		 */
		tctx->vruntime =
			brisk_lat_wake_vruntime(tctx->vruntime, clock, tun.sleep_credit_ns);
	} else if (tctx->lat_crit) {
		tctx->vruntime =
			brisk_lat_wake_vruntime(tctx->vruntime, clock, tun.sleep_credit_ns);
		tctx->lat_woke_lag_ns = clock - tctx->vruntime;
		/* Kept if it is preempted before its burst ends (brisk_lat_keeps): first again. */
		tctx->lat_light = lat_light(tctx);
		tctx->lat_key = brisk_lat_key(
			brisk_lat_deadline(now, task_burst(tctx), task_weight(p, tctx)),
			tctx->lat_light);
	} else {
		tctx->vruntime = brisk_wake_vruntime(tctx->vruntime, clock, tun.sleep_credit_ns);
	}
}

/*
 * task_runnable for ops.enqueue, where it is rare (a wakeup of a task allowed on one CPU, a
 * task queued again after a change), as a call: inlined there, it would multiply the paths the
 * verifier walks through ops.enqueue.
 */
static __noinline void task_runnable_call(struct task_struct *p, struct task_ctx *tctx, s32 cpu,
					  bool wakeup)
{
	task_runnable(p, tctx, cpu, wakeup);
}

/*
 * The CPU @p wakes on (@tctx may be NULL), queued there already if it is to run next: an idle
 * CPU, or the waker's as a hand-off.
 */
static __always_inline s32 wake_cpu(struct task_struct *p, struct task_ctx *tctx, s32 prev_cpu,
				    u64 wake_flags)
{
	struct task_ctx *waker = NULL;
	bool is_idle = false;
	u64 now = 0;
	s32 cpu;

	if (tctx)
		tctx->sync_wakeup = !!(wake_flags & SCX_WAKE_SYNC);
	if (!(wake_flags & SCX_WAKE_SYNC)) {
		now = scx_bpf_now();
		waker = waker_wakes(now);
		if ((cpu = wake_affine_sleeper(p, tctx, waker, prev_cpu, now)) >= 0)
			return cpu;
	} else if (sync_wakes_here(p, prev_cpu, wake_flags)) {
		/*
		 * Synchronous hand-off: the waker is about to sleep on this CPU and nothing else
		 * waits here or in the LLC, so the wakee runs next whatever its deadline. Queue it
		 * on this CPU's local DSQ now: the same order enqueue's sync-affine path gives,
		 * without the ops.enqueue and ops.dispatch calls (the dearest part of a ping-pong
		 * message).
		 */
		insert_local(p, tctx, task_slice_waiting(tctx, prev_cpu, 0), 0);
		COUNT(nr_sync_affine);
		COUNT(nr_sync_handoff);
		return prev_cpu;
	}
	cpu = pick_idle_cpu(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		insert_local(p, tctx, task_slice(tctx, cpu), 0);
		COUNT(nr_direct_idle);
	} else if (!(wake_flags & SCX_WAKE_SYNC)) {
		cpu = wake_affine_busy(p, cpu);
		/*
		 * No CPU is idle and the wakee is to run here: if the waker is short and nothing
		 * else waits, hand the CPU over as for a synchronous wakeup. The CPU the waker
		 * leaves then runs the wakee without ops.enqueue and ops.dispatch (under emulation
		 * about 30 us per wakeup, most of a futex hand-off's cost over the kernel's own).
		 * A latency-critical wakee (in the lane or, woken by a task, in the fair order) is
		 * handed over even when fair tasks wait (not when latency-critical ones do, which a
		 * chain of hand-offs would hold back): it runs next, as soon as the waker sleeps,
		 * instead of preempting another CPU while the waker runs on. A request worker
		 * handed a request this way sleeps before the next one comes, where beside a waker
		 * running on it would take one request after another without sleeping, turn into a
		 * hog and queue behind the crowd.
		 */
		if (cpu == bpf_get_smp_processor_id() && waker_is_short(waker, now) &&
		    ((tctx && wakes_lat_crit(tctx, false) && !lat_waiting(llc_of(cpu)) &&
		      !lat_defers(llc_of(cpu), lat_light(tctx))) ||
		     nothing_waits_here(cpu))) {
			struct cpu_ctx *c = lookup_cpu_ctx(cpu);
			/*
			 * A fair task the waker (the lane's) preempted waits in the local DSQ to
			 * resume (lat_resume): the wakee goes before it, or it would wait out the
			 * rest of that task's slice instead of running as the waker sleeps.
			 */
			bool before = c && c->resumed_dl;

			insert_local(p, tctx, task_slice_waiting(tctx, cpu, 0),
				     before ? SCX_ENQ_HEAD : 0);
			if (before)
				COUNT(nr_resume_ahead);
			COUNT(nr_wake_handoff);
		}
	}
	return cpu;
}

s32 BPF_STRUCT_OPS(brisk_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = wake_cpu(p, tctx, prev_cpu, wake_flags);

	/* A new task (SCX_WAKE_FORK) becomes runnable for the first time, without waking. */
	if (tctx)
		task_runnable(p, tctx, cpu, !(wake_flags & SCX_WAKE_FORK));
	return cpu;
}

/*
 * Whether the task running on @cpu may be preempted by a waker with deadline @dl: only a hog
 * (not short, not latency-critical). For a latency-critical waker (@lat), any hog; for a short
 * task re-enqueued after a real-time task took its CPU, a hog whose deadline is later than the
 * waker's by more than preempt_margin_ns. A short task is left to finish its burst: it sleeps
 * soon, and the waker runs from the latency queue at the next dispatch. The trade-off:
 * preempting short tasks too serves timer-driven tasks sooner, but it breaks up the batches
 * of message passers (hackbench) with a context switch per wakeup (docs/bench/findings.md).
 */
static bool is_victim(const struct cpu_ctx *cctx, u64 dl, bool lat)
{
	if (!cctx || !cctx->running_dl || cctx->running_lat)
		return false;
	if (cctx->running_short)
		return false;
	return lat || brisk_should_preempt(dl, cctx->running_dl, tun.preempt_margin_ns);
}

/*
 * Whether a wakeup goes before the fair task that waits on @cctx's CPU to resume after the
 * lane's task running there (lat_resume): a latency-critical one always (the lane goes before
 * the fair order), a short one if it is due earlier (it would have run next after the lane's
 * task, or preempted the resumed one). It runs after the lane's task, which it does not preempt.
 */
static bool goes_before_resumed(const struct cpu_ctx *cctx, u64 dl, bool lat)
{
	return cctx && cctx->running_lat && cctx->resumed_dl && (lat || dl < cctx->resumed_dl);
}

/* Ranks of the CPU handling the wakeup and of a CPU a short wakeup goes to before a resumed task.
 */
#define BRISK_RANK_THIS_CPU (~0ULL - 1)
#define BRISK_RANK_BEFORE   (~0ULL)

/*
 * How much a wakeup due at @dl would rather take @cctx's CPU, 0 for not at all: first, for a
 * short wakeup, a CPU where it goes before a resumed task (no IPI, no stint broken); then the
 * CPU handling the wakeup (@this_cpu: preempting it needs no IPI, and it is usually the waker's
 * previous CPU); then the victim with the latest deadline; last, for a latency-critical
 * wakeup, a CPU where it waits before a resumed task (preempting a hog elsewhere is sooner).
 */
static u64 victim_rank(const struct cpu_ctx *cctx, u64 dl, bool lat, bool this_cpu)
{
	if (goes_before_resumed(cctx, dl, lat))
		return lat ? 1 : BRISK_RANK_BEFORE;
	if (!is_victim(cctx, dl, lat))
		return 0;
	return this_cpu ? BRISK_RANK_THIS_CPU : cctx->running_dl;
}

/*
 * A waking task found no idle CPU: pick a CPU of its LLC whose current task it should preempt
 * (is_victim), or one where it goes before a task waiting to resume (goes_before_resumed,
 * *@ahead), in victim_rank's order: the CPU handling the wakeup is taken without a scan if it
 * ranks first. A latency-critical wakeup that can only go before a resumed task waits there
 * rather than in the lane's queue, which that CPU would not look at for the rest of the
 * resumed slice. Returns -1 for none, and with lat_wait_for_short for a latency-critical waker
 * while a CPU of the LLC runs a short task outside the lane: that CPU frees up within a burst
 * and serves the lane first, and a hog's stint broken for a wakeup costs it the switch in its
 * own context (docs/bench/findings.md). A call, not inlined: ops.enqueue's paths through the
 * scan would multiply the verifier's work.
 */
static __noinline s32 pick_victim(const struct task_struct *p, u64 dl, u32 llc, bool lat,
				  bool *ahead)
{
	s32 this_cpu = bpf_get_smp_processor_id(), victim = -1, cpu;
	bool wait = lat && tun.lat_wait_for_short;
	bool anywhere = runs_anywhere(p);
	struct cpu_ctx *cctx;
	u64 best = 0, rank;
	u32 k;

	*ahead = false;
	cctx = lookup_cpu_ctx(this_cpu);
	if (!wait && llc_of(this_cpu) == llc &&
	    victim_rank(cctx, dl, lat, true) >= BRISK_RANK_THIS_CPU &&
	    (anywhere || bpf_cpumask_test_cpu(this_cpu, p->cpus_ptr))) {
		victim = this_cpu;
	} else {
		/* Only the CPUs of the LLC: the scan costs its size, not the machine's. */
		bpf_for (k, 0, nr_cpus_of(llc)) {
			if ((cpu = llc_cpu(llc, k)) < 0)
				break;
			if (!anywhere && !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
				continue;
			cctx = lookup_cpu_ctx(cpu);
			if (wait && cctx && cctx->running_dl && cctx->running_short &&
			    !cctx->running_lat)
				return -1;
			rank = victim_rank(cctx, dl, lat, cpu == this_cpu);
			if (rank && rank >= best) {
				victim = cpu;
				best = rank;
			}
		}
	}
	if (victim < 0 || !(cctx = lookup_cpu_ctx(victim)))
		return -1;
	/*
	 * Claim the CPU so that concurrent wakers pick different ones; the lane's wakers may queue
	 * one after another before a resumed task (the lane goes before the fair order).
	 */
	if (goes_before_resumed(cctx, dl, lat)) {
		*ahead = true;
		if (!lat)
			cctx->resumed_dl = 0;
	} else {
		cctx->running_dl = dl;
		cctx->running_short = 1;
		cctx->running_lat = lat;
	}
	return victim;
}

/*
 * An idle CPU that can take @p, queued from @cpu, claimed; -1 for none. A pinned task only
 * takes its own CPU. Others take a whole idle core of @cpu's LLC first, where the task is
 * queued and its cache is, and then the kernel's pick over their mask (a whole idle core
 * anywhere, then any idle CPU unless @whole_core): the kernel's pick alone takes another
 * LLC's or node's idle core as readily as one of its own. A half-idle core of its own LLC
 * does not beat a whole idle core elsewhere here, unlike the wakeup pick (pick_idle_cpu): a
 * task queued from here was mostly preempted while running (a hog), and two hogs on SMT
 * siblings while a core idles lose far more than the cache. The LLC's mask is used only for
 * a task that may run on all of it (most tasks).
 */
static s32 claim_idle_cpu(const struct task_struct *p, s32 cpu, bool pinned, bool whole_core)
{
	u32 llc = llc_of(cpu);
	struct llc_mask *m;
	s32 idle;

	if (pinned)
		return !whole_core && scx_bpf_test_and_clear_cpu_idle(cpu) ? cpu : -1;
	if (nr_llcs > 1 && runs_anywhere(p) && (m = bpf_map_lookup_elem(&llc_masks, &llc)) &&
	    m->cpus) {
		idle = scx_bpf_pick_idle_cpu(cast_mask(m->cpus), SCX_PICK_IDLE_CORE);
		if (idle >= 0)
			return idle;
	}
	return scx_bpf_pick_idle_cpu(p->cpus_ptr, whole_core ? SCX_PICK_IDLE_CORE : 0);
}

/*
 * Whether @p, running on @cpu, shares its core with a busy SMT sibling while a whole core it
 * may run on is idle. Two threads of one core give well under twice one thread's work, so a
 * hog there is worth moving: ops.dispatch then ends its slice instead of renewing it, and
 * ops.enqueue (SCX_ENQ_LAST) moves it to the idle core. Without this a hog that landed on a
 * busy core's second thread (two hogs woken at once, an idle pick raced) stays there for as
 * long as nothing else wants its CPU. Costs two idle-mask reads, only when a hog's slice
 * ends on an SMT machine.
 */
static bool smt_contended(const struct task_struct *p, s32 cpu)
{
	const volatile u32 *sib = MEMBER_VPTR(cpu_sibling, [cpu]);
	const struct cpumask *idle;
	bool contended;

	if (!sib || *sib == cpu)
		return false;
	idle = scx_bpf_get_idle_cpumask();
	contended = !bpf_cpumask_test_cpu(*sib, idle);
	scx_bpf_put_idle_cpumask(idle);
	if (!contended)
		return false;
	idle = scx_bpf_get_idle_smtmask();
	contended = bpf_cpumask_intersects(idle, p->cpus_ptr);
	scx_bpf_put_idle_cpumask(idle);
	return contended;
}

/*
 * The CPU whose fair queue takes a task queued from @cpu: @cpu itself, unless a real-time or
 * deadline task holds it (ops.cpu_release), which serves no queue until it leaves; then
 * another CPU of the LLC that @p may run on, from a random one on, which the task migrates to
 * when that CPU takes it. @cpu when there is none.
 */
static s32 fair_home(const struct task_struct *p, s32 cpu)
{
	struct cpu_ctx *c = lookup_cpu_ctx(cpu);
	u32 llc = llc_of(cpu), nr, start, k;
	s32 other;

	if (!c || !c->released)
		return cpu;
	nr = nr_cpus_of(llc);
	start = bpf_get_prandom_u32() % nr;
	bpf_for (k, 0, nr) {
		other = llc_cpu(llc, (start + k) % nr);
		if (other < 0 || other == cpu || !may_run_on(p, other))
			continue;
		c = lookup_cpu_ctx(other);
		if (c && !c->released)
			return other;
	}
	return cpu;
}

/*
 * A fair task the lane's wakeup preempted, queued again on @cpu (lat_resume): the lane's time is
 * an interruption, not the end of its slice, so it runs next on its CPU, behind the lane's task
 * in the local DSQ, with what is left of its slice. Queued in the fair order instead, it would
 * give its CPU to the queue's first task (a message crowd's sleeper sorts ahead of a hog), and
 * each lane wakeup would end a stint and cost it the switches. What would have run before it
 * still does (goes_before_resumed). Returns whether it was queued so. A call, not inlined, and
 * its tests of @enq_flags and @lat in here: in ops.enqueue they would split the verifier's
 * states there for every later test of the same flags.
 */
static __noinline bool resume_preempted(struct task_struct *p, s32 cpu, u64 dl, u64 enq_flags,
					bool lat)
{
	struct cpu_ctx *c;
	u64 slice;

	if ((enq_flags & (SCX_ENQ_WAKEUP | SCX_ENQ_REENQ | SCX_ENQ_LAST)) || lat ||
	    cpu != bpf_get_smp_processor_id() || !(c = lookup_cpu_ctx(cpu)) || !c->lat_preempted)
		return false;
	c->lat_preempted = 0;
	slice = brisk_resume_slice(c->slice_end_at, scx_bpf_now(), BRISK_RESUME_MIN_NS);
	if (!slice)
		return false;
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
	c->resumed_dl = dl;
	COUNT(nr_lat_resumed);
	return true;
}

void BPF_STRUCT_OPS(brisk_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p), idle, victim;
	struct task_ctx *tctx;
	bool pinned = is_pinned(p), lat, demoted;
	u64 dl;

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return;
	if (!tctx->runnable)
		task_runnable_call(p, tctx, cpu, enq_flags & SCX_ENQ_WAKEUP);
	wait_untrack(tctx);
	/*
	 * Only a wakeup is latency-critical: a task queued again after BRISK_LAT_KEEP_SLICES
	 * latency slices is not (brisk_lat_keeps). One preempted before (by another wakeup, its
	 * slice over, or sent back by ops.cpu_release, SCX_ENQ_REENQ: a real-time task took its
	 * CPU) keeps what it was, or it would wait a whole round of the fair queue for having been
	 * interrupted; it sorts in the lane by what it has run. One sent to the
	 * fair queue queues where its wakeup placed it, with the burst its wakeup was judged by
	 * (brisk_lat_demoted_vruntime): not behind the crowd for the lane's time, nor as a hog
	 * for a burst an interruption stretched. A task whose bursts really grow stops qualifying.
	 */
	demoted = !(enq_flags & (SCX_ENQ_WAKEUP | SCX_ENQ_REENQ)) && tctx->lat_crit &&
		  !brisk_lat_keeps(tctx->lat_crit, tctx->burst.cur_ns, tun.slice_ns);
	if (demoted) {
		tctx->vruntime =
			brisk_lat_demoted_vruntime(tctx->vruntime, tctx->lat_woke_lag_ns,
						   clock_of(tctx->llc), tun.sleep_credit_ns);
		tctx->lat_crit = 0;
		COUNT(nr_lat_demoted);
	}
	lat = tctx->lat_crit;
	/* Queued again in the lane: after the wakeups that expect to finish before it does. */
	if (lat && !(enq_flags & SCX_ENQ_WAKEUP))
		tctx->lat_key =
			brisk_lat_key(brisk_lat_deadline(tctx->last_woke_at, task_burst(tctx),
							 task_weight(p, tctx)),
				      tctx->lat_light);
	follow_llc(tctx, llc_of(cpu));
	dl = demoted ? deadline_at(p, tctx, tctx->vruntime, tctx->burst.avg_ns, cpu)
		     : task_deadline(p, tctx, cpu);
	/* One clock read for both stamps (each call is dear under emulation). */
	tctx->queued_at = bpf_ktime_get_ns();
	tctx->lat.enq_at = probes_on ? tctx->queued_at : 0;

	if (debug_stall_hogs && !task_is_short(tctx)) {
		scx_bpf_dsq_insert(p, BRISK_LIMBO_DSQ, tun.slice_ns, enq_flags);
		return;
	}

	if (resume_preempted(p, cpu, dl, enq_flags, lat))
		return;

	/*
	 * A synchronous wakeup that select_cpu left on the waker's CPU (the kernel's pick does
	 * that when the waker's queue is empty): the waker is about to sleep, so its CPU runs the
	 * wakee next. Claiming and kicking an idle CPU instead would move every message of a pipe
	 * ping-pong to the other CPU, an IPI and a cold cache each way. Only when work already
	 * waits in the queue is an idle CPU woken to help.
	 */
	if (!pinned && (enq_flags & SCX_ENQ_WAKEUP) && tctx->sync_wakeup &&
	    cpu == bpf_get_smp_processor_id() && !fair_waiting(llc_of(cpu))) {
		queue_task(p, tctx, BRISK_WAIT_FAIR, cpu, task_slice(tctx, cpu), dl, enq_flags);
		COUNT(nr_sync_affine);
		return;
	}

	/*
	 * The last runnable task of a CPU whose slice ended and which dispatch did not renew
	 * (SCX_OPS_ENQ_LAST). A hog beside a busy SMT sibling goes to a whole idle core if one is
	 * still free; anything else runs on here, as the kernel would keep it without the flag.
	 * This CPU is about to go idle and nothing else would wake it: the kick is the follow-up
	 * the kernel requires.
	 */
	if (enq_flags & SCX_ENQ_LAST) {
		if (!pinned && !lat && !task_is_short(tctx) && smt_contended(p, cpu) &&
		    (idle = claim_idle_cpu(p, cpu, false, true)) >= 0) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | idle, task_slice(tctx, idle),
					   enq_flags);
			scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
			COUNT(nr_smt_spread);
			return;
		}
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, lat_slice(tctx, cpu, lat), enq_flags);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		COUNT(nr_last_requeued);
		return;
	}

	idle = claim_idle_cpu(p, cpu, pinned, false);

	if (enq_flags & SCX_ENQ_WAKEUP) {
		if (task_is_short(tctx))
			COUNT(nr_short_wakeups);
		if (lat)
			COUNT(nr_lat_wakeups);
	}

	/*
	 * A latency-critical wakeup may preempt any task that is not latency-critical itself.
	 * A short task woken otherwise (the lane off, or past its duty bound), or sent back by
	 * ops.cpu_release (SCX_ENQ_REENQ: a real-time task took its CPU while it ran or was about
	 * to), may preempt a hog whose deadline is later by preempt_margin_ns. No preemption for
	 * a synchronous wakeup (pipes, sockets): the waker is about to sleep, so a CPU frees up at
	 * once; preempting a third task would only add an IPI and a context switch per message.
	 */
	if (lat || ((enq_flags & SCX_ENQ_REENQ) && task_is_short(tctx)) ||
	    ((enq_flags & SCX_ENQ_WAKEUP) && !tctx->sync_wakeup && task_is_short(tctx))) {
		/* A lane over its share waits its turn like the fair queue's tasks. */
		if (idle < 0 && tun.wakeup_preempt &&
		    !(lat && lat_defers(llc_of(cpu), tctx->lat_light))) {
			bool ahead;

			victim = pick_victim(p, dl, llc_of(cpu), lat, &ahead);
			if (victim >= 0 && ahead) {
				/* After the lane's task there, before the resumed one. */
				scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | victim,
						   lat_slice(tctx, victim, lat),
						   enq_flags | SCX_ENQ_HEAD);
				COUNT(nr_resume_ahead);
				return;
			}
			if (victim >= 0) {
				/* To the front of the victim's local queue; its task is preempted.
				 */
				scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | victim,
						   lat_slice(tctx, victim, lat),
						   enq_flags | SCX_ENQ_PREEMPT);
				COUNT(nr_preempts);
				if (lat) {
					struct cpu_ctx *vc = lookup_cpu_ctx(victim);

					/* Its task resumes after this one (ops.enqueue). */
					if (vc && tun.lat_resume)
						vc->lat_preempted = 1;
					COUNT(nr_lat_preempts);
				}
				if (victim != bpf_get_smp_processor_id())
					COUNT(nr_ipi_preempts);
				return;
			}
			COUNT(nr_preempt_none);
		}
	}

	if (pinned) {
		/* A latency-critical one first in its CPU's queue, before the fair queues. */
		queue_task(p, tctx, BRISK_WAIT_PINNED, cpu, lat_slice(tctx, cpu, lat), lat ? 0 : dl,
			   enq_flags);
		COUNT(nr_queued_pinned);
	} else {
		/*
		 * Queue where the idle CPU takes it, if any, else where it is: on that CPU's rq,
		 * which its own CPU takes from without moving it (fair_pick), unless a higher class
		 * holds that CPU (fair_home).
		 */
		if (idle >= 0)
			cpu = idle;
		else if (!lat)
			cpu = fair_home(p, cpu);
		/*
		 * A CPU outside the loaded topology: one that came online after it was read (the
		 * kernel asks for a restart, which under emulation took seconds), or one that went
		 * offline while the idle mask still marks it idle (its last switch to idle after
		 * the topology was read). No other CPU looks at its queues, so a task queued there
		 * would wait past the watchdog. Its local DSQ instead: the kernel serves that, or
		 * moves the task to the global DSQ while the CPU is not online.
		 */
		if (!cpu_listed_in_topology(cpu)) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, lat_slice(tctx, cpu, lat),
					   enq_flags);
			scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
			COUNT(nr_unlisted_local);
			return;
		}
		queue_task(p, tctx, lat ? BRISK_WAIT_LAT : BRISK_WAIT_FAIR, lat ? llc_of(cpu) : cpu,
			   lat_slice(tctx, cpu, lat), lat ? tctx->lat_key : dl, enq_flags);
		COUNT(nr_queued_shared);
	}
	if (idle >= 0) {
		scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
		COUNT(nr_idle_kicks);
	}
}

/* The deadline of the first task on @dsq_id, or ~0 when it is empty. */
static u64 head_deadline(u64 dsq_id)
{
	struct task_struct *p = __COMPAT_scx_bpf_dsq_peek(dsq_id);

	return p ? p->scx.dsq_vtime : ~0ULL;
}

/* Whether a task waits in @cpu's fair queue (wait_add: a hint that reads high, not low). */
static bool fair_queued(s32 cpu)
{
	struct cpu_ctx *c = lookup_cpu_ctx(cpu);

	return c && c->nr_fair_waiting;
}

/* If @c is a CPU other than @skip whose fair queue has a first task due before @best, it. */
static void fair_consider(s32 c, s32 skip, u64 *best, u64 *dsq)
{
	u64 dl;

	if (c < 0 || c == skip || !fair_queued(c))
		return;
	dl = head_deadline(fair_dsq(c));
	if (dl < *best) {
		*best = dl;
		*dsq = fair_dsq(c);
	}
}

/*
 * The earliest first task of the fair queues of @llc's CPUs other than @skip: its deadline
 * (~0 for none) and its queue in @dsq.
 */
static u64 fair_earliest(u32 llc, s32 skip, u64 *dsq)
{
	u64 best = ~0ULL;
	u32 k;

	bpf_for (k, 0, nr_cpus_of(llc))
		fair_consider(llc_cpu(llc, k), skip, &best, dsq);
	return best;
}

/*
 * The earlier first task of the fair queues of two CPUs of @llc other than @skip, next to
 * each other in the LLC's list from a random one on (~0 for none; its queue in @dsq). The
 * cost does not grow with the LLC, and the CPUs that dispatch in turn look at every queue
 * within a few slices.
 */
static u64 fair_sample(u32 llc, s32 skip, u64 *dsq)
{
	u32 nr = nr_cpus_of(llc), a = bpf_get_prandom_u32() % nr, b;
	s32 ca = llc_cpu(llc, a), cb;
	u64 best = ~0ULL;

	if (ca == skip) {
		a = (a + 1) % nr;
		ca = llc_cpu(llc, a);
	}
	b = (a + 1) % nr;
	cb = llc_cpu(llc, b);
	if (cb == skip) {
		b = (b + 1) % nr;
		cb = llc_cpu(llc, b);
	}
	fair_consider(ca, skip, &best, dsq);
	if (b != a)
		fair_consider(cb, skip, &best, dsq);
	return best;
}

/*
 * A first task of a fair queue of @llc's CPUs other than @skip: fair_sample's, else the
 * earliest; none while the LLC's count reads zero.
 */
static u64 fair_find(u32 llc, s32 skip, u64 *dsq)
{
	u64 dl;

	if (!fair_waiting(llc))
		return ~0ULL;
	dl = fair_sample(llc, skip, dsq);
	return dl != ~0ULL ? dl : fair_earliest(llc, skip, dsq);
}

/*
 * The fair queue @cpu takes from next, and the deadline of its first task in @dl: its own,
 * unless one of two other CPUs of the LLC it looks at (fair_sample) has one due earlier by
 * more than locality_margin_ns (brisk_prefer_own). With its own empty it serves the earlier
 * of those two, and looks at every queue of the LLC only when both are empty, so that a CPU
 * does not idle while a task waits in its LLC; on a busy LLC, where most queues hold tasks,
 * its cost does not grow with the LLC.
 */
static u64 fair_pick(s32 cpu, u32 llc, u64 *dl)
{
	u64 own = fair_dsq(cpu), other = own, other_dl;
	u64 own_dl = fair_queued(cpu) ? head_deadline(own) : ~0ULL;

	other_dl = own_dl == ~0ULL ? fair_find(llc, cpu, &other) : fair_sample(llc, cpu, &other);
	if (brisk_prefer_own(own_dl, other_dl, tun.locality_margin_ns)) {
		*dl = own_dl;
		return own;
	}
	*dl = other_dl;
	return other;
}

/* Takes the first task of a fair queue of @llc, @cpu's own first (-1: none); false if none. */
static bool take_from_llc(u32 llc, s32 cpu)
{
	u32 k;
	s32 c;

	if (cpu >= 0 && fair_queued(cpu) && scx_bpf_dsq_move_to_local(fair_dsq(cpu), 0))
		return true;
	bpf_for (k, 0, nr_cpus_of(llc)) {
		c = llc_cpu(llc, k);
		if (c >= 0 && c != cpu && fair_queued(c) &&
		    scx_bpf_dsq_move_to_local(fair_dsq(c), 0))
			return true;
	}
	return false;
}

/*
 * Starvation guard: at most every BRISK_STARVE_SCAN_INTERVAL_NS, look through @dsq_id for a task
 * that has waited longer than starve_ns and may run on @cpu, and run it here. (Moving a task to
 * a CPU outside its mask is an error that ejects the scheduler; the queues hold tasks
 * allowed on only some CPUs of their LLC.)
 */
static bool rescue_starving(u64 dsq_id, s32 cpu, u64 now)
{
	struct task_struct *p;
	struct task_ctx *tctx;

	/*
	 * No iteration cap: a counter here would make the verifier walk every iteration; the
	 * rate limit bounds the cost (one pass per CPU per interval, stopping at the first rescue).
	 */
	bpf_for_each (scx_dsq, p, dsq_id, 0) {
		tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
		if (!tctx || !brisk_starving(now, tctx->queued_at, tun.starve_ns))
			continue;
		if (!may_run_on(p, cpu))
			continue;
		if (scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, 0)) {
			/* On this CPU's rq now: no other CPU touches its context meanwhile. */
			tctx->off_clock = 1;
			COUNT(nr_starve_rescues);
			return true;
		}
	}
	return false;
}

/* A starvation scan of @llc's latency queue and its CPUs' fair queues, for @cpu. */
static bool rescue_llc(u32 llc, s32 cpu, u64 now)
{
	u32 k;
	s32 c;

	if (rescue_starving(lat_dsq(llc), cpu, now))
		return true;
	bpf_for (k, 0, nr_cpus_of(llc)) {
		c = llc_cpu(llc, k);
		if (c >= 0 && fair_queued(c) && rescue_starving(fair_dsq(c), cpu, now))
			return true;
	}
	return false;
}

/*
 * One starvation scan from @cpu: its own queues first, then every other LLC's, since an LLC
 * whose CPUs are all held by real-time tasks dispatches nothing itself, and other LLCs steal
 * from it only when they have nothing of their own.
 */
static bool rescue_any(s32 cpu, u32 own_llc, u64 now)
{
	u32 i;

	if (rescue_starving(cpu_dsq(cpu), cpu, now) || rescue_llc(own_llc, cpu, now))
		return true;
	bpf_for (i, 0, nr_llcs) {
		if (i != own_llc && rescue_llc(i, cpu, now))
			return true;
	}
	return false;
}

static u64 load_of(u32 llc)
{
	struct llc_ctx *l = llc_ctx_of(llc);

	return l ? l->runnable_load : 0;
}

/*
 * With several LLCs, at most once per base slice per CPU: take a first task of the fair
 * queues of the LLC with the most load per CPU (fair_find), if moving it here narrows the gap
 * (brisk_should_balance). Stealing by idle CPUs (dispatch's last resort) covers an idle LLC;
 * this covers LLCs that are all busy but unequally loaded, whose fair queues would otherwise
 * share out only their own CPUs. The cost: one pass over the LLCs' loads per slice per CPU,
 * and a task moved away from its cache now and then.
 */
static bool balance_llcs(s32 cpu, u32 own, struct cpu_ctx *cctx, u64 now)
{
	u64 best_per = 0, per, dsq = 0;
	u32 i, busiest = own;
	struct task_struct *p;

	if (nr_llcs < 2 || !cctx || now - cctx->last_balance_at < tun.slice_ns)
		return false;
	cctx->last_balance_at = now;
	bpf_for (i, 0, nr_llcs) {
		if (i == own)
			continue;
		per = brisk_load_per_cpu(load_of(i), nr_cpus_of(i));
		if (per > best_per) {
			best_per = per;
			busiest = i;
		}
	}
	if (busiest == own || fair_find(busiest, -1, &dsq) == ~0ULL ||
	    !(p = __COMPAT_scx_bpf_dsq_peek(dsq)))
		return false;
	if (!brisk_should_balance(load_of(busiest), nr_cpus_of(busiest), load_of(own),
				  nr_cpus_of(own), p->scx.weight))
		return false;
	if (!may_run_on(p, cpu))
		return false;
	/*
	 * Its clock and load follow it to this LLC in ops.running, under its own rq lock: the
	 * head may have changed since the peek, and another CPU may be running @p by now.
	 */
	return scx_bpf_dsq_move_to_local(dsq, 0);
}

/*
 * Nothing in this CPU's LLC: take work from other LLCs rather than idle, those of this CPU's
 * NUMA node first (a task moved there keeps its memory local), then the others.
 */
static bool steal_other_llcs(u32 own_llc)
{
	u32 i;

	bpf_for (i, 0, 2 * nr_llcs) {
		u32 llc = i % nr_llcs;
		bool near = llc_node_of(llc) == llc_node_of(own_llc);

		if (llc == own_llc || near != (i < nr_llcs))
			continue;
		if (scx_bpf_dsq_move_to_local(lat_dsq(llc), 0) || take_from_llc(llc, -1))
			return true;
	}
	return false;
}

void BPF_STRUCT_OPS(brisk_dispatch, s32 cpu, struct task_struct *prev)
{
	u64 mine = cpu_dsq(cpu), shared, first_dl, other_dl, prev_dl;
	u64 now = bpf_ktime_get_ns(); /* the clock of queued_at */
	struct cpu_ctx *cctx = lookup_cpu_ctx(cpu);
	u32 i, own_llc = llc_of(cpu);
	struct task_struct *p;
	struct task_ctx *tctx;
	/* Written only when it changes: a store on every dispatch bounces the line between CPUs. */
	if (tun_gen_seen != tun.gen)
		tun_gen_seen = tun.gen;
	/*
	 * A backlog of starving tasks drains one per dispatch, ahead of everything; but while a
	 * latency-critical wakeup waits, every other dispatch is its, or a backlog of a few dozen
	 * tasks (a hackbench group queued behind the crowd) would hold it for tens of ms.
	 */
	if (cctx && now - cctx->last_scan_at >= BRISK_STARVE_SCAN_INTERVAL_NS &&
	    !(cctx->rescued_last && scx_bpf_dsq_nr_queued(lat_dsq(own_llc)))) {
		cctx->last_scan_at = now;
		if (rescue_any(cpu, own_llc, now)) {
			/*
			 * Found one: scan again at the next dispatch rather than an interval later,
			 * so that a backlog of starving tasks drains at the rate CPUs dispatch,
			 * not one task per CPU per interval (200 low-weight tasks past starve_ns
			 * on 2 CPUs would otherwise take 10 s, past the kernel's 5 s watchdog).
			 */
			cctx->last_scan_at = now - BRISK_STARVE_SCAN_INTERVAL_NS;
			cctx->rescued_last = 1;
			return;
		}
	}
	if (cctx && cctx->rescued_last)
		cctx->rescued_last = 0;

	/*
	 * Latency-critical wakeups first, even before the previous task's next slice, unless the
	 * lane is over its share while fair tasks wait (lat_defers).
	 */
	if ((p = __COMPAT_scx_bpf_dsq_peek(lat_dsq(own_llc)))) {
		if (fair_waiting(own_llc) && (tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0)) &&
		    lat_defers(own_llc, tctx->lat_light)) {
			COUNT(nr_lat_deferred);
		} else if (scx_bpf_dsq_move_to_local(lat_dsq(own_llc), 0)) {
			COUNT(nr_dispatched);
			return;
		}
	}

	if (balance_llcs(cpu, own_llc, cctx, now)) {
		COUNT(nr_dispatched);
		COUNT(nr_balanced);
		return;
	}

	/*
	 * Earliest deadline first between this CPU's pinned tasks and the fair queue it serves
	 * (fair_pick). Deadlines compare as plain u64 here: an empty queue reads as ~0, i.e.
	 * later than any task.
	 */
	first_dl = head_deadline(mine);
	shared = fair_pick(cpu, own_llc, &other_dl);
	if (other_dl < first_dl) {
		u64 tmp = mine;

		mine = shared;
		shared = tmp;
		first_dl = other_dl;
	}

	/*
	 * The previous task is not queued yet while we decide (it is re-enqueued after this), so
	 * compare it with the queues here: if its deadline is still the earliest, it goes on.
	 */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED) &&
	    (tctx = bpf_task_storage_get(&task_ctxs, prev, 0, 0))) {
		/*
		 * A latency-critical burst within its latency slices (brisk_lat_keeps) goes on in
		 * the lane, which goes first (no other wakeup waits there, or it would have been
		 * taken above), unless the lane defers to the fair queue.
		 */
		bool lat_on = tctx->lat_crit &&
			      brisk_lat_keeps(1, brisk_burst_ran(&tctx->burst, scx_bpf_now()),
					      tun.slice_ns) &&
			      !(fair_waiting(own_llc) && lat_defers(own_llc, tctx->lat_light));

		prev_dl = running_deadline(prev, tctx, cpu);
		/*
		 * A hog beside a busy SMT sibling while a whole core idles is not renewed: it is
		 * queued again (SCX_ENQ_LAST if nothing else is) and moves (smt_contended).
		 */
		if ((lat_on || prev_dl < first_dl) &&
		    (lat_on || task_is_short(tctx) || is_pinned(prev) ||
		     !smt_contended(prev, cpu))) {
			/*
			 * compat.bpf.h: the kfunc (6.19+), else a plain store. A latency-critical
			 * wakeup still queued means the lane deferred to the fair queue: a hog goes
			 * on for a short turn only (brisk_deferred_slice).
			 */
			u64 slice = brisk_deferred_slice(
				lat_slice(tctx, cpu, lat_on),
				!lat_on && !task_is_short(tctx) &&
					scx_bpf_dsq_nr_queued(lat_dsq(own_llc)));

			scx_bpf_task_set_slice(prev, slice);
			/* A new slice is no wakeup: past the lane, it runs on in the fair order. */
			tctx->lat_crit = lat_on;
			/* No ops.running() follows: refresh what preempting wakers see. */
			if (cctx) {
				cctx->running_dl = prev_dl;
				cctx->running_short = task_is_short(tctx);
				cctx->running_lat = lat_on;
				cctx->slice_end_at = scx_bpf_now() + slice;
			}
			COUNT(nr_keep_running);
			return;
		}
	}

	/*
	 * The queues in deadline order, then the LLC's other fair queues, then the latency queue
	 * again (it deferred to a fair task another CPU has taken since), then other LLCs' work. A
	 * move of a task queued on another CPU's rq drops this CPU's rq lock while it migrates the
	 * task, and meanwhile a task on this CPU's rq may be queued here after its queue was seen
	 * empty: a task pinned here (a per-CPU kworker) or a wakeup for its fair queue. Returning
	 * with nothing then leaves it waiting on a CPU about to idle that nothing kicks, and is
	 * worse on a CPU a real-time task holds: the kernel's deadline server for sched_ext there
	 * stops when its pick finds nothing, and starts again only when this CPU's runqueue
	 * empties, which the queued task prevents; it waits until the real-time task sleeps, past
	 * the watchdog. So dispatch does not return empty while either queue is seen non-empty
	 * after the last move (the fair queue's count is a hint that reads high: the queue is
	 * asked when it is not zero).
	 */
	bpf_for (i, 0, BRISK_DISPATCH_PASSES) {
		if (scx_bpf_dsq_move_to_local(mine, 0) || scx_bpf_dsq_move_to_local(shared, 0) ||
		    take_from_llc(own_llc, cpu) || scx_bpf_dsq_move_to_local(lat_dsq(own_llc), 0)) {
			COUNT(nr_dispatched);
			return;
		}
		if (steal_other_llcs(own_llc)) {
			COUNT(nr_dispatched);
			COUNT(nr_stolen);
			return;
		}
		if (!scx_bpf_dsq_nr_queued(cpu_dsq(cpu)) &&
		    !(fair_queued(cpu) && scx_bpf_dsq_nr_queued(fair_dsq(cpu))))
			return;
		COUNT(nr_pin_rechecks);
	}
}

/* probes.bpf.h: the tasks scx_brisk runs are measured, with the policy's own bursts. */
static __always_inline bool probed_task(struct task_struct *p, struct brisk_lat_stamps **lat,
					struct brisk_burst **burst)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (!tctx || !tctx->ours)
		return false;
	*lat = &tctx->lat;
	*burst = &tctx->burst;
	return true;
}

#define PROBES_TRACK_BURSTS   0
#define probes_short_burst_ns tun.short_burst_ns
#define probes_burst_shift    tun.burst_ewma_shift
#define probes_burst_cap_ns   brisk_burst_sample_cap(tun.burst_cap_ns, tun.short_burst_ns)
/* Context switches are seen by ops.stopping and ops.running (no second program per switch). */
#define PROBES_SWITCH_TRACEPOINT 0
#include "probes.bpf.h"

void BPF_STRUCT_OPS(brisk_running, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = scx_bpf_task_cpu(p);
	struct cpu_ctx *cctx = lookup_cpu_ctx(cpu);
	bool native;
	u64 now;

	if (!tctx)
		return;
	if (tctx->wait_kind == BRISK_WAIT_FAIR) {
		if (tctx->wait_idx == cpu)
			COUNT(nr_fair_own);
		else
			COUNT(nr_fair_other);
	}
	wait_untrack(tctx);
	now = scx_bpf_now();
	brisk_burst_start(&tctx->burst, now);
	/* The latency probes' side of the switch, read on their own clock (sched_waking's). */
	if (probes_on && (tctx->lat.wake_at || tctx->lat.preempt_at || tctx->lat.enq_at)) {
		bool is_short;

		probes_switched_in(&tctx->lat, &tctx->burst, bpf_ktime_get_ns(), &is_short);
	}
	/*
	 * Only a task started in its own LLC's fair order moves that LLC's clock: not one run out
	 * of that order by the starvation guard (the task furthest ahead would drag the clock
	 * there, and every task woken or moved after it would queue behind the whole LLC), not a
	 * new task's first start (placed a third of a slice past the clock, it would push the clock
	 * that far and every task woken after it would queue behind the tasks it joined), nor
	 * one that another LLC's CPU took (steal, balance). That one runs on this LLC's clock from
	 * now on: left on its old clock, the deadline dispatch compares with this LLC's queues
	 * would be on another scale, and it could keep its CPU slice after slice. Nor one put
	 * back after its weight changed in mid-stint (brisk_set_weight).
	 */
	native = tctx->llc == llc_of(cpu) && !tctx->off_clock;
	tctx->off_clock = 0;
	follow_llc(tctx, llc_of(cpu));
	/*
	 * A running task whose nice, affinity, cgroup or class changes is taken off its CPU and
	 * put back without ops.enqueue (the kernel restores it to the local DSQ itself), after
	 * ops.stopping saw it as not runnable: it is counted again here, or it would run on
	 * uncounted in its cgroup's and LLC's loads until it is next queued.
	 */
	if (!tctx->runnable)
		task_runnable_call(p, tctx, cpu, false);
	if (!tctx->lat_crit && native) {
		u64 *clock = llc_clock(tctx->llc);

		if (clock && tctx->vruntime > *clock)
			*clock = tctx->vruntime;
	}
	if (cctx) {
		cctx->running_dl = task_deadline(p, tctx, cpu);
		cctx->running_short = task_is_short(tctx);
		cctx->running_lat = tctx->lat_crit;
		cctx->slice_end_at = now + p->scx.slice;
		/* The lane preempted no one for this task; one resumed behind the lane starts. */
		if (cctx->lat_preempted)
			cctx->lat_preempted = 0;
		if (!tctx->lat_crit && cctx->resumed_dl)
			cctx->resumed_dl = 0;
	}
	/*
	 * A hog that starts while latency-critical wakeups wait (the lane deferred to it): a
	 * short turn (brisk_deferred_slice). The lane's debt is read first: without it nothing
	 * defers, and the queue count is a kfunc call.
	 */
	if (!tctx->lat_crit && !task_is_short(tctx) && p->scx.slice > BRISK_DEFERRED_SLICE_NS) {
		struct llc_ctx *l = llc_ctx_of(llc_of(cpu));

		if (l && l->lat_debt && l->nr_lat_waiting) {
			scx_bpf_task_set_slice(p, brisk_deferred_slice(p->scx.slice, 1));
			if (cctx)
				cctx->slice_end_at = now + BRISK_DEFERRED_SLICE_NS;
		}
	}
}

/*
 * A stint of @ran_ns in @llc ended, in the latency-critical lane or not (@lat): the lane's
 * debt to the fair queue (brisk_lat_debt). While no fair task waits, the lane owes nothing;
 * a fair task about to queue again (@runnable) is one that waits.
 */
static void lat_share_account(u32 llc, u64 ran_ns, bool lat, bool runnable)
{
	struct llc_ctx *l = llc_ctx_of(llc);
	u64 *debt = l ? &l->lat_debt : NULL;
	u64 d = 0;

	/* Nothing owed: a fair stint pays nothing. */
	if (!debt || (!lat && !*debt))
		return;
	if ((runnable && !lat) || l->nr_fair_waiting)
		d = brisk_lat_debt(*debt, ran_ns, lat, tun.lat_share_max_pct,
				   8 * BRISK_LAT_ALLOWANCE_SLICES * tun.slice_ns);
	if (d != *debt)
		*debt = d;
}

void BPF_STRUCT_OPS(brisk_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct cpu_ctx *cctx = lookup_cpu_ctx(scx_bpf_task_cpu(p));
	u64 now = scx_bpf_now(), delta;
	bool lane;

	if (!tctx)
		return;
	if (probes_on)
		probes_switched_out(&tctx->lat, &tctx->burst, runnable,
				    runnable ? bpf_ktime_get_ns() : 0);
	delta = brisk_burst_stop(&tctx->burst, now);
	/* Its cgroups' loads have moved since it last ran: charge the stint at today's share. */
	cg_refresh_weight(p, tctx);
	tctx->vruntime += brisk_scale_inverse_fp(delta, task_weight_fp(p, tctx));
	/*
	 * What hogs get per stint on a CPU (the effective slice), and what the latency-critical
	 * lane runs (its share of the CPUs, against lat_share_max_pct).
	 */
	if (tctx->lat_crit || !task_is_short(tctx)) {
		u32 zero = 0;
		struct brisk_counters *c = bpf_map_lookup_elem(&counters, &zero);

		if (c && tctx->lat_crit) {
			c->nr_lat_stints++;
			c->lat_run_ns += delta;
		} else if (c) {
			c->nr_hog_stints++;
			c->hog_run_ns += delta;
		}
	}
	/*
	 * Not runnable: its weight leaves its cgroup's and LLC's loads here rather than in an
	 * ops.quiescent (which would cost a call on every sleep). The kernel also passes here,
	 * as not runnable, a running task it takes off its CPU for a change of nice, affinity,
	 * cgroup or class; ops.running counts it again as it goes on (task_runnable), since no
	 * ops.enqueue comes in between. Only a task that really sleeps (its state no longer
	 * TASK_RUNNING, 0) ends its burst, and its next wakeup says if it is synchronous: a
	 * change in mid-burst is no sample of the burst average.
	 */
	if (!runnable) {
		tctx->runnable = 0;
		load_track(tctx, false, 0);
		cg_track(p, tctx, false);
		if (p->__state != 0) {
			brisk_burst_sleep(
				&tctx->burst, tun.burst_ewma_shift,
				brisk_burst_sample_cap(tun.burst_cap_ns, tun.short_burst_ns));
			tctx->sync_wakeup = 0;
		}
	}
	/*
	 * Whether this stint was the lane's (brisk_lane_stint); a latency-critical wakeup in the
	 * fair order past what a wakeup buys is a fair task until it wakes again.
	 */
	lane = brisk_lane_stint(tctx->lat_crit, tctx->lat_fair, tctx->burst.cur_ns - delta,
				tun.slice_ns);
	if (!lane)
		tctx->lat_fair = 0;
	if (cctx) {
		/* Its own flags: a preempting wakeup marks the CPU's running_lat in advance. */
		lat_share_account(tctx->llc, delta, lane, runnable);
		cctx->running_dl = 0;
		cctx->running_short = 0;
		cctx->running_lat = 0;
	}
}

/*
 * A higher class (RT, deadline, stop) takes @cpu. The task it preempts was put back at the head
 * of @cpu's local DSQ, and tasks handed to that DSQ directly (idle pick, hand-offs,
 * preemption) wait there too: all of them until the higher-class task sleeps, however long,
 * while other CPUs may be free or running later deadlines. Send them back through
 * ops.enqueue, which queues them in another CPU's fair queue of the LLC (fair_home; or their
 * CPU's pinned queue if pinned); until ops.cpu_acquire, no fair task is queued here.
 */
void BPF_STRUCT_OPS(brisk_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	struct cpu_ctx *cctx = lookup_cpu_ctx(cpu);

	if (cctx)
		cctx->released = 1;
	scx_bpf_reenqueue_local();
	COUNT(nr_cpu_released);
}

/* @cpu is back from the higher class: its fair queue takes tasks again. */
void BPF_STRUCT_OPS(brisk_cpu_acquire, s32 cpu, struct scx_cpu_acquire_args *args)
{
	struct cpu_ctx *cctx = lookup_cpu_ctx(cpu);

	if (cctx && cctx->released)
		cctx->released = 0;
}

void BPF_STRUCT_OPS(brisk_enable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct llc_ctx *l;
	u32 llc;

	if (!tctx)
		return;
	tctx->ours = 1;
	llc = llc_of(scx_bpf_task_cpu(p));
	/*
	 * Back from another class: placed as a task that wakes from a sleep that long. It keeps
	 * what it is ahead of its clock (started at the clock, a nice-19 hog that passed through
	 * the real-time class would leave its debt behind), and banks at most sleep_credit_ns of
	 * the time it was away. Its return is no wakeup: not latency-critical, whatever its last
	 * wakeup was.
	 */
	if (tctx->enabled_before) {
		follow_llc(tctx, llc);
		tctx->vruntime = brisk_wake_vruntime(tctx->vruntime, clock_of(tctx->llc),
						     tun.sleep_credit_ns);
		tctx->lat_crit = 0;
		tctx->lat_fair = 0;
		return;
	}
	tctx->enabled_before = 1;
	tctx->llc = llc;
	l = llc_ctx_of(llc);
	tctx->vruntime = brisk_new_vruntime(clock_of(llc), l ? l->slice_ns : tun.slice_ns);
	tctx->off_clock = 1;
	/* New tasks start on the border: neither short nor a hog until they show which. */
	tctx->burst.avg_ns = tun.short_burst_ns;
	tctx->burst.seg_avg_ns = tun.short_burst_ns;
	tctx->burst.cur_ns = 0;
	tctx->burst.seg_mark = 0;
}

/* The task leaves scx_brisk (another class, or the scheduler goes): the probes let it be. */
void BPF_STRUCT_OPS(brisk_disable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	tctx->ours = 0;
	tctx->runnable = 0;
	load_track(tctx, false, 0);
	wait_untrack(tctx);
	/* A queued task that leaves (to another class) was never stopped: its load goes here. */
	cg_track(p, tctx, false);
	brisk_lat_switched_out(&tctx->lat, 0, 0);
}

s32 BPF_STRUCT_OPS(brisk_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -ENOMEM;
	if (bpf_core_field_exists(args->cgroup) && args->cgroup)
		tctx->cg_level = args->cgroup->level;
	return 0;
}

/* A cgroup with the cpu controller comes online (or is there as scx_brisk loads). */
s32 BPF_STRUCT_OPS_SLEEPABLE(brisk_cgroup_init, struct cgroup *cgrp,
			     struct scx_cgroup_init_args *args)
{
	struct cg_ctx *c;

	c = bpf_cgrp_storage_get(&cg_ctxs, cgrp, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c)
		return -ENOMEM;
	c->weight = args->weight;
	return 0;
}

/*
 * What @cgrp counts for in its parent's load while active becomes @weight, or nothing from now
 * on if it goes offline (@offline: late events from its dying tasks leave the parent alone).
 */
static void cg_reweigh(struct cgroup *cgrp, u32 weight, bool offline)
{
	struct cg_ctx *c = bpf_cgrp_storage_get(&cg_ctxs, cgrp, 0, 0);
	s64 delta = 0;

	if (!c)
		return;
	bpf_spin_lock(&c->lock);
	if (c->load > 0 && !c->dead)
		delta = (offline ? 0 : (s64)weight) - c->weight;
	if (offline)
		c->dead = 1;
	else
		c->weight = weight;
	bpf_spin_unlock(&c->lock);
	cg_parent_add(cgrp, delta);
}

/* It goes offline: its weight leaves its parent's load. */
void BPF_STRUCT_OPS(brisk_cgroup_exit, struct cgroup *cgrp)
{
	cg_reweigh(cgrp, 0, true);
}

/*
 * cpu.weight changed. Some kernels call this before cgroup_init, whose arguments then carry
 * the weight: a cgroup without storage yet is left alone.
 */
void BPF_STRUCT_OPS(brisk_cgroup_set_weight, struct cgroup *cgrp, u32 weight)
{
	cg_reweigh(cgrp, weight, false);
}

/*
 * @p moves to @to, taken off its queue if queued: its weight leaves @from's load here and is
 * counted in @to's by ops.enqueue, which follows (or, for a running task, which ops.stopping
 * took out already, by ops.running). Its vruntime stays on its LLC's clock.
 */
void BPF_STRUCT_OPS(brisk_cgroup_move, struct task_struct *p, struct cgroup *from,
		    struct cgroup *to)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	if (tctx->cg_counted && from)
		cg_load_add(from, -(s64)tctx->cg_counted);
	tctx->cg_counted = 0;
	tctx->cg_level = to->level;
	tctx->runnable = 0;
}

/*
 * @p's nice (or scheduling policy) changed, taken off its queue if queued: its old weight leaves
 * its cgroup's load here, and ops.enqueue, which follows, counts it again with the new one
 * (task_runnable). Left counted, a queued hog that never sleeps would keep its old weight in
 * its cgroup's load for good, and its cgroup's share would be cut by the ratio of the two
 * weights. A running task was taken out by ops.stopping and is counted again by ops.running;
 * a sleeping one is counted as it wakes.
 */
void BPF_STRUCT_OPS(brisk_set_weight, struct task_struct *p, u32 weight)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	cg_track(p, tctx, false);
	tctx->runnable = 0;
	/*
	 * What it ran so far was charged at the old weight (ops.stopping came first if it was
	 * running); its distance from its clock is rescaled to the new one.
	 */
	if (tctx->weight_seen && tctx->weight_seen != weight) {
		tctx->vruntime = brisk_reweight_vruntime(tctx->vruntime, clock_of(tctx->llc),
							 tctx->weight_seen, weight);
		/*
		 * Taken off its CPU in mid-stint, it goes straight back on (ops.running): it
		 * started this stint already, and what it ran since, rescaled to its new weight,
		 * would move the clock by up to 100x its run (nice 0 to 19) and leave every other
		 * task of the LLC that far behind it.
		 */
		if (scx_bpf_task_running(p))
			tctx->off_clock = 1;
	}
	tctx->weight_seen = weight;
}

/* llc_masks: each LLC's CPUs, as the loader's topology (cpu_llc) has them. */
static s32 build_llc_masks(void)
{
	struct bpf_cpumask *mask;
	struct llc_mask *m;
	u32 llc, cpu;

	bpf_for (llc, 0, nr_llcs) {
		m = bpf_map_lookup_elem(&llc_masks, &llc);
		if (!m)
			return -ENOENT;
		mask = bpf_cpumask_create();
		if (!mask)
			return -ENOMEM;
		bpf_for (cpu, 0, nr_cpu_ids_seen) {
			if (llc_of(cpu) == llc)
				bpf_cpumask_set_cpu(cpu, mask);
		}
		mask = bpf_kptr_xchg(&m->cpus, mask);
		if (mask)
			bpf_cpumask_release(mask);
	}
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(brisk_init)
{
	s32 ret;
	u32 i;

	bpf_for (i, 0, nr_cpu_ids_seen) {
		ret = scx_bpf_create_dsq(cpu_dsq(i), -1);
		if (!ret)
			ret = scx_bpf_create_dsq(fair_dsq(i), -1);
		if (ret) {
			scx_bpf_error("failed to create DSQs for CPU %u: %d", i, ret);
			return ret;
		}
	}
	ret = scx_bpf_create_dsq(BRISK_LIMBO_DSQ, -1);
	if (ret) {
		scx_bpf_error("failed to create the limbo DSQ: %d", ret);
		return ret;
	}
	bpf_for (i, 0, nr_llcs) {
		ret = scx_bpf_create_dsq(lat_dsq(i), -1);
		if (ret) {
			scx_bpf_error("failed to create the latency DSQ for LLC %u: %d", i, ret);
			return ret;
		}
	}
	if (nr_llcs > 1 && (ret = build_llc_masks())) {
		scx_bpf_error("failed to build the LLCs' CPU masks: %d", ret);
		return ret;
	}
	return 0;
}

void BPF_STRUCT_OPS(brisk_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

/* clang-format off */
SCX_OPS_DEFINE(brisk_ops,
	       .select_cpu = (void *)brisk_select_cpu,
	       .enqueue = (void *)brisk_enqueue,
	       .dispatch = (void *)brisk_dispatch,
	       .running = (void *)brisk_running,
	       .stopping = (void *)brisk_stopping,
	       .cpu_release = (void *)brisk_cpu_release,
	       .cpu_acquire = (void *)brisk_cpu_acquire,
	       .enable = (void *)brisk_enable,
	       .disable = (void *)brisk_disable,
	       .init_task = (void *)brisk_init_task,
	       .cgroup_init = (void *)brisk_cgroup_init,
	       .cgroup_exit = (void *)brisk_cgroup_exit,
	       .cgroup_move = (void *)brisk_cgroup_move,
	       .cgroup_set_weight = (void *)brisk_cgroup_set_weight,
	       .set_weight = (void *)brisk_set_weight,
	       .init = (void *)brisk_init,
	       .exit = (void *)brisk_exit,
	       .timeout_ms = BRISK_TIMEOUT_MS,
	       /* ops.enqueue places a CPU's last task (SCX_ENQ_LAST), see there. */
	       .flags = SCX_OPS_ENQ_LAST,
	       .name = "brisk");
/* clang-format on */
