/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_brisk: the policy's arithmetic, as pure functions.
 *
 * Included by the BPF scheduler and by policy_host.c, which `cargo test` links so that the
 * exact formulas the kernel runs are unit-tested on the host.
 *
 * Weights follow sched_ext: p->scx.weight is 100 for nice 0 (1..10000; nice 5 is 32).
 */
#ifndef __BRISK_POLICY_H
#define __BRISK_POLICY_H

#include "intf.h"

#define BRISK_WEIGHT_NICE0 100ULL

/* Signed distance a - b of two wrapping u64 clocks: > 0 when a is after b. */
static inline s64 brisk_time_delta(u64 a, u64 b)
{
	return (s64)(a - b);
}

/*
 * Whether a task queued at @queued_at has waited @starve_ns or more at @now (the starvation
 * guard). Signed: another CPU may queue a task after @now was read, and its later stamp must
 * read as no wait, not as 2^64 ns of one.
 */
static inline int brisk_starving(u64 now, u64 queued_at, u64 starve_ns)
{
	return brisk_time_delta(now, queued_at) >= (s64)starve_ns;
}

/* Virtual time of @delta_ns of real runtime at @weight: heavier tasks age slower. */
static inline u64 brisk_scale_inverse(u64 delta_ns, u64 weight)
{
	if (!weight)
		weight = 1;
	return delta_ns * BRISK_WEIGHT_NICE0 / weight;
}

/*
 * Weights in fixed point (weight << BRISK_WEIGHT_FP_SHIFT), for the shares cgroups give, which
 * are rarely whole: 8 tasks sharing a weight of 100 weigh 12.5 each.
 */
#define BRISK_WEIGHT_FP_SHIFT 10

/* brisk_scale_inverse at a weight in fixed point. */
static inline u64 brisk_scale_inverse_fp(u64 delta_ns, u64 weight_fp)
{
	if (!weight_fp)
		weight_fp = 1;
	return (delta_ns * BRISK_WEIGHT_NICE0 << BRISK_WEIGHT_FP_SHIFT) / weight_fp;
}

/*
 * vruntime of a task that becomes runnable: it keeps what it has, but sleeping can bank at most
 * @credit_ns behind the scheduler's virtual clock, so a long sleeper cannot monopolise a CPU.
 */
static inline u64 brisk_wake_vruntime(u64 vruntime, u64 vtime_now, u64 credit_ns)
{
	u64 floor = vtime_now > credit_ns ? vtime_now - credit_ns : 0;

	return vruntime < floor ? floor : vruntime;
}

/*
 * vruntime of a new task. The clock is the vruntime the running task had when it started
 * from the fair queue; it has run on since, up to a slice, and the tasks behind it are
 * queued at or past the clock. Started at the clock, a new task would begin ahead of them
 * all, and a chain of short-lived processes (a build's jobs, one after another) would run in
 * that gap over and over, each one's run forgotten as it exits; a whole slice past it, it
 * would wait a round. The offset trades the two: more gives the tasks already there more of
 * the CPU against such a chain, less gives the chain more. A third of the slice is where a
 * hog and a chain of short processes split a CPU evenly (the fairness test's case); a fixed,
 * measured guess (docs/design.md, known limits). The weighted average of the queue's
 * vruntimes, as EEVDF keeps, would not need one.
 */
static inline u64 brisk_new_vruntime(u64 vtime_now, u64 slice_ns)
{
	return vtime_now + slice_ns / 3;
}

/*
 * The most one burst counts in the average: the deadline's cap on a burst, but at least twice
 * the short/hog border, so that a hog's average stays well above the border whatever the cap.
 */
static inline u64 brisk_burst_sample_cap(u64 burst_cap_ns, u64 short_burst_ns)
{
	u64 floor = 2 * short_burst_ns;

	return burst_cap_ns > floor ? burst_cap_ns : floor;
}

