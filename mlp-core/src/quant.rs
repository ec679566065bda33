//! Integer-only inference for int8 models, for devices without an FPU: the kernels,
//! the fixed-point requantization, and the int8 layer loop every int8 forward pass runs
//! ([`forward_i8`], generic over an [`Int8Kernel`]: this crate's [`CoreInt8Kernel`] on
//! the host, the device's `SMLAD` kernels on a Cortex-M4).
//!
//! # The scheme (as in TensorFlow Lite Micro and CMSIS-NN)
//! A real value `r` is stored as an integer `q` with a scale `s`: `r = s · q`.
//! - Inputs are the raw pixel bytes `0..=255` (scale `1/255`): the first layer takes
//!   them as they come off a camera or out of a dataset.
//! - Weights are symmetric int8, `-127..=127`, with one scale per output neuron
//!   (`s_w[j]`), so a neuron with small weights keeps its precision.
//! - Biases are int32 at the accumulator's scale `s_in · s_w[j]`.
//! - A hidden layer's outputs are uint8, `0..=255`, zero point 0: clamping at 0 *is*
//!   the ReLU, so no separate activation pass runs.
//! - The last layer's outputs (the logits) stay int32 at one common scale, so the
//!   prediction is an integer argmax and no precision is lost to a final clamp.
//!
//! For output `j` of a layer:
//! `acc = bias[j] + Σ_i x[i] · w[i][j]` (int32), then
//! `q = requantize(acc, M_j)` where `M_j = s_in · s_w[j] / s_out` is applied as a
//! 32-bit fixed-point multiplier and a right shift ([`QuantizedMultiplier`]). Every
//! step is integer arithmetic with one defined rounding, so any two machines that run
//! these functions get identical results, in any summation order.

use crate::format::{InputQuantization, InputTransform};
use crate::loss::argmax;
use crate::network::Layer;

/// A positive real multiplier `M ≈ multiplier · 2^-shift`, with `multiplier` in
/// `[2^30, 2^31)` (31 significant bits) or zero for `M = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantizedMultiplier {
    /// The fixed-point mantissa.
    pub multiplier: i32,
    /// The right shift applied after the 64-bit product, `0..=MAX_SHIFT`.
    pub shift: u32,
}

/// The largest shift a [`QuantizedMultiplier`] may have (the product is 62 bits wide).
pub const MAX_SHIFT: u32 = 62;

impl QuantizedMultiplier {
    /// The closest representable multiplier to `real`, or `None` if `real` is
    /// negative, not finite, or too large (`≥ 2^31`). Values too small to represent
    /// (below `2^-32`) become zero.
    pub fn from_real(real: f64) -> Option<Self> {
        if !real.is_finite() || real < 0.0 {
            return None;
        }
        if real == 0.0 {
            return Some(Self {
                multiplier: 0,
                shift: 0,
            });
        }
        // real = mantissa · 2^exponent with mantissa in [0.5, 1).
        let (mantissa, exponent) = libm::frexp(real);
        let mut multiplier = libm::round(mantissa * (1u64 << 31) as f64) as i64;
        let mut exponent = exponent;
        if multiplier == 1 << 31 {
            multiplier /= 2;
            exponent += 1;
        }
        let shift = 31 - exponent;
        if shift < 0 {
            return None;
        }
        if shift > MAX_SHIFT as i32 {
            return Some(Self {
                multiplier: 0,
                shift: 0,
            });
        }
        Some(Self {
            multiplier: multiplier as i32,
            shift: shift as u32,
        })
    }

    /// The real value this multiplier stands for.
    pub fn to_real(self) -> f64 {
        f64::from(self.multiplier) * libm::exp2(-f64::from(self.shift))
    }
}

