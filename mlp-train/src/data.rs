//! Data sets for training: finding the four IDX files of an MNIST-format directory,
//! splitting the training file into train and validation parts, scaling pixels to
//! `[0, 1]`, and the bundled default data set.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::idx;

/// Number of classes of every MNIST-format data set (digits, clothes, kana).
pub const CLASSES: usize = 10;

/// What stands for the bundled digits where a data directory is expected (the
/// default of `--data`, and what a checkpoint of such a run records). Not a directory:
/// the digits are compiled into the program ([`BUNDLED_FILES`]), so they work the same
/// for `cargo run` in the repository and for a binary copied anywhere.
pub const BUNDLED: &str = "builtin:mnist-digits";

/// The name runs on the bundled digits get (`runs/mnist-digits`).
pub const BUNDLED_NAME: &str = "mnist-digits";

/// The bundled digits' four files, `data/mnist-digits` in the repository, compiled in:
/// (file name, gzip bytes).
pub const BUNDLED_FILES: [(&str, &[u8]); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        include_bytes!("../../data/mnist-digits/train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels-idx1-ubyte.gz",
        include_bytes!("../../data/mnist-digits/train-labels-idx1-ubyte.gz"),
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        include_bytes!("../../data/mnist-digits/t10k-images-idx3-ubyte.gz"),
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        include_bytes!("../../data/mnist-digits/t10k-labels-idx1-ubyte.gz"),
    ),
];

/// The class names of Fashion-MNIST, in label order.
pub const FASHION_NAMES: [&str; CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The SHA-256 of Fashion-MNIST's training label file, decompressed
/// (`train-labels-idx1-ubyte`): how [`class_names`] recognises the data set.
pub const FASHION_TRAIN_LABELS_SHA256: &str =
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9";

/// The class names a model trained on `dir` stores: Fashion-MNIST's ten names when the
/// training labels are Fashion-MNIST's (recognised by the SHA-256 of the decompressed
/// label file, [`FASHION_TRAIN_LABELS_SHA256`], whether the file on disk is gzipped or
/// not), otherwise the digits `"0"`..`"9"` (the bundled digits, MNIST, and any other
/// MNIST-format set, whose classes are numbered).
///
/// # Errors
/// If the training labels cannot be read.
pub fn class_names(dir: &Path) -> Result<Vec<String>> {
    let digits = || (0..CLASSES).map(|c| c.to_string()).collect();
    if is_bundled(dir) {
        return Ok(digits());
    }
    use sha2::Digest;
    let labels = idx::read_labels(&find_file(dir, "train-labels-idx1-ubyte")?, CLASSES)?;
    // The IDX file's bytes, header included, as they are once decompressed.
    let file = idx::encode_labels(&labels);
    let digest: String = sha2::Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest == FASHION_TRAIN_LABELS_SHA256 {
        return Ok(FASHION_NAMES.iter().map(|&n| n.to_owned()).collect());
    }
    Ok(digits())
}

/// The bundled digits, as a data directory path ([`BUNDLED`]).
pub fn bundled_data_dir() -> PathBuf {
    PathBuf::from(BUNDLED)
}

/// True when `dir` stands for the bundled digits rather than a directory.
pub fn is_bundled(dir: &Path) -> bool {
    dir.as_os_str() == BUNDLED
}

/// How a data directory is shown to a user: its path, or "the bundled digits".
pub fn describe(dir: &Path) -> String {
    if is_bundled(dir) {
        "the bundled digits".to_owned()
    } else {
        dir.display().to_string()
    }
}

/// The IDX files of `dir` that exist (none for the bundled digits): what a command's
/// outputs must not overwrite.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    if is_bundled(dir) {
        return Vec::new();
    }
    ["train", "t10k"]
        .iter()
        .flat_map(|p| ["images-idx3-ubyte", "labels-idx1-ubyte"].map(|k| format!("{p}-{k}")))
        .filter_map(|stem| find_file(dir, &stem).ok())
        .collect()
}

/// A labelled set of images, kept as their pixel bytes: the kernels convert them to
/// inputs (`pixel / 255`, [`pixel_value`]) once, as they read them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Values per image (784 for 28×28).
    pub features: usize,
    /// Image side lengths `(rows, cols)`.
    pub shape: (usize, usize),
    /// `len × features` pixel bytes, row-major.
    pub pixels: Vec<u8>,
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

    /// The pixel bytes of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.pixels[index * self.features..(index + 1) * self.features]
    }

    /// The inputs of image `index`: its pixels as `pixel / 255`.
    pub fn input(&self, index: usize) -> Vec<f32> {
        self.image(index).iter().map(|&p| pixel_value(p)).collect()
    }

    /// Every image, as the kernels read them.
    pub fn inputs(&self) -> mlp_kernels::Inputs<'_> {
        mlp_kernels::Inputs::Pixels(&self.pixels)
    }

    /// The images `range` of this set as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        Dataset {
            features: self.features,
            shape: self.shape,
            pixels: self.pixels[range.start * self.features..range.end * self.features].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }

    /// Builds a set from IDX images and labels (already checked to have equal counts).
    fn from_idx(images: idx::Images, labels: Vec<u8>) -> Dataset {
        Dataset {
            features: images.pixels_per_image(),
            shape: (images.rows, images.cols),
            pixels: images.pixels,
            labels,
        }
    }
}

