//! The serial protocol between a host and the firmware, for both sides.
//!
//! `docs/PROTOCOL.md` specifies it byte by byte. In short: every message is a
//! [postcard](https://docs.rs/postcard) encoding of a [`Request`] (host to device) or a
//! [`Response`] (device to host), followed by the CRC-32 of those bytes (the model
//! format's checksum, little-endian), the whole COBS-encoded and ended by one `0x00`
//! byte. A serial line loses and corrupts bytes; COBS lets the receiver find the next
//! frame after any damage, and the CRC tells it that a frame was damaged.
//!
//! The device side is a [`Server`]: it takes the received bytes one at a time into a
//! receive buffer whose size is a const generic, and when a frame is complete it
//! answers it into a transmit buffer the caller owns. Every frame gets exactly one
//! answer, an [`ErrorAnswer`] for anything malformed, and nothing panics or allocates:
//! a device keeps serving whatever arrives. The host side uses the same
//! [`encode_frame`] and [`decode_frame`] with the roles swapped.
//!
//! ```
//! use mlp_embedded::protocol::{decode_frame, encode_frame, Identity, Request, Response, Server};
//! use mlp_embedded::protocol::F32Classifier;
//! use mlp_embedded::{Model, Scratch};
//! # let mut buffer = [0u8; 128];
//! # let file = mlp_embedded::doc_example_model(&mut buffer);
//! let identity = Identity { firmware: "doc 1.0", board: "host" };
//! let classifier = Model::<4, 2, 3>::load(file).map(|model| F32Classifier {
//!     model,
//!     scratch: Scratch::new(),
//! });
//! let mut server = Server::<64, _>::new(identity, classifier, None);
//!
//! // The host encodes a request...
//! let (mut body, mut frame) = ([0u8; 64], [0u8; 64]);
//! let request = encode_frame(&Request::PredictPixels(&[255, 0, 128, 64]), &mut body, &mut frame)
//!     .unwrap();
//! // ...the device takes it byte by byte and answers once the delimiter arrives...
//! let (mut tx_body, mut tx) = ([0u8; 512], [0u8; 512]);
//! let mut answer = None;
//! for &byte in request {
//!     if let Some(reply) = server.receive(byte, &mut tx_body, &mut tx) {
//!         answer = Some(reply.len());
//!     }
//! }
//! // ...and the host decodes the answer (without its final 0x00).
//! let reply_len = answer.unwrap();
//! let response: Response = decode_frame(&mut tx[..reply_len - 1]).unwrap();
//! assert!(matches!(response, Response::Prediction(p) if p.class < 2));
//! ```
use core::fmt::Write as _;

use heapless::{String, Vec};
use mlp_core::format::{crc32, ElementType, MAX_LAYERS};
use serde::{Deserialize, Serialize};

use crate::{Int8Model, Int8Prediction, Int8Scratch, LoadError, Model, Prediction, Scratch};

/// The protocol's version, sent in every [`DeviceInfo`]; it changes whenever a message
/// changes, so that a host can refuse a device it cannot understand.
pub const PROTOCOL_VERSION: u32 = 2;

/// The most logits an answer carries: a model with more classes gets
/// [`ErrorAnswer::Unsupported`].
pub const MAX_CLASSES: usize = 64;

/// The length of a model problem's description in [`ModelStatus::Missing`]; longer
/// descriptions are cut.
pub const MAX_PROBLEM_LEN: usize = 96;

/// A transmit buffer of this many bytes holds every [`Response`] a [`Server`] sends,
/// with identity strings of up to 64 bytes each.
pub const MAX_RESPONSE_FRAME: usize = 640;

/// The frame length, delimiter included, of a request that carries `payload` bytes of
/// pixels or features: size a [`Server`]'s receive buffer with it.
pub const fn request_frame_len(payload: usize) -> usize {
    // Tag (1) + length varint (up to 3 for any buffer a microcontroller has) +
    // payload + CRC (4); COBS adds one byte per 254 and one at the start; then 0x00.
    let body = 1 + 3 + payload + 4;
    body + body / 254 + 1 + 1
}

