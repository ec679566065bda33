//! Training checkpoints: everything needed to continue a run exactly where it
//! stopped — the configuration, the epochs done, the weights, the optimizer state,
//! the random generator's position, the metrics so far and the early-stopping state.
//!
//! File layout: the 8 magic bytes `MLPCKPT3`, then a postcard-encoded
//! [`Checkpoint`], then the CRC-32 of everything before it (little-endian `u32`).
//! Written atomically after every epoch, so a crash keeps the previous good one.
//!
//! Version 2 adds what identifies the data ([`Checkpoint::data`]: the SHA-256 of each
//! data file) and stores the data directory as an absolute path, byte for byte (so a
//! path that is not UTF-8 works). Version 1 files (`MLPCKPT1`) still load: their data
//! path is as it was given, and they carry no digests to check.
//!
//! Version 3 (`MLPCKPT3`) adds the run's augmentation ([`TrainConfig::augment`]) as the
//! configuration's last field. Version 1 and 2 files still load, as runs without it.
//!
//! Version 4 (`MLPCKPT4`) adds how a CSV training file is read and split
//! ([`TrainConfig::table`]) as the configuration's last field. Older files still load,
//! as runs on MNIST-format data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::DataFiles;
use crate::metrics::EpochMetrics;
use crate::optim::OptimizerState;
use crate::train::TrainConfig;

/// The first bytes of a checkpoint file.
pub const MAGIC: &[u8; 8] = b"MLPCKPT4";

/// The first bytes of a version 3 checkpoint file (no CSV data), still read.
pub const MAGIC_V3: &[u8; 8] = b"MLPCKPT3";

/// The first bytes of a version 2 checkpoint file (no augmentation), still read.
pub const MAGIC_V2: &[u8; 8] = b"MLPCKPT2";

/// The first bytes of a version 1 checkpoint file (no data digests), still read.
pub const MAGIC_V1: &[u8; 8] = b"MLPCKPT1";

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
    /// The SHA-256 of each data file the run trains on (`None` in version 1 files).
    pub data: Option<DataFiles>,
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
        let magic = bytes.get(..MAGIC.len());
        let known: [Option<&[u8]>; 4] =
            [Some(MAGIC), Some(MAGIC_V3), Some(MAGIC_V2), Some(MAGIC_V1)];
        if bytes.len() < MAGIC.len() + 4 || !known.contains(&magic) {
            bail!("{n}: not a checkpoint file (bad magic)");
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if mlp_core::format::crc32(body).to_le_bytes() != crc {
            bail!("{n}: checkpoint is corrupt (CRC mismatch)");
        }
        let payload = &body[MAGIC.len()..];
        let malformed = |e: postcard::Error| anyhow::anyhow!("{n}: checkpoint is malformed: {e}");
        let ck: Checkpoint = if magic == Some(MAGIC) {
            postcard::from_bytes(payload).map_err(malformed)?
        } else {
            // Version 3 is version 4 without the configuration's last field, version 2
            // is version 3 without the one before, and version 1 is version 2 without
            // the checkpoint's last: postcard spells each `None` as one zero byte.
            let (config, rest) = if magic == Some(MAGIC_V3) {
                let (old, rest) =
                    postcard::take_from_bytes::<ConfigV3>(payload).map_err(malformed)?;
                (old.upgrade(), rest)
            } else {
                let (old, rest) =
                    postcard::take_from_bytes::<ConfigV2>(payload).map_err(malformed)?;
                (old.upgrade(), rest)
            };
            let mut v4 = postcard::to_stdvec(&config).context("cannot re-encode")?;
            v4.extend_from_slice(rest);
            if magic == Some(MAGIC_V1) {
                v4.push(0);
            }
            postcard::from_bytes(&v4).map_err(malformed)?
        };
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
        // The magic's common prefix (version 1 and 2).
        let bytes = crate::fsio::read_input(path, &MAGIC[..MAGIC.len() - 1])
            .with_context(|| format!("{}: cannot read checkpoint", path.display()))?;
        Checkpoint::from_bytes(&bytes, path)
    }
}

/// A version 1 or 2 checkpoint's configuration: [`TrainConfig`] before augmentation.
#[derive(Deserialize)]
struct ConfigV2 {
    #[serde(with = "path_bytes")]
    data_dir: PathBuf,
    validation: Option<usize>,
    train_limit: Option<usize>,
    hidden: Vec<usize>,
    epochs: usize,
    batch_size: usize,
    learning_rate: f32,
    seed: u64,
    optimizer: crate::optim::OptimizerConfig,
    schedule: crate::optim::Schedule,
    early_stopping: Option<crate::train::EarlyStopping>,
}

impl ConfigV2 {
    /// The same settings without augmentation, which older versions did not have.
    fn upgrade(self) -> TrainConfig {
        TrainConfig {
            data_dir: self.data_dir,
            validation: self.validation,
            train_limit: self.train_limit,
            hidden: self.hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
            optimizer: self.optimizer,
            schedule: self.schedule,
            early_stopping: self.early_stopping,
            augment: None,
            table: None,
        }
    }
}

/// A version 3 checkpoint's configuration: [`TrainConfig`] before CSV data. Postcard
/// writes a nested struct's fields in order with nothing around them, so version 2's
/// fields followed by `augment` are exactly version 3's bytes.
#[derive(Deserialize)]
struct ConfigV3 {
    before_augment: ConfigV2,
    augment: Option<crate::augment::Augment>,
}

impl ConfigV3 {
    /// The same settings on MNIST-format data, which version 3 was limited to.
    fn upgrade(self) -> TrainConfig {
        TrainConfig {
            augment: self.augment,
            ..self.before_augment.upgrade()
        }
    }
}

