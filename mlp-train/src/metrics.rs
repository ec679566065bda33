//! Measuring a network: batched forward passes over a data set (loss, accuracy,
//! confusion matrix, per-class precision and recall), the per-epoch record, and the
//! CSV log of those records.

use std::path::Path;

use anyhow::{Context, Result};
use mlp_kernels::EvalSums;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::model::Mlp;
use crate::train::Compute;

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

    /// Recall of class `c`: right predictions of `c` over all examples of class `c`.
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
        let _ = writeln!(s, "\nclass        precision  recall  examples");
        for c in 0..classes {
            let _ = writeln!(
                s,
                "{:<12} {:>8.2}%  {:>6.2}%  {:>8}",
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

impl Evaluation {
    /// The figures of the kernels' sums over `count` examples of `classes` classes.
    pub fn from_sums(sums: EvalSums, count: usize, classes: usize) -> Evaluation {
        let confusion: Vec<Vec<usize>> = sums
            .confusion
            .chunks(classes.max(1))
            .map(<[usize]>::to_vec)
            .collect();
        let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
        Evaluation {
            loss: sums.loss_sum / count.max(1) as f64,
            accuracy: correct as f64 / count.max(1) as f64,
            count,
            confusion,
        }
    }
}

/// Evaluates `model` on `data` (batches of [`mlp_kernels::EVAL_BATCH`] rows)
/// with `compute`'s kernels and threads. The loss, accuracy and confusion matrix do
/// not depend on the thread count, and with the fast kernels not on the instruction
/// set either.
///
/// # Errors
/// If this CPU does not run the kernels.
pub fn evaluate(model: &Mlp, data: &Dataset, compute: Compute) -> Result<Evaluation> {
    // A model that is not of pixels takes the bytes as features, through its input
    // transform (as the device's `predict_pixels` does). A CSV set's values are
    // standardized already, for a model that takes them as given.
    let transformed;
    let inputs = if model.input == crate::model::Input::Pixels || data.is_table() {
        data.inputs()
    } else {
        transformed = model.inputs_of_bytes(&data.pixels);
        mlp_kernels::Inputs::Values(&transformed)
    };
    let sums = mlp_kernels::evaluate(
        compute.kernels,
        model.sizes(),
        &model.params,
        inputs,
        &data.labels,
        compute.threads,
    )?;
    Ok(Evaluation::from_sums(sums, data.len(), model.classes()))
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
