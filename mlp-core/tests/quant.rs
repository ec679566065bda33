//! Integer-only inference: fixed-point requantization against real arithmetic, the
//! int8 kernel against naive sums, a quantized network against its f32 source, and
//! int8 model files (format version 2).

mod common;

use common::{Mlp, SplitMix};
use mlp_core::format::{
    encode, encoded_len, int8_payload_len, ElementType, FormatError, ModelView,
};
use mlp_core::quant::{
    argmax_i32, dense_accumulate_i8, forward_i8, forward_one_i8, quantize_layer, requantize,
    write_int8_layer, CoreInt8Kernel, Int8Kernel, Int8Output, QuantForwardError, QuantLayerParams,
    QuantizedMultiplier,
};

#[test]
fn multipliers_represent_reals_to_31_bits() {
    let mut rng = SplitMix(20);
    for _ in 0..10_000 {
        let real = 10f64.powf(rng.symmetric() as f64 * 9.0); // 1e-9 ..= 1e9
        let m = QuantizedMultiplier::from_real(real).unwrap();
        assert!(m.multiplier >= 1 << 30, "{real}: {m:?}");
        assert!(
            ((m.to_real() - real) / real).abs() < 1.0 / (1u64 << 30) as f64,
            "{real}: {m:?}"
        );
    }
    assert_eq!(QuantizedMultiplier::from_real(0.0).unwrap().to_real(), 0.0);
    assert_eq!(QuantizedMultiplier::from_real(-1.0), None);
    assert_eq!(QuantizedMultiplier::from_real(f64::NAN), None);
    assert_eq!(QuantizedMultiplier::from_real(f64::INFINITY), None);
    assert_eq!(QuantizedMultiplier::from_real(3e9), None);
    assert_eq!(
        QuantizedMultiplier::from_real(1e-30).unwrap().to_real(),
        0.0
    );
}

#[test]
fn requantize_rounds_to_nearest() {
    let mut rng = SplitMix(21);
    for _ in 0..100_000 {
        let acc = (rng.next_u64() as i32) >> rng.below(24);
        let m =
            QuantizedMultiplier::from_real(10f64.powf(rng.symmetric() as f64 * 4.0 - 2.0)).unwrap();
        let exact = f64::from(acc) * m.to_real();
        let got = requantize(acc, m);
        if exact.abs() < 2e9 {
            assert!(
                (f64::from(got) - exact).abs() <= 0.5 + 1e-6,
                "{acc} · {m:?} = {exact}, got {got}"
            );
        }
    }
    // Halves round up; saturation instead of wrapping.
    let half = QuantizedMultiplier::from_real(0.5).unwrap();
    assert_eq!(requantize(3, half), 2);
    assert_eq!(requantize(-3, half), -1);
    let big = QuantizedMultiplier::from_real(1e6).unwrap();
    assert_eq!(requantize(i32::MAX, big), i32::MAX);
    assert_eq!(requantize(i32::MIN, big), i32::MIN);
}

#[test]
fn int8_accumulation_matches_naive_sums() {
    let mut rng = SplitMix(22);
    for (inputs, outputs) in [(0, 3), (1, 1), (7, 5), (784, 100), (13, 0)] {
        let x: Vec<u8> = (0..inputs)
            .map(|_| {
                if rng.below(3) == 0 {
                    0
                } else {
                    rng.below(256) as u8
                }
            })
            .collect();
        let w: Vec<i8> = (0..inputs * outputs)
            .map(|_| (rng.below(255) as i32 - 127) as i8)
            .collect();
        let b: Vec<i32> = (0..outputs).map(|_| rng.next_u64() as i32 >> 8).collect();
        let mut acc = vec![0; outputs];
        dense_accumulate_i8(&x, &w, &b, &mut acc);
        for j in 0..outputs {
            let expected: i64 = i64::from(b[j])
                + (0..inputs)
                    .map(|i| i64::from(x[i]) * i64::from(w[i * outputs + j]))
                    .sum::<i64>();
            assert_eq!(i64::from(acc[j]), expected);
        }
    }
}

