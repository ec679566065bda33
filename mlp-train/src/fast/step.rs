//! Whole passes with the fast kernels: a training step ([`Trainer`], on one thread or
//! several), batched evaluation ([`evaluate`], optionally split over threads) and
//! single-image prediction ([`Predictor`]). Each owns its buffers, allocated when it is
//! created: a step or a prediction allocates nothing.
//!
//! A step's instruction set is chosen once per call and thread (one dispatch), so the
//! whole pass, loops between the products included, is compiled for it.
//!
//! # A step on several threads
//! Every product is cut into work items so that each output element is computed by
//! exactly one item, by the same kernel and in the same order of operations as on one
//! thread: no sums cross items, so the model's bits depend neither on the thread count
//! nor on which thread ran which item. The forward pass and the input gradients cut
//! the batch's rows, the weight updates each layer's weight rows (its inputs); both
//! at multiples of the kernels' row blocks, where the zero-skipping lists come out
//! the same. The threads claim items as they come (see `team.rs`), phase by phase:
//!
//! 1. every layer forward, each item on its rows of the batch (a row depends only on
//!    the same row below, so one item runs all layers);
//! 2. the loss and the last layer's gradient, on the leader alone (32 × 10 values);
//! 3. the last layer's input gradient, by rows of the batch;
//! 4. for each layer `k` from the last down to 2: its weight update together with the
//!    input gradient of layer `k − 1` (they read and write different things);
//! 5. the updates of layers 0 and 1.
//!
//! A layer's bias update (a column sum over the batch) goes with its last item.

use std::ops::Range;

use mlp_core::dense::DenseShape;
use mlp_core::loss::{argmax, softmax_cross_entropy};

use super::gemm::{Pack, Products};
use super::team::{Team, MAX_PHASES};
use super::{
    column_sums_into, dispatch, forward_layer, input_gradient, weight_gradient,
    weight_gradient_rows, Isa, Job, WeightsOut, FORWARD_MR, WEIGHTS_MR,
};
use crate::data::Dataset;
use crate::metrics::{Evaluation, EVAL_BATCH};
use crate::model::{LayerLayout, Mlp};

