//! Measuring a network: batched forward passes over a data set (loss, accuracy,
//! confusion matrix, per-class precision and recall), the per-epoch record, and the
//! CSV log of those records.

use std::path::Path;

use anyhow::{Context, Result};
use mlp_core::activation::relu_forward;
use mlp_core::dense::{dense_forward, DenseShape};
use mlp_core::loss::{argmax, softmax_cross_entropy};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::model::Mlp;

/// Rows per forward pass when evaluating.
pub const EVAL_BATCH: usize = 256;

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub learning_rate: f32,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Fraction of training images classified right, measured as the epoch ran.
    pub train_accuracy: f64,
    /// Loss on the validation set after the epoch.
    pub val_loss: f64,
    /// Accuracy on the validation set after the epoch.
    pub val_accuracy: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub seconds: f64,
}

/// The CSV header of the metrics log.
pub const CSV_HEADER: &str =
    "epoch,learning_rate,train_loss,train_accuracy,val_loss,val_accuracy,seconds";

/// Writes the metrics log atomically as CSV.
pub fn write_csv(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    crate::fsio::write_atomic(path, |out| {
        writeln!(out, "{CSV_HEADER}")?;
        for m in history {
            writeln!(
                out,
                "{},{},{:.6},{:.6},{:.6},{:.6},{:.3}",
                m.epoch,
                m.learning_rate,
                m.train_loss,
                m.train_accuracy,
                m.val_loss,
                m.val_accuracy,
                m.seconds
            )?;
        }
        Ok(())
    })
    .with_context(|| format!("{}: cannot write metrics log", path.display()))
}

/// Loss, accuracy and confusion matrix of a network on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified right.
    pub accuracy: f64,
    /// Images evaluated.
    pub count: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Images classified right.
    pub fn correct(&self) -> usize {
        (0..self.confusion.len())
            .map(|c| self.confusion[c][c])
            .sum()
    }

    /// Precision of class `c`: right predictions of `c` over all predictions of `c`
    /// (NaN when `c` was never predicted).
    pub fn precision(&self, c: usize) -> f64 {
        let predicted: usize = self.confusion.iter().map(|row| row[c]).sum();
        self.confusion[c][c] as f64 / predicted as f64
    }

    /// Recall of class `c`: right predictions of `c` over all images of class `c`.
    pub fn recall(&self, c: usize) -> f64 {
        let actual: usize = self.confusion[c].iter().sum();
        self.confusion[c][c] as f64 / actual as f64
    }

    /// A text report: accuracy, per-class precision and recall, confusion matrix.
    pub fn report(&self, class_names: Option<&[&str]>) -> String {
        use std::fmt::Write as _;
        let classes = self.confusion.len();
        let name = |c: usize| {
            class_names
                .and_then(|n| n.get(c))
                .map_or(c.to_string(), |s| s.to_string())
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "accuracy: {:.2}% ({}/{}), loss {:.4}",
            100.0 * self.accuracy,
            self.correct(),
            self.count,
            self.loss
        );
        let _ = writeln!(s, "\nclass        precision  recall  images");
        for c in 0..classes {
            let _ = writeln!(
                s,
                "{:<12} {:>8.2}%  {:>6.2}%  {:>6}",
                name(c),
                100.0 * self.precision(c),
                100.0 * self.recall(c),
                self.confusion[c].iter().sum::<usize>()
            );
        }
        let _ = writeln!(
            s,
            "\nconfusion matrix (rows: true class, columns: predicted)"
        );
        let _ = write!(s, "      ");
        for c in 0..classes {
            let _ = write!(s, "{c:>6}");
        }
        let _ = writeln!(s);
        for (t, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{t:>6}");
            for v in row {
                let _ = write!(s, "{v:>6}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

/// Runs the layers of `model` on a batch of `batch` rows of `x`, leaving each layer's
/// output (after ReLU for hidden layers) in `acts[k][..batch × outputs]`. Only the
/// core's kernels do the arithmetic.
pub fn forward_batch(model: &Mlp, x: &[f32], batch: usize, acts: &mut [Vec<f32>]) {
    let layers = model.layout().len();
    for (k, l) in model.layout().iter().enumerate() {
        let (done, rest) = acts.split_at_mut(k);
        let input: &[f32] = if k == 0 {
            &x[..batch * l.inputs]
        } else {
            &done[k - 1][..batch * l.inputs]
        };
        let out = &mut rest[0][..batch * l.outputs];
        dense_forward(
            DenseShape::new(batch, l.inputs, l.outputs),
            input,
            &model.params[l.weights.clone()],
            &model.params[l.bias.clone()],
            out,
        );
        if k + 1 < layers {
            relu_forward(out);
        }
    }
}

/// Activation buffers for `batch` rows of each layer's output.
pub fn activation_buffers(model: &Mlp, batch: usize) -> Vec<Vec<f32>> {
    model
        .layout()
        .iter()
        .map(|l| vec![0.0; batch * l.outputs])
        .collect()
}

/// Evaluates `model` on `data` in batches of [`EVAL_BATCH`].
pub fn evaluate(model: &Mlp, data: &Dataset) -> Evaluation {
    let classes = model.classes();
    let mut acts = activation_buffers(model, EVAL_BATCH);
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    let n = data.len();
    let mut start = 0;
    while start < n {
        let b = EVAL_BATCH.min(n - start);
        let x = &data.inputs[start * data.features..(start + b) * data.features];
        let labels = &data.labels[start..start + b];
        forward_batch(model, x, b, &mut acts);
        let logits = &acts[acts.len() - 1][..b * classes];
        loss_sum += f64::from(softmax_cross_entropy(logits, labels, classes, None)) * b as f64;
        for (row, &label) in logits.chunks_exact(classes).zip(labels) {
            confusion[usize::from(label)][argmax(row)] += 1;
        }
        start += b;
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        loss: loss_sum / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        count: n,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall() {
        let e = Evaluation {
            loss: 0.0,
            accuracy: 0.75,
            count: 4,
            confusion: vec![vec![2, 0], vec![1, 1]],
        };
        assert_eq!(e.correct(), 3);
        assert!((e.precision(0) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.recall(1), 0.5);
        assert!(e.report(None).contains("accuracy: 75.00% (3/4)"));
    }

    #[test]
    fn csv_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        let m = EpochMetrics {
            epoch: 1,
            learning_rate: 0.1,
            train_loss: 0.5,
            train_accuracy: 0.8,
            val_loss: 0.4,
            val_accuracy: 0.85,
            seconds: 1.5,
        };
        write_csv(&p, &[m]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            format!("{CSV_HEADER}\n1,0.1,0.500000,0.800000,0.400000,0.850000,1.500\n")
        );
    }
}
