//! Prediction on microcontrollers with `mlp-core` models whose weights stay in flash.
//!
//! `#![no_std]`, no allocator, and no panic on any input:
//!
//! - [`Model::load`] validates a model file once (everything `mlp-core`'s
//!   [`ModelView::decode`](mlp_core::format::ModelView::decode) checks, plus the sizes the
//!   firmware was built for and that every parameter is finite) and borrows it: the
//!   weights are read in place, as `f32` when the file is 4-byte aligned and as
//!   little-endian bytes when it is not. Nothing is copied to RAM.
//! - [`Model::predict`] and [`Model::predict_pixels`] cannot fail after that. They run
//!   `mlp-core`'s layer loop with this crate's Dense kernels ([`kernel`]), which keep
//!   `mlp-core`'s order of operations and are tested equal to its reference kernel bit
//!   for bit, so the logits are bit-identical to the host's `predict`.
//! - RAM is only the activations, in a [`Scratch`] whose size is a const generic
//!   (`WIDTH`, the widest layer output), checked against the file at load time;
//!   [`MemoryNeeds`] states what a given model needs in RAM and flash.
//!
//! ```
//! use mlp_embedded::{Model, Scratch};
//! # let mut buffer = [0u8; 128];
//! # let file = mlp_embedded::doc_example_model(&mut buffer);
//! // A 4-3-2 network; the firmware is built for 4 inputs, 2 classes, layers up to 3 wide.
//! let model = Model::<4, 2, 3>::load(file).unwrap();
//! let mut scratch = Scratch::<3>::new();
//! let prediction = model.predict(&[1.0, 0.0, 0.5, 0.25], &mut scratch);
//! assert!(prediction.class < 2);
//! ```
//!
//! Int8 models (format version 2) run with integer arithmetic only, through
//! [`Int8Model`] and an [`Int8Scratch`] of bytes and int32 accumulators; on a Cortex-M4
//! the multiply-accumulates use the DSP extension's `SMLAD`. The logits are the same
//! integers as the host's:
//!
//! ```
//! use mlp_embedded::{Int8Model, Int8Scratch};
//! # let mut buffer = [0u8; 160];
//! # let file = mlp_embedded::doc_example_int8_model(&mut buffer);
//! let model = Int8Model::<4, 2, 3>::load(file).unwrap();
//! let mut scratch = Int8Scratch::<3>::new();
//! let prediction = model.predict_pixels(&[255, 0, 128, 64], &mut scratch);
//! assert!(prediction.class < 2);
//! ```
//!
//! # Modules
//! - [`model`]: loading `f32` models, prediction, scratch buffers and memory figures.
//! - [`int8`]: the same for int8 models.
//! - [`error`]: [`LoadError`], what is wrong with a model file.
//! - [`kernel`]: the `f32` Dense kernel used on this target; on Cortex-M a blocked kernel
//!   that keeps `mlp-core`'s exact order of operations (checked bit for bit on the host).
//! - [`kernel_i8`]: the int8 Dense kernel; `SMLAD` on Cortex-M4/M7, exact like every
//!   integer kernel.
//! - [`protocol`]: the serial protocol of `docs/PROTOCOL.md` for both sides: frames, the
//!   messages, and the device's [`protocol::Server`] with its bounded buffers.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod error;
pub mod int8;
pub mod kernel;
pub mod kernel_i8;
pub mod model;
pub mod protocol;

pub use error::LoadError;
#[doc(hidden)]
pub use int8::doc_example_int8_model;
pub use int8::{Int8Model, Int8Prediction, Int8Scratch};
pub use model::{model_in_region, MemoryNeeds, Model, Prediction, Scratch};

/// Writes a small valid model file (4-3-2, deterministic weights) into `buffer` and
/// returns it; for examples and tests. A buffer under 108 bytes gives an empty slice.
#[doc(hidden)]
pub fn doc_example_model(buffer: &mut [u8]) -> &[u8] {
    let sizes = [4, 3, 2];
    let mut payload = [0u8; (4 * 3 + 3 + 3 * 2 + 2) * 4];
    for (k, chunk) in payload.chunks_exact_mut(4).enumerate() {
        let value = (k as f32 - 11.0) / 8.0;
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    let used =
        mlp_core::format::encode(&sizes, mlp_core::format::ElementType::F32, &payload, buffer)
            .unwrap_or(0);
    buffer.get(..used).unwrap_or_default()
}
