//! Format version 3: the input transform, the int8 input's zero point and class names.
//! Files are also built here by hand from `docs/FORMAT.md` ([`raw_file`]), so the
//! writer is checked against the spec, and corrupt fields get a valid checksum so that
//! each reaches the check it is meant for.

use mlp_core::format::{
    crc32, encode, encode_model, encoded_model_len, ClassNameProblem, ElementType, FormatError,
    InputKind, InputQuantization, InputSpec, InputTransform, ModelParts, ModelView,
    MAX_CLASS_NAMES_LEN, MAX_CLASS_NAME_LEN, METADATA_VERSION,
};
use mlp_core::network::{forward_one, pixel_value, standardize};
use mlp_core::quant::{quantize_features, quantize_input};

/// A postcard varint.
fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A version-3 file written from the spec alone: header fields, padding to 4, payload.
fn raw_file(element: u8, input: u8, sizes: &[u32], names_len: usize, payload: &[u8]) -> Vec<u8> {
    let mut file = b"MLPW".to_vec();
    file.push(3);
    file.push(element);
    file.push(input);
    varint(sizes.len(), &mut file);
    for &size in sizes {
        varint(size as usize, &mut file);
    }
    varint(names_len, &mut file);
    file.extend_from_slice(&crc32(payload).to_le_bytes());
    let mut length = Vec::new();
    varint(payload.len(), &mut length);
    let unpadded = file.len() + 1 + length.len();
    let padding = (4 - unpadded % 4) % 4;
    file.push(padding as u8);
    file.extend(std::iter::repeat_n(0, padding));
    file.extend_from_slice(&length);
    file.extend_from_slice(payload);
    file
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn names_section(names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
    }
    out
}

/// The 2-3-2 network of `docs/FORMAT.md`'s examples: all parameters zero but the last
/// bias, `[0.0, 1.5]`.
fn example_parameters() -> Vec<u8> {
    let mut payload = vec![0u8; 68];
    payload[64..68].copy_from_slice(&1.5f32.to_le_bytes());
    payload
}

fn encoded(parts: &ModelParts<'_>) -> Vec<u8> {
    let mut out = vec![0u8; encoded_model_len(parts).unwrap()];
    let used = encode_model(parts, &mut out).unwrap();
    assert_eq!(used, out.len());
    out
}

#[test]
fn the_documented_example_is_byte_for_byte_what_the_writer_writes() {
    // docs/FORMAT.md, "Example: a standardized 2-3-2 network with class names".
    let parameters = example_parameters();
    let parts = ModelParts {
        layer_sizes: &[2, 3, 2],
        element_type: ElementType::F32,
        parameters: &parameters,
        input: InputSpec::Standardized {
            offsets: &[10.0, -2.0],
            scales: &[0.5, 4.0],
        },
        input_zero_point: 0,
        class_names: Some(&["no", "yes"]),
    };
    let file = encoded(&parts);
    let mut payload = f32_bytes(&[10.0, -2.0, 0.5, 4.0]);
    payload.extend_from_slice(&parameters);
    payload.extend_from_slice(&names_section(&["no", "yes"]));
    assert_eq!(file, raw_file(0, 2, &[2, 3, 2], 7, &payload));
    assert_eq!(
        &file[..20],
        &[
            b'M', b'L', b'P', b'W', // magic
            0x03, // version 3
            0x00, // element type: f32
            0x02, // input: standardized
            0x03, 0x02, 0x03, 0x02, // sizes 2, 3, 2
            0x07, // class names: 7 bytes
            0x7e, 0x95, 0x84, 0x9d, // CRC-32 of the payload, 0x9d84_957e
            0x02, 0x00, 0x00, // padding: 2 bytes
            0x5b, // payload length 91
        ][..]
    );
    assert_eq!(file.len(), 20 + 91);
    assert_eq!(
        &file[20..36],
        &[0, 0, 0x20, 0x41, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f, 0, 0, 0x80, 0x40][..],
        "offsets 10, -2, scales 0.5, 4"
    );
    assert_eq!(&file[104..], &[2, b'n', b'o', 3, b'y', b'e', b's'][..]);

    let view = ModelView::decode(&file).unwrap();
    assert_eq!(view.version(), METADATA_VERSION);
    assert_eq!(view.input_kind(), InputKind::Standardized);
    let names: Vec<&str> = view.class_names().unwrap().iter().collect();
    assert_eq!(names, ["no", "yes"]);
    let InputTransform::Standardized(norm) = view.input_transform() else {
        panic!("standardized")
    };
    assert_eq!(norm.pairs().collect::<Vec<_>>(), [(10.0, 0.5), (-2.0, 4.0)]);
    // The f32 parameters start at a multiple of 4 from the start of the file.
    let first_weight = view.layers().next().unwrap().weights.as_ptr() as usize;
    assert_eq!((first_weight - file.as_ptr() as usize) % 4, 0);
    assert_eq!(view.layers().nth(1).unwrap().bias, &parameters[60..68]);
}

