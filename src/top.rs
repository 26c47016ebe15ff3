//! `scx_brisk top`: which task waits for a CPU, how long, and behind whom. A live per-task
//! view from the standalone probes (src/bpf/probe.bpf.c, `struct brisk_top_task`), so it
//! works beside a running scx_brisk and under any other scheduler alike: per task, its
//! wakeups, wakeup latency p50/p99/max and CPU share over the last interval, and the tasks its
//! CPU switched from when it finally ran (the ones it waited behind, since `top` started).
//! The BPF map holds at most BRISK_TOP_MAX_TASKS tasks (least recently seen go first), and
//! this side keeps one reading of it, so memory is bounded whatever runs.

use std::collections::HashMap;
use std::io::Write;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::Constraint;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Row, Table};
use ratatui::Frame;
use serde::Serialize;

use crate::bpf_intf::{brisk_top_consts_BRISK_TOP_NR_BEHIND as NR_BEHIND, brisk_top_task};
use crate::cli::{TopOpts, TopSort};
use crate::report::latency::Hist;

// SAFETY: plain C struct of integers and byte arrays.
unsafe impl plain::Plain for brisk_top_task {}

/// One task over the interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskRow {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    /// "short" or "hog", by scx_brisk's burst rule, at its last switch-in.
    pub class: &'static str,
    /// The burst (CPU time per wakeup, average or current if longer) that class was decided by.
    pub burst_us: f64,
    pub wakeups: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    /// CPU time over the interval, percent of one CPU.
    pub cpu_pct: f64,
    /// The tasks it waited behind since `top` started, the costliest first.
    pub behind: Vec<Behind>,
}

/// A task another one waited behind: its CPU switched from this one when the waiter ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Behind {
    pub pid: u32,
    pub comm: String,
    pub wait_ms: f64,
    pub count: u64,
}

/// One reading of the BPF map: per task id, its cumulative figures.
pub type Reading = HashMap<u32, brisk_top_task>;

fn read(map: &impl MapCore) -> Result<Reading> {
    let mut out = Reading::new();
    for key in map.keys() {
        let Some(bytes) = map
            .lookup(&key, MapFlags::ANY)
            .context("reading top_tasks")?
        else {
            continue; // evicted meanwhile
        };
        // SAFETY: integers and byte arrays, for which all zeroes is a valid value.
        let mut t: brisk_top_task = unsafe { std::mem::zeroed() };
        plain::copy_from_bytes(&mut t, &bytes)
            .map_err(|e| anyhow::anyhow!("malformed top_tasks entry: {e:?}"))?;
        let pid = u32::from_ne_bytes(key[..4].try_into().context("top_tasks key")?);
        out.insert(pid, t);
    }
    Ok(out)
}

fn comm(bytes: &[std::os::raw::c_char]) -> String {
    let b: Vec<u8> = bytes
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&b).into_owned()
}

fn hist(h: &crate::bpf_intf::brisk_lat_hist) -> Hist {
    Hist {
        count: h.count,
        sum_ns: h.sum_ns,
        max_ns: h.max_ns,
        buckets: h.buckets.to_vec(),
    }
}

/// The rows for the interval from `then` to `now` (`interval_ns` long): tasks that woke or
/// ran in it, sorted by `sort`, at most `limit` of them.
pub fn rows(
    then: &Reading,
    now: &Reading,
    interval_ns: u64,
    sort: TopSort,
    limit: usize,
) -> Vec<TaskRow> {
    let mut out: Vec<TaskRow> = now
        .iter()
        .filter_map(|(&pid, t)| {
            let before = then.get(&pid);
            let wake = match before {
                Some(b) => hist(&t.wakeup).since(&hist(&b.wakeup)),
                None => hist(&t.wakeup),
            };
            let ran = t.run_ns.saturating_sub(before.map_or(0, |b| b.run_ns));
            if wake.count == 0 && ran == 0 {
                return None;
            }
            let s = wake.summary();
            let mut behind: Vec<Behind> = t
                .behind
                .iter()
                .take(NR_BEHIND as usize)
                .filter(|b| b.count > 0)
                .map(|b| Behind {
                    pid: b.pid,
                    comm: comm(&b.comm),
                    wait_ms: b.wait_ns as f64 / 1e6,
                    count: b.count,
                })
                .collect();
            behind.sort_by(|a, b| b.wait_ms.total_cmp(&a.wait_ms));
            Some(TaskRow {
                pid,
                tgid: t.tgid,
                comm: comm(&t.comm),
                class: if t.is_short != 0 { "short" } else { "hog" },
                burst_us: t.burst_ns as f64 / 1e3,
                wakeups: wake.count,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
                max_us: s.max_us,
                cpu_pct: ran as f64 * 100.0 / interval_ns.max(1) as f64,
                behind,
            })
        })
        .collect();
    resort(&mut out, sort);
    out.truncate(limit);
    out
}

