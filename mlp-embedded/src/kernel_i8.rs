//! The int8 Dense kernel this target uses: `acc ← bias + x·W` in integer arithmetic,
//! with the weights read in place from the model file.
//!
//! # Notation
//! `x: [inputs]` are uint8 activations (raw pixels for the first layer), `W: [inputs,
//! outputs]` int8 weights stored row-major (`W[i][j]` is byte `i × outputs + j`), `bias:
//! [outputs]` little-endian int32, and `acc: [outputs]` int32 accumulators:
//! `acc[j] = bias[j] + Σ_i x[i] · W[i][j]`, wrapping modulo 2³².
//!
//! Integer sums are exact in any order, so every kernel here gives the same bits as
//! [`mlp_core::quant::dense_accumulate_i8`], the host's kernel, whatever order it visits
//! the products in.
//!
//! # The Cortex-M4 kernel (`thumbv7em`, the DSP extension)
//! [`dense_accumulate_i8`] runs [`dense_accumulate_i8_paired`] there:
//!
//! 1. the non-zero inputs are gathered two at a time into a [`PAIRS`]-entry list: each
//!    entry holds both values packed as 16-bit halves (`x_a | x_b << 16`) and the byte
//!    offsets of their weight rows (an odd one out is paired with a zero);
//! 2. the outputs are taken 4 at a time, held in registers while the entries stream
//!    by. For each entry the assembly loads one word (4 weights) from each row,
//!    interleaves them with `PKHBT`/`PKHTB` into `[a0 a1 b0 b1]` and `[a2 a3 b2 b3]`,
//!    sign-extends byte pairs with `SXTB16` (`(a0, b0)`, `(a1, b1)`, …) and does
//!    `SMLAD acc_j, (x_a, x_b), (a_j, b_j)`: two multiply-accumulates in one instruction.
//!    `SMLAD` wraps modulo 2³² (it only sets the sticky Q flag), like the host kernel.
//! 3. the 1–3 outputs left over (10 classes: 2) take one more block over the layer's
//!    last 4 outputs, into zeros, of which only their sums are kept.
//!
//! The loop is unrolled twice and ends on an entry whose `x` is 0 (two follow the last
//! real entry): 14 instructions per 8 multiply-accumulates. Where the entries may be
//! read is checked once per batch of entries, not per block. [`requantize`] is the
//! core's requantization computed without a 64-bit shift.
//!
//! Why not a weight layout with each pair of rows interleaved, so that one load gives
//! `SMLAD` its weight pairs with no `PKH`: that fixes which inputs form a pair, and a
//! pair can then be skipped only when both of its inputs are zero. On real images that
//! keeps more entries than the `PKH`s it saves cost (the counts are in the crate's
//! README, "Why not fewer instructions").
//!
//! Elsewhere the same pairing runs with the instructions written as Rust functions
//! ([`dense_accumulate_i8_paired`]), which is what the host tests compare with the
//! core's kernel for every size from 0 to 40 and awkward ones. The assembly is checked
//! in QEMU by the firmware's `kernel_shapes` binary (`scripts/firmware.sh check`):
//! outputs 0 to 21 (fewer than 4, and 1–3 left after whole blocks), 1 to 300 inputs,
//! weights at every byte alignment, against the core's kernel bit for bit; and by the
//! parity test on the trained model. Other targets (the Cortex-M0) run
//! [`dense_accumulate_i8_rows`]: plain Rust, two weight rows per pass over the outputs.

use mlp_core::quant::{Int8Kernel, Int8Output, Le32, QuantLayerParams};

/// Entries (pairs of non-zero inputs) gathered at a time by
/// [`dense_accumulate_i8_paired`]: its stack use is `12 × (PAIRS + 2)` bytes.
pub const PAIRS: usize = 64;

/// Two non-zero inputs and the byte offsets of their weight rows.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Pair {
    /// `x_a | x_b << 16`: the operand `SMLAD` multiplies the weight pairs with.
    x: u32,
    /// `a × outputs`: where input `a`'s weights start.
    a: u32,
    /// `b × outputs`, with `a < b`; for an odd input out, `b = a` and `x_b = 0`.
    b: u32,
}

