/* SPDX-License-Identifier: GPL-2.0 */
/* Host build of policy.h: exported so the Rust unit tests call the BPF policy's own code. */
#include <stdint.h>
#include "policy.h"
#include "lat_hist.h"
#include "lat_stamps.h"

s64 brisk_host_time_delta(u64 a, u64 b)
{
	return brisk_time_delta(a, b);
}
u64 brisk_host_scale_inverse(u64 d, u64 w)
{
	return brisk_scale_inverse(d, w);
}
u64 brisk_host_wake_vruntime(u64 v, u64 now, u64 c)
{
	return brisk_wake_vruntime(v, now, c);
}
u64 brisk_host_new_vruntime(u64 now, u64 slice)
{
	return brisk_new_vruntime(now, slice);
}
u64 brisk_host_burst_avg(u64 a, u64 s, u32 sh, u64 cap)
{
	return brisk_burst_avg(a, s, sh, cap);
}
u64 brisk_host_burst_sample_cap(u64 burst_cap, u64 short_burst)
{
	return brisk_burst_sample_cap(burst_cap, short_burst);
}
u64 brisk_host_effective_burst(u64 a, u64 c)
{
	return brisk_effective_burst(a, c);
}
int brisk_host_is_short(u64 b, u64 t)
{
	return brisk_is_short(b, t);
}
u64 brisk_host_deadline(u64 v, u64 b, u64 c, u64 w)
{
	return brisk_deadline(v, b, c, w);
}
u64 brisk_host_contended_offset(u64 o, u64 n, u64 c)
{
	return brisk_contended_offset(o, n, c);
}
u64 brisk_host_deadline_contended(u64 v, u64 b, u64 c, u64 w, u64 n, u64 nc)
{
	return brisk_deadline_contended(v, b, c, w, n, nc);
}
u64 brisk_host_slice(u64 b, u64 m, u64 n, u64 c)
{
	return brisk_slice(b, m, n, c);
}
int brisk_host_should_preempt(u64 w, u64 v, u64 m)
{
	return brisk_should_preempt(w, v, m);
}

u64 brisk_host_task_slice(u64 s, int sh, u64 t)
{
	return brisk_task_slice(s, sh, t);
}

u32 brisk_host_lat_bucket(u64 ns)
{
	return brisk_lat_bucket(ns);
}

u64 brisk_host_lat_bucket_lo_ns(u32 b)
{
	return brisk_lat_bucket_lo_ns(b);
}

void brisk_host_lat_switched_out(struct brisk_lat_stamps *s, int runnable, u64 now)
{
	brisk_lat_switched_out(s, runnable, now);
}

u64 brisk_host_lat_take(u64 *since, u64 now)
{
	return brisk_lat_take(since, now);
}

u64 brisk_host_period_avg(u64 avg, u64 sample)
{
	return brisk_period_avg(avg, sample);
}

int brisk_host_is_lat_crit(int sync, u64 burst, u64 period, u64 max_burst, u32 duty_max_pct)
{
	return brisk_is_lat_crit(sync, burst, period, max_burst, duty_max_pct);
}

int brisk_host_lat_keeps(int lat, u64 ran, u64 slice)
{
	return brisk_lat_keeps(lat, ran, slice);
}

int brisk_host_lane_stint(int lat_crit, int lat_fair, u64 ran_before, u64 slice)
{
	return brisk_lane_stint(lat_crit, lat_fair, ran_before, slice);
}

u64 brisk_host_reweight_vruntime(u64 v, u64 clock, u32 old_w, u32 new_w)
{
	return brisk_reweight_vruntime(v, clock, old_w, new_w);
}

u64 brisk_host_carry_vruntime(u64 v, u64 from, u64 to, u64 max)
{
	return brisk_carry_vruntime(v, from, to, max);
}

u64 brisk_host_lat_wake_vruntime(u64 v, u64 now, u64 credit)
{
	return brisk_lat_wake_vruntime(v, now, credit);
}

u64 brisk_host_lat_fair_vruntime(u64 v, u64 now, u64 credit, u64 lead)
{
	return brisk_lat_fair_vruntime(v, now, credit, lead);
}

u64 brisk_host_lat_demoted_vruntime(u64 v, u64 lag, u64 now, u64 credit)
{
	return brisk_lat_demoted_vruntime(v, lag, now, credit);
}

u64 brisk_host_lat_deadline(u64 woke_at, u64 burst, u64 weight)
{
	return brisk_lat_deadline(woke_at, burst, weight);
}

u64 brisk_host_lat_debt(u64 debt, u64 ran, int lat, u64 share_pct, u64 cap)
{
	return brisk_lat_debt(debt, ran, lat, share_pct, cap);
}