/// What the host asks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Describe the firmware and the model it runs: answered with [`Response::Info`].
    Info,
    /// Classify one input given as one byte per input (an image's pixels, row by row),
    /// scaled by 1/255 on the device as the trainer does; for a model of other
    /// features, integer features transformed as [`Request::PredictFeatures`]'s.
    PredictPixels(&'a [u8]),
    /// Classify one feature vector given as little-endian `f32` values, 4 bytes each;
    /// the device applies the model's input transform (÷255 for a model of pixels, the
    /// stored standardization, or none) and, for an int8 model, quantizes the result
    /// (since protocol version 2; version 1 took the first layer's inputs, `f32`
    /// models only).
    PredictFeatures(&'a [u8]),
}

/// What the device answers: exactly one response per received frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// The answer to [`Request::Info`].
    #[serde(borrow)]
    Info(DeviceInfo<'a>),
    /// The answer to a prediction request.
    Prediction(Answer),
    /// The frame could not be answered; the device keeps serving.
    Error(ErrorAnswer),
}

/// Which firmware runs on which board; fixed when the firmware is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity<'a> {
    /// The firmware's name and version, for example `"mlp-firmware 0.1.0"`.
    pub firmware: &'a str,
    /// The board it was built for, for example `"stm32f4"`.
    pub board: &'a str,
}

/// The answer to [`Request::Info`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo<'a> {
    /// [`PROTOCOL_VERSION`] of the firmware.
    pub protocol: u32,
    /// The firmware and the board.
    #[serde(borrow)]
    pub identity: Identity<'a>,
    /// The longest request frame the device receives, delimiter included.
    pub max_request_frame: u32,
    /// The model in the device's model region, or why there is none.
    pub model: ModelStatus,
}

/// The state of the device's model region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ModelStatus {
    /// A valid model that the firmware runs.
    Loaded(ModelSummary),
    /// No model the firmware can run: the region is empty, corrupt or holds a model of
    /// another shape. The text is the loader's error.
    Missing(String<MAX_PROBLEM_LEN>),
}

/// What identifies the loaded model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// `f32` or int8 parameters.
    pub element: Element,
    /// Inputs, then the outputs of every layer.
    pub layer_sizes: Vec<u32, { MAX_LAYERS + 1 }>,
    /// The CRC-32 of the model's payload, as stored in its file.
    pub payload_crc: u32,
}

/// A model's parameter type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Element {
    /// IEEE-754 binary32 (format version 1).
    F32,
    /// int8 weights with integer arithmetic (format version 2).
    Int8,
}

/// The answer to a prediction request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The index of the largest logit (the first one on ties).
    pub class: u32,
    /// Every logit, bit for bit what the device computed.
    pub logits: Logits,
    /// The processor cycles the prediction took (the Cortex-M DWT cycle counter), or
    /// `None` where there is no cycle counter (an emulator).
    pub cycles: Option<u32>,
}

/// The logits of a prediction, in the model's own arithmetic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Logits {
    /// An `f32` model's logits.
    F32(Vec<f32, MAX_CLASSES>),
    /// An int8 model's logits, integers at `scale` (real logit = integer × scale).
    Int8 {
        /// The last layer's int32 outputs.
        logits: Vec<i32, MAX_CLASSES>,
        /// The real value of one step.
        scale: f32,
    },
}

/// Why a frame got no other answer. Every one of them leaves the device serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorAnswer {
    /// The frame is not valid COBS, or its CRC does not match: damaged on the line.
    Garbled,
    /// The frame is intact but is not a request this firmware knows (an unknown tag,
    /// a truncated field, bytes left over).
    Malformed,
    /// The frame is longer than the device's receive buffer; the whole frame was
    /// dropped.
    TooLong {
        /// The longest frame the device receives, delimiter included.
        limit: u32,
    },
    /// The input has the wrong number of pixels or features.
    WrongInputLength {
        /// The model's input count (pixels), or 4 × it (feature bytes).
        expected: u32,
        /// What the request carried.
        found: u32,
    },
    /// There is no valid model in the model region; [`Request::Info`] says why.
    NoModel,
    /// The model cannot answer this request (more than [`MAX_CLASSES`] classes; in
    /// protocol version 1, features for an int8 model).
    Unsupported,
    /// The answer does not fit the device's transmit buffer.
    AnswerTooLong,
}