/// `acc ← bias + x·W` (wrapping), bit-identical to
/// [`mlp_core::quant::dense_accumulate_i8`]: with `SMLAD` on Cortex-M4/M7
/// ([`dense_accumulate_i8_paired`]), two rows at a time elsewhere
/// ([`dense_accumulate_i8_rows`]).
///
/// # Shapes
/// `x: [inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`, `acc: [outputs]`.
/// For other lengths `acc` is filled with zeros (no panic).
pub fn dense_accumulate_i8(x: &[u8], weights: &[u8], bias: &[[u8; 4]], acc: &mut [i32]) {
    if !shapes_fit(x, weights, bias, acc) {
        acc.fill(0);
        return;
    }
    #[cfg(mlp_dsp)]
    dense_accumulate_i8_paired(x, weights, bias, acc);
    #[cfg(not(mlp_dsp))]
    dense_accumulate_i8_rows(x, weights, bias, acc);
}

/// This target's int8 kernels as `mlp-core`'s int8 layer loop
/// ([`mlp_core::quant::forward_i8`]) calls them: [`dense_accumulate_i8`], then
/// [`requantize_relu_u8_small`] or [`requantize_relu_u8`] for a hidden layer, or
/// [`requantize`] in place for the logits.
pub(crate) struct Device {
    /// Whether every hidden layer's [`multipliers_are_small`], as
    /// [`Int8Model`](crate::Int8Model) found when it loaded.
    pub(crate) small_multipliers: bool,
}

impl Int8Kernel<QuantLayerParams<'_, u8, [u8; 4]>> for Device {
    // On the Cortex-M0 the two-row kernel inlined into the loop shares Thumb-1's eight
    // low registers with the loop's state and spills, so it runs as a function of its
    // own; on the Cortex-M4 the SMLAD kernel as a function of its own costs peak stack,
    // so it is inlined (the figures: the crate's README, "The layer loops").
    #[cfg_attr(mlp_dsp, inline(always))]
    #[cfg_attr(not(mlp_dsp), inline(never))]
    fn accumulate(&mut self, layer: &QuantLayerParams<'_, u8, [u8; 4]>, x: &[u8], acc: &mut [i32]) {
        dense_accumulate_i8(x, layer.weights, layer.bias, acc);
    }

    #[inline(always)]
    fn requantize(
        &mut self,
        layer: &QuantLayerParams<'_, u8, [u8; 4]>,
        acc: &mut [i32],
        output: Int8Output<'_>,
    ) {
        match output {
            Int8Output::Hidden(y) if self.small_multipliers => {
                requantize_relu_u8_small(acc, layer.multiplier, layer.shift, y)
            }
            Int8Output::Hidden(y) => requantize_relu_u8(acc, layer.multiplier, layer.shift, y),
            Int8Output::Logits => {
                // In place: each logit depends only on its own accumulator.
                for ((a, m), s) in acc.iter_mut().zip(layer.multiplier).zip(layer.shift) {
                    *a = requantize(*a, m.get(), s.get());
                }
            }
        }
    }
}

/// `acc ← bias + x·W` two weight rows at a time, in plain Rust: each pass over the
/// outputs adds `x_a · W[a][j] + x_b · W[b][j]` for two non-zero inputs, so every
/// accumulator is loaded and stored once per two inputs (the core's kernel does it once
/// per input). What cores without the DSP extension (the Cortex-M0) run.
///
/// # Shapes
/// As [`dense_accumulate_i8`]; other lengths fill `acc` with zeros.
pub fn dense_accumulate_i8_rows(x: &[u8], weights: &[u8], bias: &[[u8; 4]], acc: &mut [i32]) {
    if !shapes_fit(x, weights, bias, acc) {
        acc.fill(0);
        return;
    }
    for (a, b) in acc.iter_mut().zip(bias) {
        *a = b.get();
    }
    let outputs = bias.len();
    if outputs == 0 {
        return;
    }
    let mut next = 0;
    while let Some((xa, a)) = next_nonzero(x, &mut next, outputs) {
        let (xb, b) = next_nonzero(x, &mut next, outputs).unwrap_or((0, a));
        let row = |start: u32| weights.get(start as usize..)?.get(..outputs);
        let (Some(row_a), Some(row_b)) = (row(a), row(b)) else {
            return;
        };
        let (xa, xb) = (xa as i32, xb as i32);
        for ((acc, &wa), &wb) in acc.iter_mut().zip(row_a).zip(row_b) {
            // |x · w| ≤ 255 · 128, so the pair's sum cannot overflow.
            let pair = xa * i32::from(wa as i8) + xb * i32::from(wb as i8);
            *acc = acc.wrapping_add(pair);
        }
    }
}

