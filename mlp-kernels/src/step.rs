//! A whole training step ([`Trainer`]), on one thread or several, with buffers
//! allocated once: a step allocates only its short lists of work items.
//!
//! # A step
//! Three phases of work items, run by a [`Team`]: the threads claim items as they
//! come, and each phase waits for all of its items. Each item owns the `&mut` parts of
//! the buffers it writes, split before the phase starts, and reads what no item of the
//! phase writes.
//!
//! 1. **First layer.** With a split first layer (the fast arithmetic; see the crate
//!    docs), one item per half of its inputs: it gathers its half of the batch's
//!    inputs and multiplies it by its half of the weights, into that half's partial
//!    sums. Without a split, one item does the whole layer. Other items transpose
//!    the weights of every later layer, for the input gradients below.
//! 2. **Rows.** Everything that works row by row, one block of rows per item: the
//!    first layer's output (the sum of the halves, then ReLU), every later layer
//!    forward, the loss and its gradient, and every input gradient back down to the
//!    first layer's output (a row needs only the same row of the layer before or
//!    after, and the weights, which this phase only reads).
//! 3. **Weights.** Each item updates (or stores the gradients of) a share of one
//!    layer's weight rows, and one share per layer also the bias (a sum over the
//!    batch's rows).
//!
//! Between the rows and the weights the leader adds the rows' losses in row order; if
//! the sum is not finite, the weights phase does not run.
//!
//! **Where the first layer's weights live.** They are most of a typical model's
//! weights (784 of the walkthrough's 1,084 weight rows). The first half's items come
//! first in their phases and the second half's last, and the leader claims from the
//! front while workers claim from the back: with two threads, each half of the
//! weights (and of the batch's inputs) is read, multiplied and updated by the same
//! core, step after step, instead of moving between the cores' caches.
//!
//! Every output element is computed by exactly one item, in the order the crate docs
//! fix, so the model's bits depend neither on the thread count nor on which thread ran
//! which item.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use mlp_core::loss::{argmax, softmax_cross_entropy_row};
use mlp_core::network::{forward, layer_ranges, EveryLayer, LayerRanges};

use crate::gemm::{Epilogue, Gemm, Pack, Strided, BLOCK_ROWS};
use crate::infer::{host_layers, HostKernel};
use crate::isa::Backend;
use crate::simd::prefetch;
use crate::team::{Phases, Team};
use crate::{Kernels, Unsupported};

/// A set of examples a step gathers its batch from: `[n, features]`, row-major.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    /// The inputs themselves.
    Values(&'a [f32]),
    /// Pixel bytes, each input `pixel / 255` (`mlp_core::network::pixel_value`):
    /// a quarter of the memory traffic for the scattered rows of a large set, and
    /// converted once, by the kernels.
    Pixels(&'a [u8]),
}

impl Inputs<'_> {
    /// The values in the set (examples × features).
    pub fn len(&self) -> usize {
        match self {
            Inputs::Values(v) => v.len(),
            Inputs::Pixels(p) => p.len(),
        }
    }

    /// True when the set has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The inputs of one step's batch.
#[derive(Clone, Copy, Debug)]
pub enum Batch<'a> {
    /// The batch's rows, `[b, features]`.
    Rows(&'a [f32]),
    /// Rows `indices` of a set, copied (and converted) by the step's items.
    Gather {
        /// The set.
        inputs: Inputs<'a>,
        /// The rows of the batch, in order.
        indices: &'a [u32],
        /// The next step's rows, if known (else empty): the items that gather start
        /// loading them into their caches while this step computes. It changes no
        /// result.
        next: &'a [u32],
    },
}

/// What a training step does with its gradients.
#[derive(Debug)]
pub enum Update<'a> {
    /// Apply them at once as a plain SGD step with this learning rate (fused into the
    /// products: the weight gradients are never stored).
    Sgd(f32),
    /// Store them here, in the parameters' order, for another optimizer.
    Gradients(&'a mut [f32]),
}

/// What one step gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// The batch's mean softmax cross-entropy before the update (not finite: nothing
    /// was updated or stored).
    pub loss: f32,
    /// Rows whose largest logit was their label.
    pub correct: usize,
}

