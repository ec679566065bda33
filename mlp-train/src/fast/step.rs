//! Whole passes with the fast kernels: a training step ([`Trainer`], on one thread or
//! several), batched evaluation ([`evaluate`], optionally split over threads) and
//! single-image prediction ([`Predictor`]). Each owns its buffers, allocated when it is
//! created: a step or a prediction allocates nothing.
//!
//! A pass's instruction set is chosen once per call and thread (one dispatch), so the
//! whole pass, loops between the products included, is compiled for it.
//!
//! # A training step, on one thread or several
//! A step is three phases of work items, run by a [`Team`] (see `team.rs`): the
//! threads claim items as they come, and each phase waits for all of its items.
//!
//! 1. **First layer.** The first layer's inputs are cut in [`INPUT_HALVES`] (columns
//!    of the batch, rows of the layer's weights). Each item gathers its half of the
//!    batch's columns and multiplies it by its half of the weights: a partial sum of
//!    the layer's output, for every row.
//! 2. **Rows.** Everything that works row by row: each item adds up the partial sums
//!    of a block of rows, takes the block through every later layer forward, the
//!    loss and its gradient, and every input gradient back down to layer 1 (a row
//!    needs only the same row of the layer before or after, and the weights, which
//!    this phase only reads).
//! 3. **Weights.** Each item updates (or stores the gradients of) a share of one
//!    layer's weight rows, and one share of each layer also its bias (a column sum
//!    over the batch). The first layer's shares stay within a half.
//!
//! Between the rows and the weights the leader adds the rows' losses in row order; if
//! the sum is not finite, the weights phase does not run.
//!
//! **Where the first layer's weights live.** They are most of the model (314 KB of
//! 784-100-200-10's 403 KB). When both threads read all of them in the forward pass
//! and each rewrote a share that changed from step to step, they moved between the
//! cores' caches every step, and two threads ran only 1.3–1.5× as fast as one. Now the
//! first half's items come first in their phases and the second half's last, and the
//! leader claims from the front while workers claim from the back: with two threads,
//! each half of the weights (and of the batch's columns) is read, multiplied and
//! updated by the same core, step after step.
//!
//! Every output element is computed by exactly one item, by the same kernel and in
//! the same order of operations whatever the split: the row blocks and weight shares
//! start at multiples of the kernels' row blocks, where the zero-skipping lists come
//! out the same, the first layer's outputs are always `(bias + first half's sum) +
//! second half's sum`, and the loss is `softmax_cross_entropy`'s per-row code. So no
//! sum crosses items, and the model's bits depend neither on the thread count nor on
//! which thread ran which item. One thread runs the same three phases with one item
//! per half, one for all rows, and one per half or layer of weights.

use std::ops::Range;

use mlp_core::dense::DenseShape;
use mlp_core::loss::{argmax, softmax_cross_entropy, softmax_cross_entropy_row};

use super::gemm::{gemm, Epilogue, Gemm, Pack, Products, Strided};
use super::team::Team;
use super::{
    column_sums_into, dispatch, forward_layer, input_gradient, input_gradient_transposed,
    weight_gradient_rows, Isa, Job, WeightsOut, FORWARD_MR, WEIGHTS_MR,
};
use crate::data::{pixel_value, Dataset};
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
    team: Team,
    /// The batch's inputs, when the step gathers them itself ([`Trainer::step_on`]):
    /// each half of the inputs ([`INPUT_HALVES`]) in a `[batch, half's inputs]` block
    /// of its own, the half from input `p` on starting at element `batch · p`.
    x: Vec<f32>,
    /// The first layer's partial sums, one `[batch, outputs]` block per half.
    partials: Vec<f32>,
    /// Every layer's activations in one buffer (layer `k` from `offsets[k]`), so one
    /// shared pointer covers them all and a step allocates nothing.
    acts: Vec<f32>,
    /// The gradients with respect to every layer's output, laid out as `acts`.
    deltas: Vec<f32>,
    offsets: Vec<usize>,
    /// Each row's loss, summed in row order once all rows are done.
    row_losses: Vec<f32>,
    /// Whether each row was classified right.
    row_correct: Vec<bool>,
    /// One packing space per thread.
    packs: Vec<Pack>,
    /// The last layer's weights transposed (`[outputs, inputs]`), refreshed at the
    /// start of each step, when its input gradient is computed from them (see
    /// [`TRANSPOSE_MAX_OUTPUTS`]); else empty.
    last_transposed: Vec<f32>,
}