/// The input a pixel byte becomes: `pixel / 255`, in `[0, 1]` (the core's
/// definition, which the device uses too).
pub use mlp_core::network::pixel_value;

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

/// The compiled-in bytes of bundled file `name`, named `builtin:mnist-digits/NAME`
/// in errors.
fn bundled_file(name: &str) -> Result<(PathBuf, &'static [u8])> {
    BUNDLED_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, bytes)| (Path::new(BUNDLED).join(n), *bytes))
        .ok_or_else(|| anyhow::anyhow!("{BUNDLED}: no file {name}"))
}

/// Reads one images/labels pair (`train` or `t10k`) and checks that they agree. `dir`
/// may be [`BUNDLED`].
pub fn load_pair(dir: &Path, prefix: &str) -> Result<Dataset> {
    let images_stem = format!("{prefix}-images-idx3-ubyte");
    let labels_stem = format!("{prefix}-labels-idx1-ubyte");
    let (images_path, labels_path, images, labels) = if is_bundled(dir) {
        let (images_path, images) = bundled_file(&format!("{images_stem}.gz"))?;
        let (labels_path, labels) = bundled_file(&format!("{labels_stem}.gz"))?;
        let images = idx::parse_images(images, &images_path)?;
        let labels = idx::parse_labels(labels, &labels_path, CLASSES)?;
        (images_path, labels_path, images, labels)
    } else {
        check_dir(dir)?;
        let images_path = find_file(dir, &images_stem)?;
        let labels_path = find_file(dir, &labels_stem)?;
        let images = idx::read_images(&images_path)?;
        let labels = idx::read_labels(&labels_path, CLASSES)?;
        (images_path, labels_path, images, labels)
    };
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
    Ok(Dataset::from_idx(images, labels))
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

/// The IDX files of a data directory, in the order [`DataFiles`] lists them.
pub const FILE_STEMS: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// One data file as a checkpoint remembers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataFile {
    /// The file's name in its directory (`train-images-idx3-ubyte.gz`, ...).
    pub name: String,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// What identifies a data directory's contents: the SHA-256 of each of its four
/// files. A checkpoint keeps it so that a run resumes on the same data wherever the
/// data now lives, and refuses other data.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataFiles {
    /// The four files, in the order of [`FILE_STEMS`].
    pub files: Vec<DataFile>,
}

impl DataFiles {
    /// Digests the four files of `dir` (those [`find_file`] picks, as they are on
    /// disk: a `.gz` file is digested compressed).
    ///
    /// # Errors
    /// If a file is missing or cannot be read.
    pub fn of_dir(dir: &Path) -> Result<DataFiles> {
        use sha2::Digest;
        let mut files = Vec::with_capacity(FILE_STEMS.len());
        if is_bundled(dir) {
            // The compiled-in files, digested as the same files on disk would be.
            for stem in FILE_STEMS {
                let (path, bytes) = bundled_file(&format!("{stem}.gz"))?;
                files.push(DataFile {
                    name: path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    sha256: format!("{:x}", sha2::Sha256::digest(bytes)),
                });
            }
            return Ok(DataFiles { files });
        }
        for stem in FILE_STEMS {
            let path = find_file(dir, stem)?;
            let mut hasher = sha2::Sha256::new();
            let mut file = std::fs::File::open(&path)
                .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
            std::io::copy(&mut file, &mut hasher)
                .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
            files.push(DataFile {
                name: path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                sha256: format!("{:x}", hasher.finalize()),
            });
        }
        Ok(DataFiles { files })
    }

    /// The first file whose digest differs from `expected`'s, as a sentence naming it
    /// (`None` when all four agree).
    pub fn difference(&self, expected: &DataFiles) -> Option<String> {
        if self.files.len() != expected.files.len() {
            return Some("the data files differ".to_owned());
        }
        self.files
            .iter()
            .zip(&expected.files)
            .find(|(a, b)| a.sha256 != b.sha256)
            .map(|(a, b)| {
                format!(
                    "{} has SHA-256 {}…, the checkpoint's {} had {}…",
                    a.name,
                    &a.sha256[..12.min(a.sha256.len())],
                    b.name,
                    &b.sha256[..12.min(b.sha256.len())]
                )
            })
    }
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
