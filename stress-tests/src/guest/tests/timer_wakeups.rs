//! Guest test `timer-wakeups`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::guest::sys::{self, Brisk, Procs};
use crate::guest::workloads;

/// 15. A task woken by its timer, beside one hog per CPU, is seen as woken from an interrupt
///     (`nr_irq_wakeups`): the hog it interrupted is no waker, and handing the CPU over to it
///     would make the periodic task wait for the hog's slice. Fails where the interrupt check
///     misreads the kernel's preempt count.
pub(super) fn timer_wakeups() -> Result<String> {
    let (mut b, _) = Brisk::start(&[])?;
    let hogs = Procs::hogs(sys::nr_cpus(), &[])?;
    std::thread::sleep(Duration::from_millis(300));
    let count = 1000;
    let p = workloads::periodic(Duration::from_millis(2), Duration::from_micros(200), count);
    drop(hogs);
    b.stop_cleanly()?;
    let irq = b
        .exit_counter("nr_irq_wakeups")
        .context("no nr_irq_wakeups among the exit counters")?;
    let woken = count as u64 - p.missed.min(count as u64);
    // Other interrupt wakeups only add to the count; a misread context leaves it near zero.
    ensure!(
        irq * 10 >= woken * 9,
        "nr_irq_wakeups = {irq} for {woken} timer wakeups of the periodic task"
    );
    Ok(format!(
        "nr_irq_wakeups = {irq} for {woken} timer wakeups ({} periods missed)",
        p.missed
    ))
}