/// Whether the lengths agree, and every row offset fits the `u32` of a [`Pair`].
fn shapes_fit(x: &[u8], weights: &[u8], bias: &[[u8; 4]], acc: &[i32]) -> bool {
    acc.len() == bias.len()
        && x.len().checked_mul(bias.len()) == Some(weights.len())
        && u32::try_from(weights.len()).is_ok()
}

/// `acc ← bias + x·W` by pairs of non-zero inputs (see the module documentation): the
/// `SMLAD` assembly on Cortex-M4/M7, the same steps in plain Rust elsewhere.
///
/// # Shapes
/// As [`dense_accumulate_i8`]; other lengths (or 4 GiB of weights) fill `acc` with zeros.
pub fn dense_accumulate_i8_paired(x: &[u8], weights: &[u8], bias: &[[u8; 4]], acc: &mut [i32]) {
    if !shapes_fit(x, weights, bias, acc) {
        acc.fill(0);
        return;
    }
    for (a, b) in acc.iter_mut().zip(bias) {
        *a = b.get();
    }
    let outputs = bias.len();
    if outputs == 0 {
        return;
    }
    let mut pairs = [Pair::default(); PAIRS + 2];
    let mut next = 0;
    while next < x.len() {
        let count = gather(x, &mut next, outputs as u32, &mut pairs);
        if count > 0 {
            apply(&pairs, count, weights, acc);
        }
    }
}

/// Fills `pairs` with entries for the non-zero inputs of `x[*next..]`, in ascending
/// order, moves `*next` past the inputs it took, and returns how many entries it made:
/// at most [`PAIRS`], and fewer only if it reached the end of `x` or had no room for
/// another word's. The two entries after the last one are zeroed: the assembly stops
/// at an entry whose `x` is 0 (a real entry never has one: `x_a > 0`), and may apply
/// one of them first. An input left without a partner is paired with itself at
/// `x_b = 0`.
///
/// Inputs are read a word (4 bytes) at a time: a zero word costs one test, which is
/// most of an image's background. Not inlined: on its own it keeps its state in
/// registers, and it runs once per batch of entries.
#[inline(never)]
fn gather(x: &[u8], next: &mut usize, outputs: u32, pairs: &mut [Pair; PAIRS + 2]) -> usize {
    let start = *next;
    let rest = x.get(start..).unwrap_or_default();
    let (words, remainder) = rest.as_chunks::<4>();
    let (entries, _) = pairs.split_at_mut(PAIRS);
    let mut filler = Filler {
        free: entries.iter_mut(),
        waiting: 0,
        waiting_offset: 0,
    };
    // Offsets fit: i × outputs < weights.len() ≤ u32::MAX (checked by `shapes_fit`).
    let mut offset = (start as u32).wrapping_mul(outputs);
    let step = outputs.wrapping_mul(4);
    let mut taken = 0;
    // A word completes at most 2 pairs, and the input left waiting at the end takes a
    // third entry: a word is read only while 3 entries are free.
    let mut words = words.iter();
    while filler.free.len() >= 3 {
        let Some(word) = words.next() else { break };
        let bytes = u32::from_le_bytes(*word);
        if bytes != 0 {
            filler.add(bytes & 0xff, offset);
            filler.add((bytes >> 8) & 0xff, offset.wrapping_add(outputs));
            filler.add((bytes >> 16) & 0xff, offset.wrapping_add(2 * outputs));
            filler.add(bytes >> 24, offset.wrapping_add(3 * outputs));
        }
        offset = offset.wrapping_add(step);
        taken += 4;
    }
    if words.len() == 0 && filler.free.len() >= 3 {
        // The last 0–3 inputs: at most one more pair and one input waiting.
        for &value in remainder {
            filler.add(u32::from(value), offset);
            offset = offset.wrapping_add(outputs);
            taken += 1;
        }
    }
    *next = start + taken;
    let count = filler.finish();
    for slot in pairs.iter_mut().skip(count).take(2) {
        *slot = Pair::default();
    }
    count
}

