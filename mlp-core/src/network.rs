//! The forward pass of a whole network: Dense layers with ReLU between them and none
//! after the last, so the result is the logits.
//!
//! [`forward`] is the one layer loop for every `f32` forward pass: the trainer's and
//! the device's predictions run it, and it has what the host's batched evaluation and
//! training step need (batches of rows, every layer's output kept, a pass that starts
//! at a later layer). The loop owns what all passes share: the order of the layers,
//! the shape checks (an error, never a panic), which layers get ReLU, and where each
//! layer's output goes. What differs between them is a parameter:
//!
//! - **the arithmetic**, a [`DenseKernel`]: [`CoreKernel`] is this crate's
//!   [`dense_forward`]; the device plugs in its Cortex-M kernels, the host its fast
//!   batched ones. Every kernel keeps `dense_forward`'s order of operations, so all of
//!   them give the same bits. Generics, not trait objects: the kernel call is a direct
//!   call (inlined on the device).
//! - **the first layer's input**, `&[X]`: `f32` values, or anything else a kernel
//!   knows how to read (the device reads pixel bytes in place, never holding the input
//!   as `f32`). Later layers read the `f32` activations.
//! - **the storage**, an [`Activations`]: [`PingPong`] (inference: two buffers as long
//!   as the widest layer output, each layer reading one and writing the other) or
//!   [`EveryLayer`] (training: one buffer per layer, all outputs kept for the backward
//!   pass).
//! - **where it starts**: the loop runs any iterator of layers from any input, so
//!   layers `1..` after a first layer computed elsewhere are `layers.skip(1)` with
//!   that layer's output (ReLU applied) as the input.
//!
//! [`forward_one`] is the pass most callers want: one sample, [`CoreKernel`], ping-pong
//! buffers. The trainer's `predict` and the firmware run the same layers through the
//! same loop and get the same bits.

use core::ops::Range;

use crate::activation::relu_forward;
use crate::dense::{dense_forward, DenseShape, Weight};
use crate::format::LayerBytes;

/// The input a pixel byte becomes: `pixel / 255`, in `[0, 1]` (the division rounded
/// once, so every target computes the same value).
#[inline(always)]
pub fn pixel_value(pixel: u8) -> f32 {
    f32::from(pixel) / 255.0
}

/// The input a standardized feature becomes: `(x - offset) × scale`, the difference
/// rounded to `f32` and then the product rounded to `f32` (two roundings, never a fused
/// multiply-add), so every target computes the same value.
#[inline(always)]
pub fn standardize(x: f32, offset: f32, scale: f32) -> f32 {
    (x - offset) * scale
}

/// Where one layer's parameters are in a model's flat parameter list, which is the
/// f32 payload's order (`docs/FORMAT.md`): per layer `W: [inputs, outputs]`
/// row-major, then `b: [outputs]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LayerRanges {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// Where `W` is.
    pub weights: Range<usize>,
    /// Where `b` is.
    pub bias: Range<usize>,
}

/// The [`LayerRanges`] of a network with these layer sizes (input size first), layer
/// after layer. Sizes whose products overflow `usize` are the caller's to refuse
/// first (`format::LayerSizes::new` does).
pub fn layer_ranges(sizes: &[usize]) -> impl Iterator<Item = LayerRanges> + '_ {
    sizes.windows(2).scan(0usize, |offset, pair| {
        let (inputs, outputs) = (pair[0], pair[1]);
        let weights = *offset..*offset + inputs * outputs;
        let bias = weights.end..weights.end + outputs;
        *offset = bias.end;
        Some(LayerRanges {
            inputs,
            outputs,
            weights,
            bias,
        })
    })
}

/// The parameters of one Dense layer, borrowed from wherever they live (a trainer's
/// vectors, or a model file in flash).
#[derive(Clone, Copy, Debug)]
pub struct LayerParams<'a, W> {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `W: [inputs, outputs]`, row-major.
    pub weights: &'a [W],
    /// `b: [outputs]`.
    pub bias: &'a [W],
}