/// Why a frame could not be made or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The output buffer is too small for the message.
    BufferTooSmall,
    /// The bytes are not valid COBS.
    Cobs,
    /// Shorter than a CRC, or the CRC does not match the message.
    Checksum,
    /// The checked bytes are not a message of the expected type, or have bytes left
    /// over after it.
    Message,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "the message does not fit the frame buffer",
            Self::Cobs => "the frame is not valid COBS",
            Self::Checksum => "the frame's CRC-32 does not match its message",
            Self::Message => "the frame's message is malformed",
        })
    }
}

impl core::error::Error for FrameError {}

/// Encodes `message` as one complete frame (postcard, CRC-32, COBS, `0x00`) into
/// `frame`, using `body` for the unencoded bytes, and returns the frame.
pub fn encode_frame<'f, T: Serialize>(
    message: &T,
    body: &mut [u8],
    frame: &'f mut [u8],
) -> Result<&'f [u8], FrameError> {
    let used = postcard::to_slice(message, body)
        .map_err(|_| FrameError::BufferTooSmall)?
        .len();
    seal(body, used, frame)
}

/// Frames message bytes that are already encoded (CRC-32, COBS, `0x00`), using `body`
/// for the unencoded bytes: the frame [`encode_frame`] makes for a message with these
/// postcard bytes. For bytes no [`Request`] encodes to, such as a request a newer
/// protocol version adds.
pub fn frame_message<'f>(
    message: &[u8],
    body: &mut [u8],
    frame: &'f mut [u8],
) -> Result<&'f [u8], FrameError> {
    body.get_mut(..message.len())
        .ok_or(FrameError::BufferTooSmall)?
        .copy_from_slice(message);
    seal(body, message.len(), frame)
}

/// Appends the CRC-32 of `body[..used]` and COBS-encodes both, with the delimiter,
/// into `frame`.
fn seal<'f>(body: &mut [u8], used: usize, frame: &'f mut [u8]) -> Result<&'f [u8], FrameError> {
    let crc = crc32(body.get(..used).ok_or(FrameError::BufferTooSmall)?).to_le_bytes();
    body.get_mut(used..used + 4)
        .ok_or(FrameError::BufferTooSmall)?
        .copy_from_slice(&crc);
    let source = body.get(..used + 4).ok_or(FrameError::BufferTooSmall)?;
    let encoded = cobs::try_encode(source, frame).map_err(|_| FrameError::BufferTooSmall)?;
    *frame.get_mut(encoded).ok_or(FrameError::BufferTooSmall)? = 0;
    frame.get(..encoded + 1).ok_or(FrameError::BufferTooSmall)
}

/// Decodes one frame's bytes, without the final `0x00`, in place, checks the CRC and
/// reads the message. The message may borrow from `frame`.
pub fn decode_frame<'f, T: Deserialize<'f>>(frame: &'f mut [u8]) -> Result<T, FrameError> {
    let decoded = cobs::decode_in_place(frame).map_err(|_| FrameError::Cobs)?;
    let body = frame.get(..decoded).ok_or(FrameError::Cobs)?;
    let split = body.len().checked_sub(4).ok_or(FrameError::Checksum)?;
    let (message, crc) = body.split_at(split);
    let crc: [u8; 4] = crc.try_into().map_err(|_| FrameError::Checksum)?;
    if crc32(message) != u32::from_le_bytes(crc) {
        return Err(FrameError::Checksum);
    }
    match postcard::take_from_bytes(message) {
        Ok((value, [])) => Ok(value),
        _ => Err(FrameError::Message),
    }
}

/// A model the [`Server`] can run: the glue between the protocol and
/// [`Model`] or [`Int8Model`].
pub trait Classifier {
    /// What identifies the model.
    fn summary(&self) -> ModelSummary;

    /// Classifies one input given as one byte per input.
    fn classify_pixels(&mut self, pixels: &[u8]) -> Result<(u32, Logits), ErrorAnswer>;