/*
 * Average of completed bursts, the history that classifies a task. It moves by 1/2^shift of
 * the gap toward a longer burst and by twice that toward a shorter one, and a burst counts at
 * most @cap_ns (brisk_burst_sample_cap). A task needs a few long bursts in a row to turn into a
 * hog, while one long burst (a process's start-up, or time the host took the vCPU away under
 * emulation) costs a short task its privileges for three wakeups rather than ten (1 ms bursts
 * at the default shift, cap and border: 5.75 -> 3.375 -> 2.19 -> 1.59 ms). Falling
 * fast does not hand them to a hog that sleeps briefly now and then: bursts alternating
 * 0.5 ms and 20 ms still average over 4 ms at shift 2.
 */
static inline u64 brisk_burst_avg(u64 avg, u64 sample, u32 shift, u64 cap_ns)
{
	if (shift > 16)
		shift = 16;
	if (sample > cap_ns)
		sample = cap_ns;
	if (sample >= avg)
		return avg + ((sample - avg) >> shift);
	return avg - ((avg - sample) >> (shift ? shift - 1 : 0));
}

/*
 * The burst that classifies a task: its average, or the burst it is in now if that is longer,
 * so a task that used to be short and turns into a hog loses its privileges at once.
 */
static inline u64 brisk_effective_burst(u64 avg_ns, u64 cur_ns)
{
	return cur_ns > avg_ns ? cur_ns : avg_ns;
}

static inline int brisk_is_short(u64 burst_ns, u64 short_burst_ns)
{
	return burst_ns < short_burst_ns;
}

/*
 * A task's bursts, the one tracker the policy (ops.running/ops.stopping) and the standalone
 * probe (sched_switch) share: the average of completed bursts, the burst in progress, and when
 * the task last got a CPU.
 */
struct brisk_burst {
	u64 avg_ns;	/* average of completed bursts (brisk_burst_avg) */
	u64 cur_ns;	/* CPU time since the task last woke */
	u64 started_at; /* when it last got a CPU; 0 before it first did */
	u64 seg_avg_ns; /* average run between wakeups it makes (brisk_burst_woke_other) */
	u64 seg_mark;	/* cur_ns (plus its stint) when it last woke a task */
};

/* The task wakes: a new burst starts. */
static inline void brisk_burst_wake(struct brisk_burst *b)
{
	b->cur_ns = 0;
	b->seg_mark = 0;
}

/* CPU time of the burst in progress at @now, counting the stint the task is running. */
static inline u64 brisk_burst_ran(const struct brisk_burst *b, u64 now)
{
	u64 stint = b->started_at && now > b->started_at ? now - b->started_at : 0;

	return b->cur_ns + stint;
}

/*
 * The running task wakes another task at @now (not synchronously): the run since its own
 * wakeup or its last such wakeup, whichever is later, is one segment, and moves the segment
 * average as a sleep moves the burst average. A request worker that hands a reply to the
 * thread that will send it the next request runs one request per segment whether or not it
 * gets to sleep in between; a hog that wakes nobody has one segment per burst.
 */
static inline void brisk_burst_woke_other(struct brisk_burst *b, u64 now, u32 shift, u64 cap_ns)
{
	u64 ran = brisk_burst_ran(b, now);
	u64 seg = ran > b->seg_mark ? ran - b->seg_mark : 0;

	b->seg_avg_ns = brisk_burst_avg(b->seg_avg_ns, seg, shift, cap_ns);
	b->seg_mark = ran;
}

/*
 * How long the running task is expected to run on after waking a task at @now: the segment
 * average, or the segment in progress if that is longer (as brisk_effective_burst).
 */
static inline u64 brisk_burst_segment_now(const struct brisk_burst *b, u64 now)
{
	u64 ran = brisk_burst_ran(b, now);

	return brisk_effective_burst(b->seg_avg_ns, ran > b->seg_mark ? ran - b->seg_mark : 0);
}

