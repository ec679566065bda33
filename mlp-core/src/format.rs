//! The model file shared by the trainer and the device; the full byte-level spec, with
//! its stability promise, is `docs/FORMAT.md`.
//!
//! A file is the [postcard] encoding of
//!
//! ```text
//! magic:         [u8; 4]   = b"MLPW"          4 raw bytes
//! version:       u16       = 1                varint
//! element_type:  u8        = 0 (f32)          1 raw byte
//! layer_sizes:   [u32]     e.g. 784,100,200,10  varint count, then varints
//! payload_crc:   [u8; 4]   CRC-32 of payload  4 raw bytes, little-endian
//! padding:       [u8]      0–3 zero bytes     varint count, then bytes
//! payload:       [u8]      the parameters     varint count, then bytes
//! ```
//!
//! The padding makes the payload start at a multiple of 4 bytes from the start of the
//! file, so a device that keeps the file 4-byte aligned in flash can read the weights
//! as `f32` in place. The payload holds, for each layer in order, `W: [inputs,
//! outputs]` then `b: [outputs]`, as little-endian `f32`.
//!
//! Version 3 adds two header fields, the input transform after `element_type` and the
//! length of the class names after `layer_sizes`, and lays the payload out in sections:
//! a standardized model's offsets and scales, an int8 model's input scale and zero
//! point, the layers, the class names. [`encode_model`] writes them
//! ([`ModelParts`]); [`ModelView::input_transform`] and [`ModelView::class_names`]
//! read them in place. Models of pixels without class names are still written as
//! versions 1 (f32) and 2 (int8).
//!
//! [`ModelView::decode`] validates a file once, field by field, each failure with its
//! own [`FormatError`] variant, and borrows the payload without copying it. After
//! that, reading layers cannot fail.
//!
//! ```
//! use mlp_core::format::{encode, encoded_len, ElementType, ModelView};
//! // A 2-3-2 network whose parameters are all zero except the last bias.
//! let sizes = [2, 3, 2];
//! let mut payload = [0u8; (2 * 3 + 3 + 3 * 2 + 2) * 4];
//! payload[64..68].copy_from_slice(&1.5f32.to_le_bytes());
//! let mut file = [0u8; 96];
//! let used = encode(&sizes, ElementType::F32, &payload, &mut file).unwrap();
//! assert_eq!(used, encoded_len(&sizes, payload.len()).unwrap());
//! assert_eq!(
//!     &file[..24],
//!     &[
//!         b'M', b'L', b'P', b'W', // magic
//!         0x01,                   // version 1
//!         0x00,                   // element type 0: f32
//!         0x03, 0x02, 0x03, 0x02, // three sizes: 2, 3, 2
//!         0xde, 0x94, 0x4b, 0x6d, // CRC-32 of the payload, 0x6d4b_94de, little-endian
//!         0x00,                   // no padding needed
//!         0x44,                   // payload length 68
//!         0, 0, 0, 0,             // first weight, 0.0f32, at offset 16 = 4 × 4
//!         0, 0, 0, 0,             // second weight
//!     ][..]
//! );
//! let model = ModelView::decode(&file[..used]).unwrap();
//! assert_eq!(model.layer_sizes(), &[2, 3, 2]);
//! let last_bias = model.layers().nth(1).unwrap().bias;
//! assert_eq!(last_bias, &[0, 0, 0, 0, 0x00, 0x00, 0xc0, 0x3f][..]); // [0.0, 1.5]
//! ```

/// The four bytes every model file starts with.
pub const MAGIC: [u8; 4] = *b"MLPW";

/// The newest format version this crate reads and writes.
///
/// Version 1 holds f32 models of images; version 2 added int8 models; version 3 added
/// the input transform (per-feature standardization), the int8 input's zero point and
/// class names. The writer uses the oldest version that can express a model, so an f32
/// model of images without class names remains a version-1 file that every reader
/// understands.
pub const FORMAT_VERSION: u16 = 3;

/// The version an f32 model is written with.
pub const F32_VERSION: u16 = 1;

/// The version an int8 model is written with.
pub const INT8_VERSION: u16 = 2;

/// The version a model is written with when it has class names, an input transform
/// other than pixels, or (int8) an input zero point other than 0.
pub const METADATA_VERSION: u16 = 3;

/// The longest class name, in bytes of UTF-8.
pub const MAX_CLASS_NAME_LEN: usize = 64;

/// The longest class-name section, in bytes (one length byte and the name's bytes per
/// class): 252 names of 64 bytes fit.
pub const MAX_CLASS_NAMES_LEN: usize = 16_384;

/// The most Dense layers a file may hold (it then has one more layer size).
pub const MAX_LAYERS: usize = 16;

/// The largest layer size accepted: bigger is certainly a corrupt file, not an MLP
/// anybody runs on a microcontroller.
pub const MAX_WIDTH: u32 = 1 << 20;

/// The payload starts at a multiple of this many bytes from the start of the file.
pub const PAYLOAD_ALIGN: usize = 4;

/// How each parameter of the payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum ElementType {
    /// IEEE-754 binary32, little-endian (format version 1 and later).
    F32 = 0,
    /// Symmetric int8 weights with int32 biases and fixed-point requantization per
    /// output (format version 2 and later); see [`crate::quant`].
    Int8 = 1,
}

impl ElementType {
    /// The byte that stands for this type in a file.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The type a file's byte stands for, if format `version` knows it.
    pub const fn from_code(code: u8, version: u16) -> Option<Self> {
        match (code, version) {
            (0, 1..=FORMAT_VERSION) => Some(Self::F32),
            (1, 2..=FORMAT_VERSION) => Some(Self::Int8),
            _ => None,
        }
    }

    /// The type's name in messages: `"f32"` or `"int8"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }

    /// The format version a model of this type is written with when it has no
    /// version-3 field (see [`ModelParts`]).
    pub const fn version(self) -> u16 {
        match self {
            Self::F32 => F32_VERSION,
            Self::Int8 => INT8_VERSION,
        }
    }
}

/// What a model's first layer is given, computed from the caller's features: the
/// input transform (format version 3; versions 1 and 2 are all [`InputKind::Pixels`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum InputKind {
    /// The features as given.
    Features = 0,
    /// Pixels: each input is `pixel / 255` (`crate::network::pixel_value`).
    Pixels = 1,
    /// Standardized features: `(x[i] - offset[i]) × scale[i]`, with one offset and one
    /// scale per feature stored in the payload.
    Standardized = 2,
}

impl InputKind {
    /// The byte that stands for this kind in a file.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind a file's byte stands for, if this reader knows it.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Features),
            1 => Some(Self::Pixels),
            2 => Some(Self::Standardized),
            _ => None,
        }
    }

    /// How a user would call it: `features`, `pixels` or `standardized`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Features => "features",
            Self::Pixels => "pixels",
            Self::Standardized => "standardized",
        }
    }
}

/// What is wrong with a class name ([`FormatError::BadClassName`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClassNameProblem {
    /// Its length byte is 0 or above [`MAX_CLASS_NAME_LEN`].
    Length,
    /// It is not valid UTF-8.
    NotUtf8,
    /// It holds a control character (a line break, an escape sequence, ...).
    ControlCharacter,
    /// The section ends before this class's name.
    Missing,
    /// Bytes follow the last class's name.
    TrailingBytes,
}

