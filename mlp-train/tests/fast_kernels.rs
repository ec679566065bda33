//! The fast host kernels against `mlp-core`'s, on every instruction set this CPU runs
//! (the portable path always): random shapes with odd sizes and batch sizes, inputs
//! half zeros (as pixels and ReLU outputs are), to a tight relative tolerance; a few
//! SGD steps of a whole network; training steps on several threads, bit for bit
//! against one thread; and thread-count determinism of evaluation and training.

mod common;

use mlp_core::activation::{relu_backward, relu_forward};
use mlp_core::dense::{dense_backward, dense_backward_input, dense_forward, DenseShape};
use mlp_core::loss::softmax_cross_entropy;
use mlp_train::data::{pixel_value, Dataset};
use mlp_train::fast::{self, Inputs, Isa, Predictor, Scratch, Trainer, Update};
use mlp_train::metrics;
use mlp_train::model::Mlp;

const BATCHES: [usize; 5] = [1, 5, 6, 32, 33];
const SIZES: [usize; 8] = [1, 3, 16, 17, 33, 100, 200, 784];

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
    /// Half exact zeros, else uniform in [-1, 1).
    fn sparse(&mut self) -> f32 {
        if self.next() >> 63 == 0 {
            0.0
        } else {
            self.unit()
        }
    }
    fn vec(&mut self, n: usize, sparse: bool) -> Vec<f32> {
        (0..n)
            .map(|_| if sparse { self.sparse() } else { self.unit() })
            .collect()
    }
}

/// Every shape of the sweep: each batch size with each (inputs, outputs) pair.
fn shapes() -> Vec<DenseShape> {
    let mut out = Vec::new();
    for &b in &BATCHES {
        for &i in &SIZES {
            for &o in &SIZES {
                // The largest pairs add nothing the others do not test.
                if i * o <= 200 * 784 {
                    out.push(DenseShape::new(b, i, o));
                }
            }
        }
    }
    out
}

/// Asserts `fast[k] ≈ core[k]` relative to `scale[k]`, the sum of the magnitudes of
/// the terms that make up the value (the natural yardstick of rounding error).
fn assert_close(
    what: &str,
    isa: Isa,
    shape: DenseShape,
    fast: &[f32],
    core: &[f32],
    scale: &[f32],
) {
    assert_eq!(fast.len(), core.len());
    for (k, ((&f, &c), &m)) in fast.iter().zip(core).zip(scale).enumerate() {
        let tol = 2e-6 * m + 1e-30;
        assert!(
            (f - c).abs() <= tol,
            "{what} {isa:?} {shape:?} element {k}: fast {f}, core {c}, magnitude {m}"
        );
    }
}

/// `Σ_i |x[i]·W[i][j]| + |b[j]|` for every row and output.
fn forward_scale(shape: DenseShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    let mut out = vec![0.0; shape.output_len()];
    dense_forward(shape, &abs(x), &abs(w), &abs(b), &mut out);
    out
}

#[test]
fn forward_matches_core_on_every_shape_and_instruction_set() {
    let mut rng = Lcg(1);
    for isa in Isa::supported() {
        let mut scratch = Scratch::default();
        for shape in shapes() {
            let x = rng.vec(shape.input_len(), true);
            let w = rng.vec(shape.weight_len(), false);
            let b = rng.vec(shape.outputs, false);
            let scale = forward_scale(shape, &x, &w, &b);
            let mut core = vec![0.0; shape.output_len()];
            dense_forward(shape, &x, &w, &b, &mut core);
            let mut fast = vec![f32::NAN; shape.output_len()];
            fast::dense_forward(isa, &mut scratch, shape, &x, &w, &b, &mut fast, false);
            assert_close("forward", isa, shape, &fast, &core, &scale);
            relu_forward(&mut core);
            fast::dense_forward(isa, &mut scratch, shape, &x, &w, &b, &mut fast, true);
            // ReLU of nearly equal values: a value within the tolerance of 0 may be
            // cut on one side only, which the tolerance covers.
            assert_close("forward+relu", isa, shape, &fast, &core, &scale);
        }
    }
}

