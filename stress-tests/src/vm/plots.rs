//! SVG plots of the benchmark (plotters, SVG backend only: text is written as SVG `<text>`, so
//! no font files are needed): a latency CDF per scenario and CDF with one line per scheduler,
//! throughput relative to the default scheduler, and the fairness index.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use brisk_stress::results::BenchResults;
use brisk_stress::stats;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{self, Report};

const SIZE: (u32, u32) = (900, 540);

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(110, 110, 110),
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
    ];
    COLORS[i % COLORS.len()]
}

/// One scheduler's CDF `name` in `scenario`: at each quantile, the median over its successful
/// rounds of the latency there (µs). Empty if it has none.
pub fn median_cdf(r: &BenchResults, scenario: &str, sched: &str, name: &str) -> Vec<(f64, f64)> {
    let cdfs: Vec<&Vec<[f64; 2]>> = r
        .runs
        .iter()
        .filter(|x| x.ok && x.scenario == scenario && x.scheduler == sched)
        .filter_map(|x| x.cdfs.get(name))
        .filter(|c| !c.is_empty())
        .collect();
    let Some(first) = cdfs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .filter_map(|(k, &[q, _])| {
            let at_q: Vec<f64> = cdfs
                .iter()
                .filter_map(|c| c.get(k).filter(|p| p[0] == q).map(|p| p[1]))
                .collect();
            Some((stats::median(&at_q)?, q))
        })
        .collect()
}

/// Writes every plot into `dir`; returns the files written.
pub fn write_all(r: &BenchResults, rep: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for t in &rep.tables {
        for name in &t.cdfs {
            let path = dir.join(report::cdf_file(&t.scenario, name));
            let lines: Vec<(String, Vec<(f64, f64)>)> = rep
                .schedulers
                .iter()
                .map(|s| (s.clone(), median_cdf(r, &t.scenario, s, name)))
                .collect();
            cdf_plot(&path, &format!("{}: {name}", t.scenario), &lines)
                .with_context(|| format!("plotting {}", path.display()))?;
            files.push(path);
        }
    }
    let path = dir.join(report::THROUGHPUT_FILE);
    let groups = throughput_groups(rep);
    bar_plot(
        &path,
        "Throughput relative to the default scheduler (higher is better)",
        "x default",
        &rep.schedulers,
        &groups,
        None,
    )
    .with_context(|| format!("plotting {}", path.display()))?;
    files.push(path);
    let path = dir.join(report::FAIRNESS_FILE);
    let groups = fairness_groups(rep);
    let lowest = groups
        .iter()
        .flat_map(|g| g.1.iter().flatten())
        .fold(1.0f64, |a, &b| a.min(b));
    bar_plot(
        &path,
        "Jain's fairness index of the hogs (1 = equal shares)",
        "index",
        &rep.schedulers,
        &groups,
        Some(((lowest - 0.02).clamp(0.0, 0.95), 1.01)),
    )
    .with_context(|| format!("plotting {}", path.display()))?;
    files.push(path);
    Ok(files)
}

/// Throughput metrics as ratios to the default scheduler (times inverted, so higher is
/// better everywhere): (label, value per scheduler).
pub fn throughput_groups(rep: &Report) -> Vec<(String, Vec<Option<f64>>)> {
    let mut groups = Vec::new();
    for t in &rep.tables {
        for row in &t.rows {
            let invert = row.metric.ends_with("_time_s");
            if !(row.metric.ends_with("_per_s") || invert) {
                continue;
            }
            let Some(base) = row.stats[0].map(|s| s.median).filter(|&b| b > 0.0) else {
                continue;
            };
            let values = row
                .stats
                .iter()
                .map(|s| {
                    let m = s.as_ref()?.median;
                    match invert {
                        true if m > 0.0 => Some(base / m),
                        true => None,
                        false => Some(m / base),
                    }
                })
                .collect();
            let label = match invert {
                true => format!("{}: {} (speed)", t.scenario, row.metric),
                false => format!("{}: {}", t.scenario, row.metric),
            };
            groups.push((label, values));
        }
    }
    groups
}