/// The entries [`gather`] is filling.
struct Filler<'p> {
    /// The entries not yet filled.
    free: core::slice::IterMut<'p, Pair>,
    /// The value of an input waiting for a partner (0: none), and its row offset.
    waiting: u32,
    waiting_offset: u32,
}

impl Filler<'_> {
    /// Takes an input's value (`0..=255`) and the byte offset of its weight row.
    #[inline(always)]
    fn add(&mut self, value: u32, offset: u32) {
        if value == 0 {
            return;
        }
        if self.waiting == 0 {
            self.waiting = value;
            self.waiting_offset = offset;
            return;
        }
        if let Some(slot) = self.free.next() {
            *slot = Pair {
                x: self.waiting | value << 16,
                a: self.waiting_offset,
                b: offset,
            };
        }
        self.waiting = 0;
    }

    /// Adds the input still waiting and returns how many entries were filled.
    fn finish(mut self) -> usize {
        if self.waiting != 0 {
            if let Some(slot) = self.free.next() {
                *slot = Pair {
                    x: self.waiting,
                    a: self.waiting_offset,
                    b: self.waiting_offset,
                };
            }
        }
        PAIRS - self.free.len()
    }
}

/// The next non-zero input from `x[*next..]` as `(value, row offset)`, `*next` moved
/// past it. Runs of zeros are skipped 4 bytes at a time.
#[inline(always)]
fn next_nonzero(x: &[u8], next: &mut usize, outputs: usize) -> Option<(u32, u32)> {
    let mut i = *next;
    while let Some(word) = x.get(i..).and_then(|rest| rest.first_chunk::<4>()) {
        if u32::from_ne_bytes(*word) != 0 {
            break;
        }
        i += 4;
    }
    let rest = x.get(i..)?;
    let skip = rest.iter().position(|&v| v != 0)?;
    let value = rest.get(skip).copied()?;
    let i = i + skip;
    *next = i + 1;
    // Fits: i × outputs < weights.len() ≤ u32::MAX (checked by the caller).
    Some((u32::from(value), (i * outputs) as u32))
}

/// `mlp_core::quant::requantize(acc, M)` for `M = multiplier · 2^-shift`, with the
/// file's raw `shift` clamped to `0..=62` as the core does: the same result for every
/// input, computed without a 64-bit shift when `shift >= 32` (every multiplier below
/// 1/2, which is what the quantizer writes).
///
/// For `shift = 32 + k`, `k > 0`: `(p + 2^(shift-1)) >> shift` with `p = hi·2³² + lo`
/// is `(hi + 2^(k-1)) >> k`, since the rounding term only touches `hi` and
/// `⌊⌊x / 2³²⌋ / 2^k⌋ = ⌊x / 2^shift⌋`; that equals `((hi >> (k-1)) + 1) >> 1` (write
/// `hi = q·2^(k-1) + r` with `0 ≤ r < 2^(k-1)`: both are `⌊(q+1)/2⌋`), which needs no
/// `1 << (k-1)` built at run time. For `k = 0` it is `hi` plus the top bit of `lo`.
/// `|p| < 2⁶²` (`multiplier < 2³¹`), so `|hi| < 2³⁰`: nothing overflows and nothing
/// needs the core's clamp to `i32`.
#[inline(always)]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let shift = shift.clamp(0, mlp_core::quant::MAX_SHIFT as i32);
    if is_small(multiplier, shift) {
        return requantize_small(acc, multiplier, shift);
    }
    if multiplier >= 0 && shift == 32 {
        let product = i64::from(acc) * i64::from(multiplier);
        return (product >> 32) as i32 + ((product as u32) >> 31) as i32;
    }
    mlp_core::quant::requantize(
        acc,
        mlp_core::quant::QuantizedMultiplier {
            multiplier,
            shift: shift as u32,
        },
    )
}

