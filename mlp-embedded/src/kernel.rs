//! The Dense kernel this target uses, reading weights in place from the model file.
//!
//! Everywhere the arithmetic is `mlp-core`'s canonical order (see
//! [`mlp_core::dense::dense_forward`]): for each output `j`, `acc = b[j]`, then for `i`
//! ascending, skipping `x[i] == 0.0`, `acc = acc + x[i] · W[i][j]`, product and sum each
//! rounded to `f32`. That is what makes host and device logits bit-identical.
//!
//! On Cortex-M ([`dense_layer`] with `target_arch = "arm"`), `f32` weights go through
//! [`dense_forward_sparse_blocked`], which computes the same operations in the same
//! order per output, but visits them in a cheaper pattern:
//!
//! 1. the non-zero inputs of a chunk of [`CHUNK`] inputs are gathered once, with the
//!    byte offset of their weight row (the zero test is done once per input, not once
//!    per output);
//! 2. the outputs are taken in blocks of 16, 8 and 4 kept in registers while the
//!    gathered inputs are applied in ascending order, then 1 at a time for the rest.
//!
//! On hard-float targets (`target_abi = "eabihf"`, e.g. Cortex-M4F) the register
//! blocks are a few lines of assembly: `vldmia` loads 8 weights in one instruction and
//! `vmla.f32` multiplies and adds with the product rounded first (it is *not* fused:
//! the same bits as `vmul.f32` then `vadd.f32`; `vfma.f32` would differ). Elsewhere
//! the blocks are plain Rust, which is what the host tests check bit for bit against
//! `mlp-core`'s kernel for every size from 0 to 40 and awkward ones. The assembly is
//! checked in QEMU by the firmware's `kernel_shapes` binary (`scripts/firmware.sh
//! check`): outputs 0 to 40, so every combination of blocks and tail, with 1 to 129
//! inputs, against `mlp-core`'s kernel bit for bit; and by the parity test on the
//! trained 784-100-200-10 model.
//!
//! [`dense_layer_pixels`] is the first layer of `Model::predict_pixels` on every
//! target: it gathers straight from the pixel bytes (a pixel is zero exactly when
//! `pixel as f32 / 255.0` is `0.0`), converting only the pixels it uses, so the input
//! never exists as `f32` in RAM. Weights from an unaligned file are read as
//! little-endian bytes, one output at a time.

use mlp_core::activation::relu_forward;
use mlp_core::dense::{dense_forward, DenseShape, Weight};
use mlp_core::format::{InputTransform, LayerBytes};
use mlp_core::network::{standardize, DenseKernel};

use sealed::Entry;

/// Inputs gathered at a time by [`dense_forward_sparse_blocked`]: its stack use is
/// `8 × CHUNK` bytes.
pub const CHUNK: usize = 64;

/// `y ← x·W + b` for one sample, with `W` and `b` read in place from `layer`.
///
/// # Shapes
/// `x: [layer.inputs]`, `y: [layer.outputs]`; the kernel computes nothing useful (but
/// does not panic) for other lengths.
pub fn dense_layer(layer: &LayerBytes<'_>, x: &[f32], y: &mut [f32]) {
    let shape = DenseShape::new(1, layer.inputs, layer.outputs);
    match (as_f32(layer.weights), as_f32(layer.bias)) {
        #[cfg(target_arch = "arm")]
        (Some(weights), Some(bias)) => dense_forward_sparse_blocked(x, weights, bias, y),
        #[cfg(not(target_arch = "arm"))]
        (Some(weights), Some(bias)) => dense_forward(shape, x, weights, bias, y),
        _ => dense_forward(
            shape,
            x,
            layer.weights.as_chunks::<4>().0,
            layer.bias.as_chunks::<4>().0,
            y,
        ),
    }
}

