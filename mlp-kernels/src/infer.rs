//! Forward passes without training: batched evaluation of a set ([`evaluate`],
//! optionally on several threads) and single-example prediction ([`Predictor`]).

use mlp_core::loss::{argmax, softmax_cross_entropy};
use mlp_core::network::{forward, layer_ranges, DenseKernel, Layer, LayerRanges, PingPong};

use crate::gemm::{Epilogue, Gemm, Pack, Strided};
use crate::isa::Backend;
use crate::step::Inputs;
use crate::{Kernels, Unsupported};

/// Rows per forward pass when evaluating.
pub const EVAL_BATCH: usize = 256;

/// One layer as the host's kernels see it: its place in the flat parameters, and
/// where its sum over inputs splits (a network's first layer in the fast arithmetic;
/// see the crate docs).
pub(crate) struct HostLayer<'a> {
    pub(crate) ranges: &'a LayerRanges,
    pub(crate) params: &'a [f32],
    pub(crate) split: Option<usize>,
}

impl Layer for HostLayer<'_> {
    fn inputs(&self) -> usize {
        self.ranges.inputs
    }

    fn outputs(&self) -> usize {
        self.ranges.outputs
    }

    fn parameters_fit(&self) -> bool {
        self.params.len() >= self.ranges.bias.end
    }
}

/// A network's layers as [`HostLayer`]s: the first split as `backend` splits it.
pub(crate) fn host_layers<'a>(
    backend: Backend,
    layers: &'a [LayerRanges],
    params: &'a [f32],
) -> impl ExactSizeIterator<Item = HostLayer<'a>> + 'a {
    layers.iter().enumerate().map(move |(k, ranges)| HostLayer {
        ranges,
        params,
        split: if k == 0 {
            backend.first_layer_split(ranges.inputs)
        } else {
            None
        },
    })
}

/// The host's kernels as the core's layer loop calls them, with a packing space.
pub(crate) struct HostKernel<'p> {
    pub(crate) backend: Backend,
    pub(crate) pack: &'p mut Pack,
}

impl DenseKernel<HostLayer<'_>> for HostKernel<'_> {
    fn dense(&mut self, layer: &HostLayer<'_>, rows: usize, x: &[f32], y: &mut [f32], relu: bool) {
        let l = layer.ranges;
        let w = &layer.params[l.weights.clone()];
        let bias = &layer.params[l.bias.clone()];
        let mut product = |cols: core::ops::Range<usize>, epilogue: Epilogue<'_>, y: &mut [f32]| {
            self.backend.gemm(
                Gemm {
                    a: Strided::rows(&x[cols.start.min(x.len())..], rows, cols.len(), l.inputs),
                    b: &w[cols.start * l.outputs..cols.end * l.outputs],
                    n: l.outputs,
                    c: y,
                    epilogue,
                },
                self.pack,
            )
        };
        match layer.split {
            Some(s) => {
                product(0..s, Epilogue::Bias { bias, relu: false }, y);
                product(s..l.inputs, Epilogue::Add { relu }, y);
            }
            None => product(0..l.inputs, Epilogue::Bias { bias, relu }, y),
        }
    }
}

/// Logits of `rows` rows of `x: [rows, sizes[0]]`, through the core's layer loop with
/// two buffers (each at least `rows ×` the widest layer) taking turns.
fn logits<'b>(
    backend: Backend,
    layers: &[LayerRanges],
    params: &[f32],
    x: &[f32],
    rows: usize,
    buffers: &'b mut [Vec<f32>; 2],
    pack: &mut Pack,
) -> &'b [f32] {
    let [even, odd] = buffers;
    let mut kernel = HostKernel { backend, pack };
    forward(
        &mut kernel,
        host_layers(backend, layers, params),
        x,
        rows,
        PingPong::new(even, odd),
    )
    .expect("shapes are checked when the pass is set up")
}

/// Two buffers for [`logits`] on `rows` rows of this network, and a packing space.
fn buffers(layers: &[LayerRanges], rows: usize) -> ([Vec<f32>; 2], Pack) {
    let widest = layers.iter().map(|l| l.outputs).max().unwrap_or(0);
    let mut pack = Pack::default();
    pack.reserve(layers.iter().map(|l| l.inputs).max().unwrap_or(0));
    ([vec![0.0; rows * widest], vec![0.0; rows * widest]], pack)
}

/// What [`evaluate`] adds up over a set.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSums {
    /// The sum over batches of [`EVAL_BATCH`] rows, in order, of each batch's mean
    /// softmax cross-entropy times its rows (in `f64`): divided by the examples, the
    /// mean loss.
    pub loss_sum: f64,
    /// `confusion[true · classes + predicted]`: examples of each true class by
    /// predicted class.
    pub confusion: Vec<usize>,
}