/// Why a model file could not be read or written.
///
/// Variants are named after what was wrong, in the order the reader checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file ends inside its header.
    TruncatedHeader,
    /// The file does not start with the magic bytes `MLPW`: not a model file.
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The file's format version is not one this reader knows.
    UnsupportedVersion {
        /// The version in the file.
        found: u16,
    },
    /// The element type byte is not one this version knows.
    UnknownElementType {
        /// The byte in the file.
        found: u8,
    },
    /// The input transform byte (format version 3) is not one this reader knows.
    UnknownInputKind {
        /// The byte in the file.
        found: u8,
    },
    /// A header field is not a valid postcard value (for example an overlong varint).
    MalformedHeader,
    /// Fewer than two layer sizes: the file holds no layer.
    NoLayers,
    /// More layers than [`MAX_LAYERS`].
    TooManyLayers {
        /// Layers the file declares.
        found: usize,
    },
    /// A layer size is zero or larger than [`MAX_WIDTH`].
    BadLayerSize {
        /// Position in the list of sizes (0 is the input size).
        index: usize,
        /// The size found.
        size: u32,
    },
    /// The class-name section (format version 3) is declared longer than
    /// [`MAX_CLASS_NAMES_LEN`].
    ClassNamesTooLong {
        /// The length declared.
        found: usize,
    },
    /// The padding is longer than 3 bytes or not all zero.
    BadPadding,
    /// The payload's length does not match the one the layer sizes imply.
    PayloadLengthMismatch {
        /// Bytes the layer sizes imply.
        expected: usize,
        /// Bytes the file declares.
        found: usize,
    },
    /// The file ends before the payload does.
    TruncatedPayload {
        /// Payload bytes declared.
        expected: usize,
        /// Payload bytes present.
        available: usize,
    },
    /// The payload's CRC-32 is not the one in the header: the weights are corrupt.
    ChecksumMismatch {
        /// The CRC-32 in the header.
        expected: u32,
        /// The CRC-32 of the payload present.
        computed: u32,
    },
    /// A standardized model's offset or scale for a feature is not finite, or the
    /// scale is zero.
    BadNormalization {
        /// The feature (from 0).
        feature: usize,
    },
    /// An int8 model's quantization parameters are invalid: a scale that is not a
    /// positive finite number, a negative multiplier, a shift above 62, non-zero
    /// padding, or an input zero point outside `0..=255` (or not 0 for pixels).
    /// `layer` is `None` for the input's scale and zero point.
    BadQuantization {
        /// The layer (from 0) with the bad parameter, `None` for the input's.
        layer: Option<usize>,
    },
    /// A class name is invalid, or there are not exactly as many names as classes.
    BadClassName {
        /// The class (from 0) whose name is bad or missing, or the number of classes
        /// for [`ClassNameProblem::TrailingBytes`].
        class: usize,
        /// What is wrong.
        problem: ClassNameProblem,
    },
    /// Bytes follow the payload.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The output buffer given to [`encode`] is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TruncatedHeader => f.write_str("file ends inside the model header"),
            Self::BadMagic { found } => {
                // Hex by hand: `{:02x?}` on an array pulls ~1 KB of formatting code into
                // firmware that only wants to print this message.
                f.write_str("not a model file: starts with")?;
                // Widened to u32: firmware then links one integer formatter, not three.
                for byte in found {
                    write!(f, " {:02x}", u32::from(byte))?;
                }
                f.write_str(", expected \"MLPW\"")
            }
            Self::UnsupportedVersion { found } => write!(
                f,
                "model format version {} is not supported (this build reads up to {})",
                u32::from(found),
                u32::from(FORMAT_VERSION)
            ),
            Self::UnknownElementType { found } => {
                write!(f, "unknown element type {}", u32::from(found))
            }
            Self::UnknownInputKind { found } => {
                write!(f, "unknown input transform {}", u32::from(found))
            }
            Self::MalformedHeader => f.write_str("malformed model header"),
            Self::NoLayers => f.write_str("the model has no layers"),
            Self::TooManyLayers { found } => {
                write!(f, "the model has {found} layers, more than the {MAX_LAYERS} allowed")
            }
            Self::BadLayerSize { index, size } => {
                write!(f, "layer size {index} is {size}, outside 1..={MAX_WIDTH}")
            }
            Self::ClassNamesTooLong { found } => write!(
                f,
                "the class names take {found} bytes, more than the {MAX_CLASS_NAMES_LEN} allowed"
            ),
            Self::BadPadding => f.write_str("bad padding before the payload"),
            Self::PayloadLengthMismatch { expected, found } => write!(
                f,
                "payload is {found} bytes but the layer sizes need {expected}"
            ),
            Self::TruncatedPayload { expected, available } => write!(
                f,
                "file is truncated: payload needs {expected} bytes, only {available} present"
            ),
            Self::ChecksumMismatch { expected, computed } => write!(
                f,
                "payload checksum mismatch: header says {expected:#010x}, payload has {computed:#010x}"
            ),
            Self::BadQuantization { layer: Some(layer) } => {
                write!(f, "layer {layer} has invalid quantization parameters")
            }
            Self::BadQuantization { layer: None } => {
                f.write_str("the model's input scale or zero point is invalid")
            }
            Self::BadNormalization { feature } => write!(
                f,
                "feature {feature}'s normalization is invalid (an offset or scale that is not finite, or a zero scale)"
            ),
            Self::BadClassName { class, problem } => match problem {
                ClassNameProblem::Length => write!(
                    f,
                    "class {class}'s name is empty or longer than {MAX_CLASS_NAME_LEN} bytes"
                ),
                ClassNameProblem::NotUtf8 => write!(f, "class {class}'s name is not UTF-8"),
                ClassNameProblem::ControlCharacter => {
                    write!(f, "class {class}'s name holds a control character")
                }
                ClassNameProblem::Missing => write!(f, "class {class} has no name"),
                ClassNameProblem::TrailingBytes => {
                    write!(f, "bytes follow the names of the {class} classes")
                }
            },
            Self::TrailingBytes { count: 1 } => f.write_str("1 unexpected byte after the payload"),
            Self::TrailingBytes { count } => write!(f, "{count} unexpected bytes after the payload"),
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "output buffer of {available} bytes is too small, {needed} needed"
            ),
        }
    }
}

impl core::error::Error for FormatError {}

/// The layer sizes of a model, held inline (no allocator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSizes {
    sizes: [u32; MAX_LAYERS + 1],
    len: usize,
}

impl LayerSizes {
    /// Validates a list of sizes (input size first, logits last) as the reader does.
    pub fn new(sizes: &[u32]) -> Result<Self, FormatError> {
        if sizes.len() < 2 {
            return Err(FormatError::NoLayers);
        }
        if sizes.len() > MAX_LAYERS + 1 {
            return Err(FormatError::TooManyLayers {
                found: sizes.len() - 1,
            });
        }
        let mut inline = [0; MAX_LAYERS + 1];
        for (index, (slot, &size)) in inline.iter_mut().zip(sizes).enumerate() {
            if size == 0 || size > MAX_WIDTH {
                return Err(FormatError::BadLayerSize { index, size });
            }
            *slot = size;
        }
        Ok(Self {
            sizes: inline,
            len: sizes.len(),
        })
    }

