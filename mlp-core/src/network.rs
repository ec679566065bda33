//! A whole forward pass for one sample: Dense layers with ReLU between them and none
//! after the last, so the result is the logits.
//!
//! This is the prediction path both sides share: the trainer's `predict` and the
//! firmware call [`forward_one`] with the same layers and get the same bits.

use core::ops::Range;

use crate::activation::relu_forward;
use crate::dense::{dense_forward, DenseShape, Weight};

/// The input a pixel byte becomes: `pixel / 255`, in `[0, 1]` (the division rounded
/// once, so every target computes the same value).
#[inline(always)]
pub fn pixel_value(pixel: u8) -> f32 {
    f32::from(pixel) / 255.0
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

/// Why [`forward_one`] could not run. Each names the layer (counting from 0) where the
/// problem is; a model that passed [`crate::format::ModelView::decode`] and scratch
/// buffers at least as long as its widest layer never produce one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// The input's length is not the first layer's input size.
    InputLength {
        /// The first layer's input size.
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
    /// A scratch buffer is shorter than a layer's output.
    ScratchTooSmall {
        /// The layer whose output did not fit.
        layer: usize,
        /// Its output size.
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

/// Runs one sample through the network and returns its logits.
///
/// Layer `k`'s output is written to `scratch_a` for even `k` and to `scratch_b` for
/// odd `k` (ping-pong), so RAM for activations is two buffers as long as the widest
/// layer's output; the returned slice borrows whichever holds the last one.
pub fn forward_one<'s, 'a, W: Weight + 'a>(
    layers: impl IntoIterator<Item = LayerParams<'a, W>>,
    input: &[f32],
    scratch_a: &'s mut [f32],
    scratch_b: &'s mut [f32],
) -> Result<&'s [f32], ForwardError> {
    let mut buffers = [scratch_a, scratch_b];
    // Which buffer holds the current activations and how many; `None` while the
    // current activations are still `input`.
    let mut current: Option<(usize, usize)> = None;
    for (index, layer) in layers.into_iter().enumerate() {
        let available = current.map_or(input.len(), |(_, len)| len);
        if layer.inputs != available {
            return Err(match current {
                None => ForwardError::InputLength {
                    expected: layer.inputs,
                    found: input.len(),
                },
                Some(_) => ForwardError::LayersDoNotChain { layer: index },
            });
        }
        if layer.inputs.checked_mul(layer.outputs) != Some(layer.weights.len())
            || layer.bias.len() != layer.outputs
        {
            return Err(ForwardError::ParameterLength { layer: index });
        }
        let too_small = ForwardError::ScratchTooSmall {
            layer: index,
            needed: layer.outputs,
        };
        let [even, odd] = &mut buffers;
        let (source, destination, target): (&[f32], &mut [f32], usize) = match current {
            None => (input, &mut **even, 0),
            Some((held, len)) => {
                let (held_buffer, free_buffer) = if held == 0 { (even, odd) } else { (odd, even) };
                // A layer follows, so the held activations were a hidden layer's: ReLU.
                let activations = held_buffer.get_mut(..len).ok_or(too_small)?;
                relu_forward(activations);
                (activations, &mut **free_buffer, 1 - held)
            }
        };
        let destination = destination.get_mut(..layer.outputs).ok_or(too_small)?;
        dense_forward(
            DenseShape::new(1, layer.inputs, layer.outputs),
            source,
            layer.weights,
            layer.bias,
            destination,
        );
        current = Some((target, layer.outputs));
    }
    let (last, len) = current.ok_or(ForwardError::NoLayers)?;
    let [even, odd] = buffers;
    let logits: &'s mut [f32] = if last == 0 { even } else { odd };
    Ok(logits.get(..len).unwrap_or_default())
}