#[test]
fn backward_matches_core_on_every_shape_and_instruction_set() {
    let mut rng = Lcg(2);
    let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    for isa in Isa::supported() {
        let mut scratch = Scratch::default();
        for shape in shapes() {
            let x = rng.vec(shape.input_len(), true);
            let w = rng.vec(shape.weight_len(), false);
            let g = rng.vec(shape.output_len(), false);
            // Input gradient, with and without the ReLU mask (`x` as the mask: half zeros).
            let mut core_in = vec![0.0; shape.input_len()];
            dense_backward_input(shape, &w, &g, &mut core_in);
            let mut scale_in = vec![0.0; shape.input_len()];
            dense_backward_input(shape, &abs(&w), &abs(&g), &mut scale_in);
            let mut fast_in = vec![f32::NAN; shape.input_len()];
            fast::dense_backward_input(isa, shape, &w, &g, &mut fast_in, None);
            assert_close("input gradient", isa, shape, &fast_in, &core_in, &scale_in);
            relu_backward(&x, &mut core_in);
            fast::dense_backward_input(isa, shape, &w, &g, &mut fast_in, Some(&x));
            assert_close(
                "masked input gradient",
                isa,
                shape,
                &fast_in,
                &core_in,
                &scale_in,
            );
            // Weight and bias gradients.
            let mut core_w = vec![0.0; shape.weight_len()];
            let mut core_b = vec![0.0; shape.outputs];
            dense_backward(shape, &x, &w, &g, None, &mut core_w, &mut core_b);
            let mut scale_w = vec![0.0; shape.weight_len()];
            let mut scale_b = vec![0.0; shape.outputs];
            dense_backward(
                shape,
                &abs(&x),
                &w,
                &abs(&g),
                None,
                &mut scale_w,
                &mut scale_b,
            );
            let mut fast_w = vec![f32::NAN; shape.weight_len()];
            let mut fast_b = vec![f32::NAN; shape.outputs];
            fast::dense_backward_weights(
                isa,
                &mut scratch,
                shape,
                &x,
                &g,
                &mut fast_w,
                &mut fast_b,
            );
            assert_close("weight gradient", isa, shape, &fast_w, &core_w, &scale_w);
            assert_eq!(
                fast_b, core_b,
                "bias gradient {isa:?} {shape:?}: the core's order"
            );
            // The fused SGD update against gradients then the core's SGD step.
            let lr = 0.1;
            let bias = rng.vec(shape.outputs, false);
            let (mut core_p, mut core_pb) = (w.clone(), bias.clone());
            mlp_core::dense::sgd_step(&mut core_p, &core_w, lr);
            mlp_core::dense::sgd_step(&mut core_pb, &core_b, lr);
            let (mut fast_p, mut fast_pb) = (w.clone(), bias.clone());
            fast::dense_sgd_update(
                isa,
                &mut scratch,
                shape,
                &x,
                &g,
                &mut fast_p,
                &mut fast_pb,
                lr,
            );
            let scale_p: Vec<f32> = w
                .iter()
                .zip(&scale_w)
                .map(|(p, s)| p.abs() + lr * s)
                .collect();
            assert_close("fused SGD", isa, shape, &fast_p, &core_p, &scale_p);
            assert_eq!(fast_pb, core_pb, "fused SGD bias {isa:?} {shape:?}");
        }
    }
}

#[test]
fn sgd_step_has_the_core_bits() {
    let mut rng = Lcg(3);
    for isa in Isa::supported() {
        for n in [0, 1, 7, 8, 15, 16, 17, 100, 1001] {
            let p = rng.vec(n, false);
            let g = rng.vec(n, true);
            let mut core = p.clone();
            mlp_core::dense::sgd_step(&mut core, &g, 0.1);
            let mut fast_p = p.clone();
            fast::sgd_step(isa, &mut fast_p, &g, 0.1);
            assert_eq!(fast_p, core, "{isa:?} n={n}");
        }
    }
}

/// One SGD step of a whole network with the core's kernels (the trainer's algorithm).
fn core_step(model: &mut Mlp, x: &[f32], labels: &[u8], lr: f32) -> f32 {
    let b = labels.len();
    let layout = model.layout().to_vec();
    let mut acts = metrics::activation_buffers(model, b);
    let mut deltas = metrics::activation_buffers(model, b);
    metrics::forward_batch(model, x, b, &mut acts);
    let last = layout.len() - 1;
    let loss = softmax_cross_entropy(
        &acts[last],
        labels,
        model.classes(),
        Some(&mut deltas[last]),
    );
    let mut grads = vec![0.0; model.params.len()];
    for (k, l) in layout.iter().enumerate().rev() {
        let shape = DenseShape::new(b, l.inputs, l.outputs);
        let input = if k == 0 { x } else { &acts[k - 1][..] };
        let (before, from_k) = deltas.split_at_mut(k);
        let (gw, gb) = grads[l.weights.start..l.bias.end].split_at_mut(l.inputs * l.outputs);
        let w = &model.params[l.weights.clone()];
        if k == 0 {
            dense_backward(shape, input, w, &from_k[0], None, gw, gb);
        } else {
            dense_backward(
                shape,
                input,
                w,
                &from_k[0],
                Some(&mut before[k - 1]),
                gw,
                gb,
            );
            relu_backward(input, &mut before[k - 1]);
        }
    }
    mlp_core::dense::sgd_step(&mut model.params, &grads, lr);
    loss
}

