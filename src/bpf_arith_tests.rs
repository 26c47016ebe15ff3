//! Host tests of the BPF policy's arithmetic: src/bpf/policy.h compiled for the host by
//! build.rs (policy_host.c) and called here, so these test the code the kernel runs.

#[cfg(test)]
mod tests {
    extern "C" {
        fn brisk_host_time_delta(a: u64, b: u64) -> i64;
        fn brisk_host_scale_inverse(delta: u64, weight: u64) -> u64;
        fn brisk_host_wake_vruntime(v: u64, now: u64, credit: u64) -> u64;
        fn brisk_host_new_vruntime(now: u64, slice: u64) -> u64;
        fn brisk_host_burst_avg(avg: u64, sample: u64, shift: u32, cap: u64) -> u64;
        fn brisk_host_burst_sequence(
            avg0: u64,
            t0: u64,
            t1: u64,
            sleep1: i32,
            t2: u64,
            t3: u64,
            shift: u32,
            cap: u64,
            ran1: *mut u64,
            ran2: *mut u64,
            cur_after1: *mut u64,
        ) -> u64;
        fn brisk_host_burst_stop_unstarted(now: u64) -> u64;
        fn brisk_host_burst_segments(
            avg0: u64,
            n: u32,
            seg: u64,
            tail: u64,
            sleep: i32,
            shift: u32,
            cap: u64,
            seg_avg: *mut u64,
            seg_now: *mut u64,
        ) -> u64;
        fn brisk_host_burst_sample_cap(burst_cap: u64, short_burst: u64) -> u64;
        fn brisk_host_effective_burst(avg: u64, cur: u64) -> u64;
        fn brisk_host_is_short(burst: u64, threshold: u64) -> i32;
        fn brisk_host_deadline(v: u64, burst: u64, cap: u64, weight: u64) -> u64;
        fn brisk_host_contended_offset(offset: u64, waiting: u64, cpus: u64) -> u64;
        fn brisk_host_deadline_contended(
            v: u64,
            burst: u64,
            cap: u64,
            weight: u64,
            waiting: u64,
            cpus: u64,
        ) -> u64;
        fn brisk_host_slice(base: u64, min: u64, waiting: u64, cpus: u64) -> u64;
        fn brisk_host_should_preempt(waker: u64, victim: u64, margin: u64) -> i32;
        fn brisk_host_task_slice(slice: u64, is_short: i32, short_burst: u64) -> u64;
        fn brisk_host_period_avg(avg: u64, sample: u64) -> u64;
        fn brisk_host_is_lat_crit(
            sync: i32,
            burst: u64,
            period: u64,
            max_burst: u64,
            duty_max_pct: u32,
        ) -> i32;
        fn brisk_host_lat_wake_vruntime(v: u64, now: u64, credit: u64) -> u64;
        fn brisk_host_lat_demoted_vruntime(v: u64, lag: u64, now: u64, credit: u64) -> u64;
        fn brisk_host_lat_fair_vruntime(v: u64, now: u64, credit: u64, lead: u64) -> u64;
        fn brisk_host_lat_keeps(lat: i32, ran: u64, slice: u64) -> i32;
        fn brisk_host_lat_deadline(woke_at: u64, burst: u64, weight: u64) -> u64;
        fn brisk_host_carry_vruntime(v: u64, from: u64, to: u64, max: u64) -> u64;
        fn brisk_host_reweight_vruntime(v: u64, clock: u64, old_w: u32, new_w: u32) -> u64;
        fn brisk_host_lane_stint(lat_crit: i32, lat_fair: i32, ran_before: u64, slice: u64) -> i32;
        fn brisk_host_lat_debt(debt: u64, ran: u64, lat: i32, share_pct: u64, cap: u64) -> u64;
        fn brisk_host_lat_defer(debt: u64, allowance: u64, light: i32) -> i32;
        fn brisk_host_deferred_slice(slice: u64, lat_waits: i32) -> u64;
        fn brisk_host_resume_slice(slice_end: u64, now: u64, min: u64) -> u64;
        fn brisk_host_sleeps_soon(avg: u64, ran: u64) -> i32;
        fn brisk_host_duty_pct(avg_burst: u64, avg_period: u64) -> u64;
        fn brisk_host_lat_key(deadline: u64, light: i32) -> u64;
        fn brisk_host_should_balance(
            busy_load: u64,
            busy_cpus: u64,
            own_load: u64,
            own_cpus: u64,
            weight: u64,
        ) -> i32;
        fn brisk_host_starving(now: u64, queued_at: u64, starve_ns: u64) -> i32;
        fn brisk_host_prefer_own(own_dl: u64, other_dl: u64, margin_ns: u64) -> i32;
        fn brisk_host_cg_level_weight(eff_fp: u64, cg_weight: u64, cg_load: i64) -> u64;
        fn brisk_host_weight_of_fp(eff_fp: u64) -> u64;
        fn brisk_host_scale_inverse_fp(delta: u64, weight_fp: u64) -> u64;
        fn brisk_host_cg_parent_delta(old: i64, new: i64, cg_weight: u64) -> i64;
    }

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;
    const US: u64 = 1_000;
    // sched_ext weights: nice 0 = 100, nice 5 = 1024 * 100 / 335 -> 32 (kernel: 335 * 100 / 1024)
    const NICE0: u64 = 100;
    const NICE5: u64 = 335 * 100 / 1024;

    #[test]
    fn vruntime_scales_inversely_with_weight() {
        unsafe {
            assert_eq!(brisk_host_scale_inverse(MS, NICE0), MS);
            assert_eq!(brisk_host_scale_inverse(MS, 200), MS / 2);
            assert_eq!(brisk_host_scale_inverse(MS, NICE5), MS * 100 / NICE5);
            // weight 0 never divides by zero
            assert_eq!(brisk_host_scale_inverse(MS, 0), MS * 100);
        }
    }

    #[test]
    fn wakeup_period_average_follows_the_rhythm() {
        unsafe {
            // the first interval is taken as it is
            assert_eq!(brisk_host_period_avg(0, 10 * MS), 10 * MS);
            // a quarter of the way toward each new interval, both ways
            assert_eq!(brisk_host_period_avg(10 * MS, 14 * MS), 11 * MS);
            assert_eq!(brisk_host_period_avg(10 * MS, 6 * MS), 9 * MS);
            // one sleep of minutes counts as 1 s
            assert_eq!(brisk_host_period_avg(0, 600_000 * MS), 1000 * MS);
            // a steady 10 ms rhythm converges from a long sleep within a few dozen wakeups
            let mut avg = 1000 * MS;
            for _ in 0..40 {
                avg = brisk_host_period_avg(avg, 10 * MS);
            }
            assert!(avg < 11 * MS, "{avg}");
        }
    }