/// `round(acc · M)`, rounding halves up (towards +∞), saturated to `i32`.
///
/// Computed as `(acc · multiplier + 2^(shift−1)) >> shift` in 64 bits.
#[inline]
pub fn requantize(acc: i32, m: QuantizedMultiplier) -> i32 {
    let shift = m.shift.min(MAX_SHIFT);
    let product = i64::from(acc) * i64::from(m.multiplier);
    let rounding = if shift == 0 { 0 } else { 1i64 << (shift - 1) };
    let value = (product + rounding) >> shift;
    value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// A little-endian 32-bit integer read in place: `i32` itself, or its 4 bytes when the
/// storage may be unaligned (as in a model file in flash).
pub trait Le32: Copy {
    /// The value.
    fn get(self) -> i32;
}

impl Le32 for i32 {
    #[inline(always)]
    fn get(self) -> i32 {
        self
    }
}

impl Le32 for [u8; 4] {
    #[inline(always)]
    fn get(self) -> i32 {
        i32::from_le_bytes(self)
    }
}

/// An int8 weight read in place: `i8` itself, or the file's `u8` reinterpreted.
pub trait Int8: Copy {
    /// The value.
    fn get(self) -> i8;
}

impl Int8 for i8 {
    #[inline(always)]
    fn get(self) -> i8 {
        self
    }
}

impl Int8 for u8 {
    #[inline(always)]
    fn get(self) -> i8 {
        self as i8
    }
}

/// The parameters of one quantized Dense layer, borrowed from wherever they live.
#[derive(Clone, Copy, Debug)]
pub struct QuantLayerParams<'a, W, I> {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `W: [inputs, outputs]`, int8, row-major.
    pub weights: &'a [W],
    /// `[outputs]` int32 biases at the accumulator's scale.
    pub bias: &'a [I],
    /// `[outputs]` mantissas of the requantization multipliers.
    pub multiplier: &'a [I],
    /// `[outputs]` shifts of the requantization multipliers (`0..=62`).
    pub shift: &'a [I],
}

/// The int32 accumulators of one quantized layer for one sample:
/// `acc[j] ← bias[j] + Σ_i x[i] · w[i][j]`.
///
/// Integer sums are exact in any order, so inputs equal to zero are skipped (most
/// pixels and ReLU outputs are). Accumulation wraps modulo 2³²; with inputs at most
/// 255 and weights at most 127 in magnitude, a layer of fewer than 66,000 inputs cannot
/// wrap.
///
/// # Shapes
/// `x: [inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`, `acc: [outputs]`.
pub fn dense_accumulate_i8<W: Int8, I: Le32>(x: &[u8], weights: &[W], bias: &[I], acc: &mut [i32]) {
    let outputs = acc.len();
    debug_assert_eq!(weights.len(), x.len() * outputs, "weights length");
    debug_assert_eq!(bias.len(), outputs, "bias length");
    for (a, b) in acc.iter_mut().zip(bias) {
        *a = b.get();
    }
    if outputs == 0 {
        return;
    }
    for (&xi, w_row) in x.iter().zip(weights.chunks_exact(outputs)) {
        if xi == 0 {
            continue;
        }
        let xi = i32::from(xi);
        for (a, w) in acc.iter_mut().zip(w_row) {
            *a = a.wrapping_add(xi * i32::from(w.get()));
        }
    }
}

/// Requantizes accumulators into a hidden layer's uint8 outputs, with ReLU:
/// `y[j] ← clamp(requantize(acc[j], M_j), 0, 255)`.
pub fn requantize_relu_u8<I: Le32>(acc: &[i32], multiplier: &[I], shift: &[I], y: &mut [u8]) {
    for (((y, &a), m), s) in y.iter_mut().zip(acc).zip(multiplier).zip(shift) {
        let m = multiplier_of(*m, *s);
        *y = requantize(a, m).clamp(0, 255) as u8;
    }
}

/// Requantizes accumulators into int32 logits at the output scale:
/// `y[j] ← requantize(acc[j], M_j)`.
pub fn requantize_logits<I: Le32>(acc: &[i32], multiplier: &[I], shift: &[I], y: &mut [i32]) {
    for (((y, &a), m), s) in y.iter_mut().zip(acc).zip(multiplier).zip(shift) {
        *y = requantize(a, multiplier_of(*m, *s));
    }
}

#[inline(always)]
fn multiplier_of<I: Le32>(multiplier: I, shift: I) -> QuantizedMultiplier {
    QuantizedMultiplier {
        multiplier: multiplier.get(),
        shift: shift.get().clamp(0, MAX_SHIFT as i32) as u32,
    }
}

/// Why [`forward_i8`] (or [`forward_one_i8`]) could not run; see [`crate::network::ForwardError`] for the
/// f32 twin. A validated model and large enough buffers never produce one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantForwardError {
    /// The input's length is not the first layer's input size, or a layer's input
    /// size is not the previous layer's output size.
    ShapeMismatch {
        /// The layer (from 0) whose inputs do not match.
        layer: usize,
    },
    /// A parameter slice has the wrong length.
    ParameterLength {
        /// The layer with the wrong slice.
        layer: usize,
    },
    /// A buffer is shorter than a layer's output.
    BufferTooSmall {
        /// The layer whose output did not fit.
        layer: usize,
    },
    /// There were no layers.
    NoLayers,
}