/* The task gets a CPU at @now. */
static inline void brisk_burst_start(struct brisk_burst *b, u64 now)
{
	b->started_at = now;
}

/*
 * The task leaves its CPU at @now: adds this stint to the burst in progress and returns it (0
 * for a task never seen starting).
 */
static inline u64 brisk_burst_stop(struct brisk_burst *b, u64 now)
{
	u64 ran = b->started_at && now > b->started_at ? now - b->started_at : 0;

	b->cur_ns += ran;
	return ran;
}

/*
 * The task goes to sleep: its burst is complete and moves the average (brisk_burst_avg with
 * @shift and @cap_ns). The burst in progress is kept until the next wakeup (brisk_burst_wake),
 * so that the wakeup is still classified by it (brisk_effective_burst).
 */
static inline void brisk_burst_sleep(struct brisk_burst *b, u32 shift, u64 cap_ns)
{
	u64 seg = b->cur_ns > b->seg_mark ? b->cur_ns - b->seg_mark : 0;

	b->avg_ns = brisk_burst_avg(b->avg_ns, b->cur_ns, shift, cap_ns);
	b->seg_avg_ns = brisk_burst_avg(b->seg_avg_ns, seg, shift, cap_ns);
}

/* The burst that classifies the task now: brisk_effective_burst of its average and current. */
static inline u64 brisk_burst_now(const struct brisk_burst *b)
{
	return brisk_effective_burst(b->avg_ns, b->cur_ns);
}

/*
 * Deadline = vruntime + burst (weighted, then capped). Tasks are picked in deadline order:
 * among tasks of equal vruntime the one that will release the CPU soonest goes first, and no
 * task, whatever its weight, is queued more than @cap_ns behind its fair position. (Capping
 * after weighting matters: at nice 19 (weight 1) a weighted 20 ms burst would be 2 s.)
 */
static inline u64 brisk_deadline(u64 vruntime, u64 burst_ns, u64 cap_ns, u64 weight)
{
	u64 offset = brisk_scale_inverse(burst_ns, weight);

	return vruntime + (offset > cap_ns ? cap_ns : offset);
}

/*
 * The deadline offset of a burst under contention. The offset is in virtual time, and the
 * queue's virtual time advances at about nr_cpus / (nr_cpus + nr_waiting) of real time: with
 * 80 tasks waiting on 2 CPUs a 1 ms offset holds a task back some 40 ms behind shorter ones,
 * far more than its burst would make them wait. Scaled by the same share, the offset costs
 * about the burst in real time at any load; with nothing waiting it is the burst itself.
 */
static inline u64 brisk_contended_offset(u64 offset_ns, u64 nr_waiting, u64 nr_cpus)
{
	if (!nr_cpus)
		nr_cpus = 1;
	return offset_ns * nr_cpus / (nr_cpus + nr_waiting);
}

/* brisk_deadline with the offset scaled for @nr_waiting tasks queued on @nr_cpus CPUs. */
static inline u64 brisk_deadline_contended(u64 vruntime, u64 burst_ns, u64 cap_ns, u64 weight,
					   u64 nr_waiting, u64 nr_cpus)
{
	u64 offset = brisk_deadline(0, burst_ns, cap_ns, weight);

	return vruntime + brisk_contended_offset(offset, nr_waiting, nr_cpus);
}

/*
 * Slice: the base slice shared out when more tasks wait than there are CPUs to run them, so
 * the wait behind the queue stays near one base slice; never below @min_ns.
 */
static inline u64 brisk_slice(u64 base_ns, u64 min_ns, u64 nr_waiting, u64 nr_cpus)
{
	u64 slice;

	if (!nr_cpus)
		nr_cpus = 1;
	slice = base_ns * nr_cpus / (nr_cpus + nr_waiting);
	return slice < min_ns ? min_ns : slice;
}