/// Why [`forward`] (or [`forward_one`]) could not run. Each names the layer where the
/// problem is, counting from 0 at the first layer the pass was given (so in a pass over
/// `layers.skip(1)`, the network's layer 1 is layer 0); a model that passed
/// [`crate::format::ModelView::decode`] and buffers at least `rows ×` its widest
/// layer output never produce one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// The input's length is not the first layer's input size (times the rows).
    InputLength {
        /// The first layer's input size, times the rows (saturating).
        expected: usize,
        /// The input's length.
        found: usize,
    },
    /// A layer's input size is not the previous layer's output size.
    LayersDoNotChain {
        /// The layer whose inputs do not match.
        layer: usize,
    },
    /// A layer's weight or bias slice has the wrong length for its sizes.
    ParameterLength {
        /// The layer with the wrong slice.
        layer: usize,
    },
    /// A scratch buffer is shorter than a layer's output (or, with [`EveryLayer`],
    /// there is no buffer for the layer).
    ScratchTooSmall {
        /// The layer whose output did not fit.
        layer: usize,
        /// Its output size, times the rows (saturating).
        needed: usize,
    },
    /// There were no layers.
    NoLayers,
}

impl core::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::InputLength { expected, found } => {
                write!(
                    f,
                    "input has {found} values, the first layer takes {expected}"
                )
            }
            Self::LayersDoNotChain { layer } => {
                write!(
                    f,
                    "layer {layer}'s inputs do not match the previous layer's outputs"
                )
            }
            Self::ParameterLength { layer } => {
                write!(f, "layer {layer}'s weights or bias have the wrong length")
            }
            Self::ScratchTooSmall { layer, needed } => {
                write!(
                    f,
                    "scratch buffer too small for layer {layer}'s {needed} outputs"
                )
            }
            Self::NoLayers => f.write_str("the network has no layers"),
        }
    }
}

impl core::error::Error for ForwardError {}

/// A Dense layer as the layer loop sees it, in whatever form its kernel reads the
/// parameters: its sizes, and whether its parameters have the lengths they imply.
///
/// Implemented for [`LayerParams`] (parameters as slices of `f32` or of bytes),
/// [`LayerBytes`] (an f32 layer read in place from a model file) and
/// [`QuantLayerParams`](crate::quant::QuantLayerParams) (int8); a kernel with other
/// needs (a host kernel that splits the first layer's inputs, say) can bring a layer
/// type of its own.
pub trait Layer {
    /// Input features.
    fn inputs(&self) -> usize;
    /// Output features.
    fn outputs(&self) -> usize;
    /// Whether every parameter slice has the length `inputs` and `outputs` imply.
    /// The loop runs no kernel on a layer without it, so a kernel may rely on it.
    fn parameters_fit(&self) -> bool;
}

impl<W> Layer for LayerParams<'_, W> {
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
    }
}

impl Layer for LayerBytes<'_> {
    #[inline]
    fn inputs(&self) -> usize {
        self.inputs
    }

    #[inline]
    fn outputs(&self) -> usize {
        self.outputs
    }

    /// Four bytes per parameter: `LayerBytes` are the layers of an f32 model.
    #[inline]
    fn parameters_fit(&self) -> bool {
        let weights = self.inputs.checked_mul(self.outputs);
        weights.and_then(|w| w.checked_mul(4)) == Some(self.weights.len())
            && self.outputs.checked_mul(4) == Some(self.bias.len())
    }
}

/// The arithmetic of one Dense layer, as [`forward`] calls it: `y ← x·W + b` for every
/// row, then `y ← max(y, 0)` if `relu`.
///
/// `L` is the layer type the kernel reads its parameters from, `X` what the inputs are
/// (`f32` values, the default; the device's kernel also takes pixel bytes, `x / 255`).
/// [`forward`] needs `DenseKernel<L, X>` for the first layer and `DenseKernel<L, f32>`
/// for the others.
///
/// # Bit-exact arithmetic
/// A kernel of the device's arithmetic must compute the bits of [`dense_forward`] (its
/// order of operations is the contract), followed by [`relu_forward`] when `relu` is
/// set (negative values become `0.0`, NaN stays NaN); that is what keeps host and
/// device logits identical. The host's fast kernels (`mlp-kernels`) plug in too, with
/// an arithmetic of their own that is the same on every CPU. Being told `relu` lets a
/// fast kernel apply it while the outputs are still in registers.
pub trait DenseKernel<L, X = f32> {
    /// `y ← x·W + b` for each of `rows` rows, then ReLU on `y` if `relu`.
    ///
    /// # Shapes
    /// `x: [rows, layer.inputs()]`, `y: [rows, layer.outputs()]` (overwritten). The loop
    /// calls it only with these lengths and a layer whose
    /// [`parameters_fit`](Layer::parameters_fit).
    fn dense(&mut self, layer: &L, rows: usize, x: &[X], y: &mut [f32], relu: bool);
}