    /// The sizes, input first.
    pub fn as_slice(&self) -> &[u32] {
        self.sizes.get(..self.len).unwrap_or_default()
    }

    /// Number of Dense layers (one less than the number of sizes).
    pub fn layer_count(&self) -> usize {
        self.len - 1
    }

    /// Parameters (weights and biases) of all layers.
    pub fn parameter_count(&self) -> usize {
        // (2^20)^2 overflows a 32-bit usize: saturate, a saturated count never matches
        // a real payload.
        self.as_slice()
            .windows(2)
            .map(|pair| {
                (pair[0] as usize)
                    .saturating_mul(pair[1] as usize)
                    .saturating_add(pair[1] as usize)
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Multiply-accumulates in one forward pass of one sample.
    pub fn macs(&self) -> usize {
        self.as_slice()
            .windows(2)
            .map(|pair| (pair[0] as usize).saturating_mul(pair[1] as usize))
            .fold(0usize, usize::saturating_add)
    }

    /// The widest layer output (what each activation buffer must hold).
    pub fn max_output(&self) -> usize {
        self.as_slice().iter().skip(1).copied().max().unwrap_or(0) as usize
    }

    /// Payload bytes for these sizes with parameters of `element_type`; saturates
    /// instead of overflowing (a saturated length never matches a real payload).
    pub fn payload_len(&self, element_type: ElementType) -> usize {
        match element_type {
            ElementType::F32 => self.parameter_count().saturating_mul(4),
            ElementType::Int8 => self
                .as_slice()
                .windows(2)
                .map(|pair| int8_layer_len(pair[0] as usize, pair[1] as usize))
                .fold(INT8_INPUT_SCALE_LEN, usize::saturating_add),
        }
    }
}

/// Bytes of an int8 payload before the first layer: the input scale.
const INT8_INPUT_SCALE_LEN: usize = 4;

/// Bytes of one int8 layer in the payload: output scale, bias, multiplier and shift
/// (4 bytes each per output), weights (1 byte each), zero padding to a multiple of 4.
fn int8_layer_len(inputs: usize, outputs: usize) -> usize {
    let weights = inputs.saturating_mul(outputs);
    let padded = weights.saturating_add(3) & !3;
    outputs
        .saturating_mul(12)
        .saturating_add(4)
        .saturating_add(padded)
}

/// One int8 layer's parameters as the bytes in the file (format version 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8LayerBytes<'a> {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// The real value of one step of this layer's output.
    pub output_scale: f32,
    /// `[outputs]` int32 little-endian biases at the accumulator's scale.
    pub bias: &'a [u8],
    /// `[outputs]` int32 little-endian requantization mantissas.
    pub multiplier: &'a [u8],
    /// `[outputs]` int32 little-endian requantization shifts, `0..=62`.
    pub shift: &'a [u8],
    /// `W: [inputs, outputs]` int8, row-major.
    pub weights: &'a [u8],
}

impl<'a> Int8LayerBytes<'a> {
    /// The layer as parameters of the integer kernels, read in place.
    pub fn params(&self) -> crate::quant::QuantLayerParams<'a, u8, [u8; 4]> {
        crate::quant::QuantLayerParams {
            inputs: self.inputs,
            outputs: self.outputs,
            weights: self.weights,
            bias: self.bias.as_chunks().0,
            multiplier: self.multiplier.as_chunks().0,
            shift: self.shift.as_chunks().0,
        }
    }
}

/// Splits one int8 layer off the front of `bytes`: the layer, its padding, the rest.
fn split_int8_layer(
    bytes: &[u8],
    inputs: usize,
    outputs: usize,
) -> Option<(Int8LayerBytes<'_>, &[u8], &[u8])> {
    let (scale, rest) = bytes.split_first_chunk::<4>()?;
    let (bias, rest) = rest.split_at_checked(outputs.checked_mul(4)?)?;
    let (multiplier, rest) = rest.split_at_checked(outputs.checked_mul(4)?)?;
    let (shift, rest) = rest.split_at_checked(outputs.checked_mul(4)?)?;
    let weight_len = inputs.checked_mul(outputs)?;
    let (weights, rest) = rest.split_at_checked(weight_len)?;
    let (padding, rest) = rest.split_at_checked(weight_len.wrapping_neg() & 3)?;
    let layer = Int8LayerBytes {
        inputs,
        outputs,
        output_scale: f32::from_le_bytes(*scale),
        bias,
        multiplier,
        shift,
        weights,
    };
    Some((layer, padding, rest))
}

fn positive_finite(value: f32) -> bool {
    value.is_finite() && value > 0.0
}

/// Checks every quantization parameter of an int8 model's layers (the payload's
/// layer section, whose length already matches the sizes).
fn validate_int8_layers(mut rest: &[u8], sizes: &LayerSizes) -> Result<(), FormatError> {
    for (index, pair) in sizes.as_slice().windows(2).enumerate() {
        let bad = FormatError::BadQuantization { layer: Some(index) };
        let (layer, padding, after) =
            split_int8_layer(rest, pair[0] as usize, pair[1] as usize).ok_or(bad)?;
        let multipliers_ok = layer
            .multiplier
            .as_chunks::<4>()
            .0
            .iter()
            .all(|m| i32::from_le_bytes(*m) >= 0);
        let max_shift = crate::quant::MAX_SHIFT as i32;
        let shifts_ok = layer
            .shift
            .as_chunks::<4>()
            .0
            .iter()
            .all(|s| (0..=max_shift).contains(&i32::from_le_bytes(*s)));
        if !positive_finite(layer.output_scale)
            || !multipliers_ok
            || !shifts_ok
            || padding.iter().any(|&b| b != 0)
        {
            return Err(bad);
        }
        rest = after;
    }
    Ok(())
}

/// One layer's parameters as the bytes in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerBytes<'a> {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `W: [inputs, outputs]`, little-endian, `inputs × outputs × element size` bytes.
    pub weights: &'a [u8],
    /// `b: [outputs]`, little-endian, `outputs × element size` bytes.
    pub bias: &'a [u8],
}

/// The per-feature offsets and scales of a standardized model, read in place from the
/// file (little-endian `f32`, whatever the alignment).
///
/// Input `i` of the first layer is `(x[i] - offset[i]) × scale[i]`
/// ([`crate::network::standardize`]): the subtraction rounded to `f32`, then the
/// product rounded to `f32`, never fused. A validated file's offsets and scales are
/// finite and its scales non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalization<'a> {
    offsets: &'a [[u8; 4]],
    scales: &'a [[u8; 4]],
}

impl<'a> Normalization<'a> {
    /// Offsets and scales as little-endian `f32` bytes held elsewhere (a trainer's
    /// vectors); `None` unless there are as many of each. Not validated: a file's are.
    pub fn from_le_bytes(offsets: &'a [[u8; 4]], scales: &'a [[u8; 4]]) -> Option<Self> {
        (offsets.len() == scales.len()).then_some(Self { offsets, scales })
    }

