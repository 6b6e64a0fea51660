//! PNG plots with plotters: per-subject accuracy with Wilson intervals, and a reliability
//! diagram (accuracy against confidence per bin, the diagonal being perfect calibration).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
    let height = (110 + 34 * rows) as u32;
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
        .y_label_area_size(12)
        .build_cartesian_2d(0f64..100f64, -0.5f64..(rows as f64 - 0.5))
        .map_err(|e| fail(path, e))?;
    chart
        .configure_mesh()
        .x_desc("accuracy % (bar) with its 95% Wilson interval (line)")
        .disable_y_mesh()
        .y_labels(0)
        .draw()
        .map_err(|e| fail(path, e))?;
    // Row i from the top: y = rows - 1 - i, so subjects read alphabetically downwards.
    let y = |i: usize| (rows - 1 - i) as f64;
    chart
        .draw_series(groups.iter().enumerate().map(|(i, g)| {
            Rectangle::new(
                [(0.0, y(i) - 0.38), (100.0 * g.accuracy, y(i) + 0.38)],
                BLUE.mix(0.35).filled(),
            )
        }))
        .map_err(|e| fail(path, e))?;
    chart
        .draw_series(groups.iter().enumerate().map(|(i, g)| {
            PathElement::new(
                vec![
                    (100.0 * g.wilson95.low, y(i)),
                    (100.0 * g.wilson95.high, y(i)),
                ],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(|e| fail(path, e))?;
    let label_style = ("sans-serif", 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Bottom));
    chart
        .draw_series(groups.iter().zip(&labels).enumerate().map(|(i, (g, l))| {
            Text::new(
                format!("{l}: {:.0}%", 100.0 * g.accuracy),
                (1.0, y(i) + 0.05),
                label_style.clone(),
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
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.4),
        ))
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