/* A short task's slice covers a whole burst of its kind: at least @short_burst_ns. */
static inline u64 brisk_task_slice(u64 slice_ns, int is_short, u64 short_burst_ns)
{
	return is_short && slice_ns < short_burst_ns ? short_burst_ns : slice_ns;
}

/*
 * Average time between a task's wakeups: moves a quarter of the way to each new interval,
 * which counts at most 1 s (a task that slept for minutes is judged by its recent rhythm).
 */
static inline u64 brisk_period_avg(u64 avg_ns, u64 sample_ns)
{
	const u64 cap_ns = 1000000000ULL;

	if (sample_ns > cap_ns)
		sample_ns = cap_ns;
	if (!avg_ns)
		return sample_ns;
	if (sample_ns >= avg_ns)
		return avg_ns + ((sample_ns - avg_ns) >> 2);
	return avg_ns - ((avg_ns - sample_ns) >> 2);
}

/*
 * A latency-critical wakeup: a task that was not woken synchronously (a timer, an interrupt, a
 * futex or signal from another task: not a pipe or socket partner that is about to sleep),
 * whose average burst is at most @max_burst_ns (BRISK_LAT_BURST_SLICES base slices: a burst
 * of work, not a hog) and takes at most @duty_max_pct of the time between its wakeups. Such
 * a wakeup is served before the fair queue; the duty bound is what keeps that from being a
 * way around fairness: a task can take at most that share of a CPU out of turn, and a task that
 * runs without sleeping never qualifies. 0 turns it off, and a task needs two wakeups (one
 * interval) before it can qualify.
 */
static inline int brisk_is_lat_crit(int sync_wakeup, u64 avg_burst_ns, u64 avg_period_ns,
				    u64 max_burst_ns, u32 duty_max_pct)
{
	if (sync_wakeup || !duty_max_pct || !avg_period_ns || avg_burst_ns > max_burst_ns)
		return 0;
	return avg_burst_ns * 100 <= (u64)duty_max_pct * avg_period_ns;
}

/*
 * vruntime of a latency-critical task as it wakes: the sleep credit bounds it from below as for
 * any task, and the clock bounds it from above. It ran out of turn, outside the fair queue, so
 * what it ran is not held against it there: should it stop qualifying, it queues as a task
 * that just woke, not behind everything it overtook; and so it queues when it wakes while the
 * lane is over its share (brisk_lat_defer). The same holds for a task sent to the
 * fair queue after its latency slices (brisk_lat_keeps): charged in full for a burst stretched
 * by a long interruption (an interrupt storm, a hypervisor taking the CPU), it would be a few
 * ms of vruntime ahead of a crowd whose clock moves at a few percent of real time, hundreds
 * of ms behind it.
 */
static inline u64 brisk_lat_wake_vruntime(u64 vruntime, u64 vtime_now, u64 credit_ns)
{
	u64 v = brisk_wake_vruntime(vruntime, vtime_now, credit_ns);

	return v > vtime_now ? vtime_now : v;
}

/*
 * vruntime of a latency-critical task sent to the fair queue after its latency slices
 * (brisk_lat_keeps): the place it woke with, @woke_lag_ns behind its LLC's clock, behind the
 * clock as it is now. What it ran in the lane is not charged (brisk_lat_wake_vruntime); charged
 * up to the clock, it would queue behind every sleeper woken meanwhile, each placed up to the
 * sleep credit before the clock, and a crowd of them (80 message passers) would hold it for
 * their credits added up: hundreds of ms for a task that was promised its burst and lost it to
 * an interruption (a long interrupt, a hypervisor taking the CPU). It queues as a task that
 * just woke, as its wakeup placed it. The cost is bounded: BRISK_LAT_KEEP_SLICES slices outside the
 * fair order per wakeup, which the lane's share accounts for.
 */