#[test]
fn models_of_pixels_without_names_keep_the_old_versions_and_read_as_pixels() {
    let parameters = example_parameters();
    let mut old = vec![0u8; 128];
    let used = encode(&[2, 3, 2], ElementType::F32, &parameters, &mut old).unwrap();
    let view = ModelView::decode(&old[..used]).unwrap();
    assert_eq!(view.version(), 1);
    assert_eq!(view.input_kind(), InputKind::Pixels);
    assert_eq!(view.input_transform(), InputTransform::Pixels);
    assert!(view.class_names().is_none());

    // The same parts through encode_model: the same version-1 bytes.
    let parts = ModelParts {
        layer_sizes: &[2, 3, 2],
        element_type: ElementType::F32,
        parameters: &parameters,
        input: InputSpec::Pixels,
        input_zero_point: 0,
        class_names: None,
    };
    assert_eq!(encoded(&parts), &old[..used]);
    // Names alone make it version 3, and so does another transform.
    let named = encoded(&ModelParts {
        class_names: Some(&["a", "b"]),
        ..parts
    });
    assert_eq!(ModelView::decode(&named).unwrap().version(), 3);
    let features = encoded(&ModelParts {
        input: InputSpec::Features,
        ..parts
    });
    let view = ModelView::decode(&features).unwrap();
    assert_eq!(
        (view.version(), view.input_kind()),
        (3, InputKind::Features)
    );
    assert!(view.class_names().is_none());
}

/// A 2-3-2 int8 payload in version 2's layout (input scale, then the layers).
fn int8_parameters() -> Vec<u8> {
    use mlp_core::quant::{write_int8_layer, QuantizedMultiplier};
    let sizes = [2usize, 3, 2];
    let mut payload = vec![0u8; mlp_core::format::int8_payload_len(&[2, 3, 2]).unwrap()];
    payload[..4].copy_from_slice(&0.25f32.to_le_bytes());
    let m = QuantizedMultiplier::from_real(0.01).unwrap();
    let mut at = 4;
    for pair in sizes.windows(2) {
        let (inputs, outputs) = (pair[0], pair[1]);
        let weights: Vec<i8> = (0..inputs * outputs).map(|k| k as i8 * 7 - 20).collect();
        at += write_int8_layer(
            &mut payload[at..],
            0.5,
            &weights,
            &vec![-300; outputs],
            &vec![m.multiplier; outputs],
            &vec![m.shift as i32; outputs],
        )
        .unwrap();
    }
    assert_eq!(at, payload.len());
    payload
}

#[test]
fn int8_models_keep_their_zero_point_transform_and_names() {
    let parameters = int8_parameters();
    let parts = ModelParts {
        layer_sizes: &[2, 3, 2],
        element_type: ElementType::Int8,
        parameters: &parameters,
        input: InputSpec::Standardized {
            offsets: &[1.0, 2.0],
            scales: &[3.0, 0.125],
        },
        input_zero_point: 128,
        class_names: Some(&["cat", "dog"]),
    };
    let file = encoded(&parts);
    let mut payload = f32_bytes(&[1.0, 2.0, 3.0, 0.125]);
    payload.extend_from_slice(&parameters[..4]);
    payload.extend_from_slice(&128i32.to_le_bytes());
    payload.extend_from_slice(&parameters[4..]);
    payload.extend_from_slice(&names_section(&["cat", "dog"]));
    assert_eq!(file, raw_file(1, 2, &[2, 3, 2], 8, &payload));
    let view = ModelView::decode(&file).unwrap();
    assert_eq!(
        view.input_quantization(),
        Some(InputQuantization {
            scale: 0.25,
            zero_point: 128
        })
    );
    assert_eq!(view.input_scale(), Some(0.25));
    let layers: Vec<_> = view.int8_layers().collect();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].output_scale, 0.5);
    assert_eq!(layers[1].weights, &parameters[parameters.len() - 8..][..6]);
    assert_eq!(view.class_names().unwrap().get(1), Some("dog"));

    // A version-2 file reads with zero point 0.
    let plain = encoded(&ModelParts {
        input: InputSpec::Pixels,
        input_zero_point: 0,
        class_names: None,
        ..parts
    });
    let view = ModelView::decode(&plain).unwrap();
    assert_eq!(view.version(), 2);
    assert_eq!(view.input_quantization().unwrap().zero_point, 0);
}

