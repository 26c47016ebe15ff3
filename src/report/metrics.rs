//! OpenMetrics for Prometheus (`--metrics-addr ADDR`): `GET /metrics` answers with the
//! cumulative state of the running scheduler, encoded by the `prometheus-client` crate:
//! the decision counters, the latency probes' histograms with their own buckets, each BPF
//! program's run time and run count, the running tunables and a few gauges. Counters start
//! again from 0 when scx_brisk reloads (a restart after an error or a CPU hotplug), which
//! Prometheus reads as a counter reset.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use anyhow::{Context, Result};
use log::warn;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::latency::{bucket_lo_ns, bucket_width_ns, Hist, CLASSES, KINDS, NR_BUCKETS};
use super::stats::Snapshot;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What clients get that do not ask for OpenMetrics (curl, `promtool check metrics`).
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The scrape's answer from the controller: a snapshot, or why there is none.
type Answer = std::result::Result<Snapshot, String>;

/// The metrics endpoint. Scrapes come in on its own thread; the controller's loop answers
/// them (`pending`, `answer`), since only it reads the BPF maps.
pub struct MetricsService {
    requests: Receiver<()>,
    answers: Sender<Answer>,
}

impl MetricsService {
    /// Listens on `addr` (the listener is bound before this returns, so a bad or busy
    /// address fails the start).
    pub fn launch(addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("--metrics-addr {addr}: cannot listen there"))?;
        let (req_tx, requests) = mpsc::channel();
        let (answers, ans_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    if let Err(e) = serve(conn, &req_tx, &ans_rx) {
                        warn!("metrics: {e:#}");
                    }
                }
            })
            .context("starting the metrics thread")?;
        Ok(Self { requests, answers })
    }

    /// Whether a scrape waits for an answer.
    pub fn pending(&self) -> bool {
        self.requests.try_recv().is_ok()
    }

    /// Answers the scrape that `pending` saw.
    pub fn answer(&self, snapshot: Result<Snapshot>) {
        let _ = self.answers.send(snapshot.map_err(|e| format!("{e:#}")));
    }
}

/// One HTTP/1.x request on `conn`: `GET /metrics` gets the metrics (OpenMetrics if the
/// client accepts it, as Prometheus does, else Prometheus's text format), anything else a 404.
fn serve(mut conn: TcpStream, requests: &Sender<()>, answers: &Receiver<Answer>) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line).context("reading the request")?;
    // The headers, up to the blank line; only Accept matters here.
    let (mut header, mut openmetrics) = (String::new(), false);
    while reader.read_line(&mut header)? > 2 {
        let (name, value) = header.split_once(':').unwrap_or(("", ""));
        if name.eq_ignore_ascii_case("accept") {
            openmetrics |= value.contains("application/openmetrics-text");
        }
        header.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" || path.split('?').next() != Some("/metrics") {
        return respond(
            &mut conn,
            "404 Not Found",
            "text/plain",
            "only GET /metrics\n",
        );
    }
    // Stale answers (a scrape that timed out) are dropped before asking.
    while answers.try_recv().is_ok() {}
    requests.send(()).context("the controller has stopped")?;
    match answers.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(snapshot)) if openmetrics => {
            respond(&mut conn, "200 OK", CONTENT_TYPE, &encode(snapshot)?)
        }
        Ok(Ok(snapshot)) => respond(
            &mut conn,
            "200 OK",
            TEXT_CONTENT_TYPE,
            &to_text_format(&encode(snapshot)?),
        ),
        Ok(Err(e)) => respond(&mut conn, "503 Service Unavailable", "text/plain", &e),
        Err(_) => respond(
            &mut conn,
            "503 Service Unavailable",
            "text/plain",
            "the scheduler did not answer within 5 s\n",
        ),
    }
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &str) -> Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .context("writing the answer")
}

/// The OpenMetrics text of `snapshot`.
pub fn encode(snapshot: Snapshot) -> Result<String> {
    let mut registry = Registry::with_prefix("scx_brisk");
    registry.register_collector(Box::new(Scrape(snapshot)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .context("encoding the metrics")?;
    Ok(out)
}

/// OpenMetrics text `om` in Prometheus's text format 0.0.4: a counter's HELP and TYPE lines
/// name its sample (`_total`), and there is no `# EOF`.
pub fn to_text_format(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines().filter(|&l| l != "# EOF") {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let (name, rest) = line.strip_prefix(p)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {rest}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// One scrape's snapshot, as a collector.
#[derive(Debug)]
struct Scrape(Snapshot);

/// A metric whose value is written by a closure (the collector's families are built from
/// the snapshot, not kept as live metrics).
struct With<F>(MetricType, F);

impl<F> std::fmt::Debug for With<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("With")
    }
}

impl<F> EncodeMetric for With<F>
where
    F: Fn(&mut MetricEncoder) -> std::fmt::Result,
{
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        (self.1)(&mut encoder)
    }
    fn metric_type(&self) -> MetricType {
        self.0
    }
}

fn counter<V: EncodeCounterValue + 'static>(
    v: V,
) -> With<impl Fn(&mut MetricEncoder) -> std::fmt::Result> {
    With(MetricType::Counter, move |e: &mut MetricEncoder| {
        e.encode_counter::<NoLabelSet, _, u64>(&v, None)
    })
}

