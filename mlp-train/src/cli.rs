//! The command line: argument definitions (clap) and what each command does. With no
//! command, `mlp-train` trains with the walkthrough's defaults on the bundled digits.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::data::{self, Split};
use crate::optim::{OptimizerKind, Schedule};
use crate::output::{out, outln};
use crate::train::{self, plural, Compute, EarlyStopping, Monitor, RunOptions, TrainConfig};
use mlp_kernels::{Isa, Kernels, Unsupported};

/// Trains small MLPs on MNIST-format data or CSV tables and inspects, evaluates and runs
/// the models.
#[derive(Debug, Parser)]
#[command(name = "mlp-train", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: train).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Training options, when no command is given.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// The commands.
// Parsed once per process: the size of `train`'s options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network (the default command).
    Train(TrainArgs),
    /// Test accuracy, per-class precision and recall, and the confusion matrix.
    Evaluate(EvaluateArgs),
    /// Classify images of digits (PNG or PGM), or the rows of a CSV file (--rows).
    Predict(PredictArgs),
    /// Show a few images of a data set with their labels.
    Show(ShowArgs),
    /// Layer sizes, parameters, file size, device flash and RAM, MACs.
    Inspect(InspectArgs),
    /// Download the full MNIST files into a cache directory, checking SHA-256 sums.
    Download(DownloadArgs),
    /// Quantize a trained f32 model to int8 (integer-only inference), calibrated on
    /// training images.
    Quantize(QuantizeArgs),
    /// Time the walkthrough's training, single-image inference and batched evaluation
    /// with the fast kernels, against the NumPy reference in the same run with --numpy.
    Bench(BenchArgs),
    /// Split a CSV file into train.csv and test.csv with the stratified split `train`
    /// makes (so that other tools can read the same split).
    Split(SplitArgs),
    /// Talk to a board running the firmware over the serial protocol: a serial port,
    /// a TCP socket, or QEMU started here.
    Board(crate::board::BoardArgs),
}

/// How the products are computed (`train` and `evaluate`).
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// Kernels: auto (the fastest instruction set this CPU runs), or one of portable,
    /// avx2, avx512, neon (every one gives the same bits), or core (the device's
    /// arithmetic, bit for bit: products rounded before they are added).
    #[arg(long, value_name = "KERNELS", default_value = "auto", value_parser = parse_kernels)]
    pub kernels: Kernels,
    /// Threads for the training steps and for evaluating data sets [default: the
    /// number of cores, at most 2]. Neither the model's bytes nor an evaluation
    /// depend on it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

/// Parses `--kernels`: `auto`, `core`, or an instruction set this CPU runs.
pub fn parse_kernels(text: &str) -> Result<Kernels, String> {
    let kernels = match text {
        "auto" => return Ok(Kernels::best()),
        "core" => return Ok(Kernels::Core),
        name => Kernels::Fast(
            name.parse::<Isa>()
                .map_err(|e| format!("{e}, auto or core"))?,
        ),
    };
    match kernels {
        Kernels::Fast(isa) if !isa.is_supported() => Err(Unsupported(isa).to_string()),
        _ => Ok(kernels),
    }
}

impl ComputeArgs {
    /// The kernels and threads these flags describe.
    pub fn compute(&self) -> Compute {
        Compute {
            kernels: self.kernels,
            threads: self
                .threads
                .map_or_else(crate::train::default_threads, usize::from),
        }
    }
}

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// MNIST-format data directory (the walkthrough's: Fashion-MNIST).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/usr/share/datasets/fashion-mnist"
    )]
    pub data: PathBuf,
    /// The NumPy reference (bench/numpy_mlp.py) to time in the same run.
    #[arg(long, value_name = "SCRIPT")]
    pub numpy: Option<PathBuf>,
    /// Python interpreter for the NumPy reference.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Timed rounds of each measurement (medians are reported).
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Images per single-image inference round.
    #[arg(long, default_value_t = 2000)]
    pub infer: usize,
    /// Threads for the training steps and the batched evaluation (a 1-thread epoch
    /// is timed alongside) [default: as `train`, the number of cores, at most 2].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also time one epoch with the core's arithmetic.
    #[arg(long)]
    pub core_epoch: bool,
    /// The kernels timed: auto, portable, avx2, avx512 or neon.
    #[arg(long, value_name = "KERNELS", default_value = "auto", value_parser = parse_kernels)]
    pub kernels: Kernels,
    /// Also time NumPy with one BLAS thread (OPENBLAS_NUM_THREADS=1).
    #[arg(long)]
    pub numpy_single_thread: bool,
}

/// How a CSV file is read and split (`train`, `evaluate`, `predict --rows`): the same
/// flags give the same splits and the same normalization.
#[derive(Debug, Args, Default)]
pub struct TableArgs {
    /// CSV data: the test file, with the training file's header [default: a
    /// stratified --test-fraction of the training file's rows].
    #[arg(long, value_name = "FILE", conflicts_with = "test_fraction")]
    pub test: Option<PathBuf>,
    /// CSV data: the label column, by name or by number from 1 [default: the last].
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    /// CSV data without --test: the share of the rows kept apart, class by class, as
    /// the test split, above 0 and below 1 [default: 0.2].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub test_fraction: Option<f64>,
    /// CSV data: the seed of the stratified test and validation splits (not the
    /// training seed, so that --seed changes the run, not its test rows) [default: 1].
    #[arg(long, value_name = "N", value_parser = parse_whole_u64, allow_negative_numbers = true)]
    pub split_seed: Option<u64>,
}

impl TableArgs {
    /// True when any of these flags was given.
    fn given(&self) -> bool {
        self.test.is_some()
            || self.label.is_some()
            || self.test_fraction.is_some()
            || self.split_seed.is_some()
    }

