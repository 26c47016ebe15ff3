//! The control channel of a running scx_brisk: a UNIX socket that only root can reach
//! (`/run/scx_brisk`, mode 0700, socket 0600, and the peer's uid checked on every connection).
//! One request per connection, one JSON line each way. `scx_brisk ctl ...` and
//! `scx_brisk --monitor` are its clients; the scheduler's run loop answers (see controller.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use log::warn;
use serde::{Deserialize, Serialize};

use crate::control::settings::View;
use crate::report::stats::Snapshot;

pub const SOCKET: &str = "/run/scx_brisk/ctl.sock";
/// Longest request accepted: a policy file (64 KiB) escaped into JSON fits comfortably.
pub const MAX_MSG: u64 = 256 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request may wait for the run loop to take it. Past this the client is told it
/// timed out and the run loop drops the request unapplied (see `Pending::claim`).
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Requests that may wait for the run loop at once; more are refused as busy.
const QUEUE_LEN: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// The running settings and where each came from.
    Show,
    /// Change keys: all of them or none.
    Set { pairs: Vec<(String, String)> },
    /// Switch to a policy file (its text is sent; `path` names it in messages).
    Apply { path: String, text: String },
    /// Cumulative counters, histograms and settings, for `--monitor`.
    Snapshot,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What happened, for the user (e.g. "applied as generation 4").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<View>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<Snapshot>>,
}

impl Response {
    pub fn error(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(msg.into()),
            ..Default::default()
        }
    }
}

impl Request {
    /// What the request is, for the log: its op, and the keys of a `set` or the file of an
    /// `apply`.
    fn describe(&self) -> String {
        match self {
            Request::Show => "show".into(),
            Request::Snapshot => "snapshot".into(),
            Request::Set { pairs } => {
                let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                format!("set {}", keys.join(" "))
            }
            Request::Apply { path, .. } => format!("apply {path}"),
        }
    }
}

/// Who decides a pending request's fate: the run loop takes it (and answers), or the client
/// side gives up on it at its deadline; whichever comes first, exactly once.
const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// A request waiting for the run loop's answer.
pub struct Pending {
    pub req: Request,
    /// After this instant the client is told the request timed out, and it must not be applied.
    deadline: Instant,
    state: Arc<AtomicU8>,
    reply: SyncSender<Response>,
}

impl Pending {
    pub fn answer(self, resp: Response) {
        let _ = self.reply.send(resp);
    }

    /// Takes the request for the run loop to apply and answer: false if its deadline has
    /// passed or the client side already gave up on it (it was told the request timed out).
    fn claim(&self) -> bool {
        Instant::now() < self.deadline
            && self
                .state
                .compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The run loop's side of the queue: the next request it may apply, waiting at most
/// `timeout`. Requests past their deadline are dropped unanswered and unapplied (their clients
/// were told they timed out), with a warning.
fn next_live(rx: &Receiver<Pending>, timeout: Duration) -> Option<Pending> {
    let end = Instant::now() + timeout;
    loop {
        let p = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .ok()?;
        if p.claim() {
            return Some(p);
        }
        warn!(
            "dropped a control request ({}) that waited more than {} s for the run loop: its \
             client was told it timed out, so it is not applied",
            p.req.describe(),
            ANSWER_WAIT.as_secs()
        );
    }
}

/// The client's side: queues `req` for the run loop and waits for the answer until `wait`
/// has passed. A request the run loop has not taken by then is withdrawn (the run loop will
/// drop it), so an answer of "timed out" means nothing was changed.
fn submit(req: Request, tx: &SyncSender<Pending>, wait: Duration) -> Response {
    let (reply, answer) = mpsc::sync_channel(1);
    let state = Arc::new(AtomicU8::new(WAITING));
    let deadline = Instant::now() + wait;
    let pending = Pending {
        req,
        deadline,
        state: state.clone(),
        reply,
    };
    match tx.try_send(pending) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Response::error(
                "scx_brisk is busy with other control requests; try again in a few seconds \
                 (nothing was changed)",
            )
        }
        Err(TrySendError::Disconnected(_)) => {
            return Response::error("scx_brisk is shutting down (nothing was changed)")
        }
    }
    let gone = match answer.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(resp) => return resp,
        // Dropped unanswered before the deadline: the run loop (and its queue) went away.
        // (At the deadline it is the run loop dropping the expired request.)
        Err(RecvTimeoutError::Disconnected) => Instant::now() < deadline,
        Err(RecvTimeoutError::Timeout) => false,
    };
    if state
        .compare_exchange(WAITING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        return Response::error(if gone {
            "scx_brisk stopped before taking the request (nothing was changed)".to_string()
        } else {
            format!(
                "scx_brisk did not take the request within {} s; it was withdrawn and \
                 nothing was changed",
                wait.as_secs()
            )
        });
    }
    // The run loop took it just in time: its answer follows once it is applied.
    answer.recv_timeout(ANSWER_WAIT).unwrap_or_else(|_| {
        Response::error(
            "scx_brisk took the request but did not answer; see `scx_brisk ctl show` for \
             whether it was applied",
        )
    })
}