/// The widest last layer whose input gradient is computed from its transposed
/// weights by the product kernel (at most one AVX-512 vector of outputs). With so few
/// outputs the dot-product form spends most of its time summing lanes: for
/// 784-100-200-10 at batch 32 (AVX-512) it takes 7.2 µs, against 2.4 µs for the
/// transpose (0.85 µs) and the product.
const TRANSPOSE_MAX_OUTPUTS: usize = 16;

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
    /// one thread's. One thread runs the same code with no workers. On a machine busy
    /// with other work the workers may get no core for a while; the caller's thread
    /// then does their share and a step costs about one thread's.
    pub fn with_threads(isa: Isa, model: &Mlp, batch: usize, threads: usize) -> Trainer {
        let threads = threads.clamp(1, Trainer::max_threads(batch));
        let layout = model.layout().to_vec();
        let mut offsets = Vec::with_capacity(layout.len());
        let mut len = 0;
        for l in &layout {
            offsets.push(len);
            len += batch * l.outputs;
        }
        let first_outputs = layout.first().map_or(0, |l| l.outputs);
        let mut pack = Pack::default();
        pack.reserve(model.widest().max(batch));
        Trainer {
            isa,
            sizes: model.sizes().to_vec(),
            layout,
            batch,
            team: Team::new(threads),
            x: vec![0.0; batch * model.inputs()],
            partials: vec![0.0; INPUT_HALVES * batch * first_outputs],
            acts: vec![0.0; len],
            deltas: vec![0.0; len],
            offsets,
            row_losses: vec![0.0; batch],
            row_correct: vec![false; batch],
            packs: vec![pack; threads],
            last_transposed: match model.layout() {
                [.., l] if model.layout().len() >= 2 && l.outputs <= TRANSPOSE_MAX_OUTPUTS => {
                    vec![0.0; l.inputs * l.outputs]
                }
                _ => Vec::new(),
            },
        }
    }

    /// The threads a step runs on.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Buffers for batches of up to `batch` rows of `model`'s shape; steps run on the
    /// calling thread.
    pub fn new(isa: Isa, model: &Mlp, batch: usize) -> Trainer {
        Trainer::with_threads(isa, model, batch, 1)
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
        let inputs = model.inputs();
        assert!(x.len() >= labels.len() * inputs, "x length");
        self.run_step(
            model,
            Batch::Given(&x[..labels.len() * inputs]),
            labels,
            update,
        )
    }

    /// Like [`Trainer::step`] on the images `indices` of `inputs` (`[n, inputs]`, such
    /// as a whole training set, as values or as pixel bytes), with `labels` the
    /// batch's labels (one per index). The
    /// threads copy the rows they take into the trainer's batch buffer as they start
    /// on them, so the copy (scattered reads from a large set) is split between
    /// threads instead of done by the caller between steps. Same results as copying
    /// the rows and calling [`Trainer::step`].
    ///
    /// `next` are the next step's indices, if known (else empty): the threads start
    /// loading those images into their caches while this step computes, so that the
    /// next step's copy does not wait for memory. It changes no result.
    ///
    /// # Panics
    /// As [`Trainer::step`]; also if `indices` and `labels` differ in length or an
    /// index of `indices` or `next` is past the end of `inputs`.
    pub fn step_on(
        &mut self,
        model: &mut Mlp,
        inputs: Inputs<'_>,
        indices: &[u32],
        next: &[u32],
        labels: &[u8],
        update: Update<'_>,
    ) -> (f32, usize) {
        assert_eq!(indices.len(), labels.len(), "one label per index");
        let n = model.inputs();
        let images = inputs.len() / n.max(1);
        assert!(
            indices.iter().chain(next).all(|&i| (i as usize) < images),
            "index past the end of the inputs"
        );
        let batch = Batch::Gather {
            inputs,
            indices,
            next,
        };
        self.run_step(model, batch, labels, update)
    }

    fn run_step(
        &mut self,
        model: &mut Mlp,
        batch: Batch<'_>,
        labels: &[u8],
        update: Update<'_>,
    ) -> (f32, usize) {
        let b = labels.len();
        assert_eq!(model.sizes(), &self.sizes[..], "model shape");
        assert!(b <= self.batch, "batch larger than the trainer's");
        if let Update::Gradients(g) = &update {
            assert_eq!(g.len(), model.params.len(), "gradients length");
        }
        let layers = self.layout.len();
        if layers == 0 || b == 0 {
            return (f32::NAN, 0);
        }
        if let Some(l) = self
            .layout
            .last()
            .filter(|_| !self.last_transposed.is_empty())
        {
            let w = &model.params[l.weights.clone()];
            for (i, row) in w.chunks_exact(l.outputs).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    self.last_transposed[j * l.inputs + i] = v;
                }
            }
        }
        let (grads, out) = match update {
            Update::Sgd(lr) => (None, WeightsOut::Sgd(lr)),
            Update::Gradients(g) => (Some(SharedSlice::new(g)), WeightsOut::Store),
        };
        let threads = self.team.threads();
        let sh = StepShared {
            layout: &self.layout,
            b,
            threads,
            capacity: self.batch,
            batch,
            x: SharedSlice::new(&mut self.x),
            partials: SharedSlice::new(&mut self.partials),
            labels,
            params: SharedSlice::new(&mut model.params),
            grads,
            out,
            acts: SharedSlice::new(&mut self.acts),
            deltas: SharedSlice::new(&mut self.deltas),
            offsets: &self.offsets,
            row_losses: SharedSlice::new(&mut self.row_losses[..b]),
            row_correct: SharedSlice::new(&mut self.row_correct[..b]),
            packs: SharedSlice::new(&mut self.packs),
            last_transposed: &self.last_transposed,
        };
        let isa = self.isa;
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
        self.team.run(&items, |phases| {
            phases.run(FIRST_LAYER, INPUT_HALVES);
            phases.run(ROWS, sh.row_items());
            // SAFETY: no item runs between phases.
            let (losses, correct) = unsafe { (sh.row_losses.get(0..b), sh.row_correct.get(0..b)) };
            // In row order from zero, as `softmax_cross_entropy` sums them.
            let loss = losses.iter().fold(0.0f32, |total, &l| total + l) * (1.0 / b as f32);
            let correct = correct.iter().filter(|&&c| c).count();
            if loss.is_finite() {
                phases.run(WEIGHTS, sh.weight_items());
            }
            (loss, correct)
        })
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

