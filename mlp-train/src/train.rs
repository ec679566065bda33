//! The training loop: minibatch gradient descent over shuffled data, validation after
//! every epoch, early stopping, checkpoints, divergence detection, progress output,
//! and the run's output files.
//!
//! [`Training`] holds a run and does one epoch at a time; [`run_with`] drives it and
//! writes the files. Each step is `mlp_kernels::Trainer`'s (forward, softmax
//! cross-entropy, backward); plain SGD is fused into its products, any other optimizer
//! gets the gradients. The bytes of a run depend only on its configuration and on
//! the arithmetic ([`Compute::kernels`]: fast or core), not on the CPU or the thread
//! count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Result};
use mlp_kernels::{Batch, Kernels, Trainer, Update};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::Augment;
use crate::checkpoint::{Checkpoint, EarlyState};
use crate::data::{self, Dataset, CLASSES};
use crate::metrics::{self, EpochMetrics, Evaluation};
use crate::model::Mlp;
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::output::{out, outln};

/// The quantity early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Monitor {
    /// Validation accuracy (higher is better).
    ValAccuracy,
    /// Validation loss (lower is better).
    ValLoss,
}

/// Early stopping: stop when the monitored value has not improved for `patience`
/// epochs, and keep the weights of the best epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// What to watch.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
}

/// Everything that decides a run's result. Saved in checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// MNIST-format data directory ([`run_with`] makes it absolute; stored byte for
    /// byte in checkpoints).
    #[serde(with = "crate::checkpoint::path_bytes")]
    pub data_dir: PathBuf,
    /// Validation images taken from the end of the training file (default: a sixth).
    pub validation: Option<usize>,
    /// Use only the first images of the training part.
    pub train_limit: Option<usize>,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Epochs to train.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub learning_rate: f32,
    /// Seed of the generator that initialises the weights and shuffles the data.
    pub seed: u64,
    /// Optimizer settings.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Early stopping, if any.
    pub early_stopping: Option<EarlyStopping>,
    /// Augmentation of the training images, if any: each epoch trains on transformed
    /// copies drawn from the seed, the epoch and the image's index.
    pub augment: Option<Augment>,
    /// For a CSV training file in `data_dir`: its test file or test split, its label
    /// column and the splits' seed (`None`: `data_dir` is an MNIST-format directory).
    pub table: Option<data::TableSource>,
}

impl Default for TrainConfig {
    /// The walkthrough's settings on the bundled digits: 784-100-200-10, SGD with
    /// learning rate 0.1, batch 32, 25 epochs.
    fn default() -> Self {
        TrainConfig {
            data_dir: data::bundled_data_dir(),
            validation: None,
            train_limit: None,
            hidden: vec![100, 200],
            epochs: 25,
            batch_size: 32,
            learning_rate: 0.1,
            seed: 1,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Constant,
            early_stopping: None,
            augment: None,
            table: None,
        }
    }
}

/// How to run (things that do not change the result).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Directory for the model, log, chart and checkpoint.
    pub out_dir: PathBuf,
    /// Continue from this checkpoint. The run's `config` must then be the
    /// checkpoint's, except for what [`check_resume`] lets change: the number of
    /// epochs, the base learning rate and the data directory (a copy of the same
    /// files, checked by SHA-256).
    pub resume: Option<PathBuf>,
    /// Stop (as if interrupted) once this many epochs are done; for tests of resume.
    pub stop_after: Option<usize>,
    /// Print epoch lines and progress bars.
    pub verbose: bool,
}

/// Which kernels compute a run, and on how many threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compute {
    /// The fast kernels with some instruction set (default: the fastest this CPU
    /// runs; every instruction set gives the same bits), or the core's, whose
    /// arithmetic is the device's.
    pub kernels: Kernels,
    /// Threads for the training steps and for evaluating the validation and test sets
    /// (at least 1). Neither a model's bytes nor an evaluation depend on it.
    pub threads: usize,
}

/// The thread count the command line uses unless told otherwise: the cores this
/// process may run on (`std::thread::available_parallelism`, 1 if unknown), at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_DEFAULT_THREADS))
}

/// The most threads used by default: a training step of the walkthrough's network is
/// a fraction of a millisecond of work, so more threads mean shorter items and more
/// waiting; `--threads` asks for more.
pub const MAX_DEFAULT_THREADS: usize = 2;

impl Default for Compute {
    fn default() -> Self {
        Compute {
            kernels: Kernels::best(),
            threads: 1,
        }
    }
}

impl Compute {
    /// Evaluates `model` on `data` with these kernels.
    ///
    /// # Errors
    /// If this CPU does not run the kernels.
    pub fn evaluate(&self, model: &Mlp, data: &Dataset) -> Result<Evaluation> {
        metrics::evaluate(model, data, *self)
    }
}

/// Names of a run's output files inside its directory.
pub mod files {
    /// The model file.
    pub const MODEL: &str = "model.mlp";
    /// The per-epoch metrics.
    pub const METRICS: &str = "metrics.csv";
    /// The accuracy and loss curves.
    pub const CURVES: &str = "curves.svg";
    /// The checkpoint after the last finished epoch.
    pub const CHECKPOINT: &str = "checkpoint.ckpt";
    /// The run's settings and results (test accuracy, model digest) as JSON.
    pub const SUMMARY: &str = "summary.json";
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// The configuration used.
    pub config: TrainConfig,
    /// The metrics of every epoch.
    pub history: Vec<EpochMetrics>,
    /// Test-set evaluation of the saved model (`None` when interrupted).
    pub test: Option<Evaluation>,
    /// The epoch whose weights were kept, when early stopping was on.
    pub best_epoch: Option<usize>,
    /// True when early stopping ended the run before its last epoch.
    pub stopped_early: bool,
    /// The model file (`None` when interrupted).
    pub model_path: Option<PathBuf>,
    /// Wall time of the whole run in seconds (data loading included).
    pub seconds: f64,
    /// The epoch a Ctrl-C abandoned; the files then hold the last finished epoch.
    pub interrupted: Option<usize>,
}

