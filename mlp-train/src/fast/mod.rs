//! Fast host kernels for training and inference: the same math as `mlp_core::dense`,
//! computed with AVX-512 or AVX2+FMA when the CPU has them (checked at run time), and
//! with a portable implementation everywhere else.
//!
//! `mlp-core` keeps the device's kernels portable and bit-stable (a fixed order of
//! operations, no fused multiply-add); these are for the desktop only. They give the
//! same results up to rounding: the products are fused with the sums (FMA) on x86,
//! and input gradients are summed in a different order. A test compares them with
//! the core's kernels on random shapes to a tight relative tolerance.
//!
//! # Notation
//! A Dense layer maps `x: [batch, inputs]` to `y = x·W + b`, `W: [inputs, outputs]`,
//! `b: [outputs]`; all matrices are row-major, as in the model file.
//!
//! # Pieces
//! - `simd`: the vector operations, once as a trait, implemented for AVX-512,
//!   AVX2+FMA and a portable 8-lane array; only run-time detection builds the x86 ones.
//! - `gemm`: one register-blocked product `C ← epilogue(A·B)` that skips the zeros
//!   of `A` (pixels and ReLU outputs are mostly zero) and fuses the bias, ReLU, the
//!   ReLU backward mask or the SGD update into its stores; and a dot-product form
//!   `C ← A·Bᵀ` for input gradients from the stored weights (a training step gives
//!   the last layer, whose few outputs make dot products short, to the product
//!   kernel on its transposed weights instead).
//! - [`step`]: a whole training step, batched evaluation (optionally on several
//!   threads) and single-image prediction, with buffers allocated once.
//!
//! The kernel functions here (`dense_*`, [`sgd_step`]) are the building blocks, public
//! so that tests can hold them against the core's.
//!
//! # Determinism
//! Every kernel has a fixed order of operations for a given [`Isa`], so the same seed
//! gives byte-identical models on the same machine. Results differ between instruction
//! sets (fused or separate multiply-add, 8 or 16 lanes) and from the core's kernels.

mod gemm;
mod simd;
pub mod step;
mod team;

use mlp_core::dense::DenseShape;

use gemm::{Epilogue, Gemm, GemmNt, Pack, Products, Strided};
use simd::Portable;

pub use step::{evaluate, Inputs, Predictor, Trainer, Update};

/// The instruction set a fast kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust on 8-lane arrays, no fused multiply-add: runs on every target.
    Portable,
    /// x86-64 AVX2 with FMA (8 lanes).
    Avx2,
    /// x86-64 AVX-512F (16 lanes, masked tails).
    Avx512,
}

impl Isa {
    /// Every instruction set, portable first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// Whether this CPU runs it (checked at run time).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => simd::Avx2::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => simd::Avx512::detect().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The instruction sets this CPU runs, portable first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The widest instruction set this CPU runs.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_supported())
            .unwrap_or(Isa::Portable)
    }

    /// The instruction set named by the environment variable `MLP_TRAIN_ISA`
    /// (`portable`, `avx2` or `avx512`) if it is set and supported, else [`Isa::best`].
    /// For comparing instruction sets in benchmarks.
    pub fn from_env_or_best() -> Isa {
        std::env::var("MLP_TRAIN_ISA")
            .ok()
            .and_then(|v| Isa::ALL.into_iter().find(|i| i.name() == v.trim()))
            .filter(|i| i.is_supported())
            .unwrap_or_else(Isa::best)
    }

    /// A short lower-case name (`portable`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Which kernels the trainer computes with (the `--kernels` flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernels {
    /// The fast kernels (the default).
    #[default]
    Auto,
    /// The fast kernels, with the widest instruction set the CPU runs.
    Fast,
    /// `mlp-core`'s portable kernels: bit-identical to the device's arithmetic.
    Core,
}

