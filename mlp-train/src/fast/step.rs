//! Whole passes with the fast kernels: a training step ([`Trainer`]), batched
//! evaluation ([`evaluate`], optionally split over threads) and single-image
//! prediction ([`Predictor`]). Each owns its buffers, allocated when it is created:
//! a step or a prediction allocates nothing.
//!
//! A step's instruction set is chosen once per call (one dispatch), so the whole
//! pass, loops between the products included, is compiled for it.

use mlp_core::dense::DenseShape;
use mlp_core::loss::{argmax, softmax_cross_entropy};

use super::gemm::Pack;
use super::simd::Simd;
use super::{dispatch, forward_layer, input_gradient, weight_gradient, Isa, Job, WeightsOut};
use crate::data::Dataset;
use crate::metrics::{Evaluation, EVAL_BATCH};
use crate::model::{LayerLayout, Mlp};

/// Runs every layer on the first `b` rows of `x`, leaving each layer's output (after
/// ReLU for hidden layers) in `acts[k][..b × outputs]`.
#[inline(always)]
fn forward_all<S: Simd>(
    s: S,
    params: &[f32],
    layout: &[LayerLayout],
    x: &[f32],
    b: usize,
    acts: &mut [Vec<f32>],
    pack: &mut Pack,
) {
    let last = layout.len().saturating_sub(1);
    for (k, l) in layout.iter().enumerate() {
        let (done, rest) = acts.split_at_mut(k);
        let input: &[f32] = if k == 0 { x } else { &done[k - 1] };
        forward_layer(
            s,
            DenseShape::new(b, l.inputs, l.outputs),
            input,
            &params[l.weights.clone()],
            &params[l.bias.clone()],
            &mut rest[0],
            k < last,
            pack,
        );
    }
}

/// What a training step does with its gradients.
#[derive(Debug)]
pub enum Update<'a> {
    /// Apply them at once as a plain SGD step with this learning rate (fused into the
    /// products: the weight gradients are never stored).
    Sgd(f32),
    /// Store them here, in the model's parameter order, for another optimizer.
    Gradients(&'a mut [f32]),
}

/// Training steps with the fast kernels for one network shape and batch size.
#[derive(Clone, Debug)]
pub struct Trainer {
    isa: Isa,
    sizes: Vec<usize>,
    layout: Vec<LayerLayout>,
    batch: usize,
    acts: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    pack: Pack,
}

impl Trainer {
    /// Buffers for batches of up to `batch` rows of `model`'s shape.
    pub fn new(isa: Isa, model: &Mlp, batch: usize) -> Trainer {
        let buffers = || -> Vec<Vec<f32>> {
            model
                .layout()
                .iter()
                .map(|l| vec![0.0; batch * l.outputs])
                .collect()
        };
        let mut pack = Pack::default();
        pack.reserve(model.widest().max(batch));
        Trainer {
            isa,
            sizes: model.sizes().to_vec(),
            layout: model.layout().to_vec(),
            batch,
            acts: buffers(),
            deltas: buffers(),
            pack,
        }
    }

    /// The instruction set the steps use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// One step on a batch: forward, mean softmax cross-entropy, and, if the loss is
    /// finite, backward and `update`. Returns the loss and how many rows were
    /// classified right. A loss that is not finite leaves the model and the gradients
    /// untouched.
    ///
    /// # Shapes
    /// `x: [b, inputs]`, `labels: [b]` with `b = labels.len()` at most the batch size
    /// given to [`Trainer::new`]; gradients as the parameters.
    ///
    /// # Panics
    /// If `model` does not have the shape given to [`Trainer::new`], or the slices do
    /// not fit.
    pub fn step(
        &mut self,
        model: &mut Mlp,
        x: &[f32],
        labels: &[u8],
        update: Update<'_>,
    ) -> (f32, usize) {
        let b = labels.len();
        assert_eq!(model.sizes(), &self.sizes[..], "model shape");
        assert!(b <= self.batch, "batch larger than the trainer's");
        assert!(x.len() >= b * model.inputs(), "x length");
        if let Update::Gradients(g) = &update {
            assert_eq!(g.len(), model.params.len(), "gradients length");
        }
        let isa = self.isa;
        dispatch(
            isa,
            StepJob {
                t: self,
                params: &mut model.params,
                x,
                labels,
                update,
            },
        )
    }
}