static inline u64 brisk_lat_demoted_vruntime(u64 vruntime, u64 woke_lag_ns, u64 vtime_now,
					     u64 credit_ns)
{
	u64 woke = vtime_now > woke_lag_ns ? vtime_now - woke_lag_ns : 0;

	return brisk_lat_wake_vruntime(vruntime < woke ? vruntime : woke, vtime_now, credit_ns);
}

/*
 * vruntime of a latency-critical wakeup queued in the fair order (one woken by another task, a
 * futex hand-off: a request worker): placed as a latency-critical wakeup is
 * (brisk_lat_wake_vruntime: what it ran is not held against it, so a task that wants more than
 * a per-task share of a crowd gets it, within the lane's share), and at least @lead_ns before
 * the clock (at most @credit_ns). The lead sets its place among the short tasks that woke with
 * their sleep credit: 0 interleaves it with a message crowd by deadline, the full credit puts
 * it before nearly all of them, as the lane would.
 */
static inline u64 brisk_lat_fair_vruntime(u64 vruntime, u64 vtime_now, u64 credit_ns, u64 lead_ns)
{
	u64 v = brisk_lat_wake_vruntime(vruntime, vtime_now, credit_ns);
	u64 lead = lead_ns < credit_ns ? lead_ns : credit_ns;
	u64 front = vtime_now > lead ? vtime_now - lead : 0;

	return v < front ? v : front;
}

/*
 * Deadline of a latency-critical wakeup in its LLC's latency queue: the time it woke plus its
 * expected burst, scaled by its weight. Earliest deadline first on the wall clock rather than on
 * the vruntime: a latency-critical task's vruntime is held at its clock, which stands still
 * while only latency-critical tasks run, so a vruntime order would serve the shortest bursts
 * for as long as they keep waking, and a task with a slightly longer burst would wait behind
 * them all. Here every later wakeup sorts after it once its burst has passed, so its wait is
 * bounded by the latency-critical work that woke before it. The weight keeps nice meaning
 * something in the lane: a heavier task's deadline is nearer.
 */
static inline u64 brisk_lat_deadline(u64 woke_at, u64 burst_ns, u64 weight)
{
	return woke_at + brisk_scale_inverse(burst_ns, weight);
}

/*
 * vruntime of a task whose weight goes from @old_w to @new_w (its nice level or policy
 * changed): its distance from its LLC's clock @vtime_now, lead or lag, is
 * scaled by old / new, so it stays ahead or behind by the same CPU time at its new weight (EEVDF's
 * rule for a reweight). Left as it was, a task that ran a slice at nice 19 (weight 1: 100x the
 * vruntime per ns of nice 0's 100) and then went to nice 0 would wait out 100 slices' worth of
 * lead; one that lagged at nice -5 (305) and went to nice 19 would lose 305x its claim. The
 * distance is capped at BRISK_REWEIGHT_MAX_NS before scaling, which keeps the product in 64 bits
 * (weights are at most 10000, the cgroup scale).
 */
#define BRISK_REWEIGHT_MAX_NS (1ULL << 50)

static inline u64 brisk_reweight_vruntime(u64 vruntime, u64 vtime_now, u32 old_w, u32 new_w)
{
	s64 d = brisk_time_delta(vruntime, vtime_now);
	u64 dist = d < 0 ? (u64)-d : (u64)d;

	if (!old_w || !new_w || old_w == new_w)
		return vruntime;
	if (dist > BRISK_REWEIGHT_MAX_NS)
		dist = BRISK_REWEIGHT_MAX_NS;
	dist = dist * old_w / new_w;
	if (dist > BRISK_REWEIGHT_MAX_NS)
		dist = BRISK_REWEIGHT_MAX_NS;
	if (d >= 0)
		return vtime_now + dist;
	return dist > vtime_now ? 0 : vtime_now - dist;
}