/// This crate's portable kernel: [`dense_forward`], then [`relu_forward`]. Any number
/// of rows, any [`Weight`] encoding; the reference the other kernels are checked
/// against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreKernel;

impl<W: Weight> DenseKernel<LayerParams<'_, W>> for CoreKernel {
    fn dense(
        &mut self,
        layer: &LayerParams<'_, W>,
        rows: usize,
        x: &[f32],
        y: &mut [f32],
        relu: bool,
    ) {
        let shape = DenseShape::new(rows, layer.inputs, layer.outputs);
        dense_forward(shape, x, layer.weights, layer.bias, y);
        if relu {
            relu_forward(y);
        }
    }
}

/// Where [`forward`] puts each layer's output, and where the next layer reads it.
///
/// Layers are counted from 0 at the first layer of the pass. [`forward`] calls
/// [`output_mut`](Self::output_mut) for layer 0, then
/// [`input_and_output`](Self::input_and_output) for layers 1, 2, … in order, then
/// [`into_output`](Self::into_output) once for the last layer; an implementation may
/// rely on that order. `'s` is how long the buffers are borrowed: the logits
/// [`forward`] returns borrow them for that long. Every method returns `None` when a
/// buffer is missing or too short; the loop turns that into
/// [`ForwardError::ScratchTooSmall`].
pub trait Activations<'s> {
    /// Layer `layer`'s output buffer, its first `len` values (the first layer's: it
    /// reads the pass's input, not a buffer).
    fn output_mut(&mut self, layer: usize, len: usize) -> Option<&mut [f32]>;

    /// Layer `layer - 1`'s output, its first `input_len` values, and layer `layer`'s
    /// output buffer, its first `output_len` values (`layer ≥ 1`).
    fn input_and_output(
        &mut self,
        layer: usize,
        input_len: usize,
        output_len: usize,
    ) -> Option<(&[f32], &mut [f32])>;

    /// Layer `layer`'s output, its first `len` values, borrowed for `'s`: the logits,
    /// once the last layer has run.
    fn into_output(self, layer: usize, len: usize) -> Option<&'s [f32]>;
}

/// Two buffers taking turns: the first layer writes `even`, and each later layer reads
/// the buffer the layer before it wrote and writes the other, so layer `k` writes
/// `even` for even `k` and `odd` for odd `k`. RAM for activations is two buffers of
/// `rows ×` the widest layer output, whatever the depth; only the last layer's output
/// is left.
///
/// It follows the order of the calls (the order [`forward`] makes them in) rather than
/// the layer numbers: swapping two references costs less code in the device's pass
/// than choosing a buffer by parity.
#[derive(Debug)]
pub struct PingPong<'s> {
    /// The buffer the last layer wrote (the first layer's, before any ran).
    written: &'s mut [f32],
    /// The other one, which the next layer writes.
    free: &'s mut [f32],
}

impl<'s> PingPong<'s> {
    /// The two buffers; their contents never matter (every layer overwrites what it
    /// reads next).
    pub fn new(even: &'s mut [f32], odd: &'s mut [f32]) -> Self {
        Self {
            written: even,
            free: odd,
        }
    }
}

impl<'s> Activations<'s> for PingPong<'s> {
    #[inline]
    fn output_mut(&mut self, _layer: usize, len: usize) -> Option<&mut [f32]> {
        self.written.get_mut(..len)
    }

    #[inline]
    fn input_and_output(
        &mut self,
        _layer: usize,
        input_len: usize,
        output_len: usize,
    ) -> Option<(&[f32], &mut [f32])> {
        core::mem::swap(&mut self.written, &mut self.free);
        Some((
            self.free.get(..input_len)?,
            self.written.get_mut(..output_len)?,
        ))
    }

    #[inline]
    fn into_output(self, _layer: usize, len: usize) -> Option<&'s [f32]> {
        let buffer: &'s [f32] = self.written;
        buffer.get(..len)
    }
}