    /// `base` (a checkpoint's, or the defaults) with these flags applied, for the data
    /// at `data`: `None` for an MNIST-format directory, where these flags are refused.
    ///
    /// # Errors
    /// A flag given for data that is not a CSV file; a test fraction out of range.
    pub fn source(
        &self,
        data: &Path,
        base: Option<data::TableSource>,
    ) -> Result<Option<data::TableSource>> {
        if !data::is_table_path(data) {
            if self.given() {
                bail!("--test, --label, --test-fraction and --split-seed are for CSV data (--data FILE.csv); {} is not a .csv file", data.display());
            }
            return Ok(None);
        }
        let mut t = base.unwrap_or_default();
        if let Some(test) = &self.test {
            t.test = Some(test.clone());
        }
        if let Some(label) = &self.label {
            t.label = data::LabelColumn::Named(label.clone());
        }
        if let Some(f) = self.test_fraction {
            match mlp_data::table::Share::fraction(f) {
                Some(mlp_data::table::Share::PartsPerMillion(ppm)) => {
                    t.test = None;
                    t.test_ppm = ppm;
                }
                _ => bail!("--test-fraction must be above 0 and below 1, got {f}"),
            }
        }
        set(&mut t.split_seed, self.split_seed);
        Ok(Some(t))
    }
}

/// Options of `train`. Settings left out take their defaults on a new run and the
/// checkpoint's values with `--resume`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// MNIST-format data directory, or a CSV file (FILE.csv: a header row, numeric
    /// feature columns and a label column) [default: the bundled digits, compiled into
    /// the program].
    #[arg(long, value_name = "DIR|FILE.csv")]
    pub data: Option<PathBuf>,
    /// How a CSV file is read and split.
    #[command(flatten)]
    pub table: TableArgs,
    /// Validation images from the end of the training file; for CSV data, rows taken
    /// class by class from the training split, 0 for none [default: a sixth].
    #[arg(long, value_name = "N", value_parser = parse_whole, allow_negative_numbers = true)]
    pub validation: Option<usize>,
    /// Train on only the first N images of the training part.
    #[arg(long, value_name = "N", value_parser = parse_whole, allow_negative_numbers = true)]
    pub limit: Option<usize>,
    /// Hidden layer widths, comma-separated, or none for no hidden layer
    /// [default: 100,200].
    #[arg(long, value_name = "WIDTHS", value_parser = crate::model::parse_hidden)]
    pub hidden: Option<std::vec::Vec<usize>>,
    /// Passes over the training data [default: 25]. With --resume: the new total.
    #[arg(long, value_parser = parse_whole, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Images per minibatch [default: 32].
    #[arg(long, value_parser = parse_whole, allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Base learning rate [default: 0.1 for sgd, momentum and nesterov; 0.001 for
    /// adam]. With --resume: the rate from the next epoch on.
    #[arg(long, visible_alias = "lr", allow_negative_numbers = true)]
    pub learning_rate: Option<f32>,
    /// Random seed (weights initialisation and shuffling) [default: 1].
    #[arg(long, value_parser = parse_whole_u64, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Optimizer [default: sgd].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Momentum for momentum and nesterov, in [0, 1) [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// Adam's beta1, in [0, 1) [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub beta1: Option<f32>,
    /// Adam's beta2, in [0, 1) [default: 0.999].
    #[arg(long, allow_negative_numbers = true)]
    pub beta2: Option<f32>,
    /// Weight decay, at least 0 (L2 for SGD and momentum, decoupled for Adam)
    /// [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Step schedule: epochs between drops, at least 1 [default: 10].
    #[arg(long, value_parser = parse_whole, allow_negative_numbers = true)]
    pub step_every: Option<usize>,
    /// Step schedule: factor per drop, above 0 and at most 1 [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f32>,
    /// Cosine schedule: final learning rate, from 0 to the learning rate [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub min_lr: Option<f32>,
    /// Early stopping: stop after this many epochs without improvement and keep the
    /// best epoch's weights.
    #[arg(long, value_name = "EPOCHS", value_parser = parse_whole, allow_negative_numbers = true)]
    pub patience: Option<usize>,
    /// What early stopping watches [default: val-accuracy].
    #[arg(long, value_enum)]
    pub monitor: Option<Monitor>,
    /// Augment the training images: each epoch, every image is shifted, rotated and
    /// scaled at random (drawn from the seed, the epoch and the image, so the same seed
    /// gives the same model). Alone: shift=2,rotate=10,scale=0.1 (for digits); or a
    /// list of shift=PIXELS, rotate=DEGREES, scale=FRACTION and flip (mirror half the
    /// images: for clothes, not digits).
    #[arg(
        long,
        value_name = "SPEC",
        num_args = 0..=1,
        default_missing_value = "default",
        value_parser = crate::augment::Augment::parse
    )]
    pub augment: Option<crate::augment::Augment>,
    /// Output directory [default: runs/NAME in the working directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run name for the default output directory [default: the data directory's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Continue from a checkpoint with its settings. --epochs (a new total) and
    /// --learning-rate (from the next epoch on) may change them; --data may name a copy
    /// of the same data (checked by SHA-256); any other training flag must match the
    /// checkpoint. Outputs go next to it unless --out is given.
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// Stop after this many epochs, as if interrupted (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
    /// Print only the final result.
    #[arg(long, short)]
    pub quiet: bool,
    /// Kernels and threads.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// Parses a count such as `--epochs`: a whole number, with a message that says so for
/// `-1` or `x` (whether 0 is allowed is checked with the other settings).
pub fn parse_whole(text: &str) -> Result<usize, String> {
    parse_whole_u64(text).and_then(|v| usize::try_from(v).map_err(|_| format!("{v} is too large")))
}

/// [`parse_whole`] for 64-bit values (`--seed`).
pub fn parse_whole_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    match t.parse::<u64>() {
        Ok(v) => Ok(v),
        Err(_) if t.parse::<i128>().is_ok() => {
            Err(format!("must be a positive whole number, got {t}"))
        }
        Err(_) => Err(format!("'{t}' is not a whole number")),
    }
}

/// Learning-rate schedules selectable on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    /// Constant rate.
    Constant,
    /// Multiply by --gamma every --step-every epochs.
    Step,
    /// Cosine annealing down to --min-lr.
    Cosine,
}

