//! The command line: argument definitions (clap) and what each command does. With no
//! command, `mlp-train` trains with the walkthrough's defaults on the bundled digits.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::data::{self, Split};
use crate::optim::{OptimizerConfig, OptimizerKind, Schedule};
use crate::train::{self, Compute, EarlyStopping, Monitor, RunOptions, TrainConfig};
use mlp_kernels::{Isa, Kernels, Unsupported};

/// Trains small MLPs on MNIST-format data and inspects, evaluates and runs the models.
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
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network (the default command).
    Train(TrainArgs),
    /// Test accuracy, per-class precision and recall, and the confusion matrix.
    Evaluate(EvaluateArgs),
    /// Classify images of digits (PNG or PGM).
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
    /// with the fast kernels, against the NumPy reference in the same run.
    Bench(BenchArgs),
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

/// Options of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// MNIST-format data directory [default: the bundled digits, data/mnist-digits].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Validation images from the end of the training file [default: a sixth of it].
    #[arg(long, value_name = "N")]
    pub validation: Option<usize>,
    /// Train on only the first N images of the training part.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "100,200", value_parser = crate::model::parse_hidden)]
    pub hidden: std::vec::Vec<usize>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 25)]
    pub epochs: usize,
    /// Images per minibatch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Base learning rate.
    #[arg(long, visible_alias = "lr", default_value_t = 0.1)]
    pub learning_rate: f32,
    /// Random seed (weights initialisation and shuffling).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Momentum for `momentum` and `nesterov`.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Adam's beta1.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f32,
    /// Adam's beta2.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f32,
    /// Weight decay (L2 for SGD and momentum, decoupled for Adam).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    pub schedule: ScheduleKind,
    /// Step schedule: epochs between drops.
    #[arg(long, default_value_t = 10)]
    pub step_every: usize,
    /// Step schedule: factor per drop.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f32,
    /// Cosine schedule: final learning rate.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f32,
    /// Early stopping: stop after this many epochs without improvement and keep the
    /// best epoch's weights.
    #[arg(long, value_name = "EPOCHS")]
    pub patience: Option<usize>,
    /// What early stopping watches.
    #[arg(long, value_enum, default_value_t = Monitor::ValAccuracy)]
    pub monitor: Monitor,
    /// Output directory [default: runs/NAME at the workspace root].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run name for the default output directory [default: the data directory's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Continue from a checkpoint; its settings are used and other training flags are
    /// ignored. Outputs go next to it unless --out is given.
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
    /// Data directory [default: the bundled digits].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which part to evaluate on.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Validation size, as for training.
    #[arg(long, value_name = "N")]
    pub validation: Option<usize>,
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
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
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
    /// Data directory whose training images calibrate the scales [default: the bundled digits].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Training images used for calibration.
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
    /// Cache directory [default: data/mnist-full at the workspace root].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Expect another SHA-256 for a file, as NAME=HEX (for other mirrors and tests).
    #[arg(long, value_name = "NAME=HEX")]
    pub sha256: Vec<String>,
}

impl TrainArgs {
    /// The training configuration these flags describe.
    pub fn config(&self) -> TrainConfig {
        let schedule = match self.schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Step => Schedule::Step {
                every: self.step_every,
                gamma: self.gamma,
            },
            ScheduleKind::Cosine => Schedule::Cosine {
                min_lr: self.min_lr,
            },
        };
        TrainConfig {
            data_dir: self.data.clone().unwrap_or_else(data::bundled_data_dir),
            validation: self.validation,
            train_limit: self.limit,
            hidden: self.hidden.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
            optimizer: OptimizerConfig {
                kind: self.optimizer,
                momentum: self.momentum,
                beta1: self.beta1,
                beta2: self.beta2,
                epsilon: 1e-8,
                weight_decay: self.weight_decay,
            },
            schedule,
            early_stopping: self.patience.map(|patience| EarlyStopping {
                monitor: self.monitor,
                patience,
            }),
        }
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
            config
                .data_dir
                .file_name()
                .map_or("run".to_owned(), |n| n.to_string_lossy().into_owned())
        });
        data::workspace_root().join("runs").join(name)
    }
}

fn data_dir(d: &Option<PathBuf>) -> PathBuf {
    d.clone().unwrap_or_else(data::bundled_data_dir)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train_command(&cli.train),
        Some(Command::Train(args)) => train_command(&args),
        Some(Command::Evaluate(args)) if crate::quantize::is_int8_file(&args.model) => {
            let model = crate::quantize::Int8Model::load(&args.model)?;
            let data = data::load_split(&data_dir(&args.data), args.split, args.validation)?;
            model.check_fits(&args.model, data.features, data::CLASSES)?;
            print!("{}", crate::quantize::evaluate(&model, &data).report(None));
            Ok(())
        }
        Some(Command::Evaluate(args)) => {
            let e = train::evaluate_file_with(
                &args.model,
                &data_dir(&args.data),
                args.split,
                args.validation,
                args.compute.compute(),
            )?;
            print!("{}", e.report(None));
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
        Some(Command::Inspect(args)) => {
            print!("{}", crate::inspect::inspect(&args.model)?.report());
            Ok(())
        }
        Some(Command::Download(args)) => {
            let dir = args
                .dir
                .clone()
                .unwrap_or_else(|| data::workspace_root().join("data").join("mnist-full"));
            let mut files = crate::download::mnist_files();
            crate::download::apply_overrides(&mut files, &args.sha256)?;
            crate::download::download_all(&args.mirror, &dir, &files, true)?;
            println!("train with: mlp-train train --data {}", dir.display());
            Ok(())
        }
    }
}