/*
 * vruntime of a task that moves from the LLC whose clock is @from_clock to the one whose clock
 * is @to_clock: it keeps its place relative to the clock, its lag or lead, but at most
 * @max_ns of either. The clocks advance at their own LLC's pace, and a task far from its
 * clock (a starving task, or one that just ran a long stint) would carry that distance into
 * an LLC where it means something else: far behind, it would hold a CPU there for as long;
 * far ahead, it would wait for the starvation guard. What is lost is a bounded part of the
 * task's lag, once per move; the balance of load between LLCs keeps the shares.
 */
static inline u64 brisk_carry_vruntime(u64 vruntime, u64 from_clock, u64 to_clock, u64 max_ns)
{
	s64 d = brisk_time_delta(vruntime, from_clock);

	if (d > (s64)max_ns)
		d = max_ns;
	if (d < -(s64)max_ns)
		d = -(s64)max_ns;
	if (d < 0 && to_clock < (u64)-d)
		return 0;
	return to_clock + d;
}

/*
 * Whether a task queued again without waking (preempted, or its slice over) stays
 * latency-critical (@lat): only while what it ran since it woke, @ran_ns, is under
 * BRISK_LAT_KEEP_SLICES latency slices of @slice_ns. Another wakeup's preemption or a claim
 * race can take its CPU mid-burst, and an interruption can stretch its burst past a slice;
 * sent to the fair queue then, it would wait a round of the crowd (each sleeper of a crowd of
 * message passers runs its sleep credit first) for a burst it had been promised. Past that it ran
 * what a wakeup buys, and queues in the fair order.
 */
static inline int brisk_lat_keeps(int lat, u64 ran_ns, u64 slice_ns)
{
	return lat && ran_ns < BRISK_LAT_KEEP_SLICES * slice_ns;
}

/*
 * Whether a stint counts as the latency-critical lane's time (brisk_lat_debt): a task in the
 * lane (@lat_crit), or a latency-critical wakeup queued in the fair order (@lat_fair) while
 * what it ran since it woke, before this stint (@ran_before_ns), is within what a wakeup buys
 * (brisk_lat_keeps). Past that it is a fair task like any other. A task woken as a request
 * worker that then never sleeps again (a worker turned hog) would otherwise count against the
 * lane for as long as it runs: the lane would stay over its share for good, and every
 * latency-critical wakeup would wait for a fair queue that never empties.
 */
static inline int brisk_lane_stint(int lat_crit, int lat_fair, u64 ran_before_ns, u64 slice_ns)
{
	return lat_crit || brisk_lat_keeps(lat_fair, ran_before_ns, slice_ns);
}

/*
 * The slice of a hog about to run (or run on) with @slice_ns: at most BRISK_DEFERRED_SLICE_NS
 * while latency-critical wakeups wait for the fair queue (@lat_waits), so that they wait a
 * short turn rather than a whole slice.
 */
static inline u64 brisk_deferred_slice(u64 slice_ns, int lat_waits)
{
	return lat_waits && slice_ns > BRISK_DEFERRED_SLICE_NS ? BRISK_DEFERRED_SLICE_NS : slice_ns;
}

/*
 * The slice a fair task the latency-critical lane preempted resumes with after the lane's task:
 * what was left of its slice (ending at @slice_end), or 0 (none: it queues in the fair order)
 * when less than @min_ns is left. The lane's time does not count against it; the slice ends
 * where it would have without the interruption, so the fair order goes on as before.
 */
static inline u64 brisk_resume_slice(u64 slice_end, u64 now, u64 min_ns)
{
	s64 left = brisk_time_delta(slice_end, now);

	return left >= (s64)min_ns ? (u64)left : 0;
}

/*
 * Whether a task whose bursts average @avg_ns, @ran_ns into the current one, sleeps soon: both
 * within BRISK_AFFINE_BURST_NS, and a burst on record (a new task is no bet). A thread that
 * posts a request, wakes a worker and waits for the reply is one: its CPU frees up within
 * microseconds, sooner than an idle CPU wakes up for the worker.
 */
