//! What the BPF programs cost: per-program run time and run count, which the kernel keeps while
//! run-time statistics are enabled. They are enabled through `BPF_ENABLE_STATS`, which returns
//! a reference-counted fd: statistics stay on while any holder keeps its fd and go off when the
//! last one closes it, even if the holder is killed. (Writing `kernel.bpf_stats_enabled` would
//! leave them on after a SIGKILL, and two users would overwrite each other's saved value.)
//! The accounting costs a little on every run, so it is on only while stats are printed.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Result};

/// Keeps BPF run-time statistics enabled while alive (the kernel counts holders).
pub struct StatsEnabled {
    _fd: OwnedFd,
}

impl StatsEnabled {
    pub fn enable() -> Result<Self> {
        // SAFETY: a plain syscall wrapper; on success it returns a new fd that we own.
        let fd = unsafe {
            libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
        };
        if fd < 0 {
            bail!(
                "enabling BPF run-time statistics (BPF_ENABLE_STATS): {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: fd is a fresh, valid descriptor returned by the kernel.
        Ok(Self {
            _fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }
}

/// The kernel's information on one loaded program.
fn prog_info(fd: impl AsFd) -> Result<libbpf_rs::libbpf_sys::bpf_prog_info> {
    // SAFETY: bpf_prog_info is plain data; the kernel fills at most `len` bytes of it.
    let mut info: libbpf_rs::libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&info) as u32;
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd.as_fd().as_raw_fd(), &mut info, &mut len)
    };
    if ret != 0 {
        bail!(
            "bpf_prog_get_info_by_fd: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(info)
}

/// Cumulative (run_time_ns, run_cnt) of one loaded program.
fn prog_stats(fd: impl AsFd) -> Result<(u64, u64)> {
    let info = prog_info(fd)?;
    Ok((info.run_time_ns, info.run_cnt))
}

/// Instructions the verifier processed to load each program of `obj` (the figure upstream
/// tracks per scheduler with veristat): a program near the kernel's limit of one million, or
/// one that grew a lot, is a change to look at. Programs not loaded are left out.
pub fn verified_insns(obj: &libbpf_rs::Object) -> BTreeMap<String, u32> {
    obj.progs()
        .filter_map(|prog| {
            let name = prog.name().to_string_lossy().to_string();
            let info = prog_info(prog.as_fd()).ok()?;
            Some((name, info.verified_insns))
        })
        .collect()
}

/// One log line of `verified_insns`: "N programs, T instructions verified (name n, ...)".
pub fn verified_line(insns: &BTreeMap<String, u32>) -> String {
    let total: u64 = insns.values().map(|&n| n as u64).sum();
    let each: Vec<String> = insns.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!(
        "{} programs, {total} instructions verified ({})",
        insns.len(),
        each.join(", ")
    )
}

/// Cumulative run time and count per program of the scheduler's object.
pub type Snapshot = BTreeMap<String, (u64, u64)>;

pub fn snapshot(obj: &libbpf_rs::Object) -> Result<Snapshot> {
    let mut out = Snapshot::new();
    for prog in obj.progs() {
        let name = prog.name().to_string_lossy().to_string();
        if name == "scx_lib_init_probe" {
            continue; // runs once, at attach
        }
        out.insert(name, prog_stats(prog.as_fd())?);
    }
    Ok(out)
}

/// Average ns per run of each program that ran between two snapshots, and the share of all
/// CPUs' time (percent) all of them, and the latency probes (`brisk_tp_*`, in the scheduler's
/// object and the standalone probe's alike) alone, took over `interval_s`.
pub fn per_call(now: &Snapshot, then: &Snapshot, interval_s: f64, nr_cpus: usize) -> Overhead {
    let mut ns_per_call = BTreeMap::new();
    let (mut probes_ns, mut all_ns) = (0u64, 0u64);
    for (name, (t1, c1)) in now {
        let (t0, c0) = then.get(name).copied().unwrap_or((0, 0));
        let (dt, dc) = (t1.saturating_sub(t0), c1.saturating_sub(c0));
        all_ns += dt;
        if name.starts_with("brisk_tp_") {
            probes_ns += dt;
        }
        if dc > 0 {
            let short = name.strip_prefix("brisk_").unwrap_or(name).to_string();
            ns_per_call.insert(short, dt as f64 / dc as f64);
        }
    }
    Overhead {
        ns_per_call,
        bpf_cpu_pct: cpus_pct(all_ns, interval_s, nr_cpus),
        probes_cpu_pct: cpus_pct(probes_ns, interval_s, nr_cpus),
    }
}

/// `ns` of CPU time as a share of all `nr_cpus` CPUs' time over `interval_s`, in percent;
/// None for an empty interval.
pub fn cpus_pct(ns: u64, interval_s: f64, nr_cpus: usize) -> Option<f64> {
    let capacity_ns = interval_s * nr_cpus.max(1) as f64 * 1e9;
    (capacity_ns > 0.0).then(|| ns as f64 * 100.0 / capacity_ns)
}

#[derive(Debug, Default, Clone, serde::Serialize, PartialEq)]
pub struct Overhead {
    /// Program (without the `brisk_` prefix) -> average ns per run over the interval.
    pub ns_per_call: BTreeMap<String, f64>,
    /// Share of all CPUs' time spent in the scheduler's BPF programs, every callback and probe
    /// (the kernel's own sched_ext code around them is not counted), percent.
    pub bpf_cpu_pct: Option<f64>,
    /// Share of all CPUs' time spent in the latency probes' own programs, percent: in the
    /// scheduler's object the wakeup tracepoints only (its switch side runs inside
    /// ops.running and ops.stopping, counted in their cost).
    pub probes_cpu_pct: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_call_and_probe_share() {
        let then: Snapshot = [
            ("brisk_enqueue".to_string(), (1_000, 10)),
            ("brisk_tp_switch".to_string(), (0, 0)),
        ]
        .into();
        let now: Snapshot = [
            ("brisk_enqueue".to_string(), (5_000, 20)),
            ("brisk_tp_switch".to_string(), (20_000_000, 100_000)),
            ("brisk_exit".to_string(), (0, 0)),
        ]
        .into();
        let o = per_call(&now, &then, 1.0, 2);
        assert_eq!(o.ns_per_call["enqueue"], 400.0);
        assert_eq!(o.ns_per_call["tp_switch"], 200.0);
        assert!(
            !o.ns_per_call.contains_key("exit"),
            "programs that did not run are left out"
        );
        // 20 ms of probe time over 1 s on 2 CPUs = 1%; 4 us more in enqueue
        assert!((o.probes_cpu_pct.unwrap() - 1.0).abs() < 1e-9);
        assert!((o.bpf_cpu_pct.unwrap() - 1.0002).abs() < 1e-9);
    }
}
