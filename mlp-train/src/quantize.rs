//! Post-training int8 quantization, and running int8 models on the host.
//!
//! `quantize` turns a trained f32 model into an integer-only one (format version 2,
//! see `docs/FORMAT.md`) with the core's quantizer (`mlp_core::quant`):
//! - the input layer takes raw pixel bytes, scale `1/255`;
//! - calibration runs the f32 model on training images and records each layer's
//!   largest output: a hidden layer's uint8 activations get `scale = max / 255`, the
//!   int32 logits `scale = max |logit| / 2^20` (fine enough that the integer argmax
//!   matches the real one);
//! - weights are symmetric int8 per output neuron, biases int32, and each output gets
//!   a fixed-point multiplier and shift.
//!
//! The host evaluates and predicts with the same integer kernels the device runs
//! (`mlp_core::quant::forward_one_i8`), so both give identical logits by construction.

use std::path::Path;

use anyhow::{bail, Context, Result};
use mlp_core::format::{self, ElementType, ModelView};
use mlp_core::network::{forward, CoreKernel, EveryLayer};
use mlp_core::quant::{argmax_i32, forward_one_i8, quantize_layer, write_int8_layer};

use crate::data::{pixel_value, Dataset, CLASSES};
use crate::metrics::Evaluation;
use crate::model::Mlp;

/// The real value of one step of the input: raw pixel bytes.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;

/// Integer steps the largest calibration logit is given.
const LOGIT_STEPS: f32 = (1 << 20) as f32;

/// Images run through the f32 model at a time during calibration.
const CALIBRATION_BATCH: usize = 256;

/// Each layer's output scale, from the f32 model's outputs on `calibration`.
pub fn calibrate(model: &Mlp, calibration: &Dataset) -> Result<Vec<f32>> {
    if calibration.is_empty() {
        bail!("no calibration images");
    }
    let layers = model.layout().len();
    let mut largest = vec![0.0f32; layers];
    let mut acts: Vec<Vec<f32>> = model
        .layout()
        .iter()
        .map(|l| vec![0.0; CALIBRATION_BATCH * l.outputs])
        .collect();
    for start in (0..calibration.len()).step_by(CALIBRATION_BATCH) {
        let batch = CALIBRATION_BATCH.min(calibration.len() - start);
        let x: Vec<f32> = calibration.pixels
            [start * calibration.features..(start + batch) * calibration.features]
            .iter()
            .map(|&p| pixel_value(p))
            .collect();
        forward_batch(model, &x, batch, &mut acts)?;
        for (k, layer) in model.layout().iter().enumerate() {
            let outputs = &acts[k][..batch * layer.outputs];
            largest[k] = outputs.iter().fold(largest[k], |m, v| m.max(v.abs()));
        }
    }
    Ok(largest
        .iter()
        .enumerate()
        .map(|(k, &max)| {
            // A layer whose outputs were all zero still needs a valid, positive scale.
            let max = if max > 0.0 && max.is_finite() {
                max
            } else {
                1.0
            };
            if k + 1 == layers {
                max / LOGIT_STEPS
            } else {
                max / 255.0
            }
        })
        .collect())
}

/// Quantizes `model` with output scales calibrated on `calibration` and returns the
/// int8 model file's bytes.
pub fn quantize(model: &Mlp, calibration: &Dataset) -> Result<Vec<u8>> {
    let scales = calibrate(model, calibration)?;
    let sizes: Vec<u32> = model.sizes().iter().map(|&s| s as u32).collect();
    let mut payload =
        vec![0u8; format::int8_payload_len(&sizes).map_err(|e| anyhow::anyhow!("{e}"))?];
    payload[..4].copy_from_slice(&INPUT_SCALE.to_le_bytes());
    let mut at = 4;
    let mut input_scale = INPUT_SCALE;
    for (layer, &output_scale) in model.layout().iter().zip(&scales) {
        let mut q_weights = vec![0i8; layer.inputs * layer.outputs];
        let mut q_bias = vec![0i32; layer.outputs];
        let mut multiplier = vec![0i32; layer.outputs];
        let mut shift = vec![0i32; layer.outputs];
        quantize_layer(
            &model.params[layer.weights.clone()],
            &model.params[layer.bias.clone()],
            input_scale,
            output_scale,
            &mut q_weights,
            &mut q_bias,
            &mut multiplier,
            &mut shift,
        )
        .context("a layer's scales cannot be represented as int8 fixed-point multipliers")?;
        at += write_int8_layer(
            &mut payload[at..],
            output_scale,
            &q_weights,
            &q_bias,
            &multiplier,
            &shift,
        )
        .context("int8 payload layout")?;
        input_scale = output_scale;
    }
    debug_assert_eq!(at, payload.len());
    let mut file =
        vec![0u8; format::encoded_len(&sizes, payload.len()).map_err(|e| anyhow::anyhow!("{e}"))?];
    let used = format::encode(&sizes, ElementType::Int8, &payload, &mut file)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    file.truncate(used);
    Ok(file)
}

/// Whether model file bytes hold an int8 model.
pub fn is_int8(bytes: &[u8]) -> bool {
    ModelView::decode(bytes).is_ok_and(|v| v.element_type() == ElementType::Int8)
}