static inline int brisk_sleeps_soon(u64 avg_ns, u64 ran_ns)
{
	return avg_ns && avg_ns <= BRISK_AFFINE_BURST_NS && ran_ns <= BRISK_AFFINE_BURST_NS;
}

/*
 * The latency lane's debt to an LLC's fair queue after a stint of @ran_ns on one of its CPUs,
 * in ns times percent: a stint in the lane (@lat) adds @ran_ns * (100 - @share_pct), a stint
 * in fair order pays back @ran_ns * @share_pct. If the lane runs a fraction f of the LLC's
 * time, the debt grows by 100 * (f - @share_pct / 100) per ns: it is 100 times the lane's time
 * beyond its share. At 100 % it never grows. It stays between 0 and @cap_ns * 100, so a lane
 * the deferral cannot hold back (hand-offs, pinned tasks) does not run up a debt the fair
 * queue then collects for seconds.
 */
static inline u64 brisk_lat_debt(u64 debt, u64 ran_ns, int lat, u64 share_pct, u64 cap_ns)
{
	u64 pay;

	if (share_pct > 100)
		share_pct = 100;
	if (lat) {
		debt += ran_ns * (100 - share_pct);
		return debt > cap_ns * 100 ? cap_ns * 100 : debt;
	}
	pay = ran_ns * share_pct;
	return pay >= debt ? 0 : debt - pay;
}

/*
 * Duty cycle of a task in percent: its average burst over the average time between its
 * wakeups; 100 before it has an interval.
 */
static inline u64 brisk_duty_pct(u64 avg_burst_ns, u64 avg_period_ns)
{
	if (!avg_period_ns || avg_burst_ns >= avg_period_ns)
		return 100;
	return avg_burst_ns * 100 / avg_period_ns;
}

/*
 * Key of a latency-critical wakeup in its LLC's latency queue: light tasks (those that run at
 * most BRISK_LAT_LIGHT_DUTY_PCT of the time between wakeups: timers, audio, frame loops) by
 * deadline, then busy ones by deadline. Busy keys sit BRISK_LAT_BUSY_KEY (2^50 ns, 13 days)
 * later: the queue compares keys by their signed difference, so the two ranges never mix.
 */
#define BRISK_LAT_BUSY_KEY (1ULL << 50)

static inline u64 brisk_lat_key(u64 deadline, int light)
{
	return light ? deadline : deadline + BRISK_LAT_BUSY_KEY;
}

/*
 * Whether a latency-critical task waits for the fair queue (goes after its first task, and
 * preempts nobody) because the lane has run beyond its share (brisk_lat_debt): a busy task as
 * soon as the lane is @allowance_ns past it, a light one only at four times that. So a lane
 * saturated by busy tasks (request workers catching up a backlog) leaves the fair queue its
 * share while the light tasks still go first; only a lane that light tasks alone saturate
 * waits too. The allowance is the burst the lane may take: a hog, or a task sent from the
 * lane to the fair queue, waits about that long at most behind a saturated lane.
 */
static inline int brisk_lat_defer(u64 debt, u64 allowance_ns, int light)
{
	return debt > allowance_ns * 100 * (light ? 4 : 1);
}

/* Runnable weight @load on @nr_cpus CPUs, per CPU and scaled by 1024 (fixed point). */
static inline u64 brisk_load_per_cpu(u64 load, u64 nr_cpus)
{
	return load * 1024 / (nr_cpus ? nr_cpus : 1);
}

/*
 * Whether to move a task of weight @weight from an LLC with runnable weight @busy_load on
 * @busy_cpus CPUs to one with @own_load on @own_cpus: when that narrows the gap in load per
 * CPU between the two. The move shifts the gap by the task's weight over both CPU counts; it
 * narrows it only if the gap is more than half that, so two LLCs never trade a task back
 * and forth (12 equal tasks on two 4-CPU LLCs settle at 6:6, 13 at 7:6).
 */
