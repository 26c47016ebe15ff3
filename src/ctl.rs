//! The control channel of a running scx_brisk: a UNIX socket that only root can reach
//! (`/run/scx_brisk`, mode 0700, socket 0600, and the peer's uid checked on every connection).
//! One request per connection, one JSON line each way. `scx_brisk ctl ...` and
//! `scx_brisk --monitor` are its clients; the scheduler's run loop answers (see controller.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::settings::View;
use crate::stats::Snapshot;

pub const SOCKET: &str = "/run/scx_brisk/ctl.sock";
/// Longest request accepted: a policy file (64 KiB) escaped into JSON fits comfortably.
pub const MAX_MSG: u64 = 256 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(3);

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

/// A request waiting for the run loop's answer.
pub struct Pending {
    pub req: Request,
    reply: SyncSender<Response>,
}

impl Pending {
    pub fn answer(self, resp: Response) {
        let _ = self.reply.send(resp);
    }
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
            Ok(req) => {
                let (reply, wait) = mpsc::sync_channel(1);
                if tx.send(Pending { req, reply }).is_err() {
                    Response::error("scx_brisk is shutting down")
                } else {
                    wait.recv_timeout(Duration::from_secs(10))
                        .unwrap_or_else(|_| Response::error("scx_brisk did not answer within 10 s"))
                }
            }
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
        let meta = std::fs::symlink_metadata(dir)?;
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
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let (tx, rx) = mpsc::sync_channel(4);
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

    /// The next request, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Pending> {
        self.rx.recv_timeout(timeout).ok()
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
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
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

    /// A server and client in one process (as root, which the test runs as in CI): answers
    /// arrive, garbage and oversized or truncated messages are refused with a message, and a
    /// second server on the same path refuses to start.
    #[test]
    fn server_answers_and_refuses_bad_messages() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (the control directory must be owned by root)");
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