/// `y ← x·W + b` for one sample given as pixels, `x[i] = pixels[i] as f32 / 255.0`,
/// with `W` and `b` read in place from `layer`: the first layer of
/// [`Model::predict_pixels`](crate::Model::predict_pixels), which never holds `x` in RAM.
///
/// # Shapes
/// `pixels: [layer.inputs]`, `y: [layer.outputs]`; `y` is NaN for other lengths.
pub fn dense_layer_pixels(layer: &LayerBytes<'_>, pixels: &[u8], y: &mut [f32]) {
    dense_layer_bytes(layer, pixels, &InputTransform::Pixels, y);
}

/// `y ← x·W + b` for one sample given as one byte per input, `x[i]` the byte through
/// `transform` ([`dense_forward_sparse_blocked_bytes`]), with `W` and `b` read in place
/// from `layer`: the first layer of [`Model::predict_pixels`](crate::Model::predict_pixels)
/// for every kind of model, which never holds `x` in RAM.
///
/// # Shapes
/// As [`dense_layer_pixels`].
pub fn dense_layer_bytes(
    layer: &LayerBytes<'_>,
    bytes: &[u8],
    transform: &InputTransform<'_>,
    y: &mut [f32],
) {
    match (as_f32(layer.weights), as_f32(layer.bias)) {
        (Some(weights), Some(bias)) => {
            dense_forward_sparse_blocked_bytes(bytes, transform, weights, bias, y)
        }
        _ => dense_forward_sparse_blocked_bytes(
            bytes,
            transform,
            layer.weights.as_chunks::<4>().0,
            layer.bias.as_chunks::<4>().0,
            y,
        ),
    }
}

/// This target's kernels as `mlp-core`'s layer loop
/// ([`mlp_core::network::forward`]) calls them: [`dense_layer`] for `f32` inputs,
/// [`dense_layer_bytes`] with `bytes` (the model's input transform) for one byte per
/// input, then ReLU if the loop asks for it.
///
/// One sample per call: the device always runs `rows = 1` (other row counts give NaN
/// on Cortex-M, as any length the kernels do not expect).
pub(crate) struct Device<'t> {
    /// What turns an input byte into the first layer's input.
    pub(crate) bytes: InputTransform<'t>,
}

impl DenseKernel<LayerBytes<'_>> for Device<'_> {
    #[inline(always)]
    fn dense(
        &mut self,
        layer: &LayerBytes<'_>,
        _rows: usize,
        x: &[f32],
        y: &mut [f32],
        relu: bool,
    ) {
        dense_layer(layer, x, y);
        if relu {
            relu_forward(y);
        }
    }
}

