//! Exports one training run step by step, so that another implementation
//! (`bench/trace_compare.py`, NumPy) can replay it from the same start and compare.
//!
//! The run is the trainer's default configuration (784-100-200-10, SGD at 0.1, batch
//! 32) with `--seed` and `--kernels`, replayed with the public API exactly as
//! `mlp_train::train::Training` runs it: a ChaCha8 generator seeded with the seed,
//! Xavier init from it, then one shuffle per epoch, and each step
//! `mlp_kernels::Trainer::step` gathering the batch from the set's pixel bytes with
//! the SGD update fused. Written into `--out`:
//!
//! - `init.f32`: the initial parameters in model-file order (per layer
//!   `W [inputs, outputs]` row-major, then `b`), f32 little-endian;
//! - `order.u32`: the shuffled training indices of every epoch replayed, `epochs × n`;
//! - `loss.f32`: the mean loss of each of the first `--steps` steps;
//! - `params_<step>.f32` (six digits): the parameters after each step in `--at` and
//!   after the last step;
//! - `meta.json`: seed, kernels, layer sizes, batch, learning rate, set size, steps,
//!   epochs of order, snapshot steps;
//! - with `--dump-data`: the sets as the trainer holds them (`{train,validation,test}`
//!   `_x.u8` pixel bytes, `_y.u8` labels) and `pixel_values.f32`, the input each of
//!   the 256 pixel values becomes.
//!
//! `--verify-epochs E` also trains `E` epochs with `Training` itself (on the CLI's
//! default thread count) and fails unless its parameters equal the replay's after `E`
//! epochs bit for bit; the replay runs on as far as that needs.
//!
//! ```text
//! cargo run --release -p mlp-train --example trace -- --data DIR --seed 1 \
//!     --kernels core --steps 500 --at 1,2,10,11,100,101,499 --verify-epochs 1 \
//!     --out target/trace-core
//! bench/trace_compare.py target/trace-core --data DIR
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};
use clap::Parser;
use mlp_kernels::{Batch, Kernels, Trainer, Update};
use mlp_train::cli::parse_kernels;
use mlp_train::data::{self, pixel_value};
use mlp_train::model::Mlp;
use mlp_train::optim::{OptimizerKind, Schedule};
use mlp_train::train::{self, Compute, TrainConfig, Training};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
struct Args {
    /// MNIST-format data directory.
    #[arg(long)]
    data: PathBuf,
    /// The run's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The arithmetic: auto, core, portable, avx2, avx512 or neon.
    #[arg(long, default_value = "auto", value_parser = parse_kernels)]
    kernels: Kernels,
    /// Steps to record.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Steps after which to save the parameters (the last step is always saved).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,500")]
    at: Vec<usize>,
    /// Also write the sets as the trainer loads them.
    #[arg(long)]
    dump_data: bool,
    /// Train this many epochs with `Training` and check it against the replay.
    #[arg(long)]
    verify_epochs: Option<usize>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(std::fs::write(path, bytes)?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let config = TrainConfig {
        data_dir: args.data.clone(),
        seed: args.seed,
        ..TrainConfig::default()
    };
    let optimizer = config.optimizer;
    ensure!(
        optimizer.kind == OptimizerKind::Sgd
            && optimizer.weight_decay == 0.0
            && config.schedule == Schedule::Constant,
        "the replay is the trainer's fused plain SGD at a constant rate"
    );
    std::fs::create_dir_all(&args.out)?;
    let splits = data::load_splits(&config.data_dir, config.validation, config.train_limit)?;
    if args.dump_data {
        let sets = [
            ("train", &splits.train),
            ("validation", &splits.validation),
            ("test", &splits.test),
        ];
        for (name, set) in sets {
            std::fs::write(args.out.join(format!("{name}_x.u8")), &set.pixels)?;
            std::fs::write(args.out.join(format!("{name}_y.u8")), &set.labels)?;
        }
        let values: Vec<f32> = (0..=u8::MAX).map(pixel_value).collect();
        write_f32(&args.out.join("pixel_values.f32"), &values)?;
    }
    let train = &splits.train;
    let n = train.len();
    let sizes = train::layer_sizes(&config, train.features);
    let (batch, lr) = (config.batch_size, config.learning_rate);
    let per_epoch = n.div_ceil(batch);
    let verify_steps = args.verify_epochs.map(|e| e * per_epoch);
    let total = args.steps.max(verify_steps.unwrap_or(0));
    let epochs = total.div_ceil(per_epoch);

    // As `Training::new` and `Training::pass`: one generator for the init, then the
    // shuffles, epoch after epoch.
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut model = Mlp::xavier(&sizes, &mut || rng.next_u64())?;
    write_f32(&args.out.join("init.f32"), &model.params)?;
    let mut orders: Vec<u32> = Vec::with_capacity(epochs * n);
    for _ in 0..epochs {
        let start = orders.len();
        orders.extend(0..n as u32);
        orders[start..].shuffle(&mut rng);
    }
    let bytes: Vec<u8> = orders.iter().flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(args.out.join("order.u32"), bytes)?;

    let mut at: Vec<usize> = args.at.iter().copied().chain([args.steps]).collect();
    at.retain(|&s| (1..=args.steps).contains(&s));
    at.sort_unstable();
    at.dedup();

    let mut trainer = Trainer::new(args.kernels, &sizes, batch, 1)?;
    let batches: Vec<&[u32]> = orders.chunks(n).flat_map(|e| e.chunks(batch)).collect();
    let mut losses = Vec::with_capacity(args.steps);
    let mut replayed = None;
    for s in 1..=total {
        let indices = batches[s - 1];
        let labels: Vec<u8> = indices.iter().map(|&i| train.labels[i as usize]).collect();
        let next = batches.get(s).copied().filter(|_| s % per_epoch != 0);
        let step = Batch::Gather {
            inputs: train.inputs(),
            indices,
            next: next.unwrap_or(&[]),
        };
        let out = trainer.step(&mut model.params, step, &labels, Update::Sgd(lr));
        ensure!(out.loss.is_finite(), "step {s}: the loss is {}", out.loss);
        if s <= args.steps {
            losses.push(out.loss);
        }
        if at.contains(&s) {
            let path = args.out.join(format!("params_{s:06}.f32"));
            write_f32(&path, &model.params)?;
        }
        if verify_steps == Some(s) {
            replayed = Some(model.params.clone());
        }
    }
    write_f32(&args.out.join("loss.f32"), &losses)?;
    let meta = format!(
        "{{\"seed\": {}, \"kernels\": \"{}\", \"sizes\": {sizes:?}, \"batch\": {batch}, \
         \"learning_rate\": {lr}, \"train\": {n}, \"steps\": {}, \"order_epochs\": {epochs}, \
         \"snapshots\": {at:?}}}\n",
        args.seed, args.kernels, args.steps
    );
    std::fs::write(args.out.join("meta.json"), meta)?;
    println!(
        "{}: {} steps with kernels {}, snapshots after steps {at:?}",
        args.out.display(),
        args.steps,
        args.kernels
    );

    if let (Some(epochs), Some(replayed)) = (args.verify_epochs, replayed) {
        let compute = Compute {
            kernels: args.kernels,
            threads: train::default_threads(),
        };
        let config = TrainConfig { epochs, ..config };
        let mut training = Training::new(config, train.features, compute)?;
        while !training.is_done() {
            training.epoch(train, &splits.validation, |_, _, _| {})?;
        }
        let trained = &training.model().params;
        let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let same = bits(trained) == bits(&replayed);
        let verdict = if same {
            "bit-identical to"
        } else {
            "DIFFER from"
        };
        let val = training.history().last().map(|m| 100.0 * m.val_accuracy);
        println!(
            "verify: Training, {epochs} epochs, {} threads: parameters {verdict} the replay's \
             (validation accuracy {:.2}%)",
            compute.threads,
            val.unwrap_or(f64::NAN)
        );
        if !same {
            bail!("the replay does not reproduce the trainer");
        }
    }
    Ok(())
}