/// A model file of either kind, read once (a FIFO cannot be read twice).
pub enum AnyModel {
    /// A trainable f32 model.
    F32(crate::model::Mlp),
    /// An int8 model (from `quantize`).
    Int8(Int8Model),
}

impl AnyModel {
    /// Reads the model file at `path`, with errors that name it.
    pub fn load(path: &Path) -> Result<AnyModel> {
        let bytes = crate::model::read_model_file(path)?;
        if is_int8(&bytes) {
            Int8Model::from_file_bytes(bytes, path).map(AnyModel::Int8)
        } else {
            crate::model::Mlp::from_file_bytes(&bytes, path).map(AnyModel::F32)
        }
    }
}

/// An int8 model file read into memory and validated.
#[derive(Clone, Debug)]
pub struct Int8Model {
    bytes: Vec<u8>,
}

impl Int8Model {
    /// Reads an int8 model file, with errors that name it.
    pub fn load(path: &Path) -> Result<Int8Model> {
        Int8Model::from_file_bytes(crate::model::read_model_file(path)?, path)
    }

    /// Validates model file bytes read from `path` (named in errors).
    pub fn from_file_bytes(bytes: Vec<u8>, path: &Path) -> Result<Int8Model> {
        let view = ModelView::decode(&bytes).map_err(|e| {
            anyhow::anyhow!("{}: {}", path.display(), crate::model::invalid_model(&e))
        })?;
        if view.element_type() != ElementType::Int8 {
            bail!("{}: not an int8 model", path.display());
        }
        Ok(Int8Model { bytes })
    }

    fn view(&self) -> ModelView<'_> {
        // Validated in `load`; decoding again only re-checks the same bytes.
        ModelView::decode(&self.bytes).expect("validated when loaded")
    }

    /// The CRC-32 of the parameters, as stored in the file.
    pub fn payload_crc(&self) -> u32 {
        self.view().payload_crc()
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        self.view()
            .layer_sizes()
            .iter()
            .map(|&s| s as usize)
            .collect()
    }

    /// Checks that the model's input and output sizes fit a data set's.
    pub fn check_fits(&self, path: &Path, features: usize, classes: usize) -> Result<()> {
        let sizes = self.sizes();
        let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
        if inputs != features {
            bail!(
                "{}: model takes {inputs} inputs but the data's images have {features} pixels",
                path.display()
            );
        }
        if outputs != classes {
            bail!(
                "{}: model has {outputs} outputs but the data has {classes} classes",
                path.display()
            );
        }
        Ok(())
    }

    /// Runs `f` with a predictor that maps raw pixel bytes to int32 logits and the
    /// logits' real scale; the model is decoded once for all calls.
    pub fn with_predictor<R>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&[u8]) -> Vec<i32>, f32) -> R,
    ) -> R {
        let view = self.view();
        let widest = view.sizes().max_output();
        let logit_scale = view.int8_layers().last().map_or(1.0, |l| l.output_scale);
        let (mut a, mut b, mut acc) = (vec![0u8; widest], vec![0u8; widest], vec![0i32; widest]);
        let mut predict = |pixels: &[u8]| -> Vec<i32> {
            forward_one_i8(
                view.int8_layers().map(|l| l.params()),
                pixels,
                &mut a,
                &mut b,
                &mut acc,
            )
            .map(<[i32]>::to_vec)
            .unwrap_or_default()
        };
        f(&mut predict, logit_scale)
    }
}

/// Runs the layers of `model` on a batch of `batch` rows of `x` through the core's
/// layer loop and kernels, leaving each layer's output (after ReLU for hidden layers)
/// in `acts[k][..batch × outputs]`.
fn forward_batch(model: &Mlp, x: &[f32], batch: usize, acts: &mut [Vec<f32>]) -> Result<()> {
    forward(
        &mut CoreKernel,
        model.layer_params(),
        x,
        batch,
        EveryLayer::new(acts),
    )
    .map_err(|e| anyhow::anyhow!("calibration: {e}"))?;
    Ok(())
}

/// Inputs as pixel bytes: `pixel / 255` in f32 gives its byte back exactly by `× 255`
/// and rounding; other values are rounded to the nearest byte.
pub fn pixel_bytes(inputs: &[f32]) -> Vec<u8> {
    inputs
        .iter()
        .map(|&x| (x * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Test loss, accuracy and confusion matrix of an int8 model on `data`.
pub fn evaluate(model: &Int8Model, data: &Dataset) -> Evaluation {
    let pixels = &data.pixels;
    let classes = CLASSES;
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    model.with_predictor(|predict, scale| {
        let mut real = vec![0.0f32; classes];
        for (image, &label) in pixels.chunks_exact(data.features).zip(&data.labels) {
            let logits = predict(image);
            for (r, &q) in real.iter_mut().zip(&logits) {
                *r = q as f32 * scale;
            }
            loss_sum += f64::from(mlp_core::loss::softmax_cross_entropy(
                &real,
                &[label],
                classes,
                None,
            ));
            confusion[usize::from(label)][argmax_i32(&logits)] += 1;
        }
    });
    let n = data.len();
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        loss: loss_sum / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        count: n,
        confusion,
    }
}