/// The layer sizes a configuration gives for MNIST-format data with `features`
/// inputs (and its 10 classes).
pub fn layer_sizes(config: &TrainConfig, features: usize) -> Vec<usize> {
    layer_sizes_for(config, features, CLASSES)
}

/// The layer sizes a configuration gives for data with `features` inputs and
/// `classes` classes.
pub fn layer_sizes_for(config: &TrainConfig, features: usize, classes: usize) -> Vec<usize> {
    let mut sizes = vec![features];
    sizes.extend(&config.hidden);
    sizes.push(classes);
    sizes
}

/// Checks every setting before any work, with a message naming the flag:
/// a positive epoch count, batch size and learning rate; weight decay `>= 0`;
/// momentum, `β₁` and `β₂` in `[0, 1)`; a step schedule's `every >= 1` and
/// `0 < gamma <= 1` (a schedule that only lowers the rate); a cosine schedule's
/// `0 <= min_lr <= learning rate`; patience at least 1.
///
/// # Errors
/// The first setting out of range.
pub fn check_config(c: &TrainConfig) -> Result<()> {
    if c.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if c.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if !(c.learning_rate.is_finite() && c.learning_rate > 0.0) {
        bail!(
            "--learning-rate must be a positive number, got {}",
            c.learning_rate
        );
    }
    let o = &c.optimizer;
    if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
        bail!(
            "--weight-decay must be a number >= 0, got {}",
            o.weight_decay
        );
    }
    for (flag, value) in [
        ("--momentum", o.momentum),
        ("--beta1", o.beta1),
        ("--beta2", o.beta2),
    ] {
        if !(0.0..1.0).contains(&value) {
            bail!("{flag} must be at least 0 and below 1, got {value}");
        }
    }
    if !(o.epsilon.is_finite() && o.epsilon > 0.0) {
        bail!("Adam's epsilon must be positive, got {}", o.epsilon);
    }
    match c.schedule {
        Schedule::Constant => {}
        Schedule::Step { every, gamma } => {
            if every == 0 {
                bail!("--step-every must be at least 1");
            }
            if !(gamma > 0.0 && gamma <= 1.0) {
                bail!("--gamma must be above 0 and at most 1 (the step schedule lowers the rate), got {gamma}");
            }
        }
        Schedule::Cosine { min_lr } => {
            if !(min_lr.is_finite() && min_lr >= 0.0) {
                bail!("--min-lr must be a number >= 0, got {min_lr}");
            }
            if min_lr > c.learning_rate {
                bail!(
                    "--min-lr {min_lr} is above the learning rate {} (the cosine schedule lowers the rate to it)",
                    c.learning_rate
                );
            }
        }
    }
    if let Some(e) = c.early_stopping {
        if e.patience == 0 {
            bail!("--patience must be at least 1");
        }
        if c.validation == Some(0) {
            bail!("--validation 0 leaves early stopping (--patience) nothing to watch");
        }
    }
    if c.table.is_some() && c.augment.is_some() {
        bail!("--augment transforms images; a CSV file's rows are not images");
    }
    Ok(())
}

/// Checks that `wanted`, the settings a resumed run is asked to continue with, keeps
/// everything of the checkpoint's `saved` settings except what may change on resume:
/// the number of epochs (not below those done), the base learning rate (from the next
/// epoch on) and the data directory (another copy of the same files). Every other
/// difference is refused, naming the flags.
///
/// # Errors
/// The flags that differ, with the checkpoint's values.
pub fn check_resume(saved: &TrainConfig, wanted: &TrainConfig, epochs_done: usize) -> Result<()> {
    let mut differ: Vec<String> = Vec::new();
    let mut check = |flag: &str, ours: String, theirs: String| {
        if ours != theirs {
            differ.push(format!("{flag} {ours} (the checkpoint's is {theirs})"));
        }
    };
    let opt = |v: Option<usize>| v.map_or_else(|| "default".to_owned(), |v| v.to_string());
    check(
        "--validation",
        opt(wanted.validation),
        opt(saved.validation),
    );
    check("--limit", opt(wanted.train_limit), opt(saved.train_limit));
    check(
        "--hidden",
        crate::model::hidden_text(&wanted.hidden),
        crate::model::hidden_text(&saved.hidden),
    );
    check(
        "--batch-size",
        wanted.batch_size.to_string(),
        saved.batch_size.to_string(),
    );
    check("--seed", wanted.seed.to_string(), saved.seed.to_string());
    let (wo, so) = (&wanted.optimizer, &saved.optimizer);
    check("--optimizer", wo.kind.to_string(), so.kind.to_string());
    check(
        "--momentum",
        wo.momentum.to_string(),
        so.momentum.to_string(),
    );
    check("--beta1", wo.beta1.to_string(), so.beta1.to_string());
    check("--beta2", wo.beta2.to_string(), so.beta2.to_string());
    check(
        "--weight-decay",
        wo.weight_decay.to_string(),
        so.weight_decay.to_string(),
    );
    let schedule_name = |s: &Schedule| match s {
        Schedule::Constant => "constant",
        Schedule::Step { .. } => "step",
        Schedule::Cosine { .. } => "cosine",
    };
    check(
        "--schedule",
        schedule_name(&wanted.schedule).to_owned(),
        schedule_name(&saved.schedule).to_owned(),
    );
    match (wanted.schedule, saved.schedule) {
        (Schedule::Step { every, gamma }, Schedule::Step { every: e, gamma: g }) => {
            check("--step-every", every.to_string(), e.to_string());
            check("--gamma", gamma.to_string(), g.to_string());
        }
        (Schedule::Cosine { min_lr }, Schedule::Cosine { min_lr: m }) => {
            check("--min-lr", min_lr.to_string(), m.to_string());
        }
        _ => {}
    }
    let patience =
        |e: Option<EarlyStopping>| e.map_or_else(|| "none".to_owned(), |e| e.patience.to_string());
    check(
        "--patience",
        patience(wanted.early_stopping),
        patience(saved.early_stopping),
    );
    if let (Some(w), Some(s)) = (wanted.early_stopping, saved.early_stopping) {
        let name = |m: Monitor| match m {
            Monitor::ValAccuracy => "val-accuracy",
            Monitor::ValLoss => "val-loss",
        };
        check("--monitor", name(w.monitor).into(), name(s.monitor).into());
    }
    // The label column and the splits decide what the network learns from.
    let table = |t: &Option<data::TableSource>| match t {
        None => ("none".to_owned(), "none".to_owned(), "none".to_owned()),
        Some(t) => (
            t.label.to_string(),
            match &t.test {
                Some(_) => "a file".to_owned(),
                None => format!("{}", f64::from(t.test_ppm) / 1e6),
            },
            t.split_seed.to_string(),
        ),
    };
    let (wt, st) = (table(&wanted.table), table(&saved.table));
    check("--label", wt.0, st.0);
    check("--test/--test-fraction", wt.1, st.1);
    check("--split-seed", wt.2, st.2);
    // Augmentation decides which images every later epoch sees: changing it would
    // make the resumed run neither the old one nor the new one.
    let augment = |a: Option<Augment>| a.map_or_else(|| "off".to_owned(), |a| a.to_string());
    check("--augment", augment(wanted.augment), augment(saved.augment));
    if !differ.is_empty() {
        bail!(
            "cannot change {} when resuming: only --epochs, --learning-rate and --data (a copy of the same data) can change",
            differ.join(", ")
        );
    }
    if wanted.epochs < epochs_done {
        bail!(
            "--epochs {}: the checkpoint has {} done already",
            wanted.epochs,
            crate::train::plural(epochs_done, "epoch")
        );
    }
    Ok(())
}