/// Training steps for one network shape and batch size, on one thread or several
/// (the same bits either way).
#[derive(Debug)]
pub struct Trainer {
    backend: Backend,
    sizes: Vec<usize>,
    layers: Vec<LayerRanges>,
    /// The most rows a batch can have.
    capacity: usize,
    /// Where the first layer's inputs are cut, if they are.
    split: Option<usize>,
    team: Team,
    /// The gathered batch, one `[capacity, part's inputs]` block per part of the first
    /// layer's inputs (two with a split, else one).
    x: Vec<f32>,
    /// The first layer's partial sums with a split, `[2, capacity, outputs]`.
    partials: Vec<f32>,
    /// Every layer's output, `[capacity, outputs]` each.
    acts: Vec<Vec<f32>>,
    /// The gradient with respect to every layer's output, as `acts`.
    deltas: Vec<Vec<f32>>,
    /// Every layer's weights transposed, `[outputs, inputs]`, refreshed at each step;
    /// empty for the first layer, whose input gradient nobody needs.
    transposed: Vec<Vec<f32>>,
    row_losses: Vec<f32>,
    row_correct: Vec<bool>,
    /// One packing space per thread.
    packs: Vec<Mutex<Pack>>,
}

impl Clone for Trainer {
    /// A trainer for the same shape, with a team of its own.
    fn clone(&self) -> Trainer {
        Trainer {
            backend: self.backend,
            sizes: self.sizes.clone(),
            layers: self.layers.clone(),
            capacity: self.capacity,
            split: self.split,
            team: self.team.clone(),
            x: self.x.clone(),
            partials: self.partials.clone(),
            acts: self.acts.clone(),
            deltas: self.deltas.clone(),
            transposed: self.transposed.clone(),
            row_losses: self.row_losses.clone(),
            row_correct: self.row_correct.clone(),
            packs: (0..self.packs.len())
                .map(|_| Mutex::new(Pack::default()))
                .collect(),
        }
    }
}

/// Multiply-adds per weight-update item on several threads: a few µs of work, so that
/// the items even out between threads at the end of the phase while a claim stays
/// cheap.
const UPDATE_ITEM_MACS: usize = 160_000;

impl Trainer {
    /// The most threads a step can use for batches of `batch` rows (one block of rows
    /// each in the rows phase), and at most 64.
    pub fn max_threads(batch: usize) -> usize {
        batch.div_ceil(BLOCK_ROWS).clamp(1, 64)
    }

    /// Buffers for batches of up to `batch` rows of a network with these layer sizes
    /// (input size first), and a team of `threads` threads (the caller and
    /// `threads − 1` workers, created now and kept until the trainer is dropped;
    /// clamped to `1..=`[`Trainer::max_threads`]).
    ///
    /// # Errors
    /// If this CPU does not run `kernels`.
    ///
    /// # Panics
    /// If there are fewer than two sizes (no layer).
    pub fn new(
        kernels: Kernels,
        sizes: &[usize],
        batch: usize,
        threads: usize,
    ) -> Result<Trainer, Unsupported> {
        assert!(sizes.len() >= 2, "a network needs at least one layer");
        let backend = Backend::new(kernels)?;
        let threads = threads.clamp(1, Trainer::max_threads(batch));
        let layers: Vec<LayerRanges> = layer_ranges(sizes).collect();
        let first = &layers[0];
        let split = backend.first_layer_split(first.inputs);
        let outputs = |k: usize| vec![0.0; batch * layers[k].outputs];
        let mut pack = Pack::default();
        pack.reserve(sizes.iter().copied().max().unwrap_or(0).max(batch));
        Ok(Trainer {
            backend,
            sizes: sizes.to_vec(),
            split,
            capacity: batch,
            team: Team::new(threads),
            x: vec![0.0; batch * first.inputs],
            partials: if split.is_some() {
                vec![0.0; 2 * batch * first.outputs]
            } else {
                Vec::new()
            },
            acts: (0..layers.len()).map(outputs).collect(),
            deltas: (0..layers.len()).map(outputs).collect(),
            transposed: layers
                .iter()
                .enumerate()
                .map(|(k, l)| {
                    if k == 0 {
                        Vec::new()
                    } else {
                        vec![0.0; l.weights.len()]
                    }
                })
                .collect(),
            row_losses: vec![0.0; batch],
            row_correct: vec![false; batch],
            packs: (0..threads).map(|_| Mutex::new(pack.clone())).collect(),
            layers,
        })
    }

