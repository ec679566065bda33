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

use crate::checkpoint::{Checkpoint, EarlyState};
use crate::data::{self, Dataset, CLASSES};
use crate::metrics::{self, EpochMetrics, Evaluation};
use crate::model::Mlp;
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use crate::output::outln;

/// The quantity early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    /// MNIST-format data directory.
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
        }
    }
}

/// How to run (things that do not change the result).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Directory for the model, log, chart and checkpoint.
    pub out_dir: PathBuf,
    /// Continue from this checkpoint (its configuration is used).
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

/// The layer sizes a configuration gives for data with `features` inputs.
pub fn layer_sizes(config: &TrainConfig, features: usize) -> Vec<usize> {
    let mut sizes = vec![features];
    sizes.extend(&config.hidden);
    sizes.push(CLASSES);
    sizes
}

fn check_config(c: &TrainConfig) -> Result<()> {
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
    if let Some(e) = c.early_stopping {
        if e.patience == 0 {
            bail!("--patience must be at least 1");
        }
    }
    Ok(())
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
    let style = indicatif::ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}  eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
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
    /// Gradients, for optimizers that are not fused into the kernels.
    grads: Vec<f32>,
    /// When set, a pass stops before its next batch ([`Interrupted`]).
    stop: Option<&'static AtomicBool>,
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
        check_config(&config)?;
        let sizes = layer_sizes(&config, features);
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
            stop: None,
        })
    }

    /// Watches `flag` (e.g. [`crate::interrupt::flag`]): once it is set, a pass stops
    /// before its next batch with [`Interrupted`].
    pub fn stop_on(&mut self, flag: &'static AtomicBool) {
        self.stop = Some(flag);
    }

    /// The run a checkpoint saved, on data with `features` inputs, ready to continue
    /// where it stopped; `name` names the checkpoint in errors.
    ///
    /// # Errors
    /// If the checkpoint does not fit the data or its own configuration.
    pub fn resume(
        ck: Checkpoint,
        features: usize,
        compute: Compute,
        name: &str,
    ) -> Result<Training> {
        let mut t = Training::new(ck.config.clone(), features, compute)?;
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
        let inputs = train.inputs();
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
        let val = self.compute.evaluate(&self.model, validation)?;
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
/// gives the uninterrupted run's exact bytes.
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
    let config = resumed.as_ref().map_or(config, |c| c.config.clone());
    check_config(&config)?;
    let out = options.out_dir.as_path();
    let splits = data::load_splits(&config.data_dir, config.validation, config.train_limit)?;
    // The run's files must not overwrite its data (a link or another spelling of it).
    let inputs = data::data_files(&config.data_dir);
    for name in [
        files::MODEL,
        files::METRICS,
        files::CURVES,
        files::CHECKPOINT,
    ] {
        crate::fsio::refuse_overwriting_input(&out.join(name), &inputs)?;
    }
    let features = splits.train.features;
    // The state after the last finished epoch, for a Ctrl-C mid-epoch.
    let last_finished = resumed.clone();
    let mut training = match resumed {
        Some(ck) => {
            let name = options
                .resume
                .as_deref()
                .unwrap_or(Path::new("checkpoint"))
                .display()
                .to_string();
            Training::resume(ck, features, compute, &name)?
        }
        None => Training::new(config, features, compute)?,
    };
    training.stop_on(crate::interrupt::flag());
    let created = crate::fsio::create_output_dir(out)?;
    let result = train_and_save(training, last_finished, &splits, options, compute, started);
    if result.is_err() {
        crate::fsio::remove_empty_dirs(&created);
    }
    result
}

/// The epochs of [`run_with`] and the files they write.
fn train_and_save(
    mut training: Training,
    mut last_finished: Option<Checkpoint>,
    splits: &data::Splits,
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
                bar.set_message(format!("loss {loss:.4}  {rate:.0} samples/s"));
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
                    return save_interrupted(ck, out, epoch, started);
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
            outln!(
                "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  val loss {:.4} acc {:6.2}%  lr {:.5}  {:.2} s",
                m.epoch,
                config.epochs,
                m.train_loss,
                100.0 * m.train_accuracy,
                m.val_loss,
                100.0 * m.val_accuracy,
                m.learning_rate,
                m.seconds
            );
        }
        let checkpoint = training.checkpoint();
        checkpoint.save(&checkpoint_path)?;
        last_finished = Some(checkpoint);
        metrics::write_csv(&out.join(files::METRICS), training.history())?;
        crate::plot::write_curves(&out.join(files::CURVES), training.history())?;
        if training.stopped_early() && options.verbose {
            outln!(
                "early stopping: no improvement for {} epochs; keeping epoch {}",
                config.early_stopping.map_or(0, |e| e.patience),
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
    let model = training.finish();
    let model_path = out.join(files::MODEL);
    model.save(&model_path)?;
    // A fresh run's chart and log exist after epoch 1; make sure they do even if a
    // resumed checkpoint had every epoch done already.
    metrics::write_csv(&out.join(files::METRICS), &history)?;
    crate::plot::write_curves(&out.join(files::CURVES), &history)?;
    let test = compute.evaluate(&model, &splits.test)?;
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

/// After a Ctrl-C during `epoch`: writes the checkpoint, log, chart and model of the
/// last finished epoch (`ck`; the model is the best epoch's with early stopping), so
/// that `--resume` continues to the uninterrupted run's exact bytes.
fn save_interrupted(
    ck: Checkpoint,
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

    #[test]
    fn improvement_rules() {
        assert!(improves(Monitor::ValAccuracy, 0.5, None));
        assert!(improves(Monitor::ValAccuracy, 0.6, Some((1, 0.5))));
        assert!(!improves(Monitor::ValAccuracy, 0.5, Some((1, 0.5))));
        assert!(improves(Monitor::ValLoss, 0.4, Some((1, 0.5))));
        assert!(!improves(Monitor::ValLoss, 0.6, Some((1, 0.5))));
    }
}