    /// Offsets then scales, `8 × features` bytes, as the payload holds them.
    fn from_bytes(bytes: &'a [u8]) -> Self {
        let (chunks, _) = bytes.as_chunks::<4>();
        let (offsets, scales) = chunks.split_at(chunks.len() / 2);
        Self { offsets, scales }
    }

    /// Features (the model's inputs).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether there are no features (never, in a validated file).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Feature `i`'s offset (0 past the end).
    pub fn offset(&self, i: usize) -> f32 {
        self.offsets.get(i).map_or(0.0, |b| f32::from_le_bytes(*b))
    }

    /// Feature `i`'s scale (1 past the end).
    pub fn scale(&self, i: usize) -> f32 {
        self.scales.get(i).map_or(1.0, |b| f32::from_le_bytes(*b))
    }

    /// Every `(offset, scale)` pair, feature by feature.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (f32, f32)> + 'a {
        let scales = self.scales;
        self.offsets
            .iter()
            .zip(scales)
            .map(|(o, s)| (f32::from_le_bytes(*o), f32::from_le_bytes(*s)))
    }
}

/// What a model's first layer is given, as a model file states it: the transform
/// from the caller's features to the first layer's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputTransform<'a> {
    /// The features as given.
    Features,
    /// Pixels: `x / 255`, a division in `f32`.
    Pixels,
    /// `(x[i] - offset[i]) × scale[i]`.
    Standardized(Normalization<'a>),
}

impl InputTransform<'_> {
    /// Which transform this is.
    pub fn kind(&self) -> InputKind {
        match self {
            Self::Features => InputKind::Features,
            Self::Pixels => InputKind::Pixels,
            Self::Standardized(_) => InputKind::Standardized,
        }
    }

    /// The first layer's inputs from one feature vector: `out[i]` from `x[i]` for
    /// every `i` both have (the lengths are the caller's to match; feature `i` gets
    /// offset and scale `i`, so a batch goes one row at a time).
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        match self {
            Self::Features => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v;
                }
            }
            Self::Pixels => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v / 255.0;
                }
            }
            Self::Standardized(norm) => {
                for ((o, &v), (offset, scale)) in out.iter_mut().zip(x).zip(norm.pairs()) {
                    *o = crate::network::standardize(v, offset, scale);
                }
            }
        }
    }

    /// [`apply`](Self::apply) to one vector of byte features (`x as f32`): for pixels,
    /// the same bits as [`crate::network::pixel_value`].
    pub fn apply_to_bytes(&self, x: &[u8], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f32::from(v);
        }
        // In place: each input depends only on its own feature.
        let mut i = 0;
        while let Some(o) = out.get_mut(i) {
            let v = *o;
            *o = match self {
                Self::Features => v,
                Self::Pixels => v / 255.0,
                Self::Standardized(norm) => {
                    crate::network::standardize(v, norm.offset(i), norm.scale(i))
                }
            };
            i += 1;
        }
    }
}

/// How an int8 model's input is quantized: a real input `r` is the uint8 `q` with
/// `r = scale × (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputQuantization {
    /// The real value of one step.
    pub scale: f32,
    /// The uint8 value that stands for 0 (`0..=255`; 0 for pixels).
    pub zero_point: i32,
}

/// A model's class names (format version 3), one UTF-8 string per class in class
/// order, read in place. A validated file's names are 1 to [`MAX_CLASS_NAME_LEN`]
/// bytes of UTF-8 without control characters, exactly one per class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassNames<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> ClassNames<'a> {
    /// Classes named.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no names (never, in a validated file).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names, in class order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.bytes;
        core::iter::from_fn(move || {
            let (&len, after) = rest.split_first()?;
            let (name, after) = after.split_at_checked(usize::from(len))?;
            rest = after;
            Some(core::str::from_utf8(name).unwrap_or_default())
        })
    }

    /// Class `class`'s name.
    pub fn get(&self, class: usize) -> Option<&'a str> {
        self.iter().nth(class)
    }
}

/// Checks a class-name section: exactly `classes` names, each valid.
fn validate_class_names(mut rest: &[u8], classes: usize) -> Result<(), FormatError> {
    for class in 0..classes {
        let bad = |problem| FormatError::BadClassName { class, problem };
        let (&len, after) = rest.split_first().ok_or(bad(ClassNameProblem::Missing))?;
        let len = usize::from(len);
        if len == 0 || len > MAX_CLASS_NAME_LEN {
            return Err(bad(ClassNameProblem::Length));
        }
        let (name, after) = after
            .split_at_checked(len)
            .ok_or(bad(ClassNameProblem::Missing))?;
        check_name_text(name).map_err(bad)?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(FormatError::BadClassName {
            class: classes,
            problem: ClassNameProblem::TrailingBytes,
        });
    }
    Ok(())
}

/// Whether a class name is UTF-8 ([`ClassNameProblem::NotUtf8`] otherwise) without a
/// control character, C0, DEL or C1 ([`ClassNameProblem::ControlCharacter`]): what
/// `core::str::from_utf8` and `char::is_control` decide, in that order of precedence,
/// in one loop a fraction the size of theirs (every device that loads a model links it).
fn check_name_text(name: &[u8]) -> Result<(), ClassNameProblem> {
    let mut control = false;
    let mut i = 0;
    while let Some(&lead) = name.get(i) {
        // The sequence's length and the lead byte's payload bits; 0 for a byte that
        // cannot start one (a continuation byte, or above 0xF7).
        let (len, mut point) = match lead {
            0x00..=0x7F => (1, u32::from(lead)),
            0xC0..=0xDF => (2, u32::from(lead & 0x1F)),
            0xE0..=0xEF => (3, u32::from(lead & 0x0F)),
            0xF0..=0xF7 => (4, u32::from(lead & 0x07)),
            _ => return Err(ClassNameProblem::NotUtf8),
        };
        for k in 1..len {
            match name.get(i + k) {
                Some(&next) if next & 0xC0 == 0x80 => point = (point << 6) | u32::from(next & 0x3F),
                _ => return Err(ClassNameProblem::NotUtf8),
            }
        }
        // Overlong forms, surrogates and points past U+10FFFF are not UTF-8.
        let smallest = [0, 0, 0x80, 0x800, 0x1_0000][len];
        if point < smallest || (0xD800..=0xDFFF).contains(&point) || point > 0x10_FFFF {
            return Err(ClassNameProblem::NotUtf8);
        }
        control |= point < 0x20 || (0x7F..=0x9F).contains(&point);
        i += len;
    }
    if control {
        return Err(ClassNameProblem::ControlCharacter);
    }
    Ok(())
}

/// The lengths of a payload's sections, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sections {
    normalization: usize,
    input_quantization: usize,
    layers: usize,
    names: usize,
}

