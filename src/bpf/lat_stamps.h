/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: the latency probes' per-task timestamps and how a context switch moves them, as
 * pure functions shared by the scheduler's probes, the standalone probe object and the host
 * tests (policy_host.c).
 *
 * A timestamp is 0 when nothing is pending. The rule that keeps samples honest: a timestamp
 * only survives while the task has not run since it was taken.
 */
#ifndef __BRISK_LAT_STAMPS_H
#define __BRISK_LAT_STAMPS_H

#include "intf.h"

struct brisk_lat_stamps {
	u64 wake_at;	/* woken: sched_waking / sched_wakeup_new */
	u64 preempt_at; /* switched out while still runnable */
	u64 enq_at;	/* put on a dispatch queue by scx_brisk */
};

/*
 * The task left its CPU at @now, still @runnable (preempted, or its slice ran out) or going to
 * sleep.
 * - Runnable: it waits again from now. A wakeup stamp taken while it still ran (it was woken
 *   before it got to sleep, common with pipes and futexes) is over, since it ran afterwards;
 *   kept, it would turn into a "wakeup" sample that includes its own run. Its queue stamp
 *   stays: ops.enqueue already re-queued it, before this switch was traced.
 * - Going to sleep: nothing may carry over into its next wakeup.
 */
static inline void brisk_lat_switched_out(struct brisk_lat_stamps *s, int runnable, u64 now)
{
	s->wake_at = 0;
	if (runnable) {
		s->preempt_at = now;
	} else {
		s->preempt_at = 0;
		s->enq_at = 0;
	}
}

/* The delay since *@since, clearing it; 0 when none was pending or the clock went back. */
static inline u64 brisk_lat_take(u64 *since, u64 now)
{
	u64 t = *since;

	*since = 0;
	return t && now > t ? now - t : 0;
}

#endif /* __BRISK_LAT_STAMPS_H */