    /// Who is latency-critical: the periodic task (1 ms every 10 ms), a request worker at
    /// half load (1 ms every 2 ms) and a 60 Hz frame loop (4 ms every 16.7 ms, or 6 ms: more
    /// than a 5 ms slice) are; a pipe partner (synchronous wakeup), a task past the duty
    /// bound, one whose bursts are longer than BRISK_LAT_BURST_SLICES slices and any task with
    /// the lane off are not.
    #[test]
    fn latency_critical_needs_a_non_sync_wakeup_a_burst_within_two_slices_and_a_low_duty() {
        const SLICE: u64 = 5 * MS;
        let max_burst = crate::bpf_intf::brisk_consts_BRISK_LAT_BURST_SLICES as u64 * SLICE;
        assert_eq!(max_burst, 10 * MS);
        unsafe {
            let lc = |sync, burst, period, pct| {
                brisk_host_is_lat_crit(sync, burst, period, max_burst, pct) != 0
            };
            assert!(lc(0, MS, 10 * MS, 60));
            assert!(lc(0, MS, 2 * MS, 60));
            assert!(lc(0, 4 * MS, 16_667_000, 60));
            assert!(
                lc(0, 6 * MS, 16_667_000, 60),
                "a 6 ms frame: over a slice, under two"
            );
            assert!(!lc(1, MS, 10 * MS, 60), "a synchronous wakeup");
            assert!(
                !lc(0, 11 * MS, 100 * MS, 60),
                "bursts longer than two slices"
            );
            assert!(
                lc(0, max_burst, 100 * MS, 60),
                "a burst of exactly two slices"
            );
            assert!(!lc(0, 19 * MS / 10, 2 * MS, 60), "95% duty");
            assert!(!lc(0, MS, 10 * MS, 0), "lane off");
            assert!(!lc(0, MS, 0, 60), "no interval known yet");
            // the bound is inclusive: exactly 60% qualifies, just above does not
            assert!(lc(0, 6 * MS / 10, MS, 60));
            assert!(!lc(0, 6 * MS / 10 + 1, MS, 60));
            // at 100% every non-sync wakeup with slice-sized bursts qualifies
            assert!(lc(0, MS, MS, 100));
        }
    }

    #[test]
    fn a_fair_order_latency_wakeup_is_placed_at_least_its_lead_before_the_clock() {
        unsafe {
            // no lead: as a latency-critical wakeup, never behind the clock
            assert_eq!(
                brisk_host_lat_fair_vruntime(150 * MS, 100 * MS, 5 * MS, 0),
                100 * MS
            );
            assert_eq!(
                brisk_host_lat_fair_vruntime(97 * MS, 100 * MS, 5 * MS, 0),
                97 * MS
            );
            // a 2 ms lead: ahead of the crowd that woke within 2 ms of the clock
            assert_eq!(
                brisk_host_lat_fair_vruntime(150 * MS, 100 * MS, 5 * MS, 2 * MS),
                98 * MS
            );
            assert_eq!(
                brisk_host_lat_fair_vruntime(97 * MS, 100 * MS, 5 * MS, 2 * MS),
                97 * MS
            );
            // the lead is bounded by the sleep credit: never before a long sleeper
            assert_eq!(
                brisk_host_lat_fair_vruntime(150 * MS, 100 * MS, 5 * MS, 20 * MS),
                95 * MS
            );
            assert_eq!(
                brisk_host_lat_fair_vruntime(0, 100 * MS, 5 * MS, 2 * MS),
                95 * MS
            );
            // a clock younger than the lead
            assert_eq!(brisk_host_lat_fair_vruntime(MS, MS, 5 * MS, 2 * MS), 0);
        }
    }

    #[test]
    fn latency_critical_vruntime_stays_between_the_credit_and_the_clock() {
        unsafe {
            // ahead of the clock (it ran out of turn): brought back to the clock
            assert_eq!(
                brisk_host_lat_wake_vruntime(150 * MS, 100 * MS, 5 * MS),
                100 * MS
            );
            // long asleep: the sleep credit's floor, as for any task
            assert_eq!(brisk_host_lat_wake_vruntime(0, 100 * MS, 5 * MS), 95 * MS);
            // in between: unchanged
            assert_eq!(
                brisk_host_lat_wake_vruntime(97 * MS, 100 * MS, 5 * MS),
                97 * MS
            );
        }
    }

    #[test]
    fn a_demoted_latency_critical_task_keeps_the_place_it_woke_with() {
        unsafe {
            // woke 4 ms behind the clock, ran 9 ms in the lane: 4 ms behind the clock again
            let now = 100 * MS;
            assert_eq!(
                brisk_host_lat_demoted_vruntime(105 * MS, 4 * MS, now, 5 * MS),
                96 * MS
            );
            // the clock moved on meanwhile (to 120 ms, the task charged to 125 ms): 4 ms
            // behind it, where it woke relative to the clock
            assert_eq!(
                brisk_host_lat_demoted_vruntime(125 * MS, 4 * MS, 120 * MS, 5 * MS),
                116 * MS
            );
            // ran 1 ms in the lane: back where it woke all the same
            assert_eq!(
                brisk_host_lat_demoted_vruntime(97 * MS, 4 * MS, now, 5 * MS),
                96 * MS
            );
            // never behind the sleep credit's floor; near zero, no wrap-around
            assert_eq!(
                brisk_host_lat_demoted_vruntime(0, 9 * MS, now, 5 * MS),
                95 * MS
            );
            assert_eq!(
                brisk_host_lat_demoted_vruntime(4 * MS, 9 * MS, 3 * MS, 5 * MS),
                0
            );
        }
    }