    /// The threads a step runs on.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// The kernels the steps compute with.
    pub fn kernels(&self) -> Kernels {
        self.backend.kernels()
    }

    /// The layer sizes, input size first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// One step on a batch of `labels.len()` rows: forward, mean softmax
    /// cross-entropy, and, if the loss is finite, backward and `update`. A loss that is
    /// not finite leaves the parameters and the gradients untouched.
    ///
    /// # Shapes
    /// `params`: the network's parameters in file order; `labels: [b]`, `b` at most
    /// the batch size given to [`Trainer::new`]; `batch` as [`Batch`] says.
    ///
    /// # Panics
    /// If a length does not fit the network or the batch, or an index is past the end
    /// of the set (all checked before any work).
    pub fn step(
        &mut self,
        params: &mut [f32],
        batch: Batch<'_>,
        labels: &[u8],
        update: Update<'_>,
    ) -> StepResult {
        let b = labels.len();
        let features = self.sizes[0];
        let total = self.layers.last().map_or(0, |l| l.bias.end);
        assert_eq!(params.len(), total, "parameters do not fit the network");
        assert!(b <= self.capacity, "batch larger than the trainer's");
        match batch {
            Batch::Rows(x) => assert_eq!(x.len(), b * features, "batch rows length"),
            Batch::Gather {
                inputs,
                indices,
                next,
            } => {
                assert_eq!(indices.len(), b, "one label per index");
                let examples = inputs.len() / features.max(1);
                assert!(
                    indices.iter().chain(next).all(|&i| (i as usize) < examples),
                    "index past the end of the inputs"
                );
            }
        }
        if let Update::Gradients(g) = &update {
            assert_eq!(g.len(), total, "gradients do not fit the network");
        }
        if b == 0 {
            return StepResult {
                loss: f32::NAN,
                correct: 0,
            };
        }
        let Trainer {
            backend,
            layers,
            capacity,
            split,
            team,
            x,
            partials,
            acts,
            deltas,
            transposed,
            row_losses,
            row_correct,
            packs,
            ..
        } = self;
        let threads = team.threads();
        let ctx = Context {
            backend: *backend,
            layers,
            b,
            capacity: *capacity,
            split: *split,
            threads,
            packs,
        };
        team.step(|phases| {
            let x_parts = first_layer(phases, &ctx, x, batch, params, partials, acts, transposed);
            let (loss, correct) = rows(
                phases,
                &ctx,
                params,
                partials,
                transposed,
                acts,
                deltas,
                labels,
                &mut row_losses[..b],
                &mut row_correct[..b],
            );
            if loss.is_finite() {
                let (target, lr) = match update {
                    Update::Sgd(lr) => (&mut *params, Some(lr)),
                    Update::Gradients(g) => (g, None),
                };
                weights(phases, &ctx, x_parts, acts, deltas, target, lr);
            }
            StepResult { loss, correct }
        })
    }
}

/// What every phase of a step reads.
struct Context<'a> {
    backend: Backend,
    layers: &'a [LayerRanges],
    /// Rows in this batch.
    b: usize,
    /// Rows the buffers have room for.
    capacity: usize,
    split: Option<usize>,
    threads: usize,
    packs: &'a [Mutex<Pack>],
}

impl Context<'_> {
    /// The parts the first layer's inputs are cut in.
    fn parts(&self) -> Vec<Range<usize>> {
        let n = self.layers[0].inputs;
        match self.split {
            Some(s) => vec![0..s, s..n],
            None => std::iter::once(0..n).collect(),
        }
    }

    /// Runs `f` with thread `thread`'s packing space.
    fn with_pack<R>(&self, thread: usize, f: impl FnOnce(&mut Pack) -> R) -> R {
        // Thread `t` alone uses `packs[t]`, so the lock is never contended.
        let mut pack = self.packs[thread]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut pack)
    }

    /// Items that split `rows` weight rows of layer `k`: one on one thread, else
    /// enough for items of about [`UPDATE_ITEM_MACS`].
    fn shares(&self, k: usize, rows: usize) -> usize {
        if self.threads == 1 {
            return 1;
        }
        let macs = rows * self.layers[k].outputs * self.b;
        macs.div_ceil(UPDATE_ITEM_MACS)
            .clamp(1, rows.div_ceil(BLOCK_ROWS).max(1))
    }
}