/// Hidden-layer outputs: `y[j] ← clamp(requantize(acc[j], M_j), 0, 255)`, equal to
/// [`mlp_core::quant::requantize_relu_u8`].
pub fn requantize_relu_u8(acc: &[i32], multiplier: &[[u8; 4]], shift: &[[u8; 4]], y: &mut [u8]) {
    if multipliers_are_small(multiplier, shift) {
        requantize_relu_u8_small(acc, multiplier, shift, y);
        return;
    }
    for (((y, &a), m), s) in y.iter_mut().zip(acc).zip(multiplier).zip(shift) {
        *y = requantize(a, m.get(), s.get()).clamp(0, 255) as u8;
    }
}

/// Whether every multiplier of a layer is below 1/4 (`multiplier ≥ 0`, shifts of 33
/// and more): true of every layer the quantizer has written here. Then
/// [`requantize_relu_u8_small`] gives [`requantize_relu_u8`]'s bytes without its tests
/// per output; [`Int8Model`](crate::Int8Model) checks this once, when it loads.
pub fn multipliers_are_small(multiplier: &[[u8; 4]], shift: &[[u8; 4]]) -> bool {
    multiplier
        .iter()
        .zip(shift)
        .all(|(m, s)| is_small(m.get(), s.get()))
}

/// [`requantize_relu_u8`] for a layer whose [`multipliers_are_small`]. For any other
/// layer the outputs are meaningless (but nothing panics).
pub fn requantize_relu_u8_small(
    acc: &[i32],
    multiplier: &[[u8; 4]],
    shift: &[[u8; 4]],
    y: &mut [u8],
) {
    for (((y, &a), m), s) in y.iter_mut().zip(acc).zip(multiplier).zip(shift) {
        *y = requantize_small(a, m.get(), s.get()).clamp(0, 255) as u8;
    }
}

/// Whether [`requantize_small`] applies: `multiplier ≥ 0` and `shift` in `33..=62`.
#[inline(always)]
fn is_small(multiplier: i32, shift: i32) -> bool {
    multiplier >= 0 && (33..=mlp_core::quant::MAX_SHIFT as i32).contains(&shift)
}

/// [`requantize`] for `multiplier ≥ 0` and `shift` in `33..=62` (a factor below 1/4):
/// `((hi >> (shift - 33)) + 1) >> 1` with `hi` the top word of `acc · multiplier`. For
/// other arguments the result is meaningless (but nothing panics).
#[inline(always)]
fn requantize_small(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let high = ((i64::from(acc) * i64::from(multiplier)) >> 32) as i32;
    ((high >> (shift.wrapping_sub(33) & 31)) + 1) >> 1
}

/// The logits: `y[j] ← requantize(acc[j], M_j)`, equal to
/// [`mlp_core::quant::requantize_logits`].
pub fn requantize_logits(acc: &[i32], multiplier: &[[u8; 4]], shift: &[[u8; 4]], y: &mut [i32]) {
    for (((y, &a), m), s) in y.iter_mut().zip(acc).zip(multiplier).zip(shift) {
        *y = requantize(a, m.get(), s.get());
    }
}