/// The listening side, owned by the scheduler process; removes its socket when dropped.
pub struct Server {
    rx: Receiver<Pending>,
    path: PathBuf,
}

fn peer_uid(stream: &UnixStream) -> Option<(u32, i32)> {
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let ret = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (ret == 0).then_some((cred.uid, cred.pid))
}

/// Reads and decodes one request: a JSON line of at most MAX_MSG bytes. This is all the
/// server does with a client's bytes before the controller sees a typed `Request`; it is the
/// fuzz target `ctl_request`.
pub fn read_request(from: impl Read) -> Result<Request> {
    let mut line = String::new();
    let n = BufReader::new(from.take(MAX_MSG + 1))
        .read_line(&mut line)
        .context("reading the request")?;
    if n as u64 > MAX_MSG {
        bail!("request larger than {MAX_MSG} bytes");
    }
    if !line.ends_with('\n') {
        bail!("truncated request (no end of line)");
    }
    serde_json::from_str(&line).context("malformed request")
}

fn serve_one(stream: UnixStream, tx: &SyncSender<Pending>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let resp = match peer_uid(&stream) {
        Some((0, _)) => match read_request(&stream) {
            Err(e) => Response::error(format!("{e:#}")),
            Ok(req) => submit(req, tx, ANSWER_WAIT),
        },
        Some((uid, _)) => Response::error(format!(
            "permission denied: only root may control scx_brisk (you are uid {uid})"
        )),
        None => Response::error("permission denied: could not identify the caller"),
    };
    let mut text = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
    text.push('\n');
    let mut stream = stream;
    let _ = stream.write_all(text.as_bytes());
}