fn gauge(v: f64) -> With<impl Fn(&mut MetricEncoder) -> std::fmt::Result> {
    With(MetricType::Gauge, move |e: &mut MetricEncoder| {
        e.encode_gauge(&v)
    })
}

/// The histogram's buckets as (upper bound in seconds, own count); the encoder accumulates
/// them. Below 4 us the log-linear buckets are whole microseconds and some share a bound
/// (latency.rs): those are merged. The overflow bucket is +Inf.
fn buckets(h: &Hist) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for b in 0..NR_BUCKETS {
        let le = if b + 1 < NR_BUCKETS {
            (bucket_lo_ns(b) + bucket_width_ns(b)) as f64 / 1e9
        } else {
            f64::MAX
        };
        let n = h.buckets.get(b).copied().unwrap_or(0);
        match out.last_mut() {
            Some(last) if last.0 == le => last.1 += n,
            _ => out.push((le, n)),
        }
    }
    out
}

fn histogram(h: &Hist) -> With<impl Fn(&mut MetricEncoder) -> std::fmt::Result + '_> {
    With(MetricType::Histogram, move |e: &mut MetricEncoder| {
        let buckets = buckets(h);
        // The count is the buckets' sum, so that it equals the +Inf bucket whatever a
        // concurrent probe did between the reads.
        let count = buckets.iter().map(|b| b.1).sum();
        e.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, count, &buckets, None)
    })
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let mut e = enc.encode_descriptor(
            "decisions",
            "Scheduling decisions since scx_brisk loaded, by counter (nr_*: src/bpf/intf.h)",
            None,
            MetricType::Counter,
        )?;
        for (name, v) in &s.counters {
            counter(*v).encode(e.encode_family(&[("counter", name.as_str())])?)?;
        }

        if let Some(hists) = &s.hists {
            let mut e = enc.encode_descriptor(
                "latency_seconds",
                "Latency measured by the probes: wakeup (woken to running), preempted \
                 (preempted to running again) or dispatch (queued to running), per task class",
                None,
                MetricType::Histogram,
            )?;
            for (k, kind) in KINDS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    if let Some(h) = hists.get(k * CLASSES.len() + c) {
                        let labels = [("kind", *kind), ("class", *class)];
                        histogram(h).encode(e.encode_family(&labels)?)?;
                    }
                }
            }
        }

        if let Some(progs) = &s.progs {
            let mut e = enc.encode_descriptor(
                "bpf_run_seconds",
                "CPU time spent in each BPF program (kernel run-time statistics)",
                None,
                MetricType::Counter,
            )?;
            for (prog, (ns, _)) in progs {
                counter(*ns as f64 / 1e9).encode(e.encode_family(&[("prog", prog.as_str())])?)?;
            }
            let mut e = enc.encode_descriptor(
                "bpf_runs",
                "Runs of each BPF program (kernel run-time statistics)",
                None,
                MetricType::Counter,
            )?;
            for (prog, (_, runs)) in progs {
                counter(*runs).encode(e.encode_family(&[("prog", prog.as_str())])?)?;
            }
        }

        if let Some(view) = &s.settings {
            let mut e = enc.encode_descriptor(
                "tunable",
                "The running value of each numeric tunable, with its source (default, cli, \
                 policy file, ctl, auto)",
                None,
                MetricType::Gauge,
            )?;
            for (key, entry) in &view.values {
                if let Ok(v) = entry.value.parse::<f64>() {
                    let source = entry.source.to_string();
                    let labels = [("key", key.as_str()), ("source", source.as_str())];
                    gauge(v).encode(e.encode_family(&labels)?)?;
                }
            }
        }

        for (name, help, v) in [
            (
                "runnable_tasks",
                "Tasks runnable on the system (/proc/stat procs_running)",
                s.nr_runnable as f64,
            ),
            (
                "slice_seconds",
                "The slice handed out most recently (with several LLCs, the most contended one's)",
                s.slice_ns as f64 / 1e9,
            ),
            ("cpus", "CPUs the scheduler knows", s.nr_cpus as f64),
        ] {
            gauge(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::settings::{Entry, Source, View};

    fn snapshot() -> Snapshot {
        let mut hist = Hist::default();
        hist.buckets[7] = 2; // 3 us
        hist.buckets[NR_BUCKETS - 1] = 1; // overflow
        hist.count = 3;
        hist.sum_ns = 3_000 * 2 + 5_000_000_000;
        let mut hists = vec![Hist::default(); KINDS.len() * CLASSES.len()];
        hists[0] = hist; // wakeup, short
        let mut values = std::collections::BTreeMap::new();
        for (k, v) in [("slice_us", "5000"), ("mode", "latency")] {
            let (value, source) = (v.to_string(), Source::Default);
            values.insert(k.to_string(), Entry { value, source });
        }
        Snapshot {
            at_ns: 1,
            counters: [("nr_dispatched".to_string(), 42)].into(),
            hists: Some(hists),
            progs: Some([("brisk_enqueue".to_string(), (2_000_000_000, 7))].into()),
            nr_cpus: 2,
            slice_ns: 5_000_000,
            nr_runnable: 3,
            settings: Some(View {
                values,
                last_change: Source::Default,
            }),
        }
    }

    #[test]
    fn the_snapshot_is_served_as_openmetrics() {
        let text = encode(snapshot()).unwrap();
        let has = |l: &str| text.lines().any(|x| x == l);
        for line in [
            "# TYPE scx_brisk_decisions counter",
            "scx_brisk_decisions_total{counter=\"nr_dispatched\"} 42",
            "# TYPE scx_brisk_latency_seconds histogram",
            "scx_brisk_latency_seconds_count{kind=\"wakeup\",class=\"short\"} 3",
            "scx_brisk_latency_seconds_bucket{le=\"0.000003\",kind=\"wakeup\",class=\"short\"} 0",
            "scx_brisk_latency_seconds_bucket{le=\"0.000004\",kind=\"wakeup\",class=\"short\"} 2",
            "scx_brisk_latency_seconds_bucket{le=\"+Inf\",kind=\"wakeup\",class=\"short\"} 3",
            "scx_brisk_bpf_run_seconds_total{prog=\"brisk_enqueue\"} 2.0",
            "scx_brisk_bpf_runs_total{prog=\"brisk_enqueue\"} 7",
            "scx_brisk_tunable{key=\"slice_us\",source=\"default\"} 5000.0",
            "scx_brisk_slice_seconds 0.005",
            "scx_brisk_runnable_tasks 3.0",
            "# EOF",
        ] {
            assert!(has(line), "no line {line:?} in\n{text}");
        }
        // A tunable that is not a number (the mode) is left out, not served as garbage.
        assert!(!text.contains("key=\"mode\""), "{text}");
        // Every histogram's buckets are cumulative and end at its count.
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| {
                l.starts_with("scx_brisk_latency_seconds_bucket")
                    && l.contains("\"short\"")
                    && l.contains("\"wakeup\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*buckets.last().unwrap(), 3);
        // Bounds strictly increase (shared ones merged): 1, 2, 3, 4, 5 ... us.
        let les: Vec<f64> = buckets_of(&text);
        assert!(les.windows(2).all(|w| w[0] < w[1]), "{les:?}");
        assert_eq!(&les[..5], &[1e-6, 2e-6, 3e-6, 4e-6, 5e-6]);
    }

    fn buckets_of(text: &str) -> Vec<f64> {
        text.lines()
            .filter(|l| l.contains("_bucket{") && l.contains("\"wakeup\",class=\"short\""))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
            .map(|le| {
                if le == "+Inf" {
                    f64::MAX
                } else {
                    le.parse().unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn clients_that_do_not_ask_for_openmetrics_get_the_text_format() {
        let text = to_text_format(&encode(snapshot()).unwrap());
        let has = |l: &str| text.lines().any(|x| x == l);
        assert!(has("# TYPE scx_brisk_decisions_total counter"), "{text}");
        assert!(has(
            "# HELP scx_brisk_bpf_runs_total Runs of each BPF program (kernel run-time statistics)"
        ));
        assert!(has(
            "scx_brisk_decisions_total{counter=\"nr_dispatched\"} 42"
        ));
        // Only counters are renamed; nothing else changes but the end marker.
        assert!(has("# TYPE scx_brisk_latency_seconds histogram"));
        assert!(has("# TYPE scx_brisk_tunable gauge"));
        assert!(!text.contains("# EOF"));
    }

    /// A live endpoint: a scrape reaches the controller's side and gets its snapshot back over
    /// HTTP; another path gets a 404.
    #[test]
    fn a_scrape_gets_the_controllers_snapshot() {
        use std::io::Read;
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let svc = MetricsService::launch(addr).unwrap();
        let answerer = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if svc.pending() {
                    svc.answer(Ok(snapshot()));
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("no scrape reached the controller's side");
        });
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).unwrap();
            let accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";
            write!(
                c,
                "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        };
        let page = get("/metrics");
        answerer.join().unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains(CONTENT_TYPE), "{page}");
        assert!(page.contains("scx_brisk_decisions_total{counter=\"nr_dispatched\"} 42"));
        assert!(page.trim_end().ends_with("# EOF"), "{page}");
        assert!(get("/").starts_with("HTTP/1.1 404"));
        // A busy address is refused with the option's name in the message.
        let e = MetricsService::launch(addr).err().unwrap();
        assert!(format!("{e:#}").contains("--metrics-addr"), "{e:#}");
    }
}
