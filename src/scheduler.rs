//! Loading, attaching and running the BPF scheduler, and reading and writing its maps.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
use crate::control::controller::{BpfSide, Controller};
use crate::control::settings::View;
use crate::control::tunables::Tunables;
use crate::report::counters::Counters;
use crate::report::latency::Hist;
use crate::report::overhead;
use crate::report::stats::{self, Lines, Reporter, Snapshot};

pub struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    struct_ops: Option<libbpf_rs::Link>,
    stats_interval: Option<Duration>,
    stats_json: bool,
    probes: bool,
    /// Holds BPF run-time statistics on while stats are printed (or a monitor asked).
    bpf_stats: Option<overhead::StatsEnabled>,
    /// Whether turning the statistics on was tried already (a failure is logged once).
    bpf_stats_tried: bool,
}

impl<'a> Scheduler<'a> {
    /// Opens, configures, loads and attaches the BPF scheduler with `tunables` as
    /// generation `gen`.
    pub fn init(
        open_object: &'a mut MaybeUninit<OpenObject>,
        opts: &Opts,
        tunables: &Tunables,
        gen: u64,
    ) -> Result<Self> {
        let mut builder = BpfSkelBuilder::default();
        builder.obj_builder.debug(opts.verbose);
        let mut skel = scx_ops_open!(builder, open_object, brisk_ops, None)
            .context("failed to open the BPF scheduler")?;
        // After scx_ops_open!, which records the kernel's CPU hotplug sequence: a CPU that
        // comes or goes after this read then also changes the sequence, and the kernel asks
        // for a restart at attach instead of running with a topology that lacks it.
        let topo = Topology::new().context("failed to read the CPU topology from sysfs")?;

        skel.struct_ops.brisk_ops_mut().exit_dump_len = opts.exit_dump_len;
        if opts.queued_wakeup {
            let flag = scx_utils::compat::read_enum("scx_ops_flags", "SCX_OPS_ALLOW_QUEUED_WAKEUP")
                .context("--queued-wakeup needs SCX_OPS_ALLOW_QUEUED_WAKEUP (Linux 6.15+)")?;
            skel.struct_ops.brisk_ops_mut().flags |= flag;
        }
        if !scx_utils::compat::struct_has_field("sched_ext_ops", "cgroup_init").unwrap_or(false) {
            warn!("this kernel has no sched_ext cgroup callbacks (CONFIG_CGROUP_SCHED off): cgroup cpu.weight is not followed");
            let ops = skel.struct_ops.brisk_ops_mut();
            ops.cgroup_init = std::ptr::null_mut();
            ops.cgroup_exit = std::ptr::null_mut();
            ops.cgroup_move = std::ptr::null_mut();
            ops.cgroup_set_weight = std::ptr::null_mut();
            skel.progs.brisk_cgroup_init.set_autoload(false);
            skel.progs.brisk_cgroup_exit.set_autoload(false);
            skel.progs.brisk_cgroup_move.set_autoload(false);
            skel.progs.brisk_cgroup_set_weight.set_autoload(false);
        }
        skel.maps.rodata_data.as_mut().unwrap().debug_stall_hogs = opts.debug_stall_hogs;
        if opts.no_latency_probes {
            skel.maps.rodata_data.as_mut().unwrap().probes_on = false;
            skel.progs.brisk_tp_wakeup.set_autoload(false);
            skel.progs.brisk_tp_wakeup_new.set_autoload(false);
        }
        configure_topology(&mut skel, &topo)?;
        let data = skel.maps.data_data.as_mut().unwrap();
        // tun_active (in .bss) starts at 0: slot 0 is the one in use.
        data.tun_slots[0] = tunables.to_bpf(gen);

        let mut skel = scx_ops_load!(skel, brisk_ops, uei)
            .context("failed to load the BPF scheduler into the kernel")?;
        info!(
            "verifier: {}",
            overhead::verified_line(&overhead::verified_insns(skel.object()))
        );
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
            bpf_stats_tried: false,
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
        Hist::read_all(&self.skel.maps.lat_hists).map(Some)
    }