impl core::fmt::Display for QuantForwardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::ShapeMismatch { layer } => {
                write!(f, "layer {layer}'s inputs do not match what feeds it")
            }
            Self::ParameterLength { layer } => {
                write!(f, "layer {layer}'s parameters have the wrong length")
            }
            Self::BufferTooSmall { layer } => {
                write!(f, "a buffer is too small for layer {layer}'s outputs")
            }
            Self::NoLayers => f.write_str("the network has no layers"),
        }
    }
}

impl core::error::Error for QuantForwardError {}

impl<W, I> Layer for QuantLayerParams<'_, W, I> {
    #[inline]
    fn inputs(&self) -> usize {
        self.inputs
    }

    #[inline]
    fn outputs(&self) -> usize {
        self.outputs
    }

    #[inline]
    fn parameters_fit(&self) -> bool {
        self.inputs.checked_mul(self.outputs) == Some(self.weights.len())
            && self.bias.len() == self.outputs
            && self.multiplier.len() == self.outputs
            && self.shift.len() == self.outputs
    }
}

/// Where a quantized layer's outputs go: the two kinds of layer differ in what they
/// write.
#[derive(Debug)]
pub enum Int8Output<'y> {
    /// A hidden layer: `y[j] ← clamp(requantize(acc[j], M_j), 0, 255)`, the uint8
    /// activations (the clamp at 0 is the ReLU); `y: [outputs]`.
    Hidden(&'y mut [u8]),
    /// The last layer: `acc[j] ← requantize(acc[j], M_j)` in place, the int32 logits.
    Logits,
}

/// The arithmetic of one quantized Dense layer, as [`forward_i8`] calls it: the int8
/// twin of [`DenseKernel`](crate::network::DenseKernel), in two steps.
///
/// Integer arithmetic is exact in any order: a kernel only has to compute
/// [`CoreInt8Kernel`]'s values. The loop calls [`accumulate`](Self::accumulate) from
/// one place, before it branches on the kind of layer: a kernel whose accumulation is
/// large (the device's) is then inlined once.
pub trait Int8Kernel<L> {
    /// `acc ← bias + x·W`, wrapping.
    ///
    /// # Shapes
    /// `x: [layer.inputs()]`, `acc: [layer.outputs()]` (overwritten). The loop calls it
    /// only with these lengths and a layer whose
    /// [`parameters_fit`](Layer::parameters_fit).
    fn accumulate(&mut self, layer: &L, x: &[u8], acc: &mut [i32]);

    /// Requantizes the accumulators as `output` says: into a hidden layer's uint8
    /// activations, or in place into the logits.
    ///
    /// # Shapes
    /// `acc: [layer.outputs()]`, and the hidden layer's `y: [layer.outputs()]`.
    fn requantize(&mut self, layer: &L, acc: &mut [i32], output: Int8Output<'_>);
}

/// This crate's portable int8 kernel: [`dense_accumulate_i8`], then
/// [`requantize_relu_u8`] for a hidden layer or [`requantize`] in place for the
/// logits. The reference the device's kernels are checked against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreInt8Kernel;

impl<W: Int8, I: Le32> Int8Kernel<QuantLayerParams<'_, W, I>> for CoreInt8Kernel {
    fn accumulate(&mut self, layer: &QuantLayerParams<'_, W, I>, x: &[u8], acc: &mut [i32]) {
        dense_accumulate_i8(x, layer.weights, layer.bias, acc);
    }

    fn requantize(
        &mut self,
        layer: &QuantLayerParams<'_, W, I>,
        acc: &mut [i32],
        output: Int8Output<'_>,
    ) {
        match output {
            Int8Output::Hidden(y) => requantize_relu_u8(acc, layer.multiplier, layer.shift, y),
            Int8Output::Logits => {
                // In place: each logit depends only on its own accumulator.
                for ((a, m), s) in acc.iter_mut().zip(layer.multiplier).zip(layer.shift) {
                    *a = requantize(*a, multiplier_of(*m, *s));
                }
            }
        }
    }
}