/// Runs every layer on the first `b` rows of `x`, leaving each layer's output (after
/// ReLU for hidden layers) in `acts[k][..b × outputs]`.
#[inline(always)]
fn forward_all<S: Products>(
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

/// Training steps with the fast kernels for one network shape and batch size, on one
/// thread ([`Trainer::new`]) or several ([`Trainer::with_threads`]); the same steps
/// give the same bits either way.
#[derive(Clone, Debug)]
pub struct Trainer {
    isa: Isa,
    sizes: Vec<usize>,
    layout: Vec<LayerLayout>,
    batch: usize,
    acts: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    pack: Pack,
    parallel: Option<Parallel>,
}

/// What a step on several threads needs besides the single-threaded buffers.
#[derive(Clone, Debug)]
struct Parallel {
    team: Team,
    /// Every layer's activations in one buffer (layer `k` from `offsets[k]`), so one
    /// shared pointer covers them all and a step allocates nothing.
    acts: Vec<f32>,
    /// The gradients with respect to every layer's output, laid out as `acts`.
    deltas: Vec<f32>,
    offsets: Vec<usize>,
    /// One packing space per thread.
    packs: Vec<Pack>,
}

impl Trainer {
    /// The most threads a step can use for batches of `batch` rows: one block of
    /// forward rows each (more would have nothing to do in the forward pass), and at
    /// most 64.
    pub fn max_threads(batch: usize) -> usize {
        batch.div_ceil(FORWARD_MR).clamp(1, 64)
    }

    /// Like [`Trainer::new`], with steps split over `threads` threads (the caller and
    /// `threads − 1` workers, created now and kept until the trainer is dropped;
    /// clamped to `1..=`[`Trainer::max_threads`]). The results are bit-identical to
    /// one thread's. One thread runs the single-threaded code, with no workers. On a
    /// machine busy with other work the workers may get no core for a while; the
    /// caller's thread then does their share and a step costs about one thread's.
    pub fn with_threads(isa: Isa, model: &Mlp, batch: usize, threads: usize) -> Trainer {
        let mut t = Trainer::new(isa, model, batch);
        let threads = threads.clamp(1, Trainer::max_threads(batch));
        // Each layer adds a phase; a network deeper than the phase numbers reach
        // (hundreds of layers) trains on one thread.
        if threads > 1 && MIDDLE + t.layout.len() <= MAX_PHASES {
            let mut offsets = Vec::with_capacity(t.layout.len());
            let mut len = 0;
            for l in &t.layout {
                offsets.push(len);
                len += batch * l.outputs;
            }
            t.parallel = Some(Parallel {
                team: Team::new(threads),
                acts: vec![0.0; len],
                deltas: vec![0.0; len],
                offsets,
                packs: vec![t.pack.clone(); threads],
            });
        }
        t
    }

    /// The threads a step runs on.
    pub fn threads(&self) -> usize {
        self.parallel.as_ref().map_or(1, |p| p.team.threads())
    }

    /// Buffers for batches of up to `batch` rows of `model`'s shape; steps run on the
    /// calling thread.
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
            parallel: None,
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
        if let Some(p) = self.parallel.as_mut() {
            return parallel_step(isa, &self.layout, p, &mut model.params, x, labels, update);
        }
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
    fn run<S: Products>(self, s: S) -> (f32, usize) {
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
        let (loss, correct) =
            loss_and_correct(logits, labels, classes, &mut t.deltas[last][..b * classes]);
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

/// A mutable slice that several threads of one step use at once, each only on parts
/// no other thread reads or writes in the same phase (the phases are separated by
/// barriers). It hands out ordinary slices; the rules are the caller's to keep.
struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: a `SharedSlice` is a `&mut [T]` split between threads by the rules above;
// sending or sharing it is sending parts of the slice, which `T: Send` allows.
unsafe impl<T: Send> Send for SharedSlice<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    fn new(slice: &'a mut [T]) -> Self {
        SharedSlice {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// `&slice[range]`.
    ///
    /// # Safety
    /// No thread writes any of `range` until the next barrier.
    #[inline(always)]
    unsafe fn get(&self, range: Range<usize>) -> &[T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "shared range"
        );
        // SAFETY: in bounds (checked); no writer (the caller's promise).
        unsafe { std::slice::from_raw_parts(self.ptr.add(range.start), range.len()) }
    }

    /// `&mut slice[range]`.
    ///
    /// # Safety
    /// No other thread reads or writes any of `range` until the next barrier, and this
    /// thread holds no other reference to it.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self, range: Range<usize>) -> &mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "shared range"
        );
        // SAFETY: in bounds (checked); exclusive (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

/// Share `i` of `parts` of `len` rows cut into blocks of `block` rows, as even as
/// whole blocks allow; shares start at multiples of `block` (see the module docs).
fn share(len: usize, block: usize, parts: usize, i: usize) -> Range<usize> {
    let blocks = len.div_ceil(block);
    let start = (blocks * i / parts * block).min(len);
    let end = (blocks * (i + 1) / parts * block).min(len);
    start..end
}

/// Work items per thread and phase: more than one, so that a thread that finishes
/// early (or starts late) takes over items of the other, few enough that claiming
/// them (an atomic operation on a shared cache line each) stays cheap.
const ITEMS_PER_THREAD: usize = 3;

/// Phase numbers of a parallel step (see the module docs); phase `MIDDLE + k` is layer
/// `k`'s update with layer `k − 1`'s input gradient.
const FORWARD: usize = 0;
const INPUT_GRADIENT_LAST: usize = 1;
const LAST_UPDATES: usize = 2;
const MIDDLE: usize = 3;

/// Everything the items of one step share.
struct StepShared<'a> {
    layout: &'a [LayerLayout],
    /// Rows in this batch.
    b: usize,
    /// Items per phase, at most: [`ITEMS_PER_THREAD`] × threads.
    split: usize,
    x: &'a [f32],
    params: SharedSlice<'a, f32>,
    /// Where weight gradients go: `params` (SGD, fused) or a gradient buffer.
    grads: Option<SharedSlice<'a, f32>>,
    out: WeightsOut,
    acts: SharedSlice<'a, f32>,
    deltas: SharedSlice<'a, f32>,
    offsets: &'a [usize],
    packs: SharedSlice<'a, Pack>,
}

impl StepShared<'_> {
    /// Where rows `rows` of layer `k`'s activations (or deltas) are.
    fn rows(&self, k: usize, rows: &Range<usize>) -> Range<usize> {
        let n = self.layout[k].outputs;
        self.offsets[k] + rows.start * n..self.offsets[k] + rows.end * n
    }

    /// Items that split the batch's rows.
    fn batch_items(&self) -> usize {
        self.b.div_ceil(FORWARD_MR).min(self.split)
    }

    /// Items that split layer `k`'s weight rows.
    fn update_items(&self, k: usize) -> usize {
        self.layout[k]
            .inputs
            .div_ceil(WEIGHTS_MR)
            .clamp(1, self.split)
    }
}

/// A step on the threads of `p`'s team (see the module docs), with the same results as
/// [`StepJob`] on one thread.
fn parallel_step(
    isa: Isa,
    layout: &[LayerLayout],
    p: &mut Parallel,
    params: &mut [f32],
    x: &[f32],
    labels: &[u8],
    update: Update<'_>,
) -> (f32, usize) {
    let b = labels.len();
    let layers = layout.len();
    if layers == 0 || b == 0 {
        return (f32::NAN, 0);
    }
    let (grads, out) = match update {
        Update::Sgd(lr) => (None, WeightsOut::Sgd(lr)),
        Update::Gradients(g) => (Some(SharedSlice::new(g)), WeightsOut::Store),
    };
    let last = layers - 1;
    let classes = layout[last].outputs;
    let sh = StepShared {
        layout,
        b,
        split: ITEMS_PER_THREAD * p.team.threads(),
        x,
        params: SharedSlice::new(params),
        grads,
        out,
        acts: SharedSlice::new(&mut p.acts),
        deltas: SharedSlice::new(&mut p.deltas),
        offsets: &p.offsets,
        packs: SharedSlice::new(&mut p.packs),
    };
    let items = |thread: usize, phase: usize, item: usize| {
        dispatch(
            isa,
            ItemJob {
                sh: &sh,
                thread,
                phase,
                item,
            },
        )
    };
    p.team.run(&items, |phases| {
        phases.run(FORWARD, sh.batch_items());
        // The loss on the leader alone: 32 × 10 values, less than a claim round trip.
        let all = 0..b;
        // SAFETY: no item runs between phases; the leader is the only thread here.
        let (logits, grad) = unsafe {
            (
                sh.acts.get(sh.rows(last, &all)),
                sh.deltas.get_mut(sh.rows(last, &all)),
            )
        };
        let (loss, correct) = loss_and_correct(logits, labels, classes, grad);
        if !loss.is_finite() {
            return (loss, correct);
        }
        if layers >= 2 {
            phases.run(INPUT_GRADIENT_LAST, sh.batch_items());
        }
        for k in (2..layers).rev() {
            phases.run(MIDDLE + k, sh.update_items(k) + sh.batch_items());
        }
        let finals = sh.update_items(0) + if layers >= 2 { sh.update_items(1) } else { 0 };
        phases.run(LAST_UPDATES, finals);
        (loss, correct)
    })
}

/// The batch's mean cross-entropy loss (its gradient written into `grad`) and how
/// many of its rows the logits classify right; shared by the one-thread and the
/// threaded step so that both count the same way.
fn loss_and_correct(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    grad: &mut [f32],
) -> (f32, usize) {
    let loss = softmax_cross_entropy(logits, labels, classes, Some(grad));
    let correct = logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == usize::from(l))
        .count();
    (loss, correct)
}

