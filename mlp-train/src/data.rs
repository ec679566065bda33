//! Data sets for training: finding the four IDX files of an MNIST-format directory,
//! splitting the training file into train and validation parts, scaling pixels to
//! `[0, 1]`, and the bundled default data set.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::idx;

/// Number of classes of every MNIST-format data set (digits, clothes, kana).
pub const CLASSES: usize = 10;

/// The directory of the bundled digits, `data/mnist-digits` at the workspace root.
pub fn bundled_data_dir() -> PathBuf {
    workspace_root().join("data").join("mnist-digits")
}

/// The workspace root (the parent of this crate's directory), so the defaults work
/// from any working directory inside the repository.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A labelled set of images, pixels scaled to `[0, 1]` as `f32`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Values per image (784 for 28×28).
    pub features: usize,
    /// Image side lengths `(rows, cols)`.
    pub shape: (usize, usize),
    /// `len × features` inputs, row-major, `pixel / 255`.
    pub inputs: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Inputs of image `index`.
    pub fn input(&self, index: usize) -> &[f32] {
        &self.inputs[index * self.features..(index + 1) * self.features]
    }

    /// The images `range` of this set as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        Dataset {
            features: self.features,
            shape: self.shape,
            inputs: self.inputs[range.start * self.features..range.end * self.features].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }

    /// The pixel bytes the inputs were scaled from, if every input is exactly
    /// `pixel / 255` for a byte `pixel` (as in every set loaded from files): a quarter
    /// of the inputs' size, so a training step reads its scattered rows from memory
    /// four times faster (see [`crate::fast::Inputs::Pixels`]). `None` for any other
    /// input.
    pub fn pixels(&self) -> Option<Vec<u8>> {
        self.inputs
            .iter()
            .map(|&x| {
                let p = (x * 255.0).round();
                (0.0..=255.0)
                    .contains(&p)
                    .then_some(p as u8)
                    .filter(|&p| pixel_value(p).to_bits() == x.to_bits())
            })
            .collect()
    }

    /// Builds a set from IDX images and labels (already checked to have equal counts).
    fn from_idx(images: &idx::Images, labels: Vec<u8>) -> Dataset {
        Dataset {
            features: images.pixels_per_image(),
            shape: (images.rows, images.cols),
            inputs: images.pixels.iter().map(|&p| pixel_value(p)).collect(),
            labels,
        }
    }
}

/// The input a pixel byte becomes: `pixel / 255`, in `[0, 1]`.
#[inline(always)]
pub fn pixel_value(pixel: u8) -> f32 {
    f32::from(pixel) / 255.0
}

/// Which part of a data directory to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Split {
    /// The training part of the training file.
    Train,
    /// The validation part: the last images of the training file.
    Validation,
    /// The `t10k` test file.
    Test,
}

/// The three non-overlapping parts of a data directory.
#[derive(Clone, Debug, Default)]
pub struct Splits {
    /// Images the network learns from.
    pub train: Dataset,
    /// The last images of the training file, for model selection.
    pub validation: Dataset,
    /// The test file, for the final figure.
    pub test: Dataset,
}

/// The path of IDX file `stem` in `dir`, plain or `.gz` (the `.gz` is preferred).
pub fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let plain = dir.join(stem);
    if plain.is_file() {
        return Ok(plain);
    }
    bail!(
        "{}: no {stem} or {stem}.gz in this data directory",
        dir.display()
    )
}

/// Checks that `dir` is a directory, with a message that names it.
fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{}: data path is not a directory", dir.display()),
        Err(e) => bail!("{}: data directory cannot be read: {e}", dir.display()),
    }
}

/// Reads one images/labels pair (`train` or `t10k`) and checks that they agree.
pub fn load_pair(dir: &Path, prefix: &str) -> Result<Dataset> {
    check_dir(dir)?;
    let images_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path, CLASSES)?;
    if images.count != labels.len() {
        bail!(
            "{}: has {} labels but {} has {} images",
            labels_path.display(),
            labels.len(),
            images_path.display(),
            images.count
        );
    }
    if images.count == 0 {
        bail!("{}: holds no images", images_path.display());
    }
    Ok(Dataset::from_idx(&images, labels))
}

/// The default validation size: the last sixth of the training file (10,000 of
/// MNIST's 60,000; 1,500 of the bundled 9,000).
pub fn default_validation(train_file_len: usize) -> usize {
    train_file_len / 6
}

/// Loads a data directory and splits its training file: the last `validation` images
/// (default: a sixth) are the validation set. `train_limit` keeps only the first
/// images of the training part (for quick runs).
pub fn load_splits(
    dir: &Path,
    validation: Option<usize>,
    train_limit: Option<usize>,
) -> Result<Splits> {
    let full = load_pair(dir, "train")?;
    let test = load_pair(dir, "t10k")?;
    if test.features != full.features {
        bail!(
            "{}: test images have {} pixels but training images have {}",
            dir.display(),
            test.features,
            full.features
        );
    }
    let n = full.len();
    let validation = validation.unwrap_or_else(|| default_validation(n));
    if validation == 0 {
        bail!(
            "{}: the validation set would be empty (--validation must be at least 1)",
            dir.display()
        );
    }
    if validation >= n {
        bail!(
            "{}: validation size {validation} leaves no training images (the training file has {n})",
            dir.display()
        );
    }
    let split = n - validation;
    let train_end = train_limit.map_or(split, |l| l.min(split));
    if train_end == 0 {
        bail!(
            "{}: the training limit leaves no training images",
            dir.display()
        );
    }
    Ok(Splits {
        train: full.slice(0..train_end),
        validation: full.slice(split..n),
        test,
    })
}

/// Loads one split of a data directory (for `evaluate` and `show`).
pub fn load_split(dir: &Path, split: Split, validation: Option<usize>) -> Result<Dataset> {
    match split {
        Split::Test => load_pair(dir, "t10k"),
        Split::Train | Split::Validation => {
            let full = load_pair(dir, "train")?;
            let n = full.len();
            let v = validation.unwrap_or_else(|| default_validation(n));
            if v >= n {
                bail!(
                    "{}: validation size {v} is not below the training file's {n} images",
                    dir.display()
                );
            }
            Ok(if split == Split::Train {
                full.slice(0..n - v)
            } else {
                full.slice(n - v..n)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(inputs: Vec<f32>) -> Dataset {
        Dataset {
            features: inputs.len(),
            shape: (1, inputs.len()),
            inputs,
            labels: vec![0],
        }
    }

    #[test]
    fn pixels_come_back_exactly_and_only_from_pixel_values() {
        let all: Vec<u8> = (0..=255).collect();
        let values = set(all.iter().map(|&p| pixel_value(p)).collect());
        assert_eq!(values.pixels(), Some(all));
        for odd in [0.5 / 255.0, -1.0 / 255.0, 256.0 / 255.0, f32::NAN, 1e-9] {
            let mut v = values.clone();
            v.inputs[7] = odd;
            assert_eq!(v.pixels(), None, "{odd}");
        }
        // One ulp off a pixel value.
        let mut v = values.clone();
        v.inputs[100] = f32::from_bits(v.inputs[100].to_bits() + 1);
        assert_eq!(v.pixels(), None);
    }
}
