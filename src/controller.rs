//! The userspace controller: observe (the probes' histograms) -> decide (the auto-tuner, or a
//! user's `ctl` request, policy file or SIGHUP) -> act (write the tunables map). It owns the
//! settings, so they survive a scheduler restart (e.g. after CPU hotplug).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use log::{info, warn};

use crate::autotune::Tuner;
use crate::ctl::{self, Request, Response};
use crate::policy_file::PolicyFile;
use crate::scheduler::Scheduler;
use crate::settings::{Mode, Settings, Source, View};
use crate::stats::{Report, Snapshot};
use crate::tunables::{Tunables, Value};

/// How long a change waits for the BPF side to run a decision with it before answering.
const ACK_WAIT: Duration = Duration::from_millis(500);

pub struct Controller {
    pub settings: Settings,
    /// Options given on the command line: they override the policy file, also on SIGHUP.
    cli: Vec<(String, Value)>,
    policy: Option<PathBuf>,
    tuner: Tuner,
    /// Generation of the tunables written last (intf.h: brisk_tunables.gen).
    gen: u64,
    probes: bool,
    server: Option<ctl::Server>,
    hup: Arc<AtomicBool>,
    /// The auto-tuner's previous reading.
    tune_last: Option<Snapshot>,
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
        })
    }

    /// Opens the root-only control socket (refusing if another scx_brisk answers there).
    pub fn listen(&mut self) -> Result<()> {
        self.server = Some(ctl::Server::bind(std::path::Path::new(ctl::SOCKET))?);
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
    fn publish(&mut self, sched: &mut Scheduler) -> String {
        self.gen += 1;
        sched.write_tunables(&self.effective(), self.gen);
        let start = Instant::now();
        while sched.gen_seen() < self.gen && start.elapsed() < ACK_WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        if sched.gen_seen() >= self.gen {
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
    fn commit(&mut self, next: Settings, sched: &mut Scheduler) -> Result<String> {
        require_probes(&next, self.probes)?;
        if next.tunables != self.settings.tunables || next.mode != self.settings.mode {
            // New relaxed end or a new mode: the tuner starts again from it.
            self.tuner = Tuner::default();
            self.tune_last = None;
        }
        let before = self.effective();
        self.settings = next;
        let msg = self.publish(sched);
        info!(
            "settings changed by {}: {} ({msg})",
            self.settings.last_change,
            diff(&before, &self.effective())
        );
        Ok(msg)
    }

    fn handle(&mut self, req: Request, sched: &mut Scheduler) -> Response {
        let result = match req {
            Request::Show => Ok(None),
            Request::Snapshot => {
                sched.enable_bpf_stats();
                return match sched.snapshot(self.view()) {
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
                    .and_then(|next| self.commit(next, sched))
                    .map(Some)
            }
            Request::Apply { path, text } => PolicyFile::parse(&path, &text)
                .and_then(|p| p.settings())
                .and_then(|next| self.commit(next, sched))
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
    fn reload(&mut self, sched: &mut Scheduler) {
        let Some(path) = self.policy.clone() else {
            warn!("SIGHUP: no --policy file to re-read; settings unchanged");
            return;
        };
        let res = Self::settings_at_start(Some(&path), &self.cli, self.probes)
            .and_then(|next| self.commit(next, sched));
        match res {
            Ok(_) => info!("SIGHUP: re-read {}", path.display()),
            Err(e) => warn!("SIGHUP: {e:#}; settings unchanged"),
        }
    }

    /// Answers at most one control request (waiting up to `timeout`) and handles SIGHUP.
    /// `Server::next` hands over only requests still within their deadline: one whose client
    /// was already told it timed out is dropped there (with a warning), never applied.
    pub fn poll(&mut self, sched: &mut Scheduler, timeout: Duration) {
        if self.hup.swap(false, Ordering::Relaxed) {
            self.reload(sched);
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
            p.answer(self.handle(req, sched));
        }
    }

    /// One auto-tuner step (call once per second): in auto mode, reads the short class's p99
    /// over the last interval and moves the slice and margin if the tuner says so.
    pub fn tune(&mut self, sched: &mut Scheduler) -> Result<()> {
        if self.settings.mode != Mode::Auto {
            self.tune_last = None;
            return Ok(());
        }
        let now = sched.snapshot(self.view())?;
        let Some(then) = self.tune_last.replace(now.clone()) else {
            return Ok(());
        };
        let Some((p99, samples)) = Report::between(&then, &now).short_wakeup_p99() else {
            return Ok(());
        };
        let target = self.settings.target_p99_us as f64;
        let before = self.effective();
        if let Some(change) = self.tuner.observe(target, p99, samples) {
            let msg = self.publish(sched);
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
}

/// "key a -> b" for each tunable that differs, or "no tunable changed".
fn diff(a: &Tunables, b: &Tunables) -> String {
    let parts: Vec<String> = crate::tunables::keys()
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