/// A part of the first layer's inputs for the batch's rows: input `c` of the part in
/// row `r` is `data[r·stride + c]`.
#[derive(Clone)]
struct XPart<'a> {
    data: &'a [f32],
    stride: usize,
    /// The part's inputs.
    cols: Range<usize>,
}

/// An item of the first phase.
enum FirstItem<'a> {
    /// One part of the first layer: gathers the part's inputs into `x` (when
    /// gathering) and writes its sums into `out`.
    Part {
        index: usize,
        cols: Range<usize>,
        x: &'a mut [f32],
        out: &'a mut [f32],
    },
    /// Rows `j0..` of layer `k`'s transposed weights.
    Transpose {
        k: usize,
        j0: usize,
        out: &'a mut [f32],
    },
}

/// Phase 1 (see the module docs). Returns the batch's first-layer inputs by part, for
/// the weights phase.
#[allow(clippy::too_many_arguments)]
fn first_layer<'x>(
    phases: &mut Phases<'_>,
    ctx: &Context<'_>,
    x: &'x mut [f32],
    batch: Batch<'x>,
    params: &[f32],
    partials: &mut [f32],
    acts: &mut [Vec<f32>],
    transposed: &mut [Vec<f32>],
) -> Vec<XPart<'x>> {
    let l = &ctx.layers[0];
    let parts = ctx.parts();
    let mut items = Vec::new();
    let mut rest_x = &mut x[..];
    let mut outs: Vec<&mut [f32]> = match ctx.split {
        Some(_) => {
            let (a, b) = partials.split_at_mut(ctx.capacity * l.outputs);
            vec![a, b]
        }
        None => vec![&mut acts[0][..]],
    };
    let mut part_items = Vec::new();
    for (index, (cols, out)) in parts.iter().zip(outs.drain(..)).enumerate() {
        let (mine, rest) = rest_x.split_at_mut(ctx.capacity * cols.len());
        rest_x = rest;
        part_items.push(FirstItem::Part {
            index,
            cols: cols.clone(),
            x: mine,
            out: &mut out[..ctx.b * l.outputs],
        });
    }
    let mut part_items = part_items.into_iter();
    items.extend(part_items.next());
    for (k, t) in transposed.iter_mut().enumerate().skip(1) {
        let inputs = ctx.layers[k].inputs;
        let per = transpose_rows(ctx, k);
        for (q, out) in t.chunks_mut(per * inputs).enumerate() {
            items.push(FirstItem::Transpose {
                k,
                j0: q * per,
                out,
            });
        }
    }
    items.extend(part_items);
    let relu = ctx.layers.len() > 1;
    phases.run(items, |thread, item| match item {
        FirstItem::Part {
            index,
            cols,
            x,
            out,
        } => {
            let part = gather_part(ctx, batch, cols, x);
            let w = &params[l.weights.start + part.cols.start * l.outputs..]
                [..part.cols.len() * l.outputs];
            let epilogue = match (ctx.split, index) {
                (None, _) => Epilogue::Bias {
                    bias: &params[l.bias.clone()],
                    relu,
                },
                (Some(_), 0) => Epilogue::Bias {
                    bias: &params[l.bias.clone()],
                    relu: false,
                },
                (Some(_), _) => Epilogue::Store,
            };
            ctx.with_pack(thread, |pack| {
                ctx.backend.gemm(
                    Gemm {
                        a: Strided::rows(part.data, ctx.b, part.cols.len(), part.stride),
                        b: w,
                        n: l.outputs,
                        c: out,
                        epilogue,
                    },
                    pack,
                )
            });
        }
        FirstItem::Transpose { k, j0, out } => {
            let lk = &ctx.layers[k];
            let w = &params[lk.weights.clone()];
            ctx.backend.transpose(w, lk.inputs, lk.outputs, j0, out);
        }
    });
    // The parts as the weights phase reads them: the gathered copy, or the caller's
    // rows.
    let mut views = Vec::new();
    let mut rest: &'x [f32] = x;
    for cols in parts {
        let (mine, after) = rest.split_at(ctx.capacity * cols.len());
        rest = after;
        views.push(match batch {
            Batch::Rows(rows) => XPart {
                data: &rows[cols.start..],
                stride: ctx.layers[0].inputs,
                cols,
            },
            Batch::Gather { .. } => XPart {
                data: mine,
                stride: cols.len(),
                cols,
            },
        });
    }
    views
}

