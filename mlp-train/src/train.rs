//! The training loop: minibatch gradient descent over shuffled data with the core's
//! kernels, validation after every epoch, early stopping, checkpoints, divergence
//! detection, progress output, and the run's output files.
//!
//! One step on a batch `x: [b, 784]`: forward through every layer (`dense_forward`,
//! `relu_forward` between layers), `softmax_cross_entropy` with its gradient, then
//! backward from the last layer (`dense_backward`, `relu_backward`), then the
//! optimizer's update. All buffers are allocated once per run; a step allocates
//! nothing.
//!
//! The products run on the fast host kernels ([`crate::fast`]) unless
//! [`Compute::kernels`] asks for the core's; plain SGD is then fused into the weight
//! gradients' products. Either way a run is deterministic for a given machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use mlp_core::activation::relu_backward;
use mlp_core::dense::{dense_backward, DenseShape};
use mlp_core::loss::{argmax, softmax_cross_entropy};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, EarlyState};
use crate::data::{self, Dataset, CLASSES};
use crate::fast::{self, Inputs, Isa, Kernels, Trainer, Update};
use crate::metrics::{self, activation_buffers, forward_batch, EpochMetrics, Evaluation};
use crate::model::Mlp;
use crate::optim::{Optimizer, OptimizerConfig, Schedule};

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

/// Which kernels compute a run, and on how many threads (things that do not change
/// what is computed, only how; the fast kernels round differently from the core's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compute {
    /// The fast kernels (default) or the core's.
    pub kernels: Kernels,
    /// Threads for the fast kernels' training steps and for evaluating the validation
    /// and test sets (at least 1). Training steps give the same bits on any count;
    /// an evaluation's loss depends on it through the order it is summed in.
    pub threads: usize,
}

/// The thread count the command line uses unless told otherwise: the cores this
/// process may run on (`std::thread::available_parallelism`, 1 if unknown), at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_DEFAULT_THREADS))
}

/// The most threads used by default. A training step is only 90–150 µs of work, so
/// more threads mean shorter items and more waiting; 2 is the only count measured to
/// pay (about 1.6× one thread on a 2-core machine). `--threads` asks for more.
pub const MAX_DEFAULT_THREADS: usize = 2;

impl Default for Compute {
    fn default() -> Self {
        Compute {
            kernels: Kernels::Auto,
            threads: 1,
        }
    }
}

impl Compute {
    /// Evaluates `model` on `data` with these kernels.
    pub fn evaluate(&self, model: &Mlp, data: &Dataset) -> Evaluation {
        match self.kernels.fast_isa() {
            Some(isa) => fast::evaluate(isa, model, data, self.threads),
            None => metrics::evaluate(model, data),
        }
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
}

/// Preallocated buffers for one training step.
pub(crate) struct StepBuffers {
    pub(crate) x: Vec<f32>,
    pub(crate) y: Vec<u8>,
    acts: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    pub(crate) grads: Vec<f32>,
}

impl StepBuffers {
    pub(crate) fn new(model: &Mlp, batch: usize) -> StepBuffers {
        StepBuffers {
            x: vec![0.0; batch * model.inputs()],
            y: vec![0; batch],
            acts: activation_buffers(model, batch),
            deltas: activation_buffers(model, batch),
            grads: vec![0.0; model.params.len()],
        }
    }
}

/// Forward and backward pass on the batch in `buf.x`/`buf.y` (first `b` rows): fills
/// `buf.grads` and returns the mean loss and the number classified right.
pub(crate) fn compute_gradients(model: &Mlp, buf: &mut StepBuffers, b: usize) -> (f32, usize) {
    let layers = model.layout();
    let last = layers.len() - 1;
    let classes = model.classes();
    forward_batch(model, &buf.x, b, &mut buf.acts);
    let logits = &buf.acts[last][..b * classes];
    let labels = &buf.y[..b];
    let loss = softmax_cross_entropy(
        logits,
        labels,
        classes,
        Some(&mut buf.deltas[last][..b * classes]),
    );
    let correct = logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == usize::from(l))
        .count();
    for (k, l) in layers.iter().enumerate().rev() {
        let shape = DenseShape::new(b, l.inputs, l.outputs);
        let input: &[f32] = if k == 0 {
            &buf.x[..b * l.inputs]
        } else {
            &buf.acts[k - 1][..b * l.inputs]
        };
        let (before, from_k) = buf.deltas.split_at_mut(k);
        let grad_out = &from_k[0][..b * l.outputs];
        let (grad_w, grad_b) =
            buf.grads[l.weights.start..l.bias.end].split_at_mut(l.inputs * l.outputs);
        let weights = &model.params[l.weights.clone()];
        if k == 0 {
            dense_backward(shape, input, weights, grad_out, None, grad_w, grad_b);
        } else {
            let grad_in = &mut before[k - 1][..b * l.inputs];
            dense_backward(
                shape,
                input,
                weights,
                grad_out,
                Some(&mut *grad_in),
                grad_w,
                grad_b,
            );
            relu_backward(input, grad_in);
        }
    }
    (loss, correct)
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

/// Trains as `config` says (or continues the checkpoint in `options.resume`), writes
/// the model, metrics log, chart and checkpoint into `options.out_dir`, and evaluates
/// the model on the test set. Uses the fast kernels on one thread; see [`run_with`].
pub fn run(config: TrainConfig, options: &RunOptions) -> Result<TrainReport> {
    run_with(config, options, Compute::default())
}

/// [`run`] with a choice of kernels and threads. A run resumed from a checkpoint
/// gives the uninterrupted run's exact bytes when both use the same `compute` on the
/// same machine.
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
    crate::fsio::create_output_dir(out)?;
    let splits = data::load_splits(&config.data_dir, config.validation, config.train_limit)?;
    let sizes = layer_sizes(&config, splits.train.features);

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut model = Mlp::xavier(&sizes, &mut || rng.next_u64())?;
    let mut optimizer = Optimizer::new(config.optimizer, model.params.len());
    let mut history = Vec::new();
    let mut early = EarlyState::default();
    let mut stopped_early = false;
    let mut start_epoch = 0;
    if let Some(ck) = resumed {
        let name = options
            .resume
            .as_deref()
            .unwrap_or(Path::new("checkpoint"))
            .display();
        if ck.sizes != sizes {
            bail!(
                "{name}: checkpoint layer sizes {:?} do not fit the data ({:?})",
                ck.sizes,
                sizes
            );
        }
        let fresh = Optimizer::new(config.optimizer, model.params.len());
        if ck.optimizer.first.len() != fresh.state.first.len()
            || ck.optimizer.second.len() != fresh.state.second.len()
        {
            bail!("{name}: checkpoint optimizer state does not fit its configuration");
        }
        model.params = ck.params;
        optimizer.state = ck.optimizer;
        rng.set_word_pos(ck.rng_word_pos);
        history = ck.history;
        early = ck.early;
        stopped_early = ck.stopped_early;
        start_epoch = ck.epochs_done;
    }