fn train_command(args: &TrainArgs) -> Result<()> {
    let config = args.config();
    let out_dir = args.out_dir(&config);
    let options = RunOptions {
        out_dir: out_dir.clone(),
        resume: args.resume.clone(),
        stop_after: args.stop_after,
        verbose: !args.quiet,
    };
    if !args.quiet {
        match &args.resume {
            Some(ck) => println!("resuming from {}", ck.display()),
            None => println!(
                "training hidden layers {:?} on {} for {} epochs (batch {}, learning rate {}, {:?}); outputs in {}",
                config.hidden,
                config.data_dir.display(),
                config.epochs,
                config.batch_size,
                config.learning_rate,
                config.optimizer.kind,
                out_dir.display()
            ),
        }
    }
    let report = train::run_with(config, &options, args.compute.compute())?;
    match (&report.test, &report.model_path) {
        (Some(test), Some(model)) => {
            if let Some(best) = report.best_epoch {
                println!("kept the weights of epoch {best} (best validation)");
            }
            println!(
                "test accuracy: {:.2}% ({}/{})",
                100.0 * test.accuracy,
                test.correct(),
                test.count
            );
            println!(
                "wrote {}, {}, {} in {} ({:.1} s)",
                train::files::MODEL,
                train::files::METRICS,
                train::files::CURVES,
                model.parent().unwrap_or(Path::new(".")).display(),
                report.seconds
            );
        }
        _ => println!(
            "stopped after epoch {} as asked; continue with --resume {}",
            report.history.len(),
            out_dir.join(train::files::CHECKPOINT).display()
        ),
    }
    Ok(())
}

fn quantize_command(args: &QuantizeArgs) -> Result<()> {
    if args.calibration == 0 {
        bail!("--calibration 0: at least one training image is needed to calibrate the scales");
    }
    let model = crate::model::Mlp::load(&args.model)?;
    let dir = data_dir(&args.data);
    let mut calibration = data::load_split(&dir, Split::Train, None)?;
    model.check_fits(&args.model, calibration.features, data::CLASSES)?;
    let keep = args.calibration.min(calibration.len());
    calibration.pixels.truncate(keep * calibration.features);
    calibration.labels.truncate(keep);
    let bytes = crate::quantize::quantize(&model, &calibration)
        .with_context(|| format!("{}: cannot quantize", args.model.display()))?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .model
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        args.model.with_file_name(format!("{stem}-int8.mlp"))
    });
    crate::fsio::write_bytes_atomic(&out, &bytes)
        .with_context(|| format!("{}: cannot write model file", out.display()))?;
    let f32_bytes = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} bytes, {:.1}% of the f32 model's {f32_bytes}), calibrated on {keep} training images",
        out.display(),
        bytes.len(),
        100.0 * bytes.len() as f64 / f32_bytes.max(1) as f64
    );
    Ok(())
}

fn predict(args: &PredictArgs) -> Result<()> {
    if crate::quantize::is_int8_file(&args.model) {
        return predict_int8(args);
    }
    let model = crate::model::Mlp::load(&args.model)?;
    if model.inputs() != crate::image_input::SIDE * crate::image_input::SIDE {
        bail!(
            "{}: model takes {} inputs but images are brought to 28x28 = 784",
            args.model.display(),
            model.inputs()
        );
    }
    for path in &args.images {
        let inputs = crate::image_input::load_mnist_inputs(path)?;
        let logits = model.logits_one(&inputs)?;
        print_prediction(path, &logits, mlp_core::loss::argmax(&logits));
    }
    Ok(())
}

fn predict_int8(args: &PredictArgs) -> Result<()> {
    let model = crate::quantize::Int8Model::load(&args.model)?;
    model.check_fits(
        &args.model,
        crate::image_input::SIDE * crate::image_input::SIDE,
        data::CLASSES,
    )?;
    let mut images = Vec::new();
    for path in &args.images {
        images.push((
            path,
            crate::quantize::pixel_bytes(&crate::image_input::load_mnist_inputs(path)?),
        ));
    }
    model.with_predictor(|predict, scale| {
        for (path, pixels) in &images {
            let logits = predict(pixels);
            let real: Vec<f32> = logits.iter().map(|&q| q as f32 * scale).collect();
            print_prediction(path, &real, mlp_core::quant::argmax_i32(&logits));
        }
    });
    Ok(())
}

fn print_prediction(path: &Path, logits: &[f32], class: usize) {
    let mut probs = vec![0.0f32; logits.len()];
    mlp_core::loss::softmax(logits, &mut probs);
    let listed: Vec<String> = probs
        .iter()
        .enumerate()
        .map(|(c, p)| format!("{c}:{p:.3}"))
        .collect();
    println!(
        "{}: class {class} ({:.1}%)  probabilities {}",
        path.display(),
        100.0 * probs[class],
        listed.join(" ")
    );
}

fn show(args: &ShowArgs) -> Result<()> {
    let dir = data_dir(&args.data);
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
        print!("{}", crate::show::ascii_art(&set, chunk));
    }
    if let Some(png) = &args.png {
        crate::show::write_grid_png(
            png,
            &set,
            &indices,
            2.max((indices.len() as f64).sqrt().ceil() as usize),
            4,
        )?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