/// Fairness indices as they are.
pub fn fairness_groups(rep: &Report) -> Vec<(String, Vec<Option<f64>>)> {
    rep.tables
        .iter()
        .flat_map(|t| {
            t.rows
                .iter()
                .filter(|row| row.metric.contains("jain"))
                .map(move |row| {
                    (
                        format!("{}: {}", t.scenario, row.metric),
                        row.stats.iter().map(|s| s.map(|s| s.median)).collect(),
                    )
                })
        })
        .collect()
}

fn cdf_plot(path: &Path, title: &str, lines: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let xs = || lines.iter().flat_map(|l| l.1.iter().map(|p| p.0));
    let lo = xs().filter(|&x| x > 0.0).fold(f64::INFINITY, f64::min);
    let hi = xs().fold(0.0f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo / 1.5, hi * 1.5)
    } else {
        (1.0, 10.0)
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("latency (us, log scale)")
        .y_desc("fraction of samples at or below")
        .draw()?;
    for (i, (name, points)) in lines.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let c = color(i);
        let pts = points.iter().map(|&(x, q)| (x.max(lo), q));
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Grouped horizontal bars: one group per label (on the left), one bar per scheduler, each
/// with its value written at its end.
fn bar_plot(
    path: &Path,
    title: &str,
    x_desc: &str,
    scheds: &[String],
    groups: &[(String, Vec<Option<f64>>)],
    x_range: Option<(f64, f64)>,
) -> Result<()> {
    let top = groups
        .iter()
        .flat_map(|g| g.1.iter().flatten())
        .fold(1.0f64, |a, &b| a.max(b));
    let (x0, x1) = x_range.unwrap_or((0.0, top * 1.2));
    let n = groups.len().max(1);
    let k = scheds.len().max(1);
    let height = (110 + n * (14 * k + 18)).max(260) as u32;
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d(x0..x1, -0.5f64..(n as f64 - 0.5))?;
    // Group 0 at the top.
    let labels: Vec<String> = groups.iter().rev().map(|g| g.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_style(("sans-serif", 13))
        .x_desc(x_desc)
        .draw()?;
    let height = 0.8 / k as f64;
    for (j, name) in scheds.iter().enumerate() {
        let c = color(j);
        let bars: Vec<(f64, f64, f64)> = groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let v = (*g.1.get(j)?)?;
                // Row of group i from the top; scheduler j's bar from the top of the row.
                let y1 = (n - 1 - i) as f64 + 0.4 - j as f64 * height;
                Some((v, y1 - height * 0.9, y1))
            })
            .collect();
        chart
            .draw_series(
                bars.iter().map(|&(v, lo, hi)| {
                    Rectangle::new([(x0, lo), (v.clamp(x0, x1), hi)], c.filled())
                }),
            )?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart.draw_series(bars.iter().map(|&(v, lo, hi)| {
            Text::new(
                format!(" {v:.3}"),
                (v.clamp(x0, x1), (lo + hi) / 2.0),
                ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/bench-results.json");

    #[test]
    fn cdf_medians_over_rounds() {
        let r: BenchResults = serde_json::from_str(FIXTURE).unwrap();
        // Rounds with p50 1400 and 1600 (the fixture's CDF scales with it): median 1500.
        let cdf = median_cdf(&r, "desktop", "default", "periodic lateness");
        assert_eq!(
            cdf,
            [(150.0, 0.0), (1500.0, 0.5), (3750.0, 0.99), (4500.0, 1.0)]
        );
        assert!(median_cdf(&r, "batch", "default", "periodic lateness").is_empty());
    }

    #[test]
    fn plots_from_fixture() {
        let r: BenchResults = serde_json::from_str(FIXTURE).unwrap();
        let rep = report::analyse(&r);
        let groups = throughput_groups(&rep);
        let labels: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            labels,
            ["batch: work_per_s", "messaging: hackbench_time_s (speed)"]
        );
        assert_eq!(groups[1].1, [Some(1.0), Some(3.5 / 5.25)]);
        let dir = std::env::temp_dir().join(format!("brisk-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = write_all(&r, &rep, &dir).unwrap();
        assert_eq!(files.len(), 3);
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
            assert!(svg.contains("scx_brisk"), "{}", f.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