fn us(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 10_000.0 => format!("{:.0}ms", v / 1000.0),
        Some(v) if v >= 1000.0 => format!("{:.1}ms", v / 1000.0),
        Some(v) => format!("{v:.0}us"),
    }
}

fn behind_text(b: &[Behind]) -> String {
    b.iter()
        .map(|b| format!("{}[{}] {:.1}ms/{}", b.comm, b.pid, b.wait_ms, b.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Draws the table of `rows` (sorted by `sort`) with a title saying what it shows.
pub fn render(frame: &mut Frame, rows: &[TaskRow], sort: TopSort, interval: Duration) {
    let header = Row::new([
        "PID",
        "COMM",
        "CLASS",
        "WAKEUPS",
        "P50",
        "P99",
        "MAX",
        "CPU%",
        "WAITED BEHIND",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let body = rows.iter().map(|r| {
        Row::new([
            r.pid.to_string(),
            r.comm.clone(),
            r.class.to_string(),
            r.wakeups.to_string(),
            us(r.p50_us),
            us(r.p99_us),
            us(r.max_us),
            format!("{:.1}", r.cpu_pct),
            behind_text(&r.behind),
        ])
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Fill(1),
    ];
    let title = format!(
        " scx_brisk top: wakeup latency per task over {:.0} s, by {} (p/m/w/c sort, q quits) ",
        interval.as_secs_f64(),
        sort.name()
    );
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::bordered().title(title));
    frame.render_widget(table, frame.area());
}

pub fn run(opts: &TopOpts, verbose: bool, shutdown: &Arc<AtomicBool>) -> Result<()> {
    anyhow::ensure!(
        opts.interval_s >= 1,
        "--interval-s must be at least 1 second"
    );
    let mut open_object = MaybeUninit::uninit();
    let skel = crate::probe::load(&mut open_object, opts.short_burst_us, true, verbose)?;
    let interval = Duration::from_secs(opts.interval_s);
    let mut then = read(&skel.maps.top_tasks)?;
    let mut then_at = Instant::now();
    if opts.once {
        std::thread::sleep(interval);
        let now = read(&skel.maps.top_tasks)?;
        let ns = then_at.elapsed().as_nanos() as u64;
        let rows = rows(&then, &now, ns, opts.sort, opts.limit);
        let mut out = std::io::stdout().lock();
        if opts.json {
            serde_json::to_writer(&mut out, &rows)?;
            writeln!(out)?;
        } else {
            for r in &rows {
                writeln!(
                    out,
                    "{:>7} {:<16} {:<5} {:>7} {:>7} {:>7} {:>7} {:>6.1}  {}",
                    r.pid,
                    r.comm,
                    r.class,
                    r.wakeups,
                    us(r.p50_us),
                    us(r.p99_us),
                    us(r.max_us),
                    r.cpu_pct,
                    behind_text(&r.behind)
                )?;
            }
        }
        return Ok(());
    }
    let mut terminal =
        ratatui::try_init().context("starting the terminal UI (is this a terminal?)")?;
    let result = (|| -> Result<()> {
        let (mut sort, mut shown) = (opts.sort, Vec::new());
        let mut next = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                let now = read(&skel.maps.top_tasks)?;
                let ns = then_at.elapsed().as_nanos() as u64;
                shown = rows(&then, &now, ns, sort, opts.limit);
                (then, then_at, next) = (now, Instant::now(), Instant::now() + interval);
            }
            terminal.draw(|f| render(f, &shown, sort, interval))?;
            if event::poll(Duration::from_millis(200))? {
                if let Event::Key(k) = event::read()? {
                    if k.kind != KeyEventKind::Press {
                        continue;
                    }
                    sort = match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => break,
                        KeyCode::Char('p') => TopSort::P99,
                        KeyCode::Char('m') => TopSort::Max,
                        KeyCode::Char('w') => TopSort::Wakeups,
                        KeyCode::Char('c') => TopSort::Cpu,
                        _ => sort,
                    };
                    resort(&mut shown, sort);
                }
            }
        }
        Ok(())
    })();
    ratatui::restore();
    result
}

/// Sorts rows by `sort`, largest first (ties by task id).
fn resort(rows: &mut [TaskRow], sort: TopSort) {
    let key = |r: &TaskRow| -> f64 {
        match sort {
            TopSort::P99 => r.p99_us.unwrap_or(0.0),
            TopSort::Max => r.max_us.unwrap_or(0.0),
            TopSort::Wakeups => r.wakeups as f64,
            TopSort::Cpu => r.cpu_pct,
        }
    };
    rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.pid.cmp(&b.pid)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn set_comm(dst: &mut [std::os::raw::c_char], s: &str) {
        for (d, b) in dst.iter_mut().zip(s.bytes()) {
            *d = b as std::os::raw::c_char;
        }
    }

    /// A task that woke `n` times, each wait in histogram bucket `bucket`, ran `run_ns`, and
    /// waited behind `behind` (pid, comm, ns).
    fn task(
        comm: &str,
        n: u64,
        bucket: usize,
        run_ns: u64,
        behind: Option<(u32, &str, u64)>,
    ) -> brisk_top_task {
        // SAFETY: as in `read`.
        let mut t: brisk_top_task = unsafe { std::mem::zeroed() };
        set_comm(&mut t.comm, comm);
        t.tgid = 1;
        t.is_short = 1;
        t.wakeup.count = n;
        t.wakeup.buckets[bucket] = n;
        t.run_ns = run_ns;
        if let Some((pid, c, ns)) = behind {
            t.behind[0].pid = pid;
            t.behind[0].wait_ns = ns;
            t.behind[0].count = 1;
            set_comm(&mut t.behind[0].comm, c);
        }
        t
    }

    #[test]
    fn rows_show_the_interval_and_sort_by_the_worst_wait() {
        let then: Reading = [(10, task("audio", 5, 9, 1_000_000, None))].into();
        let now: Reading = [
            // 100 more wakeups at 4-5 us, 10 ms more CPU over a 1 s interval
            (
                10,
                task("audio", 105, 9, 11_000_000, Some((20, "cc1", 3_000_000))),
            ),
            // new since the last reading: all of it counts
            (20, task("cc1", 0, 0, 900_000_000, None)),
            // its figures did not move: not shown
            (30, task("idle-daemon", 0, 0, 0, None)),
            // one long wait: first by p99
            (40, task("frame", 1, 60, 0, None)),
        ]
        .into();
        let r = rows(&then, &now, 1_000_000_000, TopSort::P99, 10);
        let pids: Vec<u32> = r.iter().map(|r| r.pid).collect();
        assert_eq!(pids, [40, 10, 20]);
        let audio = &r[1];
        assert_eq!((audio.comm.as_str(), audio.wakeups), ("audio", 100));
        assert_eq!(audio.p99_us, Some(4.5));
        assert!((audio.cpu_pct - 1.0).abs() < 1e-9, "{}", audio.cpu_pct);
        assert_eq!(audio.behind[0].comm, "cc1");
        assert_eq!(audio.behind[0].wait_ms, 3.0);
        assert!((r[2].cpu_pct - 90.0).abs() < 1e-9);
        // Other orders, and the limit.
        let by_cpu: Vec<u32> = rows(&then, &now, 1_000_000_000, TopSort::Cpu, 2)
            .iter()
            .map(|r| r.pid)
            .collect();
        assert_eq!(by_cpu, [20, 10]);
        let by_wakeups = rows(&then, &now, 1_000_000_000, TopSort::Wakeups, 1);
        assert_eq!(by_wakeups[0].pid, 10);
    }

    #[test]
    fn the_table_shows_each_task_and_whom_it_waited_behind() {
        let then = Reading::new();
        let now: Reading = [(
            4242,
            task("audio", 50, 9, 5_000_000, Some((77, "cc1", 2_500_000))),
        )]
        .into();
        let shown = rows(&then, &now, 1_000_000_000, TopSort::P99, 10);
        let mut term = Terminal::new(TestBackend::new(110, 5)).unwrap();
        term.draw(|f| render(f, &shown, TopSort::P99, Duration::from_secs(1)))
            .unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .chunks(110)
            .map(|line| line.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect();
        for want in [
            "scx_brisk top: wakeup latency per task over 1 s, by p99",
            "PID",
            "WAITED BEHIND",
            "4242",
            "audio",
            "short",
            "cc1[77] 2.5ms/1",
        ] {
            assert!(
                screen.contains(want),
                "{want:?} not on the screen:\n{screen}"
            );
        }
    }
}