/// Evaluates a network (`sizes` input first, `params` in file order) on the examples
/// `inputs: [n, sizes[0]]` with `labels: [n]`, in batches of [`EVAL_BATCH`] rows, on
/// `threads` threads (at least 1). Each thread takes a contiguous share of whole
/// batches; the batches' losses are added in batch order, so the result depends on
/// neither the thread count nor the instruction set.
///
/// # Errors
/// If this CPU does not run `kernels`.
///
/// # Panics
/// If `params`, `inputs` or `labels` do not fit the network and each other.
pub fn evaluate(
    kernels: Kernels,
    sizes: &[usize],
    params: &[f32],
    inputs: Inputs<'_>,
    labels: &[u8],
    threads: usize,
) -> Result<EvalSums, Unsupported> {
    let backend = Backend::new(kernels)?;
    let layers: Vec<LayerRanges> = layer_ranges(sizes).collect();
    assert!(!layers.is_empty(), "a network needs at least one layer");
    assert_eq!(
        params.len(),
        layers[layers.len() - 1].bias.end,
        "parameters"
    );
    let features = sizes[0];
    let classes = sizes[sizes.len() - 1];
    let n = labels.len();
    assert_eq!(inputs.len(), n * features, "one label per example");
    let batches = n.div_ceil(EVAL_BATCH);
    let threads = threads.clamp(1, batches.max(1));
    let per = batches.div_ceil(threads).max(1);
    let share = |t: usize| -> (Vec<f64>, Vec<usize>) {
        let first = t * per;
        let last = ((t + 1) * per).min(batches);
        let (mut bufs, mut pack) = buffers(&layers, EVAL_BATCH);
        let mut x = vec![0.0f32; EVAL_BATCH * features];
        let mut confusion = vec![0usize; classes * classes];
        let mut losses = Vec::with_capacity(last.saturating_sub(first));
        for batch in first..last {
            let start = batch * EVAL_BATCH;
            let rows = EVAL_BATCH.min(n - start);
            let xb: &[f32] = match inputs {
                Inputs::Values(v) => &v[start * features..(start + rows) * features],
                Inputs::Pixels(p) => {
                    let indices: Vec<u32> = (start as u32..(start + rows) as u32).collect();
                    let xb = &mut x[..rows * features];
                    backend.gather_pixels(p, features, &indices, 0..features, xb);
                    xb
                }
            };
            let lb = &labels[start..start + rows];
            let logits = logits(backend, &layers, params, xb, rows, &mut bufs, &mut pack);
            let loss = softmax_cross_entropy(logits, lb, classes, None);
            losses.push(f64::from(loss) * rows as f64);
            for (row, &label) in logits.chunks_exact(classes).zip(lb) {
                let truth = usize::from(label).min(classes - 1);
                confusion[truth * classes + argmax(row)] += 1;
            }
        }
        (losses, confusion)
    };
    let parts: Vec<(Vec<f64>, Vec<usize>)> = if threads == 1 {
        vec![share(0)]
    } else {
        std::thread::scope(|scope| {
            let share = &share;
            let handles: Vec<_> = (1..threads)
                .map(|t| scope.spawn(move || share(t)))
                .collect();
            let mut parts = vec![share(0)];
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            );
            parts
        })
    };
    let mut sums = EvalSums {
        loss_sum: 0.0,
        confusion: vec![0; classes * classes],
    };
    for (losses, confusion) in parts {
        sums.loss_sum = losses.iter().fold(sums.loss_sum, |total, &l| total + l);
        for (cell, c) in sums.confusion.iter_mut().zip(confusion) {
            *cell += c;
        }
    }
    Ok(sums)
}

/// Single-example prediction (what `predict` and a serving loop do): two activation
/// buffers, allocated once.
#[derive(Clone, Debug)]
pub struct Predictor {
    backend: Backend,
    sizes: Vec<usize>,
    layers: Vec<LayerRanges>,
    buffers: [Vec<f32>; 2],
    pack: Pack,
}

impl Predictor {
    /// Buffers for a network with these layer sizes (input size first).
    ///
    /// # Errors
    /// If this CPU does not run `kernels`.
    ///
    /// # Panics
    /// If there are fewer than two sizes (no layer).
    pub fn new(kernels: Kernels, sizes: &[usize]) -> Result<Predictor, Unsupported> {
        let backend = Backend::new(kernels)?;
        let layers: Vec<LayerRanges> = layer_ranges(sizes).collect();
        assert!(!layers.is_empty(), "a network needs at least one layer");
        let (buffers, pack) = buffers(&layers, 1);
        Ok(Predictor {
            backend,
            sizes: sizes.to_vec(),
            layers,
            buffers,
            pack,
        })
    }

    /// The logits of one example (`input: [sizes[0]]`, `params` in file order).
    ///
    /// # Panics
    /// If `input` or `params` do not fit the network.
    pub fn logits(&mut self, params: &[f32], input: &[f32]) -> &[f32] {
        assert_eq!(input.len(), self.sizes[0], "input length");
        assert_eq!(
            params.len(),
            self.layers[self.layers.len() - 1].bias.end,
            "parameters"
        );
        logits(
            self.backend,
            &self.layers,
            params,
            input,
            1,
            &mut self.buffers,
            &mut self.pack,
        )
    }

    /// The predicted class of one example (the index of its largest logit).
    pub fn predict(&mut self, params: &[f32], input: &[f32]) -> usize {
        argmax(self.logits(params, input))
    }
}
