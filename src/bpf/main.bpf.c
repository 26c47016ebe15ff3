/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: a weighted-vruntime scheduler that favours short-running tasks.
 *
 * Every task has a vruntime that advances with its runtime scaled by its weight (nice). Tasks
 * are queued by deadline = vruntime + (capped, weighted) burst, where the burst is the CPU time
 * a task uses between sleeps, averaged per task. Tasks that run briefly and sleep therefore sort
 * ahead of CPU hogs with the same vruntime, while a hog's deadline stays within burst_cap of its
 * fair position, so it keeps its weighted share and is never starved.
 *
 * Placement: a waking task goes straight to an idle CPU when there is one (the kernel's
 * topology-aware pick: previous CPU first, then SMT/LLC siblings). Otherwise it is queued on
 * its LLC's shared deadline-ordered DSQ (tasks that may run on one CPU only use that CPU's own
 * DSQ), and a short task may preempt the CPU running the hog with the latest deadline.
 */
#include <scx/common.bpf.h>
#include "intf.h"
#include "policy.h"
#include "lat_stamps.h"

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);

/* Topology, filled in by the loader from scx_utils::Topology before load. */
const volatile u32 nr_cpu_ids_seen = 1;
const volatile u32 nr_llcs = 1;
const volatile u32 cpu_llc[BRISK_MAX_CPUS];
const volatile u32 llc_nr_cpus[BRISK_MAX_LLCS];

/*
 * Testing only (--debug-stall-hogs, hidden): hogs are parked in a DSQ that is never
 * dispatched, so the kernel's watchdog ejects the scheduler. Proves that an ejection is
 * reported and that --restart-on-error works.
 */
const volatile bool debug_stall_hogs;

/*
 * The latency probes (probes.bpf.h) are loaded: take the queueing timestamps they use. False
 * with --no-latency-probes, so that "off" pays for no clock reads either.
 */
const volatile bool probes_on = true;

/* Probe timestamp: now, or 0 (nothing pending) when the probes are off. */
static u64 probe_stamp(void)
{
	return probes_on ? bpf_ktime_get_ns() : 0;
}

#define BRISK_DFL_TUNABLES                                        \
	{                                                         \
		.slice_ns = BRISK_DFL_SLICE_NS,                   \
		.slice_min_ns = BRISK_DFL_SLICE_MIN_NS,           \
		.short_burst_ns = BRISK_DFL_SHORT_BURST_NS,       \
		.burst_cap_ns = BRISK_DFL_BURST_CAP_NS,           \
		.sleep_credit_ns = BRISK_DFL_SLEEP_CREDIT_NS,     \
		.preempt_margin_ns = BRISK_DFL_PREEMPT_MARGIN_NS, \
		.starve_ns = BRISK_DFL_STARVE_NS,                 \
		.burst_ewma_shift = BRISK_DFL_BURST_EWMA_SHIFT,   \
		.wakeup_preempt = BRISK_DFL_WAKEUP_PREEMPT,       \
	}

/*
 * The policy's tunables (see intf.h), read on every decision and changed while the scheduler
 * runs (scx_brisk ctl, policy files, the auto-tuner). Two copies: the loader writes the one not
 * in use and then flips tun_active, so a change of several keys takes effect together and no
 * field is ever read half-written (only a decision running across the flip itself may read
 * some fields from each set). The loader never writes the active copy.
 */
struct brisk_tunables tun_slots[2] = {BRISK_DFL_TUNABLES, BRISK_DFL_TUNABLES};
volatile u32 tun_active;
#define tun (tun_slots[tun_active & 1])

/* The generation of the tunables the policy last ran with: lets the loader confirm a change. */
u64 tun_gen_seen;

/*
 * The scheduler's virtual clock: the vruntime of the most recently started task, never going
 * back. Tasks run in deadline order, so it tracks the low end of the runnable vruntimes.
 */
static u64 vtime_now;

/* The slice most recently handed out, for the stats. */
u64 last_slice_ns;

/* Tasks waiting in each LLC when a slice was last handed out there: scales deadline offsets. */
u64 llc_nr_waiting[BRISK_MAX_LLCS];