impl Kernels {
    /// The instruction set of the fast kernels, or `None` for the core's kernels.
    pub fn fast_isa(self) -> Option<Isa> {
        match self {
            Kernels::Auto | Kernels::Fast => Some(Isa::from_env_or_best()),
            Kernels::Core => None,
        }
    }
}

/// Work that runs with any instruction set; [`dispatch`] picks one.
pub(crate) trait Job {
    /// What the work returns.
    type Out;
    /// Does the work with the instructions of `s`.
    fn run<S: Products>(self, s: S) -> Self::Out;
}

/// Runs `job` with `isa` if this CPU supports it, else with the portable code.
pub(crate) fn dispatch<J: Job>(isa: Isa, job: J) -> J::Out {
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 => {
            if let Some(s) = simd::Avx512::detect() {
                // SAFETY: `s` exists, so AVX-512F, AVX2 and FMA were detected.
                return unsafe { run_avx512(s, job) };
            }
        }
        Isa::Avx2 => {
            if let Some(s) = simd::Avx2::detect() {
                // SAFETY: `s` exists, so AVX2 and FMA were detected.
                return unsafe { run_avx2(s, job) };
            }
        }
        Isa::Portable => {}
    }
    job.run(Portable)
}

/// `job` compiled for AVX-512 (the passes are inlined into this function; the products
/// are calls to their AVX-512 versions, see `gemm::Products`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn run_avx512<J: Job>(s: simd::Avx512, job: J) -> J::Out {
    job.run(s)
}

/// `job` compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<J: Job>(s: simd::Avx2, job: J) -> J::Out {
    job.run(s)
}

/// Packing space for the products of one thread. It grows to the largest product
/// seen and then stays: create one per thread and reuse it.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    pack: Pack,
}

impl Scratch {
    /// Space for products whose shared dimension is at most `k` (it grows if needed).
    pub fn with_capacity(k: usize) -> Scratch {
        let mut pack = Pack::default();
        pack.reserve(k);
        Scratch { pack }
    }
}

/// Rows of `x` a forward block shares its weight loads between. A share of the batch
/// that starts at a multiple of this is cut into the same blocks as the whole batch, so
/// threads that split a batch there compute the single-threaded bits.
pub(crate) const FORWARD_MR: usize = 4;
/// Rows of `xᵀ` (inputs) a weight-gradient block shares its loads between; shares of
/// the weight rows start at multiples of it, for the same reason.
pub(crate) const WEIGHTS_MR: usize = 4;

struct ForwardJob<'a> {
    shape: DenseShape,
    x: &'a [f32],
    weights: &'a [f32],
    bias: &'a [f32],
    y: &'a mut [f32],
    relu: bool,
    pack: &'a mut Pack,
}

impl Job for ForwardJob<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Products>(self, s: S) {
        forward_layer(
            s,
            self.shape,
            self.x,
            self.weights,
            self.bias,
            self.y,
            self.relu,
            self.pack,
        );
    }
}

/// One layer forward: `y ← x·W + b`, then ReLU if `relu`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_layer<S: Products>(
    s: S,
    shape: DenseShape,
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    y: &mut [f32],
    relu: bool,
    pack: &mut Pack,
) {
    gemm::gemm(
        s,
        Gemm {
            a: Strided::row_major(&x[..shape.input_len()], shape.batch, shape.inputs),
            b: weights,
            n: shape.outputs,
            c: &mut y[..shape.output_len()],
            epilogue: Epilogue::Bias { bias, relu },
            mr: FORWARD_MR,
            pack,
        },
    );
}

/// Forward pass of one Dense layer: `y ← x·W + b`, then ReLU in place if `relu`
/// (as `mlp_core::activation::relu_forward` does it).
///
/// # Shapes
/// `x: [batch, inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`,
/// `y: [batch, outputs]` (overwritten).
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward(
    isa: Isa,
    scratch: &mut Scratch,
    shape: DenseShape,
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    y: &mut [f32],
    relu: bool,
) {
    check_shape(shape, x, weights, bias.len(), y.len());
    dispatch(
        isa,
        ForwardJob {
            shape,
            x,
            weights,
            bias,
            y,
            relu,
            pack: &mut scratch.pack,
        },
    );
}

