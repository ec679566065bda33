//! The Dense kernel this target uses, reading weights in place from the model file.
//!
//! Everywhere the arithmetic is `mlp-core`'s canonical order (see
//! [`mlp_core::dense::dense_forward`]): for each output `j`, `acc = b[j]`, then for `i`
//! ascending, skipping `x[i] == 0.0`, `acc = acc + x[i] · W[i][j]`, product and sum each
//! rounded to `f32`. That is what makes host and device logits bit-identical.

use mlp_core::dense::{dense_forward, DenseShape, Weight};
use mlp_core::format::LayerBytes;

/// `y ← x·W + b` for one sample, with `W` and `b` read in place from `layer`.
///
/// # Shapes
/// `x: [layer.inputs]`, `y: [layer.outputs]`; the kernel computes nothing useful (but
/// does not panic) for other lengths.
pub fn dense_layer(layer: &LayerBytes<'_>, x: &[f32], y: &mut [f32]) {
    let shape = DenseShape::new(1, layer.inputs, layer.outputs);
    match (as_f32(layer.weights), as_f32(layer.bias)) {
        (Some(weights), Some(bias)) => dense(shape, x, weights, bias, y),
        _ => dense(
            shape,
            x,
            layer.weights.as_chunks::<4>().0,
            layer.bias.as_chunks::<4>().0,
            y,
        ),
    }
}

#[inline(always)]
fn dense<W: Weight>(shape: DenseShape, x: &[f32], weights: &[W], bias: &[W], y: &mut [f32]) {
    dense_forward(shape, x, weights, bias, y);
}

/// The bytes as `f32`s in place, if they are 4-byte aligned (and the target is
/// little-endian, as the file is).
#[cfg(target_endian = "little")]
fn as_f32(bytes: &[u8]) -> Option<&[f32]> {
    // SAFETY: every bit pattern is a valid `f32`, and `align_to` only puts correctly
    // aligned, whole elements in the middle slice.
    let (head, middle, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(middle)
}

#[cfg(not(target_endian = "little"))]
fn as_f32(_bytes: &[u8]) -> Option<&[f32]> {
    None
}