struct task_ctx {
	u64 vruntime;
	u64 avg_burst_ns; /* EWMA of CPU time between sleeps */
	u64 cur_burst_ns; /* CPU time since the task last woke */
	u64 started_at;	  /* when it last got a CPU */
	u64 queued_at;	  /* when it was last put on one of our DSQs (bpf_ktime_get_ns) */
	/* Latency probes' timestamps (bpf_ktime_get_ns), 0 when not pending. */
	struct brisk_lat_stamps lat;
	/* Between ops.enable and ops.disable: run by scx_brisk, so the probes measure it. */
	u32 ours;
	/* The last wakeup was synchronous: the waker is about to sleep and free its CPU. */
	u32 sync_wakeup;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/* What each CPU runs, read by other CPUs looking for a preemption victim. */
struct cpu_ctx {
	u64 running_dl;	   /* deadline of the current task, 0 when idle or not ours */
	u32 running_short; /* current task is short: never a preemption victim */
	u32 pad;
	u64 last_scan_at; /* last starvation scan of this CPU's queues */
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

static u64 llc_dsq(u32 llc)
{
	return BRISK_LLC_DSQ_BASE + llc;
}

static u64 cpu_dsq(s32 cpu)
{
	return BRISK_CPU_DSQ_BASE + cpu;
}

static u64 task_burst(const struct task_ctx *tctx)
{
	return brisk_effective_burst(tctx->avg_burst_ns, tctx->cur_burst_ns);
}

static bool task_is_short(const struct task_ctx *tctx)
{
	return brisk_is_short(task_burst(tctx), tun.short_burst_ns);
}

/* How many tasks wait in @cpu's LLC (as last seen) and how many CPUs it has. */
static void llc_load(s32 cpu, u64 *nr_waiting, u64 *nr_cpus)
{
	u32 llc = llc_of(cpu);
	const volatile u32 *nr = MEMBER_VPTR(llc_nr_cpus, [llc]);
	u64 *waiting = MEMBER_VPTR(llc_nr_waiting, [llc]);

	*nr_cpus = nr ? *nr : 1;
	*nr_waiting = waiting ? *waiting : 0;
}

static u64 deadline_at(const struct task_struct *p, u64 vruntime, u64 burst, s32 cpu)
{
	u64 nr_waiting, nr_cpus;

	llc_load(cpu, &nr_waiting, &nr_cpus);
	return brisk_deadline_contended(vruntime, burst, tun.burst_cap_ns, p->scx.weight,
					nr_waiting, nr_cpus);
}

static u64 task_deadline(const struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	return deadline_at(p, tctx->vruntime, task_burst(tctx), cpu);
}

/* Deadline of the task running now, counting the runtime of its current run. */
static u64 running_deadline(const struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	u64 ran = scx_bpf_now() - tctx->started_at;
	u64 burst = brisk_effective_burst(tctx->avg_burst_ns, tctx->cur_burst_ns + ran);

	return deadline_at(p, tctx->vruntime + brisk_scale_inverse(ran, p->scx.weight), burst, cpu);
}

/*
 * Slice for @tctx's task about to run on @cpu: the base slice shrunk by the number of tasks
 * waiting there, but never less than short_burst_ns for a short task, so that its burst is
 * not cut at a tick and sent to the back of the queue (it sleeps before using it up anyway).
 */
static u64 task_slice_waiting(const struct task_ctx *tctx, s32 cpu, u64 waiting)
{
	u32 llc = llc_of(cpu);
	const volatile u32 *nr = MEMBER_VPTR(llc_nr_cpus, [llc]);
	u64 nr_cpus = nr ? *nr : 1;

	if (llc < BRISK_MAX_LLCS)
		llc_nr_waiting[llc] = waiting;
	last_slice_ns = brisk_slice(tun.slice_ns, tun.slice_min_ns, waiting, nr_cpus);
	return brisk_task_slice(last_slice_ns, tctx && task_is_short(tctx), tun.short_burst_ns);
}

static u64 task_slice(const struct task_ctx *tctx, s32 cpu)
{
	u64 waiting = scx_bpf_dsq_nr_queued(llc_dsq(llc_of(cpu)));

	if (cpu >= 0)
		waiting += scx_bpf_dsq_nr_queued(cpu_dsq(cpu));
	return task_slice_waiting(tctx, cpu, waiting);
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

/*
 * No CPU is idle for a waking task, so it will wait in its LLC's queue for the first CPU that
 * frees up, whichever it is: only the CPU it is woken on (its rq) is still to choose. The
 * waker's CPU (if the task may run there, in the same LLC) beats its previous one, which is
 * busy: the wakeup then needs no remote rq lock, and when the waker is about to sleep (a
 * request handed to a worker through a futex) that CPU takes the task without migrating it
 * from another rq. Under emulation that migration is tens of microseconds per wakeup.
 */
static s32 wake_affine_busy(const struct task_struct *p, s32 prev_cpu)
{
	s32 this_cpu = bpf_get_smp_processor_id();

	if (this_cpu != prev_cpu && llc_of(this_cpu) == llc_of(prev_cpu) &&
	    (runs_anywhere(p) || bpf_cpumask_test_cpu(this_cpu, p->cpus_ptr)))
		return this_cpu;
	return prev_cpu;
}

/*
 * Whether the task running here, the waker, is short: about to sleep, as a thread that hands a
 * request to a worker through a futex and waits for the reply is. The kernel marks only pipe
 * and socket wakeups synchronous; this is the same bet for the others, made on the waker's
 * history. If it loses, the wakee waits for the waker's slice on this CPU.
 */
static bool waker_is_short(void)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct task_ctx *w = bpf_task_storage_get(&task_ctxs, cur, 0, 0);

	return w && w->ours && task_is_short(w);
}

/* Nothing waits to run on @cpu (the CPU this runs on): not locally, nor in its queues. */
static bool nothing_waits_here(s32 cpu)
{
	return !scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL) &&
	       !scx_bpf_dsq_nr_queued(llc_dsq(llc_of(cpu))) && !scx_bpf_dsq_nr_queued(cpu_dsq(cpu));
}

s32 BPF_STRUCT_OPS(brisk_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	bool is_idle = false;
	s32 cpu;

	if (tctx)
		tctx->sync_wakeup = !!(wake_flags & SCX_WAKE_SYNC);
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		if (tctx)
			tctx->lat.enq_at = probe_stamp();
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, task_slice(tctx, cpu), 0);
		COUNT(nr_direct_idle);
	} else if ((wake_flags & SCX_WAKE_SYNC) && cpu == bpf_get_smp_processor_id() &&
		   nothing_waits_here(cpu)) {
		/*
		 * Synchronous hand-off (pipes, sockets): the waker is about to sleep on this CPU
		 * and nothing else waits here or in the LLC, so the wakee runs next whatever its
		 * deadline. Queue it on this CPU's local DSQ now: the same order enqueue's
		 * sync-affine path gives, without the ops.enqueue and ops.dispatch calls (the
		 * dearest part of a ping-pong message).
		 */
		if (tctx)
			tctx->lat.enq_at = probe_stamp();
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, task_slice_waiting(tctx, cpu, 0), 0);
		COUNT(nr_sync_affine);
		COUNT(nr_sync_handoff);
	} else if (!(wake_flags & SCX_WAKE_SYNC)) {
		cpu = wake_affine_busy(p, cpu);
		/*
		 * No CPU is idle and the wakee is to run here: if the waker is short and nothing
		 * else waits, hand the CPU over as for a synchronous wakeup. The CPU the waker
		 * leaves then runs the wakee without ops.enqueue and ops.dispatch (under emulation
		 * about 30 us per wakeup, most of a futex hand-off's cost over the kernel's own).
		 */
		if (cpu == bpf_get_smp_processor_id() && waker_is_short() &&
		    nothing_waits_here(cpu)) {
			if (tctx)
				tctx->lat.enq_at = probe_stamp();
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, task_slice_waiting(tctx, cpu, 0), 0);
			COUNT(nr_wake_handoff);
		}
	}
	return cpu;
}

