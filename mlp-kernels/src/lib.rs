//! The host's fast kernels for `mlp-core` models: products compiled for AVX-512,
//! AVX2+FMA, NEON and portable code, chosen at run time, all computing **the same
//! bits**; a thread team; the training step; batched evaluation; single-image
//! prediction.
//!
//! This crate has no command line, plotting or data-set types: `mlp-train` builds on
//! it, and an edit there does not rebuild the kernels.
//!
//! # Notation
//! A Dense layer maps `x: [batch, inputs]` to `y = x·W + b`, `W: [inputs, outputs]`,
//! `b: [outputs]`; `g = ∂loss/∂y`. All matrices are row-major, and a network's
//! parameters are one flat `f32` slice in the model file's order (per layer `W`, then
//! `b`; see `mlp_core::network::layer_ranges`).
//!
//! # The arithmetic
//! There are two, both with one fixed order of operations ([`Kernels`]):
//! - **core**: the device's, `mlp_core::dense`: every product rounded to `f32`, then
//!   added. Training with it gives the bits of the core's kernels.
//! - **fast**: the same order with every multiply-add **fused** (`fma(a, b, acc)`,
//!   one rounding). This is what every instruction set computes, exactly: a vector's
//!   lanes are independent outputs and no operation combines lanes, so the lane count
//!   (4, 8 or 16) never shows in a result, and neither does the thread count (every
//!   output element is computed by one thread, in the order below). A seed and
//!   settings give byte-identical models on any CPU.
//!
//! A *chain* is `acc ← start`, then `acc ← acc + a·b` for each term in order. For a
//! layer, in both arithmetics:
//! 1. **Forward**: `y[r][j]` is the chain over inputs `i` ascending of
//!    `x[r][i]·W[i][j]` from `b[j]`, skipping terms with `x[r][i] == 0`; then ReLU
//!    (`v < 0 → +0`; NaN and `−0` stay) on hidden layers. In the fast arithmetic, a
//!    network's **first layer** with `n ≥ 32` inputs is split at `s = 16·⌊n/32⌋`:
//!    `y = (chain over i < s from b[j]) + (chain over i ≥ s from +0)`, so that its two
//!    halves (most of the model's weights) can stay on two cores.
//! 2. **Loss**: `mlp_core::loss::softmax_cross_entropy_row` per row with scale
//!    `1/batch`; the batch's loss is the sum of the rows' in order from `+0`, times
//!    `1/batch` (as `softmax_cross_entropy`).
//! 3. **Input gradient** (every layer but the first): `gx[r][i]` is the chain over
//!    outputs `j` ascending of `g[r][j]·W[i][j]` from `+0`, then `+0` wherever the
//!    layer's input (the previous layer's ReLU output) is not `> 0`.
//! 4. **Weight gradient**: `gW[i][j]` is the chain over rows `r` ascending of
//!    `x[r][i]·g[r][j]` from `+0`, skipping `x[r][i] == 0`; **bias gradient**:
//!    `gb[j] = Σ_r g[r][j]` from `+0` by plain additions.
//! 5. **SGD**: `p ← p − lr·grad`, the product rounded, then the difference.
//!
//! **Skipped zeros.** The kernels take rows in blocks and add a block's terms for
//! every column where any of its rows is non-zero, so a row also adds exact zeros
//! `0·w`. With finite weights that changes a chain only when it stands at `−0.0`
//! (`−0 + +0 = +0`), and rounding gives `−0.0` only for `−0 + −0`: a chain from `+0`
//! never gets there, and a forward chain only from a `−0.0` bias (the trainer never
//! makes one: `+0 − lr·g` is never `−0`). So every path gives the order's bits for
//! any model the trainer writes; for a model file with a `−0.0` bias, an output that
//! is exactly zero may come out `+0.0` where the core gives `−0.0`.
//!
//! # Pieces
//! - `simd`: the vector operations as one trait, implemented for AVX-512, AVX2+FMA,
//!   NEON and portable arrays; only run-time detection builds the hardware ones.
//! - `gemm`: the one product `C ← epilogue(A·B)` that skips the zeros of `A` and
//!   fuses the bias, ReLU, ReLU's backward mask or the SGD update into its stores.
//! - [`reference`](mod@reference): the arithmetic above in plain scalar loops, for tests.
//! - [`layer`]: one layer's forward, gradients and SGD step with any [`Kernels`].
//! - [`Trainer`]: a whole training step, on one thread or several ([`team`]).
//! - [`evaluate`] and [`Predictor`]: batched evaluation and single-image prediction.
//!
//! # `unsafe`
//! Only in the SIMD intrinsics (`simd`, and the calls of their entry points in
//! `isa.rs`, which hold a token proving the CPU was checked) and in the thread team's
//! one synchronisation point (`team.rs`). Every block states its argument. The
//! portable path and the team are tested under Miri.

mod gemm;
mod infer;
mod isa;
pub mod layer;
pub mod reference;
mod simd;
mod step;
pub mod team;

pub use infer::{evaluate, EvalSums, Predictor, EVAL_BATCH};
pub use isa::{Isa, Kernels, UnknownIsa, Unsupported};
pub use step::{Batch, Inputs, StepResult, Trainer, Update};