/// `acc[j] += Σ_entries x_a · W[a][j] + x_b · W[b][j]` for every output `j`, for the
/// entries `pairs[..count]` made by [`gather`] (two zero entries follow them).
///
/// Outputs go 4 at a time through [`block4`]. The 1–3 outputs a layer of 4 or more has
/// left over take one more block over its last 4 outputs, into zeros, of which only
/// those outputs' sums are added (integer sums are exact in any order). Only layers of
/// fewer than 4 outputs take the plain-Rust loop.
#[inline(never)]
fn apply(pairs: &[Pair; PAIRS + 2], count: usize, weights: &[u8], acc: &mut [i32]) {
    let outputs = acc.len();
    let Some(entries @ [.., last]) = pairs.get(..count) else {
        return;
    };
    // What `block4` needs, checked once for all blocks. Entries are ascending, so the
    // last one's `b` is the largest offset; the zero entries have offset 0.
    let is_zero = |p: Option<&Pair>| matches!(p, Some(p) if p.x == 0 && p.a == 0 && p.b == 0);
    let terminated = is_zero(pairs.get(count)) && is_zero(pairs.get(count + 1));
    let rows_fit = (last.b as usize)
        .checked_add(outputs)
        .is_some_and(|end| end <= weights.len());
    if !(terminated && rows_fit) {
        // Never taken: `gather` makes entries that pass. Were it taken, the sums would
        // be left as they are rather than read out of bounds.
        return;
    }
    let mut column = 0;
    let mut blocks = acc.chunks_exact_mut(4);
    for block in &mut blocks {
        if let Ok(block) = <&mut [i32; 4]>::try_from(block) {
            // SAFETY: the entries end in two zero entries inside `pairs`, every entry's
            // row offset plus `outputs` is inside `weights` (both checked above), and
            // `column + 4 <= outputs`.
            unsafe { block4(block, pairs, weights, column) };
        }
        column += 4;
    }
    let rest = blocks.into_remainder();
    if rest.is_empty() {
        return;
    }
    if let Some(tail_column) = outputs.checked_sub(4) {
        let mut tail = [0i32; 4];
        // SAFETY: as above, with `tail_column + 4 == outputs`.
        unsafe { block4(&mut tail, pairs, weights, tail_column) };
        let kept = tail.get(4 - rest.len()..).unwrap_or_default();
        for (a, t) in rest.iter_mut().zip(kept) {
            *a = a.wrapping_add(*t);
        }
        return;
    }
    for (k, a) in rest.iter_mut().enumerate() {
        let mut sum = *a;
        for entry in entries {
            let at = |row: u32| row as usize + k;
            let (Some(&wa), Some(&wb)) = (weights.get(at(entry.a)), weights.get(at(entry.b)))
            else {
                continue;
            };
            let (xa, xb) = (entry.x & 0xffff, entry.x >> 16);
            sum = sum
                .wrapping_add(xa as i32 * i32::from(wa as i8))
                .wrapping_add(xb as i32 * i32::from(wb as i8));
        }
        *a = sum;
    }
}

/// The DSP instructions the block uses, as plain Rust (Arm ARM semantics).
#[cfg_attr(mlp_dsp, allow(dead_code))]
mod emulated {
    /// `PKHBT d, n, m, LSL #16`: the bottom half of `n`, the bottom half of `m` on top.
    pub(super) fn pkhbt_lsl16(n: u32, m: u32) -> u32 {
        (n & 0xffff) | (m << 16)
    }

    /// `PKHTB d, n, m, ASR #16`: the top half of `n`, the top half of `m` below it.
    pub(super) fn pkhtb_asr16(n: u32, m: u32) -> u32 {
        (n & 0xffff_0000) | (m >> 16)
    }

    /// `SXTB16 d, m, ROR #rotation`: bytes 0 and 2 of `m` rotated, sign-extended to halves.
    pub(super) fn sxtb16(m: u32, rotation: u32) -> u32 {
        let m = m.rotate_right(rotation);
        let low = m as u8 as i8 as i16 as u16 as u32;
        let high = (m >> 16) as u8 as i8 as i16 as u16 as u32;
        low | high << 16
    }

    /// `SMLAD d, n, m, a`: `a + n.lo · m.lo + n.hi · m.hi`, halves signed, wrapping.
    pub(super) fn smlad(n: u32, m: u32, a: i32) -> i32 {
        let half = |v: u32, shift: u32| i32::from((v >> shift) as u16 as i16);
        a.wrapping_add(half(n, 0) * half(m, 0))
            .wrapping_add(half(n, 16) * half(m, 16))
    }
}

