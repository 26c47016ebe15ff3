//! The userspace controller: observe (the probes' histograms) -> decide (the auto-tuner, or a
//! user's `ctl` request, policy file or SIGHUP) -> act (write the tunables map). It owns the
//! settings, so they survive a scheduler restart (e.g. after CPU hotplug).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use log::{info, warn};

use crate::control::autotune::Tuner;
use crate::control::policy_file::PolicyFile;
use crate::control::settings::{Mode, Settings, Source, View};
use crate::control::socket::{self, Request, Response};
use crate::control::tunables::{Tunables, Value};
use crate::report::metrics::MetricsService;
use crate::report::stats::{Report, Reporter, Snapshot};
use crate::report::stats_server::{Ask, BriskStats, StatsService};

/// How long a change waits for the BPF side to run a decision with it before answering.
const ACK_WAIT: Duration = Duration::from_millis(500);

/// What the controller needs of the running BPF scheduler. The real one is
/// `scheduler::Scheduler`; the tests below drive the real loop against a fake.
pub trait BpfSide {
    /// Publishes a complete set of tunables as generation `gen` (all of it takes effect at
    /// once).
    fn write_tunables(&mut self, tunables: &Tunables, gen: u64);
    /// The generation the BPF side last made a decision with.
    fn gen_seen(&self) -> u64;
    /// Everything cumulative now, with the running `settings` attached.
    fn snapshot(&self, settings: View) -> Result<Snapshot>;
    /// Turns on the kernel's per-program cost accounting, for snapshots that report it.
    fn enable_bpf_stats(&mut self);
    /// Whether the kernel has ejected or unloaded the scheduler.
    fn exited(&self) -> bool;
}

pub struct Controller {
    pub settings: Settings,
    /// Options given on the command line: they override the policy file, also on SIGHUP.
    cli: Vec<(String, Value)>,
    policy: Option<PathBuf>,
    tuner: Tuner,
    /// Generation of the tunables written last (intf.h: brisk_tunables.gen).
    gen: u64,
    probes: bool,
    server: Option<socket::Server>,
    hup: Arc<AtomicBool>,
    /// The auto-tuner's previous reading.
    tune_last: Option<Snapshot>,
    /// The scx_stats server (read side), and the reading its previous answer ended at.
    stats: Option<StatsService>,
    stats_last: Option<Snapshot>,
    /// The OpenMetrics endpoint (--metrics-addr).
    metrics: Option<MetricsService>,
}

fn require_probes(settings: &Settings, probes: bool) -> Result<()> {
    if settings.mode == Mode::Auto && !probes {
        bail!(
            "mode = \"auto\" needs the latency probes, which --no-latency-probes turned off: \
             the auto-tuner steers by the short class's measured p99"
        );
    }
    Ok(())
}

impl Controller {
    /// The starting settings: defaults, then the --policy file, then command-line options.
    /// Checked in full before anything is loaded.
    pub fn settings_at_start(
        policy: Option<&PathBuf>,
        cli: &[(String, Value)],
        probes: bool,
    ) -> Result<Settings> {
        let base = match policy {
            Some(p) => PolicyFile::load(p)?.settings()?,
            None => Settings::default(),
        };
        let s = if cli.is_empty() {
            base
        } else {
            let last = base.last_change.clone();
            let mut s = base.with(cli, Source::Cli).context("invalid option")?;
            if policy.is_some() {
                s.last_change = last;
            }
            s
        };
        require_probes(&s, probes)?;
        Ok(s)
    }

    pub fn new(
        settings: Settings,
        cli: Vec<(String, Value)>,
        policy: Option<PathBuf>,
        probes: bool,
    ) -> Result<Self> {
        let hup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
            .context("installing the SIGHUP handler")?;
        Ok(Self {
            settings,
            cli,
            policy,
            tuner: Tuner::default(),
            gen: 1,
            probes,
            server: None,
            hup,
            tune_last: None,
            stats: None,
            stats_last: None,
            metrics: None,
        })
    }