/// Asks the CPU to start loading `data` into its caches (a hint: no effect on any
/// result, and none at all on CPUs without prefetch instructions).
#[inline(always)]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let line = (64 / std::mem::size_of::<T>().max(1)).max(1);
        let Some(last) = data.len().checked_sub(1) else {
            return;
        };
        // Every cache line the slice touches: one address per line from the first,
        // and the last element's, whose line a start inside a line could miss.
        for p in (0..data.len()).step_by(line).chain([last]) {
            // SAFETY: a prefetch only hints; the address is inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(data[p..].as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Share `i` of `parts` of `len` rows cut into blocks of `block` rows, as even as
/// whole blocks allow; shares start at multiples of `block` (see the module docs).
fn share(len: usize, block: usize, parts: usize, i: usize) -> Range<usize> {
    let blocks = len.div_ceil(block);
    let start = (blocks * i / parts * block).min(len);
    let end = (blocks * (i + 1) / parts * block).min(len);
    start..end
}

/// Multiply-adds per weight-update item on several threads: about 3 µs of work, so
/// that the items even out between threads at the end of the phase while a claim
/// (about 0.1 µs) stays cheap.
const UPDATE_ITEM_MACS: usize = 160_000;

/// The three phases of a step (see the module docs).
const FIRST_LAYER: usize = 0;
const ROWS: usize = 1;
const WEIGHTS: usize = 2;

/// The parts the first layer's inputs are cut in (see the module docs): two, for the
/// two ends threads claim items from. A constant, not the thread count, so that the
/// bits do not depend on the thread count.
const INPUT_HALVES: usize = 2;

/// The halves start at multiples of this many inputs: a cache line of the batch's
/// rows, and of whole weight-row blocks ([`WEIGHTS_MR`]).
const HALF_ALIGN: usize = 16;

/// Everything the items of one step share.
struct StepShared<'a> {
    layout: &'a [LayerLayout],
    /// Rows in this batch.
    b: usize,
    /// Threads in the team.
    threads: usize,
    /// The most rows a batch can have (the trainer's).
    capacity: usize,
    /// Where the batch's inputs come from.
    batch: Batch<'a>,
    /// [`Trainer::x`], filled by the first layer's items when gathering.
    x: SharedSlice<'a, f32>,
    /// [`Trainer::partials`].
    partials: SharedSlice<'a, f32>,
    labels: &'a [u8],
    params: SharedSlice<'a, f32>,
    /// Where weight gradients go: `params` (SGD, fused) or a gradient buffer.
    grads: Option<SharedSlice<'a, f32>>,
    out: WeightsOut,
    acts: SharedSlice<'a, f32>,
    deltas: SharedSlice<'a, f32>,
    offsets: &'a [usize],
    row_losses: SharedSlice<'a, f32>,
    row_correct: SharedSlice<'a, bool>,
    packs: SharedSlice<'a, Pack>,
    /// [`Trainer::last_transposed`], read-only during the step.
    last_transposed: &'a [f32],
}

