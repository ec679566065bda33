//! The `bench` command: times the walkthrough's workload with the fast kernels and,
//! in the same run, the NumPy reference (`bench/numpy_mlp.py --serve`), interleaving
//! the two so that both see the same machine load, and prints medians and ratios.
//!
//! The workload: 784-100-200-10, plain SGD with learning rate 0.1, batch 32, one epoch
//! over the first 50,000 training images (Fashion-MNIST's training part once its last
//! 10,000 images are set aside for validation); single-image inference over test
//! images; a batched evaluation of the 10,000 test images. Figures, not a timed test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mlp_kernels::{Isa, Kernels, Predictor};

use crate::data::{self, Dataset};
use crate::output::outln;
use crate::train::{Compute, TrainConfig, Training};

/// The walkthrough's layer sizes.
pub const SIZES: [usize; 4] = [784, 100, 200, 10];
/// The walkthrough's batch size.
pub const BATCH: usize = 32;
/// The walkthrough's learning rate.
pub const LEARNING_RATE: f32 = 0.1;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// MNIST-format data directory.
    pub data: PathBuf,
    /// The NumPy reference script to run alongside (none: Rust figures only).
    pub numpy: Option<PathBuf>,
    /// The Python interpreter for the script.
    pub python: String,
    /// Timed repetitions of each measurement (the median is reported).
    pub rounds: usize,
    /// Images per single-image inference measurement.
    pub infer: usize,
    /// Threads for the training steps and the batched evaluation (a 1-thread epoch is
    /// timed alongside for comparison).
    pub threads: usize,
    /// Also time one epoch with the core's arithmetic.
    pub core_epoch: bool,
    /// The kernels timed.
    pub kernels: Kernels,
    /// Also time NumPy with one BLAS thread (`OPENBLAS_NUM_THREADS=1`), which is
    /// faster than the default two at batch 32 on a 2-core machine.
    pub numpy_single_thread: bool,
}

/// Multiply-adds per image of one training step: forward, weight gradients, and
/// input gradients of every layer but the first (nobody needs that one).
pub fn training_macs_per_image(sizes: &[usize]) -> usize {
    let layer: Vec<usize> = sizes.windows(2).map(|w| w[0] * w[1]).collect();
    2 * layer.iter().sum::<usize>() + layer.iter().skip(1).sum::<usize>()
}

/// The NumPy reference, answering one command per line.
struct NumPy {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl NumPy {
    fn start(python: &str, script: &Path, data: &Path, one_thread: bool) -> Result<NumPy> {
        let mut command = Command::new(python);
        if one_thread {
            for var in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
                command.env(var, "1");
            }
        }
        let mut child = command
            .arg(script)
            .arg("--serve")
            .arg("--data")
            .arg(data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {python} {}", script.display()))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut np = NumPy {
            child,
            stdin,
            stdout,
        };
        let ready = np.read_line()?;
        if !ready.contains("\"ready\"") {
            bail!("the NumPy reference did not start: {ready}");
        }
        Ok(np)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the NumPy reference exited (see its messages above)");
        }
        Ok(line.trim().to_owned())
    }

    fn ask(&mut self, command: &str) -> Result<String> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read_line()
    }

    fn seconds(&mut self, command: &str) -> Result<f64> {
        let line = self.ask(command)?;
        json_number(&line, "seconds")
            .with_context(|| format!("unexpected answer to {command}: {line}"))
    }
}