    /// Classifies one input given as little-endian `f32` values.
    fn classify_features(&mut self, features: &[u8]) -> Result<(u32, Logits), ErrorAnswer>;
}

/// An `f32` [`Model`] with its [`Scratch`], served by a [`Server`].
pub struct F32Classifier<'a, const IN: usize, const OUT: usize, const WIDTH: usize> {
    /// The loaded model.
    pub model: Model<'a, IN, OUT, WIDTH>,
    /// Its activations.
    pub scratch: Scratch<WIDTH>,
}

/// An int8 [`Int8Model`] with its [`Int8Scratch`], served by a [`Server`].
pub struct Int8Classifier<'a, const IN: usize, const OUT: usize, const WIDTH: usize> {
    /// The loaded model.
    pub model: Int8Model<'a, IN, OUT, WIDTH>,
    /// Its activations.
    pub scratch: Int8Scratch<WIDTH>,
}

fn summary_of(view: &mlp_core::format::ModelView<'_>) -> ModelSummary {
    let mut layer_sizes = Vec::new();
    for &size in view.layer_sizes() {
        // A decoded model has at most MAX_LAYERS + 1 sizes: this never drops one.
        let _ = layer_sizes.push(size);
    }
    ModelSummary {
        element: match view.element_type() {
            ElementType::Int8 => Element::Int8,
            _ => Element::F32,
        },
        layer_sizes,
        payload_crc: view.payload_crc(),
    }
}

fn wrong_length(expected: usize, found: usize) -> ErrorAnswer {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    ErrorAnswer::WrongInputLength {
        expected: clamp(expected),
        found: clamp(found),
    }
}

/// A request's little-endian `f32` features, `4 × IN` bytes.
fn features_of<const IN: usize>(features: &[u8]) -> Result<[f32; IN], ErrorAnswer> {
    if features.len() != 4 * IN {
        return Err(wrong_length(4 * IN, features.len()));
    }
    let mut input = [0.0f32; IN];
    for (value, bytes) in input.iter_mut().zip(features.as_chunks::<4>().0) {
        *value = f32::from_le_bytes(*bytes);
    }
    Ok(input)
}

/// A request's pixels, exactly `IN` of them.
// This and the two answers below are inlined: the firmware then is the same as with
// each classifier written out (as a call each, they cost code and the peak stack moves).
#[inline(always)]
fn pixels_of<const IN: usize>(pixels: &[u8]) -> Result<&[u8; IN], ErrorAnswer> {
    pixels
        .try_into()
        .map_err(|_| wrong_length(IN, pixels.len()))
}

fn collect<T: Copy, const N: usize>(values: &[T]) -> Result<Vec<T, N>, ErrorAnswer> {
    Vec::from_slice(values).map_err(|_| ErrorAnswer::Unsupported)
}

/// The class and logits an `f32` model's prediction answers with.
#[inline(always)]
fn f32_answer<const OUT: usize>(prediction: Prediction<OUT>) -> Result<(u32, Logits), ErrorAnswer> {
    let logits = Logits::F32(collect(&prediction.logits)?);
    Ok((prediction.class as u32, logits))
}

/// The class, logits and their scale an int8 model's prediction answers with.
#[inline(always)]
fn int8_answer<const OUT: usize>(
    prediction: Int8Prediction<OUT>,
) -> Result<(u32, Logits), ErrorAnswer> {
    let logits = Logits::Int8 {
        logits: collect(&prediction.logits)?,
        scale: prediction.output_scale,
    };
    Ok((prediction.class as u32, logits))
}

impl<const IN: usize, const OUT: usize, const WIDTH: usize> Classifier
    for F32Classifier<'_, IN, OUT, WIDTH>
{
    fn summary(&self) -> ModelSummary {
        summary_of(self.model.view())
    }

    fn classify_pixels(&mut self, pixels: &[u8]) -> Result<(u32, Logits), ErrorAnswer> {
        let pixels = pixels_of::<IN>(pixels)?;
        f32_answer(self.model.predict_pixels(pixels, &mut self.scratch))
    }

    // Not inlined into the server's loop: the `4 × IN` bytes of features are reserved
    // only while a feature request is answered.
    #[inline(never)]
    fn classify_features(&mut self, features: &[u8]) -> Result<(u32, Logits), ErrorAnswer> {
        let input = features_of::<IN>(features)?;
        f32_answer(self.model.predict_features(&input, &mut self.scratch))
    }
}

