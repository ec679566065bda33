//! Loading an int8 model in place and predicting with integer arithmetic only.
//!
//! # Notation
//! An int8 model (format version 2, `docs/FORMAT.md`) has layer sizes `[n₀, n₁, …,
//! n_L]`. Layer `k` takes `n_k` uint8 values (raw pixel bytes for `k = 0`), computes
//! int32 accumulators `acc = bias + x·W` with int8 weights, and requantizes them with a
//! fixed-point multiplier and shift per output: into uint8 activations clamped to
//! `0..=255` for a hidden layer (the clamp at 0 is the ReLU), into int32 logits for
//! the last. The arithmetic is `mlp_core::quant`'s and so is the layer loop
//! ([`forward_i8`]), so the logits are bit-identical to the host's
//! [`forward_one_i8`](mlp_core::quant::forward_one_i8).
//!
//! # Memory
//! - Flash: the model file, read in place: `4 + Σ_k (4 + 12·n_{k+1} + ⌈n_k·n_{k+1}/4⌉·4)`
//!   bytes of payload plus a header of about 20 bytes; 104,160 bytes for
//!   784-100-200-10.
//! - RAM: an [`Int8Scratch<WIDTH>`](Int8Scratch): two byte buffers and one `i32`
//!   accumulator buffer, each `WIDTH` long: `6 × WIDTH` bytes (1,200 for
//!   784-100-200-10). On Cortex-M4 the kernel adds `12 × (PAIRS + 2)` = 792 bytes of stack
//!   ([`crate::kernel_i8::PAIRS`]). No floating point runs unless the caller asks for
//!   [`Int8Prediction::probabilities`].

use core::mem::size_of;

use mlp_core::format::{ElementType, InputKind, InputQuantization, ModelView};
use mlp_core::loss::softmax;
use mlp_core::quant::{argmax_i32, forward_i8, quantize_features};

use crate::error::LoadError;
use crate::kernel_i8;
use crate::model::{check_fits, check_layer_sizes, MemoryNeeds};

/// A validated int8 model borrowed from flash (or any byte slice), for a firmware built
/// for `IN` inputs, `OUT` classes and activation buffers `WIDTH` values long.
///
/// Cheap to copy: it holds the borrowed file and its parsed header, never the weights.
/// The int8 twin of [`Model`](crate::Model), which runs `f32` models; each refuses the
/// other's files with [`LoadError::UnsupportedElementType`].
///
/// Sizes that can never work are a compile error, not a load error: the logits are
/// computed in the accumulator buffer, so `OUT <= WIDTH`.
///
/// ```compile_fail
/// // 5 classes do not fit buffers 3 wide.
/// let _ = mlp_embedded::Int8Model::<4, 5, 3>::load(&[]);
/// ```
///
/// ```
/// use mlp_embedded::{Int8Model, Int8Scratch};
/// # let mut buffer = [0u8; 160];
/// # let file = mlp_embedded::doc_example_int8_model(&mut buffer);
/// // A 4-3-2 int8 network; the firmware is built for 4 inputs, 2 classes, layers up to 3 wide.
/// let model = Int8Model::<4, 2, 3>::load(file).unwrap();
/// let mut scratch = Int8Scratch::<3>::new();
/// let prediction = model.predict_pixels(&[255, 0, 128, 64], &mut scratch);
/// assert!(prediction.class < 2);
/// let _real = prediction.probabilities(); // softmax of the dequantized logits
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Int8Model<'a, const IN: usize, const OUT: usize, const WIDTH: usize> {
    view: ModelView<'a>,
    file_len: usize,
    output_scale: f32,
    /// Whether every hidden layer's multipliers are below 1/4, checked once here so
    /// that predictions skip the per-output tests of the general requantization.
    small_multipliers: bool,
}

/// The RAM of one int8 prediction: two byte buffers for the uint8 activations and one
/// buffer of int32 accumulators, each `WIDTH` long (the widest layer output).
///
/// Layer `k` reads one byte buffer and writes the other; the last layer's logits are
/// computed in the accumulators.
#[derive(Clone, Debug)]
pub struct Int8Scratch<const WIDTH: usize> {
    acc: [i32; WIDTH],
    even: [u8; WIDTH],
    odd: [u8; WIDTH],
}

impl<const WIDTH: usize> Int8Scratch<WIDTH> {
    /// Bytes of RAM an `Int8Scratch` takes: `6 × WIDTH` (rounded up to a multiple of 4).
    pub const BYTES: usize = size_of::<Self>();

    /// Zeroed buffers (the contents never matter: every prediction overwrites them).
    pub const fn new() -> Self {
        Self {
            acc: [0; WIDTH],
            even: [0; WIDTH],
            odd: [0; WIDTH],
        }
    }
}