/// A set of images a step gathers its batch from ([`Trainer::step_on`]),
/// `[n, inputs]`.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    /// The inputs themselves.
    Values(&'a [f32]),
    /// Pixel bytes, each input `pixel / 255` ([`crate::data::pixel_value`]), as
    /// [`crate::data::Dataset::pixels`] gives them. The same steps as on the values,
    /// bit for bit, with a quarter of the memory traffic: the scattered rows of a
    /// large set come from memory, not the caches. Measured on the walkthrough's
    /// workload with two threads (interleaved `bench` runs): 0.158–0.160 s per epoch
    /// gathering values, 0.148–0.149 s gathering bytes.
    Pixels(&'a [u8]),
}

impl<'a> Inputs<'a> {
    /// `set`'s inputs: its pixel bytes if given (from [`Dataset::pixels`]), else its
    /// values.
    pub fn of(set: &'a Dataset, pixels: Option<&'a [u8]>) -> Inputs<'a> {
        match pixels {
            Some(p) => Inputs::Pixels(p),
            None => Inputs::Values(&set.inputs),
        }
    }

    /// Inputs in the set (images × inputs per image).
    fn len(&self) -> usize {
        match self {
            Inputs::Values(v) => v.len(),
            Inputs::Pixels(p) => p.len(),
        }
    }
}

/// The inputs of a step's batch.
#[derive(Clone, Copy)]
enum Batch<'a> {
    /// The caller's `[b, inputs]` rows.
    Given(&'a [f32]),
    /// Rows `indices` of `inputs`, copied into the trainer's buffer by the first
    /// layer's items.
    Gather {
        inputs: Inputs<'a>,
        indices: &'a [u32],
        /// The next step's rows, to load into the caches.
        next: &'a [u32],
    },
}