/// [`path_bytes`] for an optional path.
pub mod opt_path_bytes {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// A path serialized as [`path_bytes`] does.
    struct Bytes<'a>(&'a Path);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            path_bytes::serialize(self.0, s)
        }
    }

    /// A path deserialized as [`path_bytes`] does.
    struct Owned(PathBuf);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            path_bytes::deserialize(d).map(Owned)
        }
    }

    /// Writes `path` (see [`path_bytes`]).
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(p) => s.serialize_some(&Bytes(p)),
            None => s.serialize_none(),
        }
    }

    /// Reads a path written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<Owned>::deserialize(d)?.map(|o| o.0))
    }
}

/// Serde for a path that keeps every byte: postcard (checkpoints) gets the path's
/// bytes on Unix, so a directory whose name is not UTF-8 round-trips; text formats
/// (JSON) get a string (lossy for such a name). On other systems a path that is not
/// Unicode cannot be encoded, and says so.
pub mod path_bytes {
    use super::*;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `path` (see the module).
    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.serialize_str(&path.to_string_lossy());
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            s.serialize_bytes(path.as_os_str().as_bytes())
        }
        #[cfg(not(unix))]
        match path.to_str() {
            Some(text) => s.serialize_bytes(text.as_bytes()),
            None => Err(serde::ser::Error::custom(format!(
                "{}: the path is not valid Unicode",
                path.display()
            ))),
        }
    }

    struct PathVisitor;

    impl Visitor<'_> for PathVisitor {
        type Value = PathBuf;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a path")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<PathBuf, E> {
            Ok(PathBuf::from(v))
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<PathBuf, E> {
            #[cfg(unix)]
            {
                use std::os::unix::ffi::OsStrExt;
                Ok(PathBuf::from(std::ffi::OsStr::from_bytes(v)))
            }
            #[cfg(not(unix))]
            std::str::from_utf8(v)
                .map(PathBuf::from)
                .map_err(|_| E::custom("the stored path is not valid Unicode"))
        }
    }

    /// Reads a path written by [`serialize`] (or a version 1 checkpoint's string:
    /// postcard spells strings and bytes alike).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(PathVisitor)
        } else {
            d.deserialize_bytes(PathVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainConfig;

    fn sample() -> Checkpoint {
        Checkpoint {
            config: TrainConfig {
                hidden: vec![3],
                ..TrainConfig::default()
            },
            epochs_done: 1,
            sizes: vec![2, 3, 2],
            params: vec![0.5; 2 * 3 + 3 + 3 * 2 + 2],
            optimizer: OptimizerState::default(),
            rng_word_pos: 7,
            history: Vec::new(),
            early: EarlyState::default(),
            stopped_early: false,
            data: None,
        }
    }

    /// `body` behind `magic`, with its CRC.
    fn file(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_vec();
        out.extend_from_slice(body);
        let crc = mlp_core::format::crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// A version 3 body of `ck` (which has no CSV data): version 4's without the
    /// configuration's last byte (its `None`).
    fn v3_body(ck: &Checkpoint) -> Vec<u8> {
        let v4 = ck.to_bytes().unwrap();
        let mut body = v4[MAGIC.len()..v4.len() - 4].to_vec();
        let config_len = postcard::to_stdvec(&ck.config).unwrap().len();
        assert_eq!(body[config_len - 1], 0, "table None");
        body.remove(config_len - 1);
        body
    }

    /// A version 2 body of `ck` (which has no augmentation either): version 3's
    /// without the configuration's last byte.
    fn v2_body(ck: &Checkpoint) -> Vec<u8> {
        let mut body = v3_body(ck);
        let config_len = postcard::to_stdvec(&ck.config).unwrap().len() - 1;
        assert_eq!(body[config_len - 1], 0, "augmentation None");
        body.remove(config_len - 1);
        body
    }

    #[test]
    fn version_1_to_3_files_still_load() {
        let mut ck = sample();
        ck.config.augment = Some(crate::augment::Augment::DIGITS);
        let v3 = v3_body(&ck);
        assert_eq!(
            Checkpoint::from_bytes(&file(MAGIC_V3, &v3), Path::new("v3.ckpt")).unwrap(),
            ck
        );
        let ck = sample();
        let v2 = v2_body(&ck);
        assert_eq!(
            Checkpoint::from_bytes(&file(MAGIC_V2, &v2), Path::new("v2.ckpt")).unwrap(),
            ck
        );
        // A version 1 file: version 2 without the last field (`None`: one zero byte).
        assert_eq!(v2.last(), Some(&0));
        let v1 = file(MAGIC_V1, &v2[..v2.len() - 1]);
        assert_eq!(
            Checkpoint::from_bytes(&v1, Path::new("v1.ckpt")).unwrap(),
            ck
        );
    }

    #[test]
    fn augmentation_and_tables_round_trip() {
        let mut ck = sample();
        ck.config.augment = Some(crate::augment::Augment::DIGITS);
        let bytes = ck.to_bytes().unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("c")).unwrap(), ck);
        ck.config.table = Some(crate::data::TableSource {
            test: Some(PathBuf::from("/data/test.csv")),
            label: crate::data::LabelColumn::Named("species".into()),
            test_ppm: 250_000,
            split_seed: 9,
        });
        let bytes = ck.to_bytes().unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("c")).unwrap(), ck);
    }

    #[cfg(unix)]
    #[test]
    fn paths_keep_every_byte() {
        use std::os::unix::ffi::OsStrExt;
        let mut ck = sample();
        ck.config.data_dir = PathBuf::from(std::ffi::OsStr::from_bytes(b"/data/\xff\xfe"));
        let bytes = ck.to_bytes().unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("c")).unwrap(), ck);
    }
}