    /// Opens the root-only control socket (refusing if another scx_brisk answers there).
    pub fn listen(&mut self) -> Result<()> {
        self.server = Some(socket::Server::bind(std::path::Path::new(socket::SOCKET))?);
        // The read side for scx_stats clients: without it scx_brisk still schedules.
        match StatsService::launch(None) {
            Ok(s) => self.stats = Some(s),
            Err(e) => warn!("stats: no scx_stats server: {e:#}"),
        }
        Ok(())
    }

    /// Serves OpenMetrics at `addr` (--metrics-addr); an address it cannot listen on fails.
    pub fn serve_metrics(&mut self, addr: std::net::SocketAddr) -> Result<()> {
        self.metrics = Some(MetricsService::launch(addr)?);
        Ok(())
    }

    /// The tunables the BPF side should run with now.
    pub fn effective(&self) -> Tunables {
        match self.settings.mode {
            Mode::Auto => Tuner::apply(&self.settings.tunables, self.tuner.level),
            Mode::Fixed => self.settings.tunables,
        }
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    pub fn view(&self) -> View {
        self.settings.view(&self.effective())
    }

    /// Writes the effective tunables as a new generation and waits briefly for the BPF side
    /// to run with them.
    fn publish(&mut self, bpf: &mut dyn BpfSide) -> String {
        self.gen += 1;
        bpf.write_tunables(&self.effective(), self.gen);
        let start = Instant::now();
        while bpf.gen_seen() < self.gen && start.elapsed() < ACK_WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        if bpf.gen_seen() >= self.gen {
            format!(
                "applied as generation {}, in use by the BPF scheduler",
                self.gen
            )
        } else {
            format!(
                "applied as generation {} (the BPF scheduler has made no decision since)",
                self.gen
            )
        }
    }

    /// Makes `next` the running settings (already validated as a whole).
    fn commit(&mut self, next: Settings, bpf: &mut dyn BpfSide) -> Result<String> {
        require_probes(&next, self.probes)?;
        if next.tunables != self.settings.tunables || next.mode != self.settings.mode {
            // New relaxed end or a new mode: the tuner starts again from it.
            self.tuner = Tuner::default();
            self.tune_last = None;
        }
        let before = self.effective();
        self.settings = next;
        let msg = self.publish(bpf);
        info!(
            "settings changed by {}: {} ({msg})",
            self.settings.last_change,
            diff(&before, &self.effective())
        );
        Ok(msg)
    }

    fn handle(&mut self, req: Request, bpf: &mut dyn BpfSide) -> Response {
        let result = match req {
            Request::Show => Ok(None),
            Request::Snapshot => {
                bpf.enable_bpf_stats();
                return match bpf.snapshot(self.view()) {
                    Ok(s) => Response {
                        ok: true,
                        snapshot: Some(Box::new(s)),
                        ..Default::default()
                    },
                    Err(e) => Response::error(format!("{e:#}")),
                };
            }
            Request::Set { pairs } => {
                let changes: Vec<(String, Value)> =
                    pairs.into_iter().map(|(k, v)| (k, Value::Str(v))).collect();
                self.settings
                    .with(&changes, Source::Ctl)
                    .and_then(|next| self.commit(next, bpf))
                    .map(Some)
            }
            Request::Apply { path, text } => PolicyFile::parse(&path, &text)
                .and_then(|p| p.settings())
                .and_then(|next| self.commit(next, bpf))
                .map(Some),
        };
        match result {
            Ok(message) => Response {
                ok: true,
                message,
                settings: Some(self.view()),
                ..Default::default()
            },
            Err(e) => {
                warn!("refused a control request: {e:#}");
                Response::error(format!("{e:#} (nothing was changed)"))
            }
        }
    }

    /// Re-reads the --policy file (SIGHUP); command-line options still apply on top.
    fn reload(&mut self, bpf: &mut dyn BpfSide) {
        let Some(path) = self.policy.clone() else {
            warn!("SIGHUP: no --policy file to re-read; settings unchanged");
            return;
        };
        let res = Self::settings_at_start(Some(&path), &self.cli, self.probes)
            .and_then(|next| self.commit(next, bpf));
        match res {
            Ok(_) => info!("SIGHUP: re-read {}", path.display()),
            Err(e) => warn!("SIGHUP: {e:#}; settings unchanged"),
        }
    }

    /// Answers at most one control request (waiting up to `timeout`) and handles SIGHUP.
    /// `Server::next` hands over only requests still within their deadline: one whose client
    /// was already told it timed out is dropped there (with a warning), never applied.
    pub fn poll(&mut self, bpf: &mut dyn BpfSide, timeout: Duration) {
        if self.hup.swap(false, Ordering::Relaxed) {
            self.reload(bpf);
        }
        let pending = match &self.server {
            Some(server) => server.next(timeout),
            None => {
                std::thread::sleep(timeout);
                None
            }
        };
        if let Some(p) = pending {
            let req = p.req.clone();
            p.answer(self.handle(req, bpf));
        }
        if let Some(m) = self.metrics.as_ref().filter(|m| m.pending()) {
            m.answer(bpf.snapshot(self.view()));
        }
        if let Some(ask) = self.stats.as_ref().and_then(|s| s.pending()) {
            let answer = match ask {
                Ask::Interval => self
                    .stats_since_last(bpf)
                    .and_then(|s| Ok(serde_json::to_value(s)?)),
                Ask::Snapshot => {
                    // A monitor shows the programs' costs: keep run-time statistics on.
                    bpf.enable_bpf_stats();
                    bpf.snapshot(self.view())
                        .and_then(|s| Ok(serde_json::to_value(s)?))
                }
            };
            if let Some(s) = &self.stats {
                s.answer(answer);
            }
        }
    }

    /// The report for a scx_stats `stats` request: since the previous one, or since the run
    /// started.
    fn stats_since_last(&mut self, bpf: &mut dyn BpfSide) -> Result<BriskStats> {
        let now = bpf.snapshot(self.view())?;
        let then = self
            .stats_last
            .replace(now.clone())
            .unwrap_or_else(|| now.clone());
        Ok(BriskStats::from(&Report::between(&then, &now)))
    }

    /// One auto-tuner step (call once per second): in auto mode, reads the short class's p99
    /// over the last interval and moves the slice and margin if the tuner says so.
    pub fn tune(&mut self, bpf: &mut dyn BpfSide) -> Result<()> {
        if self.settings.mode != Mode::Auto {
            self.tune_last = None;
            return Ok(());
        }
        let now = bpf.snapshot(self.view())?;
        let Some(then) = self.tune_last.replace(now.clone()) else {
            return Ok(());
        };
        let Some((p99, samples)) = Report::between(&then, &now).short_wakeup_p99() else {
            return Ok(());
        };
        let target = self.settings.target_p99_us as f64;
        let before = self.effective();
        if let Some(change) = self.tuner.observe(target, p99, samples) {
            let msg = self.publish(bpf);
            self.settings.last_change = Source::Auto;
            info!(
                "auto-tuner: level {} -> {}: {}; {} ({msg})",
                change.from,
                change.to,
                change.why,
                diff(&before, &self.effective())
            );
        }
        Ok(())
    }

    /// The run loop: until `stop` says so or the BPF side exits, answers control requests and
    /// SIGHUP, runs the auto-tuner once a second and hands `reporter` (--stats) a snapshot
    /// when it is due. A failure on this side (reading a map) is logged and the scheduler
    /// keeps running: only the kernel's exit, or a signal, ends the run.
    pub fn run(
        &mut self,
        bpf: &mut dyn BpfSide,
        mut stop: impl FnMut() -> bool,
        mut reporter: Option<Reporter>,
    ) {
        if reporter.is_some() || self.metrics.is_some() {
            bpf.enable_bpf_stats();
        }
        if self.stats.is_some() {
            self.stats_last = bpf.snapshot(self.view()).ok();
        }
        if let Some(r) = &mut reporter {
            match bpf.snapshot(self.view()) {
                Ok(s) => r.record(s),
                Err(e) => warn!("stats: could not read the counters: {e:#}"),
            }
        }
        let mut next_tune = Instant::now() + Duration::from_secs(1);
        let mut tune_errors = 0u64;
        while !stop() && !bpf.exited() {
            self.poll(bpf, Duration::from_millis(100));
            // The report first: a line due now shows the settings of the interval it covers,
            // not a tuner step taken in the same pass.
            if let Some(r) = reporter.as_mut().filter(|r| r.due()) {
                match bpf.snapshot(self.view()) {
                    Ok(now) => r.record(now),
                    Err(e) => {
                        warn!("stats: could not read the counters, interval skipped: {e:#}");
                        r.skip();
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tune {
                if let Err(e) = self.tune(bpf) {
                    // Once, then every minute while it lasts.
                    if tune_errors.is_multiple_of(60) {
                        warn!("auto-tuner step failed ({} so far): {e:#}", tune_errors + 1);
                    }
                    tune_errors += 1;
                }
                // A second from this step, not from when it was due: after a stall (a slow
                // ctl request, a host taking the CPU) the missed steps are not made up back
                // to back, each judging a fraction of a second.
                next_tune = now + Duration::from_secs(1);
            }
        }
    }
}

/// "key a -> b" for each tunable that differs, or "no tunable changed".
fn diff(a: &Tunables, b: &Tunables) -> String {
    let parts: Vec<String> = crate::control::tunables::keys()
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k)?, b.get(k)?);
            (x != y).then(|| format!("{k} {x} -> {y}"))
        })
        .collect();
    if parts.is_empty() {
        "no tunable changed".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_overrides_the_policy_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("brisk-ctrl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.toml");
        std::fs::write(&p, "slice_us = 8000\npreempt_margin_us = 300\n").unwrap();
        let cli = vec![("slice_us".to_string(), Value::Str("6000".into()))];
        let s = Controller::settings_at_start(Some(&p), &cli, true).unwrap();
        assert_eq!(s.tunables.slice_us, 6000);
        assert_eq!(s.sources["slice_us"], Source::Cli);
        assert_eq!(s.tunables.preempt_margin_us, 300);
        assert!(matches!(s.sources["preempt_margin_us"], Source::Policy(_)));
        assert_eq!(s.sources["burst_cap_us"], Source::Default);
        // a bad command-line value is refused even with a good file
        let bad = vec![("slice_us".to_string(), Value::Str("1".into()))];
        let e = Controller::settings_at_start(Some(&p), &bad, true).unwrap_err();
        assert!(format!("{e:#}").contains("invalid option: slice_us = 1us is out of range"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn auto_mode_needs_the_probes() {
        let cli = vec![("mode".to_string(), Value::Str("auto".into()))];
        let e = Controller::settings_at_start(None, &cli, false).unwrap_err();
        assert!(e.to_string().contains("needs the latency probes"), "{e}");
        assert!(Controller::settings_at_start(None, &cli, true).is_ok());
    }

    /// A BPF side for host tests: it takes every write at once (as the BPF side does at its
    /// next decision) and serves a cumulative snapshot in which the short class's wakeups,
    /// `per_snapshot` more each time, all took `short_wakeup_us`.
    struct FakeBpf {
        written: Vec<(Tunables, u64)>,
        seen: u64,
        short_wakeup_us: u64,
        per_snapshot: u64,
        taken: std::cell::Cell<u64>,
    }

    impl FakeBpf {
        fn new(short_wakeup_us: u64) -> Self {
            Self {
                written: Vec::new(),
                seen: 0,
                short_wakeup_us,
                per_snapshot: 100,
                taken: Default::default(),
            }
        }
    }

    impl BpfSide for FakeBpf {
        fn write_tunables(&mut self, tunables: &Tunables, gen: u64) {
            self.written.push((*tunables, gen));
            self.seen = gen;
        }

        fn gen_seen(&self) -> u64 {
            self.seen
        }

        fn snapshot(&self, settings: View) -> Result<Snapshot> {
            use crate::report::latency::{bucket_lo_ns, Hist, CLASSES, KINDS, NR_BUCKETS};
            let n = self.taken.get() + 1;
            self.taken.set(n);
            let ns = self.short_wakeup_us * 1000;
            let b = (0..NR_BUCKETS)
                .rev()
                .find(|&b| bucket_lo_ns(b) <= ns)
                .unwrap();
            let mut short = Hist::default();
            short.count = n * self.per_snapshot;
            short.sum_ns = short.count * ns;
            short.max_ns = ns;
            short.buckets[b] = short.count;
            let mut hists = vec![Hist::default(); KINDS.len() * CLASSES.len()];
            hists[0] = short.clone(); // wakeup, short
            hists[2] = short; // wakeup, all
            Ok(Snapshot {
                at_ns: n * 1_000_000_000,
                counters: Default::default(),
                hists: Some(hists),
                progs: None,
                nr_cpus: 2,
                slice_ns: 0,
                nr_runnable: 0,
                settings: Some(settings),
            })
        }

        fn enable_bpf_stats(&mut self) {}

        fn exited(&self) -> bool {
            false
        }
    }

    fn controller(settings: Settings) -> Controller {
        Controller::new(settings, Vec::new(), None, true).unwrap()
    }

    /// The real run loop, in auto mode, against a BPF side whose short wakeups take 5x the
    /// target: within its first two tuning steps the tuner tightens, and what reaches the BPF
    /// side is the tightened set, as a new generation.
    #[test]
    fn the_run_loop_tunes_through_the_bpf_side() {
        let settings = Settings::default()
            .with(
                &[
                    ("mode".to_string(), Value::Str("auto".into())),
                    ("target_p99_us".to_string(), Value::Str("2000".into())),
                ],
                Source::Cli,
            )
            .unwrap();
        let mut ctl = controller(settings);
        let mut bpf = FakeBpf::new(10_000);
        let start = Instant::now();
        ctl.run(
            &mut bpf,
            || start.elapsed() > Duration::from_millis(2600),
            None,
        );
        let (t, gen) = *bpf.written.last().expect("the tuner wrote nothing");
        let base = Tunables::default();
        assert!(
            t.slice_us < base.slice_us && t.preempt_margin_us < base.preempt_margin_us,
            "{t}"
        );
        assert_eq!(t, ctl.effective());
        assert!(gen > 1 && gen == ctl.gen(), "gen {gen}");
        assert_eq!(ctl.settings.last_change, Source::Auto);
        // The settings asked for are unchanged: the tuner moves only what runs.
        assert_eq!(ctl.settings.tunables, base);
    }

    /// Calm wakeups in fixed mode: the loop writes nothing.
    #[test]
    fn the_run_loop_leaves_fixed_settings_alone() {
        let mut ctl = controller(Settings::default());
        let mut bpf = FakeBpf::new(10_000);
        let start = Instant::now();
        ctl.run(
            &mut bpf,
            || start.elapsed() > Duration::from_millis(1200),
            None,
        );
        assert!(bpf.written.is_empty());
    }

    /// Control requests as the socket hands them over: a good change reaches the BPF side
    /// whole and is confirmed; a change with one bad key reaches it not at all.
    #[test]
    fn control_requests_reach_the_bpf_side_whole_or_not_at_all() {
        let mut ctl = controller(Settings::default());
        let mut bpf = FakeBpf::new(100);
        let set = |pairs: &[(&str, &str)]| Request::Set {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let r = ctl.handle(
            set(&[("slice_us", "3000"), ("slice_min_us", "1000")]),
            &mut bpf,
        );
        assert!(r.ok, "{r:?}");
        assert!(r.message.unwrap().contains("in use by the BPF scheduler"));
        let (t, _) = bpf.written.last().unwrap();
        assert_eq!((t.slice_us, t.slice_min_us), (3000, 1000));
        let n = bpf.written.len();
        let r = ctl.handle(
            set(&[("slice_us", "4000"), ("burst_cap_us", "0")]),
            &mut bpf,
        );
        assert!(!r.ok);
        assert_eq!(bpf.written.len(), n, "a refused change was written");
        assert_eq!(ctl.effective().slice_us, 3000);
        let r = ctl.handle(Request::Snapshot, &mut bpf);
        assert!(r.ok && r.snapshot.is_some());
    }

    #[test]
    fn diff_names_what_changed() {
        let a = Tunables::default();
        let b = Tunables {
            slice_us: 3000,
            ..a
        };
        assert_eq!(diff(&a, &b), "slice_us 5000 -> 3000");
        assert_eq!(diff(&a, &a), "no tunable changed");
    }
}