impl Sections {
    // Inlined, so that a reader of one element type keeps only its arm.
    #[inline(always)]
    fn new(
        version: u16,
        element_type: ElementType,
        input: InputKind,
        sizes: &LayerSizes,
        names: usize,
    ) -> Self {
        let inputs = sizes.as_slice().first().copied().unwrap_or(0) as usize;
        let input_quantization = match (element_type, version) {
            (ElementType::F32, _) => 0,
            (ElementType::Int8, ..=2) => INT8_INPUT_SCALE_LEN,
            (ElementType::Int8, _) => INT8_INPUT_SCALE_LEN + 4,
        };
        let parameters = sizes.payload_len(element_type);
        Self {
            normalization: match input {
                InputKind::Standardized => inputs.saturating_mul(8),
                _ => 0,
            },
            input_quantization,
            layers: match element_type {
                ElementType::Int8 => parameters.saturating_sub(INT8_INPUT_SCALE_LEN),
                ElementType::F32 => parameters,
            },
            names,
        }
    }

    fn total(&self) -> usize {
        self.normalization
            .saturating_add(self.input_quantization)
            .saturating_add(self.layers)
            .saturating_add(self.names)
    }
}

/// A validated model file, borrowing its payload in place.
#[derive(Clone, Copy, Debug)]
pub struct ModelView<'a> {
    version: u16,
    element_type: ElementType,
    input: InputKind,
    sizes: LayerSizes,
    payload_crc: u32,
    payload: &'a [u8],
    normalization: &'a [u8],
    input_quantization: &'a [u8],
    layers: &'a [u8],
    names: &'a [u8],
}

/// Reads one postcard value from the front of `bytes`.
fn take<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), FormatError> {
    postcard::take_from_bytes(bytes).map_err(|error| match error {
        postcard::Error::DeserializeUnexpectedEnd => FormatError::TruncatedHeader,
        _ => FormatError::MalformedHeader,
    })
}

impl<'a> ModelView<'a> {
    /// Validates a whole model file and borrows its payload.
    ///
    /// Checks, in order: magic, version, element type, input transform (version 3),
    /// layer sizes, the class-name section's length (version 3), padding, payload
    /// length against the sizes, that the payload is all there, nothing after it, the
    /// CRC-32, and then the payload's sections in file order: the normalization, the
    /// int8 quantization, the class names. Never panics; never copies the payload.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FormatError> {
        // `None`: every element type is read, so this is always `Ok(view)`.
        Self::decode_inner(bytes, None)?.map_err(|_| FormatError::MalformedHeader)
    }

    /// [`decode`](Self::decode) for a reader of one element type: a file of another
    /// type is `Ok(Err(found))` as soon as its magic, version and element type are
    /// read; a file of this type gets every check of `decode`.
    ///
    /// A device that runs `f32` models refuses an int8 one this way, and never links
    /// the int8 layout and parameter checks it has no use for.
    pub fn decode_element(
        bytes: &'a [u8],
        expected: ElementType,
    ) -> Result<Result<Self, ElementType>, FormatError> {
        Self::decode_inner(bytes, Some(expected))
    }

    fn decode_inner(
        bytes: &'a [u8],
        wanted: Option<ElementType>,
    ) -> Result<Result<Self, ElementType>, FormatError> {
        let (magic, rest) = match bytes {
            [a, b, c, d, rest @ ..] => ([*a, *b, *c, *d], rest),
            _ => return Err(FormatError::TruncatedHeader),
        };
        if magic != MAGIC {
            return Err(FormatError::BadMagic { found: magic });
        }
        let (version, rest) = take::<u16>(rest)?;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::UnsupportedVersion { found: version });
        }
        let (code, rest) = take::<u8>(rest)?;
        let element_type = ElementType::from_code(code, version)
            .ok_or(FormatError::UnknownElementType { found: code })?;
        if wanted.is_some_and(|wanted| wanted != element_type) {
            return Ok(Err(element_type));
        }
        let (input, rest) = if version >= METADATA_VERSION {
            let (code, rest) = take::<u8>(rest)?;
            let input =
                InputKind::from_code(code).ok_or(FormatError::UnknownInputKind { found: code })?;
            (input, rest)
        } else {
            (InputKind::Pixels, rest)
        };
        let (count, mut rest) = take::<usize>(rest)?;
        if count < 2 {
            return Err(FormatError::NoLayers);
        }
        if count > MAX_LAYERS + 1 {
            return Err(FormatError::TooManyLayers { found: count - 1 });
        }
        let mut raw_sizes = [0u32; MAX_LAYERS + 1];
        for slot in raw_sizes.iter_mut().take(count) {
            (*slot, rest) = take::<u32>(rest)?;
        }
        let sizes = LayerSizes::new(raw_sizes.get(..count).unwrap_or_default())?;
        let (names_len, rest) = if version >= METADATA_VERSION {
            take::<usize>(rest)?
        } else {
            (0, rest)
        };
        if names_len > MAX_CLASS_NAMES_LEN {
            return Err(FormatError::ClassNamesTooLong { found: names_len });
        }
        let (crc_bytes, rest) = take::<[u8; 4]>(rest)?;
        let payload_crc = u32::from_le_bytes(crc_bytes);
        let (padding, rest) = take::<&[u8]>(rest)?;
        if padding.len() >= PAYLOAD_ALIGN || padding.iter().any(|&b| b != 0) {
            return Err(FormatError::BadPadding);
        }
        let (declared, rest) = take::<usize>(rest)?;
        let sections = Sections::new(version, element_type, input, &sizes, names_len);
        let expected = sections.total();
        if declared != expected {
            return Err(FormatError::PayloadLengthMismatch {
                expected,
                found: declared,
            });
        }
        let (payload, trailing) = match rest.split_at_checked(declared) {
            Some(split) => split,
            None => {
                return Err(FormatError::TruncatedPayload {
                    expected: declared,
                    available: rest.len(),
                })
            }
        };
        if !trailing.is_empty() {
            return Err(FormatError::TrailingBytes {
                count: trailing.len(),
            });
        }
        let computed = crc32(payload);
        if computed != payload_crc {
            return Err(FormatError::ChecksumMismatch {
                expected: payload_crc,
                computed,
            });
        }
        // The lengths add up to the payload's (checked above): these splits succeed.
        let split = |bytes: &'a [u8], at: usize| bytes.split_at_checked(at).unwrap_or_default();
        let (normalization, rest) = split(payload, sections.normalization);
        let (input_quantization, rest) = split(rest, sections.input_quantization);
        let (layers, names) = split(rest, sections.layers);
        let view = Self {
            version,
            element_type,
            input,
            sizes,
            payload_crc,
            payload,
            normalization,
            input_quantization,
            layers,
            names,
        };
        if let InputTransform::Standardized(norm) = view.input_transform() {
            for (feature, (offset, scale)) in norm.pairs().enumerate() {
                if !offset.is_finite() || !scale.is_finite() || scale == 0.0 {
                    return Err(FormatError::BadNormalization { feature });
                }
            }
        }
        // An f32 file has no quantization section; testing the type first also lets a
        // reader of f32 models drop these checks (`decode_element`).
        if let Some(quantization) = view
            .input_quantization()
            .filter(|_| element_type == ElementType::Int8)
        {
            let zero_points = match input {
                InputKind::Pixels => 0..=0,
                _ => 0..=255,
            };
            if !positive_finite(quantization.scale)
                || !zero_points.contains(&quantization.zero_point)
            {
                return Err(FormatError::BadQuantization { layer: None });
            }
            validate_int8_layers(layers, &sizes)?;
        }
        if !names.is_empty() {
            validate_class_names(
                names,
                sizes.as_slice().last().copied().unwrap_or(0) as usize,
            )?;
        }
        Ok(Ok(view))
    }

    /// The file's format version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// How the parameters are stored.
    pub fn element_type(&self) -> ElementType {
        self.element_type
    }

    /// What the first layer is given (pixels for format versions 1 and 2).
    pub fn input_kind(&self) -> InputKind {
        self.input
    }

    /// The transform from the caller's features to the first layer's inputs, with a
    /// standardized model's offsets and scales read in place.
    pub fn input_transform(&self) -> InputTransform<'a> {
        match self.input {
            InputKind::Features => InputTransform::Features,
            InputKind::Pixels => InputTransform::Pixels,
            InputKind::Standardized => {
                InputTransform::Standardized(Normalization::from_bytes(self.normalization))
            }
        }
    }

    /// The class names, if the file has them (format version 3).
    pub fn class_names(&self) -> Option<ClassNames<'a>> {
        if self.names.is_empty() {
            return None;
        }
        Some(ClassNames {
            bytes: self.names,
            count: self.sizes.as_slice().last().copied().unwrap_or(0) as usize,
        })
    }

    /// Layer sizes, input first, logits last (e.g. `[784, 100, 200, 10]`).
    pub fn layer_sizes(&self) -> &[u32] {
        self.sizes.as_slice()
    }

    /// The layer sizes with their derived figures (parameters, MACs, widest layer).
    pub fn sizes(&self) -> &LayerSizes {
        &self.sizes
    }

    /// The CRC-32 of the payload, as stored (and verified).
    pub fn payload_crc(&self) -> u32 {
        self.payload_crc
    }

    /// The whole payload, borrowed from the file.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The layers' parameters of an f32 model, in order, borrowed from the file
    /// (nothing for an int8 model: see [`Self::int8_layers`]).
    ///
    /// One layer per pair of layer sizes, so the count is known before the first is
    /// read (an [`ExactSizeIterator`]: the layer loop, [`crate::network::forward`],
    /// needs it). [`Self::decode`] checked the payload's length against the sizes, so
    /// every layer has its parameters; were one cut short, it would come with empty
    /// slices, which the layer loop refuses, rather than end the iteration early.
    pub fn layers(&self) -> impl ExactSizeIterator<Item = LayerBytes<'a>> + '_ {
        let (sizes, mut rest) = match self.element_type {
            ElementType::F32 => (self.sizes.as_slice(), self.layers),
            ElementType::Int8 => (&[][..], &[][..]),
        };
        sizes.windows(2).map(move |pair| {
            let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
            let split = || {
                let (weights, after) =
                    rest.split_at_checked(inputs.checked_mul(outputs)?.checked_mul(4)?)?;
                let (bias, after) = after.split_at_checked(outputs.checked_mul(4)?)?;
                Some((weights, bias, after))
            };
            let (weights, bias, after) = split().unwrap_or_default();
            rest = after;
            LayerBytes {
                inputs,
                outputs,
                weights,
                bias,
            }
        })
    }
}