/// Calibrated output scales for each layer of `model` on `inputs` (bytes): hidden
/// layers map their largest ReLU output to 255, the logits their largest magnitude
/// to 2^20.
fn calibrate(model: &Mlp, inputs: &[u8], batch: usize) -> Vec<f32> {
    let x: Vec<f32> = inputs.iter().map(|&p| f32::from(p) / 255.0).collect();
    let activations = model.forward(&x, batch);
    let last = model.layers.len() - 1;
    (1..activations.len())
        .map(|k| {
            let largest = activations[k].iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if k - 1 == last {
                largest / (1 << 20) as f32
            } else {
                largest / 255.0
            }
        })
        .collect()
}

/// One quantized layer: weights, bias, multiplier, shift, inputs, outputs.
type QuantLayer = (Vec<i8>, Vec<i32>, Vec<i32>, Vec<i32>, usize, usize);

struct QuantModel {
    layers: Vec<QuantLayer>,
    scales: Vec<f32>,
}

fn quantize(model: &Mlp, scales: &[f32]) -> QuantModel {
    let mut input_scale = 1.0 / 255.0;
    let mut layers = Vec::new();
    for (layer, &output_scale) in model.layers.iter().zip(scales) {
        let mut qw = vec![0i8; layer.weights.len()];
        let (mut qb, mut m, mut s) = (
            vec![0; layer.outputs],
            vec![0; layer.outputs],
            vec![0; layer.outputs],
        );
        quantize_layer(
            &layer.weights,
            &layer.bias,
            input_scale,
            output_scale,
            &mut qw,
            &mut qb,
            &mut m,
            &mut s,
        )
        .unwrap();
        layers.push((qw, qb, m, s, layer.inputs, layer.outputs));
        input_scale = output_scale;
    }
    QuantModel {
        layers,
        scales: scales.to_vec(),
    }
}

impl QuantModel {
    fn params(&self) -> impl ExactSizeIterator<Item = QuantLayerParams<'_, i8, i32>> {
        self.layers
            .iter()
            .map(|(w, b, m, s, inputs, outputs)| QuantLayerParams {
                inputs: *inputs,
                outputs: *outputs,
                weights: w,
                bias: b,
                multiplier: m,
                shift: s,
            })
    }

    fn file(&self, sizes: &[u32]) -> Vec<u8> {
        let mut payload = vec![0u8; int8_payload_len(sizes).unwrap()];
        payload[..4].copy_from_slice(&(1.0f32 / 255.0).to_le_bytes());
        let mut at = 4;
        for ((w, b, m, s, _, _), &scale) in self.layers.iter().zip(&self.scales) {
            at += write_int8_layer(&mut payload[at..], scale, w, b, m, s).unwrap();
        }
        assert_eq!(at, payload.len());
        let mut file = vec![0u8; encoded_len(sizes, payload.len()).unwrap()];
        encode(sizes, ElementType::Int8, &payload, &mut file).unwrap();
        file
    }
}

fn digit_like_images(rng: &mut SplitMix, count: usize) -> Vec<u8> {
    (0..count * 64)
        .map(|_| {
            if rng.below(10) < 6 {
                0
            } else {
                rng.below(256) as u8
            }
        })
        .collect()
}