/// The lines a resumed run prints about what it changes: more (or fewer) epochs, a
/// new base learning rate, the data's new place. Empty when nothing changes.
fn resume_changes(
    saved: &TrainConfig,
    wanted: &TrainConfig,
    done: usize,
    verified: bool,
) -> String {
    let mut s = String::new();
    if wanted.epochs != saved.epochs {
        s += &format!(
            "continuing to {} instead of {} ({} done)\n",
            plural(wanted.epochs, "epoch"),
            saved.epochs,
            done
        );
    }
    if wanted.learning_rate != saved.learning_rate {
        s += &format!(
            "learning rate {} from epoch {} on (was {}; metrics.csv records each epoch's)\n",
            wanted.learning_rate,
            done + 1,
            saved.learning_rate
        );
    }
    if saved.data_dir != wanted.data_dir
        && std::path::absolute(&saved.data_dir).ok().as_ref() != Some(&wanted.data_dir)
    {
        s += &format!("data now in {}", wanted.data_dir.display());
        s += if verified {
            " (the same files: their SHA-256 match)\n"
        } else {
            "\n"
        };
    }
    s
}

/// `n` and `word`, with an `s` unless `n` is 1: "1 epoch", "3 epochs".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Whether `value` improves on `best` for `monitor`.
fn improves(monitor: Monitor, value: f64, best: Option<(usize, f64)>) -> bool {
    match best {
        None => true,
        Some((_, b)) => match monitor {
            Monitor::ValAccuracy => value > b,
            Monitor::ValLoss => value < b,
        },
    }
}

/// The progress bar's layout: `{wide_bar}` takes what the terminal's width leaves,
/// so the line never wraps on a terminal of 80 columns or more (tested with the
/// widest figures).
const PROGRESS_TEMPLATE: &str = "epoch {prefix} [{wide_bar}] {pos}/{len}  {msg}  eta {eta}";