/// Options of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Data directory, or the CSV training file (with the flags the model was trained
    /// with: they give the same splits and normalization) [default: the bundled digits].
    #[arg(long, value_name = "DIR|FILE.csv")]
    pub data: Option<PathBuf>,
    /// How a CSV file is read and split.
    #[command(flatten)]
    pub table: TableArgs,
    /// Which part to evaluate on.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Validation size, as for training.
    #[arg(long, value_name = "N")]
    pub validation: Option<usize>,
    /// Print the result as JSON (accuracy, loss, per-class precision and recall,
    /// confusion matrix) instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Kernels and threads.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// Options of `predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Images (PNG or PGM) of single digits.
    #[arg(required_unless_present = "rows", conflicts_with = "rows")]
    pub images: Vec<PathBuf>,
    /// Classify the rows of this CSV file instead: the training file's header, with or
    /// without its label column (needs --data).
    #[arg(long, value_name = "FILE.csv", requires = "data")]
    pub rows: Option<PathBuf>,
    /// With --rows: the CSV training file and the flags the model was trained with,
    /// whose training split gives the inputs' normalization.
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// How the CSV training file is read and split.
    #[command(flatten)]
    pub table: TableArgs,
    /// Also write the 28×28 image the network saw for each input, as
    /// `<input file name>.input.png` in this directory.
    #[arg(long, value_name = "DIR")]
    pub show_input: Option<PathBuf>,
    /// Print one JSON object per image (file, class, class name, every raw logit as
    /// the shortest decimal that reads back to the same f32, and its bits) instead of
    /// the text line.
    #[arg(long, conflicts_with = "logits")]
    pub json: bool,
    /// Print every raw logit (the shortest decimal that reads back to the same f32;
    /// an int8 model's int32 logits as integers) instead of the probabilities.
    #[arg(long)]
    pub logits: bool,
}

/// Options of `split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The CSV file to split.
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// How the file is read and split (--label, --test-fraction, --split-seed).
    #[command(flatten)]
    pub table: TableArgs,
    /// Directory for train.csv and test.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Options of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Data directory [default: the bundled digits].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which part to show.
    #[arg(long, value_enum, default_value_t = Split::Train)]
    pub split: Split,
    /// How many images.
    #[arg(long, default_value_t = 4)]
    pub count: usize,
    /// Index of the first image.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// Also write the images as a PNG grid here.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

/// Options of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model file.
    pub model: PathBuf,
}

/// Options of `quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The trained f32 model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Data directory whose training images calibrate the scales, or the CSV file the
    /// model was trained on (its training split's rows) [default: the bundled digits].
    #[arg(long, value_name = "DIR|FILE.csv")]
    pub data: Option<PathBuf>,
    /// A CSV file's test split and label column, as given to `train`.
    #[command(flatten)]
    pub table: TableArgs,
    /// Training images (or CSV rows) used for calibration.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub calibration: usize,
    /// Where to write the int8 model (default: next to the model, NAME-int8.mlp).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Options of `download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// URL prefix the four files are fetched from.
    #[arg(long, env = "MLP_MNIST_MIRROR", default_value = crate::download::DEFAULT_MIRROR)]
    pub mirror: String,
    /// Cache directory [default: $MLP_DATA_DIR/mnist-full, or data/mnist-full in the
    /// working directory when MLP_DATA_DIR is not set].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Expect another SHA-256 for a file, as NAME=HEX (for other mirrors and tests).
    #[arg(long, value_name = "NAME=HEX")]
    pub sha256: Vec<String>,
}

impl TrainArgs {
    /// The training configuration these flags describe: the defaults (the
    /// walkthrough's, with the optimizer's default learning rate) overridden by every
    /// flag given.
    ///
    /// # Errors
    /// A flag that the chosen settings do not use (`--gamma` without the step schedule,
    /// `--momentum` with adam, ...): it would be ignored.
    pub fn config(&self) -> Result<TrainConfig> {
        let kind = self.optimizer.unwrap_or(OptimizerKind::Sgd);
        let defaults = TrainConfig {
            learning_rate: kind.default_learning_rate(),
            schedule: match self.schedule.unwrap_or(ScheduleKind::Constant) {
                ScheduleKind::Constant => Schedule::Constant,
                ScheduleKind::Step => Schedule::Step {
                    every: 10,
                    gamma: 0.1,
                },
                ScheduleKind::Cosine => Schedule::Cosine { min_lr: 0.0 },
            },
            ..TrainConfig::default()
        };
        self.apply(defaults)
    }