impl DenseKernel<LayerBytes<'_>, u8> for Device<'_> {
    #[inline(always)]
    fn dense(&mut self, layer: &LayerBytes<'_>, _rows: usize, x: &[u8], y: &mut [f32], relu: bool) {
        dense_layer_bytes(layer, x, &self.bytes, y);
        if relu {
            relu_forward(y);
        }
    }
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

/// `y ← x·W + b` for one sample, bit-identical to [`mlp_core::dense::dense_forward`]
/// (same operations, same order for each output), faster on Cortex-M; see the module
/// documentation.
///
/// # Shapes
/// `x: [inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`, `y: [outputs]`.
/// For other lengths `y` is filled with NaN (no panic, even with debug assertions);
/// weights of 1 GiB or more go to `mlp-core`'s kernel.
pub fn dense_forward_sparse_blocked(x: &[f32], weights: &[f32], bias: &[f32], y: &mut [f32]) {
    if x.len().checked_mul(bias.len()) == Some(weights.len()) && !offsets_fit(weights.len()) {
        // Row offsets would not fit in 32 bits (only possible on a 64-bit host).
        dense_forward(DenseShape::new(1, x.len(), bias.len()), x, weights, bias, y);
        return;
    }
    sparse_blocked(x, |_, xi| nonzero_f32(xi), weights, bias, y);
}

/// `y ← x·W + b` where `x[i] = pixels[i] as f32 / 255.0`, without materializing `x`:
/// only the non-zero pixels are converted. Bit-identical to converting every pixel
/// and calling [`mlp_core::dense::dense_forward`] (a pixel is zero exactly when its
/// `x[i]` is `0.0`). Weights are `f32` or little-endian `[u8; 4]` (an unaligned file).
///
/// # Shapes
/// As [`dense_forward_sparse_blocked`], with `pixels: [inputs]`; other lengths, or
/// weights of 1 GiB or more, fill `y` with NaN.
pub fn dense_forward_sparse_blocked_pixels<W: Blocks>(
    pixels: &[u8],
    weights: &[W],
    bias: &[W],
    y: &mut [f32],
) {
    dense_forward_sparse_blocked_bytes(pixels, &InputTransform::Pixels, weights, bias, y);
}

/// `y ← x·W + b` where `x[i]` is byte `i` through a model's input transform
/// (`InputTransform::apply_to_bytes`: `byte / 255` for pixels, the byte itself for
/// features, `(byte - offset[i]) × scale[i]` for standardized features), without
/// materializing `x`: bit-identical to transforming every byte and calling
/// [`mlp_core::dense::dense_forward`]. For pixels, exactly
/// [`dense_forward_sparse_blocked_pixels`].
///
/// # Shapes
/// As [`dense_forward_sparse_blocked_pixels`].
pub fn dense_forward_sparse_blocked_bytes<W: Blocks>(
    bytes: &[u8],
    transform: &InputTransform<'_>,
    weights: &[W],
    bias: &[W],
    y: &mut [f32],
) {
    if !offsets_fit(weights.len()) {
        y.fill(f32::NAN);
        return;
    }
    sparse_blocked(
        bytes,
        |i, byte| match transform {
            // A zero byte is a zero input: skipped before any division.
            InputTransform::Pixels => nonzero_pixel(byte),
            InputTransform::Features => nonzero_f32(f32::from(byte)),
            InputTransform::Standardized(norm) => {
                nonzero_f32(standardize(f32::from(byte), norm.offset(i), norm.scale(i)))
            }
        },
        weights,
        bias,
        y,
    );
}

/// Whether every row offset in bytes fits in the `u32` of an [`Entry`].
fn offsets_fit(weights: usize) -> bool {
    weights < (u32::MAX / 4) as usize
}

/// The input's value if the core's kernel would use it: it skips exactly the inputs
/// with `x == 0.0` (so NaN is kept, and -0.0 is skipped like 0.0).
#[inline(always)]
fn nonzero_f32(x: f32) -> Option<f32> {
    if x == 0.0 {
        None
    } else {
        Some(x)
    }
}

/// A pixel's input value, `pixel as f32 / 255.0`, if it is not zero.
#[inline(always)]
fn nonzero_pixel(pixel: u8) -> Option<f32> {
    if pixel == 0 {
        None
    } else {
        Some(f32::from(pixel) / 255.0)
    }
}

/// The kernel for any input encoding and weight encoding; the caller checked that
/// row offsets fit in 32 bits.
#[inline(always)]
fn sparse_blocked<X: Copy, W: Blocks>(
    x: &[X],
    nonzero: impl Fn(usize, X) -> Option<f32>,
    weights: &[W],
    bias: &[W],
    y: &mut [f32],
) {
    let (inputs, outputs) = (x.len(), bias.len());
    if inputs.checked_mul(outputs) != Some(weights.len())
        || y.len() != outputs
        || !offsets_fit(weights.len())
    {
        y.fill(f32::NAN);
        return;
    }
    for (yj, &bj) in y.iter_mut().zip(bias) {
        *yj = bj.value();
    }
    if outputs == 0 {
        return;
    }
    let mut gathered = [Entry::default(); CHUNK];
    for (chunk_index, x_chunk) in x.chunks(CHUNK).enumerate() {
        let mut count = 0;
        for (i, &xi) in (chunk_index * CHUNK..).zip(x_chunk) {
            let Some(value) = nonzero(i, xi) else {
                continue;
            };
            if let Some(slot) = gathered.get_mut(count) {
                // Fits: i × outputs × 4 < weights.len() × 4 < u32::MAX (checked above).
                *slot = Entry {
                    x: value,
                    row_offset_bytes: (i * outputs * 4) as u32,
                };
                count += 1;
            }
        }
        if let Some(entries @ [_, ..]) = gathered.get(..count) {
            sealed::Apply::apply(entries, weights, y);
        }
    }
}

/// A weight encoding the blocked kernel can read: `f32` in place (register blocks in
/// assembly on hard-float Cortex-M) or little-endian `[u8; 4]` (plain Rust). Sealed.
pub trait Blocks: Weight + sealed::Apply {}

impl Blocks for f32 {}
impl Blocks for [u8; 4] {}

mod sealed {
    /// One gathered non-zero input: its value and the byte offset of its weight row.
    /// Only this module makes them (nameable nowhere else), always in ascending order
    /// of input, which the assembly blocks' bounds check relies on.
    #[derive(Clone, Copy, Debug, Default)]
    #[repr(C)]
    pub struct Entry {
        pub(crate) x: f32,
        pub(crate) row_offset_bytes: u32,
    }

