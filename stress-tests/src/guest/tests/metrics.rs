//! Guest test `metrics`: OpenMetrics at `--metrics-addr`, checked by Prometheus's promtool.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use super::helpers::{brisk_cmd, timer_wakeups};
use crate::guest::sys::{self, Brisk, Procs};

const ADDR: &str = "127.0.0.1:9464";
const PROMTOOL: &str = "/usr/bin/promtool";

/// 18. `--metrics-addr`: a scrape that asks for OpenMetrics (as Prometheus does) gets it,
///     ending in `# EOF`; a plain one gets Prometheus's text format, which the real
///     `promtool check metrics` (Debian's prometheus package) passes. Both carry the live
///     decision counters, the wakeup latency histogram, the BPF programs' runs and the
///     running tunables, and the counters grow between scrapes. An address already in use
///     is refused before anything is loaded.
pub(super) fn metrics() -> Result<String> {
    ensure!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing from the guest (stress-tests/vm install fetches it)"
    );
    let (mut b, _) = Brisk::start(&[
        "--metrics-addr".into(),
        ADDR.into(),
        "--slice-us".into(),
        "6000".into(),
    ])?;
    let hogs = Procs::hogs(sys::nr_cpus(), &[])?;
    timer_wakeups(200, false)?;
    let (ctype, om) = scrape(true)?;
    ensure!(
        ctype.starts_with("application/openmetrics-text"),
        "asked for OpenMetrics, got {ctype:?}"
    );
    ensure!(om.trim_end().ends_with("# EOF"), "no # EOF:\n{om}");
    timer_wakeups(50, false)?;
    let (ctype, text) = scrape(false)?;
    ensure!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "got {ctype:?}"
    );
    drop(hogs);
    let lint = promtool(&text)?;

    let dispatched = |t: &str| value(t, "scx_brisk_decisions_total{counter=\"nr_dispatched\"}");
    let (d0, d1) = (dispatched(&om)?, dispatched(&text)?);
    ensure!(
        d0 > 0.0 && d1 > d0,
        "nr_dispatched did not grow: {d0} then {d1}"
    );
    let wakeups = value(
        &text,
        "scx_brisk_latency_seconds_count{kind=\"wakeup\",class=\"all\"}",
    )?;
    let inf = value(
        &text,
        "scx_brisk_latency_seconds_bucket{le=\"+Inf\",kind=\"wakeup\",class=\"all\"}",
    )?;
    ensure!(
        wakeups >= 250.0 && inf == wakeups,
        "wakeup histogram: count {wakeups} (>= 250 timer wakeups), +Inf bucket {inf}"
    );
    let runs = value(&text, "scx_brisk_bpf_runs_total{prog=\"brisk_enqueue\"}")?;
    ensure!(runs > 0.0, "brisk_enqueue ran {runs} times");
    let slice = value(&text, "scx_brisk_tunable{key=\"slice_us\",source=\"cli\"}")?;
    ensure!(slice == 6000.0, "slice_us served as {slice}, running 6000");

    ensure!(sys::brisk_attached(), "scx_brisk detached during the test");
    b.stop_cleanly()?;
    // The port is free again once it has stopped; taken by someone else, it is refused
    // before anything is loaded.
    let taken = TcpListener::bind(ADDR).context("the metrics port stayed taken after exit")?;
    let seq = sys::scx_enable_seq();
    let (ok, out) = brisk_cmd(&["--metrics-addr", ADDR], None)?;
    drop(taken);
    ensure!(!ok, "scx_brisk started on a busy --metrics-addr: {out}");
    ensure!(
        out.contains("--metrics-addr") && out.contains("cannot listen"),
        "busy address: unclear message: {out}"
    );
    ensure!(
        sys::scx_enable_seq() == seq && !sys::brisk_attached(),
        "busy address: a scheduler was loaded"
    );
    Ok(format!(
        "OpenMetrics and text format served; promtool: {lint}; nr_dispatched {d0} -> {d1}, \
         {wakeups} wakeups in the histogram, brisk_enqueue {runs} runs, slice_us {slice}; busy \
         address refused"
    ))
}

/// GET /metrics: (content type, body).
fn scrape(openmetrics: bool) -> Result<(String, String)> {
    let mut c = TcpStream::connect(ADDR).with_context(|| format!("connecting to {ADDR}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = if openmetrics {
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    } else {
        "*/*"
    };
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {ADDR}\r\nAccept: {accept}\r\n\r\n"
    )?;
    let mut page = String::new();
    c.read_to_string(&mut page)?;
    let (head, body) = page.split_once("\r\n\r\n").context("no HTTP header")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "scrape answered {head}");
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    Ok((ctype, body.to_string()))
}

/// `promtool check metrics` on `text`: its verdict, or an error with its complaints.
fn promtool(text: &str) -> Result<String> {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool")?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("promtool check metrics failed ({}): {said}", out.status);
    }
    Ok(if said.trim().is_empty() {
        "no problems".into()
    } else {
        said.trim().into()
    })
}

/// The value of the sample `name` (with its labels) in `text`.
fn value(text: &str, name: &str) -> Result<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .with_context(|| format!("no sample {name}"))?
        .trim()
        .parse()
        .with_context(|| format!("sample {name}"))
}