impl StepShared<'_> {
    /// The first layer's inputs in half `half`.
    fn half(&self, half: usize) -> Range<usize> {
        share(self.layout[0].inputs, HALF_ALIGN, INPUT_HALVES, half)
    }

    /// The batch's inputs in half `half`, as `(data, stride)`: input `p` of row `r` is
    /// `data[r·stride + p − start]`, `start` the half's first input.
    ///
    /// # Safety
    /// When gathering, no thread writes this half until the next barrier (it was
    /// copied in an earlier phase or earlier by this item).
    unsafe fn half_x(&self, half: usize) -> (&[f32], usize) {
        let cols = self.half(half);
        match self.batch {
            Batch::Given(x) => (&x[cols.start..], self.layout[0].inputs),
            Batch::Gather { .. } => {
                let start = self.capacity * cols.start;
                // SAFETY: the caller's promise.
                let x = unsafe { self.x.get(start..start + self.b * cols.len()) };
                (x, cols.len())
            }
        }
    }

    /// Copies half `half` of a gathered batch's inputs into the batch buffer (nothing
    /// for a given batch).
    ///
    /// # Safety
    /// This half is this item's.
    #[inline(always)]
    unsafe fn gather(&self, half: usize) {
        let cols = self.half(half);
        if let (
            Batch::Gather {
                inputs, indices, ..
            },
            false,
        ) = (self.batch, cols.is_empty())
        {
            let n = self.layout[0].inputs;
            let start = self.capacity * cols.start;
            // SAFETY: the caller's promise.
            let dst = unsafe { self.x.get_mut(start..start + self.b * cols.len()) };
            for (row, &i) in dst.chunks_exact_mut(cols.len()).zip(indices) {
                let i = i as usize * n;
                let from = i + cols.start..i + cols.end;
                match inputs {
                    Inputs::Values(v) => row.copy_from_slice(&v[from]),
                    Inputs::Pixels(p) => {
                        for (x, &p) in row.iter_mut().zip(&p[from]) {
                            *x = pixel_value(p);
                        }
                    }
                }
            }
        }
    }

    /// Starts loading half `half` of the next step's rows into this thread's caches
    /// (nothing for a given batch). The thread that gathers a half in this step
    /// usually gathers it in the next (see the module docs). Measured on
    /// Fashion-MNIST: gathering values on two threads, each half's copy took 8.3 µs
    /// instead of 9.3 (most of the wait remains: in isolation, 32 prefetched rows
    /// took 6–7 µs to copy against 2 µs from the cache, and spreading the hints over
    /// time did not help); gathering pixel bytes, a one-thread step took
    /// 145–147 µs instead of 148–151, and two threads showed no difference.
    #[inline(always)]
    fn prefetch_next(&self, half: usize) {
        if let Batch::Gather { inputs, next, .. } = self.batch {
            let n = self.layout[0].inputs;
            let cols = self.half(half);
            for &i in next {
                let i = i as usize * n;
                let from = i + cols.start..i + cols.end;
                match inputs {
                    Inputs::Values(v) => prefetch(&v[from]),
                    Inputs::Pixels(p) => prefetch(&p[from]),
                }
            }
        }
    }

    /// Where half `half`'s partial sums of the first layer are.
    fn partial(&self, half: usize) -> Range<usize> {
        let n = self.layout[0].outputs;
        let start = half * self.capacity * n;
        start..start + self.b * n
    }

    /// Where rows `rows` of layer `k`'s activations (or deltas) are.
    fn rows(&self, k: usize, rows: &Range<usize>) -> Range<usize> {
        let n = self.layout[k].outputs;
        self.offsets[k] + rows.start * n..self.offsets[k] + rows.end * n
    }

    /// Items of the rows phase: one forward block of rows each on several threads, all
    /// rows at once on one.
    fn row_items(&self) -> usize {
        if self.threads == 1 {
            1
        } else {
            self.b.div_ceil(FORWARD_MR)
        }
    }

    /// Items that split `rows` weight rows of layer `k`: one on one thread, else
    /// enough for items of about [`UPDATE_ITEM_MACS`].
    fn shares(&self, k: usize, rows: usize) -> usize {
        if self.threads == 1 {
            return 1;
        }
        let macs = rows * self.layout[k].outputs * self.b;
        macs.div_ceil(UPDATE_ITEM_MACS)
            .clamp(1, rows.div_ceil(WEIGHTS_MR).max(1))
    }

    /// Items of the weights phase: the first half of the first layer's, every later
    /// layer's, and the second half of the first layer's (see the module docs).
    fn weight_items(&self) -> usize {
        let later: usize = (1..self.layout.len())
            .map(|k| self.shares(k, self.layout[k].inputs))
            .sum();
        self.shares(0, self.half(0).len()) + later + self.shares(0, self.half(1).len())
    }

    /// Item `item` of the weights phase.
    fn weight_share(&self, item: usize) -> WeightShare {
        let first_layer = |half: usize, i: usize| {
            let cols = self.half(half);
            let rows = share(cols.len(), WEIGHTS_MR, self.shares(0, cols.len()), i);
            WeightShare {
                layer: 0,
                half,
                rows: cols.start + rows.start..cols.start + rows.end,
                bias: half == 0 && i == 0,
            }
        };
        let first = self.shares(0, self.half(0).len());
        if item < first {
            return first_layer(0, item);
        }
        let mut i = item - first;
        for k in 1..self.layout.len() {
            let l = &self.layout[k];
            let n = self.shares(k, l.inputs);
            if i < n {
                return WeightShare {
                    layer: k,
                    half: 0,
                    rows: share(l.inputs, WEIGHTS_MR, n, i),
                    bias: i == n - 1,
                };
            }
            i -= n;
        }
        first_layer(1, i)
    }
}

