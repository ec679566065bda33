//! Machine-readable results: the run summary (`summary.json`) that `train` writes
//! next to the model, and the JSON that `evaluate --json` prints. Both are JSON
//! objects with a `format` field naming their layout and version, so scripts can
//! compare runs without parsing the printed text.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::data::DataFiles;
use crate::metrics::{EpochMetrics, Evaluation};
use crate::train::{Compute, TrainConfig};

/// The `format` field of `summary.json`.
pub const SUMMARY_FORMAT: &str = "mlp-train run summary 1";

/// The `format` field of `evaluate --json`.
pub const EVALUATION_FORMAT: &str = "mlp-train evaluation 1";

/// What a finished run wrote into `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary<'a> {
    /// [`SUMMARY_FORMAT`].
    pub format: &'static str,
    /// Every setting of the run (the seed among them).
    pub settings: &'a TrainConfig,
    /// The seed, repeated at the top for convenience.
    pub seed: u64,
    /// The arithmetic (`core`, or the fast kernels' instruction set).
    pub kernels: String,
    /// Epochs trained.
    pub epochs_done: usize,
    /// The epoch whose weights the model holds (the best one with early stopping,
    /// else the last).
    pub kept_epoch: usize,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
    /// The last epoch's figures.
    pub final_epoch: Option<&'a EpochMetrics>,
    /// Every epoch's figures, as in `metrics.csv`.
    pub epochs: &'a [EpochMetrics],
    /// The model's figures on the test set.
    pub test: Value,
    /// The model file: name, size and SHA-256.
    pub model: Value,
    /// The SHA-256 of each data file.
    pub data: &'a DataFiles,
    /// Wall time of the whole run in seconds (data loading included; for a resumed
    /// run, this session's).
    pub seconds: f64,
}

/// The summary of a finished run.
#[allow(clippy::too_many_arguments)]
pub fn run_summary<'a>(
    config: &'a TrainConfig,
    compute: Compute,
    history: &'a [EpochMetrics],
    kept_epoch: usize,
    stopped_early: bool,
    test: &Evaluation,
    model_name: &str,
    model_bytes: &[u8],
    data: &'a DataFiles,
    seconds: f64,
) -> RunSummary<'a> {
    use sha2::Digest;
    RunSummary {
        format: SUMMARY_FORMAT,
        settings: config,
        seed: config.seed,
        kernels: compute.kernels.to_string(),
        epochs_done: history.len(),
        kept_epoch,
        stopped_early,
        final_epoch: history.last(),
        epochs: history,
        test: json!({
            "accuracy": test.accuracy,
            "loss": test.loss,
            "correct": test.correct(),
            "count": test.count,
        }),
        model: json!({
            "file": model_name,
            "bytes": model_bytes.len(),
            "sha256": format!("{:x}", sha2::Sha256::digest(model_bytes)),
        }),
        data,
        seconds,
    }
}

/// Writes `summary` atomically as pretty-printed JSON.
pub fn write_summary(path: &Path, summary: &RunSummary<'_>) -> Result<()> {
    let mut text = serde_json::to_string_pretty(summary).context("cannot encode run summary")?;
    text.push('\n');
    crate::fsio::write_bytes_atomic(path, text.as_bytes())
        .with_context(|| format!("{}: cannot write run summary", path.display()))
}

/// An evaluation as JSON: accuracy, loss, counts, per-class precision and recall
/// (`null` for a class never predicted) and the confusion matrix
/// (`confusion[true][predicted]`).
pub fn evaluation_json(
    e: &Evaluation,
    model: &Path,
    data: &Path,
    split: &str,
    names: Option<&[String]>,
) -> Value {
    let classes: Vec<Value> = (0..e.confusion.len())
        .map(|c| {
            json!({
                "class": c,
                "name": names.and_then(|n| n.get(c)),
                "images": e.confusion[c].iter().sum::<usize>(),
                "precision": finite(e.precision(c)),
                "recall": finite(e.recall(c)),
            })
        })
        .collect();
    json!({
        "format": EVALUATION_FORMAT,
        "model": model.to_string_lossy(),
        "data": data.to_string_lossy(),
        "split": split,
        "count": e.count,
        "correct": e.correct(),
        "accuracy": e.accuracy,
        "loss": e.loss,
        "classes": classes,
        "confusion": e.confusion,
    })
}

/// `x`, or JSON `null` when it is not a number (0/0 for a class never predicted).
fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}