    /// `base` with every flag given applied to it: the defaults of a new run, or a
    /// checkpoint's settings on resume (which [`crate::train::check_resume`] then
    /// compares).
    ///
    /// # Errors
    /// As [`TrainArgs::config`].
    pub fn apply(&self, base: TrainConfig) -> Result<TrainConfig> {
        let mut c = base;
        if let Some(d) = &self.data {
            c.data_dir = d.clone();
        }
        c.table = self.table.source(&c.data_dir, c.table.take())?;
        if self.validation.is_some() {
            c.validation = self.validation;
        }
        if self.limit.is_some() {
            c.train_limit = self.limit;
        }
        if let Some(h) = &self.hidden {
            c.hidden = h.clone();
        }
        set(&mut c.epochs, self.epochs);
        set(&mut c.batch_size, self.batch_size);
        set(&mut c.learning_rate, self.learning_rate);
        set(&mut c.seed, self.seed);
        let o = &mut c.optimizer;
        set(&mut o.kind, self.optimizer);
        set(&mut o.momentum, self.momentum);
        set(&mut o.beta1, self.beta1);
        set(&mut o.beta2, self.beta2);
        set(&mut o.weight_decay, self.weight_decay);
        let kind = o.kind;
        if let Some(s) = self.schedule {
            let same = matches!(
                (s, c.schedule),
                (ScheduleKind::Constant, Schedule::Constant)
                    | (ScheduleKind::Step, Schedule::Step { .. })
                    | (ScheduleKind::Cosine, Schedule::Cosine { .. })
            );
            if !same {
                c.schedule = match s {
                    ScheduleKind::Constant => Schedule::Constant,
                    ScheduleKind::Step => Schedule::Step {
                        every: 10,
                        gamma: 0.1,
                    },
                    ScheduleKind::Cosine => Schedule::Cosine { min_lr: 0.0 },
                };
            }
        }
        match &mut c.schedule {
            Schedule::Step { every, gamma } => {
                set(every, self.step_every);
                set(gamma, self.gamma);
            }
            Schedule::Cosine { min_lr } => set(min_lr, self.min_lr),
            Schedule::Constant => {}
        }
        if self.augment.is_some() {
            c.augment = self.augment;
        }
        if let Some(patience) = self.patience {
            let monitor = c.early_stopping.map_or(Monitor::ValAccuracy, |e| e.monitor);
            c.early_stopping = Some(EarlyStopping { monitor, patience });
        }
        if let (Some(m), Some(e)) = (self.monitor, &mut c.early_stopping) {
            e.monitor = m;
        }
        // A flag the settings do not use would be ignored: say so instead.
        let unused = |flag: &str, given: bool, used: bool, by: &str| {
            if given && !used {
                bail!("{flag} is used by {by} only");
            }
            Ok(())
        };
        use OptimizerKind::{Adam, Momentum, Nesterov};
        unused(
            "--momentum",
            self.momentum.is_some(),
            matches!(kind, Momentum | Nesterov),
            "--optimizer momentum and nesterov",
        )?;
        for (flag, given) in [("--beta1", self.beta1), ("--beta2", self.beta2)] {
            unused(flag, given.is_some(), kind == Adam, "--optimizer adam")?;
        }
        let step = matches!(c.schedule, Schedule::Step { .. });
        unused(
            "--step-every",
            self.step_every.is_some(),
            step,
            "--schedule step",
        )?;
        unused("--gamma", self.gamma.is_some(), step, "--schedule step")?;
        let cosine = matches!(c.schedule, Schedule::Cosine { .. });
        unused(
            "--min-lr",
            self.min_lr.is_some(),
            cosine,
            "--schedule cosine",
        )?;
        unused(
            "--monitor",
            self.monitor.is_some(),
            c.early_stopping.is_some(),
            "early stopping (--patience)",
        )?;
        Ok(c)
    }

    fn out_dir(&self, config: &TrainConfig) -> PathBuf {
        if let Some(out) = &self.out {
            return out.clone();
        }
        if let Some(ck) = &self.resume {
            if let Some(parent) = ck.parent() {
                return if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                };
            }
        }
        let name = self.name.clone().unwrap_or_else(|| {
            if data::is_bundled(&config.data_dir) {
                return data::BUNDLED_NAME.to_owned();
            }
            if config.table.is_some() {
                // data/wine/train.csv: "wine"; sensors.csv: "sensors".
                let stem = config.data_dir.file_stem().unwrap_or_default();
                let parent = config.data_dir.parent().and_then(Path::file_name);
                return match parent {
                    Some(p) if stem.eq_ignore_ascii_case("train") => p,
                    _ => stem,
                }
                .to_string_lossy()
                .into_owned();
            }
            config
                .data_dir
                .file_name()
                .map_or("run".to_owned(), |n| n.to_string_lossy().into_owned())
        });
        Path::new("runs").join(name)
    }
}

/// Where `download` puts full MNIST unless `--dir` says: `$MLP_DATA_DIR/mnist-full`,
/// else `data/mnist-full` in the working directory (never a path fixed at build time).
pub fn default_download_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("data"), PathBuf::from)
        .join("mnist-full")
}

/// The environment variable naming the directory `download` caches data sets in.
pub const DATA_DIR_ENV: &str = "MLP_DATA_DIR";

/// `*field = value` when the flag was given.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn data_dir(d: &Option<PathBuf>) -> PathBuf {
    d.clone().unwrap_or_else(data::bundled_data_dir)
}

/// An error and its causes on one line, each said once: a cause whose text an outer
/// message already includes (an I/O error quoted by the message that wraps it) is
/// not repeated.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message.replace('\n', " ")
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train_command(&cli.train),
        Some(Command::Train(args)) => train_command(&args),
        Some(Command::Evaluate(args)) => {
            // The model is read once (it may be a FIFO), then the data.
            let model = crate::quantize::AnyModel::load(&args.model)?;
            let names = model.class_names();
            let dir = data_dir(&args.data);
            let mut data = match args.table.source(&dir, None)? {
                Some(source) => {
                    let inputs = model.table_inputs(&args.model)?;
                    data::load_table_split(&dir, &source, args.split, args.validation, inputs)?
                }
                None => data::load_split(&dir, args.split, args.validation)?,
            };
            let e = match model {
                crate::quantize::AnyModel::Int8(model) => {
                    model.check_fits(&args.model, data.features, data.classes)?;
                    crate::quantize::evaluate(&model, &data)
                }
                crate::quantize::AnyModel::F32(model) if data.is_table() => {
                    model.check_fits(&args.model, data.features, data.classes)?;
                    if model.input != crate::model::Input::Pixels {
                        // Raw values: the model's own stored transform makes its inputs.
                        let raw = data.values.take().unwrap_or_default();
                        data.values = Some(model.inputs_of(&raw));
                    }
                    args.compute.compute().evaluate(&model, &data)?
                }
                crate::quantize::AnyModel::F32(model) => {
                    model.check_fits(&args.model, data.features, data.classes)?;
                    args.compute.compute().evaluate(&model, &data)?
                }
            };
            // The model's own names first; a CSV file's named labels otherwise.
            let names = names.or_else(|| data.class_names.clone());
            print_evaluation(&args, &e, names.as_deref());
            Ok(())
        }
        Some(Command::Predict(args)) => predict(&args),
        Some(Command::Quantize(args)) => quantize_command(&args),
        Some(Command::Bench(args)) => crate::bench::run(&crate::bench::BenchOptions {
            data: args.data,
            numpy: args.numpy,
            python: args.python,
            rounds: args.rounds,
            infer: args.infer,
            // 0 is refused by `bench::run`, not quietly raised to 1.
            threads: args.threads.unwrap_or_else(crate::train::default_threads),
            core_epoch: args.core_epoch,
            kernels: args.kernels,
            numpy_single_thread: args.numpy_single_thread,
        }),
        Some(Command::Show(args)) => show(&args),
        Some(Command::Split(args)) => split_command(&args),
        Some(Command::Board(args)) => crate::board::run(&args),
        Some(Command::Inspect(args)) => {
            out!("{}", crate::inspect::inspect(&args.model)?.report());
            Ok(())
        }
        Some(Command::Download(args)) => {
            let dir = args.dir.clone().unwrap_or_else(default_download_dir);
            let mut files = crate::download::mnist_files();
            crate::download::apply_overrides(&mut files, &args.sha256)?;
            crate::download::download_all(&args.mirror, &dir, &files, true)?;
            outln!("train with: mlp-train train --data {}", dir.display());
            Ok(())
        }
    }
}

