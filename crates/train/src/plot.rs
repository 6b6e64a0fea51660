//! `loss.png`: training loss per step (and validation loss where measured), with plotters.

use std::path::Path;

use plotters::prelude::*;

use crate::error::TrainError;
use crate::metrics::StepMetrics;

pub fn plot_losses(metrics: &[StepMetrics], path: &Path) -> Result<(), TrainError> {
    if metrics.is_empty() {
        return Ok(());
    }
    let fail =
        |e: String| TrainError::Invalid(format!("{}: drawing the loss plot: {e}", path.display()));
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let last_step = metrics.iter().map(|m| m.step).max().unwrap_or(1).max(2) as f64;
    let values = metrics
        .iter()
        .flat_map(|m| std::iter::once(m.loss).chain(m.val_loss))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption("medtune train: loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f64..last_step, (lo - pad)..(hi + pad))
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("optimiser step")
        .y_desc("loss (answer tokens)")
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            metrics.iter().map(|m| (m.step as f64, m.loss)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| fail(e.to_string()))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    let val: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.val_loss.map(|v| (m.step as f64, v)))
        .collect();
    if !val.is_empty() {
        chart
            .draw_series(val.iter().map(|&p| Circle::new(p, 5, RED.filled())))
            .map_err(|e| fail(e.to_string()))?
            .label("validation")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, RED.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))?;
    Ok(())
}
