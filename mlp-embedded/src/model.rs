//! Loading a model in place and predicting with it.
//!
//! # Notation
//! A model has layer sizes `[n₀, n₁, …, n_L]` (`n₀` inputs, `n_L` classes); layer `k`
//! maps `n_k` values to `n_{k+1}` with `y = x·W + b`, ReLU between layers and none after
//! the last. The layer loop is `mlp-core`'s ([`mlp_core::network::forward`], the one
//! behind the host's `forward_one`); only the kernel is this target's
//! ([`crate::kernel`]).
//!
//! # Memory
//! - Flash: the model file, read in place: `4 × Σ_k (n_k + 1) · n_{k+1}` bytes of
//!   parameters plus a header of about 20 bytes ([`MemoryNeeds::flash_model_bytes`]).
//! - RAM: a [`Scratch<WIDTH>`](Scratch): two activation buffers as wide as the widest
//!   layer output, `8 × WIDTH` bytes ([`MemoryNeeds::ram_activation_bytes`]); for
//!   784-100-200-10 that is 1,600 bytes. [`Model::predict_pixels`] never holds the
//!   input as `f32` (the first layer converts only the non-zero pixels, as it uses
//!   them); [`Model::predict`] reads the caller's `[f32; IN]`. The kernel adds
//!   `8 × CHUNK` = 512 bytes of stack ([`crate::kernel::CHUNK`]).

use core::mem::size_of;

use mlp_core::format::{
    encoded_len, ElementType, FormatError, InputKind, LayerBytes, LayerSizes, ModelView,
};
use mlp_core::loss::{argmax, softmax};
use mlp_core::network::{forward, DenseKernel, PingPong};

use crate::error::LoadError;
use crate::kernel;

/// A validated model borrowed from flash (or any byte slice), for a firmware built for
/// `IN` inputs, `OUT` classes and activation buffers `WIDTH` values long.
///
/// Cheap to copy: it holds the borrowed file and its parsed header, never the weights.
///
/// Sizes that can never work are a compile error, not a load error: the logits live in
/// an activation buffer, so `OUT <= WIDTH`.
///
/// ```compile_fail
/// // 5 classes do not fit buffers 3 wide.
/// let _ = mlp_embedded::Model::<4, 5, 3>::load(&[]);
/// ```
///
/// ```
/// let _ = mlp_embedded::Model::<4, 3, 3>::load(&[]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Model<'a, const IN: usize, const OUT: usize, const WIDTH: usize> {
    view: ModelView<'a>,
    file_len: usize,
}

/// The activation buffers of one prediction: all the RAM a prediction needs besides
/// about 600 bytes of stack.
///
/// `WIDTH` is the widest layer output: layer `k` reads one buffer and writes the other.
#[derive(Clone, Debug)]
pub struct Scratch<const WIDTH: usize> {
    even: [f32; WIDTH],
    odd: [f32; WIDTH],
}

impl<const WIDTH: usize> Scratch<WIDTH> {
    /// Bytes of RAM a `Scratch` takes: `8 × WIDTH`.
    pub const BYTES: usize = size_of::<Self>();

    /// Zeroed buffers (the contents never matter: every prediction overwrites them).
    pub const fn new() -> Self {
        Self {
            even: [0.0; WIDTH],
            odd: [0.0; WIDTH],
        }
    }
}

impl<const WIDTH: usize> Default for Scratch<WIDTH> {
    fn default() -> Self {
        Self::new()
    }
}

/// The result of one prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction<const OUT: usize> {
    /// The predicted class: the index of the largest logit (the first one on ties).
    pub class: usize,
    /// The last layer's outputs, before softmax.
    pub logits: [f32; OUT],
}

impl<const OUT: usize> Prediction<OUT> {
    /// The class probabilities: the softmax of the logits (`mlp_core::loss::softmax`).
    pub fn probabilities(&self) -> [f32; OUT] {
        let mut probabilities = [0.0; OUT];
        softmax(&self.logits, &mut probabilities);
        probabilities
    }
}

/// What a model needs on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryNeeds {
    /// Bytes of flash for the model file (header, padding and parameters).
    pub flash_model_bytes: usize,
    /// Bytes of RAM for the activations: the size of the matching [`Scratch`]
    /// (`8 × widest layer output`) or [`Int8Scratch`](crate::Int8Scratch) (`6 ×`); the
    /// input is read from where the caller keeps it.
    pub ram_activation_bytes: usize,
    /// Multiply-accumulates of one prediction with no zero input skipped.
    pub macs: usize,
}

impl MemoryNeeds {
    /// The figures for an int8 model with these layer sizes (input size first): RAM is
    /// `6 × widest layer output`, the size of the matching
    /// [`Int8Scratch`](crate::Int8Scratch) (two byte buffers and the int32 accumulators).
    pub fn for_int8_layer_sizes(layer_sizes: &[u32]) -> Result<Self, FormatError> {
        let sizes = LayerSizes::new(layer_sizes)?;
        let payload = sizes.payload_len(ElementType::Int8);
        Ok(Self {
            flash_model_bytes: encoded_len(layer_sizes, payload)?,
            ram_activation_bytes: 6 * sizes.max_output(),
            macs: sizes.macs(),
        })
    }