impl<const WIDTH: usize> Default for Int8Scratch<WIDTH> {
    fn default() -> Self {
        Self::new()
    }
}

/// The result of one int8 prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8Prediction<const OUT: usize> {
    /// The predicted class: the index of the largest logit (the first one on ties).
    pub class: usize,
    /// The last layer's outputs as int32 at `output_scale`, before softmax: the same
    /// integers as the host's `mlp_core::quant::forward_one_i8`.
    pub logits: [i32; OUT],
    /// The real value of one step of the logits (the last layer's output scale).
    pub output_scale: f32,
}

impl<const OUT: usize> Int8Prediction<OUT> {
    /// The real-valued logits: `logit as f32 × output_scale`, as
    /// `mlp_core::quant::dequantize_logits`.
    pub fn real_logits(&self) -> [f32; OUT] {
        self.logits.map(|q| q as f32 * self.output_scale)
    }

    /// The class probabilities: the softmax of [`real_logits`](Self::real_logits)
    /// (`mlp_core::loss::softmax`). The only floating point of an int8 prediction.
    pub fn probabilities(&self) -> [f32; OUT] {
        let mut probabilities = [0.0; OUT];
        softmax(&self.real_logits(), &mut probabilities);
        probabilities
    }
}

impl<'a, const IN: usize, const OUT: usize, const WIDTH: usize> Int8Model<'a, IN, OUT, WIDTH> {
    /// Validates an int8 model file and borrows it; the weights are never copied.
    ///
    /// Checks, in order: the file itself ([`LoadError::Format`]: magic, version, element
    /// type, layer sizes, lengths, CRC-32, and every scale, multiplier and shift), that
    /// its parameters are int8 ([`LoadError::UnsupportedElementType`] for an `f32`
    /// model), the input and output sizes against `IN` and `OUT`, and every layer
    /// output against `WIDTH`. `bytes` may start at any address.
    pub fn load(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let view = ModelView::decode(bytes)?;
        Self::check(view, bytes.len())
    }

    /// Like [`load`](Self::load), and also requires exactly these layer sizes (what the
    /// firmware was built for), failing with [`LoadError::ShapeMismatch`] otherwise.
    pub fn load_expecting(bytes: &'a [u8], layer_sizes: &[u32]) -> Result<Self, LoadError> {
        let view = ModelView::decode(bytes)?;
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
        check_fits(&view, ElementType::Int8, IN, OUT, WIDTH)?;
        // `decode` checked every scale; a validated int8 file has at least one layer.
        let output_scale = view.int8_layers().last().map_or(0.0, |l| l.output_scale);
        // The last layer's logits are requantized by the general path either way.
        let hidden_layers = view.layer_sizes().len().saturating_sub(2);
        let small_multipliers = view.int8_layers().take(hidden_layers).all(|layer| {
            let params = layer.params();
            kernel_i8::multipliers_are_small(params.multiplier, params.shift)
        });
        Ok(Self {
            view,
            file_len,
            output_scale,
            small_multipliers,
        })
    }

    /// Layer sizes, input first (e.g. `[784, 100, 200, 10]`).
    pub fn layer_sizes(&self) -> &[u32] {
        self.view.layer_sizes()
    }

