//! Post-training int8 quantization, and running int8 models on the host.
//!
//! `quantize` turns a trained f32 model into an integer-only one (format version 2,
//! or 3 for a model with class names or inputs that are not pixels; see
//! `docs/FORMAT.md`) with the core's quantizer (`mlp_core::quant`):
//! - a model of pixels takes raw pixel bytes, scale `1/255`, zero point 0;
//! - any other model takes its inputs after its input transform (standardization)
//!   quantized to uint8 with a scale and zero point calibrated on the training inputs:
//!   the range `[min(0, smallest), max(0, largest)]` of every input seen is mapped onto
//!   `0..=255`, and the zero point is folded into the first layer's int32 biases, so the
//!   integer layers are the same as for pixels;
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
use mlp_core::format::{self, ElementType, InputKind, InputQuantization, ModelParts, ModelView};
use mlp_core::network::{forward, CoreKernel, EveryLayer};
use mlp_core::quant::{
    argmax_i32, forward_one_i8, quantize_features, quantize_layer, write_int8_layer,
};

use crate::data::Dataset;
use crate::metrics::Evaluation;
use crate::model::Mlp;

/// The real value of one step of the input: raw pixel bytes.
pub const INPUT_SCALE: f32 = 1.0 / 255.0;

/// Integer steps the largest calibration logit is given.
const LOGIT_STEPS: f32 = (1 << 20) as f32;

/// Images run through the f32 model at a time during calibration.
const CALIBRATION_BATCH: usize = 256;

/// Each layer's output scale, from the f32 model's outputs on `calibration` (images,
/// or byte features for a model that is not of pixels).
pub fn calibrate(model: &Mlp, calibration: &Dataset) -> Result<Vec<f32>> {
    if calibration.is_empty() {
        bail!("no calibration images");
    }
    calibrate_inputs(model, &model.inputs_of_bytes(&calibration.pixels))
}

