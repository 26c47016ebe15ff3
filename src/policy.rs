//! Host tests of the BPF policy's arithmetic: src/bpf/policy.h compiled for the host by
//! build.rs (policy_host.c) and called here, so these test the code the kernel runs.

#[cfg(test)]
mod tests {
    extern "C" {
        fn brisk_host_time_delta(a: u64, b: u64) -> i64;
        fn brisk_host_scale_inverse(delta: u64, weight: u64) -> u64;
        fn brisk_host_wake_vruntime(v: u64, now: u64, credit: u64) -> u64;
        fn brisk_host_burst_avg(avg: u64, sample: u64, shift: u32, cap: u64) -> u64;
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
    }

    const MS: u64 = 1_000_000;
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

    #[test]
    fn one_long_burst_costs_a_short_task_two_wakeups_at_most() {
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
            assert!(demoted <= 3, "{demoted} wakeups");
            // a new task (starting on the border) after a 100 ms start-up: short again within 3
            let mut avg = brisk_host_burst_avg(short, 100 * MS, 2, sample_cap);
            let mut n = 0;
            while brisk_host_is_short(avg, short) == 0 {
                avg = brisk_host_burst_avg(avg, MS, 2, sample_cap);
                n += 1;
            }
            assert!(n <= 3, "{n} wakeups");
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

    /// A short task waking every 10 ms beside a hog on one CPU is always picked first, and the
    /// hog still gets all the remaining time.
    #[test]
    fn short_sleeper_goes_first_and_hog_is_not_starved() {
        let (cap, credit) = (20 * MS, 5 * MS);
        // the hog has been running for a while when the short task first wakes
        let (mut hog_v, mut hog_burst, mut hog_ran) = (0u64, 9 * MS, 0u64);
        let (mut s_v, mut s_avg) = (0u64, 2 * MS);
        let mut vtime_now = 0u64;
        let mut short_waited_behind_hog = 0;
        for _period in 0..1000 {
            // the short task wakes: bounded credit, then competes with the hog
            unsafe {
                s_v = brisk_host_wake_vruntime(s_v, vtime_now, credit);
                let s_dl = brisk_host_deadline(s_v, s_avg, cap, NICE0);
                let h_dl = brisk_host_deadline(hog_v, hog_burst, cap, NICE0);
                if h_dl < s_dl {
                    short_waited_behind_hog += 1;
                }
                // short task runs 1 ms, then sleeps
                vtime_now = vtime_now.max(s_v);
                s_v += brisk_host_scale_inverse(MS, NICE0);
                s_avg = brisk_host_burst_avg(s_avg, MS, 2, 20 * MS);
                // hog runs the rest of the 10 ms period
                vtime_now = vtime_now.max(hog_v);
                hog_v += brisk_host_scale_inverse(9 * MS, NICE0);
                hog_burst += 9 * MS;
                hog_ran += 9 * MS;
            }
        }
        assert_eq!(short_waited_behind_hog, 0);
        assert_eq!(hog_ran, 1000 * 9 * MS);
    }
}