    /// `y[j] ← y[j] + Σ_entries x · W[row][j]` for every output `j`, entries in order.
    pub trait Apply: Sized {
        fn apply(entries: &[Entry], weights: &[Self], y: &mut [f32]);
    }
}

impl sealed::Apply for f32 {
    #[inline(always)]
    fn apply(entries: &[Entry], weights: &[f32], y: &mut [f32]) {
        let mut column = 0;
        let mut rest = y;
        while let Some(block) = take_block::<16>(&mut rest) {
            block16(block, entries, weights, column);
            column += 16;
        }
        if let Some(block) = take_block::<8>(&mut rest) {
            block8(block, entries, weights, column);
            column += 8;
        }
        if let Some(block) = take_block::<4>(&mut rest) {
            block4(block, entries, weights, column);
            column += 4;
        }
        apply_scalar(entries, weights, rest, column);
    }
}

impl sealed::Apply for [u8; 4] {
    #[inline(always)]
    fn apply(entries: &[Entry], weights: &[[u8; 4]], y: &mut [f32]) {
        // Only for unaligned model files: kept small rather than fast.
        apply_scalar(entries, weights, y, 0);
    }
}

/// The outputs left after the blocks, one at a time.
#[inline(always)]
fn apply_scalar<W: Weight>(entries: &[Entry], weights: &[W], rest: &mut [f32], column: usize) {
    for (k, yk) in rest.iter_mut().enumerate() {
        let mut acc = *yk;
        for entry in entries {
            let index = entry.row_offset_bytes as usize / 4 + column + k;
            if let Some(&w) = weights.get(index) {
                acc += entry.x * w.value();
            }
        }
        *yk = acc;
    }
}

/// The first `B` values of `rest` as an array, `rest` advanced past them; `None` if
/// fewer are left.
#[inline(always)]
fn take_block<'y, const B: usize>(rest: &mut &'y mut [f32]) -> Option<&'y mut [f32; B]> {
    let taken = core::mem::take(rest);
    if taken.len() < B {
        *rest = taken;
        return None;
    }
    let (block, tail) = taken.split_first_chunk_mut::<B>()?;
    *rest = tail;
    Some(block)
}