fn progress_bar(
    verbose: bool,
    batches: usize,
    epoch: usize,
    epochs: usize,
) -> indicatif::ProgressBar {
    if !verbose {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(batches as u64);
    style_progress(&bar, epoch, epochs);
    bar
}

fn style_progress(bar: &indicatif::ProgressBar, epoch: usize, epochs: usize) {
    let style = indicatif::ProgressStyle::with_template(PROGRESS_TEMPLATE)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
}

/// The progress bar's message: the loss so far and the speed.
fn progress_message(loss: f64, images_per_second: f64) -> String {
    format!("loss {}  {:.0} img/s", short_loss(loss), images_per_second)
}

/// A loss in six characters or so: four decimals below 10, fewer above, then powers
/// of ten (a diverging run's 2.2e30 must not print thirty digits).
pub fn short_loss(loss: f64) -> String {
    let a = loss.abs();
    if !loss.is_finite() || a >= 1000.0 {
        format!("{loss:.1e}")
    } else if a >= 100.0 {
        format!("{loss:.2}")
    } else if a >= 10.0 {
        format!("{loss:.3}")
    } else {
        format!("{loss:.4}")
    }
}

/// A learning rate with four significant digits at most: `0.1`, `0.0975`,
/// `0.00075`, `1e-30`.
pub fn short_rate(rate: f32) -> String {
    let r = f64::from(rate);
    if r == 0.0 {
        return "0".to_owned();
    }
    if !(1e-4..1e3).contains(&r.abs()) {
        let s = format!("{r:.3e}");
        // 1.000e-30 -> 1e-30
        return match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        };
    }
    let decimals = (3 - r.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{r:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// One epoch's line as `train` prints it: epoch, loss and accuracy (training /
/// validation), learning rate, seconds. At most 80 columns up to epoch 9999/9999.
pub fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let seconds = if m.seconds < 10_000.0 {
        format!("{:.1} s", m.seconds)
    } else {
        format!("{:.0} s", m.seconds)
    };
    if m.val_accuracy.is_nan() {
        // No validation set: the training figures alone.
        return format!(
            "epoch {:>3}/{}  loss {}  acc {:.2}%  lr {}  {seconds}",
            m.epoch,
            epochs,
            short_loss(m.train_loss),
            100.0 * m.train_accuracy,
            short_rate(m.learning_rate),
        );
    }
    format!(
        "epoch {:>3}/{}  loss {}/{}  acc {:.2}%/{:.2}%  lr {}  {seconds}",
        m.epoch,
        epochs,
        short_loss(m.train_loss),
        short_loss(m.val_loss),
        100.0 * m.train_accuracy,
        100.0 * m.val_accuracy,
        short_rate(m.learning_rate),
    )
}

/// The training loop of one run, one epoch at a time: the network, its optimizer, the
/// generator that shuffles the data, the history and early stopping. `train` and
/// `bench` both run their epochs through it.
#[derive(Debug)]
pub struct Training {
    config: TrainConfig,
    compute: Compute,
    sizes: Vec<usize>,
    model: Mlp,
    optimizer: Optimizer,
    rng: ChaCha8Rng,
    trainer: Trainer,
    history: Vec<EpochMetrics>,
    early: EarlyState,
    stopped_early: bool,
    /// The training images' order in the current epoch.
    order: Vec<u32>,
    /// The current batch's labels.
    labels: Vec<u8>,
    /// This epoch's augmented training images (empty without `--augment`).
    augmented: Vec<u8>,
    /// The training images prepared for augmentation, and the next epoch's images
    /// being made on another thread.
    augmenter: Option<Augmenter>,
    /// Gradients, for optimizers that are not fused into the kernels.
    grads: Vec<f32>,
    /// When set, a pass stops before its next batch ([`Interrupted`]).
    stop: Option<&'static AtomicBool>,
}

/// The training images prepared for augmentation, and the thread making the next
/// epoch's augmented copy (its epoch and handle).
#[derive(Debug)]
struct Augmenter {
    sources: std::sync::Arc<crate::augment::Sources>,
    next: Option<(usize, std::thread::JoinHandle<Vec<u8>>)>,
}

/// What one pass over the training images gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPass {
    /// The learning rate used.
    pub learning_rate: f32,
    /// Mean training loss over the batches (weighted by batch size).
    pub loss: f64,
    /// Fraction of training images classified right as the epoch ran.
    pub accuracy: f64,
}

/// The loss stopped being finite: the run cannot go on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diverged {
    /// The epoch (from 1).
    pub epoch: usize,
    /// The batch within it (from 1).
    pub batch: usize,
    /// The loss it gave.
    pub loss: f32,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training diverged: the loss became {} at epoch {}, batch {}; lower the learning rate",
            self.loss, self.epoch, self.batch
        )
    }
}

impl std::error::Error for Diverged {}

/// A stop was asked for ([`Training::stop_on`]) during an epoch: the epoch was
/// abandoned after a whole batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// The epoch abandoned (from 1).
    pub epoch: usize,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted during epoch {}", self.epoch)
    }
}

impl std::error::Error for Interrupted {}

impl Training {
    /// A fresh run of `config` on data with `features` inputs: the weights drawn from
    /// the seed's generator (which then shuffles the data).
    ///
    /// # Errors
    /// If the configuration is invalid or the kernels do not run on this CPU.
    pub fn new(config: TrainConfig, features: usize, compute: Compute) -> Result<Training> {
        Training::with_classes(config, features, CLASSES, compute)
    }

    /// [`Training::new`] for data of `classes` classes.
    ///
    /// # Errors
    /// As [`Training::new`].
    pub fn with_classes(
        config: TrainConfig,
        features: usize,
        classes: usize,
        compute: Compute,
    ) -> Result<Training> {
        check_config(&config)?;
        let sizes = layer_sizes_for(&config, features, classes);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let model = Mlp::xavier(&sizes, &mut || rng.next_u64())?;
        let optimizer = Optimizer::new(config.optimizer, model.params.len());
        let trainer = Trainer::new(compute.kernels, &sizes, config.batch_size, compute.threads)?;
        Ok(Training {
            grads: vec![0.0; model.params.len()],
            labels: vec![0; config.batch_size],
            config,
            compute,
            sizes,
            model,
            optimizer,
            rng,
            trainer,
            history: Vec::new(),
            early: EarlyState::default(),
            stopped_early: false,
            order: Vec::new(),
            augmented: Vec::new(),
            augmenter: None,
            stop: None,
        })
    }