/// One buffer per layer, every layer's output kept (what a training step's backward
/// pass needs): layer `k` of the pass writes `outputs[k]` and reads `outputs[k - 1]`.
///
/// `B` is anything that holds `f32`s: `Vec<f32>`, `&mut [f32]`, `[f32; N]`.
#[derive(Debug)]
pub struct EveryLayer<'s, B> {
    outputs: &'s mut [B],
}

impl<'s, B> EveryLayer<'s, B> {
    /// One buffer per layer of the pass, in order, each at least `rows ×` its layer's
    /// outputs long.
    pub fn new(outputs: &'s mut [B]) -> Self {
        Self { outputs }
    }
}

impl<'s, B: AsRef<[f32]> + AsMut<[f32]>> Activations<'s> for EveryLayer<'s, B> {
    #[inline]
    fn output_mut(&mut self, layer: usize, len: usize) -> Option<&mut [f32]> {
        self.outputs.get_mut(layer)?.as_mut().get_mut(..len)
    }

    #[inline]
    fn input_and_output(
        &mut self,
        layer: usize,
        input_len: usize,
        output_len: usize,
    ) -> Option<(&[f32], &mut [f32])> {
        let (done, rest) = self.outputs.split_at_mut_checked(layer)?;
        let input = done.last()?.as_ref().get(..input_len)?;
        let output = rest.first_mut()?.as_mut().get_mut(..output_len)?;
        Some((input, output))
    }

    #[inline]
    fn into_output(self, layer: usize, len: usize) -> Option<&'s [f32]> {
        let outputs: &'s [B] = self.outputs;
        outputs.get(layer)?.as_ref().get(..len)
    }
}