    /// A fair queue on one CPU with a crowd of 80 message passers (50 us bursts, each woken
    /// again as soon as it sleeps, at the sleep credit's floor or its own vruntime), spread
    /// over the credit behind the clock, and a latency-critical task demoted from the lane
    /// (1 ms burst) after a stint the emulator stretched to 9 ms. How much CPU the crowd runs
    /// before it: placed where it woke (the floor), a few ms; charged up to the clock, as
    /// before, the crowd's credits added up (the 100-460 ms stalls of the mixed load).
    #[test]
    fn a_demoted_task_does_not_wait_for_a_crowd_of_sleepers() {
        const CREDIT: u64 = 5 * MS;
        const CAP: u64 = 20 * MS;
        const BURST: u64 = 50 * US;
        let clock = 1000 * MS;
        let crowd_wait = |demoted_v: u64| {
            let mut crowd: Vec<u64> = (0..80u64)
                .map(|i| clock - CREDIT + i * CREDIT / 80)
                .collect();
            let own = unsafe { brisk_host_deadline(demoted_v, MS, CAP, NICE0) };
            let mut ran = 0;
            loop {
                let dl = |v: u64| unsafe { brisk_host_deadline(v, BURST, CAP, NICE0) };
                let (i, first) = crowd
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &v)| dl(v))
                    .unwrap();
                if own <= dl(*first) || ran > 2000 * MS {
                    return ran;
                }
                // it runs a burst, sleeps and is woken again (the clock stays: the crowd is
                // behind it)
                let v = crowd[i] + unsafe { brisk_host_scale_inverse(BURST, NICE0) };
                crowd[i] = unsafe { brisk_host_wake_vruntime(v, clock, CREDIT) };
                ran += BURST;
            }
        };
        // woke at the floor, charged 9 ms in the lane
        let charged = clock - CREDIT + 9 * MS;
        let now = unsafe { brisk_host_lat_demoted_vruntime(charged, CREDIT, clock, CREDIT) };
        let before = unsafe { brisk_host_lat_wake_vruntime(charged, clock, CREDIT) };
        let (waited, waited_before) = (crowd_wait(now), crowd_wait(before));
        assert!(waited <= 10 * MS, "waited {} us", waited / US);
        assert!(
            waited_before >= 100 * MS,
            "before: {} us",
            waited_before / US
        );
    }

    #[test]
    fn lat_debt_is_the_lanes_time_beyond_its_share() {
        unsafe {
            // at 50 %: 1 ms in the lane owes 0.5 ms, 1 ms in fair order pays it back
            let d = brisk_host_lat_debt(0, MS, 1, 50, SEC);
            assert_eq!(d, 50 * MS);
            assert_eq!(brisk_host_lat_debt(d, MS, 0, 50, SEC), 0);
            // never below 0: fair time banked in advance does not count
            assert_eq!(brisk_host_lat_debt(0, 10 * MS, 0, 50, SEC), 0);
            // at 100 % the lane never owes
            assert_eq!(brisk_host_lat_debt(0, 10 * MS, 1, 100, SEC), 0);
            // a lane the deferral cannot hold back owes at most the cap, paid back in a
            // bounded time: 80 ms of debt at 67 % is paid back by about 120 ms in fair order
            let cap = 80 * MS;
            let mut d = 0;
            for _ in 0..1000 {
                d = brisk_host_lat_debt(d, 5 * MS, 1, 67, cap);
            }
            assert_eq!(d, cap * 100);
            assert_eq!(brisk_host_lat_debt(d, cap * 100 / 67 + 1, 0, 67, cap), 0);
            // a busy task waits once the lane is the allowance past its share, a light one at 4x
            assert_eq!(brisk_host_lat_defer(20 * MS * 100, 20 * MS, 0), 0);
            assert_eq!(brisk_host_lat_defer(20 * MS * 100 + 1, 20 * MS, 0), 1);
            assert_eq!(brisk_host_lat_defer(20 * MS * 100 + 1, 20 * MS, 1), 0);
            assert_eq!(brisk_host_lat_defer(80 * MS * 100 + 1, 20 * MS, 1), 1);
        }
    }

    /// A request worker woken in the fair order that turns into a hog (it never sleeps again)
    /// counts against the lane for its first latency slices only; counted for as long as it
    /// ran, it held the lane over its share for good and light wakeups waited for the
    /// starvation guard (guest test woken-hogs).
    #[test]
    fn a_worker_turned_hog_stops_counting_against_the_lane() {
        let (share, allowance, slice) = (75u64, 10 * MS, 5 * MS);
        unsafe {
            assert_eq!(brisk_host_lane_stint(1, 0, 100 * SEC, slice), 1);
            assert_eq!(brisk_host_lane_stint(0, 1, 0, slice), 1);
            assert_eq!(brisk_host_lane_stint(0, 1, 4 * slice - 1, slice), 1);
            assert_eq!(brisk_host_lane_stint(0, 1, 4 * slice, slice), 0);
            assert_eq!(brisk_host_lane_stint(0, 0, 0, slice), 0);
        }
        // Two such hogs alternate 5 ms stints with a fair hog waiting; the lane's debt must
        // not pin a light wakeup out for good.
        let (mut debt, mut ran, mut lat_fair) = (0u64, [0u64; 2], [1i32; 2]);
        for i in 0..400 {
            let h = i % 2;
            let lane = unsafe { brisk_host_lane_stint(0, lat_fair[h], ran[h], slice) };
            if lane == 0 {
                lat_fair[h] = 0;
            }
            ran[h] += slice;
            debt = unsafe { brisk_host_lat_debt(debt, slice, lane, share, 8 * allowance) };
        }
        assert_eq!(unsafe { brisk_host_lat_defer(debt, allowance, 1) }, 0);
    }

    #[test]
    fn duty_is_burst_over_period_and_light_tasks_sort_first() {
        unsafe {
            assert_eq!(brisk_host_duty_pct(MS, 10 * MS), 10);
            assert_eq!(brisk_host_duty_pct(97 * US, 100 * US), 97);
            // no interval yet, or a burst longer than the period: as busy as can be
            assert_eq!(brisk_host_duty_pct(MS, 0), 100);
            assert_eq!(brisk_host_duty_pct(3 * MS, 2 * MS), 100);
            // a light task that woke later still goes before a busy one that woke earlier,
            // and the keys compare by signed difference as the kernel's queue does
            let (boot, day) = (1_000 * MS, 86_400_000 * MS);
            for now in [boot, 400 * day] {
                let busy = brisk_host_lat_key(now, 0);
                let light = brisk_host_lat_key(now + 50 * MS, 1);
                assert!((light.wrapping_sub(busy) as i64) < 0);
                assert!(
                    (brisk_host_lat_key(now, 1).wrapping_sub(brisk_host_lat_key(now + 1, 1))
                        as i64)
                        < 0
                );
            }
        }
    }

    /// A saturated lane (request workers catching up, 1 ms bursts, always one waiting) beside
    /// a fair queue of hogs (4 ms stints): dispatch takes the lane unless it is over its share.
    /// Over a second the lane gets its share plus the allowance, and the fair queue is
    /// never held longer than the allowance plus a stint.
    #[test]
    fn a_saturated_lane_leaves_the_fair_queue_its_share() {
        for share in [25u64, 50, 75, 90] {
            let (mut debt, mut lat_ns, mut fair_ns, mut since_fair, mut worst) = (0, 0, 0, 0, 0);
            let allowance = 20 * MS;
            while lat_ns + fair_ns < 1000 * MS {
                let lat = unsafe { brisk_host_lat_defer(debt, allowance, 0) } == 0;
                let ran = if lat { MS } else { 4 * MS };
                debt = unsafe { brisk_host_lat_debt(debt, ran, lat as i32, share, 8 * allowance) };
                if lat {
                    lat_ns += ran;
                    since_fair += ran;
                    worst = worst.max(since_fair);
                } else {
                    fair_ns += ran;
                    since_fair = 0;
                }
            }
            // the lane's time beyond its share: the allowance, give or take a stint
            let excess = lat_ns as i64 - (share * (lat_ns + fair_ns) / 100) as i64;
            assert!(
                excess >= -4 * MS as i64 && excess <= (allowance + MS) as i64,
                "share {share}: lane ran {lat_ns} of {}",
                lat_ns + fair_ns
            );
            assert!(
                worst <= allowance * 100 / (100 - share) + MS,
                "share {share}: {worst}"
            );
        }
    }

    /// A fair task the lane preempted resumes with what was left of its slice, so its slice
    /// ends where it would have; with less than the minimum left (or past its end: the clock
    /// read late) it gets none and queues in the fair order. The clock may wrap.
    #[test]
    fn a_resumed_task_keeps_its_slice_end() {
        unsafe {
            assert_eq!(brisk_host_resume_slice(10 * MS, 7 * MS, MS / 2), 3 * MS);
            assert_eq!(
                brisk_host_resume_slice(10 * MS, 10 * MS - MS / 2, MS / 2),
                MS / 2
            );
            assert_eq!(
                brisk_host_resume_slice(10 * MS, 10 * MS - MS / 2 + 1, MS / 2),
                0
            );
            assert_eq!(brisk_host_resume_slice(10 * MS, 11 * MS, MS / 2), 0);
            assert_eq!(
                brisk_host_resume_slice(2 * MS, u64::MAX - MS + 1, MS / 2),
                3 * MS
            );
        }
    }

    /// The same saturated lane, the fair stints cut by brisk_deferred_slice since the lane
    /// waits whenever it defers: each wait of the lane is one short turn, not a 4 ms slice,
    /// and the fair queue still gets its share of the time.
    #[test]
    fn a_deferred_lane_waits_a_short_turn() {
        unsafe {
            assert_eq!(brisk_host_deferred_slice(4 * MS, 0), 4 * MS);
            assert_eq!(brisk_host_deferred_slice(4 * MS, 1), MS);
            assert_eq!(brisk_host_deferred_slice(300 * US, 1), 300 * US);
        }
        let (share, allowance) = (67u64, 10 * MS);
        let (mut debt, mut lat_ns, mut fair_ns, mut longest_fair_turn) = (0, 0, 0, 0);
        while lat_ns + fair_ns < 1000 * MS {
            let lat = unsafe { brisk_host_lat_defer(debt, allowance, 0) } == 0;
            let ran = if lat {
                MS
            } else {
                unsafe { brisk_host_deferred_slice(4 * MS, 1) }
            };
            debt = unsafe { brisk_host_lat_debt(debt, ran, lat as i32, share, 8 * allowance) };
            if lat {
                lat_ns += ran;
            } else {
                fair_ns += ran;
                longest_fair_turn = longest_fair_turn.max(ran);
            }
        }
        assert_eq!(longest_fair_turn, MS);
        let fair_pct = fair_ns * 100 / (lat_ns + fair_ns);
        assert!((32..=34).contains(&fair_pct), "fair queue got {fair_pct} %");
    }

    /// A request's sender (bursts of tens of us) hands its CPU to the worker it wakes; the
    /// worker replying after 1 ms of work, a new task and a sender caught mid-way through a
    /// long burst do not, and their wakees take an idle CPU.
    #[test]
    fn a_waker_that_sleeps_soon_keeps_its_cpu() {
        unsafe {
            assert_eq!(brisk_host_sleeps_soon(30 * US, 10 * US), 1);
            assert_eq!(brisk_host_sleeps_soon(200 * US, 200 * US), 1);
            assert_eq!(brisk_host_sleeps_soon(MS, 10 * US), 0);
            assert_eq!(brisk_host_sleeps_soon(201 * US, 10 * US), 0);
            assert_eq!(brisk_host_sleeps_soon(30 * US, 201 * US), 0);
            assert_eq!(brisk_host_sleeps_soon(0, 0), 0);
        }
    }

    #[test]
    fn a_new_task_starts_level_with_the_running_task_not_ahead() {
        unsafe {
            // a third of the slice past the clock: where a hog and a chain of short
            // processes split a CPU evenly (the guest test `fairness` checks the split)
            assert_eq!(brisk_host_new_vruntime(100 * MS, 6 * MS), 102 * MS);
            // never behind the clock, nor a whole slice past it (a new task would wait a round)
            for slice in [0, MS, 4 * MS, 20 * MS] {
                let v = brisk_host_new_vruntime(100 * MS, slice);
                assert!(v >= 100 * MS && v < 100 * MS + slice.max(1), "{slice}: {v}");
            }
        }
    }

    #[test]
    fn sleep_credit_is_bounded() {
        unsafe {
            // a long sleeper comes back at most `credit` behind the clock
            assert_eq!(brisk_host_wake_vruntime(0, 100 * MS, 5 * MS), 95 * MS);
            // a recent sleeper keeps its own vruntime
            assert_eq!(brisk_host_wake_vruntime(99 * MS, 100 * MS, 5 * MS), 99 * MS);
            // ahead of the clock: unchanged
            assert_eq!(
                brisk_host_wake_vruntime(120 * MS, 100 * MS, 5 * MS),
                120 * MS
            );
            // early in boot the floor does not underflow
            assert_eq!(brisk_host_wake_vruntime(0, 2 * MS, 5 * MS), 0);
            // no credit: strict
            assert_eq!(brisk_host_wake_vruntime(0, 7 * MS, 0), 7 * MS);
        }
    }

    /// The burst tracker the policy and the standalone probe share: a preemption adds to the
    /// burst without completing it; a sleep completes it into the average.
    #[test]
    fn burst_tracker_completes_a_burst_only_at_a_sleep() {
        let (mut r1, mut r2, mut cur) = (0u64, 0u64, 0u64);
        unsafe {
            // Preempted after 3 ms, runs 1 ms more, sleeps: one 4 ms burst into the average.
            let avg = brisk_host_burst_sequence(
                2 * MS,
                10 * MS,
                13 * MS,
                0,
                20 * MS,
                21 * MS,
                2,
                100 * MS,
                &mut r1,
                &mut r2,
                &mut cur,
            );
            assert_eq!((r1, r2, cur), (3 * MS, MS, 3 * MS));
            assert_eq!(avg, brisk_host_burst_avg(2 * MS, 4 * MS, 2, 100 * MS));
            // Sleeps after 3 ms, wakes, runs 1 ms, sleeps: two bursts, 3 ms then 1 ms.
            let avg = brisk_host_burst_sequence(
                2 * MS,
                10 * MS,
                13 * MS,
                1,
                20 * MS,
                21 * MS,
                2,
                100 * MS,
                &mut r1,
                &mut r2,
                &mut cur,
            );
            assert_eq!((r1, r2, cur), (3 * MS, MS, 3 * MS));
            let after_first = brisk_host_burst_avg(2 * MS, 3 * MS, 2, 100 * MS);
            assert_eq!(avg, brisk_host_burst_avg(after_first, MS, 2, 100 * MS));
            // A task first seen leaving its CPU counts no time (it was never seen starting).
            assert_eq!(brisk_host_burst_stop_unstarted(5 * MS), 0);
        }
    }

    /// A request worker that fell behind runs request after request in one burst, waking the
    /// thread that sends the next one after each: its bursts grow long, its segments stay one
    /// request long, so it still counts as about to sleep when it wakes that thread
    /// (waker_is_short). A hog that wakes nobody has one segment per burst.
    #[test]
    fn segments_end_at_each_wakeup_the_task_makes() {
        const SHORT: u64 = 2 * MS;
        let mut seg_now = 0u64;
        unsafe {
            let cap = brisk_host_burst_sample_cap(20 * MS, SHORT);
            // Four 1 ms requests in one burst, a wakeup after each, preempted once, no sleep:
            // the burst average is untouched, the segments average toward 1 ms.
            let mut avg = SHORT;
            let mut seg_avg = SHORT;
            let mut seg_avg_before = SHORT;
            for _ in 0..5 {
                avg =
                    brisk_host_burst_segments(avg, 4, MS, 0, 1, 2, cap, &mut seg_avg, &mut seg_now);
                assert!(seg_avg <= seg_avg_before, "{seg_avg} > {seg_avg_before}");
                seg_avg_before = seg_avg;
            }
            assert!(
                avg >= 3 * MS,
                "bursts of 4 requests: a hog by its bursts ({avg})"
            );
            assert!(brisk_host_is_short(avg, SHORT) == 0);
            assert!(seg_avg < SHORT, "its segments: short ({seg_avg})");
            // The segment in progress counts as soon as it is longer than the average: a
            // task that wakes one task and then runs 10 ms is not about to sleep.
            seg_avg = MS / 2;
            brisk_host_burst_segments(
                MS / 2,
                1,
                MS / 2,
                10 * MS,
                0,
                2,
                cap,
                &mut seg_avg,
                &mut seg_now,
            );
            assert_eq!(seg_now, 10 * MS);
            assert_eq!(seg_avg, brisk_host_burst_avg(MS / 2, MS / 2, 2, cap));
            // A hog that wakes nobody: its segment is its burst, preemption included.
            seg_avg = SHORT;
            let avg = brisk_host_burst_segments(
                SHORT,
                0,
                0,
                8 * MS,
                1,
                2,
                cap,
                &mut seg_avg,
                &mut seg_now,
            );
            assert_eq!(seg_now, 8 * MS);
            assert_eq!(seg_avg, avg);
            assert_eq!(avg, brisk_host_burst_avg(SHORT, 8 * MS, 2, cap));
        }
    }

    /// Balancing between LLCs moves a task while that narrows the gap in load per CPU, and
    /// stops where one more move would only reverse it.
    #[test]
    fn llc_balance_converges_without_churn() {
        let bal = |busy: u64, own: u64, w: u64| unsafe {
            brisk_host_should_balance(busy, 4, own, 4, w) != 0
        };
        // 12 nice-0 tasks over two 4-CPU LLCs, started 9:3: moves until 6:6, then stops.
        let (mut a, mut b) = (9u64, 3u64);
        let mut moves = 0;
        while bal(a * NICE0, b * NICE0, NICE0) {
            a -= 1;
            b += 1;
            moves += 1;
            assert!(moves < 10);
        }
        assert_eq!((a, b), (6, 6));
        assert!(!bal(b * NICE0, a * NICE0, NICE0), "and not back");
        // 13 tasks settle at 7:6 (moving one more would give 6:7).
        assert!(!bal(7 * NICE0, 6 * NICE0, NICE0));
        // Weights, not counts: 8 nice-0 tasks against 8 nice-5 ones move nice-0 tasks over,
        // and settle near equal loads (5 nice-0 against 3 nice-0 and 8 nice-5, then one nice-5
        // task back: 532 against 524).
        assert!(bal(8 * NICE0, 8 * NICE5, NICE0));
        assert!(bal(3 * NICE0 + 8 * NICE5, 5 * NICE0, NICE5));
        assert!(!bal(3 * NICE0 + 7 * NICE5, 5 * NICE0 + NICE5, NICE5));
        // A heavy task does not move onto a lighter LLC that it would then overload.
        assert!(!bal(2 * NICE0 + 1000, 2 * NICE0, 1000));
        // Unequal LLC sizes: 6 tasks on 4 CPUs against 2 on 2 CPUs (1.5 against 1 per CPU)
        // move one (1.25 against 1.5, a narrower gap); 5 against 3 (1.25, 1.5) do not.
        assert!(unsafe { brisk_host_should_balance(6 * NICE0, 4, 2 * NICE0, 2, NICE0) } != 0);
        assert!(unsafe { brisk_host_should_balance(5 * NICE0, 4, 3 * NICE0, 2, NICE0) } == 0);
    }

    /// The starvation guard counts a wait from the task's stamp; a stamp later than the
    /// scan's clock (queued by another CPU since) is no wait at all.
    #[test]
    fn starving_only_after_a_real_wait() {
        let starving =
            |now: u64, queued: u64| unsafe { brisk_host_starving(now, queued, SEC) != 0 };
        assert!(!starving(10 * SEC, 10 * SEC - SEC + 1));
        assert!(starving(10 * SEC, 9 * SEC));
        assert!(starving(10 * SEC, 0));
        // Queued 1 us after the scan read its clock: not 2^64 ns of waiting.
        assert!(!starving(10 * SEC, 10 * SEC + US));
    }

    /// A CPU keeps to its own fair queue within the margin, serves another's earlier task
    /// past it, and never picks an empty queue.
    #[test]
    fn own_fair_queue_first_within_the_margin() {
        const NONE: u64 = u64::MAX;
        let own = |own: u64, other: u64, margin: u64| unsafe {
            brisk_host_prefer_own(own, other, margin) != 0
        };
        // Its own is due first, or nobody else's is queued: its own.
        assert!(own(10 * MS, 12 * MS, 0));
        assert!(own(10 * MS, NONE, 0));
        // Its own is due later: within the margin it still goes first, past it the other.
        assert!(own(12 * MS, 11 * MS, MS));
        assert!(own(12 * MS, 11 * MS, MS + 1));
        assert!(!own(12 * MS, 11 * MS - 1, MS));
        // No margin: the one fair order, ties kept local.
        assert!(own(11 * MS, 11 * MS, 0));
        assert!(!own(11 * MS + 1, 11 * MS, 0));
        // Its own queue is empty: another's, whatever the margin.
        assert!(!own(NONE, 5 * MS, u64::MAX));
        assert!(!own(NONE, NONE, 0));
        // Deadlines near the top of the range do not wrap.
        assert!(!own(u64::MAX - 1, 0, MS));
    }

    #[test]
    fn burst_average_converges_both_ways() {
        const CAP: u64 = u64::MAX;
        unsafe {
            assert_eq!(brisk_host_burst_avg(0, 1000, 2, CAP), 250);
            let mut avg = 0;
            for _ in 0..50 {
                let next = brisk_host_burst_avg(avg, 1000, 2, CAP);
                assert!(next >= avg && next <= 1000);
                avg = next;
            }
            assert!(avg > 990, "{avg}");
            // toward a shorter burst it moves by half the gap: twice the rise
            assert_eq!(brisk_host_burst_avg(1000, 200, 2, CAP), 600);
            for _ in 0..50 {
                let next = brisk_host_burst_avg(avg, 10, 2, CAP);
                assert!(next <= avg && next >= 10);
                avg = next;
            }
            assert!(avg < 20, "{avg}");
            // shift 0 takes the sample as is, both ways
            assert_eq!(brisk_host_burst_avg(123, 456, 0, CAP), 456);
            assert_eq!(brisk_host_burst_avg(456, 123, 0, CAP), 123);
        }
    }

    /// At the defaults (shift 2, cap 20 ms, border 2 ms) one long burst demotes a 1 ms task for
    /// exactly three wakeups: its average falls 5.75 -> 3.375 -> 2.19 -> 1.59 ms.
    #[test]
    fn one_long_burst_costs_a_short_task_three_wakeups() {
        let (short, cap) = (2 * MS, 20 * MS);
        unsafe {
            let sample_cap = brisk_host_burst_sample_cap(cap, short);
            assert_eq!(sample_cap, cap);
            // a 1 ms task that had one 500 ms burst (say, its start-up)
            let mut avg = brisk_host_burst_avg(MS, 500 * MS, 2, sample_cap);
            assert_eq!(avg, MS + 19 * MS / 4, "the burst counts at most the cap");
            assert_eq!(brisk_host_is_short(avg, short), 0);
            let mut demoted = 0;
            while brisk_host_is_short(avg, short) == 0 {
                avg = brisk_host_burst_avg(avg, MS, 2, sample_cap);
                demoted += 1;
            }
            assert_eq!(demoted, 3, "wakeups spent demoted");
            // a new task (starting on the border) after a 100 ms start-up: short again after
            // three (6.5 -> 3.75 -> 2.375 -> 1.69 ms)
            let mut avg = brisk_host_burst_avg(short, 100 * MS, 2, sample_cap);
            let mut n = 0;
            while brisk_host_is_short(avg, short) == 0 {
                avg = brisk_host_burst_avg(avg, MS, 2, sample_cap);
                n += 1;
            }
            assert_eq!(n, 3, "wakeups spent demoted");
        }
    }

    #[test]
    fn a_hog_that_sleeps_briefly_now_and_then_stays_a_hog() {
        let (short, cap) = (2 * MS, 20 * MS);
        unsafe {
            let sample_cap = brisk_host_burst_sample_cap(cap, short);
            let mut avg = short;
            for i in 0..200 {
                let burst = if i % 2 == 0 { MS / 2 } else { 20 * MS };
                avg = brisk_host_burst_avg(avg, burst, 2, sample_cap);
                if i > 10 {
                    assert!(avg > 2 * short, "burst {i}: average {avg}");
                }
            }
            // a hog's average stays above the border even when the cap is set below it
            let tiny_cap = brisk_host_burst_sample_cap(MS / 10, short);
            assert_eq!(tiny_cap, 2 * short);
            let mut avg = short;
            for _ in 0..100 {
                avg = brisk_host_burst_avg(avg, 500 * MS, 2, tiny_cap);
            }
            assert_eq!(brisk_host_is_short(avg, short), 0);
        }
    }

    #[test]
    fn a_task_turning_into_a_hog_loses_short_status_at_once() {
        unsafe {
            let avg = MS / 2;
            assert_eq!(
                brisk_host_is_short(brisk_host_effective_burst(avg, 0), 2 * MS),
                1
            );
            let burst = brisk_host_effective_burst(avg, 3 * MS);
            assert_eq!(burst, 3 * MS);
            assert_eq!(brisk_host_is_short(burst, 2 * MS), 0);
            // the threshold itself is not short
            assert_eq!(brisk_host_is_short(2 * MS, 2 * MS), 0);
        }
    }

    #[test]
    fn deadline_puts_short_tasks_first_within_the_cap() {
        unsafe {
            let v = 50 * MS;
            let short = brisk_host_deadline(v, MS / 2, 20 * MS, NICE0);
            let hog = brisk_host_deadline(v, 500 * MS, 20 * MS, NICE0);
            assert!(short < hog);
            assert_eq!(short, v + MS / 2);
            // the hog's penalty is capped
            assert_eq!(hog, v + 20 * MS);
            // a hog far behind in vruntime still goes before a short task: no starvation
            assert!(brisk_host_deadline(v - 25 * MS, 500 * MS, 20 * MS, NICE0) < short);
            // lower weight: the same burst weighs more
            assert!(
                brisk_host_deadline(v, MS, 20 * MS, NICE5)
                    > brisk_host_deadline(v, MS, 20 * MS, NICE0)
            );
        }
    }

    #[test]
    fn deadline_offset_shrinks_with_the_queue() {
        unsafe {
            // nothing waiting: the offset is the burst
            assert_eq!(brisk_host_contended_offset(MS, 0, 2), MS);
            // as many waiting as CPUs: virtual time runs at half speed, so half the offset
            assert_eq!(brisk_host_contended_offset(MS, 2, 2), MS / 2);
            // 78 waiting on 2 CPUs: a 1 ms burst costs 1/40 ms of virtual time
            assert_eq!(brisk_host_contended_offset(MS, 78, 2), MS / 40);
            // no CPUs known: counted as one, never a division by zero
            assert_eq!(brisk_host_contended_offset(MS, 1, 0), MS / 2);
            // the deadline is the plain one scaled: same order, capped before scaling
            let v = 50 * MS;
            assert_eq!(
                brisk_host_deadline_contended(v, MS, 20 * MS, NICE0, 0, 2),
                brisk_host_deadline(v, MS, 20 * MS, NICE0)
            );
            assert_eq!(
                brisk_host_deadline_contended(v, 500 * MS, 20 * MS, NICE0, 2, 2),
                v + 10 * MS
            );
            let short = brisk_host_deadline_contended(v, MS / 2, 20 * MS, NICE0, 78, 2);
            let longer = brisk_host_deadline_contended(v, MS, 20 * MS, NICE0, 78, 2);
            assert!(short < longer, "shorter bursts still go first");
            // what a 1 ms burst costs against a 50 us one, in real time at the queue's pace
            // (virtual time advancing at 2/80 of real time): about the burst, not 40 times it
            let gap = brisk_host_deadline_contended(v, MS, 20 * MS, NICE0, 78, 2)
                - brisk_host_deadline_contended(v, MS / 20, 20 * MS, NICE0, 78, 2);
            assert!(gap * 80 / 2 <= MS, "gap {gap} ns of virtual time");
        }
    }

    #[test]
    fn slice_shrinks_with_waiting_tasks_down_to_the_floor() {
        unsafe {
            assert_eq!(brisk_host_slice(5 * MS, MS / 2, 0, 2), 5 * MS);
            assert_eq!(brisk_host_slice(5 * MS, MS / 2, 2, 2), 5 * MS / 2);
            assert_eq!(brisk_host_slice(5 * MS, MS / 2, 1000, 2), MS / 2);
            assert_eq!(brisk_host_slice(5 * MS, MS / 2, 0, 0), 5 * MS);
        }
    }

    #[test]
    fn short_tasks_get_a_slice_that_covers_their_burst() {
        unsafe {
            // under load the slice shrinks to 0.5 ms, but a short task keeps 2 ms
            assert_eq!(brisk_host_task_slice(MS / 2, 1, 2 * MS), 2 * MS);
            assert_eq!(brisk_host_task_slice(MS / 2, 0, 2 * MS), MS / 2);
            // a longer slice is never shortened
            assert_eq!(brisk_host_task_slice(5 * MS, 1, 2 * MS), 5 * MS);
        }
    }

    #[test]
    fn preemption_needs_more_than_the_margin() {
        unsafe {
            assert_eq!(brisk_host_should_preempt(10 * MS, 12 * MS, MS), 1);
            assert_eq!(brisk_host_should_preempt(10 * MS, 11 * MS, MS), 0);
            assert_eq!(brisk_host_should_preempt(10 * MS, 9 * MS, 0), 0);
            // clocks that wrapped still compare by distance
            assert_eq!(brisk_host_time_delta(5, u64::MAX - 4), 10);
            assert_eq!(brisk_host_should_preempt(u64::MAX - MS, 5 * MS, MS), 1);
        }
    }

    /// Two hogs of nice 0 and nice 5 on one CPU, picked by earliest deadline with the
    /// policy's own formulas: their CPU time splits by weight (1024:335).
    #[test]
    fn hogs_share_one_cpu_by_weight() {
        struct Task {
            weight: u64,
            vruntime: u64,
            burst: u64,
            ran: u64,
        }
        let mut tasks = [NICE0, NICE5].map(|weight| Task {
            weight,
            vruntime: 0,
            burst: 0,
            ran: 0,
        });
        let slice = 3 * MS;
        for _ in 0..20_000 {
            let dl =
                |t: &Task| unsafe { brisk_host_deadline(t.vruntime, t.burst, 20 * MS, t.weight) };
            let pick = if dl(&tasks[0]) <= dl(&tasks[1]) { 0 } else { 1 };
            let t = &mut tasks[pick];
            t.vruntime += unsafe { brisk_host_scale_inverse(slice, t.weight) };
            t.burst += slice;
            t.ran += slice;
        }
        let ratio = tasks[0].ran as f64 / tasks[1].ran as f64;
        let want = 1024.0 / 335.0;
        assert!(
            (ratio / want - 1.0).abs() < 0.05,
            "ratio {ratio:.3}, want {want:.3}"
        );
    }

    /// What `one_cpu` measured.
    #[derive(Debug)]
    struct Shares {
        hog_ran: u64,
        other_ran: u64,
        /// Wakeups of the other task after which it was not the next to run.
        other_waited: u32,
        wakeups: u32,
    }

    /// One CPU at the default tunables, two nice-0 tasks: a hog that never sleeps, and a task
    /// that runs `work` and sleeps `sleep`, over and over, for `total` of CPU time. Which of
    /// them runs, and for how long, is decided as main.bpf.c decides it, with the policy's own
    /// functions: the earliest deadline (vruntime + effective burst, capped) is picked when the
    /// CPU is free; the slice shrinks with the waiting task (not below the floor, nor below the
    /// border for a short task); on wakeup the vruntime gets the bounded sleep credit, and a
    /// short waker preempts a running hog whose deadline (taken when it started) is later than
    /// its own by more than the margin; vruntime advances by the time run, and a burst that
    /// ends in a sleep updates the average. (Deadlines are the uncontended ones: scaling the
    /// offset for the queue keeps it within 0..=CAP, which is all the bounds below rely on.)
    fn one_cpu(work: u64, sleep: u64, total: u64) -> Shares {
        const SLICE: u64 = 5 * MS;
        const SLICE_MIN: u64 = 4 * MS;
        const SHORT: u64 = 2 * MS;
        const CAP: u64 = 20 * MS;
        const CREDIT: u64 = 5 * MS;
        const MARGIN: u64 = MS;
        const SHIFT: u32 = 2;
        #[derive(Clone, Copy)]
        struct Task {
            v: u64,
            avg: u64,
            cur: u64,
            ran: u64,
        }
        let new_task = Task {
            v: 0,
            avg: SHORT,
            cur: 0,
            ran: 0,
        };
        let (mut hog, mut other) = (new_task, new_task);
        let dl = |t: &Task| unsafe {
            brisk_host_deadline(t.v, brisk_host_effective_burst(t.avg, t.cur), CAP, NICE0)
        };
        let is_short = |t: &Task| unsafe {
            brisk_host_is_short(brisk_host_effective_burst(t.avg, t.cur), SHORT)
        };
        let sample_cap = unsafe { brisk_host_burst_sample_cap(CAP, SHORT) };
        let mut vtime_now = 0u64;
        let (mut now, mut wake_at, mut left) = (0u64, sleep, work);
        let mut other_runnable = false;
        let mut out = Shares {
            hog_ran: 0,
            other_ran: 0,
            other_waited: 0,
            wakeups: 0,
        };
        let mut just_woke = false;
        while now < total {
            if !other_runnable && wake_at <= now {
                other.cur = 0;
                other.v = unsafe { brisk_host_wake_vruntime(other.v, vtime_now, CREDIT) };
                other_runnable = true;
                just_woke = true;
                out.wakeups += 1;
            }
            let pick_other = other_runnable && dl(&other) < dl(&hog);
            if just_woke && !pick_other {
                out.other_waited += 1;
            }
            just_woke = false;
            let waiting = u64::from(other_runnable && !pick_other);
            let t = if pick_other { &mut other } else { &mut hog };
            // ops.running
            vtime_now = vtime_now.max(t.v);
            let running_dl = dl(t);
            let base = unsafe { brisk_host_slice(SLICE, SLICE_MIN, waiting, 1) };
            let mut run = unsafe { brisk_host_task_slice(base, is_short(t), SHORT) };
            if pick_other {
                run = run.min(left);
            } else if !other_runnable && wake_at < now + run {
                // the other task wakes while the hog runs: if short, it may preempt
                other.cur = 0;
                other.v = unsafe { brisk_host_wake_vruntime(other.v, vtime_now, CREDIT) };
                other_runnable = true;
                out.wakeups += 1;
                let preempts = is_short(&other) == 1
                    && is_short(&hog) == 0
                    && unsafe { brisk_host_should_preempt(dl(&other), running_dl, MARGIN) } == 1;
                if preempts {
                    run = wake_at - now;
                } else {
                    out.other_waited += 1;
                }
            }
            // ops.stopping
            let t = if pick_other { &mut other } else { &mut hog };
            t.v += unsafe { brisk_host_scale_inverse(run, NICE0) };
            t.cur += run;
            t.ran += run;
            now += run;
            if pick_other {
                left -= run;
                if left == 0 {
                    other.avg =
                        unsafe { brisk_host_burst_avg(other.avg, other.cur, SHIFT, sample_cap) };
                    other_runnable = false;
                    wake_at = now + sleep;
                    left = work;
                }
            }
        }
        out.hog_ran = hog.ran;
        out.other_ran = other.ran;
        out
    }

    /// A short task (1 ms every 10 ms) beside a hog: at every wakeup but its first (a new task
    /// starts on the border, not yet short, so it cannot preempt) it runs next, preempting the
    /// hog; so it gets all the CPU time it asks for, and the hog the rest.
    #[test]
    fn short_sleeper_goes_first() {
        let total = 10_000 * MS;
        let s = one_cpu(MS, 9 * MS, total);
        assert!(s.wakeups >= 999, "{s:?}");
        assert_eq!(s.other_waited, 1, "{s:?}");
        assert!(s.other_ran >= total / 10 - MS, "{s:?}");
        assert!(s.hog_ran >= total - total / 10 - MS, "{s:?}");
    }

    /// A task whose bursts are short (1 ms) but which wakes again at once: the short class's
    /// privileges would let it starve the hog if short tasks simply went first. They do not:
    /// the deadline is vruntime + burst with the burst capped at CAP (20 ms), and both tasks'
    /// vruntime advances by the time they run (nice 0). Whenever the other task is picked or
    /// preempts, its deadline is before the hog's, so its vruntime is at most the hog's + CAP;
    /// after running one burst (W = 1 ms) at most the hog's + CAP + W. Its run time is at most
    /// its vruntime (a wakeup only raises vruntime), the hog's run time is exactly its
    /// vruntime, and the CPU is never idle, so over a run of T:
    ///     hog_ran >= other_ran - (CAP + W)   =>   hog_ran >= (T - CAP - W) / 2.
    #[test]
    fn hog_is_not_starved_by_a_task_with_short_bursts() {
        const CAP_PLUS_W: u64 = 20 * MS + MS;
        for sleep in [0, MS / 10, MS] {
            let s = one_cpu(MS, sleep, 10_000 * MS);
            let t = s.hog_ran + s.other_ran;
            assert!(s.hog_ran >= (t - CAP_PLUS_W) / 2, "sleep {sleep} ns: {s:?}");
            // a loose check the other way: the short-burst task is not starved either
            assert!(s.other_ran >= t / 4, "sleep {sleep} ns: {s:?}");
        }
    }

    #[test]
    fn a_task_moving_llc_carries_a_bounded_lag() {
        let carry = |v, from, to| unsafe { brisk_host_carry_vruntime(v, from, to, 5 * MS) };
        // Near its clock: the same distance from the new one, behind or ahead.
        assert_eq!(carry(98 * MS, 100 * MS, 500 * MS), 498 * MS);
        assert_eq!(carry(103 * MS, 100 * MS, 20 * MS), 23 * MS);
        // Far behind (it would hold a CPU there) or far ahead (it would starve): bounded.
        assert_eq!(carry(10 * MS, 1000 * MS, 500 * MS), 495 * MS);
        assert_eq!(carry(3000 * MS, 1000 * MS, 500 * MS), 505 * MS);
        // A new clock near zero: no wrap below it.
        assert_eq!(carry(0, 100 * MS, 2 * MS), 0);
        // Clocks past u64 wrap-around still compare by distance.
        assert_eq!(carry(u64::MAX - MS, u64::MAX, 10 * MS), 9 * MS);
    }

    #[test]
    fn a_reweighted_task_keeps_its_lead_or_lag_in_cpu_time() {
        // Weights on the cgroup scale: nice 0 = 100, nice 19 = 1, nice -5 = 305.
        let rw = |v, old, new| unsafe { brisk_host_reweight_vruntime(v, 1000 * MS, old, new) };
        // A slice run at nice 19 put it 68 ms ahead; back at nice 0 that is 1 ms of CPU.
        assert_eq!(rw(1068 * MS, 1, 100), 1000 * MS + 68 * MS / 100);
        // The other way: 1 ms ahead at nice 0 is 100 ms ahead at nice 19.
        assert_eq!(rw(1001 * MS, 100, 1), 1100 * MS);
        // A lag scales the same way, toward the clock as the weight grows.
        assert_eq!(rw(990 * MS, 100, 305), 1000 * MS - 10 * MS * 100 / 305);
        assert_eq!(rw(990 * MS, 100, 200), 995 * MS);
        // A lag larger than the clock stops at zero rather than wrapping.
        assert_eq!(rw(900 * MS, 100, 1), 0);
        // At the clock, or with its weight unchanged (or unknown): untouched.
        assert_eq!(rw(1000 * MS, 1, 10000), 1000 * MS);
        assert_eq!(rw(1234 * MS, 100, 100), 1234 * MS);
        assert_eq!(rw(1234 * MS, 0, 100), 1234 * MS);
        // A distance near the u64 range is capped instead of overflowing the product.
        let far = unsafe { brisk_host_reweight_vruntime(u64::MAX / 2, 0, 10000, 1) };
        assert_eq!(far, 1 << 50);
        // Clocks past the u64 wrap-around still compare by distance.
        let near_wrap = unsafe { brisk_host_reweight_vruntime(3 * MS, u64::MAX - MS, 1, 2) };
        assert_eq!(near_wrap, (u64::MAX - MS).wrapping_add(2 * MS));
    }

    #[test]
    fn a_latency_critical_task_preempted_mid_burst_stays_so() {
        let keeps = |lat, ran| unsafe { brisk_host_lat_keeps(lat, ran, 5 * MS) } != 0;
        // Preempted 1 ms into its burst: still first in line.
        assert!(keeps(1, MS));
        // A burst stretched past its slice by an interruption (a host taking the vCPU):
        // it finishes in the lane.
        assert!(keeps(1, 5 * MS));
        assert!(keeps(1, 19 * MS));
        // It ran BRISK_LAT_KEEP_SLICES latency slices: the fair order from here.
        assert!(!keeps(1, 20 * MS));
        assert!(!keeps(1, 90 * MS));
        // Never latency-critical: preemption makes it none.
        assert!(!keeps(0, 0));
    }

    #[test]
    fn a_burst_kept_in_the_lane_sorts_by_what_it_has_run() {
        // Re-keyed as it queues again (ops.enqueue): woke at 100 ms with a 1 ms average
        // burst, it has run 6 ms. A task that woke 2 ms after it with a 1 ms burst goes
        // first; one that woke 10 ms after it goes after.
        let key = |woke, burst| unsafe {
            brisk_host_lat_key(brisk_host_lat_deadline(woke, burst, 100), 1)
        };
        let kept = key(100 * MS, 6 * MS);
        assert!(key(102 * MS, MS) < kept);
        assert!(key(110 * MS, MS) > kept);
    }

    #[test]
    fn latency_queue_is_earliest_deadline_first_on_the_wall_clock() {
        let dl = |woke, burst, weight| unsafe { brisk_host_lat_deadline(woke, burst, weight) };
        // Woken together: the shorter burst first (sched_ext weights: nice 0 is 100).
        assert!(dl(0, 30 * US, 100) < dl(0, MS, 100));
        // A wakeup after this one's burst has passed sorts after it, however short.
        assert!(dl(100 * MS, 1100 * US, 100) < dl(100 * MS + 1100 * US, 30 * US, 100));
        // Weight: nice -5 (305) nearer than nice 0; half nice 0's weight, twice the offset.
        assert!(dl(0, MS, 305) < dl(0, MS, 100));
        assert_eq!(dl(7 * MS, MS, 50), 9 * MS);
    }

    /// The stall this order fixes: two request pairs catching up a backlog keep both CPUs'
    /// latency lane busy (a 1 ms worker and a 30 us messenger waking each other), while a
    /// periodic task with a 1.1 ms burst waits there. Under earliest deadline first on the wall
    /// clock it runs within a couple of bursts of waking, however long the pairs go on.
    #[test]
    fn a_crowd_of_latency_critical_wakeups_cannot_starve_a_longer_burst() {
        let dl = |woke, burst| unsafe { brisk_host_lat_deadline(woke, burst, 100) };
        // (deadline, burst, task) queued; task 0 is the periodic one, 1..=4 the pairs'.
        let bursts = [1100 * US, MS, 30 * US, MS, 30 * US];
        let mut queue: Vec<(u64, u64, usize)> = vec![(dl(0, MS), MS, 1), (dl(0, MS), MS, 3)];
        let mut cpus = [0u64; 2]; // when each CPU is free
        let woke = 50 * US;
        queue.push((dl(woke, bursts[0]), bursts[0], 0));
        for _ in 0..10_000 {
            let cpu = if cpus[0] <= cpus[1] { 0 } else { 1 };
            let (i, _) = queue.iter().enumerate().min_by_key(|(_, e)| e.0).unwrap();
            let (_, burst, task) = queue.remove(i);
            let start = cpus[cpu];
            if task == 0 {
                assert!(start - woke <= 2 * MS, "waited {} us", (start - woke) / US);
                return;
            }
            cpus[cpu] = start + burst;
            // Each finishes and wakes its partner at once: worker 1 <-> 2, worker 3 <-> 4.
            let partner = if task % 2 == 1 { task + 1 } else { task - 1 };
            queue.push((dl(cpus[cpu], bursts[partner]), bursts[partner], partner));
        }
        panic!("the periodic task never ran");
    }

    /// A task's effective weight under cgroups `path` (own cgroup first, each as (cpu.weight,
    /// load)), as ops.stopping computes it, in fixed point.
    fn cg_weight_fp(w: u64, path: &[(u64, i64)]) -> u64 {
        let mut fp = w << 10;
        for &(cw, load) in path {
            fp = unsafe { brisk_host_cg_level_weight(fp, cw, load) };
        }
        fp
    }

    /// ... rounded.
    fn cg_weight(w: u64, path: &[(u64, i64)]) -> u64 {
        unsafe { brisk_host_weight_of_fp(cg_weight_fp(w, path)) }
    }

    #[test]
    fn cgroups_share_by_weight_whatever_their_task_counts() {
        // Two top-level cgroups at weight 100, one with 8 hogs and one with 1: each task of
        // the crowd weighs an eighth of the lone one, so the groups weigh the same.
        let crowd = cg_weight_fp(NICE0, &[(100, 800)]);
        let lone = cg_weight_fp(NICE0, &[(100, 100)]);
        assert_eq!(lone, NICE0 << 10);
        assert_eq!(8 * crowd, lone);
        // Charged at that fraction: a crowd task's vruntime ages 8 times as fast.
        unsafe {
            assert_eq!(brisk_host_scale_inverse_fp(MS, lone), MS);
            assert_eq!(brisk_host_scale_inverse_fp(MS, crowd), 8 * MS);
            assert_eq!(
                brisk_host_scale_inverse_fp(MS, NICE5 << 10),
                MS * 100 / NICE5
            );
            assert_eq!(brisk_host_scale_inverse_fp(MS, 0), (MS * 100) << 10);
        }
        // Weights 100 and 300 with 2 tasks each: 1:3.
        assert_eq!(cg_weight(NICE0, &[(100, 200)]), 50);
        assert_eq!(cg_weight(NICE0, &[(300, 200)]), 150);
        // Nested: children at 100 and 300 (one task each) under a top-level cgroup at 100
        // whose load is their weights: a quarter and three quarters of the parent's 100.
        assert_eq!(cg_weight(NICE0, &[(100, 100), (100, 400)]), 25);
        assert_eq!(cg_weight(NICE0, &[(300, 100), (100, 400)]), 75);
        // Nice weights hold inside a cgroup: nice 0 and nice 5 split its 100 as 100:32.
        let (a, b) = (
            cg_weight(NICE0, &[(100, (NICE0 + NICE5) as i64)]),
            cg_weight(NICE5, &[(100, (NICE0 + NICE5) as i64)]),
        );
        assert_eq!((a, b), (76, 24));
    }

    #[test]
    fn a_cgroup_weight_never_divides_by_zero_or_blows_up() {
        // A load read mid-update (0 or negative) counts as the task alone.
        assert_eq!(cg_weight(NICE0, &[(100, 0)]), 100);
        assert_eq!(cg_weight(NICE0, &[(100, -300)]), 100);
        // Tiny shares stay at least 1, huge ones at most the largest cpu.weight.
        assert_eq!(cg_weight(NICE0, &[(1, 10_000), (1, 10_000)]), 1);
        assert_eq!(cg_weight(10_000, &[(10_000, 10_000)]), 10_000);
    }

    #[test]
    fn a_cgroup_counts_in_its_parent_exactly_while_it_has_load() {
        unsafe {
            assert_eq!(brisk_host_cg_parent_delta(0, 100, 300), 300);
            assert_eq!(brisk_host_cg_parent_delta(100, 0, 300), -300);
            assert_eq!(brisk_host_cg_parent_delta(100, 200, 300), 0);
            assert_eq!(brisk_host_cg_parent_delta(200, 100, 300), 0);
        }
        // Two children going active and idle, their updates reaching the parent in every
        // order: whatever the order, the parent ends with no load and stays within bounds.
        let updates = [300i64, 100, -300, -100];
        let mut order: Vec<usize> = (0..updates.len()).collect();
        let mut seen = 0;
        permute(&mut order, 0, &mut |o| {
            let (mut load, mut grand) = (0i64, 0i64);
            for &i in o {
                let new = load + updates[i];
                grand += unsafe { brisk_host_cg_parent_delta(load, new, 50) };
                load = new;
            }
            assert_eq!((load, grand), (0, 0), "order {o:?}");
            seen += 1;
        });
        assert_eq!(seen, 24);
    }

    fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
        if k == v.len() {
            return f(v);
        }
        for i in k..v.len() {
            v.swap(k, i);
            permute(v, k + 1, f);
            v.swap(k, i);
        }
    }
}