struct StepJob<'a> {
    t: &'a mut Trainer,
    params: &'a mut [f32],
    x: &'a [f32],
    labels: &'a [u8],
    update: Update<'a>,
}

impl Job for StepJob<'_> {
    type Out = (f32, usize);
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> (f32, usize) {
        let StepJob {
            t,
            params,
            x,
            labels,
            mut update,
        } = self;
        let b = labels.len();
        let layers = t.layout.len();
        if layers == 0 || b == 0 {
            return (f32::NAN, 0);
        }
        let last = layers - 1;
        let classes = t.layout[last].outputs;
        forward_all(s, params, &t.layout, x, b, &mut t.acts, &mut t.pack);
        let logits = &t.acts[last][..b * classes];
        let loss = softmax_cross_entropy(
            logits,
            labels,
            classes,
            Some(&mut t.deltas[last][..b * classes]),
        );
        let correct = logits
            .chunks_exact(classes)
            .zip(labels)
            .filter(|(row, &l)| argmax(row) == usize::from(l))
            .count();
        if !loss.is_finite() {
            return (loss, correct);
        }
        for (k, l) in t.layout.iter().enumerate().rev() {
            let shape = DenseShape::new(b, l.inputs, l.outputs);
            let (before, from_k) = t.deltas.split_at_mut(k);
            let grad_out = &from_k[0][..b * l.outputs];
            let input: &[f32] = if k == 0 {
                &x[..b * l.inputs]
            } else {
                &t.acts[k - 1][..b * l.inputs]
            };
            if k > 0 {
                // With the weights before this step's update.
                input_gradient(
                    s,
                    shape,
                    &params[l.weights.clone()],
                    grad_out,
                    &mut before[k - 1][..b * l.inputs],
                    Some(input),
                );
            }
            let (target, out) = match &mut update {
                Update::Sgd(lr) => (&mut *params, WeightsOut::Sgd(*lr)),
                Update::Gradients(g) => (&mut **g, WeightsOut::Store),
            };
            let (w, bias) = target[l.weights.start..l.bias.end].split_at_mut(l.inputs * l.outputs);
            weight_gradient(s, shape, input, grad_out, w, bias, out, &mut t.pack);
        }
        (loss, correct)
    }
}

/// Evaluates `model` on `data` like [`crate::metrics::evaluate`] (batches of
/// [`EVAL_BATCH`] rows, the same loss, accuracy and confusion matrix) with the fast
/// kernels, on `threads` threads (at least 1). Each thread takes a fixed, contiguous
/// share of whole batches and the shares' sums are added in order, so the result
/// depends only on the thread count.
pub fn evaluate(isa: Isa, model: &Mlp, data: &Dataset, threads: usize) -> Evaluation {
    let classes = model.classes();
    let n = data.len();
    let batches = n.div_ceil(EVAL_BATCH);
    let threads = threads.clamp(1, batches.max(1));
    let per = batches.div_ceil(threads);
    let shares: Vec<(usize, usize)> = (0..threads)
        .map(|t| {
            let start = (t * per * EVAL_BATCH).min(n);
            let end = ((t + 1) * per * EVAL_BATCH).min(n);
            (start, end)
        })
        .collect();
    let run = |&(start, end): &(usize, usize)| -> (f64, Vec<usize>) {
        let data = &*data;
        dispatch(
            isa,
            EvalJob {
                model,
                x: &data.inputs[start * data.features..end * data.features],
                labels: &data.labels[start..end],
            },
        )
    };
    let parts: Vec<(f64, Vec<usize>)> = if threads == 1 {
        shares.iter().map(run).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares[1..]
                .iter()
                .map(|share| scope.spawn(move || run(share)))
                .collect();
            let mut parts = vec![run(&shares[0])];
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("an evaluation thread panicked")),
            );
            parts
        })
    };
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    for (loss, counts) in parts {
        loss_sum += loss;
        for (cell, c) in confusion.iter_mut().flatten().zip(counts) {
            *cell += c;
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        loss: loss_sum / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        count: n,
        confusion,
    }
}