/// Plain-Rust register block: `y[k] ← y[k] + Σ_entries x · W[row][column + k]`,
/// entries in order, for `k < B`.
#[cfg_attr(all(target_arch = "arm", target_abi = "eabihf"), allow(dead_code))]
#[inline(always)]
fn block_portable<const B: usize, W: Weight>(
    y: &mut [f32; B],
    entries: &[Entry],
    weights: &[W],
    column: usize,
) {
    // Accumulates in place: on v6-M the accumulators would not fit in registers
    // anyway, and copying an array in and out costs a `memmove` of 1.3 KB of code.
    for entry in entries {
        let start = entry.row_offset_bytes as usize / 4 + column;
        if let Some(w) = weights.get(start..).and_then(|w| w.first_chunk::<B>()) {
            for (a, wk) in y.iter_mut().zip(w) {
                *a += entry.x * wk.value();
            }
        }
    }
}

#[cfg(not(all(target_arch = "arm", target_abi = "eabihf")))]
#[inline(always)]
fn block16(y: &mut [f32; 16], entries: &[Entry], weights: &[f32], column: usize) {
    block_portable(y, entries, weights, column);
}

#[cfg(not(all(target_arch = "arm", target_abi = "eabihf")))]
#[inline(always)]
fn block8(y: &mut [f32; 8], entries: &[Entry], weights: &[f32], column: usize) {
    block_portable(y, entries, weights, column);
}

#[cfg(not(all(target_arch = "arm", target_abi = "eabihf")))]
#[inline(always)]
fn block4(y: &mut [f32; 4], entries: &[Entry], weights: &[f32], column: usize) {
    block_portable(y, entries, weights, column);
}

#[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
use fpu::{block16, block4, block8};

/// The register blocks in assembly for Cortex-M with a single-precision FPU.
///
/// Each keeps `B` outputs in `s0…s(B-1)`, puts the entry's input in `s24` and its
/// weights in `s16…s23`, and does `vmla.f32 acc, x, w` (`acc + round(x · w)`, rounded:
/// not fused), entries in order: the core's arithmetic, bit for bit. Per entry a
/// 16-block costs 23 instructions (1.44 per multiply-accumulate), an 8-block 14, a
/// 4-block 10.
#[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
mod fpu {
    use super::Entry;
    use core::arch::asm;

    /// Whether every entry's `B` weights from `column` lie inside `weights`.
    ///
    /// The gathering loop only makes entries for inputs `i < inputs`, in ascending
    /// order, and blocks have `column + B <= outputs`, so this always holds; it is
    /// checked again (on the last entry, which has the largest offset) because the
    /// assembly reads the weights without bounds checks. If it ever failed, the block
    /// would be NaN rather than read out of bounds.
    #[inline(always)]
    fn in_bounds<const B: usize>(entries: &[Entry], weights: &[f32], column: usize) -> bool {
        match entries.last() {
            Some(last) => last.row_offset_bytes as usize / 4 + column + B <= weights.len(),
            None => false,
        }
    }

    #[inline(always)]
    pub(super) fn block16(y: &mut [f32; 16], entries: &[Entry], weights: &[f32], column: usize) {
        if !in_bounds::<16>(entries, weights, column) {
            // Unreachable (see `in_bounds`); NaN rather than reading out of bounds.
            return y.fill(f32::NAN);
        }
        // SAFETY: `y` is 16 writable f32s; `entries` is `entries.len() >= 1` readable
        // 8-byte entries, and the loop runs exactly that many times; for each, the 16
        // f32s at `weights + column + row_offset` are inside `weights` (offsets ascend,
        // and the last one is checked above).
        // Every register written is declared as an output or clobber; no stack use.
        unsafe {
            asm!(
                "vldmia {y}, {{s0-s15}}",
                "2:",
                "vldmia {e}!, {{s24}}",
                "ldr {off}, [{e}], #4",
                "add {p}, {base}, {off}",
                "vldmia {p}!, {{s16-s23}}",
                "vmla.f32 s0, s24, s16",
                "vmla.f32 s1, s24, s17",
                "vmla.f32 s2, s24, s18",
                "vmla.f32 s3, s24, s19",
                "vmla.f32 s4, s24, s20",
                "vmla.f32 s5, s24, s21",
                "vmla.f32 s6, s24, s22",
                "vmla.f32 s7, s24, s23",
                "vldmia {p}, {{s16-s23}}",
                "vmla.f32 s8, s24, s16",
                "vmla.f32 s9, s24, s17",
                "vmla.f32 s10, s24, s18",
                "vmla.f32 s11, s24, s19",
                "vmla.f32 s12, s24, s20",
                "vmla.f32 s13, s24, s21",
                "vmla.f32 s14, s24, s22",
                "vmla.f32 s15, s24, s23",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vstmia {y}, {{s0-s15}}",
                y = in(reg) y.as_mut_ptr(),
                e = inout(reg) entries.as_ptr() => _,
                n = inout(reg) entries.len() => _,
                base = in(reg) weights.as_ptr().wrapping_add(column),
                off = out(reg) _,
                p = out(reg) _,
                out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                out("s8") _, out("s9") _, out("s10") _, out("s11") _,
                out("s12") _, out("s13") _, out("s14") _, out("s15") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                out("s24") _,
                options(nostack),
            );
        }
    }