int brisk_host_lat_defer(u64 debt, u64 allowance, int light)
{
	return brisk_lat_defer(debt, allowance, light);
}

int brisk_host_sleeps_soon(u64 avg, u64 ran)
{
	return brisk_sleeps_soon(avg, ran);
}
u64 brisk_host_deferred_slice(u64 slice, int lat_waits)
{
	return brisk_deferred_slice(slice, lat_waits);
}
u64 brisk_host_resume_slice(u64 slice_end, u64 now, u64 min)
{
	return brisk_resume_slice(slice_end, now, min);
}

u64 brisk_host_duty_pct(u64 avg_burst, u64 avg_period)
{
	return brisk_duty_pct(avg_burst, avg_period);
}

u64 brisk_host_lat_key(u64 deadline, int light)
{
	return brisk_lat_key(deadline, light);
}

/* The burst tracker through a sequence: start at @t0, stop at @t1 (sleeping or not), wake,
 * start at @t2, stop at @t3 sleeping; returns the average, and the two stints in @ran. */
u64 brisk_host_burst_sequence(u64 avg0, u64 t0, u64 t1, int sleep1, u64 t2, u64 t3, u32 shift,
			      u64 cap, u64 *ran1, u64 *ran2, u64 *cur_after1)
{
	struct brisk_burst b = {.avg_ns = avg0};

	brisk_burst_start(&b, t0);
	*ran1 = brisk_burst_stop(&b, t1);
	*cur_after1 = b.cur_ns;
	if (sleep1) {
		brisk_burst_sleep(&b, shift, cap);
		brisk_burst_wake(&b);
	}
	brisk_burst_start(&b, t2);
	*ran2 = brisk_burst_stop(&b, t3);
	brisk_burst_sleep(&b, shift, cap);
	return b.avg_ns;
}
u64 brisk_host_burst_stop_unstarted(u64 now)
{
	struct brisk_burst b = {.avg_ns = 7};

	return brisk_burst_stop(&b, now) + b.cur_ns;
}

/*
 * One burst from averages @avg0: @n segments of @seg ns of CPU time, each ending in a wakeup
 * of another task, then @tail ns more; the task is preempted for 5 ms after its first
 * @seg / 2 ns (one burst all the same); then it sleeps if @sleep. Returns the burst average;
 * the segment average starts from @seg_avg and ends there and what brisk_burst_segment_now says at
 * the end of the tail (before any sleep) to @seg_now.
 */
u64 brisk_host_burst_segments(u64 avg0, u32 n, u64 seg, u64 tail, int sleep, u32 shift, u64 cap,
			      u64 *seg_avg, u64 *seg_now)
{
	const u64 t0 = 1000, gap = 5000000;
	struct brisk_burst b = {.avg_ns = avg0, .seg_avg_ns = *seg_avg};
	u64 pause = seg / 2, end = t0 + n * seg + tail + gap;
	u32 i;

	brisk_burst_wake(&b);
	brisk_burst_start(&b, t0);
	brisk_burst_stop(&b, t0 + pause);
	brisk_burst_start(&b, t0 + pause + gap);
	for (i = 1; i <= n && i < 64; i++)
		brisk_burst_woke_other(&b, t0 + i * seg + gap, shift, cap);
	*seg_now = brisk_burst_segment_now(&b, end);
	brisk_burst_stop(&b, end);
	if (sleep)
		brisk_burst_sleep(&b, shift, cap);
	*seg_avg = b.seg_avg_ns;
	return b.avg_ns;
}

int brisk_host_should_balance(u64 busy_load, u64 busy_cpus, u64 own_load, u64 own_cpus, u64 w)
{
	return brisk_should_balance(busy_load, busy_cpus, own_load, own_cpus, w);
}
int brisk_host_starving(u64 now, u64 queued_at, u64 starve_ns)
{
	return brisk_starving(now, queued_at, starve_ns);
}
int brisk_host_prefer_own(u64 own_dl, u64 other_dl, u64 margin_ns)
{
	return brisk_prefer_own(own_dl, other_dl, margin_ns);
}
u64 brisk_host_cg_level_weight(u64 eff_fp, u64 cg_weight, s64 cg_load)
{
	return brisk_cg_level_weight(eff_fp, cg_weight, cg_load);
}
u64 brisk_host_weight_of_fp(u64 eff_fp)
{
	return brisk_weight_of_fp(eff_fp);
}
u64 brisk_host_scale_inverse_fp(u64 d, u64 w_fp)
{
	return brisk_scale_inverse_fp(d, w_fp);
}
s64 brisk_host_cg_parent_delta(s64 old, s64 new, u64 cg_weight)
{
	return brisk_cg_parent_delta(old, new, cg_weight);
}
