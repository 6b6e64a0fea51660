//! PNG plots with plotters: per-subject accuracy with Wilson intervals, and a reliability
//! diagram (accuracy against confidence per bin, the diagonal being perfect calibration).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::stats::CalibrationBin;
use crate::summary::ScoringSummary;

fn fail(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: drawing the plot: {e}", path.display())
}

/// Horizontal bars, one per subject (at most 40, the largest groups), with 95 % whiskers.
pub fn plot_subjects(summary: &ScoringSummary, title: &str, path: &Path) -> Result<()> {
    let mut groups = summary.per_subject.clone();
    groups.sort_by(|a, b| b.n.cmp(&a.n).then(a.name.cmp(&b.name)));
    groups.truncate(40);
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = groups.len().max(1);
    let height = (120 + 28 * rows) as u32;
    let root = BitMapBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(path, e))?;
    let labels: Vec<String> = groups
        .iter()
        .map(|g| {
            let name: String = g.name.chars().take(28).collect();
            format!("{name} (n={})", g.n)
        })
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..100f64, (0..rows).into_segmented())
        .map_err(|e| fail(path, e))?;
    chart
        .configure_mesh()
        .x_desc("accuracy % (bars) with 95% Wilson interval")
        .y_labels(rows)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| fail(path, e))?;
    chart
        .draw_series(groups.iter().enumerate().map(|(i, g)| {
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (100.0 * g.accuracy, SegmentValue::Exact(i + 1)),
                ],
                BLUE.mix(0.5).filled(),
            )
        }))
        .map_err(|e| fail(path, e))?;
    chart
        .draw_series(groups.iter().enumerate().map(|(i, g)| {
            PathElement::new(
                vec![
                    (100.0 * g.wilson95.low, SegmentValue::CenterOf(i)),
                    (100.0 * g.wilson95.high, SegmentValue::CenterOf(i)),
                ],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(|e| fail(path, e))?;
    root.present().map_err(|e| fail(path, e))?;
    Ok(())
}

/// Accuracy per confidence bin against the diagonal, with each bin's count as point size.
pub fn plot_reliability(bins: &[CalibrationBin], name: &str, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (560, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name}: reliability (loglik)"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(|e| fail(path, e))?;
    chart
        .configure_mesh()
        .x_desc("confidence of the predicted letter")
        .y_desc("accuracy")
        .draw()
        .map_err(|e| fail(path, e))?;
    chart
        .draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
        .map_err(|e| fail(path, e))?;
    chart
        .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
            Rectangle::new(
                [(b.low, 0.0), (b.high, b.accuracy)],
                BLUE.mix(0.35).filled(),
            )
        }))
        .map_err(|e| fail(path, e))?;
    let total: usize = bins.iter().map(|b| b.count).sum::<usize>().max(1);
    chart
        .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
            let r = 3.0 + 9.0 * (b.count as f64 / total as f64).sqrt();
            Circle::new((b.confidence, b.accuracy), r as i32, RED.filled())
        }))
        .map_err(|e| fail(path, e))?;
    root.present().map_err(|e| fail(path, e))?;
    Ok(())
}