    /// Per-program run time and count, if the kernel keeps them.
    fn prog_stats(&self) -> Option<overhead::Snapshot> {
        self.bpf_stats.as_ref()?;
        overhead::snapshot(self.skel.object()).ok()
    }

    /// After detach every task has left (ops.disable), so each LLC's runnable load and every
    /// queue's waiting count must be back at zero: anything else means the balancer or the
    /// hand-off paths worked from wrong figures.
    fn check_load_accounting(&self) {
        let Some(bss) = self.skel.maps.bss_data.as_ref() else {
            return;
        };
        let left: Vec<(usize, i64)> = bss
            .llc_ctxs
            .iter()
            .enumerate()
            .filter(|(_, l)| l.runnable_load != 0)
            .map(|(i, l)| (i, l.runnable_load as i64))
            .collect();
        if !left.is_empty() {
            warn!("LLC runnable load accounting drifted: (LLC, load) {left:?} after detach");
        }
        let mut waiting: Vec<String> = bss
            .llc_ctxs
            .iter()
            .enumerate()
            .filter(|(_, l)| l.nr_lat_waiting != 0 || l.nr_fair_waiting != 0)
            .map(|(i, l)| {
                format!(
                    "LLC {i}: {} latency, {} fair",
                    l.nr_lat_waiting as i64, l.nr_fair_waiting as i64
                )
            })
            .collect();
        for cpu in 0..*scx_utils::NR_CPU_IDS as u32 {
            let Ok(Some(v)) = self
                .skel
                .maps
                .cpu_ctxs
                .lookup(&cpu.to_ne_bytes(), MapFlags::ANY)
            else {
                continue;
            };
            let count = |off: usize| {
                v.get(off..off + 8)
                    .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap()) as i64)
            };
            use crate::bpf_skel::types::cpu_ctx;
            let pinned = count(std::mem::offset_of!(cpu_ctx, nr_pinned_waiting));
            let fair = count(std::mem::offset_of!(cpu_ctx, nr_fair_waiting));
            if pinned != 0 || fair != 0 {
                waiting.push(format!("CPU {cpu}: {pinned} pinned, {fair} fair"));
            }
        }
        if !waiting.is_empty() {
            warn!(
                "queue waiting accounting drifted: {} after detach",
                waiting.join("; ")
            );
        }
    }

    /// Runs until `shutdown` is set or the kernel ejects the scheduler, with `ctl` answering
    /// control requests and running the auto-tuner meanwhile (`Controller::run`); then
    /// detaches and returns the exit info (an error exit is returned as Err, after its dump is
    /// printed).
    pub fn run(
        &mut self,
        shutdown: &Arc<AtomicBool>,
        ctl: &mut Controller,
    ) -> Result<UserExitInfo> {
        let reporter = self
            .stats_interval
            .map(|d| Reporter::new(d, self.stats_json, Lines::Log));
        ctl.run(self, || shutdown.load(Ordering::Relaxed), reporter);

        // Detach: the kernel hands every task back to the default scheduler.
        self.struct_ops.take();
        self.check_load_accounting();
        match self.counters() {
            Ok(c) => info!("counters: {c}"),
            Err(e) => warn!("could not read the final counters: {e:#}"),
        }
        uei_report!(&self.skel, uei)
    }

    /// The slice handed out most recently in the most contended LLC (the shortest one).
    fn slice_ns(&self) -> u64 {
        let Some(bss) = self.skel.maps.bss_data.as_ref() else {
            return 0;
        };
        bss.llc_ctxs
            .iter()
            .map(|l| l.slice_ns)
            .filter(|&s| s != 0)
            .min()
            .unwrap_or(0)
    }
}