fn check_shape(shape: DenseShape, x: &[f32], weights: &[f32], bias: usize, y: usize) {
    assert!(x.len() >= shape.input_len(), "x is shorter than its shape");
    assert!(
        weights.len() >= shape.weight_len(),
        "weights are shorter than their shape"
    );
    assert!(bias >= shape.outputs, "bias is shorter than its shape");
    assert!(y >= shape.output_len(), "output is shorter than its shape");
}

struct InputGradJob<'a> {
    shape: DenseShape,
    weights: &'a [f32],
    grad_out: &'a [f32],
    grad_in: &'a mut [f32],
    mask: Option<&'a [f32]>,
}

impl Job for InputGradJob<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Products>(self, s: S) {
        input_gradient(
            s,
            self.shape,
            self.weights,
            self.grad_out,
            self.grad_in,
            self.mask,
        );
    }
}

/// `grad_in ← grad_out · Wᵀ`, zeroed where `mask ≤ 0` if a mask is given.
#[inline(always)]
pub(crate) fn input_gradient<S: Products>(
    s: S,
    shape: DenseShape,
    weights: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
    mask: Option<&[f32]>,
) {
    gemm::gemm_nt(
        s,
        GemmNt {
            a: &grad_out[..shape.output_len()],
            bt: &weights[..shape.weight_len()],
            m: shape.batch,
            n: shape.inputs,
            k: shape.outputs,
            c: &mut grad_in[..shape.input_len()],
            mask: mask.map(|h| &h[..shape.input_len()]),
        },
    );
}

/// [`input_gradient`] from `Wᵀ` (`weights_t: [outputs, inputs]`, row-major) by the
/// product kernel: `grad_in ← grad_out · Wᵀ` with the rows of `grad_out` broadcast,
/// masked where `mask ≤ 0` if a mask is given. For layers with few outputs (the last),
/// where the dot-product form spends most of its time summing short vectors across
/// lanes; the transpose is the caller's.
#[inline(always)]
pub(crate) fn input_gradient_transposed<S: Products>(
    s: S,
    shape: DenseShape,
    weights_t: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
    mask: Option<&[f32]>,
    pack: &mut Pack,
) {
    gemm::gemm(
        s,
        Gemm {
            a: Strided::row_major(&grad_out[..shape.output_len()], shape.batch, shape.outputs),
            b: &weights_t[..shape.weight_len()],
            n: shape.inputs,
            c: &mut grad_in[..shape.input_len()],
            epilogue: match mask {
                Some(h) => Epilogue::Mask {
                    h: &h[..shape.input_len()],
                },
                None => Epilogue::Store,
            },
            mr: FORWARD_MR,
            pack,
        },
    );
}

/// The input gradient of one Dense layer: `grad_in ← grad_out · Wᵀ` (overwritten),
/// as `mlp_core::dense::dense_backward_input`; with `mask` (the previous layer's ReLU
/// output), ReLU's backward is fused in: `grad_in` is zeroed where `mask ≤ 0` or NaN,
/// as `mlp_core::activation::relu_backward` does.
///
/// # Shapes
/// `weights: [inputs, outputs]`, `grad_out: [batch, outputs]`, `grad_in` and `mask:
/// [batch, inputs]`.
///
/// # Panics
/// If a slice is shorter than its shape says.
pub fn dense_backward_input(
    isa: Isa,
    shape: DenseShape,
    weights: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
    mask: Option<&[f32]>,
) {
    assert!(weights.len() >= shape.weight_len(), "weights length");
    assert!(grad_out.len() >= shape.output_len(), "grad_out length");
    assert!(grad_in.len() >= shape.input_len(), "grad_in length");
    if let Some(h) = mask {
        assert!(h.len() >= shape.input_len(), "mask length");
    }
    dispatch(
        isa,
        InputGradJob {
            shape,
            weights,
            grad_out,
            grad_in,
            mask,
        },
    );
}