/// Each layer's output scale, from the f32 model's outputs on `inputs`: rows of first
/// layer inputs (after the model's input transform).
pub fn calibrate_inputs(model: &Mlp, inputs: &[f32]) -> Result<Vec<f32>> {
    let features = model.inputs();
    if inputs.is_empty() || !inputs.len().is_multiple_of(features) {
        bail!("no calibration inputs");
    }
    let rows = inputs.len() / features;
    let layers = model.layout().len();
    let mut largest = vec![0.0f32; layers];
    let mut acts: Vec<Vec<f32>> = model
        .layout()
        .iter()
        .map(|l| vec![0.0; CALIBRATION_BATCH * l.outputs])
        .collect();
    for start in (0..rows).step_by(CALIBRATION_BATCH) {
        let batch = CALIBRATION_BATCH.min(rows - start);
        let x = &inputs[start * features..(start + batch) * features];
        forward_batch(model, x, batch, &mut acts)?;
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

/// Quantizes `model` with scales calibrated on `calibration` (the training images, or
/// byte features) and returns the int8 model file's bytes.
pub fn quantize(model: &Mlp, calibration: &Dataset) -> Result<Vec<u8>> {
    if calibration.is_empty() {
        bail!("no calibration images");
    }
    quantize_inputs(model, &model.inputs_of_bytes(&calibration.pixels))
}

/// Quantizes `model` with scales calibrated on rows of `features` (the training
/// split's feature vectors, before the model's input transform) and returns the int8
/// model file's bytes.
pub fn quantize_features_of(model: &Mlp, features: &[f32]) -> Result<Vec<u8>> {
    quantize_inputs(model, &model.inputs_of(features))
}

/// The input quantization of a model that is not of pixels, from its calibration
/// inputs (after the transform): `[min(0, smallest), max(0, largest)]` onto `0..=255`.
pub fn input_quantization(inputs: &[f32]) -> InputQuantization {
    let (low, high) = inputs
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = f64::from(high) - f64::from(low);
    let scale = if range > 0.0 {
        (range / 255.0) as f32
    } else {
        1.0
    };
    let zero_point = (-f64::from(low) / f64::from(scale))
        .round()
        .clamp(0.0, 255.0) as i32;
    InputQuantization { scale, zero_point }
}

/// Quantizes `model` with scales calibrated on `inputs`, rows of first-layer inputs
/// (after the model's input transform), and returns the int8 model file's bytes.
pub fn quantize_inputs(model: &Mlp, inputs: &[f32]) -> Result<Vec<u8>> {
    let scales = calibrate_inputs(model, inputs)?;
    let sizes: Vec<u32> = model.sizes().iter().map(|&s| s as u32).collect();
    let pixels = model.input == crate::model::Input::Pixels;
    let input = if pixels {
        InputQuantization {
            scale: INPUT_SCALE,
            zero_point: 0,
        }
    } else {
        input_quantization(inputs)
    };
    let mut payload =
        vec![0u8; format::int8_payload_len(&sizes).map_err(|e| anyhow::anyhow!("{e}"))?];
    payload[..4].copy_from_slice(&input.scale.to_le_bytes());
    let mut at = 4;
    let mut input_scale = input.scale;
    for (k, (layer, &output_scale)) in model.layout().iter().zip(&scales).enumerate() {
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
        if k == 0 && input.zero_point != 0 {
            // The inputs arrive as q = x / scale + zero_point: subtracting
            // zero_point × Σ_i w[i][j] from each bias gives the accumulator of x.
            for (j, bias) in q_bias.iter_mut().enumerate() {
                let column: i64 = q_weights
                    .iter()
                    .skip(j)
                    .step_by(layer.outputs)
                    .map(|&w| i64::from(w))
                    .sum();
                let folded = i64::from(*bias) - i64::from(input.zero_point) * column;
                *bias = folded.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            }
        }
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
    let names = model.name_refs();
    let parts = ModelParts {
        layer_sizes: &sizes,
        element_type: ElementType::Int8,
        parameters: &payload,
        input: model.input_spec(),
        input_zero_point: input.zero_point,
        class_names: names.as_deref(),
    };
    let mut file =
        vec![0u8; format::encoded_model_len(&parts).map_err(|e| anyhow::anyhow!("{e}"))?];
    let used = format::encode_model(&parts, &mut file).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    /// The class names the file holds.
    pub fn class_names(&self) -> Option<Vec<String>> {
        match self {
            AnyModel::F32(mlp) => mlp.class_names.clone(),
            AnyModel::Int8(int8) => int8.class_names(),
        }
    }

    /// What the model takes from a CSV file (`path` names it in the error): the raw
    /// values, which its stored input transform (and an int8 model's quantization)
    /// turns into its inputs; or, for an `f32` model of pixels, the values standardized
    /// as in training: a CSV model saved before models stored their standardization
    /// reads as one of pixels.
    ///
    /// # Errors
    /// For an int8 model of pixels, which takes pixel bytes only.
    pub fn table_inputs(&self, path: &Path) -> Result<crate::data::TableInputs> {
        use crate::data::TableInputs;
        match self {
            AnyModel::F32(mlp) if mlp.input == crate::model::Input::Pixels => {
                Ok(TableInputs::Standardized)
            }
            AnyModel::Int8(int8) if int8.input_kind() == InputKind::Pixels => bail!(
                "{}: this int8 model takes pixel bytes, not CSV values; quantize the f32 model with the CSV file (--data FILE.csv)",
                path.display()
            ),
            _ => Ok(TableInputs::Raw),
        }
    }

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
        let shape = (sizes[0], sizes[sizes.len() - 1]);
        crate::model::check_sizes(path, shape, "the data", features, classes)
    }

    /// The class names the file holds.
    pub fn class_names(&self) -> Option<Vec<String>> {
        self.view()
            .class_names()
            .map(|n| n.iter().map(str::to_owned).collect())
    }

    /// What the model's first layer is given.
    pub fn input_kind(&self) -> InputKind {
        self.view().input_kind()
    }

    /// Runs `f` with a predictor that maps one byte per input to int32 logits and the
    /// logits' real scale; the model is decoded once for all calls. For a model of
    /// pixels the bytes are the quantized inputs; for another model they are integer
    /// features, as the device's `predict_pixels` takes them.
    pub fn with_predictor<R>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&[u8]) -> Vec<i32>, f32) -> R,
    ) -> R {
        let pixels = self.input_kind() == InputKind::Pixels;
        self.with_feature_predictor(|predict_features, scale| {
            let view = self.view();
            let widest = view.sizes().max_output();
            let (mut a, mut b, mut acc) =
                (vec![0u8; widest], vec![0u8; widest], vec![0i32; widest]);
            let mut predict = |bytes: &[u8]| -> Vec<i32> {
                if !pixels {
                    let features: Vec<f32> = bytes.iter().map(|&b| f32::from(b)).collect();
                    return predict_features(&features);
                }
                forward_one_i8(
                    view.int8_layers().map(|l| l.params()),
                    bytes,
                    &mut a,
                    &mut b,
                    &mut acc,
                )
                .map(<[i32]>::to_vec)
                .unwrap_or_default()
            };
            f(&mut predict, scale)
        })
    }

    /// Runs `f` with a predictor that maps a feature vector to int32 logits (the input
    /// transform and quantization of `mlp_core::quant::quantize_features`, then the
    /// integer layers: the device's `predict_features`) and the logits' real scale.
    pub fn with_feature_predictor<R>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&[f32]) -> Vec<i32>, f32) -> R,
    ) -> R {
        let view = self.view();
        let widest = view.sizes().max_output();
        let logit_scale = view.int8_layers().last().map_or(1.0, |l| l.output_scale);
        let transform = view.input_transform();
        let quantization = view.input_quantization().unwrap_or(InputQuantization {
            scale: INPUT_SCALE,
            zero_point: 0,
        });
        let (mut a, mut b, mut acc) = (vec![0u8; widest], vec![0u8; widest], vec![0i32; widest]);
        let mut quantized = vec![0u8; view.layer_sizes()[0] as usize];
        let mut predict = |features: &[f32]| -> Vec<i32> {
            quantized.resize(features.len(), 0);
            quantize_features(&transform, quantization, features, &mut quantized);
            forward_one_i8(
                view.int8_layers().map(|l| l.params()),
                &quantized,
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

/// Test loss, accuracy and confusion matrix of an int8 model on `data`: images as
/// pixel bytes, a CSV set's raw values as feature vectors (the model's input transform
/// and quantization, as the device's `predict_features`).
pub fn evaluate(model: &Int8Model, data: &Dataset) -> Evaluation {
    let classes = data.classes;
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut loss_sum = 0.0f64;
    let mut score = |logits: &[i32], scale: f32, label: u8| {
        let real: Vec<f32> = logits.iter().map(|&q| q as f32 * scale).collect();
        loss_sum += f64::from(mlp_core::loss::softmax_cross_entropy(
            &real,
            &[label],
            classes,
            None,
        ));
        confusion[usize::from(label)][argmax_i32(logits)] += 1;
    };
    let width = data.features.max(1);
    match &data.values {
        Some(values) => model.with_feature_predictor(|predict, scale| {
            for (x, &label) in values.chunks_exact(width).zip(&data.labels) {
                score(&predict(x), scale, label);
            }
        }),
        None => model.with_predictor(|predict, scale| {
            for (image, &label) in data.pixels.chunks_exact(width).zip(&data.labels) {
                score(&predict(image), scale, label);
            }
        }),
    }
    let n = data.len();
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    Evaluation {
        loss: loss_sum / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        count: n,
        confusion,
    }
}
