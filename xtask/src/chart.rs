//! The SVG charts of `cargo xtask bench`: the replication lag distribution of `bench replicate`
//! and the restore times of `bench restore`, ours beside Litestream 0.3.13's.
//!
//! The benches measure and print; this module only draws what they hand it, with plotters' SVG
//! backend (text is written as SVG `<text>`, so no font files are needed).

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Legend label of our series.
pub(crate) const OURS_LABEL: &str = "ours (litestream-rs)";
/// Legend label of the reference series.
pub(crate) const THEIRS_LABEL: &str = "Litestream 0.3.13";

const OURS_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const THEIRS_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// The commit lags of one load, in ms, for both tools.
pub(crate) struct LagPanel<'a> {
    /// Panel caption, e.g. `1a sporadic: a commit every 300 ms`.
    pub(crate) title: &'a str,
    /// Our lags, ms, in any order.
    pub(crate) ours_ms: &'a [f64],
    /// Litestream's lags, ms, in any order.
    pub(crate) theirs_ms: &'a [f64],
}

/// The best restore time of one case, in seconds, for both tools.
pub(crate) struct RestoreBar<'a> {
    /// Case name as the bench prints it (`a`, `b`, `c`).
    pub(crate) case: &'a str,
    pub(crate) ours_secs: f64,
    pub(crate) theirs_secs: f64,
}

/// Writes to `path` one panel per load, side by side, each the cumulative distribution of the
/// commit lags (x: lag in ms, y: % of commits replicated within it), ours beside Litestream's.
///
/// # Errors
/// When `path` cannot be written.
pub(crate) fn write_lag_chart(path: &Path, panels: &[LagPanel<'_>]) -> Result<()> {
    let width = 640 * u32::try_from(panels.len().max(1)).context("too many panels")?;
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE)
        .with_context(|| format!("cannot draw {}", path.display()))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_lag_panel(area, panel).with_context(|| format!("cannot draw {}", path.display()))?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes to `path` a bar chart of restore times in seconds, two bars per case: ours beside
/// Litestream's.
///
/// # Errors
/// When `bars` is empty or `path` cannot be written.
pub(crate) fn write_restore_chart(path: &Path, bars: &[RestoreBar<'_>]) -> Result<()> {
    let Some(last) = bars.len().checked_sub(1) else {
        bail!("no restore times to chart in {}", path.display());
    };
    let top = bars
        .iter()
        .flat_map(|bar| [bar.ours_secs, bar.theirs_secs])
        .filter(|secs| secs.is_finite())
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    let draw = || -> Result<()> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "cargo xtask bench restore: best wall time per case",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..last).into_segmented(), 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("case")
            .y_desc("restore time (s)")
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(index) | SegmentValue::Exact(index) => bars
                    .get(*index)
                    .map(|bar| format!("({})", bar.case))
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .draw()?;
        // Each case's segment is split at its centre: ours on the left, Litestream's on the right.
        let bar = |left, right, secs: f64, color: RGBColor, margins: (u32, u32)| {
            let mut rect = Rectangle::new([(left, secs), (right, 0.0)], color.filled());
            rect.set_margin(0, 0, margins.0, margins.1);
            rect
        };
        chart
            .draw_series(bars.iter().enumerate().map(|(index, it)| {
                bar(
                    SegmentValue::Exact(index),
                    SegmentValue::CenterOf(index),
                    it.ours_secs,
                    OURS_COLOR,
                    (12, 2),
                )
            }))?
            .label(OURS_LABEL)
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], OURS_COLOR.filled()));
        chart
            .draw_series(bars.iter().enumerate().map(|(index, it)| {
                let right = if index == last {
                    SegmentValue::Last
                } else {
                    SegmentValue::Exact(index + 1)
                };
                bar(
                    SegmentValue::CenterOf(index),
                    right,
                    it.theirs_secs,
                    THEIRS_COLOR,
                    (2, 12),
                )
            }))?
            .label(THEIRS_LABEL)
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], THEIRS_COLOR.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().with_context(|| format!("cannot write {}", path.display()))
}

fn draw_lag_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, panel: &LagPanel<'_>) -> Result<()> {
    let samples = panel.ours_ms.iter().chain(panel.theirs_ms).copied();
    let (low, high) = samples
        .filter(|ms| ms.is_finite())
        .fold((0.0_f64, 0.0_f64), |(low, high), ms| {
            (low.min(ms), high.max(ms))
        });
    let high = if high > low { high * 1.05 } else { low + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(low..high, 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("lag, commit to replica (ms)")
        .y_desc("commits within lag (%)")
        .draw()?;
    for (label, samples, color) in [
        (OURS_LABEL, panel.ours_ms, OURS_COLOR),
        (THEIRS_LABEL, panel.theirs_ms, THEIRS_COLOR),
    ] {
        chart
            .draw_series(LineSeries::new(cdf_steps(samples), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The empirical CDF of `samples` as a staircase: (lag ms, % of samples at or below it).
fn cdf_steps(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples
        .iter()
        .copied()
        .filter(|ms| ms.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let n = f64::from(u32::try_from(sorted.len()).unwrap_or(u32::MAX));
    let mut steps = Vec::with_capacity(2 * sorted.len());
    let mut below = 0.0;
    for ms in sorted {
        steps.push((ms, 100.0 * below / n));
        below += 1.0;
        steps.push((ms, 100.0 * below / n));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_lag_chart_synthetic_samples_names_both_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lag.svg");
        let ours: Vec<f64> = (0..200).map(|i| 5.0 + f64::from(i % 40)).collect();
        let theirs: Vec<f64> = (0..200).map(|i| 200.0 + f64::from(i * 4)).collect();
        write_lag_chart(
            &path,
            &[
                LagPanel {
                    title: "1a sporadic",
                    ours_ms: &ours,
                    theirs_ms: &theirs,
                },
                LagPanel {
                    title: "1b sustained",
                    ours_ms: &ours,
                    theirs_ms: &[],
                },
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{svg:.200}");
        assert!(svg.contains(OURS_LABEL));
        assert!(svg.contains(THEIRS_LABEL));
        assert!(svg.contains("1b sustained"));
        assert!(svg.contains("(ms)"));
    }

    #[test]
    fn write_restore_chart_synthetic_times_names_both_series_and_cases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restore.svg");
        let bars = [
            RestoreBar {
                case: "a",
                ours_secs: 1.2,
                theirs_secs: 3.4,
            },
            RestoreBar {
                case: "b",
                ours_secs: 0.3,
                theirs_secs: 2.5,
            },
            RestoreBar {
                case: "c",
                ours_secs: 0.2,
                theirs_secs: 1.9,
            },
        ];
        write_restore_chart(&path, &bars).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<rect"), "{svg:.200}");
        assert!(svg.contains(OURS_LABEL));
        assert!(svg.contains(THEIRS_LABEL));
        assert!(svg.contains("(c)"));
    }

    #[test]
    fn write_restore_chart_no_cases_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_restore_chart(&dir.path().join("restore.svg"), &[]).unwrap_err();
        assert!(err.to_string().contains("no restore times"), "{err:#}");
    }

    #[test]
    fn cdf_steps_rises_to_one_hundred_percent() {
        let steps = cdf_steps(&[30.0, 10.0, f64::NAN, 20.0]);
        assert_eq!(steps.first(), Some(&(10.0, 0.0)));
        assert_eq!(steps.last(), Some(&(30.0, 100.0)));
        assert_eq!(steps.len(), 6);
    }
}