fn model(sizes: &[usize], seed: u64) -> Mlp {
    let mut rng = Lcg(seed);
    let mut m = Mlp::xavier(sizes, &mut || rng.next()).unwrap();
    for p in m.params.iter_mut() {
        *p += 0.01; // non-zero biases
    }
    m
}

#[test]
fn sgd_steps_of_a_network_agree_with_the_core() {
    for isa in Isa::supported() {
        for (sizes, b) in [
            (&[784, 100, 200, 10][..], 32),
            (&[17, 33, 5][..], 5),
            (&[3, 1, 3][..], 1),
        ] {
            let mut rng = Lcg(4);
            let mut core = model(sizes, 5);
            let mut fused = core.clone();
            let mut stored = core.clone();
            let mut trainer = Trainer::new(isa, &core, b);
            let mut grads = vec![0.0; core.params.len()];
            for step in 0..5 {
                let x: Vec<f32> = (0..b * sizes[0]).map(|_| rng.sparse().abs()).collect();
                let y: Vec<u8> = (0..b)
                    .map(|_| (rng.next() % sizes[sizes.len() - 1] as u64) as u8)
                    .collect();
                let lc = core_step(&mut core, &x, &y, 0.1);
                let (lf, _) = trainer.step(&mut fused, &x, &y, Update::Sgd(0.1));
                let (ls, _) = trainer.step(&mut stored, &x, &y, Update::Gradients(&mut grads));
                fast::sgd_step(isa, &mut stored.params, &grads, 0.1);
                assert!(
                    (lc - lf).abs() <= 1e-5 * lc.abs(),
                    "{isa:?} {sizes:?} step {step}: loss {lc} vs {lf}"
                );
                assert!(
                    (lc - ls).abs() <= 1e-5 * lc.abs(),
                    "{isa:?} {sizes:?} step {step}: loss {lc} vs {ls}"
                );
                for (k, ((&c, &f), &s)) in core
                    .params
                    .iter()
                    .zip(&fused.params)
                    .zip(&stored.params)
                    .enumerate()
                {
                    // The trainer sums the first layer's inputs in two halves, so
                    // rounding differs from the core's one sum and grows a little with
                    // each step (most where the loss gradient cancels); the floor is
                    // 1e-5 of the weights' scale (about 0.1 with Xavier's init).
                    let tol = 1e-5 * c.abs().max(0.1);
                    assert!(
                        (c - f).abs() <= tol && (c - s).abs() <= tol,
                        "{isa:?} {sizes:?} step {step} parameter {k}: core {c}, fused {f}, stored {s}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_step_with_a_non_finite_loss_changes_nothing() {
    let isa = Isa::best();
    let mut m = model(&[4, 3, 2], 6);
    m.params[0] = f32::INFINITY;
    let before = m.clone();
    let mut trainer = Trainer::new(isa, &m, 2);
    let (loss, _) = trainer.step(&mut m, &[1.0; 8], &[0, 1], Update::Sgd(0.1));
    assert!(!loss.is_finite());
    assert_eq!(m, before);
}

/// The bits of every parameter.
fn bits(m: &Mlp) -> Vec<u32> {
    m.params.iter().map(|p| p.to_bits()).collect()
}

/// Where a step's batch comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Given as rows ([`Trainer::step`]).
    Batch,
    /// Gathered from a set's values.
    Values,
    /// Gathered from a set's pixel bytes.
    Pixels,
}

/// Runs `steps` steps with a trainer of `threads` threads from `start` on batches drawn
/// from `seed` (every third one partial), and returns the model, the bits of every
/// loss with its count of right answers, and the gradients of the last step when not
/// fused (`fused = false`: each step stores its gradients and plain SGD applies them).
/// The inputs are pixel values (`byte / 255`, half of them 0). Unless `from` is
/// [`Source::Batch`], each batch's rows are scattered, in reverse order, among other
/// rows of a larger set, and the step gathers them ([`Trainer::step_on`]).
fn run_steps(
    isa: Isa,
    start: &Mlp,
    batch: usize,
    threads: usize,
    fused: bool,
    seed: u64,
    from: Source,
) -> (Mlp, Vec<(u32, usize)>, Vec<u32>) {
    let sizes = start.sizes().to_vec();
    let mut m = start.clone();
    let mut trainer = Trainer::with_threads(isa, &m, batch, threads);
    assert_eq!(
        trainer.threads(),
        threads.clamp(1, Trainer::max_threads(batch))
    );
    let mut grads = vec![f32::NAN; m.params.len()];
    let mut rng = Lcg(seed);
    let mut losses = Vec::new();
    for step in 0..6 {
        let b = if step % 3 == 2 {
            (batch / 2).max(1)
        } else {
            batch
        };
        let mut pixel = || {
            let p = rng.next() >> 56;
            if p < 128 {
                0
            } else {
                p as u8
            }
        };
        // Row r of the batch is row 2·(b − 1 − r) + 1 of the set; the others are noise.
        let n = sizes[0];
        let set_pixels: Vec<u8> = (0..(2 * b + 1) * n).map(|_| pixel()).collect();
        let set: Vec<f32> = set_pixels.iter().map(|&p| pixel_value(p)).collect();
        let indices: Vec<u32> = (0..b).map(|r| (2 * (b - 1 - r) + 1) as u32).collect();
        let noise: Vec<u32> = (0..=b).map(|r| 2 * r as u32).collect();
        let x: Vec<f32> = indices
            .iter()
            .flat_map(|&i| &set[i as usize * n..(i as usize + 1) * n])
            .copied()
            .collect();
        let y: Vec<u8> = (0..b)
            .map(|_| (rng.next() % sizes[sizes.len() - 1] as u64) as u8)
            .collect();
        let mut step = |m: &mut Mlp, update: Update<'_>| {
            // When gathering, also asks to load the noise rows, as if the next step's.
            match from {
                Source::Batch => trainer.step(m, &x, &y, update),
                Source::Values => {
                    trainer.step_on(m, Inputs::Values(&set), &indices, &noise, &y, update)
                }
                Source::Pixels => {
                    trainer.step_on(m, Inputs::Pixels(&set_pixels), &indices, &noise, &y, update)
                }
            }
        };
        let (loss, right) = if fused {
            step(&mut m, Update::Sgd(0.1))
        } else {
            let r = step(&mut m, Update::Gradients(&mut grads));
            fast::sgd_step(isa, &mut m.params, &grads, 0.1);
            r
        };
        losses.push((loss.to_bits(), right));
    }
    (m, losses, grads.iter().map(|g| g.to_bits()).collect())
}

#[test]
fn steps_on_several_threads_have_the_bits_of_one_thread() {
    // Odd widths and batches: shares of rows that end inside a block, layers narrower
    // than a vector, more threads than row blocks, one layer and four.
    let cases: [(&[usize], usize); 7] = [
        (&[784, 100, 200, 10], 32),
        (&[784, 100, 200, 10], 33),
        (&[17, 33, 5], 7),
        (&[64, 3, 31, 9, 10], 19),
        (&[5, 9], 13),
        (&[3, 1, 3], 1),
        (&[40, 50, 10], 2),
    ];
    for isa in Isa::supported() {
        for (sizes, batch) in cases {
            let start = model(sizes, 11);
            for fused in [true, false] {
                let (one, one_losses, one_grads) =
                    run_steps(isa, &start, batch, 1, fused, 12, Source::Batch);
                assert_ne!(bits(&one), bits(&start), "the steps changed nothing");
                let runs = [
                    (2, Source::Batch),
                    (3, Source::Batch),
                    (4, Source::Batch),
                    (1, Source::Values),
                    (2, Source::Values),
                    (1, Source::Pixels),
                    (2, Source::Pixels),
                ];
                for (threads, from) in runs {
                    let (m, losses, grads) =
                        run_steps(isa, &start, batch, threads, fused, 12, from);
                    let what = format!(
                        "{isa:?} {sizes:?} batch {batch} fused {fused}, {threads} threads, \
                         from {from:?}"
                    );
                    assert_eq!(losses, one_losses, "{what}: losses");
                    assert_eq!(grads, one_grads, "{what}: gradients");
                    for (k, (a, b)) in bits(&m).iter().zip(bits(&one)).enumerate() {
                        assert_eq!(*a, b, "{what}: parameter {k} differs from one thread's");
                    }
                    let (again, _, _) = run_steps(isa, &start, batch, threads, fused, 12, from);
                    assert_eq!(bits(&again), bits(&m), "{what}: a second run differs");
                }
            }
        }
    }
}

#[test]
fn a_parallel_step_with_a_non_finite_loss_changes_nothing() {
    let isa = Isa::best();
    let mut m = model(&[4, 3, 2], 6);
    m.params[0] = f32::INFINITY;
    let before = m.clone();
    let mut trainer = Trainer::with_threads(isa, &m, 8, 2);
    assert_eq!(trainer.threads(), 2);
    let (loss, _) = trainer.step(
        &mut m,
        &[1.0; 32],
        &[0, 1, 0, 1, 0, 1, 0, 1],
        Update::Sgd(0.1),
    );
    assert!(!loss.is_finite());
    assert_eq!(m, before);
    // The team is still usable after a step that stopped early.
    let mut ok = model(&[4, 3, 2], 6);
    let mut ok1 = ok.clone();
    let x: Vec<f32> = (0..32).map(|i| (i % 5) as f32 * 0.25).collect();
    let y = [0, 1, 0, 1, 0, 1, 0, 1];
    trainer.step(&mut ok, &x, &y, Update::Sgd(0.1));
    Trainer::new(isa, &ok1, 8).step(&mut ok1, &x, &y, Update::Sgd(0.1));
    assert_eq!(bits(&ok), bits(&ok1));
}

fn random_dataset(n: usize, features: usize, seed: u64) -> Dataset {
    let mut rng = Lcg(seed);
    Dataset {
        features,
        shape: (1, features),
        inputs: (0..n * features).map(|_| rng.sparse().abs()).collect(),
        labels: (0..n).map(|_| (rng.next() % 10) as u8).collect(),
    }
}

#[test]
fn evaluation_and_prediction_agree_with_the_core() {
    let m = model(&[64, 33, 17, 10], 7);
    let data = random_dataset(1000, 64, 8);
    let core = metrics::evaluate(&m, &data);
    for isa in Isa::supported() {
        for threads in [1, 2, 3] {
            let fast_e = fast::evaluate(isa, &m, &data, threads);
            assert_eq!(fast_e.count, core.count);
            assert!(
                (fast_e.loss - core.loss).abs() <= 1e-5 * core.loss,
                "{isa:?} {threads}"
            );
            // Near-ties may flip; on random data a handful at most.
            assert!(
                (fast_e.accuracy - core.accuracy).abs() <= 0.005,
                "{isa:?} {threads}"
            );
        }
        let mut p = Predictor::new(isa, &m);
        for i in 0..20 {
            let core_logits = m.logits_one(data.input(i)).unwrap();
            let fast_logits = p.logits(&m, data.input(i)).to_vec();
            for (c, f) in core_logits.iter().zip(&fast_logits) {
                assert!(
                    (c - f).abs() <= 1e-5 * c.abs().max(1.0),
                    "{isa:?} image {i}: {c} vs {f}"
                );
            }
        }
    }
}

#[test]
fn evaluation_depends_only_on_the_thread_count() {
    let m = model(&[64, 33, 10], 9);
    let data = random_dataset(3000, 64, 10);
    let isa = Isa::best();
    let one = fast::evaluate(isa, &m, &data, 1);
    for threads in [1, 2, 4] {
        let a = fast::evaluate(isa, &m, &data, threads);
        let b = fast::evaluate(isa, &m, &data, threads);
        assert_eq!(a, b, "{threads} threads, twice");
        // Only the loss's summation order depends on the thread count.
        assert_eq!(a.confusion, one.confusion);
        assert!((a.loss - one.loss).abs() <= 1e-12 * one.loss.abs());
    }
}

#[test]
fn training_with_two_threads_is_deterministic_equals_one_thread_and_close_to_core() {
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = common::quick_fashion(&out, 3000, 2);
        args.extend(extra.iter().map(|s| s.to_string()));
        let text = common::ok(&common::run(&args));
        let acc: f64 = text
            .split("test accuracy: ")
            .nth(1)
            .and_then(|t| t.split('%').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no accuracy in {text}"));
        (std::fs::read(out.join("model.mlp")).unwrap(), acc)
    };
    let (a, acc_a) = train("a", &["--threads", "2"]);
    let (b, _) = train("b", &["--threads", "2"]);
    let (one, _) = train("one", &["--threads", "1"]);
    let (c, acc_core) = train("c", &["--kernels", "core"]);
    assert!(
        a == b,
        "two fast runs with 2 threads wrote different models"
    );
    assert!(
        a == one,
        "fast runs with 2 threads and with 1 thread wrote different models"
    );
    assert!(
        a != c,
        "fast and core kernels wrote the same bytes (rounding differs)"
    );
    assert!(
        (acc_a - acc_core).abs() < 3.0,
        "fast {acc_a}% vs core {acc_core}%"
    );
}
