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

use serde::Serialize;

/// The four bytes every model file starts with.
pub const MAGIC: [u8; 4] = *b"MLPW";

/// The newest format version this crate reads (and writes, for int8 models).
///
/// Version 1 holds f32 models; version 2 added int8 models. The writer uses the oldest
/// version that can express a model, so f32 models remain version-1 files that every
/// reader understands.
pub const FORMAT_VERSION: u16 = 2;

/// The version an f32 model is written with.
pub const F32_VERSION: u16 = 1;

/// The version an int8 model is written with.
pub const INT8_VERSION: u16 = 2;

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

    /// The format version a model of this type is written with.
    pub const fn version(self) -> u16 {
        match self {
            Self::F32 => F32_VERSION,
            Self::Int8 => INT8_VERSION,
        }
    }
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
    /// An int8 model's quantization parameters are invalid: a scale that is not a
    /// positive finite number, a negative multiplier, a shift above 62, or non-zero
    /// padding. `layer` is `None` for the input scale.
    BadQuantization {
        /// The layer (from 0) with the bad parameter, `None` for the input scale.
        layer: Option<usize>,
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
                for byte in found {
                    write!(f, " {byte:02x}")?;
                }
                f.write_str(", expected \"MLPW\"")
            }
            Self::UnsupportedVersion { found } => write!(
                f,
                "model format version {found} is not supported (this build reads up to {FORMAT_VERSION})"
            ),
            Self::UnknownElementType { found } => write!(f, "unknown element type {found}"),
            Self::MalformedHeader => f.write_str("malformed model header"),
            Self::NoLayers => f.write_str("the model has no layers"),
            Self::TooManyLayers { found } => {
                write!(f, "the model has {found} layers, more than the {MAX_LAYERS} allowed")
            }
            Self::BadLayerSize { index, size } => {
                write!(f, "layer size {index} is {size}, outside 1..={MAX_WIDTH}")
            }
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
            Self::BadQuantization { layer: None } => f.write_str("the model's input scale is invalid"),
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

/// Checks every quantization parameter of an int8 payload whose length already matches.
fn validate_int8(payload: &[u8], sizes: &LayerSizes) -> Result<(), FormatError> {
    let bad_input = FormatError::BadQuantization { layer: None };
    let (input_scale, mut rest) = payload.split_first_chunk::<4>().ok_or(bad_input)?;
    if !positive_finite(f32::from_le_bytes(*input_scale)) {
        return Err(bad_input);
    }
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

/// A validated model file, borrowing its payload in place.
#[derive(Clone, Copy, Debug)]
pub struct ModelView<'a> {
    version: u16,
    element_type: ElementType,
    sizes: LayerSizes,
    payload_crc: u32,
    payload: &'a [u8],
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
    /// Checks, in order: magic, version, element type, layer sizes, padding, payload
    /// length against the sizes, that the payload is all there, nothing after it, and
    /// the CRC-32. Never panics; never copies the payload.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FormatError> {
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
        let (crc_bytes, rest) = take::<[u8; 4]>(rest)?;
        let payload_crc = u32::from_le_bytes(crc_bytes);
        let (padding, rest) = take::<&[u8]>(rest)?;
        if padding.len() >= PAYLOAD_ALIGN || padding.iter().any(|&b| b != 0) {
            return Err(FormatError::BadPadding);
        }
        let (declared, rest) = take::<usize>(rest)?;
        let expected = sizes.payload_len(element_type);
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
        if element_type == ElementType::Int8 {
            validate_int8(payload, &sizes)?;
        }
        Ok(Self {
            version,
            element_type,
            sizes,
            payload_crc,
            payload,
        })
    }

    /// The file's format version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// How the parameters are stored.
    pub fn element_type(&self) -> ElementType {
        self.element_type
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
            ElementType::F32 => (self.sizes.as_slice(), self.payload),
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
        match self.element_type {
            ElementType::Int8 => self
                .payload
                .first_chunk::<4>()
                .map(|b| f32::from_le_bytes(*b)),
            ElementType::F32 => None,
        }
    }

    /// The layers' parameters of an int8 model, in order, borrowed from the file
    /// (nothing for an f32 model: see [`Self::layers`]).
    ///
    /// One layer per pair of layer sizes, an [`ExactSizeIterator`] as
    /// [`Self::layers`] is: were a layer cut short (a validated view never has one), it
    /// would come with empty slices, which the layer loop refuses.
    pub fn int8_layers(&self) -> impl ExactSizeIterator<Item = Int8LayerBytes<'a>> + '_ {
        let (sizes, mut rest) = match self.element_type {
            ElementType::Int8 => (
                self.sizes.as_slice(),
                self.payload.get(INT8_INPUT_SCALE_LEN..).unwrap_or_default(),
            ),
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

/// The header fields before the padding, as serialized (versions 1 and 2 share it).
#[derive(Serialize)]
struct Header<'a> {
    magic: [u8; 4],
    version: u16,
    element_type: u8,
    layer_sizes: &'a [u32],
    payload_crc: [u8; 4],
}

/// The whole file as serialized: postcard writes a struct as its fields one after the
/// other, so this is the header, then the padding, then the payload.
#[derive(Serialize)]
struct File<'a> {
    header: Header<'a>,
    padding: &'a [u8],
    payload: &'a [u8],
}

