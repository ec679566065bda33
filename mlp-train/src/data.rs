//! Data sets for training: finding the four IDX files of an MNIST-format directory,
//! splitting the training file into train and validation parts, scaling pixels to
//! `[0, 1]`, and the bundled default data set; and tabular data from CSV files
//! ([`load_table_splits`]): any number of features and classes, the features
//! standardized with the training split's mean and standard deviation
//! ([`Normalization`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::idx;
use mlp_data::table::{self, Share};
pub use mlp_data::table::{LabelColumn, Table};

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

/// A labelled set of examples: images kept as their pixel bytes (the kernels convert
/// them to inputs, `pixel / 255` ([`pixel_value`]), once, as they read them), or the
/// rows of a CSV file as their normalized `f32` inputs ([`Dataset::values`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Inputs per example (784 for 28×28 images).
    pub features: usize,
    /// Image side lengths `(rows, cols)`; `(1, features)` for tabular data.
    pub shape: (usize, usize),
    /// `len × features` pixel bytes, row-major (empty for tabular data).
    pub pixels: Vec<u8>,
    /// Tabular data's inputs, normalized, `len × features`, row-major (`None` for
    /// images).
    pub values: Option<Vec<f32>>,
    /// One label per example.
    pub labels: Vec<u8>,
    /// The number of classes (10 for MNIST-format data).
    pub classes: usize,
    /// The classes' names, for CSV files whose labels are names.
    pub class_names: Option<Vec<String>>,
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

    /// True for tabular data (inputs as values), false for images.
    pub fn is_table(&self) -> bool {
        self.values.is_some()
    }

    /// The pixel bytes of image `index` (images only).
    pub fn image(&self, index: usize) -> &[u8] {
        &self.pixels[index * self.features..(index + 1) * self.features]
    }

    /// The inputs of example `index`: an image's pixels as `pixel / 255`, a row's
    /// normalized values.
    pub fn input(&self, index: usize) -> Vec<f32> {
        match &self.values {
            Some(v) => v[index * self.features..(index + 1) * self.features].to_vec(),
            None => self.image(index).iter().map(|&p| pixel_value(p)).collect(),
        }
    }

    /// Every example, as the kernels read them.
    pub fn inputs(&self) -> mlp_kernels::Inputs<'_> {
        match &self.values {
            Some(v) => mlp_kernels::Inputs::Values(v),
            None => mlp_kernels::Inputs::Pixels(&self.pixels),
        }
    }

    /// The examples `range` of this set as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let values = range.start * self.features..range.end * self.features;
        Dataset {
            features: self.features,
            shape: self.shape,
            pixels: match self.values {
                Some(_) => Vec::new(),
                None => self.pixels[values.clone()].to_vec(),
            },
            values: self.values.as_ref().map(|v| v[values].to_vec()),
            labels: self.labels[range].to_vec(),
            classes: self.classes,
            class_names: self.class_names.clone(),
        }
    }

    /// Builds a set from IDX images and labels (already checked to have equal counts).
    fn from_idx(images: idx::Images, labels: Vec<u8>) -> Dataset {
        Dataset {
            features: images.pixels_per_image(),
            shape: (images.rows, images.cols),
            pixels: images.pixels,
            values: None,
            labels,
            classes: CLASSES,
            class_names: None,
        }
    }

    /// A set of a table's rows, normalized with `normalization` (`None`: the values as
    /// read).
    pub fn from_table(table: &Table, normalization: Option<&Normalization>) -> Dataset {
        let mut values = table.values.clone();
        if let Some(normalization) = normalization {
            normalization.apply(&mut values);
        }
        Dataset {
            features: table.features(),
            shape: (1, table.features()),
            pixels: Vec::new(),
            values: Some(values),
            labels: table.labels.clone(),
            classes: table.classes.count(),
            class_names: table.classes.names().map(<[String]>::to_vec),
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
    if is_table_path(dir) {
        bail!(
            "{}: a CSV file; this command takes an MNIST-format directory of images",
            dir.display()
        );
    }
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

/// True when `path` names a CSV file (its extension is `csv`, in any case) rather
/// than an MNIST-format directory.
pub fn is_table_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// The default share of a single CSV file's rows kept apart as its test split.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// The default seed of the test and validation splits of a CSV file.
pub const DEFAULT_SPLIT_SEED: u64 = 1;

/// How a CSV training file is read and split: the settings of a run on tabular data
/// besides the file itself (which is [`crate::train::TrainConfig::data_dir`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableSource {
    /// The test file, with the training file's header; `None`: the test split is
    /// taken from the training file.
    #[serde(with = "crate::checkpoint::opt_path_bytes")]
    pub test: Option<PathBuf>,
    /// The label column.
    pub label: LabelColumn,
    /// Without a test file, the share of the rows that is the test split, in parts
    /// per million (the fraction rounded once; see [`Share::fraction`]).
    pub test_ppm: u32,
    /// The seed of the stratified test and validation splits
    /// ([`table::stratified_split`]); the validation split uses `split_seed + 1`.
    pub split_seed: u64,
}

impl Default for TableSource {
    fn default() -> Self {
        TableSource {
            test: None,
            label: LabelColumn::Last,
            test_ppm: 200_000,
            split_seed: DEFAULT_SPLIT_SEED,
        }
    }
}

/// Per-feature normalization of the inputs: `input[i] = (x[i] - offset[i]) *
/// scale[i]`, in `f32`, the difference rounded to `f32` and then the product (never
/// fused). For CSV data, `offset` is the training split's mean and `scale` the inverse
/// of its population standard deviation, both computed in `f64` and rounded once to
/// `f32`; a feature that does not vary (standard deviation 0, or so small that its
/// inverse is not a finite `f32`) gets scale 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// What is subtracted from each feature.
    pub offset: Vec<f32>,
    /// What each difference is multiplied by.
    pub scale: Vec<f32>,
}