#[test]
fn the_input_transform_is_the_documented_f32_arithmetic() {
    let parameters = example_parameters();
    let offsets = [0.1f32, -3.7];
    let scales = [1.0 / 3.0, 2.5e-3];
    let file = encoded(&ModelParts {
        layer_sizes: &[2, 3, 2],
        element_type: ElementType::F32,
        parameters: &parameters,
        input: InputSpec::Standardized {
            offsets: &offsets,
            scales: &scales,
        },
        input_zero_point: 0,
        class_names: None,
    });
    let transform = ModelView::decode(&file).unwrap().input_transform();
    let x = [0.7f32, 1e6];
    let mut out = [0.0f32; 2];
    transform.apply(&x, &mut out);
    for i in 0..2 {
        let difference: f32 = x[i] - offsets[i];
        let expected: f32 = difference * scales[i];
        assert_eq!(out[i].to_bits(), expected.to_bits());
        assert_eq!(
            out[i].to_bits(),
            standardize(x[i], offsets[i], scales[i]).to_bits()
        );
    }
    // Not a fused multiply-add: for these values the two differ.
    let fused = (x[0] as f64 - offsets[0] as f64) * scales[0] as f64;
    assert_ne!(out[0] as f64, fused);

    let mut from_bytes = [0.0f32; 2];
    transform.apply_to_bytes(&[7, 200], &mut from_bytes);
    assert_eq!(from_bytes[1], standardize(200.0, offsets[1], scales[1]));
    InputTransform::Pixels.apply_to_bytes(&[7, 200], &mut from_bytes);
    assert_eq!(from_bytes, [pixel_value(7), pixel_value(200)]);
    InputTransform::Pixels.apply(&[7.0, 200.0], &mut out);
    assert_eq!(out, [pixel_value(7), pixel_value(200)]);

    // And the layers run on the result as on any input.
    let view = ModelView::decode(&file).unwrap();
    let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
    let logits = forward_one(view.layers().map(|l| l.params()), &out, &mut a, &mut b).unwrap();
    assert_eq!(logits, &[0.0, 1.5]);
}

#[test]
fn int8_inputs_are_quantized_with_halves_away_from_zero_and_clamped() {
    let q = InputQuantization {
        scale: 0.5,
        zero_point: 100,
    };
    // value / 0.5, rounded half away from zero, + 100, clamped.
    assert_eq!(quantize_input(0.0, q), 100);
    assert_eq!(quantize_input(0.25, q), 101); // 0.5 -> 1
    assert_eq!(quantize_input(-0.25, q), 99); // -0.5 -> -1
    assert_eq!(quantize_input(0.74, q), 101); // 1.48 -> 1
    assert_eq!(quantize_input(77.5, q), 255); // 155 + 100, clamped
    assert_eq!(quantize_input(-50.0, q), 0); // -100 + 100
    assert_eq!(quantize_input(-50.5, q), 0); // clamped
    assert_eq!(quantize_input(f32::INFINITY, q), 255);
    assert_eq!(quantize_input(f32::NEG_INFINITY, q), 0);
    assert_eq!(quantize_input(f32::NAN, q), 0);

    let mut out = [0u8; 3];
    quantize_features(&InputTransform::Pixels, q, &[7.4, 300.0, -1.0], &mut out);
    assert_eq!(out, [7, 255, 0], "pixels are their own steps");
    quantize_features(&InputTransform::Features, q, &[0.25, -0.25, 1.0], &mut out);
    assert_eq!(out, [101, 99, 102]);
}