/// A share of one layer's weight rows, an item of the weights phase.
struct WeightShare {
    layer: usize,
    /// For the first layer, the half of its inputs the rows are in.
    half: usize,
    /// The weight rows (inputs).
    rows: Range<usize>,
    /// Whether this item also does the layer's bias.
    bias: bool,
}

/// One work item of a step, on thread `thread`.
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
        match phase {
            FIRST_LAYER => {
                // SAFETY: this half is this item's.
                unsafe { sh.gather(item) };
                sh.prefetch_next(item);
                first_layer_half(s, sh, item, pack);
            }
            ROWS => {
                let rows = share(sh.b, FORWARD_MR, sh.row_items(), item);
                add_partials(s, sh, &rows);
                forward_rows(s, sh, &rows, pack);
                loss_rows(sh, &rows);
                for k in (1..sh.layout.len()).rev() {
                    input_gradient_rows(s, sh, k, &rows, pack);
                }
            }
            _ => update(s, sh, sh.weight_share(item), pack),
        }
    }
}

/// Half `half` of the first layer's product: its inputs of every row times its
/// weight rows, into the half's partial sums; the first half's start from the bias.
/// Reads: the parameters, this half of x; writes: this half's partial sums.
#[inline(always)]
fn first_layer_half<S: Products>(s: S, sh: &StepShared<'_>, half: usize, pack: &mut Pack) {
    let l = &sh.layout[0];
    let cols = sh.half(half);
    let w = l.weights.start + cols.start * l.outputs..l.weights.start + cols.end * l.outputs;
    // SAFETY: nobody writes the parameters in this phase; this half of x (copied by
    // this item just before) and its partial sums are this item's.
    let (x, stride, w, bias, c) = unsafe {
        let (x, stride) = sh.half_x(half);
        let c = sh.partials.get_mut(sh.partial(half));
        (
            x,
            stride,
            sh.params.get(w),
            sh.params.get(l.bias.clone()),
            c,
        )
    };
    let epilogue = if half == 0 {
        Epilogue::Bias { bias, relu: false }
    } else {
        Epilogue::Store
    };
    gemm(
        s,
        Gemm {
            a: Strided {
                data: x,
                rows: sh.b,
                cols: cols.len(),
                rs: stride,
                cs: 1,
            },
            b: w,
            n: l.outputs,
            c,
            epilogue,
            mr: FORWARD_MR,
            pack,
        },
    );
}

/// Rows `rows` of the first layer's output: the sum of the halves' partial sums,
/// then ReLU if the layer is hidden. Reads: these rows of the partial sums; writes:
/// these rows of acts[0].
#[inline(always)]
fn add_partials<S: Products>(s: S, sh: &StepShared<'_>, rows: &Range<usize>) {
    let n = sh.layout[0].outputs;
    let part = |half: usize| {
        let all = sh.partial(half);
        all.start + rows.start * n..all.start + rows.end * n
    };
    // SAFETY: in this phase the partial sums are only read, and these rows of acts
    // are this item's.
    let (first, second, y) = unsafe {
        (
            sh.partials.get(part(0)),
            sh.partials.get(part(1)),
            sh.acts.get_mut(sh.rows(0, rows)),
        )
    };
    // In vectors: ReLU on scalars compiled to a branch per element, and cost 11 µs
    // a step on random signs (perf).
    let relu = sh.layout.len() > 1;
    let l = S::LANES;
    let mut i = 0;
    while i < y.len() {
        let width = l.min(y.len() - i);
        let (a, b) = if width == l {
            (s.load(&first[i..]), s.load(&second[i..]))
        } else {
            (
                s.load_partial(&first[i..i + width]),
                s.load_partial(&second[i..i + width]),
            )
        };
        let sum = s.add(a, b);
        let v = if relu { s.relu(sum) } else { sum };
        if width == l {
            s.store(&mut y[i..], v);
        } else {
            s.store_partial(&mut y[i..i + width], v);
        }
        i += width;
    }
}