/* Whether the task running on @cpu may be preempted by a waker with deadline @dl. */
static bool is_victim(const struct cpu_ctx *cctx, u64 dl)
{
	return cctx && cctx->running_dl && !cctx->running_short &&
	       brisk_should_preempt(dl, cctx->running_dl, tun.preempt_margin_ns);
}

/*
 * A short task woke and found no idle CPU: pick a CPU of its LLC whose current task it should
 * preempt (a hog whose deadline is later than the waker's by more than preempt_margin_ns).
 * The CPU handling the wakeup comes first, since preempting it needs no IPI (and is usually
 * the waker's previous CPU); otherwise the one running the latest deadline. Short running
 * tasks are never victims, so short tasks do not bounce each other. Returns -1 for none.
 */
static s32 pick_victim(const struct task_struct *p, u64 dl, u32 llc)
{
	s32 this_cpu = bpf_get_smp_processor_id(), victim = -1, cpu;
	struct cpu_ctx *cctx;
	u64 victim_dl = 0;

	bool anywhere = runs_anywhere(p);

	cctx = lookup_cpu_ctx(this_cpu);
	if (llc_of(this_cpu) == llc && is_victim(cctx, dl) &&
	    (anywhere || bpf_cpumask_test_cpu(this_cpu, p->cpus_ptr))) {
		victim = this_cpu;
	} else {
		bpf_for (cpu, 0, nr_cpu_ids_seen) {
			if (llc_of(cpu) != llc)
				continue;
			if (!anywhere && !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
				continue;
			cctx = lookup_cpu_ctx(cpu);
			if (is_victim(cctx, dl) && cctx->running_dl > victim_dl) {
				victim = cpu;
				victim_dl = cctx->running_dl;
			}
		}
	}
	/* Claim the victim so that concurrent wakers pick different CPUs. */
	if (victim >= 0 && (cctx = lookup_cpu_ctx(victim))) {
		cctx->running_dl = dl;
		cctx->running_short = 1;
	}
	return victim;
}

void BPF_STRUCT_OPS(brisk_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p), idle = -1, victim;
	struct task_ctx *tctx;
	bool pinned = is_pinned(p);
	u64 dl;

	tctx = lookup_task_ctx(p);
	if (!tctx)
		return;
	dl = task_deadline(p, tctx, cpu);
	/* One clock read for both stamps (each call is dear under emulation). */
	tctx->queued_at = bpf_ktime_get_ns();
	tctx->lat.enq_at = probes_on ? tctx->queued_at : 0;

	if (debug_stall_hogs && !task_is_short(tctx)) {
		scx_bpf_dsq_insert(p, BRISK_LIMBO_DSQ, tun.slice_ns, enq_flags);
		return;
	}

	/*
	 * A synchronous wakeup that select_cpu left on the waker's CPU (the kernel's pick does
	 * that when the waker's queue is empty): the waker is about to sleep, so its CPU runs the
	 * wakee next. Claiming and kicking an idle CPU instead would move every message of a pipe
	 * ping-pong to the other CPU, an IPI and a cold cache each way. Only when work already
	 * waits in the queue is an idle CPU woken to help.
	 */
	if (!pinned && (enq_flags & SCX_ENQ_WAKEUP) && tctx->sync_wakeup &&
	    cpu == bpf_get_smp_processor_id() && !scx_bpf_dsq_nr_queued(llc_dsq(llc_of(cpu)))) {
		scx_bpf_dsq_insert_vtime(p, llc_dsq(llc_of(cpu)), task_slice(tctx, cpu), dl,
					 enq_flags);
		COUNT(nr_sync_affine);
		return;
	}

	/* An idle CPU that can take it: claim it (pinned tasks: only their own CPU). */
	if (!pinned)
		idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	else if (scx_bpf_test_and_clear_cpu_idle(cpu))
		idle = cpu;

	/*
	 * A short task may preempt a hog when it wakes, and when ops.cpu_release sends it back
	 * here (SCX_ENQ_REENQ) because a real-time task took its CPU: it was running or about to,
	 * and would otherwise wait for a slice to end elsewhere.
	 */
	if ((enq_flags & (SCX_ENQ_WAKEUP | SCX_ENQ_REENQ)) && task_is_short(tctx)) {
		bool reenq = enq_flags & SCX_ENQ_REENQ;

		if (!reenq)
			COUNT(nr_short_wakeups);
		/*
		 * No preemption for a synchronous wakeup (pipes, sockets): the waker is about to
		 * sleep, so a CPU frees up at once; preempting a third task would only add an IPI
		 * and a context switch per message. (sync_wakeup is the last wakeup's: a re-enqueue
		 * is not one.)
		 */
		if (idle < 0 && tun.wakeup_preempt && (reenq || !tctx->sync_wakeup)) {
			victim = pick_victim(p, dl, llc_of(cpu));
			if (victim >= 0) {
				/* To the front of the victim's local queue; its task is preempted.
				 */
				scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | victim,
						   task_slice(tctx, victim),
						   enq_flags | SCX_ENQ_PREEMPT);
				COUNT(nr_preempts);
				return;
			}
			COUNT(nr_preempt_none);
		}
	}

	if (pinned) {
		scx_bpf_dsq_insert_vtime(p, cpu_dsq(cpu), task_slice(tctx, cpu), dl, enq_flags);
		COUNT(nr_queued_pinned);
	} else {
		/* Queue where the idle CPU takes it, if any, else where it was. */
		if (idle >= 0)
			cpu = idle;
		scx_bpf_dsq_insert_vtime(p, llc_dsq(llc_of(cpu)), task_slice(tctx, cpu), dl,
					 enq_flags);
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

/*
 * Starvation guard: at most every BRISK_STARVE_SCAN_INTERVAL_NS, look through @dsq_id for a task
 * that has waited longer than starve_ns and may run on @cpu, and run it here. (Moving a task to
 * a CPU outside its mask is an error that ejects the scheduler; the LLC queue holds tasks
 * allowed on only some of its CPUs.)
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
		if (!tctx || now - tctx->queued_at < tun.starve_ns)
			continue;
		if (!runs_anywhere(p) && !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		if (scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, 0)) {
			COUNT(nr_starve_rescues);
			return true;
		}
	}
	return false;
}

void BPF_STRUCT_OPS(brisk_dispatch, s32 cpu, struct task_struct *prev)
{
	u64 mine = cpu_dsq(cpu), shared = llc_dsq(llc_of(cpu)), first_dl, other_dl, prev_dl;
	u64 now = bpf_ktime_get_ns(); /* the clock of queued_at */
	struct cpu_ctx *cctx = lookup_cpu_ctx(cpu);
	u32 i, own_llc = llc_of(cpu);
	struct task_ctx *tctx;

	tun_gen_seen = tun.gen;
	if (cctx && now - cctx->last_scan_at >= BRISK_STARVE_SCAN_INTERVAL_NS) {
		cctx->last_scan_at = now;
		if (rescue_starving(mine, cpu, now) || rescue_starving(shared, cpu, now))
			return;
	}

	/*
	 * Earliest deadline first between this CPU's pinned tasks and its LLC's queue. Deadlines
	 * compare as plain u64 here: an empty queue reads as ~0, i.e. later than any task.
	 */
	first_dl = head_deadline(mine);
	other_dl = head_deadline(shared);
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
	    (tctx = bpf_task_storage_get(&task_ctxs, prev, 0, 0)) &&
	    (prev_dl = running_deadline(prev, tctx, cpu)) < first_dl) {
		prev->scx.slice = task_slice(tctx, cpu);
		/* No ops.running() follows: refresh what preempting wakers see (and any claim). */
		if (cctx) {
			cctx->running_dl = prev_dl;
			cctx->running_short = task_is_short(tctx);
		}
		COUNT(nr_keep_running);
		return;
	}

	if (scx_bpf_dsq_move_to_local(mine, 0) || scx_bpf_dsq_move_to_local(shared, 0)) {
		COUNT(nr_dispatched);
		return;
	}

	/* Nothing here: take work from other LLCs rather than idle. */
	bpf_for (i, 0, nr_llcs) {
		if (i == own_llc)
			continue;
		if (scx_bpf_dsq_move_to_local(llc_dsq(i), 0)) {
			COUNT(nr_dispatched);
			COUNT(nr_stolen);
			return;
		}
	}
}

