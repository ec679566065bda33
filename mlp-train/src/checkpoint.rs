//! Training checkpoints: everything needed to continue a run exactly where it
//! stopped — the configuration, the epochs done, the weights, the optimizer state,
//! the random generator's position, the metrics so far and the early-stopping state.
//!
//! File layout: the 8 magic bytes `MLPCKPT1`, then a postcard-encoded
//! [`Checkpoint`], then the CRC-32 of everything before it (little-endian `u32`).
//! Written atomically after every epoch, so a crash keeps the previous good one.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::metrics::EpochMetrics;
use crate::optim::OptimizerState;
use crate::train::TrainConfig;

/// The first bytes of a checkpoint file.
pub const MAGIC: &[u8; 8] = b"MLPCKPT1";

/// Early-stopping bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyState {
    /// The best monitored value so far and its epoch (from 1).
    pub best: Option<(usize, f64)>,
    /// The parameters after the best epoch.
    pub best_params: Vec<f32>,
    /// Epochs since the best one.
    pub bad_epochs: usize,
}

/// A training run's complete state after some epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The run's settings.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// All parameters (model file order).
    pub params: Vec<f32>,
    /// The optimizer's state.
    pub optimizer: OptimizerState,
    /// Position of the ChaCha8 generator (seeded with `config.seed`), in 32-bit words.
    pub rng_word_pos: u128,
    /// Metrics of the epochs done.
    pub history: Vec<EpochMetrics>,
    /// Early-stopping state.
    pub early: EarlyState,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
}

impl Checkpoint {
    /// The checkpoint's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_stdvec(self).context("cannot encode checkpoint")?);
        let crc = mlp_core::format::crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Reads a checkpoint from bytes; `name` is used in error messages.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Checkpoint> {
        let n = name.display();
        if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
            bail!("{n}: not a checkpoint file (bad magic)");
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if mlp_core::format::crc32(body).to_le_bytes() != crc {
            bail!("{n}: checkpoint is corrupt (CRC mismatch)");
        }
        let ck: Checkpoint = postcard::from_bytes(&body[MAGIC.len()..])
            .map_err(|e| anyhow::anyhow!("{n}: checkpoint is malformed: {e}"))?;
        let expected: usize = crate::model::layout(&ck.sizes)
            .last()
            .map_or(0, |l| l.bias.end);
        if ck.params.len() != expected {
            bail!("{n}: checkpoint parameters do not match its layer sizes");
        }
        Ok(ck)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::fsio::write_bytes_atomic(path, &bytes)
            .with_context(|| format!("{}: cannot write checkpoint", path.display()))
    }

    /// Reads a checkpoint file.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read checkpoint", path.display()))?;
        Checkpoint::from_bytes(&bytes, path)
    }
}