#[test]
fn a_quantized_network_agrees_with_its_f32_source() {
    let mut rng = SplitMix(23);
    let model = Mlp::new_xavier(&[64, 32, 24, 10], &mut rng);
    let images = digit_like_images(&mut rng, 200);
    let scales = calibrate(&model, &images, 200);
    let quantized = quantize(&model, &scales);
    let x: Vec<f32> = images.iter().map(|&p| f32::from(p) / 255.0).collect();
    let reference = model.forward(&x, 200).pop().unwrap();
    let (mut a, mut b, mut acc) = (vec![0u8; 32], vec![0u8; 32], vec![0i32; 32]);
    let mut agree = 0;
    let logit_range = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (image, expected) in images.chunks_exact(64).zip(reference.chunks_exact(10)) {
        let logits = forward_one_i8(quantized.params(), image, &mut a, &mut b, &mut acc).unwrap();
        for (&q, &r) in logits.iter().zip(expected) {
            worst = worst.max((q as f32 * scales[2] - r).abs());
        }
        agree += usize::from(argmax_i32(logits) == mlp_core::loss::argmax(expected));
    }
    assert!(
        worst < 0.05 * logit_range,
        "logit error {worst} of range {logit_range}"
    );
    assert!(agree >= 190, "only {agree} of 200 classes agree");
}

#[test]
fn int8_files_round_trip_and_predict_in_place() {
    let mut rng = SplitMix(24);
    let sizes = [64u32, 32, 24, 10];
    let model = Mlp::new_xavier(&[64, 32, 24, 10], &mut rng);
    let images = digit_like_images(&mut rng, 50);
    let quantized = quantize(&model, &calibrate(&model, &images, 50));
    let file = quantized.file(&sizes);
    let view = ModelView::decode(&file).unwrap();
    assert_eq!(view.version(), 2);
    assert_eq!(view.element_type(), ElementType::Int8);
    assert_eq!(view.input_scale(), Some(1.0 / 255.0));
    assert_eq!(view.layers().count(), 0, "no f32 layers in an int8 model");
    assert_eq!(view.int8_layers().count(), 3);
    let (mut a, mut b, mut acc1, mut acc2) =
        (vec![0u8; 32], vec![0u8; 32], vec![0i32; 32], vec![0i32; 32]);
    for image in images.chunks_exact(64) {
        let from_file = forward_one_i8(
            view.int8_layers().map(|l| l.params()),
            image,
            &mut a,
            &mut b,
            &mut acc1,
        )
        .unwrap()
        .to_vec();
        let from_memory =
            forward_one_i8(quantized.params(), image, &mut a, &mut b, &mut acc2).unwrap();
        assert_eq!(from_file, from_memory);
    }
    // The walkthrough's model: the int8 payload is under 26% of the f32 one.
    let walkthrough = [784, 100, 200, 10];
    assert_eq!(int8_payload_len(&walkthrough).unwrap(), 104_136);
    assert!(
        int8_payload_len(&walkthrough).unwrap() * 100
            < mlp_core::format::f32_payload_len(&walkthrough).unwrap() * 26
    );
    // This small one: a quarter of the f32 bytes plus its per-neuron tables.
    let f32_bytes = mlp_core::format::f32_payload_len(&sizes).unwrap();
    assert!(
        view.payload().len() * 100 <= f32_bytes * 45,
        "{} vs {f32_bytes}",
        view.payload().len()
    );
}

#[test]
fn bad_quantization_parameters_are_rejected() {
    let mut rng = SplitMix(25);
    let sizes = [6u32, 3, 2];
    let model = Mlp::new_xavier(&[6, 3, 2], &mut rng);
    let quantized = quantize(&model, &[0.01, 0.001]);
    let good = quantized.file(&sizes);
    let view = ModelView::decode(&good).unwrap();
    let payload_at = view.payload().as_ptr() as usize - good.as_ptr() as usize;
    // Payload: input scale 4, then layer 0: scale 4, bias 12, multiplier 12, shift 12, weights 18 + pad 2.
    let layer0 = payload_at + 4;
    let cases: [(&str, usize, [u8; 4], Option<usize>); 5] = [
        ("NaN input scale", payload_at, f32::NAN.to_le_bytes(), None),
        ("zero output scale", layer0, 0f32.to_le_bytes(), Some(0)),
        (
            "negative multiplier",
            layer0 + 4 + 12,
            (-5i32).to_le_bytes(),
            Some(0),
        ),
        ("shift of 63", layer0 + 4 + 24, 63i32.to_le_bytes(), Some(0)),
        (
            "non-zero padding",
            layer0 + 4 + 36 + 16,
            [0, 0, 7, 7],
            Some(0),
        ),
    ];
    for (name, at, bytes, layer) in cases {
        let mut bad = good.clone();
        bad[at..at + 4].copy_from_slice(&bytes);
        // Keep the checksum right so the quantization check is what fails.
        let crc = mlp_core::format::crc32(&bad[payload_at..]);
        bad[10..14].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            ModelView::decode(&bad).err(),
            Some(FormatError::BadQuantization { layer }),
            "case: {name}"
        );
    }
}