    /// The validated file's header and borrowed payload.
    pub fn view(&self) -> &ModelView<'a> {
        &self.view
    }

    /// The real value of one step of the input (`1/255` for models of raw pixels).
    pub fn input_scale(&self) -> f32 {
        self.view.input_scale().unwrap_or(0.0)
    }

    /// The real value of one step of the logits (the last layer's output scale).
    pub fn output_scale(&self) -> f32 {
        self.output_scale
    }

    /// What this model needs: its file's bytes in flash and the RAM of its
    /// [`Int8Scratch`].
    pub fn memory_needs(&self) -> MemoryNeeds {
        MemoryNeeds {
            flash_model_bytes: self.file_len,
            ram_activation_bytes: Int8Scratch::<WIDTH>::BYTES,
            macs: self.view.sizes().macs(),
        }
    }

    /// What the model's first layer is given: pixels, standardized or plain features.
    pub fn input_kind(&self) -> InputKind {
        self.view.input_kind()
    }

    /// How the model's input is quantized (scale and zero point).
    pub fn input_quantization(&self) -> InputQuantization {
        self.view.input_quantization().unwrap_or(InputQuantization {
            scale: 0.0,
            zero_point: 0,
        })
    }

    /// Predicts the class of one feature vector: the model's input transform in `f32`
    /// (standardization with the offsets and scales read in place), then the input's
    /// quantization, `clamp(round(x / scale) + zero_point, 0, 255)`
    /// (`mlp_core::quant::quantize_features`; for a model of pixels, `x` rounded and
    /// clamped to `0..=255`), then the integer layers. The only floating point of the
    /// prediction; the quantized input takes `IN` bytes of stack, in a frame of its
    /// own (not inlined).
    #[inline(never)]
    pub fn predict_features(
        &self,
        features: &[f32; IN],
        scratch: &mut Int8Scratch<WIDTH>,
    ) -> Int8Prediction<OUT> {
        let mut quantized = [0u8; IN];
        quantize_features(
            &self.view.input_transform(),
            self.input_quantization(),
            features,
            &mut quantized,
        );
        self.predict_quantized(&quantized, scratch)
    }

    /// Predicts the class of one input given as one byte per input. For a model of
    /// pixels, the bytes are the quantized inputs themselves (what the quantizer
    /// calibrates for): integer arithmetic only. For another model they are integer
    /// features: [`predict_features`](Self::predict_features) of `byte as f32`.
    /// Cannot fail and does not panic.
    ///
    /// The forward pass is `mlp_core::quant::forward_i8` (the int8 loop the host runs
    /// too) with this target's kernels ([`crate::kernel_i8`]).
    ///
    /// # Shapes
    /// `pixels: [IN]`; the result's `logits: [OUT]`.
    pub fn predict_pixels(
        &self,
        pixels: &[u8; IN],
        scratch: &mut Int8Scratch<WIDTH>,
    ) -> Int8Prediction<OUT> {
        if self.view.input_kind() == InputKind::Pixels {
            return self.predict_quantized(pixels, scratch);
        }
        self.predict_byte_features(pixels, scratch)
    }

    /// Byte features as `f32` (`4 × IN` bytes of stack, in a frame a prediction of
    /// pixels never enters), then [`predict_features`](Self::predict_features).
    #[inline(never)]
    fn predict_byte_features(
        &self,
        bytes: &[u8; IN],
        scratch: &mut Int8Scratch<WIDTH>,
    ) -> Int8Prediction<OUT> {
        self.predict_features(&bytes.map(f32::from), scratch)
    }

    /// The integer layers on quantized inputs.
    fn predict_quantized(
        &self,
        pixels: &[u8; IN],
        scratch: &mut Int8Scratch<WIDTH>,
    ) -> Int8Prediction<OUT> {
        let mut logits = [i32::MIN; OUT];
        let Int8Scratch { acc, even, odd } = scratch;
        let mut kernel = kernel_i8::Device {
            small_multipliers: self.small_multipliers,
        };
        let layers = self.view.int8_layers().map(|layer| layer.params());
        let result = forward_i8(&mut kernel, layers, pixels, even, odd, acc);
        // `load` checked every size against IN, OUT and WIDTH, so the pass always
        // succeeds with OUT logits; if it did not, they stay i32::MIN rather than
        // panicking.
        if let Some(result) = result.ok().and_then(|r| r.first_chunk::<OUT>()) {
            logits = *result;
        }
        Int8Prediction {
            class: argmax_i32(&logits),
            logits,
            output_scale: self.output_scale,
        }
    }
}

/// Writes a small valid int8 model file (4-3-2, deterministic weights) into `buffer`
/// and returns it; for examples and tests. A buffer under 128 bytes gives an empty slice.
#[doc(hidden)]
pub fn doc_example_int8_model(buffer: &mut [u8]) -> &[u8] {
    use mlp_core::format::{encode, ElementType, LayerSizes};
    use mlp_core::quant::{write_int8_layer, QuantizedMultiplier};
    let sizes = [4u32, 3, 2];
    let Ok(layer_sizes) = LayerSizes::new(&sizes) else {
        return &[];
    };
    let mut payload = [0u8; 128];
    let len = layer_sizes
        .payload_len(ElementType::Int8)
        .min(payload.len());
    let mut at = 4;
    if let Some(scale) = payload.first_chunk_mut::<4>() {
        *scale = (1.0f32 / 255.0).to_le_bytes();
    }
    let m = QuantizedMultiplier::from_real(0.01).unwrap_or(QuantizedMultiplier {
        multiplier: 0,
        shift: 0,
    });
    let weights: [i8; 12] = [3, -7, 11, -13, 17, -19, 23, -29, 31, -37, 41, -43];
    for (k, pair) in sizes.windows(2).enumerate() {
        let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
        let bias = [100 * k as i32, -50, 25];
        let used = write_int8_layer(
            payload.get_mut(at..).unwrap_or_default(),
            0.1,
            weights.get(..inputs * outputs).unwrap_or_default(),
            bias.get(..outputs).unwrap_or_default(),
            &[m.multiplier; 3][..outputs],
            &[m.shift as i32; 3][..outputs],
        );
        at += used.unwrap_or(0);
    }
    let used = encode(
        &sizes,
        ElementType::Int8,
        payload.get(..len).unwrap_or_default(),
        buffer,
    )
    .unwrap_or(0);
    buffer.get(..used).unwrap_or_default()
}