/// Rows `rows` of every layer after the first forward. Reads: the parameters, these
/// rows of acts; writes: these rows of acts.
#[inline(always)]
fn forward_rows<S: Products>(s: S, sh: &StepShared<'_>, rows: &Range<usize>, pack: &mut Pack) {
    let last = sh.layout.len() - 1;
    for (k, l) in sh.layout.iter().enumerate().skip(1) {
        // SAFETY: nobody writes the parameters in this phase; these rows of acts are
        // this item's (those of layer `k − 1` written by it just before).
        let (input, weights, bias, y) = unsafe {
            (
                sh.acts.get(sh.rows(k - 1, rows)),
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

/// Rows `rows` of the loss: each row's loss and whether it is classified right, and
/// the gradient of the batch mean with respect to its logits, with the numbers of
/// `softmax_cross_entropy` on the whole batch. Reads: these rows of the last layer's
/// acts; writes: these rows of its deltas, of the row losses and of the row flags.
fn loss_rows(sh: &StepShared<'_>, rows: &Range<usize>) {
    let last = sh.layout.len() - 1;
    let classes = sh.layout[last].outputs;
    let scale = 1.0 / sh.b as f32;
    // SAFETY: these rows are this item's.
    let (logits, grad, losses, correct) = unsafe {
        (
            sh.acts.get(sh.rows(last, rows)),
            sh.deltas.get_mut(sh.rows(last, rows)),
            sh.row_losses.get_mut(rows.clone()),
            sh.row_correct.get_mut(rows.clone()),
        )
    };
    let labels = &sh.labels[rows.clone()];
    for (((row, g), &label), (loss, right)) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
        .zip(losses.iter_mut().zip(correct))
    {
        *loss = softmax_cross_entropy_row(row, label, scale, Some(g));
        *right = argmax(row) == usize::from(label);
    }
}

/// Rows `rows` of layer `k`'s input gradient (`k ≥ 1`), masked by ReLU. Reads: layer
/// `k`'s weights, these rows of deltas[k] and acts[k − 1]; writes: these rows of
/// deltas[k − 1].
#[inline(always)]
fn input_gradient_rows<S: Products>(
    s: S,
    sh: &StepShared<'_>,
    k: usize,
    rows: &Range<usize>,
    pack: &mut Pack,
) {
    let l = &sh.layout[k];
    let shape = DenseShape::new(rows.len(), l.inputs, l.outputs);
    // SAFETY: in this phase the weights are only read, and these rows of acts and
    // deltas are this item's.
    unsafe {
        let (grad_out, grad_in, mask) = (
            sh.deltas.get(sh.rows(k, rows)),
            sh.deltas.get_mut(sh.rows(k - 1, rows)),
            Some(sh.acts.get(sh.rows(k - 1, rows))),
        );
        if k == sh.layout.len() - 1 && !sh.last_transposed.is_empty() {
            let w_t = sh.last_transposed;
            input_gradient_transposed(s, shape, w_t, grad_out, grad_in, mask, pack);
        } else {
            let w = sh.params.get(l.weights.clone());
            input_gradient(s, shape, w, grad_out, grad_in, mask);
        }
    }
}

/// Weight rows `share.rows` of a layer (and its bias, if `share.bias`), updated or
/// stored as gradients. Reads: x or acts[k − 1], deltas[k]; writes: these rows of the
/// layer's weights (or gradients).
#[inline(always)]
fn update<S: Products>(s: S, sh: &StepShared<'_>, share: WeightShare, pack: &mut Pack) {
    let WeightShare {
        layer: k,
        half,
        rows,
        bias,
    } = share;
    let l = &sh.layout[k];
    let all = 0..sh.b;
    let target = sh.grads.as_ref().unwrap_or(&sh.params);
    let w = l.weights.start + rows.start * l.outputs..l.weights.start + rows.end * l.outputs;
    // SAFETY: in this phase acts, deltas and x are only read; these weight rows are
    // this item's, the bias too if it does it, and no item of the phase reads
    // parameters.
    unsafe {
        // The layer's input, its row stride and its first column there: the batch's
        // half (see `half_x`) or the previous layer's activations.
        let (input, stride, first) = if k == 0 {
            let (x, stride) = sh.half_x(half);
            (x, stride, sh.half(half).start)
        } else {
            (sh.acts.get(sh.rows(k - 1, &all)), l.inputs, 0)
        };
        // Its transpose from input `rows.start` on.
        let x_t = Strided {
            data: &input[rows.start - first..],
            rows: rows.len(),
            cols: sh.b,
            rs: 1,
            cs: stride,
        };
        let grad_out = sh.deltas.get(sh.rows(k, &all));
        weight_gradient_rows(s, x_t, grad_out, l.outputs, target.get_mut(w), sh.out, pack);
        if bias {
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