/// One work item of a parallel step, on thread `thread`.
struct ItemJob<'a, 'b> {
    sh: &'a StepShared<'b>,
    thread: usize,
    phase: usize,
    item: usize,
}

impl Job for ItemJob<'_, '_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Products>(self, s: S) {
        let ItemJob {
            sh,
            thread,
            phase,
            item,
        } = self;
        // The access rules: within a phase, every range an item writes is its own and
        // no other item reads it; the phases are ordered (each waits for all its
        // items before the next is published).
        // SAFETY: pack `thread` is used by thread `thread` only, one item at a time.
        let pack = unsafe { &mut sh.packs.get_mut(thread..thread + 1)[0] };
        let layers = sh.layout.len();
        match phase {
            FORWARD => forward_rows(
                s,
                sh,
                &share(sh.b, FORWARD_MR, sh.batch_items(), item),
                pack,
            ),
            INPUT_GRADIENT_LAST => {
                let rows = share(sh.b, FORWARD_MR, sh.batch_items(), item);
                input_gradient_rows(s, sh, layers - 1, &rows);
            }
            LAST_UPDATES => {
                // The large first layer first, so the small one fills the gaps.
                let first = sh.update_items(0);
                if item < first {
                    update_rows(s, sh, 0, item, pack);
                } else {
                    update_rows(s, sh, 1, item - first, pack);
                }
            }
            _ => {
                let k = phase - MIDDLE;
                let updates = sh.update_items(k);
                if item < updates {
                    update_rows(s, sh, k, item, pack);
                } else {
                    let rows = share(sh.b, FORWARD_MR, sh.batch_items(), item - updates);
                    input_gradient_rows(s, sh, k - 1, &rows);
                }
            }
        }
    }
}