    #[inline(always)]
    pub(super) fn block8(y: &mut [f32; 8], entries: &[Entry], weights: &[f32], column: usize) {
        if !in_bounds::<8>(entries, weights, column) {
            return y.fill(f32::NAN);
        }
        // SAFETY: as in `block16`, with 8 outputs and 8 weights per entry.
        unsafe {
            asm!(
                "vldmia {y}, {{s0-s7}}",
                "2:",
                "vldmia {e}!, {{s24}}",
                "ldr {off}, [{e}], #4",
                "add {p}, {base}, {off}",
                "vldmia {p}, {{s16-s23}}",
                "vmla.f32 s0, s24, s16",
                "vmla.f32 s1, s24, s17",
                "vmla.f32 s2, s24, s18",
                "vmla.f32 s3, s24, s19",
                "vmla.f32 s4, s24, s20",
                "vmla.f32 s5, s24, s21",
                "vmla.f32 s6, s24, s22",
                "vmla.f32 s7, s24, s23",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vstmia {y}, {{s0-s7}}",
                y = in(reg) y.as_mut_ptr(),
                e = inout(reg) entries.as_ptr() => _,
                n = inout(reg) entries.len() => _,
                base = in(reg) weights.as_ptr().wrapping_add(column),
                off = out(reg) _,
                p = out(reg) _,
                out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                out("s4") _, out("s5") _, out("s6") _, out("s7") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s20") _, out("s21") _, out("s22") _, out("s23") _,
                out("s24") _,
                options(nostack),
            );
        }
    }

    #[inline(always)]
    pub(super) fn block4(y: &mut [f32; 4], entries: &[Entry], weights: &[f32], column: usize) {
        if !in_bounds::<4>(entries, weights, column) {
            return y.fill(f32::NAN);
        }
        // SAFETY: as in `block16`, with 4 outputs and 4 weights per entry.
        unsafe {
            asm!(
                "vldmia {y}, {{s0-s3}}",
                "2:",
                "vldmia {e}!, {{s24}}",
                "ldr {off}, [{e}], #4",
                "add {p}, {base}, {off}",
                "vldmia {p}, {{s16-s19}}",
                "vmla.f32 s0, s24, s16",
                "vmla.f32 s1, s24, s17",
                "vmla.f32 s2, s24, s18",
                "vmla.f32 s3, s24, s19",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vstmia {y}, {{s0-s3}}",
                y = in(reg) y.as_mut_ptr(),
                e = inout(reg) entries.as_ptr() => _,
                n = inout(reg) entries.len() => _,
                base = in(reg) weights.as_ptr().wrapping_add(column),
                off = out(reg) _,
                p = out(reg) _,
                out("s0") _, out("s1") _, out("s2") _, out("s3") _,
                out("s16") _, out("s17") _, out("s18") _, out("s19") _,
                out("s24") _,
                options(nostack),
            );
        }
    }
}