/// Rows of layer `k`'s transposed weights per item: all on one thread; else about
/// `2 × threads` items per layer, but none smaller than [`TRANSPOSE_ITEM`] elements.
fn transpose_rows(ctx: &Context<'_>, k: usize) -> usize {
    let l = &ctx.layers[k];
    if ctx.threads == 1 {
        return l.outputs.max(1);
    }
    l.outputs
        .div_ceil(2 * ctx.threads)
        .max(TRANSPOSE_ITEM.div_ceil(l.inputs.max(1)))
        .max(1)
}

/// The fewest elements a transposing item copies.
const TRANSPOSE_ITEM: usize = 4096;

/// The batch's inputs in `cols`: gathered into `x` (`[b, cols.len()]`) from the set,
/// or the caller's rows.
fn gather_part<'a>(
    ctx: &Context<'_>,
    batch: Batch<'a>,
    cols: Range<usize>,
    x: &'a mut [f32],
) -> XPart<'a> {
    let features = ctx.layers[0].inputs;
    match batch {
        Batch::Rows(rows) => XPart {
            data: &rows[cols.start..],
            stride: features,
            cols,
        },
        Batch::Gather {
            inputs,
            indices,
            next,
        } => {
            let width = cols.len();
            let x = &mut x[..ctx.b * width];
            match inputs {
                Inputs::Values(v) => {
                    for (row, &i) in x.chunks_exact_mut(width.max(1)).zip(indices) {
                        let start = i as usize * features;
                        row.copy_from_slice(&v[start + cols.start..start + cols.end]);
                    }
                }
                Inputs::Pixels(p) => {
                    ctx.backend
                        .gather_pixels(p, features, indices, cols.clone(), x)
                }
            }
            // The thread that gathers a part in this step usually gathers it in the
            // next (see the module docs).
            for &i in next {
                let start = i as usize * features;
                let range = start + cols.start..start + cols.end;
                match inputs {
                    Inputs::Values(v) => prefetch(&v[range]),
                    Inputs::Pixels(p) => prefetch(&p[range]),
                }
            }
            XPart {
                data: x,
                stride: width,
                cols,
            }
        }
    }
}

/// An item of the rows phase: a block of rows of every layer's outputs and deltas.
struct RowsItem<'a> {
    rows: Range<usize>,
    acts: Vec<&'a mut [f32]>,
    deltas: Vec<&'a mut [f32]>,
    losses: &'a mut [f32],
    correct: &'a mut [bool],
}