impl Normalization {
    /// The standardization of `values` (`rows × features`, row-major): the mean and
    /// the population standard deviation of every column, summed in row order.
    pub fn standardize(values: &[f32], features: usize) -> Normalization {
        let rows = values.len().checked_div(features).unwrap_or(0);
        let mut mean = vec![0.0f64; features];
        for row in values.chunks_exact(features.max(1)) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        let n = rows.max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; features];
        for row in values.chunks_exact(features.max(1)) {
            for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
                let d = f64::from(v) - m;
                *s += d * d;
            }
        }
        let scale = var
            .iter()
            .map(|&s| {
                let inverse = (1.0 / (s / n).sqrt()) as f32;
                if inverse.is_finite() {
                    inverse
                } else {
                    1.0
                }
            })
            .collect();
        Normalization {
            offset: mean.iter().map(|&m| m as f32).collect(),
            scale,
        }
    }

    /// Normalizes `values` (`rows × features`) in place.
    pub fn apply(&self, values: &mut [f32]) {
        for row in values.chunks_exact_mut(self.offset.len().max(1)) {
            for ((v, &o), &s) in row.iter_mut().zip(&self.offset).zip(&self.scale) {
                // The core's arithmetic, which the model file stores and the device runs.
                *v = mlp_core::network::standardize(*v, o, s);
            }
        }
    }
}

/// What a CSV file's sets hold as their inputs ([`load_table_splits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableInputs {
    /// The values standardized with the training split's [`Normalization`]: what
    /// training runs on, and what a model whose file predates stored normalizations
    /// (format version 2) was trained on.
    Standardized,
    /// The values as read, for a model that applies its own stored input transform
    /// (format version 3) or an int8 model, which quantizes them itself.
    Raw,
}

/// The splits of a CSV file, and what they were made with.
#[derive(Clone, Debug)]
pub struct TableSplits {
    /// Train, validation and test sets, as [`TableInputs`] asked.
    pub splits: Splits,
    /// The normalization of every set: the training split's (the training file less
    /// its test rows).
    pub normalization: Normalization,
    /// The training file as read (every row, before any split).
    pub table: Table,
}

