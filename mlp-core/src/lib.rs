//! The math of a multi-layer perceptron and its model file format: the arithmetic
//! contract that the desktop and the firmware share, and its reference kernels.
//!
//! The desktop's `predict` (and `--kernels core` training) runs these kernels. The
//! firmware runs `mlp-embedded`'s own kernels (blocked, and in assembly on the
//! Cortex-M4F), which keep the order of operations fixed here and are tested equal to
//! these kernels bit for bit (`mlp-embedded/tests`, the firmware's `kernel_shapes` in
//! QEMU, and `tests/tests/device_parity*.rs` for whole models). The desktop's fast
//! training kernels (`mlp-kernels`) fuse every multiply-add: same order, other bits.
//!
//! `#![no_std]`, no allocator, no `unsafe`: every function works on caller-owned slices or
//! fixed-size arrays.
//!
//! # Notation
//! All matrices are row-major `f32` slices.
//! - `x: [batch, inputs]` — a batch of input rows;
//! - `W: [inputs, outputs]` — row `i` holds the weights leaving input `i`;
//! - `b: [outputs]`, `y: [batch, outputs]`, with `y = x·W + b`.
//!
//! Slice kernels take their sizes in a [`dense::DenseShape`] and expect every slice to
//! have exactly the length the shape implies. That is checked with `debug_assert!`
//! (tests run with it on); release builds never panic in a kernel, they iterate over
//! whole rows only, so a caller that passes wrong lengths gets wrong numbers, not a
//! crash. Typed layers ([`dense::Dense`]) make wrong shapes a compile error instead.
//!
//! # Bit-exact arithmetic
//! The forward kernel fixes the order of every floating-point operation (see
//! [`dense::dense_forward`]) and never fuses a multiply with an add, so any target
//! computes the same bits: the trainer on x86-64 and the firmware on a Cortex-M0
//! (soft float) or Cortex-M4F agree to the last bit. The promise covers finite
//! results: a NaN stays a NaN everywhere, but its payload bits may differ between
//! architectures (x86 and ARM produce different default NaNs), and a model file with a
//! non-finite weight is refused by the device loader anyway.
//!
//! # Modules
//! - [`dense`]: the Dense layer: forward, backward, SGD step, typed `Dense<IN, OUT>`.
//! - [`activation`]: ReLU forward and backward.
//! - [`loss`]: numerically stable softmax cross-entropy, its gradient, argmax.
//! - [`init`]: Xavier/Glorot normal initialisation from a caller-supplied random source.
//! - [`network`]: the forward pass of a whole network: one layer loop for every `f32`
//!   pass, generic over the kernel, the first layer's input and where activations go.
//! - [`quant`]: int8 inference: integer kernels, requantization, the int8 layer loop,
//!   and post-training quantization of a layer.
//! - [`format`]: the model file shared by trainer and device (see `docs/FORMAT.md`).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod activation;
pub mod dense;
pub mod format;
pub mod init;
pub mod loss;
pub mod network;
pub mod quant;
