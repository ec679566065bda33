//! int8 models of inputs that are not pixels: a model of standardized features is
//! quantized with an input scale and zero point calibrated on the training inputs, and
//! keeps its accuracy as a model of pixels does.
//!
//! The data are the bundled digits, read as 784 features each standardized with the
//! training split's mean and standard deviation (what the trainer does for a CSV file):
//! a model trained on pixels is rewritten into the exactly equivalent model of
//! standardized features (its first layer absorbs the offsets and scales), so the f32
//! accuracy is the pixel model's and only the quantization of the new input is tested.

use crate::common::*;

use mlp_train::data::{load_split, Split};
use mlp_train::model::{Input, Mlp};
use mlp_train::quantize::{evaluate, quantize, Int8Model};
use mlp_train::train::Compute;

#[test]
fn an_int8_model_of_standardized_features_keeps_its_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let pixels = Mlp::load(&train_bundled(&out, 5, &[])).unwrap();
    let data = bundled();
    let train = load_split(&data, Split::Train, None).unwrap();
    let test = load_split(&data, Split::Test, None).unwrap();

    // Offsets and scales as the contract says: mean and 1 / population std over the
    // training split, in f64, rounded once to f32; a constant feature gets scale 1.
    let features = train.features;
    let n = train.len() as f64;
    let mut offsets = Vec::new();
    let mut scales = Vec::new();
    for i in 0..features {
        let column = train.pixels.iter().skip(i).step_by(features);
        let mean = column.clone().map(|&p| f64::from(p)).sum::<f64>() / n;
        let var = column.map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / n;
        offsets.push(mean as f32);
        scales.push(if var > 0.0 {
            (1.0 / var.sqrt()) as f32
        } else {
            1.0
        });
    }
    // x / 255 = (x - o) · s / (255 s) + o / 255: fold 1 / (255 s) into the weights and
    // Σ_i W[i][j] o_i / 255 into the biases.
    let mut standardized = pixels.clone();
    let first = standardized.layout()[0].clone();
    for (i, &scale) in scales.iter().enumerate() {
        for j in 0..first.outputs {
            let w = f64::from(pixels.params[first.weights.start + i * first.outputs + j]);
            standardized.params[first.weights.start + i * first.outputs + j] =
                (w / (255.0 * f64::from(scale))) as f32;
        }
    }
    for j in 0..first.outputs {
        let shift: f64 = (0..features)
            .map(|i| {
                f64::from(pixels.params[first.weights.start + i * first.outputs + j])
                    * f64::from(offsets[i])
                    / 255.0
            })
            .sum();
        let b = &mut standardized.params[first.bias.start + j];
        *b = (f64::from(*b) + shift) as f32;
    }
    standardized.input = Input::Standardized { offsets, scales };

    // The host's batched evaluation transforms every image as the per-image path does.
    let features_of =
        |k: usize| -> Vec<f32> { test.image(k).iter().map(|&p| f32::from(p)).collect() };
    let correct = (0..test.len())
        .filter(|&k| {
            let logits = standardized.logits_features(&features_of(k)).unwrap();
            mlp_core::loss::argmax(&logits) == usize::from(test.labels[k])
        })
        .count();
    let compute = Compute::default();
    let pixel_accuracy = compute.evaluate(&pixels, &test).unwrap().accuracy;
    let f32_accuracy = compute.evaluate(&standardized, &test).unwrap().accuracy;
    assert_eq!(correct as f64 / test.len() as f64, f32_accuracy);
    let calibration = train.slice(0..2000);
    let int8_bytes = quantize(&standardized, &calibration).unwrap();
    let int8 = Int8Model::from_file_bytes(int8_bytes.clone(), "int8.mlp".as_ref()).unwrap();
    let int8_accuracy = evaluate(&int8, &test).accuracy;
    let pixel_int8 = Int8Model::from_file_bytes(
        quantize(&pixels, &calibration).unwrap(),
        "pixels-int8.mlp".as_ref(),
    )
    .unwrap();
    let pixel_int8_accuracy = evaluate(&pixel_int8, &test).accuracy;
    eprintln!(
        "bundled digits, test accuracy: pixels f32 {pixel_accuracy:.4}, int8 \
         {pixel_int8_accuracy:.4}; standardized f32 {f32_accuracy:.4}, int8 {int8_accuracy:.4}"
    );
    let view = mlp_core::format::ModelView::decode(&int8_bytes).unwrap();
    assert_eq!(view.version(), 3);
    let quantization = view.input_quantization().unwrap();
    eprintln!("input quantization: {quantization:?}");
    assert!(
        (1..=254).contains(&quantization.zero_point),
        "standardized inputs are on both sides of 0: {quantization:?}"
    );
    // The rewrite is exact up to rounding: the same accuracy within a few images.
    assert!(
        (f32_accuracy - pixel_accuracy).abs() <= 0.003,
        "{pixel_accuracy} -> {f32_accuracy}"
    );
    // The quantizer's goal, as for images: at most half a point lost to quantization.
    assert!(
        f32_accuracy - int8_accuracy <= 0.005,
        "int8 loses more than 0.5 points: {f32_accuracy} -> {int8_accuracy}"
    );
}