    /// Watches `flag` (e.g. [`crate::interrupt::flag`]): once it is set, a pass stops
    /// before its next batch with [`Interrupted`].
    pub fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.stop = Some(flag);
    }

    /// The run a checkpoint saved, on data with `features` inputs and `classes`
    /// classes, ready to continue where it stopped; `name` names the checkpoint in
    /// errors.
    ///
    /// # Errors
    /// If the checkpoint does not fit the data or its own configuration.
    pub fn resume(
        ck: Checkpoint,
        (features, classes): (usize, usize),
        compute: Compute,
        name: &str,
    ) -> Result<Training> {
        let mut t = Training::with_classes(ck.config.clone(), features, classes, compute)?;
        if ck.sizes != t.sizes {
            bail!(
                "{name}: checkpoint layer sizes {:?} do not fit the data ({:?})",
                ck.sizes,
                t.sizes
            );
        }
        if ck.params.len() != t.model.params.len()
            || ck.optimizer.first.len() != t.optimizer.state.first.len()
            || ck.optimizer.second.len() != t.optimizer.state.second.len()
        {
            bail!("{name}: checkpoint parameters or optimizer state do not fit its configuration");
        }
        t.model.params = ck.params;
        t.optimizer.state = ck.optimizer;
        t.rng.set_word_pos(ck.rng_word_pos);
        t.history = ck.history;
        t.early = ck.early;
        t.stopped_early = ck.stopped_early;
        Ok(t)
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The network as trained so far.
    pub fn model(&self) -> &Mlp {
        &self.model
    }

    /// The metrics of the epochs done.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    /// Epochs done.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// True when every epoch is done or early stopping ended the run.
    pub fn is_done(&self) -> bool {
        self.stopped_early || self.epochs_done() >= self.config.epochs
    }

    /// True when early stopping ended the run.
    pub fn stopped_early(&self) -> bool {
        self.stopped_early
    }

    /// One shuffled pass of minibatch steps over `train` (at the current epoch's
    /// learning rate), calling `progress(batches done, batches, mean loss so far)`
    /// after each batch. Does not validate or record anything: [`Training::epoch`]
    /// does.
    ///
    /// # Errors
    /// [`Diverged`] if a batch's loss is not finite (that batch changed nothing);
    /// [`Interrupted`] when the flag of [`Training::stop_on`] was set (the weights
    /// then hold the epoch's batches so far).
    pub fn pass(
        &mut self,
        train: &Dataset,
        mut progress: impl FnMut(usize, usize, f64),
    ) -> Result<EpochPass> {
        let epoch = self.epochs_done();
        let lr = self
            .config
            .schedule
            .rate(self.config.learning_rate, epoch, self.config.epochs);
        let batch = self.config.batch_size;
        self.order.clear();
        self.order.extend(0..train.len() as u32);
        self.order.shuffle(&mut self.rng);
        // Plain SGD without weight decay is fused into the kernels' products.
        let fused_sgd = self.optimizer.config.kind == OptimizerKind::Sgd
            && self.optimizer.config.weight_decay == 0.0;
        let batches = train.len().div_ceil(batch);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let inputs = match self.config.augment {
            Some(a) => {
                self.augment_images(&a, train, epoch);
                mlp_kernels::Inputs::Pixels(&self.augmented)
            }
            None => train.inputs(),
        };
        let mut chunks = self.order.chunks(batch).peekable();
        let mut index = 0;
        while let Some(chunk) = chunks.next() {
            if self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Err(Interrupted { epoch: epoch + 1 }.into());
            }
            let b = chunk.len();
            for (label, &i) in self.labels.iter_mut().zip(chunk) {
                *label = train.labels[i as usize];
            }
            let update = if fused_sgd {
                Update::Sgd(lr)
            } else {
                Update::Gradients(&mut self.grads)
            };
            let batch_of = Batch::Gather {
                inputs,
                indices: chunk,
                next: chunks.peek().copied().unwrap_or(&[]),
            };
            let out =
                self.trainer
                    .step(&mut self.model.params, batch_of, &self.labels[..b], update);
            if !out.loss.is_finite() {
                return Err(Diverged {
                    epoch: epoch + 1,
                    batch: index + 1,
                    loss: out.loss,
                }
                .into());
            }
            if fused_sgd {
                // The step applied the update; count it as the optimizer would.
                self.optimizer.state.steps += 1;
            } else {
                self.optimizer
                    .step(&mut self.model.params, &mut self.grads, lr);
            }
            loss_sum += f64::from(out.loss) * b as f64;
            correct += out.correct;
            index += 1;
            progress(
                index,
                batches,
                loss_sum / (index * batch).min(train.len()) as f64,
            );
        }
        Ok(EpochPass {
            learning_rate: lr,
            loss: loss_sum / train.len() as f64,
            accuracy: correct as f64 / train.len() as f64,
        })
    }

    /// Puts epoch `epoch`'s augmented copy of `train` into `self.augmented`, and starts
    /// making the next epoch's on another thread while this one trains, so that on a
    /// machine with a core to spare augmentation costs an epoch next to nothing. The
    /// bytes are the same whichever thread makes them ([`crate::augment`]).
    fn augment_images(&mut self, a: &Augment, train: &Dataset, epoch: usize) {
        let (seed, threads) = (self.config.seed, self.compute.threads);
        let current = self
            .augmenter
            .take()
            .filter(|g| g.sources.holds(&train.pixels, train.shape));
        let sources = match &current {
            Some(g) => std::sync::Arc::clone(&g.sources),
            None => std::sync::Arc::new(crate::augment::Sources::new(&train.pixels, train.shape)),
        };
        let made = current
            .and_then(|g| g.next)
            .filter(|(e, _)| *e == epoch)
            .and_then(|(_, handle)| handle.join().ok());
        let previous = match made {
            Some(images) => std::mem::replace(&mut self.augmented, images),
            None => {
                self.augmented.resize(train.pixels.len(), 0);
                sources.augment_epoch(a, &mut self.augmented, seed, epoch as u64, threads);
                Vec::new()
            }
        };
        let next = epoch + 1;
        let handle = (next < self.config.epochs)
            .then(|| {
                let (sources, a) = (std::sync::Arc::clone(&sources), *a);
                let mut buffer = previous;
                std::thread::Builder::new()
                    .name("augment".into())
                    .spawn(move || {
                        buffer.resize(sources.len() * sources.features(), 0);
                        sources.augment_epoch(&a, &mut buffer, seed, next as u64, 1);
                        buffer
                    })
                    .ok()
            })
            .flatten();
        self.augmenter = Some(Augmenter {
            sources,
            next: handle.map(|h| (next, h)),
        });
    }

    /// One epoch: a [`Training::pass`] over `train`, then validation, early stopping's
    /// bookkeeping and the epoch's record, which it returns.
    ///
    /// # Errors
    /// [`Diverged`] (the epoch changed the weights up to the diverging batch and is
    /// not recorded), [`Interrupted`] (likewise), or the kernels' errors.
    pub fn epoch(
        &mut self,
        train: &Dataset,
        validation: &Dataset,
        progress: impl FnMut(usize, usize, f64),
    ) -> Result<EpochMetrics> {
        let started = Instant::now();
        let pass = self.pass(train, progress)?;
        // No validation set (`--validation 0` on a CSV file): no validation figures.
        let val = if validation.is_empty() {
            Evaluation {
                loss: f64::NAN,
                accuracy: f64::NAN,
                count: 0,
                confusion: Vec::new(),
            }
        } else {
            self.compute.evaluate(&self.model, validation)?
        };
        let m = EpochMetrics {
            epoch: self.epochs_done() + 1,
            learning_rate: pass.learning_rate,
            train_loss: pass.loss,
            train_accuracy: pass.accuracy,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        if let Some(es) = self.config.early_stopping {
            let value = match es.monitor {
                Monitor::ValAccuracy => m.val_accuracy,
                Monitor::ValLoss => m.val_loss,
            };
            if improves(es.monitor, value, self.early.best) {
                self.early.best = Some((m.epoch, value));
                self.early.best_params.clone_from(&self.model.params);
                self.early.bad_epochs = 0;
            } else {
                self.early.bad_epochs += 1;
                if self.early.bad_epochs >= es.patience && m.epoch < self.config.epochs {
                    self.stopped_early = true;
                }
            }
        }
        self.history.push(m.clone());
        Ok(m)
    }

    /// Everything needed to continue the run exactly from here.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            config: self.config.clone(),
            epochs_done: self.epochs_done(),
            sizes: self.sizes.clone(),
            params: self.model.params.clone(),
            optimizer: self.optimizer.state.clone(),
            rng_word_pos: self.rng.get_word_pos(),
            history: self.history.clone(),
            early: self.early.clone(),
            stopped_early: self.stopped_early,
            data: None,
        }
    }

    /// The epoch whose weights [`Training::finish`] keeps, when early stopping is on.
    pub fn best_epoch(&self) -> Option<usize> {
        self.early.best.map(|b| b.0)
    }

    /// The model to keep: the best epoch's with early stopping, else the last.
    pub fn finish(mut self) -> Mlp {
        if self.config.early_stopping.is_some() && !self.early.best_params.is_empty() {
            self.model.params = std::mem::take(&mut self.early.best_params);
        }
        self.model
    }
}