/// Phase 2 (see the module docs); returns the batch's mean loss and the rows
/// classified right.
#[allow(clippy::too_many_arguments)]
fn rows(
    phases: &mut Phases<'_>,
    ctx: &Context<'_>,
    params: &[f32],
    partials: &[f32],
    transposed: &[Vec<f32>],
    acts: &mut [Vec<f32>],
    deltas: &mut [Vec<f32>],
    labels: &[u8],
    losses: &mut [f32],
    correct: &mut [bool],
) -> (f32, usize) {
    let b = ctx.b;
    let per = if ctx.threads == 1 { b } else { BLOCK_ROWS };
    let blocks = b.div_ceil(per);
    let mut items: Vec<RowsItem<'_>> = (0..blocks)
        .map(|q| RowsItem {
            rows: q * per..((q + 1) * per).min(b),
            acts: Vec::with_capacity(acts.len()),
            deltas: Vec::with_capacity(acts.len()),
            losses: &mut [],
            correct: &mut [],
        })
        .collect();
    for (layer, (a, d)) in acts.iter_mut().zip(deltas.iter_mut()).enumerate() {
        let n = ctx.layers[layer].outputs;
        for ((item, a), d) in items
            .iter_mut()
            .zip(a[..b * n].chunks_mut(per * n))
            .zip(d[..b * n].chunks_mut(per * n))
        {
            item.acts.push(a);
            item.deltas.push(d);
        }
    }
    for ((item, l), c) in items
        .iter_mut()
        .zip(losses.chunks_mut(per))
        .zip(correct.chunks_mut(per))
    {
        item.losses = l;
        item.correct = c;
    }
    let last = ctx.layers.len() - 1;
    let scale = 1.0 / b as f32;
    phases.run(items, |thread, mut item| {
        let m = item.rows.len();
        let l0 = &ctx.layers[0];
        if ctx.split.is_some() {
            let n = l0.outputs;
            let half = ctx.capacity * n;
            let (p0, p1) = (
                &partials[item.rows.start * n..item.rows.end * n],
                &partials[half + item.rows.start * n..half + item.rows.end * n],
            );
            let relu = last > 0;
            for ((y, &a), &c) in item.acts[0].iter_mut().zip(p0).zip(p1) {
                let v = a + c;
                *y = if relu && v < 0.0 { 0.0 } else { v };
            }
        }
        ctx.with_pack(thread, |pack| {
            if last > 0 {
                // Every later layer forward, through the core's layer loop, from the
                // first layer's output, every output kept for the backward pass.
                let (first, later) = item.acts.split_at_mut(1);
                let mut kernel = HostKernel {
                    backend: ctx.backend,
                    pack,
                };
                forward(
                    &mut kernel,
                    host_layers(ctx.backend, ctx.layers, params).skip(1),
                    &first[0][..],
                    m,
                    EveryLayer::new(later),
                )
                .expect("shapes are checked when the trainer is made");
            }
            let classes = ctx.layers[last].outputs;
            for (r, (loss, right)) in item
                .losses
                .iter_mut()
                .zip(item.correct.iter_mut())
                .enumerate()
            {
                let row = &item.acts[last][r * classes..(r + 1) * classes];
                let grad = &mut item.deltas[last][r * classes..(r + 1) * classes];
                let label = labels[item.rows.start + r];
                *loss = softmax_cross_entropy_row(row, label, scale, Some(grad));
                *right = argmax(row) == usize::from(label);
            }
            for k in (1..=last).rev() {
                let l = &ctx.layers[k];
                let (below, from_k) = item.deltas.split_at_mut(k);
                ctx.backend.gemm(
                    Gemm {
                        a: Strided::rows(&from_k[0][..], m, l.outputs, l.outputs),
                        b: &transposed[k],
                        n: l.inputs,
                        c: &mut below[k - 1][..],
                        epilogue: Epilogue::Mask {
                            h: &item.acts[k - 1][..],
                        },
                    },
                    pack,
                );
            }
        });
    });
    // In row order from zero, as `softmax_cross_entropy` sums them.
    let loss = losses.iter().fold(0.0f32, |total, &l| total + l) * scale;
    (loss, correct.iter().filter(|&&c| c).count())
}

/// An item of the weights phase: weight rows `rows` of layer `k` (and its bias, if
/// `bias` is given), stored into or updated in `w`.
struct WeightItem<'a> {
    k: usize,
    rows: Range<usize>,
    w: &'a mut [f32],
    bias: Option<&'a mut [f32]>,
}