/// The int8 layer loop: runs one sample of uint8 inputs (raw pixel bytes for a model
/// of images) through `layers` with `kernel` and returns the int32 logits (multiply by
/// the last layer's output scale for real values).
///
/// Hidden activations ping-pong between `scratch_a` (layer `k` even) and `scratch_b`
/// (`k` odd), bytes, each as long as the widest hidden layer; `acc` holds one layer's
/// accumulators and then the logits (as long as the widest layer). Before a layer
/// runs, the loop checks its input size ([`QuantForwardError::ShapeMismatch`]), its
/// parameters' lengths ([`QuantForwardError::ParameterLength`]) and the buffers
/// ([`QuantForwardError::BufferTooSmall`]); layers are counted from 0 at the first one
/// given. It never panics.
pub fn forward_i8<'s, L, K>(
    kernel: &mut K,
    layers: impl IntoIterator<Item = L, IntoIter: ExactSizeIterator>,
    input: &[u8],
    scratch_a: &mut [u8],
    scratch_b: &mut [u8],
    acc: &'s mut [i32],
) -> Result<&'s [i32], QuantForwardError>
where
    L: Layer,
    K: Int8Kernel<L>,
{
    let layers = layers.into_iter();
    // Known before the first layer runs (see `network::forward`).
    let hidden = layers.len().saturating_sub(1);
    // The buffer the last hidden layer wrote and the other one, swapped after each
    // layer (as `network::PingPong` does: less code than choosing by parity), so the
    // first layer writes `scratch_a`.
    let (mut written, mut free) = (scratch_b, scratch_a);
    // The last hidden layer's outputs (in `written`); `None` while the current
    // activations are still `input`.
    let mut previous: Option<usize> = None;
    for (index, layer) in layers.enumerate() {
        let (inputs, outputs) = (layer.inputs(), layer.outputs());
        if inputs != previous.unwrap_or(input.len()) {
            return Err(QuantForwardError::ShapeMismatch { layer: index });
        }
        if !layer.parameters_fit() {
            return Err(QuantForwardError::ParameterLength { layer: index });
        }
        let too_small = QuantForwardError::BufferTooSmall { layer: index };
        let x = match previous {
            None => input,
            Some(len) => written.get(..len).ok_or(too_small)?,
        };
        let layer_acc = acc.get_mut(..outputs).ok_or(too_small)?;
        kernel.accumulate(&layer, x, layer_acc);
        if index >= hidden {
            kernel.requantize(&layer, layer_acc, Int8Output::Logits);
            return acc.get(..outputs).ok_or(too_small);
        }
        let y = free.get_mut(..outputs).ok_or(too_small)?;
        kernel.requantize(&layer, layer_acc, Int8Output::Hidden(y));
        core::mem::swap(&mut written, &mut free);
        previous = Some(outputs);
    }
    Err(QuantForwardError::NoLayers)
}

/// Runs one sample of raw input bytes through a quantized network with
/// [`CoreInt8Kernel`] and returns the int32 logits: [`forward_i8`] with this crate's
/// kernel.
///
/// Hidden activations ping-pong between `scratch_a` and `scratch_b` (bytes, each as
/// long as the widest hidden layer); `acc` holds one layer's accumulators and then the
/// logits (as long as the widest layer).
pub fn forward_one_i8<'s, 'a, W: Int8 + 'a, I: Le32 + 'a>(
    layers: impl IntoIterator<Item = QuantLayerParams<'a, W, I>, IntoIter: ExactSizeIterator>,
    input: &[u8],
    scratch_a: &mut [u8],
    scratch_b: &mut [u8],
    acc: &'s mut [i32],
) -> Result<&'s [i32], QuantForwardError> {
    forward_i8(
        &mut CoreInt8Kernel,
        layers,
        input,
        scratch_a,
        scratch_b,
        acc,
    )
}

/// The uint8 an int8 model is given for the real input `value`:
/// `clamp(round(value / scale) + zero_point, 0, 255)`, where the division is rounded
/// to `f32`, `round` rounds halves away from zero (`libm::roundf`), the addition is in
/// `f32` and NaN becomes 0. Every step is one correctly rounded `f32` operation, so
/// every target computes the same byte.
#[inline]
pub fn quantize_input(value: f32, quantization: InputQuantization) -> u8 {
    let q = libm::roundf(value / quantization.scale) + quantization.zero_point as f32;
    if q.is_nan() {
        return 0;
    }
    // In range after the clamp: the cast is exact.
    q.clamp(0.0, 255.0) as u8
}

/// The uint8 inputs of an int8 model from the caller's features `x`, for every `i`
/// both `x` and `out` have: for a model of pixels, `clamp(round(x[i]), 0, 255)` (the
/// pixel value itself, which is what the model's input steps count); otherwise the
/// model's input transform (`transform.apply`) and then [`quantize_input`].
pub fn quantize_features(
    transform: &InputTransform<'_>,
    quantization: InputQuantization,
    x: &[f32],
    out: &mut [u8],
) {
    for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        *o = match transform {
            InputTransform::Pixels => {
                let q = libm::roundf(v);
                if q.is_nan() {
                    0
                } else {
                    q.clamp(0.0, 255.0) as u8
                }
            }
            InputTransform::Features => quantize_input(v, quantization),
            InputTransform::Standardized(norm) => {
                let input = crate::network::standardize(v, norm.offset(i), norm.scale(i));
                quantize_input(input, quantization)
            }
        };
    }
}