/// Where the payload starts and how much padding puts it there.
struct Layout {
    padding: usize,
    total: usize,
}

fn layout(header: &Header<'_>, payload_len: usize) -> Result<Layout, FormatError> {
    let header_len =
        postcard::serialize_with_flavor(header, postcard::ser_flavors::Size::default())
            .map_err(|_| FormatError::MalformedHeader)?;
    // One byte for the padding's length (always < 128), then the payload's length.
    let unpadded = header_len + 1 + varint_len(payload_len);
    let padding = (PAYLOAD_ALIGN - unpadded % PAYLOAD_ALIGN) % PAYLOAD_ALIGN;
    Ok(Layout {
        padding,
        total: unpadded + padding + payload_len,
    })
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

/// Payload bytes for an `int8` model with these layer sizes.
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
        magic: MAGIC,
        version: F32_VERSION,
        element_type: 0,
        layer_sizes,
        payload_crc: [0; 4],
    };
    Ok(layout(&header, payload_len)?.total)
}

/// Writes a model file into `out` and returns the number of bytes written
/// ([`encoded_len`] tells how many beforehand).
///
/// `payload` is the parameters in file order, laid out as `docs/FORMAT.md` says for
/// `element_type` (for f32: each layer's `W` then `b`); its length must match the layer
/// sizes. The file gets the oldest format version that can hold `element_type`.
pub fn encode(
    layer_sizes: &[u32],
    element_type: ElementType,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, FormatError> {
    let sizes = LayerSizes::new(layer_sizes)?;
    let expected = sizes.payload_len(element_type);
    if payload.len() != expected {
        return Err(FormatError::PayloadLengthMismatch {
            expected,
            found: payload.len(),
        });
    }
    let header = Header {
        magic: MAGIC,
        version: element_type.version(),
        element_type: element_type.code(),
        layer_sizes,
        payload_crc: crc32(payload).to_le_bytes(),
    };
    let Layout { padding, total } = layout(&header, payload.len())?;
    if out.len() < total {
        return Err(FormatError::BufferTooSmall {
            needed: total,
            available: out.len(),
        });
    }
    let file = File {
        header,
        padding: &[0; PAYLOAD_ALIGN][..padding],
        payload,
    };
    let available = out.len();
    let used = postcard::to_slice(&file, out)
        .map_err(|_| FormatError::BufferTooSmall {
            needed: total,
            available,
        })?
        .len();
    debug_assert_eq!(used, total);
    Ok(used)
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
