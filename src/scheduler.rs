//! Loading, attaching and running the BPF scheduler.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::{MapCore, MapFlags, OpenObject};
use log::{info, warn};
use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report};
use scx_utils::{Topology, UserExitInfo};
// Skel::object() for the per-program stats.
use libbpf_rs::skel::Skel;

use crate::bpf_intf;
use crate::bpf_skel::{BpfSkel, BpfSkelBuilder};
use crate::cli::Opts;
use crate::counters::Counters;
use crate::latency::{Hist, CLASSES, KINDS};
use crate::overhead;
use crate::stats::{self, Report};
use crate::tunables::Tunables;

/// The previous stats reading: counters, latency histograms, when, per-program BPF stats.
type Last = (
    Counters,
    Option<Vec<Hist>>,
    Instant,
    Option<overhead::Snapshot>,
);

pub struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    struct_ops: Option<libbpf_rs::Link>,
    stats_interval: Option<Duration>,
    stats_json: bool,
    probes: bool,
    /// Holds kernel.bpf_stats_enabled on while stats are printed.
    bpf_stats: Option<overhead::StatsEnabled>,
}

impl<'a> Scheduler<'a> {
    /// Opens, configures, loads and attaches the BPF scheduler.
    pub fn init(
        open_object: &'a mut MaybeUninit<OpenObject>,
        opts: &Opts,
        tunables: &Tunables,
    ) -> Result<Self> {
        let topo = Topology::new().context("failed to read the CPU topology from sysfs")?;

        let mut builder = BpfSkelBuilder::default();
        builder.obj_builder.debug(opts.verbose);
        let mut skel = scx_ops_open!(builder, open_object, brisk_ops, None)
            .context("failed to open the BPF scheduler")?;

        skel.struct_ops.brisk_ops_mut().exit_dump_len = opts.exit_dump_len;
        if opts.no_latency_probes {
            skel.progs.brisk_tp_wakeup.set_autoload(false);
            skel.progs.brisk_tp_wakeup_new.set_autoload(false);
            skel.progs.brisk_tp_switch.set_autoload(false);
        }
        configure_topology(&mut skel, &topo)?;
        skel.maps.data_data.as_mut().unwrap().tun = tunables.to_bpf();

        let mut skel = scx_ops_load!(skel, brisk_ops, uei)
            .context("failed to load the BPF scheduler into the kernel")?;
        let struct_ops =
            scx_ops_attach!(skel, brisk_ops).context("failed to attach the BPF scheduler")?;

        info!(
            "scx_brisk {} running on {} CPUs / {} LLCs (smt {}): {}",
            env!("CARGO_PKG_VERSION"),
            topo.all_cpus.len(),
            topo.all_llcs.len(),
            if topo.smt_enabled { "on" } else { "off" },
            tunables
        );
        Ok(Self {
            skel,
            struct_ops: Some(struct_ops),
            stats_interval: (opts.stats_interval_s() > 0)
                .then(|| Duration::from_secs(opts.stats_interval_s())),
            stats_json: opts.stats_json,
            probes: !opts.no_latency_probes,
            bpf_stats: None,
        })
    }

    pub fn counters(&self) -> Result<Counters> {
        let values = self
            .skel
            .maps
            .counters
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .context("failed to read the counters map")?
            .context("counters map has no entry 0")?;
        Counters::sum_percpu(&values)
    }