/// Rows `rows` of every layer forward. Reads: the parameters, x, these rows of acts;
/// writes: these rows of acts.
#[inline(always)]
fn forward_rows<S: Products>(s: S, sh: &StepShared<'_>, rows: &Range<usize>, pack: &mut Pack) {
    let last = sh.layout.len() - 1;
    for (k, l) in sh.layout.iter().enumerate() {
        // SAFETY: nobody writes the parameters in this phase; these rows of acts are
        // this item's (those of layer `k − 1` written by it just before).
        let (input, weights, bias, y) = unsafe {
            let input: &[f32] = if k == 0 {
                &sh.x[rows.start * l.inputs..rows.end * l.inputs]
            } else {
                sh.acts.get(sh.rows(k - 1, rows))
            };
            (
                input,
                sh.params.get(l.weights.clone()),
                sh.params.get(l.bias.clone()),
                sh.acts.get_mut(sh.rows(k, rows)),
            )
        };
        forward_layer(
            s,
            DenseShape::new(rows.len(), l.inputs, l.outputs),
            input,
            weights,
            bias,
            y,
            k < last,
            pack,
        );
    }
}

/// Rows `rows` of layer `k`'s input gradient (`k ≥ 1`), masked by ReLU. Reads: layer
/// `k`'s weights, these rows of deltas[k] and acts[k − 1]; writes: these rows of
/// deltas[k − 1].
#[inline(always)]
fn input_gradient_rows<S: Products>(s: S, sh: &StepShared<'_>, k: usize, rows: &Range<usize>) {
    let l = &sh.layout[k];
    // SAFETY: in this phase layer `k`'s weights, deltas[k] and acts[k − 1] are only
    // read (the phase's other items update another layer), and these rows of
    // deltas[k − 1] are this item's.
    unsafe {
        input_gradient(
            s,
            DenseShape::new(rows.len(), l.inputs, l.outputs),
            sh.params.get(l.weights.clone()),
            sh.deltas.get(sh.rows(k, rows)),
            sh.deltas.get_mut(sh.rows(k - 1, rows)),
            Some(sh.acts.get(sh.rows(k - 1, rows))),
        );
    }
}

/// Share `item` of layer `k`'s weight rows (and, for the last share, its bias),
/// updated or stored as gradients. Reads: x or acts[k − 1], deltas[k]; writes: these
/// rows of the layer's weights (or gradients).
#[inline(always)]
fn update_rows<S: Products>(s: S, sh: &StepShared<'_>, k: usize, item: usize, pack: &mut Pack) {
    let l = &sh.layout[k];
    let all = 0..sh.b;
    let shape = DenseShape::new(sh.b, l.inputs, l.outputs);
    let items = sh.update_items(k);
    let rows = share(l.inputs, WEIGHTS_MR, items, item);
    let target = sh.grads.as_ref().unwrap_or(&sh.params);
    let w = l.weights.start + rows.start * l.outputs..l.weights.start + rows.end * l.outputs;
    // SAFETY: in this phase deltas[k], acts[k − 1] and x are only read; these weight
    // rows are this item's, the bias the last item's, and no item of the phase reads
    // layer `k`'s parameters (the input gradient beside it is another layer's).
    unsafe {
        let input: &[f32] = if k == 0 {
            &sh.x[..sh.b * l.inputs]
        } else {
            sh.acts.get(sh.rows(k - 1, &all))
        };
        let grad_out = sh.deltas.get(sh.rows(k, &all));
        weight_gradient_rows(
            s,
            shape,
            input,
            grad_out,
            target.get_mut(w),
            rows,
            sh.out,
            pack,
        );
        if item == items - 1 {
            column_sums_into(
                s,
                grad_out,
                l.outputs,
                target.get_mut(l.bias.clone()),
                sh.out,
            );
        }
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
    fn run<S: Products>(self, s: S) -> (f64, Vec<usize>) {
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
    fn run<S: Products>(self, s: S) -> bool {
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
