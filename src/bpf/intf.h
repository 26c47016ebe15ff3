/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: what the BPF scheduler and its Rust loader share.
 *
 * Everything that shapes the policy is a field of struct brisk_tunables, filled by the loader
 * from the table of tunables in src/tunables.rs.
 */
#ifndef __BRISK_INTF_H
#define __BRISK_INTF_H

#ifndef __VMLINUX_H__
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int s32;
typedef long long s64;
#endif

enum brisk_consts {
	BRISK_MAX_CPUS = 1024,
	BRISK_MAX_LLCS = 256,
	/* cgroup levels below the root that cpu.weight is followed through (deeper ones: flat). */
	BRISK_CG_MAX_DEPTH = 16,
	/* Watchdog: the kernel ejects the scheduler if a runnable task waits this long. */
	BRISK_TIMEOUT_MS = 5000,
	/*
	 * DSQ ids, all vtime-ordered: per CPU, one for pinned tasks and one fair queue for the
	 * rest (the CPUs of an LLC share out their fair queues in dispatch); per LLC, one for
	 * latency-critical wakeups.
	 */
	BRISK_CPU_DSQ_BASE = 0,
	BRISK_FAIR_DSQ_BASE = 1 << 16,
	/* --debug-stall-hogs parks hogs here, and nothing ever dispatches from it. */
	BRISK_LIMBO_DSQ = 1 << 20,
	/* One vtime-ordered DSQ per LLC for latency-critical wakeups, served before the fair ones.
	 */
	BRISK_LAT_DSQ_BASE = 1 << 17,
	/*
	 * How far, in base slices, the latency-critical lane may run beyond lat_share_max_pct
	 * of an LLC's time before its busy tasks wait for the fair queue (brisk_lat_defer; light
	 * ones at 4 times this, and the debt stops at 8 times). Larger lets a burst of
	 * latency-critical work through whole; smaller bounds sooner how long a saturated lane
	 * holds the fair queue (at 67 %, three times this).
	 */
	BRISK_LAT_ALLOWANCE_SLICES = 2,
	/*
	 * A latency-critical task that runs at most this share of the time between its wakeups
	 * (percent) is light: it goes before busy ones and keeps going first while busy ones
	 * wait for the fair queue (brisk_lat_defer). Higher counts busier tasks as light.
	 */
	BRISK_LAT_LIGHT_DUTY_PCT = 30,
	/*
	 * A task whose bursts average at most this many base slices may be latency-critical
	 * (brisk_is_lat_crit): a 60 Hz frame loop with up to 10 ms of CPU per frame at the
	 * default slice, or a 4 ms one whose bursts interrupts and emulation stretch past one
	 * slice now and then. Longer admits longer bursts to the lane; no lane task preempts
	 * another, so the lane's later wakeups wait up to that long for the CPU it holds (they
	 * preempt a hog on another CPU meanwhile), and the lane's share bounds the whole.
	 */
	BRISK_LAT_BURST_SLICES = 2,
	/*
	 * How many base slices of CPU one latency-critical wakeup may run in the lane before the
	 * rest of its burst queues in the fair order (brisk_lat_keeps). Larger lets a burst that
	 * an interruption stretched (an interrupt storm, a hypervisor taking the vCPU) or an
	 * occasional long frame finish first, rather than wait a round of a crowded fair queue;
	 * smaller bounds sooner what one wakeup takes out of the fair order. Past its first
	 * slice it sorts in the lane by what it has run (brisk_lat_deadline), so it does not hold
	 * back the lane's later wakeups.
	 */
	BRISK_LAT_KEEP_SLICES = 4,
	/*
	 * The slice of a hog (a fair task that is not short) that starts, or goes on, while
	 * latency-critical wakeups wait for the fair queue (the lane deferred to it,
	 * brisk_lat_defer): they wait about this long per deferral, not a whole fair slice.
	 * Shorter serves them sooner, at the cost of more switches for the hogs of an overloaded
	 * LLC; the fair queue's share of the time (lat_share_max_pct) is the same either way,
	 * taken in more, shorter turns. Short tasks keep their slices: cutting message passers'
	 * batches costs more switches than it saves waiting (docs/bench/findings.md).
	 */
	BRISK_DEFERRED_SLICE_NS = 1000 * 1000,
	/*
	 * A waker whose bursts (wakeup to sleep) average at most this, and whose current one is
	 * no longer, is taken to sleep soon: it hands its CPU to the task it wakes even while
	 * another CPU idles (brisk_sleeps_soon). Longer bets on more wakers (a reply that waits
	 * out a longer burst while a CPU idles); shorter wakes more idle CPUs (an IPI and the
	 * idle exit per wakeup).
	 */
	BRISK_AFFINE_BURST_NS = 200 * 1000,
	/*
	 * A fair task the latency-critical lane preempts resumes the rest of its slice after the
	 * lane's task (lat_resume) if at least this much is left; less, and it queues in the fair
	 * order as at its slice's end. Larger queues more of them again (a switch to the crowd
	 * for the little left); smaller resumes stints too short to be worth the priority.
	 */
	BRISK_RESUME_MIN_NS = 500 * 1000,
	/* Starvation guard: how often a CPU scans its queues for tasks waiting too long. */
	BRISK_STARVE_SCAN_INTERVAL_NS = 100 * 1000 * 1000,
	/* ops.dispatch's passes over its queues before it returns with nothing: a bound for the
	 * verifier (a pass repeats only if a pinned task came while a move dropped the lock). */
	BRISK_DISPATCH_PASSES = 4,
};