/// Plain-Rust block: the assembly's steps, instruction by instruction, over the
/// entries of `pairs` up to the first whose `x` is 0.
///
/// # Safety
/// None needed (every read is checked); `unsafe` only so that both blocks are called
/// alike. The assembly's requirements are those of `dsp::block4`.
#[cfg(not(mlp_dsp))]
#[inline(always)]
unsafe fn block4(acc: &mut [i32; 4], pairs: &[Pair], weights: &[u8], column: usize) {
    use emulated::{pkhbt_lsl16, pkhtb_asr16, smlad, sxtb16};
    let word = |row: u32| -> Option<u32> {
        let start = (row as usize).checked_add(column)?;
        let bytes = weights.get(start..)?.first_chunk::<4>()?;
        Some(u32::from_le_bytes(*bytes))
    };
    for entry in pairs.iter().take_while(|entry| entry.x != 0) {
        let (Some(a), Some(b)) = (word(entry.a), word(entry.b)) else {
            continue;
        };
        let low = pkhbt_lsl16(a, b); // [a0 a1 b0 b1]
        let high = pkhtb_asr16(b, a); // [a2 a3 b2 b3]
        acc[0] = smlad(entry.x, sxtb16(low, 0), acc[0]);
        acc[1] = smlad(entry.x, sxtb16(low, 8), acc[1]);
        acc[2] = smlad(entry.x, sxtb16(high, 0), acc[2]);
        acc[3] = smlad(entry.x, sxtb16(high, 8), acc[3]);
    }
}

#[cfg(mlp_dsp)]
use dsp::block4;

/// The block in assembly for cores with the DSP extension (Cortex-M4/M7).
#[cfg(mlp_dsp)]
mod dsp {
    use super::Pair;
    use core::arch::asm;

    /// Per two entries: 2 × (`LDM` of the entry, 2 `LDR`, 2 `PKH`, 4 `SXTB16`, 4 `SMLAD`)
    /// and the loop's `CMP`/`BNE`: 28 instructions for 16 multiply-accumulates.
    ///
    /// # Safety
    /// `pairs` starts with the entries and holds, after the last of them, two entries
    /// whose `x`, `a` and `b` are all 0 (real entries have `x_a > 0`); and for every
    /// entry, the 4 bytes at `a + column` and at `b + column` lie inside `weights`.
    /// `apply` checks both once for all the blocks of a batch of entries.
    #[inline(always)]
    pub(super) unsafe fn block4(acc: &mut [i32; 4], pairs: &[Pair], weights: &[u8], column: usize) {
        // SAFETY: `acc` is 4 writable i32s. The loop reads entries from
        // `pairs.as_ptr()` on, two per iteration, and stops after reading an entry
        // whose `x` is 0; two zero entries follow the last real one inside `pairs` (the
        // caller's promise), so it reads only `pairs`. For each entry it reads (real or
        // zero), the 4 bytes at `weights + column + a` and `+ b` are inside `weights`
        // (the caller's promise; LDR reads them unaligned, which Armv7-M allows for
        // LDR). Every register written is declared; no stack; only `acc` is written.
        unsafe {
            asm!(
                "ldm {acc}, {{r0, r1, r2, r3}}",
                "ldm {e}!, {{r4, r5, r8}}",
                "2:",
                "ldr r12, [{base}, r5]",
                "ldr lr, [{base}, r8]",
                "pkhbt r5, r12, lr, lsl #16",
                "pkhtb lr, lr, r12, asr #16",
                "sxtb16 r12, r5",
                "smlad r0, r4, r12, r0",
                "sxtb16 r12, r5, ror #8",
                "smlad r1, r4, r12, r1",
                "sxtb16 r12, lr",
                "smlad r2, r4, r12, r2",
                "sxtb16 r12, lr, ror #8",
                "smlad r3, r4, r12, r3",
                "ldm {e}!, {{r4, r5, r8}}",
                "ldr r12, [{base}, r5]",
                "ldr lr, [{base}, r8]",
                "pkhbt r5, r12, lr, lsl #16",
                "pkhtb lr, lr, r12, asr #16",
                "sxtb16 r12, r5",
                "smlad r0, r4, r12, r0",
                "sxtb16 r12, r5, ror #8",
                "smlad r1, r4, r12, r1",
                "sxtb16 r12, lr",
                "smlad r2, r4, r12, r2",
                "sxtb16 r12, lr, ror #8",
                "smlad r3, r4, r12, r3",
                "ldm {e}!, {{r4, r5, r8}}",
                "cmp r4, #0",
                "bne 2b",
                "stm {acc}, {{r0, r1, r2, r3}}",
                acc = in(reg) acc.as_mut_ptr(),
                e = inout(reg) pairs.as_ptr() => _,
                base = in(reg) weights.as_ptr().wrapping_add(column),
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r12") _,
                out("lr") _,
                options(nostack),
            );
        }
    }
}