/// Reads a CSV training file (and its test file, if any) and splits it:
/// - **test**: the test file's rows, or a stratified share of the training file's
///   rows (`source.test_ppm`, seed `source.split_seed`);
/// - **validation**: `validation` rows (default: a sixth) of what is left, stratified,
///   seed `source.split_seed + 1`; 0 for none;
/// - **train**: the rest, the first `train_limit` of them when given (in file order).
///
/// The normalization ([`Normalization::standardize`]) is that of the training split
/// (train and validation rows, never the test rows), applied to every set when `inputs`
/// is [`TableInputs::Standardized`].
///
/// # Errors
/// Any problem of the files ([`table::TableError`]); a split that leaves no
/// training rows.
pub fn load_table_splits(
    path: &Path,
    source: &TableSource,
    validation: Option<usize>,
    train_limit: Option<usize>,
    inputs: TableInputs,
) -> Result<TableSplits> {
    let table = table::read_training(path, &source.label, 2)?;
    let classes = table.classes.count();
    let (kept, test) = match &source.test {
        Some(test) => ((0..table.len()).collect(), table::read_test(test, &table)?),
        None => {
            let (kept, taken) = table::stratified_split(
                &table.labels,
                classes,
                Share::PartsPerMillion(source.test_ppm),
                source.split_seed,
            );
            if taken.is_empty() {
                bail!(
                    "{}: a test fraction of {} of {} rows takes no row; give a larger --test-fraction or a --test file",
                    path.display(),
                    f64::from(source.test_ppm) / 1e6,
                    table.len()
                );
            }
            (kept, table.select(&taken))
        }
    };
    let learn = table.select(&kept);
    let v = validation.unwrap_or(learn.len() / 6);
    if v >= learn.len() {
        bail!(
            "{}: a validation split of {v} rows leaves no training rows (the training split has {})",
            path.display(),
            learn.len()
        );
    }
    let (train_rows, val_rows) = if v == 0 {
        ((0..learn.len()).collect(), Vec::new())
    } else {
        table::stratified_split(
            &learn.labels,
            classes,
            Share::Rows(v),
            source.split_seed.wrapping_add(1),
        )
    };
    let mut train_rows = train_rows;
    if let Some(limit) = train_limit {
        if limit == 0 {
            bail!("{}: --limit 0 leaves no training rows", path.display());
        }
        train_rows.truncate(limit);
    }
    let normalization = Normalization::standardize(&learn.values, learn.features());
    let applied = (inputs == TableInputs::Standardized).then_some(&normalization);
    Ok(TableSplits {
        splits: Splits {
            train: Dataset::from_table(&learn.select(&train_rows), applied),
            validation: Dataset::from_table(&learn.select(&val_rows), applied),
            test: Dataset::from_table(&test, applied),
        },
        normalization,
        table,
    })
}

/// One split of a CSV file, as [`load_table_splits`] makes it.
///
/// # Errors
/// As [`load_table_splits`].
pub fn load_table_split(
    path: &Path,
    source: &TableSource,
    split: Split,
    validation: Option<usize>,
    inputs: TableInputs,
) -> Result<Dataset> {
    let mut s = load_table_splits(path, source, validation, None, inputs)?.splits;
    Ok(match split {
        Split::Train => s.train,
        Split::Validation => std::mem::take(&mut s.validation),
        Split::Test => s.test,
    })
}

impl DataFiles {
    /// Digests a CSV training file and its test file, if any.
    ///
    /// # Errors
    /// If a file cannot be read.
    pub fn of_table(path: &Path, source: &TableSource) -> Result<DataFiles> {
        let mut files = vec![digest_file(path)?];
        if let Some(test) = &source.test {
            files.push(digest_file(test)?);
        }
        Ok(DataFiles { files })
    }
}

/// The SHA-256 of one file, under its file name.
fn digest_file(path: &Path) -> Result<DataFile> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    std::io::copy(&mut file, &mut hasher)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok(DataFile {
        name: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        sha256: format!("{:x}", hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardization_is_the_training_splits() {
        // Column 0 holds 1 and 3: mean 2, population standard deviation 1.
        let values = [1.0f32, 5.0, 3.0, 5.0];
        let n = Normalization::standardize(&values, 2);
        assert_eq!(n.offset, [2.0, 5.0]);
        // Column 1 never varies: scale 1, so it becomes 0.
        assert_eq!(n.scale, [1.0, 1.0]);
        let mut v = values;
        n.apply(&mut v);
        assert_eq!(v, [-1.0, 0.0, 1.0, 0.0]);
        let n = Normalization::standardize(&[0.0, 1.0, 2.0, 3.0], 1);
        assert_eq!(n.offset, [1.5]);
        assert_eq!(n.scale, [(1.0 / 1.25f64.sqrt()) as f32]);
    }
}
