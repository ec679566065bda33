//! What can be wrong with a model file, found once at load time.

use core::fmt;

use mlp_core::format::{ElementType, FormatError};

/// Why [`Model::load`](crate::Model::load) or [`Int8Model::load`](crate::Int8Model::load)
/// refused a model file.
///
/// File-level problems (bad magic, unsupported version, unknown element type, a
/// truncated file, a checksum mismatch, bad layer sizes, ...) are `mlp-core`'s
/// [`FormatError`], wrapped in [`LoadError::Format`]; the other variants are what the
/// device adds: the file is valid but is not a model this firmware can run.
///
/// The format stores one list of layer sizes, so consecutive layers always chain; a
/// file whose payload does not match its sizes is
/// [`FormatError::PayloadLengthMismatch`] or [`FormatError::TruncatedPayload`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The file is not a valid model file; the inner error says why.
    Format(FormatError),
    /// The model's parameters are not of the type this loader runs: an int8 model given
    /// to [`Model`](crate::Model) (which runs `f32` models), or an `f32` model given to
    /// [`Int8Model`](crate::Int8Model).
    UnsupportedElementType {
        /// The file's element type.
        found: ElementType,
        /// The element type of the loader that refused it.
        expected: ElementType,
    },
    /// The model takes a different number of inputs than the firmware was built for.
    InputSizeMismatch {
        /// Inputs the firmware was built for (`IN`).
        expected: usize,
        /// Inputs of the model's first layer.
        found: usize,
    },
    /// The model has a different number of outputs (classes) than the firmware was built for.
    OutputSizeMismatch {
        /// Outputs the firmware was built for (`OUT`).
        expected: usize,
        /// Outputs of the model's last layer.
        found: usize,
    },
    /// A layer's output is wider than the activation buffers (`WIDTH`).
    LayerTooWide {
        /// The layer, counting from 0.
        layer: usize,
        /// Its outputs.
        outputs: usize,
        /// The buffers' length.
        capacity: usize,
    },
    /// The model's layer sizes are not the ones the firmware was built for
    /// (only checked by [`Model::load_expecting`](crate::Model::load_expecting)).
    ShapeMismatch {
        /// Position in the list of layer sizes (0 is the input size); equal to the
        /// shorter list's length when the lists differ in length.
        index: usize,
        /// The size the firmware expects there (0 if its list is shorter).
        expected: u32,
        /// The size in the file (0 if its list is shorter).
        found: u32,
    },
    /// A weight or bias is NaN or infinite.
    NonFiniteParameter {
        /// The layer, counting from 0.
        layer: usize,
        /// Index within the layer's parameters: weights `W[i][j]` at `i × outputs + j`,
        /// then the biases.
        index: usize,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Format(error) => write!(f, "invalid model file: {error}"),
            Self::UnsupportedElementType { found, expected } => {
                // Written piece by piece: `{:?}` would link Debug formatting and `{}` of a
                // `&str` the padding code, both only for this message.
                for piece in [
                    "the model's parameters are ",
                    found.name(),
                    ", this firmware runs ",
                    expected.name(),
                    " models",
                ] {
                    f.write_str(piece)?;
                }
                Ok(())
            }
            Self::InputSizeMismatch { expected, found } => write!(
                f,
                "the model takes {found} inputs, the firmware was built for {expected}"
            ),
            Self::OutputSizeMismatch { expected, found } => write!(
                f,
                "the model has {found} outputs, the firmware was built for {expected}"
            ),
            Self::LayerTooWide {
                layer,
                outputs,
                capacity,
            } => write!(
                f,
                "layer {layer} has {outputs} outputs, the activation buffers hold {capacity}"
            ),
            Self::ShapeMismatch {
                index,
                expected,
                found,
            } => write!(
                f,
                "layer size {index} is {found}, the firmware was built for {expected}"
            ),
            Self::NonFiniteParameter { layer, index } => {
                write!(f, "parameter {index} of layer {layer} is not finite")
            }
        }
    }
}

impl core::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Format(error) => Some(error),
            _ => None,
        }
    }
}

impl From<FormatError> for LoadError {
    fn from(error: FormatError) -> Self {
        Self::Format(error)
    }
}