static inline int brisk_should_balance(u64 busy_load, u64 busy_cpus, u64 own_load, u64 own_cpus,
				       u64 weight)
{
	u64 busy_per = brisk_load_per_cpu(busy_load, busy_cpus);
	u64 own_per = brisk_load_per_cpu(own_load, own_cpus);
	u64 shift = brisk_load_per_cpu(weight, busy_cpus) + brisk_load_per_cpu(weight, own_cpus);

	return busy_per > own_per && (busy_per - own_per) * 2 > shift;
}

/*
 * Whether a CPU runs the first task of its own fair queue, due at @own_dl, rather than the
 * earliest first task it saw in its LLC's other fair queues, due at @other_dl (~0: none
 * queued, either). Its own is on its runqueue with its cache; another's migrates. It keeps
 * its own unless that one is due later by more than @margin_ns, so the LLC's queues run in
 * one fair order up to the margin: a larger one saves more migrations and lets a task wait
 * longer behind tasks due after it on its own CPU.
 */
static inline int brisk_prefer_own(u64 own_dl, u64 other_dl, u64 margin_ns)
{
	if (own_dl == ~0ULL)
		return 0;
	return other_dl == ~0ULL || own_dl <= other_dl || own_dl - other_dl <= margin_ns;
}

/*
 * cgroup cpu.weight, as CFS shares it: a cgroup's runnable tasks and active child cgroups
 * split its share by weight, level by level, so a cgroup of 8 hogs and one of 1 hog at equal
 * weight each get half, whatever their task counts. Flattened into one effective weight per
 * task, which its vruntime is charged with like a nice weight:
 *   w_eff(p) = w(p) x product over its cgroups C, own up to the top level, of w(C) / load(C)
 * where load(C) is the summed weights of C's runnable tasks and active children (the top
 * level's cgroups and the root cgroup's tasks share the machine at their own weights). One
 * level of that product, in fixed point (BRISK_WEIGHT_FP_SHIFT): @cg_weight over @cg_load, a
 * load read below the share it divides (mid-update) counting as that share alone.
 */
static inline u64 brisk_cg_level_weight(u64 eff_fp, u64 cg_weight, s64 cg_load)
{
	u64 load = cg_load > 0 ? (u64)cg_load : 0;

	if (load < (eff_fp >> BRISK_WEIGHT_FP_SHIFT))
		load = eff_fp >> BRISK_WEIGHT_FP_SHIFT;
	return load ? eff_fp * cg_weight / load : eff_fp;
}

/* A weight from its fixed point: rounded, at least 1, at most the largest (10000). */
static inline u64 brisk_weight_of_fp(u64 eff_fp)
{
	u64 w = (eff_fp + (1ULL << (BRISK_WEIGHT_FP_SHIFT - 1))) >> BRISK_WEIGHT_FP_SHIFT;

	return w < 1 ? 1 : w > 10000 ? 10000 : w;
}

/*
 * A cgroup's load went from @old to @new: what its parent's load changes by. A cgroup counts
 * in its parent with its weight @cg_weight while its load is positive. Updates from several
 * CPUs may reach a parent out of order and leave its load briefly negative; every change is
 * paired, so the sums come out exact.
 */
static inline s64 brisk_cg_parent_delta(s64 old, s64 new, u64 cg_weight)
{
	if ((old > 0) == (new > 0))
		return 0;
	return new > 0 ? (s64)cg_weight : -(s64)cg_weight;
}

/* Whether a waker with deadline @waker_dl should preempt a task running with @victim_dl. */
static inline int brisk_should_preempt(u64 waker_dl, u64 victim_dl, u64 margin_ns)
{
	return brisk_time_delta(victim_dl, waker_dl) > (s64)margin_ns;
}

#endif /* __BRISK_POLICY_H */