impl<'a> ModelView<'a> {
    /// The real value of one step of an int8 model's input (`None` for f32 models).
    pub fn input_scale(&self) -> Option<f32> {
        self.input_quantization().map(|q| q.scale)
    }

    /// How an int8 model's input is quantized (`None` for f32 models); the zero point
    /// is 0 in format version 2.
    pub fn input_quantization(&self) -> Option<InputQuantization> {
        let (scale, rest) = self.input_quantization.split_first_chunk::<4>()?;
        let zero_point = rest
            .first_chunk::<4>()
            .map_or(0, |z| i32::from_le_bytes(*z));
        Some(InputQuantization {
            scale: f32::from_le_bytes(*scale),
            zero_point,
        })
    }

    /// The layers' parameters of an int8 model, in order, borrowed from the file
    /// (nothing for an f32 model: see [`Self::layers`]).
    ///
    /// One layer per pair of layer sizes, an [`ExactSizeIterator`] as
    /// [`Self::layers`] is: were a layer cut short (a validated view never has one), it
    /// would come with empty slices, which the layer loop refuses.
    pub fn int8_layers(&self) -> impl ExactSizeIterator<Item = Int8LayerBytes<'a>> + '_ {
        let (sizes, mut rest) = match self.element_type {
            ElementType::Int8 => (self.sizes.as_slice(), self.layers),
            ElementType::F32 => (&[][..], &[][..]),
        };
        sizes.windows(2).map(move |pair| {
            let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
            match split_int8_layer(rest, inputs, outputs) {
                Some((layer, _padding, after)) => {
                    rest = after;
                    layer
                }
                None => {
                    rest = &[];
                    Int8LayerBytes {
                        inputs,
                        outputs,
                        output_scale: 0.0,
                        bias: &[],
                        multiplier: &[],
                        shift: &[],
                        weights: &[],
                    }
                }
            }
        })
    }
}

impl<'a> LayerBytes<'a> {
    /// The layer as parameters of the f32 kernels, read in place whatever the
    /// alignment (use `align_to` yourself for a faster aligned `f32` path).
    pub fn params(&self) -> crate::network::LayerParams<'a, [u8; 4]> {
        crate::network::LayerParams {
            inputs: self.inputs,
            outputs: self.outputs,
            weights: self.weights.as_chunks().0,
            bias: self.bias.as_chunks().0,
        }
    }
}

/// The header fields before the padding, as serialized. Versions 1 and 2 have no
/// `input` and `names_len` (`None` serializes as nothing here: see [`Header::write`]).
struct Header<'a> {
    version: u16,
    element_type: u8,
    input: Option<u8>,
    layer_sizes: &'a [u32],
    names_len: Option<usize>,
    payload_crc: [u8; 4],
}

impl Header<'_> {
    /// Postcard-encodes the header's fields one after the other into `out` (or only
    /// counts them, with `out` empty and `count_only`), returning the bytes used.
    fn write(&self, out: &mut [u8], count_only: bool) -> Result<usize, FormatError> {
        let mut at = 0;
        let mut put = |value: &dyn erased::Put| -> Result<(), FormatError> {
            let used = if count_only {
                value.size()
            } else {
                value.put(out.get_mut(at..).unwrap_or_default())?
            };
            at += used;
            Ok(())
        };
        put(&MAGIC)?;
        put(&self.version)?;
        put(&self.element_type)?;
        if let Some(input) = &self.input {
            put(input)?;
        }
        put(&self.layer_sizes)?;
        if let Some(names_len) = &self.names_len {
            put(names_len)?;
        }
        put(&self.payload_crc)?;
        Ok(at)
    }
}

/// Postcard encoding of one header field at a time, through one object-safe trait.
mod erased {
    use super::FormatError;
    use serde::Serialize;

    pub(super) trait Put {
        fn size(&self) -> usize;
        fn put(&self, out: &mut [u8]) -> Result<usize, FormatError>;
    }

    impl<T: Serialize> Put for T {
        fn size(&self) -> usize {
            postcard::serialize_with_flavor(self, postcard::ser_flavors::Size::default())
                .unwrap_or(0)
        }