/// The predicted class of int32 logits (ties to the lowest index).
pub fn argmax_i32(logits: &[i32]) -> usize {
    let mut best = 0;
    for (j, &v) in logits.iter().enumerate() {
        if v > logits.get(best).copied().unwrap_or(i32::MIN) {
            best = j;
        }
    }
    best
}

/// The predicted class and the real-valued logits of an int8 network's output, given
/// the last layer's output scale (for callers that want probabilities).
pub fn dequantize_logits(logits: &[i32], output_scale: f32, out: &mut [f32]) -> usize {
    for (o, &q) in out.iter_mut().zip(logits) {
        *o = q as f32 * output_scale;
    }
    argmax(out)
}

/// Quantizes one f32 Dense layer (post-training, per output neuron).
///
/// - `input_scale`: the real value of one step of this layer's input (`1/255` for raw
///   pixels; the previous layer's `output_scale` otherwise);
/// - `output_scale`: the real value of one step of its output, chosen by the caller
///   from calibration data (for a hidden layer, its largest ReLU output / 255).
///
/// Weights become `round(w / s_w[j])` with `s_w[j] = max_i |w[i][j]| / 127`, biases
/// `round(b[j] / (input_scale · s_w[j]))`, and `M_j = input_scale · s_w[j] / output_scale`.
/// Returns `None` if a scale is not positive and finite or a multiplier cannot be
/// represented.
///
/// # Shapes
/// `weights: [inputs, outputs]`, `bias: [outputs]`; outputs `q_weights: [inputs,
/// outputs]`, `q_bias`, `multiplier`, `shift`: `[outputs]`.
#[allow(clippy::too_many_arguments)]
pub fn quantize_layer(
    weights: &[f32],
    bias: &[f32],
    input_scale: f32,
    output_scale: f32,
    q_weights: &mut [i8],
    q_bias: &mut [i32],
    multiplier: &mut [i32],
    shift: &mut [i32],
) -> Option<()> {
    let outputs = bias.len();
    if outputs == 0
        || !(input_scale.is_finite() && input_scale > 0.0)
        || !(output_scale.is_finite() && output_scale > 0.0)
    {
        return None;
    }
    debug_assert_eq!(weights.len() % outputs, 0, "weights length");
    debug_assert_eq!(q_weights.len(), weights.len(), "q_weights length");
    for j in 0..outputs {
        let largest = weights
            .iter()
            .skip(j)
            .step_by(outputs)
            .fold(0.0f32, |m, &w| m.max(w.abs()));
        // A neuron with all-zero weights still needs a valid scale for its bias.
        let weight_scale = if largest > 0.0 {
            f64::from(largest) / 127.0
        } else {
            1.0 / 127.0
        };
        let accumulator_scale = f64::from(input_scale) * weight_scale;
        for (q, &w) in q_weights.iter_mut().zip(weights).skip(j).step_by(outputs) {
            *q = libm::round(f64::from(w) / weight_scale).clamp(-127.0, 127.0) as i8;
        }
        let b = libm::round(f64::from(*bias.get(j)?) / accumulator_scale);
        *q_bias.get_mut(j)? = b.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
        let m = QuantizedMultiplier::from_real(accumulator_scale / f64::from(output_scale))?;
        *multiplier.get_mut(j)? = m.multiplier;
        *shift.get_mut(j)? = m.shift as i32;
    }
    Some(())
}

/// Appends one int8 layer to a payload in the layout of `docs/FORMAT.md` (output
/// scale, bias, multiplier, shift, weights, zero padding to 4 bytes), writing into
/// `out` and returning the bytes written, or `None` if `out` is too small.
pub fn write_int8_layer(
    out: &mut [u8],
    output_scale: f32,
    q_weights: &[i8],
    q_bias: &[i32],
    multiplier: &[i32],
    shift: &[i32],
) -> Option<usize> {
    let mut at = 0;
    let mut put = |bytes: &[u8]| -> Option<()> {
        out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
        at += bytes.len();
        Some(())
    };
    put(&output_scale.to_le_bytes())?;
    for words in [q_bias, multiplier, shift] {
        for w in words {
            put(&w.to_le_bytes())?;
        }
    }
    for &w in q_weights {
        put(&[w as u8])?;
    }
    for _ in 0..(q_weights.len().wrapping_neg() & 3) {
        put(&[0])?;
    }
    Some(at)
}