    let train = &splits.train;
    let batch = config.batch_size.min(train.len());
    let mut buf = StepBuffers::new(&model, batch);
    let isa: Option<Isa> = compute.kernels.fast_isa();
    let mut fast_step = isa.map(|isa| Trainer::with_threads(isa, &model, batch, compute.threads));
    // The fast steps gather their rows from the pixel bytes when the set has them (a
    // quarter of the memory traffic; the same bits).
    let pixels = fast_step.as_ref().and_then(|_| train.pixels());
    let inputs = Inputs::of(train, pixels.as_deref());
    // Plain SGD without weight decay is fused into the fast kernels' products.
    let fused_sgd = optimizer.config.kind == crate::optim::OptimizerKind::Sgd
        && optimizer.config.weight_decay == 0.0;
    let mut order: Vec<u32> = Vec::with_capacity(train.len());
    let checkpoint_path = out.join(files::CHECKPOINT);
    let batches = train.len().div_ceil(batch);
    let features = train.features;

    for epoch in start_epoch..config.epochs {
        if stopped_early {
            break;
        }
        let epoch_start = Instant::now();
        let lr = config
            .schedule
            .rate(config.learning_rate, epoch, config.epochs);
        order.clear();
        order.extend(0..train.len() as u32);
        order.shuffle(&mut rng);
        let bar = progress_bar(options.verbose, batches, epoch + 1, config.epochs);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut last_draw = Instant::now();
        for (index, chunk) in order.chunks(batch).enumerate() {
            let b = chunk.len();
            for (label, &i) in buf.y.iter_mut().zip(chunk) {
                *label = train.labels[i as usize];
            }
            let (loss, right) = match fast_step.as_mut() {
                Some(step) => {
                    let update = if fused_sgd {
                        Update::Sgd(lr)
                    } else {
                        Update::Gradients(&mut buf.grads)
                    };
                    // The step copies the rows itself, split between its threads.
                    let next = order.chunks(batch).nth(index + 1).unwrap_or(&[]);
                    step.step_on(&mut model, inputs, chunk, next, &buf.y[..b], update)
                }
                None => {
                    for (row, &i) in chunk.iter().enumerate() {
                        let i = i as usize;
                        buf.x[row * features..(row + 1) * features].copy_from_slice(train.input(i));
                    }
                    compute_gradients(&model, &mut buf, b)
                }
            };
            if !loss.is_finite() {
                bar.finish_and_clear();
                let kept = if epoch == 0 {
                    "no checkpoint was written yet".to_owned()
                } else {
                    format!(
                        "the last good checkpoint (epoch {epoch}) is kept in {}",
                        checkpoint_path.display()
                    )
                };
                bail!(
                    "training diverged: the loss became {loss} at epoch {}, batch {}; lower the learning rate ({kept})",
                    epoch + 1,
                    index + 1
                );
            }
            if fast_step.is_some() && fused_sgd {
                // The step already applied the update; count it as the optimizer would.
                optimizer.state.steps += 1;
            } else {
                optimizer.step(&mut model.params, &mut buf.grads, lr);
            }
            loss_sum += f64::from(loss) * b as f64;
            correct += right;
            if options.verbose && last_draw.elapsed().as_millis() >= 100 {
                last_draw = Instant::now();
                let seen = (index + 1) * batch;
                let rate = seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(index as u64 + 1);
                bar.set_message(format!(
                    "loss {:.4}  {:.0} samples/s",
                    loss_sum / seen as f64,
                    rate
                ));
            }
        }
        bar.finish_and_clear();
        let val = compute.evaluate(&model, &splits.validation);
        let m = EpochMetrics {
            epoch: epoch + 1,
            learning_rate: lr,
            train_loss: loss_sum / train.len() as f64,
            train_accuracy: correct as f64 / train.len() as f64,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        if options.verbose {
            println!(
                "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  val loss {:.4} acc {:6.2}%  lr {:.5}  {:.2} s",
                m.epoch,
                config.epochs,
                m.train_loss,
                100.0 * m.train_accuracy,
                m.val_loss,
                100.0 * m.val_accuracy,
                lr,
                m.seconds
            );
        }
        if let Some(es) = config.early_stopping {
            let value = match es.monitor {
                Monitor::ValAccuracy => m.val_accuracy,
                Monitor::ValLoss => m.val_loss,
            };
            if improves(es.monitor, value, early.best) {
                early.best = Some((m.epoch, value));
                early.best_params.clone_from(&model.params);
                early.bad_epochs = 0;
            } else {
                early.bad_epochs += 1;
                if early.bad_epochs >= es.patience && m.epoch < config.epochs {
                    stopped_early = true;
                }
            }
        }
        history.push(m);
        let ck = Checkpoint {
            config: config.clone(),
            epochs_done: epoch + 1,
            sizes: sizes.clone(),
            params: model.params.clone(),
            optimizer: optimizer.state.clone(),
            rng_word_pos: rng.get_word_pos(),
            history: history.clone(),
            early: early.clone(),
            stopped_early,
        };
        ck.save(&checkpoint_path)?;
        metrics::write_csv(&out.join(files::METRICS), &history)?;
        crate::plot::write_curves(&out.join(files::CURVES), &history)?;
        if stopped_early && options.verbose {
            println!(
                "early stopping: no improvement for {} epochs; keeping epoch {}",
                early.bad_epochs,
                early.best.map_or(0, |b| b.0)
            );
        }
        if options.stop_after == Some(epoch + 1) && epoch + 1 < config.epochs && !stopped_early {
            return Ok(TrainReport {
                config,
                history,
                test: None,
                best_epoch: None,
                stopped_early: false,
                model_path: None,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }

    let best_epoch = early.best.map(|b| b.0);
    if config.early_stopping.is_some() && !early.best_params.is_empty() {
        model.params.clone_from(&early.best_params);
    }
    let model_path = out.join(files::MODEL);
    model.save(&model_path)?;
    // A fresh run's chart and log exist after epoch 1; make sure they do even if a
    // resumed checkpoint had every epoch done already.
    metrics::write_csv(&out.join(files::METRICS), &history)?;
    crate::plot::write_curves(&out.join(files::CURVES), &history)?;
    let test = compute.evaluate(&model, &splits.test);
    Ok(TrainReport {
        config,
        history,
        test: Some(test),
        best_epoch,
        stopped_early,
        model_path: Some(model_path),
        seconds: started.elapsed().as_secs_f64(),
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
    Ok(compute.evaluate(&model, &data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state
    }

    fn batch_loss(model: &Mlp, buf: &mut StepBuffers, b: usize) -> f32 {
        forward_batch(model, &buf.x, b, &mut buf.acts);
        let last = buf.acts.len() - 1;
        softmax_cross_entropy(
            &buf.acts[last][..b * model.classes()],
            &buf.y[..b],
            model.classes(),
            None,
        )
    }

    /// The analytic gradients of a training step match central differences.
    #[test]
    fn gradients_match_finite_differences() {
        let mut s = 7u64;
        let mut model = Mlp::xavier(&[6, 5, 4, 3], &mut || lcg(&mut s)).unwrap();
        for p in model.params.iter_mut() {
            *p += 0.05; // non-zero biases too
        }
        let b = 4;
        let mut buf = StepBuffers::new(&model, b);
        for (i, x) in buf.x.iter_mut().enumerate() {
            *x = ((lcg(&mut s) >> 40) as f32 / (1u64 << 24) as f32)
                * if i % 5 == 0 { 0.0 } else { 1.0 };
        }
        buf.y.copy_from_slice(&[0, 2, 1, 2]);
        compute_gradients(&model, &mut buf, b);
        let analytic = buf.grads.clone();
        let eps = 1e-2f32;
        for (i, &a) in analytic.iter().enumerate() {
            let orig = model.params[i];
            model.params[i] = orig + eps;
            let up = f64::from(batch_loss(&model, &mut buf, b));
            model.params[i] = orig - eps;
            let down = f64::from(batch_loss(&model, &mut buf, b));
            model.params[i] = orig;
            let numeric = (up - down) / (2.0 * f64::from(eps));
            let a = f64::from(a);
            assert!(
                (numeric - a).abs() <= 2e-3 + 2e-2 * a.abs(),
                "parameter {i}: analytic {a}, numeric {numeric}"
            );
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