fn print_evaluation(args: &EvaluateArgs, e: &crate::metrics::Evaluation, names: Option<&[String]>) {
    if args.json {
        let split = match args.split {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        };
        let value =
            crate::summary::evaluation_json(e, &args.model, &data_dir(&args.data), split, names);
        outln!("{value:#}");
    } else {
        let names: Option<Vec<&str>> = names.map(|n| n.iter().map(String::as_str).collect());
        out!("{}", e.report(names.as_deref()));
    }
}

fn train_command(args: &TrainArgs) -> Result<()> {
    let config = match &args.resume {
        Some(ck) => {
            if args.name.is_some() {
                bail!("--name picks a new run's output directory; with --resume use --out");
            }
            // It is read twice and replaced by the next checkpoint: a FIFO or a device
            // would hang or be lost.
            if std::fs::metadata(ck).is_ok_and(|m| !m.is_file()) {
                bail!(
                    "{}: a checkpoint to resume from must be a regular file",
                    ck.display()
                );
            }
            args.apply(crate::checkpoint::Checkpoint::load(ck)?.config)?
        }
        None => args.config()?,
    };
    // Before the banner: a refused setting is the only line the user sees.
    train::check_config(&config)?;
    let out_dir = args.out_dir(&config);
    let options = RunOptions {
        out_dir: out_dir.clone(),
        resume: args.resume.clone(),
        stop_after: args.stop_after,
        verbose: !args.quiet,
    };
    crate::interrupt::install()?;
    if !args.quiet {
        match &args.resume {
            Some(ck) => outln!("resuming from {}", ck.display()),
            None => {
                let lr_note = if args.learning_rate.is_none() {
                    format!(" ({}'s default)", config.optimizer.kind)
                } else {
                    String::new()
                };
                outln!(
                    "training hidden layers {} for {}, batch {}",
                    crate::model::hidden_text(&config.hidden),
                    plural(config.epochs, "epoch"),
                    config.batch_size,
                );
                outln!(
                    "optimizer {}, learning rate {}{lr_note}",
                    config.optimizer.kind,
                    config.learning_rate,
                );
                outln!("data: {}", data::describe(&config.data_dir));
                outln!("outputs: {}", out_dir.display());
                if config.validation == Some(0) {
                    outln!("each epoch: loss and accuracy (training; no validation set), learning rate, time");
                } else {
                    outln!(
                        "each epoch: loss and accuracy (training/validation), learning rate, time"
                    );
                }
            }
        }
    }
    let compute = args.compute.compute();
    let report = match train::run_with(config, &options, compute) {
        Ok(report) => report,
        Err(e) if e.is::<train::Interrupted>() => {
            return Err(Exit::interrupted(format!(
                "{e}, before any epoch finished; nothing was saved"
            )))
        }
        Err(e) => return Err(e),
    };
    if let (Some(epoch), Some(model)) = (report.interrupted, &report.model_path) {
        let dir = model.parent().unwrap_or(Path::new("."));
        let kept = match report.best_epoch {
            Some(best) => format!("epoch {best}, the best"),
            None => format!("epoch {}", report.history.len()),
        };
        return Err(Exit::interrupted(format!(
            "interrupted during epoch {epoch} of {}; wrote {} ({kept}), {}, {} and {} (epoch {}) in {}; continue with: {}",
            report.config.epochs,
            train::files::MODEL,
            train::files::METRICS,
            train::files::CURVES,
            train::files::CHECKPOINT,
            report.history.len(),
            dir.display(),
            resume_command(&dir.join(train::files::CHECKPOINT), compute.kernels)
        )));
    }
    if let Err(e) = crate::output::check() {
        // The model matters more than the log: training went on without output.
        bail!(
            "{e:#}; training went on and wrote its files in {}",
            out_dir.display()
        );
    }
    match (&report.test, &report.model_path) {
        (Some(test), Some(model)) => {
            if let Some(best) = report.best_epoch {
                outln!("kept the weights of epoch {best} (best validation)");
            }
            outln!(
                "test accuracy: {:.2}% ({}/{})",
                100.0 * test.accuracy,
                test.correct(),
                test.count
            );
            outln!(
                "wrote {}, {}, {}, {} in {} ({:.1} s)",
                train::files::MODEL,
                train::files::METRICS,
                train::files::CURVES,
                train::files::SUMMARY,
                model.parent().unwrap_or(Path::new(".")).display(),
                report.seconds
            );
        }
        _ => outln!(
            "stopped after epoch {} as asked; continue with --resume {}",
            report.history.len(),
            out_dir.join(train::files::CHECKPOINT).display()
        ),
    }
    Ok(())
}

/// An error that ends the program with another exit code than 1 (`main` prints
/// its message as any error's).
#[derive(Debug)]
pub struct Exit {
    /// The process's exit code.
    pub code: i32,
    /// The one-line message.
    pub message: String,
}