/// Phase 3 (see the module docs): into `target` (the parameters, updated by SGD with
/// `lr`, or the gradients, stored when `lr` is `None`).
fn weights(
    phases: &mut Phases<'_>,
    ctx: &Context<'_>,
    x_parts: Vec<XPart<'_>>,
    acts: &[Vec<f32>],
    deltas: &[Vec<f32>],
    target: &mut [f32],
    lr: Option<f32>,
) {
    // Cut `target` in memory order: per layer, its weight rows in shares (the first
    // layer's within its parts), then its bias.
    let mut rest = target;
    let mut first_parts: Vec<Vec<WeightItem<'_>>> = Vec::new();
    let mut later = Vec::new();
    for (k, l) in ctx.layers.iter().enumerate() {
        let parts = if k == 0 {
            ctx.parts()
        } else {
            std::iter::once(0..l.inputs).collect()
        };
        let mut layer_items = Vec::new();
        for cols in parts {
            let shares = ctx.shares(k, cols.len());
            let mut part_items = Vec::new();
            for q in 0..shares {
                let rows = share(cols.len(), BLOCK_ROWS, shares, q);
                let rows = cols.start + rows.start..cols.start + rows.end;
                let (w, after) = std::mem::take(&mut rest).split_at_mut(rows.len() * l.outputs);
                rest = after;
                part_items.push(WeightItem {
                    k,
                    rows,
                    w,
                    bias: None,
                });
            }
            layer_items.push(part_items);
        }
        let (bias, after) = std::mem::take(&mut rest).split_at_mut(l.outputs);
        rest = after;
        // The bias goes with the layer's last share of its first part.
        if let Some(item) = layer_items.first_mut().and_then(|p| p.last_mut()) {
            item.bias = Some(bias);
        }
        if k == 0 {
            first_parts = layer_items;
        } else {
            later.extend(layer_items.into_iter().flatten());
        }
    }
    let mut first_parts = first_parts.into_iter();
    let mut items: Vec<WeightItem<'_>> = first_parts.next().unwrap_or_default();
    items.extend(later);
    items.extend(first_parts.flatten());
    let b = ctx.b;
    phases.run(items, |thread, item| {
        let l = &ctx.layers[item.k];
        let grad_out = &deltas[item.k][..b * l.outputs];
        // The layer's input, transposed, from weight row `rows.start` on.
        let x_t = if item.k == 0 {
            let part = x_parts
                .iter()
                .find(|p| p.cols.contains(&item.rows.start))
                .or(x_parts.first());
            match part {
                Some(p) => Strided::transposed(
                    &p.data[item.rows.start - p.cols.start..],
                    item.rows.len(),
                    b,
                    p.stride,
                ),
                None => return,
            }
        } else {
            Strided::transposed(
                &acts[item.k - 1][item.rows.start..],
                item.rows.len(),
                b,
                l.inputs,
            )
        };
        let epilogue = match lr {
            Some(lr) => Epilogue::Sgd { lr },
            None => Epilogue::Store,
        };
        if !item.rows.is_empty() {
            ctx.with_pack(thread, |pack| {
                ctx.backend.gemm(
                    Gemm {
                        a: x_t,
                        b: grad_out,
                        n: l.outputs,
                        c: item.w,
                        epilogue,
                    },
                    pack,
                )
            });
        }
        if let Some(bias) = item.bias {
            bias_gradient(grad_out, l.outputs, bias, lr);
        }
    });
}

/// The bias gradient `Σ_rows g` (each column summed in row order from `+0`), stored
/// into `bias` or, with `lr`, applied to it: `b ← b − lr·Σ`.
pub(crate) fn bias_gradient(g: &[f32], n: usize, bias: &mut [f32], lr: Option<f32>) {
    const CHUNK: usize = 64;
    for (c0, bias) in (0..n).step_by(CHUNK).zip(bias.chunks_mut(CHUNK)) {
        let mut sums = [0.0f32; CHUNK];
        let sums = &mut sums[..bias.len()];
        for row in g.chunks_exact(n) {
            for (s, &v) in sums.iter_mut().zip(&row[c0..]) {
                *s += v;
            }
        }
        for (b, &s) in bias.iter_mut().zip(sums.iter()) {
            *b = match lr {
                Some(lr) => *b - lr * s,
                None => s,
            };
        }
    }
}

/// Share `i` of `parts` of `len` rows cut into blocks of `block` rows, as even as whole
/// blocks allow.
fn share(len: usize, block: usize, parts: usize, i: usize) -> Range<usize> {
    let blocks = len.div_ceil(block);
    let start = (blocks * i / parts * block).min(len);
    let end = (blocks * (i + 1) / parts * block).min(len);
    start..end
}