void BPF_STRUCT_OPS(brisk_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	/* A new burst starts; what it banked while asleep is bounded by sleep_credit_ns. */
	tctx->cur_burst_ns = 0;
	tctx->vruntime = brisk_wake_vruntime(tctx->vruntime, vtime_now, tun.sleep_credit_ns);
}

void BPF_STRUCT_OPS(brisk_running, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = scx_bpf_task_cpu(p);
	struct cpu_ctx *cctx = lookup_cpu_ctx(cpu);

	if (!tctx)
		return;
	tctx->started_at = scx_bpf_now();
	if (tctx->vruntime > vtime_now)
		vtime_now = tctx->vruntime;
	if (cctx) {
		cctx->running_dl = task_deadline(p, tctx, cpu);
		cctx->running_short = task_is_short(tctx);
	}
}

void BPF_STRUCT_OPS(brisk_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct cpu_ctx *cctx = lookup_cpu_ctx(scx_bpf_task_cpu(p));
	u64 now = scx_bpf_now(), delta;

	if (!tctx)
		return;
	delta = now > tctx->started_at ? now - tctx->started_at : 0;
	tctx->vruntime += brisk_scale_inverse(delta, p->scx.weight);
	tctx->cur_burst_ns += delta;
	/* What hogs get per stint on a CPU: shows the effective slice in the stats. */
	if (!task_is_short(tctx)) {
		u32 zero = 0;
		struct brisk_counters *c = bpf_map_lookup_elem(&counters, &zero);

		if (c) {
			c->nr_hog_stints++;
			c->hog_run_ns += delta;
		}
	}
	/* Going to sleep: the burst is complete. */
	if (!runnable)
		tctx->avg_burst_ns = brisk_burst_avg(
			tctx->avg_burst_ns, tctx->cur_burst_ns, tun.burst_ewma_shift,
			brisk_burst_sample_cap(tun.burst_cap_ns, tun.short_burst_ns));
	if (cctx) {
		cctx->running_dl = 0;
		cctx->running_short = 0;
	}
}

