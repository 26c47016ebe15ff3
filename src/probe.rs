//! `scx_brisk probe`: the latency probes alone (src/bpf/probe.bpf.c), measuring whatever
//! scheduler runs (the kernel's default included) without replacing it. Needs root, BTF and
//! tracepoints; not sched_ext. Prints the same per-interval report as `--stats`, and a total
//! over the whole run at the end.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use crate::cli::ProbeOpts;
use crate::control::tunables::Tunables;
use crate::probe_skel::{ProbeSkel, ProbeSkelBuilder};
use crate::report::latency::Hist;
use crate::report::overhead;
use crate::report::stats::{self, Lines, Reporter, Snapshot};

fn snapshot(skel: &ProbeSkel, bpf_stats: bool) -> Result<Snapshot> {
    Ok(Snapshot {
        at_ns: stats::monotonic_ns(),
        counters: Default::default(),
        hists: Some(Hist::read_all(&skel.maps.lat_hists)?),
        progs: bpf_stats
            .then(|| overhead::snapshot(skel.object()).ok())
            .flatten(),
        nr_cpus: *scx_utils::NR_CPU_IDS,
        slice_ns: 0,
        nr_runnable: stats::nr_runnable(),
        settings: None,
    })
}

/// Loads and attaches the probe object, classifying at `short_burst_us`; `top` turns on its
/// per-task figures (`scx_brisk top`). Needs root.
pub fn load<'o>(
    open_object: &'o mut MaybeUninit<libbpf_rs::OpenObject>,
    short_burst_us: u64,
    top: bool,
    verbose: bool,
) -> Result<ProbeSkel<'o>> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("loading the probes needs root (run it with sudo)");
    }
    let mut builder = ProbeSkelBuilder::default();
    builder.obj_builder.debug(verbose);
    let mut open = builder
        .open(open_object)
        .context("failed to open the probe BPF object")?;
    let rodata = open.maps.rodata_data.as_mut().unwrap();
    rodata.short_burst_ns = short_burst_us
        .checked_mul(1000)
        .context("--short-burst-us is too large to count in nanoseconds")?;
    let dfl = Tunables::default().to_bpf(0);
    rodata.burst_cap_ns = dfl.burst_cap_ns;
    rodata.burst_ewma_shift = dfl.burst_ewma_shift as u32;
    rodata.top_on = top;
    let mut skel = open.load().context(
        "failed to load the probes (they need BTF, /sys/kernel/btf/vmlinux, and tp_btf support)",
    )?;
    skel.attach().context(
        "failed to attach the probes to sched_waking, sched_wakeup_new and sched_switch",
    )?;
    Ok(skel)
}

pub fn run(opts: &ProbeOpts, verbose: bool, shutdown: &Arc<AtomicBool>) -> Result<()> {
    if opts.stats == 0 {
        bail!("--stats must be at least 1 second");
    }
    let mut open_object = MaybeUninit::uninit();
    let skel = load(&mut open_object, opts.short_burst_us, false, verbose)?;
    let bpf_stats = match overhead::StatsEnabled::enable() {
        Ok(g) => Some(g),
        Err(e) => {
            log::warn!("per-program BPF cost unavailable: {e:#}");
            None
        }
    };
    log::info!(
        "scx_brisk probe: measuring the running scheduler (short: average burst < {} us)",
        opts.short_burst_us
    );

    let interval = Duration::from_secs(opts.stats);
    let mut reporter = Reporter::new(interval, opts.stats_json, Lines::Stdout);
    let end = (opts.duration_s > 0).then(|| Instant::now() + Duration::from_secs(opts.duration_s));
    let stop = || shutdown.load(Ordering::Relaxed) || end.is_some_and(|e| Instant::now() >= e);
    reporter.run(stop, || snapshot(&skel, bpf_stats.is_some()))?;
    reporter.total(&snapshot(&skel, bpf_stats.is_some())?);
    Ok(())
}
