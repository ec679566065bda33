//! The training chart: train and validation accuracy (left) and loss (right) per
//! epoch, like the walkthrough's plot, as an SVG file that any browser shows.
//!
//! Drawn with `plotters`' SVG backend, which writes text as SVG `<text>` elements, so
//! no font library is needed at build or run time.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use crate::metrics::EpochMetrics;

/// Which two values of an epoch one panel plots: (train, validation).
type Pick = fn(&EpochMetrics) -> (f64, f64);

/// Orange for the validation curve.
const ORANGE: RGBColor = RGBColor(230, 120, 0);

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    history: &[EpochMetrics],
    pick: Pick,
) -> Result<()> {
    let values: Vec<(f64, f64)> = history.iter().map(pick).collect();
    let (lo, hi) = values
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    // Epochs are whole numbers: an integer axis labels them 1, 2, 3 (never 5.0). One
    // epoch gets room on both sides of its point.
    let last = history.last().map_or(1, |m| m.epoch as i64);
    let first = history.first().map_or(1, |m| m.epoch as i64);
    let x_range = if last <= first {
        first - 1..last + 1
    } else {
        first..last
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, (lo - pad)..(hi + pad))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(title.to_lowercase())
        .x_labels(history.len().clamp(2, 10) + 1)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (label, color, validation) in [("train", BLUE, false), ("validation", ORANGE, true)] {
        let points: Vec<(i64, f64)> = history
            .iter()
            .zip(&values)
            .map(|(m, v)| (m.epoch as i64, if validation { v.1 } else { v.0 }))
            // A run without a validation set has no validation figures (NaN).
            .filter(|p| p.1.is_finite())
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        // A line needs two epochs; a lone epoch is drawn as a dot.
        if points.len() == 1 {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Renders the curves to an SVG string.
pub fn render_svg(history: &[EpochMetrics]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let (left, right) = root.split_horizontally(500);
        draw_panel(&left, "Accuracy", history, |m| {
            (m.train_accuracy, m.val_accuracy)
        })?;
        draw_panel(&right, "Loss", history, |m| (m.train_loss, m.val_loss))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// Writes the curves atomically as an SVG file.
pub fn write_curves(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let svg = render_svg(history)?;
    crate::fsio::write_bytes_atomic(path, svg.as_bytes())
        .with_context(|| format!("{}: cannot write chart", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts of an SVG's `<text>` elements, trimmed.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_owned())
            })
            .collect()
    }

    #[test]
    fn renders_svg() {
        let history: Vec<EpochMetrics> = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                learning_rate: 0.1,
                train_loss: 1.0 / e as f64,
                train_accuracy: 0.8 + 0.01 * e as f64,
                val_loss: 1.1 / e as f64,
                val_accuracy: 0.79 + 0.01 * e as f64,
                seconds: 1.0,
            })
            .collect();
        let svg = render_svg(&history).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Accuracy") && svg.contains("validation"));
        assert!(render_svg(&[]).is_ok());
        // Whole epochs on the axis: 1, 2, 3, never 1.0 or 2.5.
        let labels = texts(&svg);
        for t in ["1", "2", "3"] {
            assert!(
                labels.iter().any(|l| l == t),
                "no epoch label {t}: {labels:?}"
            );
        }
        // (The loss axis may say 1.0; no y value reaches 1.5.)
        for t in ["1.5", "2.0", "2.5", "3.0"] {
            assert!(
                !labels.iter().any(|l| l == t),
                "epoch label {t}: {labels:?}"
            );
        }
    }

    #[test]
    fn one_epoch_draws_a_point() {
        let m = EpochMetrics {
            epoch: 1,
            learning_rate: 0.1,
            train_loss: 0.5,
            train_accuracy: 0.8,
            val_loss: 0.6,
            val_accuracy: 0.7,
            seconds: 1.0,
        };
        let svg = render_svg(&[m]).unwrap();
        // Two panels, two series each: a dot for each.
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        let labels = texts(&svg);
        assert!(labels.iter().any(|t| t == "1"), "{labels:?}");
        assert!(!labels.iter().any(|t| t == "1.0"), "{labels:?}");
    }
}