        fn put(&self, out: &mut [u8]) -> Result<usize, FormatError> {
            let available = out.len();
            postcard::to_slice(self, out)
                .map(|used| used.len())
                .map_err(|_| FormatError::BufferTooSmall {
                    needed: self.size(),
                    available,
                })
        }
    }
}

fn varint_len(value: usize) -> usize {
    let mut len = 1;
    let mut rest = value >> 7;
    while rest != 0 {
        len += 1;
        rest >>= 7;
    }
    len
}

/// Payload bytes for an `int8` model with these layer sizes in format version 2 (the
/// input scale, then the layers).
pub fn int8_payload_len(layer_sizes: &[u32]) -> Result<usize, FormatError> {
    Ok(LayerSizes::new(layer_sizes)?.payload_len(ElementType::Int8))
}

/// Payload bytes for an `f32` model with these layer sizes.
pub fn f32_payload_len(layer_sizes: &[u32]) -> Result<usize, FormatError> {
    Ok(LayerSizes::new(layer_sizes)?.payload_len(ElementType::F32))
}

/// Bytes [`encode`] writes for these layer sizes and a payload of `payload_len` bytes.
pub fn encoded_len(layer_sizes: &[u32], payload_len: usize) -> Result<usize, FormatError> {
    LayerSizes::new(layer_sizes)?;
    let header = Header {
        version: F32_VERSION,
        element_type: 0,
        input: None,
        layer_sizes,
        names_len: None,
        payload_crc: [0; 4],
    };
    Ok(layout(&header, payload_len)?.total)
}

/// Where the payload starts and how much padding puts it there.
struct Layout {
    header: usize,
    padding: usize,
    /// Where the payload's first byte goes.
    payload: usize,
    total: usize,
}

fn layout(header: &Header<'_>, payload_len: usize) -> Result<Layout, FormatError> {
    let header_len = header.write(&mut [], true)?;
    // One byte for the padding's length (always < 128), then the payload's length.
    let unpadded = header_len + 1 + varint_len(payload_len);
    let padding = (PAYLOAD_ALIGN - unpadded % PAYLOAD_ALIGN) % PAYLOAD_ALIGN;
    Ok(Layout {
        header: header_len,
        padding,
        payload: unpadded + padding,
        total: unpadded + padding + payload_len,
    })
}

/// The input of a model being written: how its first layer's inputs come from the
/// caller's features ([`InputTransform`], with the offsets and scales as `f32`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputSpec<'p> {
    /// The features as given.
    Features,
    /// Pixels, `x / 255`.
    Pixels,
    /// `(x[i] - offsets[i]) × scales[i]`: one offset and one scale per input.
    Standardized {
        /// Subtracted from each feature.
        offsets: &'p [f32],
        /// Then multiplied with it.
        scales: &'p [f32],
    },
}

impl InputSpec<'_> {
    /// Which transform this is.
    pub fn kind(&self) -> InputKind {
        match self {
            Self::Features => InputKind::Features,
            Self::Pixels => InputKind::Pixels,
            Self::Standardized { .. } => InputKind::Standardized,
        }
    }
}

/// Everything a model file holds, for [`encode_model`].
#[derive(Clone, Copy, Debug)]
pub struct ModelParts<'p> {
    /// Layer sizes, input first.
    pub layer_sizes: &'p [u32],
    /// How the parameters are stored.
    pub element_type: ElementType,
    /// The parameters as format version 2 lays them out for `element_type` (f32: each
    /// layer's `W` then `b`; int8: the input scale, then the layers).
    pub parameters: &'p [u8],
    /// The input transform.
    pub input: InputSpec<'p>,
    /// An int8 model's input zero point (`0..=255`; 0 for pixels). Ignored for f32.
    pub input_zero_point: i32,
    /// One name per class, or none.
    pub class_names: Option<&'p [&'p str]>,
}

impl ModelParts<'_> {
    /// The oldest format version that holds these parts.
    pub fn version(&self) -> u16 {
        let plain = self.input == InputSpec::Pixels
            && self.class_names.is_none()
            && (self.element_type == ElementType::F32 || self.input_zero_point == 0);
        if plain {
            self.element_type.version()
        } else {
            METADATA_VERSION
        }
    }

    fn names_len(&self) -> usize {
        self.class_names
            .unwrap_or_default()
            .iter()
            .map(|n| n.len().saturating_add(1))
            .fold(0, usize::saturating_add)
    }

    /// Checks everything [`ModelView::decode`] would, before anything is written.
    fn check(&self) -> Result<(LayerSizes, Sections), FormatError> {
        let sizes = LayerSizes::new(self.layer_sizes)?;
        let version = self.version();
        let sections = Sections::new(
            version,
            self.element_type,
            self.input.kind(),
            &sizes,
            self.names_len(),
        );
        let expected = sizes.payload_len(self.element_type);
        if self.parameters.len() != expected {
            return Err(FormatError::PayloadLengthMismatch {
                expected,
                found: self.parameters.len(),
            });
        }
        let inputs = self.layer_sizes.first().copied().unwrap_or(0) as usize;
        if let InputSpec::Standardized { offsets, scales } = self.input {
            let pairs = offsets.iter().zip(scales);
            for (feature, (offset, scale)) in pairs.enumerate() {
                if !offset.is_finite() || !scale.is_finite() || *scale == 0.0 {
                    return Err(FormatError::BadNormalization { feature });
                }
            }
            if offsets.len() != inputs || scales.len() != inputs {
                return Err(FormatError::BadNormalization {
                    feature: offsets.len().min(scales.len()).min(inputs),
                });
            }
        }
        if self.element_type == ElementType::Int8 {
            let allowed = match self.input {
                InputSpec::Pixels => 0..=0,
                _ => 0..=255,
            };
            if !allowed.contains(&self.input_zero_point) {
                return Err(FormatError::BadQuantization { layer: None });
            }
        }
        if let Some(names) = self.class_names {
            let classes = self.layer_sizes.last().copied().unwrap_or(0) as usize;
            for (class, name) in names.iter().enumerate() {
                let problem = if name.is_empty() || name.len() > MAX_CLASS_NAME_LEN {
                    Some(ClassNameProblem::Length)
                } else if name.chars().any(char::is_control) {
                    Some(ClassNameProblem::ControlCharacter)
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(FormatError::BadClassName { class, problem });
                }
            }
            if names.len() < classes {
                return Err(FormatError::BadClassName {
                    class: names.len(),
                    problem: ClassNameProblem::Missing,
                });
            }
            if names.len() > classes {
                return Err(FormatError::BadClassName {
                    class: classes,
                    problem: ClassNameProblem::TrailingBytes,
                });
            }
            if sections.names > MAX_CLASS_NAMES_LEN {
                return Err(FormatError::ClassNamesTooLong {
                    found: sections.names,
                });
            }
        }
        Ok((sizes, sections))
    }

    fn header(&self, sections: &Sections, payload_crc: [u8; 4]) -> Header<'_> {
        let version = self.version();
        let v3 = version >= METADATA_VERSION;
        Header {
            version,
            element_type: self.element_type.code(),
            input: v3.then_some(self.input.kind().code()),
            layer_sizes: self.layer_sizes,
            names_len: v3.then_some(sections.names),
            payload_crc,
        }
    }
}