/* Latency histograms (see lat_hist.h): 1 + 4 * 24 log-linear buckets + overflow. */
enum brisk_lat_consts {
	BRISK_LAT_MAX_LOG2 = 24,
	BRISK_LAT_NR_BUCKETS = 1 + 4 * 24 + 1,
};

/* What a latency histogram measures. */
enum brisk_lat_kind {
	BRISK_LAT_WAKEUP = 0,	 /* woken (sched_wakeup/_new) -> first on a CPU */
	BRISK_LAT_PREEMPTED = 1, /* switched out while still runnable -> back on a CPU */
	BRISK_LAT_DISPATCH = 2,	 /* put on a DSQ by scx_brisk -> running */
	BRISK_LAT_NR_KINDS = 3,
};

/*
 * Task classes a histogram is kept for: the policy's own classification. Every task is in
 * exactly one, so userspace sums them for "all" (latency.rs) rather than the probes paying for
 * a second histogram update per sample.
 */
enum brisk_lat_class {
	BRISK_CLASS_SHORT = 0,
	BRISK_CLASS_HOG = 1,
	BRISK_NR_CLASSES = 2,
};

struct brisk_lat_hist {
	u64 count;
	u64 sum_ns;
	u64 max_ns;
	u64 buckets[BRISK_LAT_NR_BUCKETS];
};

/*
 * `scx_brisk top`: what the standalone probe object keeps per task (thread id) for it, in an
 * LRU map of at most BRISK_TOP_MAX_TASKS entries (so memory stays bounded whatever runs): its
 * wakeup latency, CPU time, and the tasks it waited behind (the one its CPU switched from
 * when it finally ran), the BRISK_TOP_NR_BEHIND that cost it most.
 */
enum brisk_top_consts {
	BRISK_TOP_MAX_TASKS = 4096,
	BRISK_TOP_NR_BEHIND = 3,
	BRISK_COMM_LEN = 16,
};

struct brisk_top_behind {
	u64 wait_ns; /* the waits that ended with it switched out, summed */
	u64 count;
	u32 pid;
	char comm[BRISK_COMM_LEN];
};

struct brisk_top_task {
	char comm[BRISK_COMM_LEN];
	u32 tgid;
	u32 is_short; /* its class at its last switch-in (policy.h's burst rule) */
	u64 burst_ns; /* the burst that class was decided by (brisk_burst_now) */
	u64 run_ns;   /* CPU time */
	u64 on_at;    /* when it was switched in, 0 while off a CPU */
	struct brisk_lat_hist wakeup;
	struct brisk_top_behind behind[BRISK_TOP_NR_BEHIND];
};

/*
 * The policy's tunables as the BPF side reads them. Their one definition (unit, range,
 * default, what each trades off) is the table in src/tunables.rs; the loader fills this struct
 * from it (`Tunables::to_bpf`, which names every field, so the two cannot drift apart). Times
 * are in ns, booleans 0 or 1; every field is a u64.
 */