/// Trains as `config` says (or continues the checkpoint in `options.resume`), writes
/// the model, metrics log, chart and checkpoint into `options.out_dir`, and evaluates
/// the model on the test set. Uses the fast kernels on one thread; see [`run_with`].
pub fn run(config: TrainConfig, options: &RunOptions) -> Result<TrainReport> {
    run_with(config, options, Compute::default())
}

/// [`run`] with a choice of kernels and threads. A run resumed from a checkpoint
/// gives the uninterrupted run's exact bytes (when nothing was changed on resume).
/// The data directory is made absolute and the SHA-256 of its files is stored in
/// every checkpoint; a finished run also writes [`files::SUMMARY`].
///
/// The output directory is created only once the data and settings have been checked,
/// and removed again (with any parent this run created) if the run fails before
/// writing anything into it. A Ctrl-C ([`crate::interrupt`]) abandons the epoch in
/// progress and writes the model and checkpoint of the last finished epoch
/// ([`TrainReport::interrupted`]); if no epoch had finished, the error is
/// [`Interrupted`].
pub fn run_with(
    config: TrainConfig,
    options: &RunOptions,
    compute: Compute,
) -> Result<TrainReport> {
    let started = Instant::now();
    let resumed = match &options.resume {
        Some(path) => Some(Checkpoint::load(path)?),
        None => None,
    };
    let mut config = config;
    if let Some(ck) = &resumed {
        check_resume(&ck.config, &config, ck.epochs_done)?;
        if ck.stopped_early && config.epochs != ck.config.epochs {
            bail!(
                "--epochs {}: early stopping ended this run after epoch {}; it cannot continue",
                config.epochs,
                ck.epochs_done
            );
        }
    }
    check_config(&config)?;
    // Absolute, so that a checkpoint resumes from any working directory (the bundled
    // digits are no directory: they are compiled in).
    if !data::is_bundled(&config.data_dir) {
        if let Ok(absolute) = std::path::absolute(&config.data_dir) {
            config.data_dir = absolute;
        }
    }
    let out = options.out_dir.as_path();
    let from_checkpoint = resumed.as_ref().is_some_and(|ck| {
        ck.config.data_dir == config.data_dir
            || std::path::absolute(&ck.config.data_dir).ok() == Some(config.data_dir.clone())
    });
    if let Some(test) = config.table.as_mut().and_then(|t| t.test.as_mut()) {
        if let Ok(absolute) = std::path::absolute(&*test) {
            *test = absolute;
        }
    }
    let (splits, normalization) = match &config.table {
        Some(source) => data::load_table_splits(
            &config.data_dir,
            source,
            config.validation,
            config.train_limit,
            data::TableInputs::Standardized,
        )
        .map(|t| (t.splits, Some(t.normalization))),
        None => data::load_splits(&config.data_dir, config.validation, config.train_limit)
            .map(|s| (s, None)),
    }
    .map_err(|e| match (from_checkpoint, config.table.is_some()) {
        (false, _) => e,
        (true, false) => e.context("the data directory the checkpoint names cannot be used; if the data moved, pass --data with where it is now"),
        (true, true) => e.context("the CSV files the checkpoint names cannot be used; if they moved, pass --data (and --test) with where they are now"),
    })?;
    // The run's files must not overwrite its data (a link or another spelling of it).
    let mut inputs = data::data_files(&config.data_dir);
    if let Some(t) = &config.table {
        inputs.push(config.data_dir.clone());
        inputs.extend(t.test.clone());
    }
    for name in [
        files::MODEL,
        files::METRICS,
        files::CURVES,
        files::CHECKPOINT,
    ] {
        crate::fsio::refuse_overwriting_input(&out.join(name), &inputs)?;
    }
    let data_files = match &config.table {
        Some(source) => data::DataFiles::of_table(&config.data_dir, source)?,
        None => data::DataFiles::of_dir(&config.data_dir)?,
    };
    if let Some(ck) = &resumed {
        match &ck.data {
            Some(expected) => {
                if let Some(diff) = data_files.difference(expected) {
                    bail!(
                        "{}: not the data the checkpoint was trained on: {diff}",
                        config.data_dir.display()
                    );
                }
            }
            None if !from_checkpoint => eprintln!(
                "mlp-train: warning: this checkpoint (version 1) has no data digests; {} cannot be checked against the data it was trained on",
                config.data_dir.display()
            ),
            None => {}
        }
    }
    let (features, classes) = (splits.train.features, splits.train.classes);
    // The state after the last finished epoch, for a Ctrl-C mid-epoch.
    let last_finished = resumed.clone();
    let mut training = match resumed {
        Some(mut ck) => {
            let name = options
                .resume
                .as_deref()
                .unwrap_or(Path::new("checkpoint"))
                .display()
                .to_string();
            if options.verbose {
                let verified = ck.data.is_some();
                out!(
                    "{}",
                    resume_changes(&ck.config, &config, ck.epochs_done, verified)
                );
            }
            ck.config = config.clone();
            Training::resume(ck, (features, classes), compute, &name)?
        }
        None => Training::with_classes(config, features, classes, compute)?,
    };
    training.stop_on(crate::interrupt::flag());
    let created = crate::fsio::create_output_dir(out)?;
    let result = train_and_save(
        training,
        last_finished,
        (&splits, normalization.as_ref()),
        &data_files,
        options,
        compute,
        started,
    );
    if result.is_err() {
        crate::fsio::remove_empty_dirs(&created);
    }
    result
}