/// What the weight-gradient kernel does with `xᵀ·grad_out` and `Σ grad_out`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WeightsOut {
    /// Store them as gradients.
    Store,
    /// Apply them as an SGD step with this learning rate.
    Sgd(f32),
}

struct WeightGradJob<'a> {
    shape: DenseShape,
    x: &'a [f32],
    grad_out: &'a [f32],
    weights: &'a mut [f32],
    bias: &'a mut [f32],
    out: WeightsOut,
    pack: &'a mut Pack,
}

impl Job for WeightGradJob<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Products>(self, s: S) {
        weight_gradient(
            s,
            self.shape,
            self.x,
            self.grad_out,
            self.weights,
            self.bias,
            self.out,
            self.pack,
        );
    }
}

/// `xᵀ·grad_out` and `Σ_batch grad_out` into (or, for SGD, subtracted times the
/// learning rate from) `weights` and `bias`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient<S: Products>(
    s: S,
    shape: DenseShape,
    x: &[f32],
    grad_out: &[f32],
    weights: &mut [f32],
    bias: &mut [f32],
    out: WeightsOut,
    pack: &mut Pack,
) {
    let outputs = shape.outputs;
    let weights = &mut weights[..shape.weight_len()];
    let bias = &mut bias[..outputs];
    // `xᵀ`: `A[i][p] = x[p][i]`.
    let x_t = Strided {
        data: &x[..shape.input_len()],
        rows: shape.inputs,
        cols: shape.batch,
        rs: 1,
        cs: shape.inputs,
    };
    weight_gradient_rows(s, x_t, grad_out, outputs, weights, out, pack);
    if shape.batch == 0 {
        if let WeightsOut::Store = out {
            bias.fill(0.0);
        }
        return;
    }
    column_sums_into(s, &grad_out[..shape.output_len()], outputs, bias, out);
}

/// Some rows (inputs) of [`weight_gradient`]'s weight part: `x_t·grad_out`, stored
/// into or applied to `w_rows`, which holds just those rows of `W`. `x_t: [rows, b]`
/// is a view of those rows of `xᵀ`, `grad_out: [b, outputs]`, `w_rows: [rows,
/// outputs]` (exactly, when `x_t` is empty: stored gradients are then zeros). With
/// the first row a multiple of [`WEIGHTS_MR`], every element gets the same bits as
/// from the whole product, so threads can share a layer's update by rows without
/// changing the result. The bias is not touched.
#[inline(always)]
pub(crate) fn weight_gradient_rows<S: Products>(
    s: S,
    x_t: Strided<'_>,
    grad_out: &[f32],
    outputs: usize,
    w_rows: &mut [f32],
    out: WeightsOut,
    pack: &mut Pack,
) {
    if x_t.rows == 0 || x_t.cols == 0 {
        if let WeightsOut::Store = out {
            w_rows.fill(0.0);
        }
        return;
    }
    let epilogue = match out {
        WeightsOut::Store => Epilogue::Store,
        WeightsOut::Sgd(lr) => Epilogue::Sgd { lr },
    };
    gemm::gemm(
        s,
        Gemm {
            a: x_t,
            b: &grad_out[..x_t.cols * outputs],
            n: outputs,
            c: &mut w_rows[..x_t.rows * outputs],
            epilogue,
            mr: WEIGHTS_MR,
            pack,
        },
    );
}