struct EvalJob<'a> {
    model: &'a Mlp,
    x: &'a [f32],
    labels: &'a [u8],
}

impl Job for EvalJob<'_> {
    /// The summed loss (per-batch mean times rows) and the flat confusion counts.
    type Out = (f64, Vec<usize>);
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> (f64, Vec<usize>) {
        let EvalJob { model, x, labels } = self;
        let classes = model.classes();
        let features = model.inputs();
        let mut confusion = vec![0usize; classes * classes];
        let mut loss_sum = 0.0f64;
        let layout = model.layout();
        let Some(last) = layout.len().checked_sub(1) else {
            return (f64::NAN, confusion);
        };
        let mut acts: Vec<Vec<f32>> = layout
            .iter()
            .map(|l| vec![0.0; EVAL_BATCH * l.outputs])
            .collect();
        let mut pack = Pack::default();
        pack.reserve(model.widest());
        let n = labels.len();
        let mut start = 0;
        while start < n {
            let b = EVAL_BATCH.min(n - start);
            let xb = &x[start * features..(start + b) * features];
            let lb = &labels[start..start + b];
            forward_all(s, &model.params, layout, xb, b, &mut acts, &mut pack);
            let logits = &acts[last][..b * classes];
            loss_sum += f64::from(softmax_cross_entropy(logits, lb, classes, None)) * b as f64;
            for (row, &label) in logits.chunks_exact(classes).zip(lb) {
                confusion[usize::from(label) * classes + argmax(row)] += 1;
            }
            start += b;
        }
        (loss_sum, confusion)
    }
}

/// Single-image prediction with the fast kernels (what `predict` and a serving loop
/// do): two activation buffers, allocated once.
#[derive(Clone, Debug)]
pub struct Predictor {
    isa: Isa,
    ping: Vec<f32>,
    pong: Vec<f32>,
    pack: Pack,
}

impl Predictor {
    /// Buffers for `model`'s layers.
    pub fn new(isa: Isa, model: &Mlp) -> Predictor {
        let mut pack = Pack::default();
        pack.reserve(model.widest());
        Predictor {
            isa,
            ping: vec![0.0; model.widest()],
            pong: vec![0.0; model.widest()],
            pack,
        }
    }

    /// The logits of one input (`input: [inputs]`).
    ///
    /// # Panics
    /// If `input` is shorter than the model's input or the model is wider than the
    /// one given to [`Predictor::new`].
    pub fn logits(&mut self, model: &Mlp, input: &[f32]) -> &[f32] {
        assert!(input.len() >= model.inputs(), "input length");
        assert!(
            self.ping.len() >= model.widest(),
            "model wider than expected"
        );
        let isa = self.isa;
        let in_ping = dispatch(
            isa,
            PredictJob {
                p: self,
                model,
                input,
            },
        );
        let out = if in_ping { &self.ping } else { &self.pong };
        &out[..model.classes()]
    }

    /// The predicted class of one input (the index of the largest logit).
    pub fn predict(&mut self, model: &Mlp, input: &[f32]) -> usize {
        argmax(self.logits(model, input))
    }
}

struct PredictJob<'a> {
    p: &'a mut Predictor,
    model: &'a Mlp,
    input: &'a [f32],
}

impl Job for PredictJob<'_> {
    /// Whether the logits ended in `ping`.
    type Out = bool;
    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> bool {
        let PredictJob { p, model, input } = self;
        let layout = model.layout();
        let last = layout.len().saturating_sub(1);
        let mut in_ping = false;
        for (k, l) in layout.iter().enumerate() {
            let (src, dst) = if in_ping {
                (&p.ping, &mut p.pong)
            } else {
                (&p.pong, &mut p.ping)
            };
            let x: &[f32] = if k == 0 { input } else { src };
            forward_layer(
                s,
                DenseShape::new(1, l.inputs, l.outputs),
                x,
                &model.params[l.weights.clone()],
                &model.params[l.bias.clone()],
                dst,
                k < last,
                &mut p.pack,
            );
            in_ping = !in_ping;
        }
        in_ping
    }
}