/// The epochs of [`run_with`] and the files they write.
fn train_and_save(
    mut training: Training,
    mut last_finished: Option<Checkpoint>,
    // The sets, and a CSV file's normalization, which the model file stores.
    (splits, normalization): (&data::Splits, Option<&data::Normalization>),
    data_files: &data::DataFiles,
    options: &RunOptions,
    compute: Compute,
    started: Instant,
) -> Result<TrainReport> {
    let out = options.out_dir.as_path();
    let config = training.config().clone();
    let checkpoint_path = out.join(files::CHECKPOINT);
    let batches = splits.train.len().div_ceil(config.batch_size);

    while !training.is_done() {
        let epoch = training.epochs_done() + 1;
        let bar = progress_bar(options.verbose, batches, epoch, config.epochs);
        let epoch_start = Instant::now();
        let mut last_draw = Instant::now();
        let result = training.epoch(&splits.train, &splits.validation, |done, _, loss| {
            if options.verbose && last_draw.elapsed().as_millis() >= 100 {
                last_draw = Instant::now();
                let seen = (done * config.batch_size).min(splits.train.len());
                let rate = seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(done as u64);
                bar.set_message(progress_message(loss, rate));
            }
        });
        bar.finish_and_clear();
        let m = match result {
            Ok(m) => m,
            Err(e) => {
                if let Some(&Interrupted { epoch }) = e.downcast_ref::<Interrupted>() {
                    let Some(ck) = last_finished else {
                        return Err(e);
                    };
                    return save_interrupted(
                        ck,
                        normalization,
                        splits.train.class_names.as_deref(),
                        out,
                        epoch,
                        started,
                    );
                }
                if e.is::<Diverged>() {
                    let kept = if epoch == 1 {
                        "no checkpoint was written yet".to_owned()
                    } else {
                        format!(
                            "the last good checkpoint (epoch {}) is kept in {}",
                            epoch - 1,
                            checkpoint_path.display()
                        )
                    };
                    bail!("{e} ({kept})");
                }
                return Err(e);
            }
        };
        if options.verbose {
            outln!("{}", epoch_line(&m, config.epochs));
        }
        let mut checkpoint = training.checkpoint();
        checkpoint.data = Some(data_files.clone());
        checkpoint.save(&checkpoint_path)?;
        last_finished = Some(checkpoint);
        metrics::write_csv(&out.join(files::METRICS), training.history())?;
        crate::plot::write_curves(&out.join(files::CURVES), training.history())?;
        if training.stopped_early() && options.verbose {
            outln!(
                "early stopping: no improvement for {}; keeping epoch {}",
                plural(config.early_stopping.map_or(0, |e| e.patience), "epoch"),
                training.best_epoch().unwrap_or(0)
            );
        }
        if options.stop_after == Some(m.epoch) && !training.is_done() {
            return Ok(TrainReport {
                config,
                history: training.history().to_vec(),
                test: None,
                best_epoch: None,
                stopped_early: false,
                model_path: None,
                seconds: started.elapsed().as_secs_f64(),
                interrupted: None,
            });
        }
    }

    let best_epoch = training.best_epoch();
    let stopped_early = training.stopped_early();
    let history = training.history().to_vec();
    let mut model = training.finish();
    describe_inputs(
        &mut model,
        &config.data_dir,
        normalization,
        splits.train.class_names.as_deref(),
    )?;
    let model_path = out.join(files::MODEL);
    model.save(&model_path)?;
    // A fresh run's chart and log exist after epoch 1; make sure they do even if a
    // resumed checkpoint had every epoch done already.
    metrics::write_csv(&out.join(files::METRICS), &history)?;
    crate::plot::write_curves(&out.join(files::CURVES), &history)?;
    let test = compute.evaluate(&model, &splits.test)?;
    let summary = crate::summary::run_summary(
        &config,
        compute,
        &history,
        best_epoch.unwrap_or(history.len()),
        stopped_early,
        &test,
        files::MODEL,
        &model.to_bytes()?,
        data_files,
        started.elapsed().as_secs_f64(),
    );
    crate::summary::write_summary(&out.join(files::SUMMARY), &summary)?;
    Ok(TrainReport {
        config,
        history,
        test: Some(test),
        best_epoch,
        stopped_early,
        model_path: Some(model_path),
        seconds: started.elapsed().as_secs_f64(),
        interrupted: None,
    })
}