struct brisk_tunables {
	u64 slice_ns;
	u64 slice_min_ns;
	u64 short_burst_ns;
	u64 burst_cap_ns;
	u64 sleep_credit_ns;
	u64 preempt_margin_ns;
	u64 starve_ns;
	u64 burst_ewma_shift;
	u64 lat_duty_max_pct;
	u64 lat_share_max_pct;
	u64 wakeup_preempt;
	u64 lat_wait_for_short;
	u64 lat_lane_task_wakeups;
	u64 lat_fair_lead_ns;
	u64 locality_margin_ns;
	u64 lat_resume;
	/*
	 * Generation of this set of values: the loader bumps it with every change it writes, and
	 * the BPF side copies the generation it runs with into tun_gen_seen (see main.bpf.c).
	 */
	u64 gen;
};

/* Per-CPU decision counters; userspace sums them over CPUs. */
struct brisk_counters {
	u64 nr_direct_idle;    /* select_cpu found an idle CPU: straight to its local DSQ */
	u64 nr_queued_shared;  /* enqueued on a CPU's fair DSQ, shared out in its LLC */
	u64 nr_queued_pinned;  /* enqueued on a CPU's own DSQ (one allowed CPU / migration off) */
	u64 nr_idle_kicks;     /* enqueue woke an idle CPU to take the task */
	u64 nr_short_wakeups;  /* wakeups of tasks classified short */
	u64 nr_preempts;       /* a waking short task preempted a hog (SCX_ENQ_PREEMPT) */
	u64 nr_preempt_none;   /* a short wakeup found no CPU worth preempting */
	u64 nr_dispatched;     /* ops.dispatch moved a task from our DSQs to a CPU */
	u64 nr_stolen;	       /* ... of which from another LLC's DSQ (work conservation) */
	u64 nr_keep_running;   /* the previous task still had the earliest deadline: new slice */
	u64 nr_starve_rescues; /* a task queued longer than starve_ns was run out of order */
	u64 nr_sync_affine;    /* a sync wakeup stayed on the waker's CPU (no idle CPU kicked) */
	u64 nr_sync_handoff;   /* ... straight to its local DSQ from select_cpu, nothing waiting */
	u64 nr_wake_handoff;   /* a wakeup by a short task, nothing waiting: to the waker's CPU */
	u64 nr_wake_affine;    /* ... by a task that sleeps soon, before any idle CPU is tried */
	u64 nr_irq_wakeups;    /* non-sync wakeups from an interrupt (timers): no waker to trust */
	u64 nr_cpu_released;   /* RT/deadline took a CPU: its local DSQ was re-enqueued */
	u64 nr_lat_wakeups;    /* latency-critical wakeups (served before the fair queue) */
	u64 nr_lat_preempts;   /* ... that preempted a task that was not latency-critical */
	u64 nr_ipi_preempts;   /* preemptions of a CPU other than the waker's: an IPI each */
	u64 nr_lat_deferred;   /* ... waited: the lane over its share, the fair queue first */
	u64 nr_lat_no_burst;   /* non-sync wakeups refused: average burst over the lane's bound */
	u64 nr_lat_no_duty;    /* non-sync wakeups refused: duty cycle over lat_duty_max_pct */
	u64 nr_lat_demoted;    /* latency-critical tasks past their latency slice: to fair order */
	u64 nr_lat_fair;       /* latency-critical wakeups by a task queued in the fair order */
	u64 nr_balanced;       /* dispatch took work from a more loaded LLC (balance_llcs) */
	u64 nr_smt_spread;     /* a hog beside a busy SMT sibling moved to a whole idle core */
	u64 nr_last_requeued;  /* a CPU's last task, slice over, queued to run on (ENQ_LAST) */
	u64 nr_pin_rechecks; /* dispatch saw its pinned or fair queue filled while its moves ran */
	u64 nr_fair_own;     /* a task from a CPU's fair DSQ started on that CPU */
	u64 nr_fair_other;   /* ... on another CPU (taken from its queue: a migration) */
	u64 nr_unlisted_local;	  /* bound for a CPU outside the loaded topology: its local DSQ */
	u64 nr_lat_resumed;	  /* a fair task the lane preempted resumed its slice after it */
	u64 nr_resume_ahead;	  /* a wakeup went before such a task, after the lane's */
	u64 nr_lat_fair_deferred; /* of nr_lat_fair, lane over its share: placed at the clock */
	u64 nr_lat_stints;	  /* a task in the latency-critical lane stopped running */
	u64 lat_run_ns;		  /* ... and the CPU time of those stints: the lane's share */
	u64 nr_hog_stints; /* a hog (not short, not in the lane) stopped: one stint on a CPU */
	u64 hog_run_ns;	   /* ... and the CPU time of those stints, summed (avg = sum / nr) */
};

#endif /* __BRISK_INTF_H */