    /// The latency histograms, indexed kind * 3 + class; None with --no-latency-probes.
    pub fn latency_hists(&self) -> Result<Option<Vec<Hist>>> {
        if !self.probes {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(KINDS.len() * CLASSES.len());
        for key in 0..(KINDS.len() * CLASSES.len()) as u32 {
            let values = self
                .skel
                .maps
                .lat_hists
                .lookup_percpu(&key.to_ne_bytes(), MapFlags::ANY)
                .context("failed to read the latency histograms")?
                .context("latency histogram entry missing")?;
            out.push(Hist::sum_percpu(&values)?);
        }
        Ok(Some(out))
    }

    fn report(&self, last: &mut Last) -> Result<Report> {
        let counters = self.counters()?;
        let hists = self.latency_hists()?;
        let delta: Option<Vec<Hist>> = match (&hists, &last.1) {
            (Some(now), Some(then)) => {
                Some(now.iter().zip(then).map(|(a, b)| a.since(b)).collect())
            }
            _ => None,
        };
        let slice_ns = self
            .skel
            .maps
            .bss_data
            .as_ref()
            .map_or(0, |b| b.last_slice_ns);
        let interval_s = last.2.elapsed().as_secs_f64();
        let progs = self.prog_stats();
        let bpf = match (&progs, &last.3) {
            (Some(now), Some(then)) => Some(overhead::per_call(
                now,
                then,
                interval_s,
                *scx_utils::NR_CPU_IDS,
            )),
            _ => None,
        };
        let report = Report::new(
            interval_s,
            &counters,
            &last.0,
            delta.as_deref(),
            stats::nr_runnable(),
            slice_ns,
            bpf,
        );
        *last = (counters, hists, Instant::now(), progs);
        Ok(report)
    }

    /// Per-program run time and count, if the kernel keeps them (bpf_stats_enabled).
    fn prog_stats(&self) -> Option<overhead::Snapshot> {
        self.bpf_stats.as_ref()?;
        overhead::snapshot(self.skel.object()).ok()
    }

    /// Runs until `shutdown` is set or the kernel ejects the scheduler, then detaches and
    /// returns the exit info (an error exit is returned as Err, after its dump is printed).
    pub fn run(&mut self, shutdown: &Arc<AtomicBool>) -> Result<UserExitInfo> {
        if self.stats_interval.is_some() {
            match overhead::StatsEnabled::enable() {
                Ok(guard) => self.bpf_stats = Some(guard),
                Err(e) => warn!("per-program BPF cost unavailable: {e:#}"),
            }
        }
        let mut last: Last = (
            self.counters()?,
            self.latency_hists()?,
            Instant::now(),
            self.prog_stats(),
        );
        let mut next_stats = self.stats_interval.map(|d| Instant::now() + d);
        while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&self.skel, uei) {
            std::thread::sleep(Duration::from_millis(100));
            if let (Some(due), Some(interval)) = (next_stats, self.stats_interval) {
                if Instant::now() >= due {
                    let report = self.report(&mut last)?;
                    if self.stats_json {
                        println!("{}", report.to_json());
                    } else {
                        info!("{}", report.to_line());
                    }
                    next_stats = Some(due + interval);
                }
            }
        }

        // Detach: the kernel hands every task back to the default scheduler.
        self.struct_ops.take();
        match self.counters() {
            Ok(c) => info!("counters: {c}"),
            Err(e) => warn!("could not read the final counters: {e:#}"),
        }
        uei_report!(&self.skel, uei)
    }
}

/// Tells the BPF side which LLC each CPU belongs to (one shared DSQ per LLC).
fn configure_topology(skel: &mut crate::bpf_skel::OpenBpfSkel, topo: &Topology) -> Result<()> {
    let max_cpus = bpf_intf::brisk_consts_BRISK_MAX_CPUS as usize;
    let max_llcs = bpf_intf::brisk_consts_BRISK_MAX_LLCS as usize;
    let nr_cpu_ids = *scx_utils::NR_CPU_IDS;
    if nr_cpu_ids > max_cpus {
        bail!("this machine has {nr_cpu_ids} CPU ids; scx_brisk supports at most {max_cpus}");
    }
    if topo.all_llcs.len() > max_llcs {
        bail!(
            "this machine has {} LLCs; scx_brisk supports at most {max_llcs}",
            topo.all_llcs.len()
        );
    }
    let rodata = skel.maps.rodata_data.as_mut().unwrap();
    rodata.nr_cpu_ids_seen = nr_cpu_ids as u32;
    rodata.nr_llcs = topo.all_llcs.len().max(1) as u32;
    // LLC ids from sysfs can be sparse: number them densely for the DSQ ids.
    for (idx, llc) in topo.all_llcs.values().enumerate() {
        rodata.llc_nr_cpus[idx] = llc.all_cpus.len() as u32;
        for cpu in llc.all_cpus.keys() {
            if *cpu < max_cpus {
                rodata.cpu_llc[*cpu] = idx as u32;
            }
        }
    }
    Ok(())
}