/// What a model file says of its inputs and classes. Images: pixels, and the data
/// set's class names (digits, or Fashion-MNIST's). A CSV file's features were
/// standardized with the training split's `normalization` before training: the model
/// stores it, so that the host and the device apply it to raw features alike, with the
/// file's named labels (if any) as class names.
fn describe_inputs(
    model: &mut Mlp,
    data_dir: &Path,
    normalization: Option<&data::Normalization>,
    table_names: Option<&[String]>,
) -> Result<()> {
    if data::is_table_path(data_dir) {
        let Some(normalization) = normalization else {
            bail!(
                "{}: the CSV file's normalization is missing",
                data_dir.display()
            );
        };
        model.input = crate::model::Input::Standardized {
            offsets: normalization.offset.clone(),
            scales: normalization.scale.clone(),
        };
        model.class_names = table_names.map(<[String]>::to_vec);
    } else {
        model.class_names = Some(data::class_names(data_dir)?);
    }
    Ok(())
}

/// After a Ctrl-C during `epoch`: writes the checkpoint, log, chart and model of the
/// last finished epoch (`ck`; the model is the best epoch's with early stopping), so
/// that `--resume` continues to the uninterrupted run's exact bytes.
fn save_interrupted(
    ck: Checkpoint,
    normalization: Option<&data::Normalization>,
    names: Option<&[String]>,
    out: &Path,
    epoch: usize,
    started: Instant,
) -> Result<TrainReport> {
    ck.save(&out.join(files::CHECKPOINT))?;
    metrics::write_csv(&out.join(files::METRICS), &ck.history)?;
    crate::plot::write_curves(&out.join(files::CURVES), &ck.history)?;
    let mut model = Mlp::zeroed(&ck.sizes)?;
    let best = ck.config.early_stopping.is_some() && !ck.early.best_params.is_empty();
    model.params = if best {
        ck.early.best_params.clone()
    } else {
        ck.params.clone()
    };
    describe_inputs(&mut model, &ck.config.data_dir, normalization, names)?;
    let model_path = out.join(files::MODEL);
    model.save(&model_path)?;
    Ok(TrainReport {
        best_epoch: if best {
            ck.early.best.map(|b| b.0)
        } else {
            None
        },
        config: ck.config,
        history: ck.history,
        test: None,
        stopped_early: false,
        model_path: Some(model_path),
        seconds: started.elapsed().as_secs_f64(),
        interrupted: Some(epoch),
    })
}

/// Evaluates a model file on one split of a data directory, checking that it fits.
pub fn evaluate_file(
    model_path: &Path,
    data_dir: &Path,
    split: data::Split,
    validation: Option<usize>,
) -> Result<Evaluation> {
    evaluate_file_with(model_path, data_dir, split, validation, Compute::default())
}

/// [`evaluate_file`] with a choice of kernels and threads.
pub fn evaluate_file_with(
    model_path: &Path,
    data_dir: &Path,
    split: data::Split,
    validation: Option<usize>,
    compute: Compute,
) -> Result<Evaluation> {
    let model = Mlp::load(model_path)?;
    let data: Dataset = data::load_split(data_dir, split, validation)?;
    model.check_fits(model_path, data.features, CLASSES)?;
    compute.evaluate(&model, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(epoch: usize, loss: f64, acc: f64, lr: f32, seconds: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            learning_rate: lr,
            train_loss: loss,
            train_accuracy: acc,
            val_loss: loss * 1.1,
            val_accuracy: acc,
            seconds,
        }
    }

    #[test]
    fn epoch_lines_fit_80_columns() {
        let typical = epoch_line(&metrics(25, 0.0123, 0.995, 0.1, 0.12), 25);
        assert_eq!(
            typical,
            "epoch  25/25  loss 0.0123/0.0135  acc 99.50%/99.50%  lr 0.1  0.1 s"
        );
        for m in [
            metrics(9999, 123.456, 1.0, 0.000_123_45, 9999.9),
            metrics(9999, 2.2e30, 0.0861, 1e-30, 123_456.0),
            metrics(1000, 12.5, 1.0, 0.097_552_83, 9.87),
            metrics(1, f64::NAN, 0.0, 999.0, 0.0),
        ] {
            let line = epoch_line(&m, m.epoch);
            let width = line.chars().count();
            assert!(width <= 80, "{width} columns: {line}");
        }
        assert_eq!(short_rate(0.1), "0.1");
        assert_eq!(short_rate(0.001), "0.001");
        assert_eq!(short_rate(0.000_75), "0.00075");
        assert_eq!(short_rate(1e-30), "1e-30");
        assert_eq!(short_loss(2.2e30), "2.2e30");
    }

    /// A terminal of 80 columns that records what is drawn on it.
    #[derive(Clone, Debug, Default)]
    struct Terminal80(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl indicatif::TermLike for Terminal80 {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn progress_bar_fits_80_columns() {
        let term = Terminal80::default();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(60_000),
            indicatif::ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        style_progress(&bar, 9999, 9999);
        bar.set_position(12_345);
        bar.set_message(progress_message(2.2e30, 1_234_567.0));
        bar.tick();
        bar.set_message(progress_message(0.1234, 25_000.0));
        bar.tick();
        let drawn = term.0.lock().unwrap().clone();
        let lines: Vec<&str> = drawn
            .iter()
            .flat_map(|s| s.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(lines.iter().any(|l| l.contains("12345/60000")), "{drawn:?}");
        for line in lines {
            let width = line.chars().count();
            assert!(width <= 80, "{width} columns: {line}");
        }
    }

    #[test]
    fn improvement_rules() {
        assert!(improves(Monitor::ValAccuracy, 0.5, None));
        assert!(improves(Monitor::ValAccuracy, 0.6, Some((1, 0.5))));
        assert!(!improves(Monitor::ValAccuracy, 0.5, Some((1, 0.5))));
        assert!(improves(Monitor::ValLoss, 0.4, Some((1, 0.5))));
        assert!(!improves(Monitor::ValLoss, 0.6, Some((1, 0.5))));
    }
}