/*
 * A higher class (RT, deadline, stop) takes @cpu. The task it preempts was put back at the head
 * of @cpu's local DSQ, and tasks handed to that DSQ directly (idle pick, hand-offs,
 * preemption) wait there too: all of them until the higher-class task sleeps, however long,
 * while other CPUs may be free or running later deadlines. Send them back through
 * ops.enqueue, which queues them in the LLC (or their CPU's queue if pinned) for any CPU.
 */
void BPF_STRUCT_OPS(brisk_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	scx_bpf_reenqueue_local();
	COUNT(nr_cpu_released);
}

void BPF_STRUCT_OPS(brisk_enable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	tctx->ours = 1;
	tctx->vruntime = vtime_now;
	/* New tasks start on the border: neither short nor a hog until they show which. */
	tctx->avg_burst_ns = tun.short_burst_ns;
	tctx->cur_burst_ns = 0;
}

/* The task leaves scx_brisk (another class, or the scheduler goes): the probes let it be. */
void BPF_STRUCT_OPS(brisk_disable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	tctx->ours = 0;
	brisk_lat_switched_out(&tctx->lat, 0, 0);
}

s32 BPF_STRUCT_OPS(brisk_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(brisk_init)
{
	s32 ret;
	u32 i;

	bpf_for (i, 0, nr_cpu_ids_seen) {
		ret = scx_bpf_create_dsq(cpu_dsq(i), -1);
		if (ret) {
			scx_bpf_error("failed to create DSQ for CPU %u: %d", i, ret);
			return ret;
		}
	}
	ret = scx_bpf_create_dsq(BRISK_LIMBO_DSQ, -1);
	if (ret) {
		scx_bpf_error("failed to create the limbo DSQ: %d", ret);
		return ret;
	}
	bpf_for (i, 0, nr_llcs) {
		ret = scx_bpf_create_dsq(llc_dsq(i), -1);
		if (ret) {
			scx_bpf_error("failed to create DSQ for LLC %u: %d", i, ret);
			return ret;
		}
	}
	return 0;
}

#include "probes.bpf.h"

void BPF_STRUCT_OPS(brisk_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

/* clang-format off */
SCX_OPS_DEFINE(brisk_ops,
	       .select_cpu = (void *)brisk_select_cpu,
	       .enqueue = (void *)brisk_enqueue,
	       .dispatch = (void *)brisk_dispatch,
	       .runnable = (void *)brisk_runnable,
	       .running = (void *)brisk_running,
	       .stopping = (void *)brisk_stopping,
	       .cpu_release = (void *)brisk_cpu_release,
	       .enable = (void *)brisk_enable,
	       .disable = (void *)brisk_disable,
	       .init_task = (void *)brisk_init_task,
	       .init = (void *)brisk_init,
	       .exit = (void *)brisk_exit,
	       .timeout_ms = BRISK_TIMEOUT_MS,
	       .name = "brisk");
/* clang-format on */