impl Drop for NumPy {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// The number after `"key":` in a flat JSON line.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = line[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// This thread's time on a CPU so far, in seconds (Linux `schedstat`), so a busy
/// machine's waits can be told from the work itself; `None` elsewhere.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// One shuffled pass of SGD over `train` (as `train` runs it), returning its wall
/// time and this thread's CPU time in seconds (NaN when unknown).
fn epoch(training: &mut Training, train: &Dataset) -> Result<(f64, f64)> {
    let cpu = thread_cpu_seconds();
    let started = Instant::now();
    training.pass(train, |_, _, _| {})?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = match (cpu, thread_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    Ok((wall, cpu))
}

/// The walkthrough's training run on `data`, with these kernels and threads.
fn walkthrough(data: &Path, kernels: Kernels, threads: usize) -> Result<Training> {
    let config = TrainConfig {
        data_dir: data.to_path_buf(),
        hidden: SIZES[1..SIZES.len() - 1].to_vec(),
        batch_size: BATCH,
        learning_rate: LEARNING_RATE,
        ..TrainConfig::default()
    };
    Training::new(config, SIZES[0], Compute { kernels, threads })
}

/// Runs the benchmark and prints its figures.
pub fn run(o: &BenchOptions) -> Result<()> {
    // A figure from zero rounds, images or threads would be no figure: refused, not
    // quietly raised to 1.
    for (flag, value) in [
        ("--rounds", o.rounds),
        ("--infer", o.infer),
        ("--threads", o.threads),
    ] {
        if value == 0 {
            bail!("{flag} 0: the benchmark needs at least 1");
        }
    }
    if let Some(script) = o.numpy.as_ref().filter(|s| !s.is_file()) {
        bail!(
            "{}: no such NumPy reference script (--numpy)",
            script.display()
        );
    }
    let kernels = o.kernels;
    outln!(
        "machine: {} ({} threads available); kernels: {kernels} (instruction sets this CPU runs: {})",
        cpu_name(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        Isa::supported()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    outln!("load average at start: {}", load_average());
    let splits = data::load_splits(&o.data, None, None)?;
    let train = &splits.train;
    let test = &splits.test;
    if train.features != SIZES[0] {
        bail!(
            "{}: images have {} pixels, the benchmark's network takes {}",
            o.data.display(),
            train.features,
            SIZES[0]
        );
    }
    let mut numpy = match &o.numpy {
        Some(script) => {
            let mut np = NumPy::start(&o.python, script, &o.data, false)?;
            outln!("numpy: {}", np.ask("config")?);
            Some(np)
        }
        None => None,
    };
    let mut numpy1 = match (&o.numpy, o.numpy_single_thread) {
        (Some(script), true) => Some(NumPy::start(&o.python, script, &o.data, true)?),
        _ => None,
    };
    let rounds = o.rounds;
    let mut training = walkthrough(&o.data, kernels, o.threads)?;
    // The same steps on one thread, on a run of its own, for comparison.
    let mut training1 = walkthrough(&o.data, kernels, 1)?;
    let macs = training_macs_per_image(&SIZES) as f64;
    let n = train.len() as f64;
    let gflop = 2.0 * macs * n * 1e-9;

    // Warm-up: fault in the pages and fill the caches.
    let warm = train.slice(0..train.len().min(4096));
    for t in [&mut training, &mut training1] {
        epoch(t, &warm)?;
    }

    outln!(
        "\ntraining: one epoch of {} images, {:?}, SGD lr {LEARNING_RATE}, batch {BATCH} ({gflop:.1} GFLOP nominal); {rounds} rounds{}",
        train.len(),
        SIZES,
        if numpy.is_some() {
            ", Rust and NumPy interleaved"
        } else {
            " (no NumPy reference: give --numpy bench/numpy_mlp.py to compare)"
        }
    );
    let (mut rust_t, mut rust_cpu, mut numpy_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut numpy1_t, mut rust1_t) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let (t, cpu) = epoch(&mut training, train)?;
        rust_t.push(t);
        rust_cpu.push(cpu);
        let one = if o.threads > 1 {
            let (t1, _) = epoch(&mut training1, train)?;
            rust1_t.push(t1);
            format!(" (1 thread {t1:.3} s)")
        } else {
            String::new()
        };
        let np = match numpy.as_mut() {
            Some(np) => {
                let s = np.seconds("epoch")?;
                numpy_t.push(s);
                format!("  numpy {s:.3} s")
            }
            None => String::new(),
        };
        let np1 = match numpy1.as_mut() {
            Some(np) => {
                let s = np.seconds("epoch")?;
                numpy1_t.push(s);
                format!("  numpy (1 thread) {s:.3} s")
            }
            None => String::new(),
        };
        outln!(
            "  round {}: rust {t:.3} s (leader's cpu {cpu:.3} s){one}{np}{np1}",
            r + 1
        );
    }
    let rust_epoch = median(&mut rust_t);
    outln!(
        "  rust {kernels}, {} threads: median {rust_epoch:.3} s per epoch (leader's cpu {:.3} s), {:.0} samples/s, {:.1} GFLOP/s (nominal, dense-equivalent)",
        o.threads,
        median(&mut rust_cpu),
        n / rust_epoch,
        gflop / rust_epoch
    );
    if !rust1_t.is_empty() {
        let t1 = median(&mut rust1_t);
        outln!(
            "  rust {kernels}, 1 thread: median {t1:.3} s per epoch, {:.0} samples/s; {:.2}x from the threads",
            n / t1,
            t1 / rust_epoch
        );
    }
    if o.core_epoch {
        let mut core = walkthrough(&o.data, Kernels::Core, 1)?;
        let (t, _) = epoch(&mut core, train)?;
        outln!(
            "  rust core arithmetic, 1 thread (one epoch): {t:.3} s, {:.0} samples/s, {:.1} GFLOP/s",
            n / t,
            gflop / t
        );
    }
    if !numpy_t.is_empty() {
        let np = median(&mut numpy_t);
        outln!(
            "  numpy float32: median {np:.3} s per epoch, {:.0} samples/s, {:.1} GFLOP/s",
            n / np,
            gflop / np
        );
        outln!("  training ratio (numpy / rust): {:.2}x", np / rust_epoch);
    }
    if !numpy1_t.is_empty() {
        let np = median(&mut numpy1_t);
        outln!(
            "  numpy float32, 1 BLAS thread: median {np:.3} s per epoch, {:.0} samples/s; ratio {:.2}x",
            n / np,
            np / rust_epoch
        );
    }

    let count = o.infer.min(test.len());
    outln!("\nsingle-image inference: {count} test images one at a time; {rounds} rounds");
    let model = training.model().clone();
    let mut predictor = Predictor::new(kernels, model.sizes())?;
    let images: Vec<Vec<f32>> = (0..count).map(|i| test.input(i)).collect();
    let (mut rust_i, mut numpy_i, mut numpy1_i) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let mut sink = 0usize;
        for image in &images {
            sink += predictor.predict(&model.params, image);
        }
        std::hint::black_box(sink);
        rust_i.push(started.elapsed().as_secs_f64() / count as f64);
        if let Some(np) = numpy.as_mut() {
            numpy_i.push(np.seconds(&format!("infer {count}"))? / count as f64);
        }
        if let Some(np) = numpy1.as_mut() {
            numpy1_i.push(np.seconds(&format!("infer {count}"))? / count as f64);
        }
    }
    let rust_image = median(&mut rust_i);
    outln!(
        "  rust {kernels}: median {:.2} µs per image",
        rust_image * 1e6
    );
    let core_image = {
        let started = Instant::now();
        for image in &images {
            std::hint::black_box(model.logits_one(image)?);
        }
        started.elapsed().as_secs_f64() / count as f64
    };
    outln!(
        "  rust core kernels (Mlp::logits_one): {:.2} µs per image",
        core_image * 1e6
    );
    if !numpy_i.is_empty() {
        let np = median(&mut numpy_i);
        outln!("  numpy float32: median {:.2} µs per image", np * 1e6);
        outln!(
            "  single-image ratio (numpy / rust): {:.2}x",
            np / rust_image
        );
    }
    if !numpy1_i.is_empty() {
        let np = median(&mut numpy1_i);
        outln!(
            "  numpy float32, 1 BLAS thread: median {:.2} µs per image; ratio {:.2}x",
            np * 1e6,
            np / rust_image
        );
    }

    outln!(
        "\nbatched evaluation: the {} test images (loss, accuracy, confusion matrix); {rounds} rounds",
        test.len()
    );
    let (mut rust_e, mut rust_e1, mut numpy_e) = (Vec::new(), Vec::new(), Vec::new());
    let mut numpy1_e = Vec::new();
    let mut accuracy = 0.0;
    for _ in 0..rounds {
        let started = Instant::now();
        let e = crate::metrics::evaluate(
            &model,
            test,
            Compute {
                kernels,
                threads: o.threads,
            },
        )?;
        rust_e.push(started.elapsed().as_secs_f64());
        accuracy = e.accuracy;
        let started = Instant::now();
        std::hint::black_box(crate::metrics::evaluate(
            &model,
            test,
            Compute {
                kernels,
                threads: 1,
            },
        )?);
        rust_e1.push(started.elapsed().as_secs_f64());
        if let Some(np) = numpy.as_mut() {
            numpy_e.push(np.seconds("eval")?);
        }
        if let Some(np) = numpy1.as_mut() {
            numpy1_e.push(np.seconds("eval")?);
        }
    }
    let rust_eval = median(&mut rust_e);
    outln!(
        "  rust {kernels}, {} threads: median {:.2} ms (test accuracy of the benchmark's model {:.2}%)",
        o.threads,
        rust_eval * 1e3,
        100.0 * accuracy
    );
    outln!(
        "  rust {kernels}, 1 thread: median {:.2} ms",
        median(&mut rust_e1) * 1e3
    );
    if !numpy_e.is_empty() {
        let np = median(&mut numpy_e);
        outln!("  numpy float32: median {:.2} ms", np * 1e3);
        outln!(
            "  batched evaluation ratio (numpy / rust, {} threads): {:.2}x",
            o.threads,
            np / rust_eval
        );
    }
    if !numpy1_e.is_empty() {
        let np = median(&mut numpy1_e);
        outln!(
            "  numpy float32, 1 BLAS thread: median {:.2} ms; ratio {:.2}x",
            np * 1e3,
            np / rust_eval
        );
    }
    outln!("\nload average at end: {}", load_average());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_from_answers() {
        let line = r#"{"kind": "epoch", "seconds": 0.8125, "images": 50000, "loss": 1e-3}"#;
        assert_eq!(json_number(line, "seconds"), Some(0.8125));
        assert_eq!(json_number(line, "loss"), Some(1e-3));
        assert_eq!(json_number(line, "missing"), None);
    }

    #[test]
    fn walkthrough_work_per_image() {
        // 100,400 MACs forward, as many for weight gradients, 22,000 for input gradients.
        assert_eq!(training_macs_per_image(&SIZES), 222_800);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