/// The CRC field of a file (the 4 bytes before the padding), rewritten for its payload.
fn fix_crc(file: &mut [u8], payload_start: usize, crc_at: usize) {
    let crc = crc32(&file[payload_start..]);
    file[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn corrupt_new_fields_are_refused_each_with_its_own_error() {
    let parameters = example_parameters();
    let standardized = |offsets: [f32; 2], scales: [f32; 2], names: &[u8]| {
        let mut payload = f32_bytes(&[offsets[0], offsets[1], scales[0], scales[1]]);
        payload.extend_from_slice(&parameters);
        payload.extend_from_slice(names);
        raw_file(0, 2, &[2, 3, 2], names.len(), &payload)
    };
    let good = standardized([1.0, 2.0], [3.0, 4.0], &names_section(&["no", "yes"]));
    assert!(ModelView::decode(&good).is_ok());

    let mut unknown_input = good.clone();
    unknown_input[6] = 3;
    assert_eq!(
        ModelView::decode(&unknown_input).unwrap_err(),
        FormatError::UnknownInputKind { found: 3 }
    );

    let mut payload = parameters.clone();
    payload.extend(std::iter::repeat_n(b'x', MAX_CLASS_NAMES_LEN + 1));
    assert_eq!(
        ModelView::decode(&raw_file(
            0,
            1,
            &[2, 3, 2],
            MAX_CLASS_NAMES_LEN + 1,
            &payload
        ))
        .unwrap_err(),
        FormatError::ClassNamesTooLong {
            found: MAX_CLASS_NAMES_LEN + 1
        }
    );

    // The names' length counts in the payload's: one byte short is a length mismatch.
    let mut short = good.clone();
    short[11] = 6;
    assert!(matches!(
        ModelView::decode(&short).unwrap_err(),
        FormatError::PayloadLengthMismatch {
            expected: 90,
            found: 91
        }
    ));

    // A flipped name byte is caught by the checksum, as any payload byte.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x20;
    assert!(matches!(
        ModelView::decode(&flipped).unwrap_err(),
        FormatError::ChecksumMismatch { .. }
    ));
    let payload_start = 20;
    fix_crc(&mut flipped, payload_start, 12);
    assert_eq!(
        ModelView::decode(&flipped)
            .unwrap()
            .class_names()
            .unwrap()
            .get(1),
        Some("yeS")
    );

    let no_names = names_section(&["no", "yes"]);
    for (offsets, scales, feature) in [
        ([f32::NAN, 2.0], [3.0, 4.0], 0),
        ([1.0, f32::INFINITY], [3.0, 4.0], 1),
        ([1.0, 2.0], [3.0, f32::NEG_INFINITY], 1),
        ([1.0, 2.0], [0.0, 4.0], 0),
        ([1.0, 2.0], [3.0, -0.0], 1),
        ([1.0, 2.0], [f32::NAN, 4.0], 0),
    ] {
        assert_eq!(
            ModelView::decode(&standardized(offsets, scales, &no_names)).unwrap_err(),
            FormatError::BadNormalization { feature },
            "offsets {offsets:?}, scales {scales:?}"
        );
    }

    let long = "x".repeat(MAX_CLASS_NAME_LEN + 1);
    let cases: [(&[u8], usize, ClassNameProblem); 7] = [
        (&[0, 3, b'y', b'e', b's'], 0, ClassNameProblem::Length),
        (&[2, b'n', b'o', 0], 1, ClassNameProblem::Length),
        (&[2, 0xff, b'o', 1, b'y'], 0, ClassNameProblem::NotUtf8),
        (
            &[2, b'n', b'o', 2, b'y', b'\n'],
            1,
            ClassNameProblem::ControlCharacter,
        ),
        (&[2, b'n', b'o', 9, b'y'], 1, ClassNameProblem::Missing),
        (&[2, b'n', b'o'], 1, ClassNameProblem::Missing),
        (
            &[1, b'a', 1, b'b', 1, b'c'],
            2,
            ClassNameProblem::TrailingBytes,
        ),
    ];
    for (names, class, problem) in cases {
        assert_eq!(
            ModelView::decode(&standardized([1.0, 2.0], [3.0, 4.0], names)).unwrap_err(),
            FormatError::BadClassName { class, problem },
            "names {names:?}"
        );
    }
    let mut too_long = vec![MAX_CLASS_NAME_LEN as u8 + 1];
    too_long.extend_from_slice(long.as_bytes());
    too_long.extend_from_slice(&[1, b'b']);
    assert_eq!(
        ModelView::decode(&standardized([1.0, 2.0], [3.0, 4.0], &too_long)).unwrap_err(),
        FormatError::BadClassName {
            class: 0,
            problem: ClassNameProblem::Length
        }
    );

    // The int8 input: scale positive and finite, zero point in 0..=255, 0 for pixels.
    let int8 = int8_parameters();
    let int8_file = |input: u8, scale: f32, zero_point: i32| {
        let mut payload = Vec::new();
        if input == 2 {
            payload.extend(f32_bytes(&[0.0, 0.0, 1.0, 1.0]));
        }
        payload.extend_from_slice(&scale.to_le_bytes());
        payload.extend_from_slice(&zero_point.to_le_bytes());
        payload.extend_from_slice(&int8[4..]);
        raw_file(1, input, &[2, 3, 2], 0, &payload)
    };
    assert!(ModelView::decode(&int8_file(2, 0.1, 255)).is_ok());
    assert!(ModelView::decode(&int8_file(1, 0.1, 0)).is_ok());
    for (input, scale, zero_point) in [
        (2, 0.1, 256),
        (2, 0.1, -1),
        (0, 0.0, 3),
        (0, f32::NAN, 3),
        (1, 0.1, 1),
    ] {
        assert_eq!(
            ModelView::decode(&int8_file(input, scale, zero_point)).unwrap_err(),
            FormatError::BadQuantization { layer: None },
            "input {input}, scale {scale}, zero point {zero_point}"
        );
    }
    // Version 2 has no input byte: a version-2 header with one is misread, not guessed.
    let mut v2 = int8_file(1, 0.1, 0);
    v2[4] = 2;
    assert!(ModelView::decode(&v2).is_err());
}

#[test]
fn the_writer_refuses_what_the_reader_would() {
    let parameters = example_parameters();
    let parts = ModelParts {
        layer_sizes: &[2, 3, 2],
        element_type: ElementType::F32,
        parameters: &parameters,
        input: InputSpec::Pixels,
        input_zero_point: 0,
        class_names: None,
    };
    let refused = |parts: ModelParts<'_>| encoded_model_len(&parts).unwrap_err();
    assert_eq!(
        refused(ModelParts {
            input: InputSpec::Standardized {
                offsets: &[0.0, 1.0],
                scales: &[1.0, 0.0]
            },
            ..parts
        }),
        FormatError::BadNormalization { feature: 1 }
    );
    assert_eq!(
        refused(ModelParts {
            input: InputSpec::Standardized {
                offsets: &[0.0],
                scales: &[1.0]
            },
            ..parts
        }),
        FormatError::BadNormalization { feature: 1 }
    );
    assert_eq!(
        refused(ModelParts {
            class_names: Some(&["one"]),
            ..parts
        }),
        FormatError::BadClassName {
            class: 1,
            problem: ClassNameProblem::Missing
        }
    );
    assert_eq!(
        refused(ModelParts {
            class_names: Some(&["a", "b", "c"]),
            ..parts
        }),
        FormatError::BadClassName {
            class: 2,
            problem: ClassNameProblem::TrailingBytes
        }
    );
    assert_eq!(
        refused(ModelParts {
            class_names: Some(&["a", ""]),
            ..parts
        }),
        FormatError::BadClassName {
            class: 1,
            problem: ClassNameProblem::Length
        }
    );
    assert_eq!(
        refused(ModelParts {
            class_names: Some(&["a\u{1b}[31m", "b"]),
            ..parts
        }),
        FormatError::BadClassName {
            class: 0,
            problem: ClassNameProblem::ControlCharacter
        }
    );
    let int8 = int8_parameters();
    assert_eq!(
        refused(ModelParts {
            element_type: ElementType::Int8,
            parameters: &int8,
            input_zero_point: 5,
            ..parts
        }),
        FormatError::BadQuantization { layer: None }
    );
    // Many classes with long names exceed the section's cap.
    let sizes = [2u32, 300];
    let many = vec![0u8; mlp_core::format::f32_payload_len(&sizes).unwrap()];
    let name = "n".repeat(MAX_CLASS_NAME_LEN);
    let names: Vec<&str> = vec![name.as_str(); 300];
    assert_eq!(
        refused(ModelParts {
            layer_sizes: &sizes,
            parameters: &many,
            class_names: Some(&names),
            ..parts
        }),
        FormatError::ClassNamesTooLong { found: 300 * 65 }
    );
}
