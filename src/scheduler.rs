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

use crate::bpf_intf;
use crate::bpf_skel::{BpfSkel, BpfSkelBuilder};
use crate::cli::Opts;
use crate::counters::Counters;
use crate::tunables::Tunables;

pub struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    struct_ops: Option<libbpf_rs::Link>,
    stats_interval: Option<Duration>,
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
            stats_interval: (opts.stats > 0).then(|| Duration::from_secs(opts.stats)),
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

    /// Runs until `shutdown` is set or the kernel ejects the scheduler, then detaches and
    /// returns the exit info (an error exit is returned as Err, after its dump is printed).
    pub fn run(&mut self, shutdown: &Arc<AtomicBool>) -> Result<UserExitInfo> {
        let mut last = self.counters()?;
        let mut next_stats = self.stats_interval.map(|d| Instant::now() + d);
        while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&self.skel, uei) {
            std::thread::sleep(Duration::from_millis(100));
            if let (Some(due), Some(interval)) = (next_stats, self.stats_interval) {
                if Instant::now() >= due {
                    let now = self.counters()?;
                    let delta: Vec<String> = now
                        .since(&last)
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    info!("last {}s: {}", interval.as_secs(), delta.join(" "));
                    last = now;
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
