//! Feature vectors on the device: the stored input transform (format version 3) is
//! applied exactly as the host's reference applies it, for f32 and int8 models, and
//! byte inputs of a model that is not of pixels are features too.

use mlp_core::format::{
    encode_model, encoded_model_len, ElementType, InputSpec, ModelParts, ModelView,
};
use mlp_core::network::forward_one;
use mlp_core::quant::{forward_one_i8, quantize_features, write_int8_layer, QuantizedMultiplier};
use mlp_embedded::{Int8Model, Model, Scratch};

const SIZES: [u32; 3] = [5, 7, 3];
const OFFSETS: [f32; 5] = [10.0, -0.3, 1e4, 0.0, 2.5];
const SCALES: [f32; 5] = [0.1, 3.3, 1e-4, 1.0, -0.7];

fn file(parts: &ModelParts<'_>) -> Vec<u8> {
    let mut out = vec![0u8; encoded_model_len(parts).unwrap()];
    encode_model(parts, &mut out).unwrap();
    out
}

fn f32_parameters() -> Vec<u8> {
    let len = mlp_core::format::f32_payload_len(&SIZES).unwrap() / 4;
    (0..len)
        .map(|k| ((k * 37 % 23) as f32 - 11.0) / 7.0)
        .flat_map(f32::to_le_bytes)
        .collect()
}

fn int8_parameters() -> Vec<u8> {
    let mut payload = vec![0u8; mlp_core::format::int8_payload_len(&SIZES).unwrap()];
    payload[..4].copy_from_slice(&0.05f32.to_le_bytes());
    let m = QuantizedMultiplier::from_real(0.003).unwrap();
    let mut at = 4;
    for pair in SIZES.windows(2) {
        let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
        let weights: Vec<i8> = (0..inputs * outputs)
            .map(|k| ((k * 53 % 255) as i32 - 127) as i8)
            .collect();
        let bias: Vec<i32> = (0..outputs).map(|j| 1000 * j as i32 - 1500).collect();
        at += write_int8_layer(
            &mut payload[at..],
            0.02,
            &weights,
            &bias,
            &vec![m.multiplier; outputs],
            &vec![m.shift as i32; outputs],
        )
        .unwrap();
    }
    payload
}

fn feature_vectors() -> Vec<[f32; 5]> {
    vec![
        [10.0, -0.3, 1e4, 0.0, 2.5],
        [12.5, 0.1, 9000.0, -3.0, 0.0],
        [-1e3, 7.7, 2e4, 1e-6, 99.0],
        [0.3, -0.3, 1e4 + 1.0, 0.5, 2.5000002],
    ]
}

#[test]
fn f32_features_are_standardized_as_the_host_does_then_run() {
    let parameters = f32_parameters();
    let bytes = file(&ModelParts {
        layer_sizes: &SIZES,
        element_type: ElementType::F32,
        parameters: &parameters,
        input: InputSpec::Standardized {
            offsets: &OFFSETS,
            scales: &SCALES,
        },
        input_zero_point: 0,
        class_names: Some(&["a", "b", "c"]),
    });
    let model = Model::<5, 3, 7>::load(&bytes).unwrap();
    let view = ModelView::decode(&bytes).unwrap();
    let mut scratch = Scratch::new();
    for features in feature_vectors() {
        let mut inputs = [0.0f32; 5];
        view.input_transform().apply(&features, &mut inputs);
        for i in 0..5 {
            let by_hand: f32 = (features[i] - OFFSETS[i]) * SCALES[i];
            assert_eq!(inputs[i].to_bits(), by_hand.to_bits());
        }
        let (mut a, mut b) = ([0.0; 7], [0.0; 7]);
        let host = forward_one(view.layers().map(|l| l.params()), &inputs, &mut a, &mut b)
            .unwrap()
            .to_vec();
        let device = model.predict_features(&features, &mut scratch);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&device.logits), bits(&host), "features {features:?}");
        // `predict` takes the first layer's inputs themselves.
        assert_eq!(
            bits(&model.predict(&inputs, &mut scratch).logits),
            bits(&host)
        );
    }
    // Bytes are integer features.
    let raw = [200u8, 0, 255, 3, 7];
    assert_eq!(
        model.predict_pixels(&raw, &mut scratch).logits,
        model
            .predict_features(&raw.map(f32::from), &mut scratch)
            .logits
    );
}

#[test]
fn int8_features_are_standardized_then_quantized_as_the_host_does() {
    let parameters = int8_parameters();
    let parts = ModelParts {
        layer_sizes: &SIZES,
        element_type: ElementType::Int8,
        parameters: &parameters,
        input: InputSpec::Standardized {
            offsets: &OFFSETS,
            scales: &SCALES,
        },
        input_zero_point: 131,
        class_names: None,
    };
    let bytes = file(&parts);
    let model = Int8Model::<5, 3, 7>::load(&bytes).unwrap();
    let view = ModelView::decode(&bytes).unwrap();
    let mut scratch = Default::default();
    let mut distinct = std::collections::HashSet::new();
    for features in feature_vectors() {
        let mut quantized = [0u8; 5];
        quantize_features(
            &view.input_transform(),
            view.input_quantization().unwrap(),
            &features,
            &mut quantized,
        );
        let (mut a, mut b, mut acc) = ([0u8; 7], [0u8; 7], [0i32; 7]);
        let host = forward_one_i8(
            view.int8_layers().map(|l| l.params()),
            &quantized,
            &mut a,
            &mut b,
            &mut acc,
        )
        .unwrap()
        .to_vec();
        let device = model.predict_features(&features, &mut scratch);
        assert_eq!(device.logits.as_slice(), host.as_slice());
        distinct.insert(device.logits);
        distinct.insert(model.predict_features(&features, &mut scratch).logits);
    }
    assert!(
        distinct.len() > 2,
        "the inputs reach the logits: {distinct:?}"
    );
    // The first feature vector sits exactly on the offsets: every input is the zero
    // point.
    let mut quantized = [0u8; 5];
    quantize_features(
        &view.input_transform(),
        view.input_quantization().unwrap(),
        &OFFSETS,
        &mut quantized,
    );
    assert_eq!(quantized, [131; 5]);
    let raw = [200u8, 0, 255, 3, 7];
    assert_eq!(
        model.predict_pixels(&raw, &mut scratch).logits,
        model
            .predict_features(&raw.map(f32::from), &mut scratch)
            .logits
    );

    // A model of pixels given pixel values as features: the bytes' logits.
    let plain = file(&ModelParts {
        input: InputSpec::Pixels,
        input_zero_point: 0,
        ..parts
    });
    let model = Int8Model::<5, 3, 7>::load(&plain).unwrap();
    assert_eq!(
        model
            .predict_features(&raw.map(f32::from), &mut scratch)
            .logits,
        model.predict_pixels(&raw, &mut scratch).logits
    );
}