    /// The figures for an `f32` model with these layer sizes (input size first).
    pub fn for_layer_sizes(layer_sizes: &[u32]) -> Result<Self, FormatError> {
        let sizes = LayerSizes::new(layer_sizes)?;
        let payload = sizes.payload_len(ElementType::F32);
        Ok(Self {
            flash_model_bytes: encoded_len(layer_sizes, payload)?,
            ram_activation_bytes: 8 * sizes.max_output(),
            macs: sizes.macs(),
        })
    }
}

/// [`LoadError::ShapeMismatch`] at the first place where the file's layer sizes
/// (`found`) differ from the ones the firmware was built for (`expected`).
pub(crate) fn check_layer_sizes(found: &[u32], expected: &[u32]) -> Result<(), LoadError> {
    let longest = found.len().max(expected.len());
    for index in 0..longest {
        let want = expected.get(index).copied().unwrap_or(0);
        let in_file = found.get(index).copied().unwrap_or(0);
        if want != in_file {
            return Err(LoadError::ShapeMismatch {
                index,
                expected: want,
                found: in_file,
            });
        }
    }
    Ok(())
}

/// Checks a decoded file against a firmware built for `element_type` parameters,
/// `inputs` inputs, `outputs` classes and activation buffers `width` long: the checks
/// the f32 and int8 loaders share.
/// Decodes an `f32` model file; an int8 one is refused by its element type, before
/// its int8 parameters are read (the `f32` firmware never links their checks).
fn decode_f32(bytes: &[u8]) -> Result<ModelView<'_>, LoadError> {
    ModelView::decode_element(bytes, ElementType::F32)?.map_err(|found| {
        LoadError::UnsupportedElementType {
            found,
            expected: ElementType::F32,
        }
    })
}

pub(crate) fn check_fits(
    view: &ModelView<'_>,
    element_type: ElementType,
    inputs: usize,
    outputs: usize,
    width: usize,
) -> Result<(), LoadError> {
    if view.element_type() != element_type {
        return Err(LoadError::UnsupportedElementType {
            found: view.element_type(),
            expected: element_type,
        });
    }
    let sizes = view.layer_sizes();
    let found = sizes.first().copied().unwrap_or(0) as usize;
    if found != inputs {
        return Err(LoadError::InputSizeMismatch {
            expected: inputs,
            found,
        });
    }
    let found = sizes.last().copied().unwrap_or(0) as usize;
    if found != outputs {
        return Err(LoadError::OutputSizeMismatch {
            expected: outputs,
            found,
        });
    }
    for (layer, &size) in sizes.iter().skip(1).enumerate() {
        if size as usize > width {
            return Err(LoadError::LayerTooWide {
                layer,
                outputs: size as usize,
                capacity: width,
            });
        }
    }
    Ok(())
}

/// The model file at the start of a larger flash region, followed by anything
/// (erased flash, an older and longer model): the region cut to the file's length.
///
/// This is how firmware finds a model flashed on its own at a fixed address, without
/// storing its length anywhere else. Errors are those of [`Model::load`] for the
/// file's header; the payload's checksum is verified by the `load` that follows.
pub fn model_in_region(region: &[u8]) -> Result<&[u8], LoadError> {
    match ModelView::decode(region) {
        Ok(_) => Ok(region),
        // `decode` reports trailing bytes only after the whole header and the
        // payload's length were found valid, so the file is the region minus them.
        Err(FormatError::TrailingBytes { count }) => {
            Ok(region.get(..region.len() - count).unwrap_or_default())
        }
        Err(error) => Err(LoadError::Format(error)),
    }
}

impl<'a, const IN: usize, const OUT: usize, const WIDTH: usize> Model<'a, IN, OUT, WIDTH> {
    /// Validates a model file and borrows it; the weights are never copied.
    ///
    /// Checks, in order: the file itself ([`LoadError::Format`]: magic, version, element
    /// type, layer sizes, lengths, CRC-32), that its parameters are `f32`, the input and
    /// output sizes against `IN` and `OUT`, every layer output against `WIDTH`, and that
    /// every parameter is finite.
    /// `bytes` may start at any address; 4-byte aligned files are read a little faster.
    pub fn load(bytes: &'a [u8]) -> Result<Self, LoadError> {
        Self::check(decode_f32(bytes)?, bytes.len())
    }

    /// Like [`load`](Self::load), and also requires exactly these layer sizes (what the
    /// firmware was built for), failing with [`LoadError::ShapeMismatch`] otherwise.
    pub fn load_expecting(bytes: &'a [u8], layer_sizes: &[u32]) -> Result<Self, LoadError> {
        let view = decode_f32(bytes)?;
        check_layer_sizes(view.layer_sizes(), layer_sizes)?;
        Self::check(view, bytes.len())
    }