/// The core's int8 kernel, recording what the loop asks of it.
#[derive(Default)]
struct Recording {
    calls: Vec<&'static str>,
}

impl<'a> Int8Kernel<QuantLayerParams<'a, i8, i32>> for Recording {
    fn accumulate(&mut self, layer: &QuantLayerParams<'a, i8, i32>, x: &[u8], acc: &mut [i32]) {
        self.calls.push("accumulate");
        CoreInt8Kernel.accumulate(layer, x, acc);
    }

    fn requantize(
        &mut self,
        layer: &QuantLayerParams<'a, i8, i32>,
        acc: &mut [i32],
        output: Int8Output<'_>,
    ) {
        self.calls.push(match output {
            Int8Output::Hidden(_) => "hidden",
            Int8Output::Logits => "logits",
        });
        CoreInt8Kernel.requantize(layer, acc, output);
    }
}

#[test]
fn the_int8_layer_loop_runs_any_kernel_and_reports_what_does_not_fit() {
    let mut rng = SplitMix(25);
    let model = Mlp::new_xavier(&[64, 32, 24, 10], &mut rng);
    let images = digit_like_images(&mut rng, 4);
    let quantized = quantize(&model, &calibrate(&model, &images, 4));
    let (mut a, mut b, mut acc) = (vec![0u8; 32], vec![0u8; 32], vec![0i32; 32]);
    let image = &images[..64];
    let expected = forward_one_i8(quantized.params(), image, &mut a, &mut b, &mut acc)
        .unwrap()
        .to_vec();
    let mut kernel = Recording::default();
    let logits = forward_i8(
        &mut kernel,
        quantized.params(),
        image,
        &mut a,
        &mut b,
        &mut acc,
    );
    assert_eq!(logits.unwrap(), expected);
    assert_eq!(
        kernel.calls,
        [
            "accumulate",
            "hidden",
            "accumulate",
            "hidden",
            "accumulate",
            "logits"
        ]
    );
    // Layers are numbered from the first one given.
    let later = quantized.params().skip(1);
    assert_eq!(
        forward_i8(&mut kernel, later, image, &mut a, &mut b, &mut acc),
        Err(QuantForwardError::ShapeMismatch { layer: 0 })
    );
    assert_eq!(
        forward_i8(
            &mut kernel,
            quantized.params(),
            image,
            &mut a,
            &mut b[..23],
            &mut acc
        ),
        Err(QuantForwardError::BufferTooSmall { layer: 1 })
    );
    assert_eq!(
        forward_i8(
            &mut kernel,
            quantized.params(),
            image,
            &mut a,
            &mut b,
            &mut acc[..10]
        ),
        Err(QuantForwardError::BufferTooSmall { layer: 0 })
    );
    let mut bad = quantized.params().collect::<Vec<_>>();
    bad[2].shift = &bad[2].shift[..9];
    assert_eq!(
        forward_i8(&mut kernel, bad, image, &mut a, &mut b, &mut acc),
        Err(QuantForwardError::ParameterLength { layer: 2 })
    );
    assert_eq!(
        forward_i8(
            &mut kernel,
            quantized.params().take(0),
            image,
            &mut a,
            &mut b,
            &mut acc
        ),
        Err(QuantForwardError::NoLayers)
    );
}