impl<const IN: usize, const OUT: usize, const WIDTH: usize> Classifier
    for Int8Classifier<'_, IN, OUT, WIDTH>
{
    fn summary(&self) -> ModelSummary {
        summary_of(self.model.view())
    }

    fn classify_pixels(&mut self, pixels: &[u8]) -> Result<(u32, Logits), ErrorAnswer> {
        let pixels = pixels_of::<IN>(pixels)?;
        int8_answer(self.model.predict_pixels(pixels, &mut self.scratch))
    }

    // Not inlined into the server's loop: the `4 × IN` bytes of features are reserved
    // only while a feature request is answered.
    #[inline(never)]
    fn classify_features(&mut self, features: &[u8]) -> Result<(u32, Logits), ErrorAnswer> {
        let input = features_of::<IN>(features)?;
        int8_answer(self.model.predict_features(&input, &mut self.scratch))
    }
}

/// Whichever of an `f32` or an int8 model a model region holds: firmware built with
/// this serves either, so a board can be flashed with both kinds.
pub enum AnyClassifier<'a, const IN: usize, const OUT: usize, const WIDTH: usize> {
    /// An `f32` model (format version 1).
    F32(F32Classifier<'a, IN, OUT, WIDTH>),
    /// An int8 model (format version 2).
    Int8(Int8Classifier<'a, IN, OUT, WIDTH>),
}

impl<'a, const IN: usize, const OUT: usize, const WIDTH: usize> AnyClassifier<'a, IN, OUT, WIDTH> {
    /// Loads `bytes` as an `f32` model, or as an int8 model when that is what it holds.
    pub fn load(bytes: &'a [u8]) -> Result<Self, LoadError> {
        match Model::load(bytes) {
            Ok(model) => Ok(Self::F32(F32Classifier {
                model,
                scratch: Scratch::new(),
            })),
            Err(LoadError::UnsupportedElementType { .. }) => Int8Model::load(bytes).map(|model| {
                Self::Int8(Int8Classifier {
                    model,
                    scratch: Int8Scratch::new(),
                })
            }),
            Err(error) => Err(error),
        }
    }
}

impl<const IN: usize, const OUT: usize, const WIDTH: usize> Classifier
    for AnyClassifier<'_, IN, OUT, WIDTH>
{
    fn summary(&self) -> ModelSummary {
        match self {
            Self::F32(model) => model.summary(),
            Self::Int8(model) => model.summary(),
        }
    }

    fn classify_pixels(&mut self, pixels: &[u8]) -> Result<(u32, Logits), ErrorAnswer> {
        match self {
            Self::F32(model) => model.classify_pixels(pixels),
            Self::Int8(model) => model.classify_pixels(pixels),
        }
    }

    fn classify_features(&mut self, features: &[u8]) -> Result<(u32, Logits), ErrorAnswer> {
        match self {
            Self::F32(model) => model.classify_features(features),
            Self::Int8(model) => model.classify_features(features),
        }
    }
}

/// The device side of the protocol: a receive buffer of `RX` bytes and the model it
/// serves (or why there is none). `RX` is the longest frame it takes without its
/// delimiter: `request_frame_len(inputs) - 1` for images of `inputs` pixels.
pub struct Server<'i, const RX: usize, C> {
    identity: Identity<'i>,
    model: Result<C, LoadError>,
    cycle_counter: Option<fn() -> u32>,
    received: Vec<u8, RX>,
    overflowed: bool,
}

impl<'i, const RX: usize, C: Classifier> Server<'i, RX, C> {
    /// A server for `model` (the result of loading it: an error is reported to the
    /// host by [`Request::Info`]). `cycle_counter` reads a free-running cycle counter
    /// (the DWT's `CYCCNT` on a Cortex-M); a counter that does not move, as in an
    /// emulator, is reported as "not measured".
    pub fn new(
        identity: Identity<'i>,
        model: Result<C, LoadError>,
        cycle_counter: Option<fn() -> u32>,
    ) -> Self {
        Self {
            identity,
            model,
            cycle_counter,
            received: Vec::new(),
            overflowed: false,
        }
    }