    fn check(view: ModelView<'a>, file_len: usize) -> Result<Self, LoadError> {
        const {
            assert!(
                IN > 0 && OUT > 0 && OUT <= WIDTH,
                "need IN > 0 and 0 < OUT <= WIDTH"
            )
        };
        check_fits(&view, ElementType::F32, IN, OUT, WIDTH)?;
        for (layer, bytes) in view.layers().enumerate() {
            let parameters = bytes
                .weights
                .as_chunks::<4>()
                .0
                .iter()
                .chain(bytes.bias.as_chunks::<4>().0);
            for (index, &chunk) in parameters.enumerate() {
                if !f32::from_le_bytes(chunk).is_finite() {
                    return Err(LoadError::NonFiniteParameter { layer, index });
                }
            }
        }
        Ok(Self { view, file_len })
    }

    /// Layer sizes, input first (e.g. `[784, 100, 200, 10]`).
    pub fn layer_sizes(&self) -> &[u32] {
        self.view.layer_sizes()
    }

    /// The validated file's header and borrowed payload.
    pub fn view(&self) -> &ModelView<'a> {
        &self.view
    }

    /// What this model needs: its file's bytes in flash and the RAM of its [`Scratch`].
    pub fn memory_needs(&self) -> MemoryNeeds {
        MemoryNeeds {
            flash_model_bytes: self.file_len,
            ram_activation_bytes: Scratch::<WIDTH>::BYTES,
            macs: self.view.sizes().macs(),
        }
    }

    /// Predicts the class of one input given as the first layer's inputs themselves:
    /// no input transform (see [`predict_features`](Self::predict_features)).
    ///
    /// # Shapes
    /// `input: [IN]`; the result's `logits: [OUT]`.
    pub fn predict(&self, input: &[f32; IN], scratch: &mut Scratch<WIDTH>) -> Prediction<OUT> {
        self.forward(input, scratch)
    }

    /// What the model's first layer is given: pixels, standardized or plain features.
    pub fn input_kind(&self) -> InputKind {
        self.view.input_kind()
    }

    /// Predicts the class of one feature vector: the model's input transform, then the
    /// layers. For a standardized model, `(x[i] - offset[i]) × scale[i]` in `f32` with
    /// the offsets and scales read in place from the file; for a model of pixels,
    /// `x[i] / 255`; otherwise the features as they are. Bit-identical to the host's
    /// `mlp_core::format::InputTransform::apply` followed by its forward pass.
    ///
    /// The transformed inputs take `4 × IN` bytes of stack, in a frame of its own (not
    /// inlined), so that firmware which never predicts feature vectors does not
    /// reserve them.
    #[inline(never)]
    pub fn predict_features(
        &self,
        features: &[f32; IN],
        scratch: &mut Scratch<WIDTH>,
    ) -> Prediction<OUT> {
        let mut input = [0.0f32; IN];
        self.view.input_transform().apply(features, &mut input);
        self.forward(&input, scratch)
    }

    /// Predicts the class of an input given as one byte per input. For a model of
    /// pixels (every version-1 file), the bytes are scaled to `[0, 1]` as the trainer
    /// does, `pixel as f32 / 255.0`: bit-identical to converting the pixels and calling
    /// [`predict`](Self::predict), without the `4 × IN` bytes of RAM. For another
    /// model, the bytes are integer features: the same bits as
    /// [`predict_features`](Self::predict_features) of `byte as f32`, each byte through
    /// the input transform as the first layer reads it, again without the `f32` input
    /// in RAM.
    pub fn predict_pixels(
        &self,
        pixels: &[u8; IN],
        scratch: &mut Scratch<WIDTH>,
    ) -> Prediction<OUT> {
        self.forward(pixels, scratch)
    }

    /// The forward pass: `mlp_core::network::forward` (the loop every `f32` pass runs)
    /// with this target's kernels, one row, the scratch's two buffers taking turns.
    /// The first layer reads `input` as the kernel reads `X` (`f32` values or pixel
    /// bytes).
    fn forward<X>(&self, input: &[X], scratch: &mut Scratch<WIDTH>) -> Prediction<OUT>
    where
        for<'t> kernel::Device<'t>: DenseKernel<LayerBytes<'a>, X>,
    {
        let mut logits = [f32::NAN; OUT];
        let activations = PingPong::new(&mut scratch.even, &mut scratch.odd);
        let result = forward(
            &mut kernel::Device {
                bytes: self.view.input_transform(),
            },
            self.view.layers(),
            input,
            1,
            activations,
        );
        // `load` checked every size against IN, OUT and WIDTH, so the pass always
        // succeeds with OUT logits; if it did not, they stay NaN rather than panicking.
        if let Some(result) = result.ok().and_then(|r| r.first_chunk::<OUT>()) {
            logits = *result;
        }
        Prediction {
            class: argmax(&logits),
            logits,
        }
    }
}