/// Bytes [`encode_model`] writes for `parts` (an error for parts it would refuse).
pub fn encoded_model_len(parts: &ModelParts<'_>) -> Result<usize, FormatError> {
    let (_, sections) = parts.check()?;
    Ok(layout(&parts.header(&sections, [0; 4]), sections.total())?.total)
}

/// Writes a model file with every part a file can hold into `out` and returns the
/// number of bytes written ([`encoded_model_len`] tells how many beforehand).
///
/// The file gets the oldest format version that holds the parts
/// ([`ModelParts::version`]): version 1 or 2 for a model of pixels without class names
/// (and, for int8, a zero point of 0), version 3 otherwise. Refuses, with the error
/// [`ModelView::decode`] would give the file, a parameter section whose length does
/// not match the sizes, a non-finite offset or scale or a zero scale, a zero point out
/// of range, and class names that are empty, longer than [`MAX_CLASS_NAME_LEN`] bytes,
/// hold a control character, are not one per class or together exceed
/// [`MAX_CLASS_NAMES_LEN`]. The parameters' own values (an int8 model's scales,
/// multipliers and shifts) are not checked here: the decoder checks them.
pub fn encode_model(parts: &ModelParts<'_>, out: &mut [u8]) -> Result<usize, FormatError> {
    let (_, sections) = parts.check()?;
    let payload_len = sections.total();
    let provisional = layout(&parts.header(&sections, [0; 4]), payload_len)?;
    let total = provisional.total;
    let available = out.len();
    let too_small = FormatError::BufferTooSmall {
        needed: total,
        available,
    };
    let file = out.get_mut(..total).ok_or(too_small)?;
    // The payload first, in its final place: the header needs its CRC.
    let (head, payload) = file.split_at_mut(provisional.payload);
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(slot) = payload.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    if let InputSpec::Standardized { offsets, scales } = parts.input {
        for value in offsets.iter().chain(scales) {
            put(&value.to_le_bytes());
        }
    }
    let parameters = match parts.element_type {
        ElementType::Int8 => {
            let (scale, layers) = parts.parameters.split_at(INT8_INPUT_SCALE_LEN);
            put(scale);
            if sections.input_quantization > INT8_INPUT_SCALE_LEN {
                put(&parts.input_zero_point.to_le_bytes());
            }
            layers
        }
        ElementType::F32 => parts.parameters,
    };
    put(parameters);
    for name in parts.class_names.unwrap_or_default() {
        // `check` bounded every name's length by MAX_CLASS_NAME_LEN.
        put(&[name.len() as u8]);
        put(name.as_bytes());
    }
    debug_assert_eq!(at, payload_len);
    let crc = crc32(payload).to_le_bytes();
    let header = parts.header(&sections, crc);
    let used = header.write(head, false)?;
    debug_assert_eq!(used, provisional.header);
    let rest = head.get_mut(used..).unwrap_or_default();
    // The padding's length, its zero bytes, then the payload's length as a varint.
    let mut fields = [0u8; 1 + PAYLOAD_ALIGN + 10];
    let (first, lengths) = fields.split_at_mut(1);
    first[0] = provisional.padding as u8;
    let tail = lengths.get_mut(provisional.padding..).unwrap_or_default();
    let varint = postcard::to_slice(&payload_len, tail)
        .map_err(|_| too_small)?
        .len();
    let fields = fields
        .get(..1 + provisional.padding + varint)
        .unwrap_or_default();
    rest.get_mut(..fields.len())
        .ok_or(too_small)?
        .copy_from_slice(fields);
    Ok(total)
}

/// Writes a model file of pixels without class names into `out` and returns the
/// number of bytes written ([`encoded_len`] tells how many beforehand).
///
/// `payload` is the parameters in file order, laid out as `docs/FORMAT.md` says for
/// `element_type` (for f32: each layer's `W` then `b`); its length must match the layer
/// sizes. The file gets the oldest format version that can hold `element_type`
/// (1 or 2); [`encode_model`] writes the other parts a file can hold.
pub fn encode(
    layer_sizes: &[u32],
    element_type: ElementType,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, FormatError> {
    encode_model(
        &ModelParts {
            layer_sizes,
            element_type,
            parameters: payload,
            input: InputSpec::Pixels,
            input_zero_point: 0,
            class_names: None,
        },
        out,
    )
}

/// CRC-32 (IEEE 802.3, reflected, polynomial `0xEDB88320`, as zlib and PNG use).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        let index = usize::from((crc as u8) ^ byte);
        crc = CRC_TABLE.get(index).copied().unwrap_or(0) ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::{check_name_text, ClassNameProblem};

    /// What the core's own UTF-8 decoder and `char::is_control` decide.
    fn reference(bytes: &[u8]) -> Result<(), ClassNameProblem> {
        let text = core::str::from_utf8(bytes).map_err(|_| ClassNameProblem::NotUtf8)?;
        if text.chars().any(char::is_control) {
            return Err(ClassNameProblem::ControlCharacter);
        }
        Ok(())
    }

    #[test]
    fn name_text_check_agrees_with_the_core_on_every_short_sequence() {
        // Every sequence of one and two bytes, every three-byte one that starts with a
        // lead byte or a byte that cannot lead, and every four-byte one that starts
        // where four-byte sequences do, after a printable and a control prefix.
        for a in 0..=255u8 {
            assert_eq!(check_name_text(&[a]), reference(&[a]), "{a:02x}");
            for b in 0..=255u8 {
                assert_eq!(
                    check_name_text(&[a, b]),
                    reference(&[a, b]),
                    "{a:02x} {b:02x}"
                );
                if a >= 0x80 {
                    for c in 0..=255u8 {
                        let bytes = [a, b, c];
                        assert_eq!(check_name_text(&bytes), reference(&bytes), "{bytes:02x?}");
                    }
                }
            }
        }
        for a in 0xF0..=0xF8u8 {
            for b in 0x80..=0xC0u8 {
                for c in [0x7F, 0x80, 0xBF, 0xC0] {
                    for d in [0x00, 0x7F, 0x80, 0x9F, 0xBF, 0xC0] {
                        for prefix in [&b"x"[..], &[0x1F], &[0xC2, 0x85]] {
                            let mut bytes = [0u8; 7];
                            bytes[..prefix.len()].copy_from_slice(prefix);
                            bytes[prefix.len()..prefix.len() + 4].copy_from_slice(&[a, b, c, d]);
                            let bytes = &bytes[..prefix.len() + 4];
                            assert_eq!(check_name_text(bytes), reference(bytes), "{bytes:02x?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_control_character_before_bad_utf8_is_reported_as_bad_utf8() {
        assert_eq!(check_name_text(b"a\nb\xff"), Err(ClassNameProblem::NotUtf8));
        assert_eq!(
            check_name_text(b"a\nb"),
            Err(ClassNameProblem::ControlCharacter)
        );
        assert_eq!(check_name_text("T-shirt/top".as_bytes()), Ok(()));
        assert_eq!(check_name_text("café \u{10FFFF}".as_bytes()), Ok(()));
    }
}