    /// Takes one received byte. When it ends a frame, the answer is encoded into
    /// `frame` (with `body` for the unencoded bytes; [`MAX_RESPONSE_FRAME`] bytes each
    /// hold every answer) and returned, to be sent as it is. A `0x00` with no frame
    /// before it is ignored, so a host may send one to resynchronise.
    pub fn receive<'f>(
        &mut self,
        byte: u8,
        body: &mut [u8],
        frame: &'f mut [u8],
    ) -> Option<&'f [u8]> {
        if byte != 0 {
            if self.received.push(byte).is_err() {
                self.overflowed = true;
            }
            return None;
        }
        if self.received.is_empty() && !self.overflowed {
            return None;
        }
        let Self {
            identity,
            model,
            cycle_counter,
            received,
            overflowed,
        } = self;
        let limit = u32::try_from(RX + 1).unwrap_or(u32::MAX);
        let answer = if *overflowed {
            Response::Error(ErrorAnswer::TooLong { limit })
        } else {
            match decode_frame::<Request>(received) {
                Ok(Request::Info) => Response::Info(info(*identity, model, limit)),
                Ok(Request::PredictPixels(pixels)) => {
                    predict(model, *cycle_counter, |c| c.classify_pixels(pixels))
                }
                Ok(Request::PredictFeatures(features)) => {
                    predict(model, *cycle_counter, |c| c.classify_features(features))
                }
                Err(FrameError::Message) => Response::Error(ErrorAnswer::Malformed),
                Err(_) => Response::Error(ErrorAnswer::Garbled),
            }
        };
        received.clear();
        *overflowed = false;
        send(&answer, body, frame)
    }
}

/// Encodes `answer` into `frame`. Lengths are only known after encoding: if an answer
/// does not fit, it says so in the smallest answer there is; if even that does not
/// fit, nothing is sent.
fn send<'f>(answer: &Response, body: &mut [u8], frame: &'f mut [u8]) -> Option<&'f [u8]> {
    let length = match encode_frame(answer, body, frame) {
        Ok(encoded) => encoded.len(),
        Err(_) => encode_frame(&Response::Error(ErrorAnswer::AnswerTooLong), body, frame)
            .ok()?
            .len(),
    };
    frame.get(..length)
}

fn info<'i, C: Classifier>(
    identity: Identity<'i>,
    model: &Result<C, LoadError>,
    max_request_frame: u32,
) -> DeviceInfo<'i> {
    let model = match model {
        Ok(model) => ModelStatus::Loaded(model.summary()),
        Err(error) => {
            let mut text = String::new();
            // A description longer than the buffer is cut, not an error.
            let _ = write!(Truncating(&mut text), "{error}");
            ModelStatus::Missing(text)
        }
    };
    DeviceInfo {
        protocol: PROTOCOL_VERSION,
        identity,
        max_request_frame,
        model,
    }
}

fn predict<'i, C: Classifier>(
    model: &mut Result<C, LoadError>,
    cycle_counter: Option<fn() -> u32>,
    classify: impl FnOnce(&mut C) -> Result<(u32, Logits), ErrorAnswer>,
) -> Response<'i> {
    let Ok(model) = model else {
        return Response::Error(ErrorAnswer::NoModel);
    };
    let start = cycle_counter.map(|read| read());
    let result = classify(model);
    let end = cycle_counter.map(|read| read());
    let cycles = match (start, end) {
        (Some(start), Some(end)) if end != start => Some(end.wrapping_sub(start)),
        _ => None,
    };
    match result {
        Ok((class, logits)) => Response::Prediction(Answer {
            class,
            logits,
            cycles,
        }),
        Err(error) => Response::Error(error),
    }
}

/// Writes as much of a text as fits, and reports success either way.
struct Truncating<'s>(&'s mut String<MAX_PROBLEM_LEN>);

impl core::fmt::Write for Truncating<'_> {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for c in text.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}