impl BpfSide for Scheduler<'_> {
    /// Publishes new tunables to the running BPF scheduler: writes the copy it is not using,
    /// then flips `tun_active`, so it switches to the complete new set at once (main.bpf.c).
    fn write_tunables(&mut self, tunables: &Tunables, gen: u64) {
        let maps = &mut self.skel.maps;
        let (data, bss) = (
            maps.data_data.as_mut().unwrap(),
            maps.bss_data.as_mut().unwrap(),
        );
        // SAFETY: `data` and `bss` are the mmaps of the BPF .data and .bss maps. Volatile,
        // since the BPF side reads these fields concurrently; it never writes them.
        unsafe {
            let next = (std::ptr::read_volatile(&bss.tun_active) & 1) ^ 1;
            std::ptr::write_volatile(&mut data.tun_slots[next as usize], tunables.to_bpf(gen));
            std::sync::atomic::fence(Ordering::SeqCst);
            std::ptr::write_volatile(&mut bss.tun_active, next);
        }
    }

    /// The tunables generation the BPF side last made a decision with.
    fn gen_seen(&self) -> u64 {
        self.skel
            .maps
            .bss_data
            .as_ref()
            // SAFETY: a plain u64 in the mmapped .bss, written by the BPF side.
            .map_or(0, |b| unsafe { std::ptr::read_volatile(&b.tun_gen_seen) })
    }

    /// Everything cumulative, for a stats report, the auto-tuner or a monitor.
    fn snapshot(&self, settings: View) -> Result<Snapshot> {
        let settings = Some(settings);
        Ok(Snapshot {
            at_ns: stats::monotonic_ns(),
            counters: self.counters()?.to_map(),
            hists: self.latency_hists()?,
            progs: self.prog_stats(),
            nr_cpus: *scx_utils::NR_CPU_IDS,
            slice_ns: self.slice_ns(),
            nr_runnable: stats::nr_runnable(),
            settings,
        })
    }

    /// Turns BPF run-time statistics on for the per-program costs (off again when we exit).
    fn enable_bpf_stats(&mut self) {
        if self.bpf_stats_tried {
            return;
        }
        self.bpf_stats_tried = true;
        match overhead::StatsEnabled::enable() {
            Ok(guard) => self.bpf_stats = Some(guard),
            Err(e) => warn!("per-program BPF cost unavailable: {e:#}"),
        }
    }

    fn exited(&self) -> bool {
        uei_exited!(&self.skel, uei)
    }
}

/// Tells the BPF side which LLC each CPU belongs to (its CPUs share out their fair queues and
/// one latency queue) and its SMT sibling.
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
    // LLC ids from sysfs can be sparse: number them densely for the DSQ ids. Each LLC's CPUs
    // are also listed together (llc_cpu_list from llc_first_cpu), so that a scan of one LLC
    // costs its size, not the machine's.
    let mut listed = 0;
    for (idx, llc) in topo.all_llcs.values().enumerate() {
        rodata.llc_first_cpu[idx] = listed as u32;
        let mut nr = 0;
        for cpu in llc.all_cpus.keys().filter(|&&cpu| cpu < max_cpus) {
            rodata.cpu_llc[*cpu] = idx as u32;
            rodata.cpu_listed[*cpu] = 1;
            rodata.llc_cpu_list[listed] = *cpu as u32;
            listed += 1;
            nr += 1;
        }
        rodata.llc_nr_cpus[idx] = nr;
        rodata.llc_node[idx] = llc.node_id as u32;
    }
    // Each CPU's SMT sibling, itself on a core of one thread (the BPF side's "no SMT").
    for cpu in 0..max_cpus {
        rodata.cpu_sibling[cpu] = cpu as u32;
    }
    for core in topo.all_cores.values() {
        let cpus: Vec<usize> = core
            .cpus
            .keys()
            .copied()
            .filter(|&c| c < max_cpus)
            .collect();
        for (i, &cpu) in cpus.iter().enumerate() {
            rodata.cpu_sibling[cpu] = cpus[(i + 1) % cpus.len()] as u32;
        }
    }
    Ok(())
}