/// The bias gradient `Σ_rows g`, summed row by row from zero as the core does (so the
/// bits are the core's), stored or applied as an SGD step.
#[inline(always)]
pub(crate) fn column_sums_into<S: Products>(
    s: S,
    g: &[f32],
    n: usize,
    bias: &mut [f32],
    out: WeightsOut,
) {
    let l = S::LANES;
    let mut j = 0;
    while j < n {
        let width = l.min(n - j);
        let mut acc = s.zero();
        for row in g.chunks_exact(n) {
            let v = if width == l {
                s.load(&row[j..])
            } else {
                s.load_partial(&row[j..j + width])
            };
            acc = s.add(acc, v);
        }
        let value = match out {
            WeightsOut::Store => acc,
            WeightsOut::Sgd(lr) => {
                let p = if width == l {
                    s.load(&bias[j..])
                } else {
                    s.load_partial(&bias[j..j + width])
                };
                s.sub(p, s.mul(s.splat(lr), acc))
            }
        };
        if width == l {
            s.store(&mut bias[j..], value);
        } else {
            s.store_partial(&mut bias[j..j + width], value);
        }
        j += width;
    }
}

/// The weight and bias gradients of one Dense layer: `grad_weights ← xᵀ·grad_out`,
/// `grad_bias ← Σ_batch grad_out` (both overwritten), as `mlp_core::dense::dense_backward`.
///
/// # Shapes
/// `x: [batch, inputs]`, `grad_out: [batch, outputs]`, `grad_weights: [inputs, outputs]`,
/// `grad_bias: [outputs]`.
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub fn dense_backward_weights(
    isa: Isa,
    scratch: &mut Scratch,
    shape: DenseShape,
    x: &[f32],
    grad_out: &[f32],
    grad_weights: &mut [f32],
    grad_bias: &mut [f32],
) {
    check_shape(shape, x, grad_weights, grad_bias.len(), grad_out.len());
    dispatch(
        isa,
        WeightGradJob {
            shape,
            x,
            grad_out,
            weights: grad_weights,
            bias: grad_bias,
            out: WeightsOut::Store,
            pack: &mut scratch.pack,
        },
    );
}

/// One plain-SGD step of one Dense layer with its gradients never stored:
/// `W ← W − lr·(xᵀ·grad_out)`, `b ← b − lr·Σ_batch grad_out`. Same result as
/// [`dense_backward_weights`] followed by [`sgd_step`], up to rounding.
///
/// # Shapes
/// As [`dense_backward_weights`], with `weights` and `bias` in place of the gradients.
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub fn dense_sgd_update(
    isa: Isa,
    scratch: &mut Scratch,
    shape: DenseShape,
    x: &[f32],
    grad_out: &[f32],
    weights: &mut [f32],
    bias: &mut [f32],
    learning_rate: f32,
) {
    check_shape(shape, x, weights, bias.len(), grad_out.len());
    dispatch(
        isa,
        WeightGradJob {
            shape,
            x,
            grad_out,
            weights,
            bias,
            out: WeightsOut::Sgd(learning_rate),
            pack: &mut scratch.pack,
        },
    );
}

struct SgdJob<'a> {
    params: &'a mut [f32],
    grads: &'a [f32],
    lr: f32,
}

impl Job for SgdJob<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Products>(self, s: S) {
        let l = S::LANES;
        let lr = s.splat(self.lr);
        let mut p = self.params.chunks_exact_mut(l);
        let mut g = self.grads.chunks_exact(l);
        for (p, g) in (&mut p).zip(&mut g) {
            let v = s.sub(s.load(p), s.mul(lr, s.load(g)));
            s.store(p, v);
        }
        for (p, &g) in p.into_remainder().iter_mut().zip(g.remainder()) {
            *p -= self.lr * g;
        }
    }
}

/// Plain SGD: `params ← params − learning_rate · grads`, the product rounded before
/// the difference, so the bits are those of `mlp_core::dense::sgd_step`.
///
/// # Panics
/// If the slices' lengths differ.
pub fn sgd_step(isa: Isa, params: &mut [f32], grads: &[f32], learning_rate: f32) {
    assert_eq!(params.len(), grads.len(), "params and grads lengths");
    dispatch(
        isa,
        SgdJob {
            params,
            grads,
            lr: learning_rate,
        },
    );
}