impl Server {
    /// Creates the socket (refusing if another scx_brisk answers on it) and starts accepting.
    pub fn bind(path: &Path) -> Result<Self> {
        let dir = path
            .parent()
            .context("control socket path has no directory")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the control directory {}", dir.display()))?;
        let meta = std::fs::symlink_metadata(dir).with_context(|| {
            format!("checking who owns the control directory {}", dir.display())
        })?;
        if !meta.is_dir() || meta.uid() != 0 {
            bail!(
                "{} must be a directory owned by root; remove it and start again",
                dir.display()
            );
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} root-only", dir.display()))?;
        if path.exists() {
            match UnixStream::connect(path) {
                Ok(s) => {
                    let pid = peer_uid(&s).map_or(0, |(_, pid)| pid);
                    bail!(
                        "another scx_brisk is running (pid {pid}, control socket {}); stop it \
                         first or change it with `scx_brisk ctl`",
                        path.display()
                    );
                }
                Err(_) => std::fs::remove_file(path).with_context(|| {
                    format!("removing the stale control socket {}", path.display())
                })?,
            }
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("creating the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making the control socket {} root-only", path.display()))?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_LEN);
        std::thread::Builder::new()
            .name("brisk-ctl".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    serve_one(stream, &tx);
                }
            })
            .context("starting the control thread")?;
        Ok(Self {
            rx,
            path: path.to_path_buf(),
        })
    }

    /// The next request to apply and answer, waiting at most `timeout`. Requests whose
    /// clients were already told they timed out are dropped here, unapplied (`next_live`).
    pub fn next(&self, timeout: Duration) -> Option<Pending> {
        next_live(&self.rx, timeout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends one request to the running scx_brisk and returns its answer (an error answer is an
/// Err with the scheduler's message).
pub fn request(path: &Path, req: &Request) -> Result<Response> {
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied: the control socket {} is root-only (run it as root)",
            path.display()
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "no scx_brisk is running (nothing answers on {})",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("connecting to {}", path.display())),
    })?;
    // Long enough for the server's own limits: it waits ANSWER_WAIT for the run loop to take
    // the request, and as long again for the answer of one taken at the last moment.
    stream
        .set_read_timeout(Some(2 * ANSWER_WAIT + IO_TIMEOUT))
        .context("setting a time limit on waiting for scx_brisk's answer")?;
    let mut text = serde_json::to_string(req)?;
    text.push('\n');
    stream
        .write_all(text.as_bytes())
        .context("sending the request to scx_brisk")?;
    let mut line = String::new();
    BufReader::new(stream.take(64 * MAX_MSG))
        .read_line(&mut line)
        .context("reading scx_brisk's answer")?;
    let resp: Response = serde_json::from_str(&line)
        .with_context(|| format!("scx_brisk's answer is not valid: {line:?}"))?;
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "refused".into()));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_socket(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("brisk-ctl-{}-{name}", std::process::id()))
            .join("ctl.sock")
    }

    #[test]
    fn requests_round_trip_as_json() {
        for req in [
            Request::Show,
            Request::Snapshot,
            Request::Set {
                pairs: vec![("slice_us".into(), "3000".into())],
            },
            Request::Apply {
                path: "p.toml".into(),
                text: "slice_us = 1\n".into(),
            },
        ] {
            let text = serde_json::to_string(&req).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), req);
        }
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"set","pairs":"slice_us"}"#).is_err());
    }

    fn set_request() -> Request {
        Request::Set {
            pairs: vec![("slice_us".into(), "3000".into())],
        }
    }

    /// The run loop is busy past a request's deadline: the client is told it timed out and
    /// nothing changed, and when the run loop gets to the queue it drops that request instead
    /// of applying it; a request queued behind it with time left is still handed over.
    #[test]
    fn an_expired_request_is_dropped_not_applied() {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LEN);
        // Nobody takes it: the client gives up at the deadline.
        let resp = submit(set_request(), &tx, Duration::from_millis(50));
        assert!(!resp.ok);
        let e = resp.error.unwrap();
        assert!(
            e.contains("did not take the request") && e.contains("nothing was changed"),
            "{e}"
        );
        // A second client, with time left, queues behind the expired request.
        let client = std::thread::spawn(move || {
            submit(
                Request::Apply {
                    path: "p.toml".into(),
                    text: String::new(),
                },
                &tx,
                Duration::from_secs(20),
            )
        });
        // The run loop applies what `next_live` hands it: the expired set is not among it.
        let p = next_live(&rx, Duration::from_secs(5)).expect("the live request");
        assert_eq!(
            p.req.describe(),
            "apply p.toml",
            "the expired set was handed over"
        );
        p.answer(Response {
            ok: true,
            ..Default::default()
        });
        assert!(client.join().unwrap().ok);
        assert!(next_live(&rx, Duration::from_millis(50)).is_none());
    }

    /// A request the run loop takes before its deadline is answered by the run loop, even if
    /// applying it runs past the deadline: the client is never told "timed out" for a change
    /// that was made.
    #[test]
    fn a_request_taken_in_time_gets_its_real_answer() {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LEN);
        let run_loop = std::thread::spawn(move || {
            let p = next_live(&rx, Duration::from_secs(5)).expect("a request");
            std::thread::sleep(Duration::from_millis(1500));
            p.answer(Response {
                ok: true,
                message: Some("applied".into()),
                ..Default::default()
            });
        });
        let resp = submit(set_request(), &tx, Duration::from_secs(1));
        assert!(resp.ok, "{:?}", resp.error);
        assert_eq!(resp.message.as_deref(), Some("applied"));
        run_loop.join().unwrap();
    }

    /// A full queue is refused at once with "busy" (the accept thread never blocks on it), and
    /// a run loop that is gone with "shutting down".
    #[test]
    fn a_full_queue_answers_busy_at_once() {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LEN);
        let mut answers = Vec::new();
        for _ in 0..QUEUE_LEN {
            let (reply, answer) = mpsc::sync_channel(1);
            answers.push(answer);
            tx.try_send(Pending {
                req: Request::Show,
                deadline: Instant::now() + Duration::from_secs(60),
                state: Arc::new(AtomicU8::new(WAITING)),
                reply,
            })
            .ok()
            .unwrap();
        }
        let start = Instant::now();
        let e = submit(set_request(), &tx, Duration::from_secs(10))
            .error
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "blocked on a full queue"
        );
        assert!(e.contains("busy") && e.contains("try again"), "{e}");
        drop(rx);
        let e = submit(set_request(), &tx, Duration::from_secs(10))
            .error
            .unwrap();
        assert!(e.contains("shutting down"), "{e}");
    }

    /// A server and client in one process (as root, which the test runs as in CI): answers
    /// arrive, garbage and oversized or truncated messages are refused with a message, and a
    /// second server on the same path refuses to start.
    #[test]
    fn server_answers_and_refuses_bad_messages() {
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but this test runs as uid {}: CI must run it as root (the control \
                 directory must be owned by root)",
                unsafe { libc::geteuid() }
            );
            eprintln!(
                "SKIPPED server_answers_and_refuses_bad_messages: needs root (the control \
                 directory must be owned by root); it is a failure when CI is set"
            );
            return;
        }
        let path = temp_socket("serve");
        let server = Server::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let msg = Server::bind(&path).err().unwrap().to_string();
        assert!(msg.contains("another scx_brisk is running"), "{msg}");

        let answerer = std::thread::spawn(move || {
            let p = server.next(Duration::from_secs(5)).expect("a request");
            assert_eq!(p.req, Request::Show);
            p.answer(Response {
                ok: true,
                message: Some("hello".into()),
                ..Default::default()
            });
            let p = server.next(Duration::from_secs(5)).expect("a request");
            p.answer(Response::error("slice_us = 0us is out of range"));
            server
        });
        let r = request(&path, &Request::Show).unwrap();
        assert_eq!(r.message.as_deref(), Some("hello"));
        let e = request(&path, &Request::Snapshot).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let server = answerer.join().unwrap();

        let raw = |bytes: &[u8], close: bool| -> String {
            let mut s = UnixStream::connect(&path).unwrap();
            let _ = s.write_all(bytes);
            if close {
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let mut out = String::new();
            let _ = BufReader::new(s).read_line(&mut out);
            out
        };
        assert!(raw(b"garbage\n", false).contains("malformed request"));
        assert!(raw(b"{\"op\":\"show\"", true).contains("truncated request"));
        let huge = vec![b'x'; MAX_MSG as usize + 10];
        assert!(raw(&huge, true).contains("larger than"));
        drop(server);
        assert!(!path.exists(), "socket left behind");
        let e = request(&path, &Request::Show).unwrap_err().to_string();
        assert!(e.contains("no scx_brisk is running"), "{e}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