/// The layer loop: runs `rows` rows of `input` through `layers` with `kernel`, each
/// layer's output stored in `activations`, and returns the last layer's output (the
/// logits, `[rows, outputs]`).
///
/// Every layer but the last is told to apply ReLU; which one is last comes from the
/// iterator's length (an [`ExactSizeIterator`]: a slice's layers, a model file's,
/// `skip(1)` of either). Before a layer runs, the loop checks that its
/// [`parameters_fit`](Layer::parameters_fit) ([`ForwardError::ParameterLength`]),
/// that its inputs match what feeds it ([`ForwardError::InputLength`] for the first,
/// [`ForwardError::LayersDoNotChain`] after), and that its output fits
/// ([`ForwardError::ScratchTooSmall`]); no layers is [`ForwardError::NoLayers`]. A
/// layer with several faults reports the first in that order. It never panics; on an
/// error, the layers before it have run.
///
/// # Shapes
/// `input: [rows, first layer's inputs]` of `X`, which the kernel reads as the first
/// layer's inputs; the result `[rows, last layer's outputs]`.
///
/// ```
/// use mlp_core::network::{forward, CoreKernel, EveryLayer, LayerParams, PingPong};
/// // A 2-2-1 network: ReLU(x·W0 + b0)·W1 + b1, two rows at once.
/// let layer = |inputs, outputs, weights, bias| LayerParams { inputs, outputs, weights, bias };
/// let layers = [
///     layer(2, 2, &[1.0f32, -1.0, 1.0, -1.0][..], &[0.0, 0.0][..]),
///     layer(2, 1, &[1.0, 1.0][..], &[0.5][..]),
/// ];
/// let x = [1.0, 2.0, -1.0, -2.0];
/// let (mut even, mut odd) = ([0.0; 4], [0.0; 4]);
/// let pass = PingPong::new(&mut even, &mut odd);
/// let logits = forward(&mut CoreKernel, layers, &x, 2, pass).unwrap();
/// assert_eq!(logits, &[3.5, 3.5]);
///
/// // Training keeps every layer's output: [[3, 0], [0, 3]] after ReLU, then the logits.
/// let mut outputs = [vec![0.0; 4], vec![0.0; 2]];
/// forward(&mut CoreKernel, layers, &x, 2, EveryLayer::new(&mut outputs)).unwrap();
/// assert_eq!(outputs[0], [3.0, 0.0, 0.0, 3.0]);
///
/// // Layers 1.. from the first layer's output: the same logits.
/// let (first, rest) = outputs.split_at_mut(1);
/// let later = layers.into_iter().skip(1);
/// let logits = forward(&mut CoreKernel, later, &first[0], 2, EveryLayer::new(rest)).unwrap();
/// assert_eq!(logits, &[3.5, 3.5]);
/// ```
pub fn forward<'s, L, X, K, S>(
    kernel: &mut K,
    layers: impl IntoIterator<Item = L, IntoIter: ExactSizeIterator>,
    input: &[X],
    rows: usize,
    mut activations: S,
) -> Result<&'s [f32], ForwardError>
where
    L: Layer,
    K: DenseKernel<L, X> + DenseKernel<L, f32>,
    S: Activations<'s>,
{
    let layers = layers.into_iter();
    // Known before the first layer runs, so each is told whether ReLU follows it.
    // Counting, not looking ahead one layer: a layer held across iterations cost code
    // and spills in the device's pass, whose layers are parsed from the model file as
    // they come.
    let hidden = layers.len().saturating_sub(1);
    // The last layer run: outputs per row and values written; `None` before the first.
    // (This arrangement of the checks, parameters first and the shape check in each
    // arm, is the one that cost the device's pass fewest instructions: others spilled
    // registers in its inlined kernels.)
    let mut previous: Option<(usize, usize)> = None;
    let mut count = 0;
    for (index, layer) in layers.enumerate() {
        // ReLU between layers only: the last layer's outputs are the logits.
        let relu = index < hidden;
        let (inputs, outputs) = (layer.inputs(), layer.outputs());
        if !layer.parameters_fit() {
            return Err(ForwardError::ParameterLength { layer: index });
        }
        let too_small = ForwardError::ScratchTooSmall {
            layer: index,
            needed: rows.saturating_mul(outputs),
        };
        let output_len = rows.checked_mul(outputs).ok_or(too_small)?;
        match previous {
            None => {
                if rows.checked_mul(inputs) != Some(input.len()) {
                    return Err(ForwardError::InputLength {
                        expected: rows.saturating_mul(inputs),
                        found: input.len(),
                    });
                }
                let y = activations.output_mut(index, output_len).ok_or(too_small)?;
                <K as DenseKernel<L, X>>::dense(kernel, &layer, rows, input, y, relu);
            }
            Some((fed, input_len)) => {
                if inputs != fed {
                    return Err(ForwardError::LayersDoNotChain { layer: index });
                }
                let (x, y) = activations
                    .input_and_output(index, input_len, output_len)
                    .ok_or(too_small)?;
                <K as DenseKernel<L, f32>>::dense(kernel, &layer, rows, x, y, relu);
            }
        }
        previous = Some((outputs, output_len));
        count = index + 1;
    }
    let (outputs, len) = previous.ok_or(ForwardError::NoLayers)?;
    let last = count.saturating_sub(1);
    activations
        .into_output(last, len)
        .ok_or(ForwardError::ScratchTooSmall {
            layer: last,
            needed: rows.saturating_mul(outputs),
        })
}

/// Runs one sample through the network with [`CoreKernel`] and returns its logits:
/// [`forward`] with one row and [`PingPong`] buffers.
///
/// Layer `k`'s output is written to `scratch_a` for even `k` and to `scratch_b` for
/// odd `k`, so RAM for activations is two buffers as long as the widest layer's
/// output; the returned slice borrows whichever holds the last one.
pub fn forward_one<'s, 'a, W: Weight + 'a>(
    layers: impl IntoIterator<Item = LayerParams<'a, W>, IntoIter: ExactSizeIterator>,
    input: &[f32],
    scratch_a: &'s mut [f32],
    scratch_b: &'s mut [f32],
) -> Result<&'s [f32], ForwardError> {
    forward(
        &mut CoreKernel,
        layers,
        input,
        1,
        PingPong::new(scratch_a, scratch_b),
    )
}