impl Exit {
    /// An interruption by Ctrl-C: exit code 130.
    pub fn interrupted(message: String) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: crate::interrupt::EXIT_CODE,
            message,
        })
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit code for an error `run` returned: an [`Exit`]'s, else 1.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<Exit>().map_or(1, |x| x.code)
}

/// The command line that continues from `checkpoint`, as this program was started
/// (a shell word quoted when it needs it).
fn resume_command(checkpoint: &Path, kernels: Kernels) -> String {
    let program = std::env::args_os()
        .next()
        .map_or("mlp-train".to_owned(), |p| p.to_string_lossy().into_owned());
    let mut words = vec![
        program,
        "train".to_owned(),
        "--resume".to_owned(),
        checkpoint.display().to_string(),
    ];
    if kernels == Kernels::Core {
        words.extend(["--kernels".to_owned(), "core".to_owned()]);
    }
    let quote = |w: String| {
        let plain = !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
        if plain {
            w
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    words.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

fn quantize_command(args: &QuantizeArgs) -> Result<()> {
    if args.calibration == 0 {
        bail!("--calibration 0: at least one training image is needed to calibrate the scales");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .model
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        args.model.with_file_name(format!("{stem}-int8.mlp"))
    });
    let dir = data_dir(&args.data);
    let source = args.table.source(&dir, None)?;
    let mut inputs = vec![args.model.clone()];
    inputs.extend(data::data_files(&dir));
    if let Some(source) = &source {
        inputs.push(dir.clone());
        inputs.extend(source.test.clone());
    }
    crate::fsio::refuse_overwriting_input(&out, &inputs)?;
    let model = crate::model::Mlp::load(&args.model)?;
    let (bytes, keep, what) = match &source {
        Some(source) => {
            if model.input == crate::model::Input::Pixels {
                bail!(
                    "{}: this model does not store its input standardization (it was saved before models did, or it is a model of images); train it again on {} to quantize it",
                    args.model.display(),
                    dir.display()
                );
            }
            let calibration =
                data::load_table_split(&dir, source, Split::Train, None, data::TableInputs::Raw)?;
            model.check_fits(&args.model, calibration.features, calibration.classes)?;
            let keep = args.calibration.clamp(1, calibration.len());
            let raw = calibration.values.unwrap_or_default();
            let raw = &raw[..(keep * calibration.features).min(raw.len())];
            let bytes = crate::quantize::quantize_inputs(&model, &model.inputs_of(raw));
            (bytes, keep, "training rows")
        }
        None => {
            let mut calibration = data::load_split(&dir, Split::Train, None)?;
            model.check_fits(&args.model, calibration.features, data::CLASSES)?;
            let keep = args.calibration.clamp(1, calibration.len());
            calibration.pixels.truncate(keep * calibration.features);
            calibration.labels.truncate(keep);
            let bytes = crate::quantize::quantize(&model, &calibration);
            (bytes, keep, "training images")
        }
    };
    let bytes = bytes.with_context(|| format!("{}: cannot quantize", args.model.display()))?;
    crate::fsio::write_bytes_atomic(&out, &bytes)
        .with_context(|| format!("{}: cannot write model file", out.display()))?;
    let f32_bytes = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    outln!(
        "wrote {} ({} bytes, {:.1}% of the f32 model's {f32_bytes}), calibrated on {keep} {what}",
        out.display(),
        bytes.len(),
        100.0 * bytes.len() as f64 / f32_bytes.max(1) as f64
    );
    Ok(())
}

fn predict(args: &PredictArgs) -> Result<()> {
    if let Some(rows) = &args.rows {
        return predict_rows(args, rows);
    }
    if args.data.is_some() || args.table.given() {
        bail!("--data, --test, --label, --test-fraction and --split-seed go with --rows");
    }
    let model = match crate::quantize::AnyModel::load(&args.model)? {
        crate::quantize::AnyModel::Int8(model) => return predict_int8(args, model),
        crate::quantize::AnyModel::F32(model) => model,
    };
    if model.inputs() != crate::image_input::SIDE * crate::image_input::SIDE {
        bail!(
            "{}: model takes {} inputs but images are brought to 28x28 = 784",
            args.model.display(),
            model.inputs()
        );
    }
    let mut shown = ShownInputs::new(args.show_input.as_deref())?;
    let total = args.images.len();
    let mut failures = Vec::new();
    let names = model.class_names.as_deref();
    for path in &args.images {
        // The image's inputs are pixel / 255; a model of other features takes the
        // pixel values through its own transform, as the device's `predict_pixels`.
        let logits = shown.load(path).and_then(|inputs| {
            if model.input == crate::model::Input::Pixels {
                model.logits_one(&inputs)
            } else {
                model.logits_one(&model.inputs_of_bytes(&crate::quantize::pixel_bytes(&inputs)))
            }
        });
        match logits {
            Ok(logits) => {
                let class = mlp_core::loss::argmax(&logits);
                let raw = RawLogits::F32(&logits);
                print_prediction(args, Subject::Image(path), &logits, class, names, raw);
            }
            Err(e) => image_failed(&mut failures, total, e),
        }
    }
    predict_result(failures, total)
}

/// `predict --rows`: classifies every row of a CSV file (read with the training
/// file's header, label column and classes) and prints each row's class and
/// probabilities, or with `--logits`/`--json` its logits. A model that stores its
/// input transform takes the raw values through it (an int8 model quantizes them as
/// the device does); a model saved before models stored their standardization takes
/// them standardized with the training file's training split, as it was trained.
fn predict_rows(args: &PredictArgs, rows: &Path) -> Result<()> {
    let model = crate::quantize::AnyModel::load(&args.model)?;
    let inputs = model.table_inputs(&args.model)?;
    let train = data_dir(&args.data);
    let Some(source) = args.table.source(&train, None)? else {
        bail!(
            "--rows needs the CSV training file in --data; {} is not a .csv file",
            train.display()
        );
    };
    let t = data::load_table_splits(&train, &source, Some(0), None, inputs)?;
    let (features, classes) = (t.table.features(), t.table.classes.count());
    match &model {
        crate::quantize::AnyModel::F32(m) => m.check_fits(&args.model, features, classes)?,
        crate::quantize::AnyModel::Int8(m) => m.check_fits(&args.model, features, classes)?,
    }
    let read = mlp_data::table::read_rows(rows, &t.table)?;
    let mut values = read.values.clone();
    if inputs == data::TableInputs::Standardized {
        t.normalization.apply(&mut values);
    }
    // The model's own names first; the training file's named labels otherwise.
    let names = model
        .class_names()
        .or_else(|| t.table.classes.names().map(<[String]>::to_vec));
    let rows_of = values.chunks_exact(features.max(1)).zip(&read.row_numbers);
    match model {
        crate::quantize::AnyModel::F32(model) => {
            for (x, &row) in rows_of {
                let logits = match inputs {
                    data::TableInputs::Raw => model.logits_features(x)?,
                    data::TableInputs::Standardized => model.logits_one(x)?,
                };
                let class = mlp_core::loss::argmax(&logits);
                let subject = Subject::Row(rows, row);
                print_prediction(
                    args,
                    subject,
                    &logits,
                    class,
                    names.as_deref(),
                    RawLogits::F32(&logits),
                );
            }
        }
        crate::quantize::AnyModel::Int8(model) => model.with_feature_predictor(|predict, scale| {
            for (x, &row) in rows_of {
                let logits = predict(x);
                print_int8_prediction(
                    args,
                    Subject::Row(rows, row),
                    &logits,
                    scale,
                    names.as_deref(),
                );
            }
        }),
    }
    Ok(())
}

/// Records an image `predict` could not classify; with several images, reports it
/// at once and goes on with the next.
fn image_failed(failures: &mut Vec<anyhow::Error>, total: usize, e: anyhow::Error) {
    if total > 1 {
        use std::io::Write;
        let message = format!("{e:#}").replace('\n', " ");
        let _ = writeln!(std::io::stderr(), "mlp-train: error: {message}");
    }
    failures.push(e);
}

/// `predict`'s outcome: the error itself for a single image; for several, how many
/// failed (each was reported as it came).
fn predict_result(mut failures: Vec<anyhow::Error>, total: usize) -> Result<()> {
    match failures.len() {
        0 => Ok(()),
        _ if total == 1 => Err(failures.remove(0)),
        n => bail!("{n} of {total} images could not be classified (each is named above)"),
    }
}

fn predict_int8(args: &PredictArgs, model: crate::quantize::Int8Model) -> Result<()> {
    model.check_fits(
        &args.model,
        crate::image_input::SIDE * crate::image_input::SIDE,
        data::CLASSES,
    )?;
    let mut shown = ShownInputs::new(args.show_input.as_deref())?;
    let images: Vec<_> = args
        .images
        .iter()
        .map(|path| {
            let pixels = shown
                .load(path)
                .map(|inputs| crate::quantize::pixel_bytes(&inputs));
            (path, pixels)
        })
        .collect();
    let total = images.len();
    let mut failures = Vec::new();
    let names = model.class_names();
    model.with_predictor(|predict, scale| {
        for (path, pixels) in images {
            match pixels {
                Ok(pixels) => {
                    let logits = predict(&pixels);
                    print_int8_prediction(
                        args,
                        Subject::Image(path),
                        &logits,
                        scale,
                        names.as_deref(),
                    );
                }
                Err(e) => image_failed(&mut failures, total, e),
            }
        }
    });
    predict_result(failures, total)
}

/// `predict --show-input`: where the 28×28 images the network saw go, and the names
/// already written, so two inputs of the same name (from different directories) do not
/// overwrite each other's image.
struct ShownInputs<'a> {
    dir: Option<&'a Path>,
    used: std::collections::HashSet<std::ffi::OsString>,
}

impl<'a> ShownInputs<'a> {
    fn new(dir: Option<&'a Path>) -> Result<Self> {
        if let Some(dir) = dir {
            crate::fsio::create_output_dir(dir)?;
        }
        Ok(ShownInputs {
            dir,
            used: Default::default(),
        })
    }

    /// Brings an image to MNIST's form, writes it (atomically, as PNG) when asked, and
    /// returns the model's inputs.
    fn load(&mut self, path: &Path) -> Result<Vec<f32>> {
        let image = crate::image_input::load_mnist_image(path)?;
        if let Some(dir) = self.dir {
            let name = path.file_name().unwrap_or(path.as_os_str()).to_os_string();
            let mut out = name.clone();
            out.push(".input.png");
            let mut n = 1;
            while !self.used.insert(out.clone()) {
                n += 1;
                out = name.clone();
                out.push(format!(".{n}.input.png"));
            }
            let out = dir.join(out);
            let mut bytes = Vec::new();
            image
                .write_to(
                    &mut std::io::Cursor::new(&mut bytes),
                    image::ImageFormat::Png,
                )
                .context("cannot encode PNG")?;
            crate::fsio::write_bytes_atomic(&out, &bytes)
                .with_context(|| format!("{}: cannot write image", out.display()))?;
        }
        Ok(crate::image_input::inputs_of(&image))
    }
}

/// A model's own logits, as `predict --logits` and `--json` print them.
enum RawLogits<'a> {
    /// An f32 model's.
    F32(&'a [f32]),
    /// An int8 model's int32 logits and the real value of one step.
    Int8 { logits: &'a [i32], scale: f32 },
}

/// What one prediction is of.
#[derive(Clone, Copy)]
enum Subject<'a> {
    /// An image file.
    Image(&'a Path),
    /// A row of a CSV file, by its line number.
    Row(&'a Path, u64),
}

impl Subject<'_> {
    /// How the text output names it: `digit.png`, `rows.csv row 2`.
    fn label(self) -> String {
        match self {
            Subject::Image(path) => path.display().to_string(),
            Subject::Row(path, row) => format!("{} row {row}", path.display()),
        }
    }

    /// `--json`'s fields naming it: `file`, and `row` for a CSV row.
    fn json(self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        let path = match self {
            Subject::Image(path) | Subject::Row(path, _) => path,
        };
        fields.insert("file".into(), path.to_string_lossy().into());
        if let Subject::Row(_, row) = self {
            fields.insert("row".into(), row.into());
        }
        fields
    }
}

/// One prediction: the text line, `--logits`' line or `--json`'s object. `real` are
/// the real-valued logits (an int8 model's dequantized). A CSV row's text line names
/// its class and every probability by the class names, an image's by index.
/// [`print_prediction`] of an int8 model's int32 `logits` (`scale`: the real value of
/// one step): its class and probabilities from the dequantized logits.
fn print_int8_prediction(
    args: &PredictArgs,
    subject: Subject<'_>,
    logits: &[i32],
    scale: f32,
    names: Option<&[String]>,
) {
    let real: Vec<f32> = logits.iter().map(|&q| q as f32 * scale).collect();
    let class = mlp_core::quant::argmax_i32(logits);
    let raw = RawLogits::Int8 { logits, scale };
    print_prediction(args, subject, &real, class, names, raw);
}

fn print_prediction(
    args: &PredictArgs,
    subject: Subject<'_>,
    real: &[f32],
    class: usize,
    names: Option<&[String]>,
    raw: RawLogits<'_>,
) {
    let label = crate::model::class_label(names, class);
    // Quoted: a name may hold spaces, and a digit's name is its index.
    let named = match names {
        Some(_) => format!(" {label:?}"),
        None => String::new(),
    };
    if args.json {
        let value = match raw {
            RawLogits::F32(logits) => serde_json::json!({
                "class": class,
                "name": names.and_then(|n| n.get(class)),
                "element": "f32",
                // Rust's `{}` of an f32 is the shortest decimal that reads back to the
                // same f32; strings, so no JSON reader widens them to f64 first.
                "logits": logits.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                "logit_bits": logits.iter().map(|v| format!("{:08x}", v.to_bits())).collect::<Vec<_>>(),
            }),
            RawLogits::Int8 { logits, scale } => serde_json::json!({
                "class": class,
                "name": names.and_then(|n| n.get(class)),
                "element": "int8",
                "logits": logits,
                "scale": scale.to_string(),
                "scale_bits": format!("{:08x}", scale.to_bits()),
            }),
        };
        let mut fields = subject.json();
        if let serde_json::Value::Object(rest) = value {
            fields.extend(rest);
        }
        outln!("{}", serde_json::Value::Object(fields));
        return;
    }
    if args.logits {
        let listed: Vec<String> = match raw {
            RawLogits::F32(logits) => logits.iter().map(|v| v.to_string()).collect(),
            RawLogits::Int8 { logits, .. } => logits.iter().map(|v| v.to_string()).collect(),
        };
        outln!(
            "{}: class {class}{named}  logits {}",
            subject.label(),
            listed.join(" ")
        );
        return;
    }
    let mut probs = vec![0.0f32; real.len()];
    mlp_core::loss::softmax(real, &mut probs);
    if let Subject::Row(..) = subject {
        let listed: Vec<String> = probs
            .iter()
            .enumerate()
            .map(|(c, p)| format!("{}:{p:.3}", crate::model::class_label(names, c)))
            .collect();
        outln!(
            "{}: {label} ({:.1}%)  probabilities {}",
            subject.label(),
            100.0 * probs[class],
            listed.join(" ")
        );
        return;
    }
    let listed: Vec<String> = probs
        .iter()
        .enumerate()
        .map(|(c, p)| format!("{c}:{p:.3}"))
        .collect();
    outln!(
        "{}: class {class}{named} ({:.1}%)  probabilities {}",
        subject.label(),
        100.0 * probs[class],
        listed.join(" ")
    );
}

/// `split`: the training file's test split, as `train` takes it, written out as
/// `train.csv` and `test.csv` (every value in the shortest form that reads back to the
/// same `f32`; labels as in the file).
fn split_command(args: &SplitArgs) -> Result<()> {
    if args.table.test.is_some() {
        bail!("--test: split makes the test file; give --test-fraction");
    }
    let Some(source) = args.table.source(&args.data, None)? else {
        bail!("{}: split takes a .csv file", args.data.display());
    };
    let table = mlp_data::table::read_training(&args.data, &source.label, 2)?;
    let (kept, taken) = mlp_data::table::stratified_split(
        &table.labels,
        table.classes.count(),
        mlp_data::table::Share::PartsPerMillion(source.test_ppm),
        source.split_seed,
    );
    let outputs = [("train.csv", kept), ("test.csv", taken)];
    for (name, _) in &outputs {
        crate::fsio::refuse_overwriting_input(
            &args.out.join(name),
            std::slice::from_ref(&args.data),
        )?;
    }
    crate::fsio::create_output_dir(&args.out)?;
    for (name, rows) in &outputs {
        let path = args.out.join(name);
        crate::fsio::write_bytes_atomic(&path, &table.select(rows).to_csv())
            .with_context(|| format!("{}: cannot write", path.display()))?;
        outln!("wrote {} ({})", path.display(), plural(rows.len(), "row"));
    }
    Ok(())
}

fn show(args: &ShowArgs) -> Result<()> {
    let dir = data_dir(&args.data);
    if let Some(png) = &args.png {
        crate::fsio::refuse_overwriting_input(png, &data::data_files(&dir))?;
    }
    let set = data::load_split(&dir, args.split, None)?;
    if args.start >= set.len() {
        bail!(
            "--start {} is past the {} images of that split",
            args.start,
            set.len()
        );
    }
    let end = (args.start + args.count.max(1)).min(set.len());
    let indices: Vec<usize> = (args.start..end).collect();
    for chunk in indices.chunks(4) {
        out!("{}", crate::show::ascii_art(&set, chunk));
    }
    if let Some(png) = &args.png {
        crate::show::write_grid_png(
            png,
            &set,
            &indices,
            2.max((indices.len() as f64).sqrt().ceil() as usize),
            4,
        )?;
        outln!("wrote {}", png.display());
    }
    Ok(())
}
