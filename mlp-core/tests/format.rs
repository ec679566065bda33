//! The model file format: round trips, alignment, and every kind of corrupt input
//! rejected with its own error, never a panic.

use mlp_core::format::{
    crc32, encode, encoded_len, f32_payload_len, ElementType, FormatError, ModelView,
    FORMAT_VERSION, MAGIC, MAX_LAYERS, MAX_WIDTH, PAYLOAD_ALIGN,
};

fn f32_payload(sizes: &[u32], seed: u32) -> Vec<u8> {
    let len = f32_payload_len(sizes).unwrap();
    (0..len / 4)
        .map(|k| ((k as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 * 1e-9)
        .flat_map(f32::to_le_bytes)
        .collect()
}

fn model_file(sizes: &[u32]) -> Vec<u8> {
    model_file_with(sizes, &f32_payload(sizes, 0xdead_beef))
}

fn model_file_with(sizes: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; encoded_len(sizes, payload.len()).unwrap()];
    let used = encode(sizes, ElementType::F32, payload, &mut out).unwrap();
    assert_eq!(used, out.len());
    out
}

#[test]
fn round_trip_keeps_sizes_and_every_parameter() {
    for sizes in [
        &[2u32, 3, 2][..],
        &[784, 100, 200, 10],
        &[1, 1],
        &[5, 7, 7, 7, 3],
    ] {
        let payload = f32_payload(sizes, 42);
        let file = model_file_with(sizes, &payload);
        let model = ModelView::decode(&file).unwrap();
        assert_eq!(model.version(), 1, "f32 models stay version 1");
        assert_eq!(model.element_type(), ElementType::F32);
        assert_eq!(model.layer_sizes(), sizes);
        // The decoded payload is the encoded one, byte for byte.
        assert_eq!(model.payload(), &payload[..]);
        // Layers tile it in order, W then b for each, each with the bytes encoded there.
        let mut offset = 0;
        for (layer, pair) in model.layers().zip(sizes.windows(2)) {
            let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
            assert_eq!((layer.inputs, layer.outputs), (inputs, outputs));
            let weights = &payload[offset..offset + 4 * inputs * outputs];
            assert_eq!(layer.weights, weights);
            offset += weights.len();
            assert_eq!(layer.bias, &payload[offset..offset + 4 * outputs]);
            offset += 4 * outputs;
        }
        assert_eq!(offset, payload.len());
        assert_eq!(model.layers().count(), sizes.len() - 1);
    }
}

#[test]
fn payload_starts_aligned_and_is_borrowed_not_copied() {
    for sizes in [
        &[2u32, 3, 2][..],
        &[784, 100, 200, 10],
        &[300, 200, 10],
        &[130, 1],
    ] {
        let file = model_file(sizes);
        let model = ModelView::decode(&file).unwrap();
        let offset = model.payload().as_ptr() as usize - file.as_ptr() as usize;
        assert_eq!(offset % PAYLOAD_ALIGN, 0, "sizes {sizes:?}");
        assert_eq!(&file[offset..], model.payload());
    }
}

#[test]
fn decodes_at_any_alignment() {
    let file = model_file(&[3, 4, 2]);
    for shift in 0..4 {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(&file);
        let model = ModelView::decode(&shifted[shift..]).unwrap();
        assert_eq!(model.layer_sizes(), &[3, 4, 2]);
    }
}

#[test]
fn walkthrough_model_has_the_documented_size() {
    let file = model_file(&[784, 100, 200, 10]);
    let parameters = 784 * 100 + 100 + 100 * 200 + 200 + 200 * 10 + 10;
    assert_eq!(parameters, 100_710);
    let model = ModelView::decode(&file).unwrap();
    assert_eq!(model.sizes().parameter_count(), parameters);
    assert_eq!(model.sizes().macs(), 100_400);
    assert_eq!(model.sizes().max_output(), 200);
    assert_eq!(model.payload().len(), parameters * 4);
    // Header: magic 4, version 1, type 1, count 1, sizes 2+1+2+1, crc 4, padding 1+n, length 3.
    assert!(
        file.len() - parameters * 4 <= 24,
        "header is {} bytes",
        file.len() - parameters * 4
    );
}

/// The bytes of the header: where each field of a 2-3-2 file sits.
fn offsets() -> (Vec<u8>, usize) {
    let file = model_file(&[2, 3, 2]);
    let payload_start =
        ModelView::decode(&file).unwrap().payload().as_ptr() as usize - file.as_ptr() as usize;
    (file, payload_start)
}

#[test]
fn corrupt_inputs_each_get_their_own_error() {
    let (good, payload_start) = offsets();
    // Header of a 2-3-2 f32 file: M L P W | 01 | 00 | 03 02 03 02 | crc×4 | pad-len pad… | len | payload
    let crc_at = 10;
    let pad_len_at = 14;
    let payload_len_at = payload_start - 1;
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        edit(&mut bytes);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, FormatError)> = vec![
        ("empty", vec![], FormatError::TruncatedHeader),
        ("magic only", MAGIC.to_vec(), FormatError::TruncatedHeader),
        (
            "bad magic",
            with(&|b| b[0] = b'X'),
            FormatError::BadMagic { found: *b"XLPW" },
        ),
        (
            "a PNG",
            b"\x89PNG\r\n\x1a\n".to_vec(),
            FormatError::BadMagic { found: *b"\x89PNG" },
        ),
        (
            "version from the future",
            with(&|b| b[4] = FORMAT_VERSION as u8 + 1),
            FormatError::UnsupportedVersion {
                found: FORMAT_VERSION + 1,
            },
        ),
        (
            "version 0",
            with(&|b| b[4] = 0),
            FormatError::UnsupportedVersion { found: 0 },
        ),
        (
            "overlong version varint",
            with(&|b| b.splice(4..5, [0xff, 0xff, 0xff, 0xff]).for_each(drop)),
            FormatError::MalformedHeader,
        ),
        (
            "unknown element type",
            with(&|b| b[5] = 9),
            FormatError::UnknownElementType { found: 9 },
        ),
        (
            "int8 element type in a version-1 file",
            with(&|b| b[5] = 1),
            FormatError::UnknownElementType { found: 1 },
        ),
        ("no layers", with(&|b| b[6] = 1), FormatError::NoLayers),
        (
            "too many layers",
            with(&|b| b[6] = MAX_LAYERS as u8 + 2),
            FormatError::TooManyLayers {
                found: MAX_LAYERS + 1,
            },
        ),
        (
            "zero width",
            with(&|b| b[8] = 0),
            FormatError::BadLayerSize { index: 1, size: 0 },
        ),
        (
            "absurd width",
            // Size 1 becomes 2^28 - 1 (varint ff ff ff 7f).
            with(&|b| b.splice(8..9, [0xff, 0xff, 0xff, 0x7f]).for_each(drop)),
            FormatError::BadLayerSize {
                index: 1,
                size: (1 << 28) - 1,
            },
        ),
        (
            "absurd width just above the limit",
            with(&|b| b.splice(8..9, [0x81, 0x80, 0x40]).for_each(drop)),
            FormatError::BadLayerSize {
                index: 1,
                size: MAX_WIDTH + 1,
            },
        ),
        (
            "header cut inside the layer sizes",
            good[..8].to_vec(),
            FormatError::TruncatedHeader,
        ),
        (
            "header cut inside the checksum",
            good[..crc_at + 2].to_vec(),
            FormatError::TruncatedHeader,
        ),
        (
            "padding too long",
            with(&|b| b[pad_len_at] = 7),
            FormatError::BadPadding,
        ),
        (
            "padding not zero",
            with(&|b| {
                if b[pad_len_at] == 0 {
                    b.insert(pad_len_at + 1, 0);
                    b[pad_len_at] = 1;
                }
                b[pad_len_at + 1] = 0x55;
            }),
            FormatError::BadPadding,
        ),
        (
            "payload length does not match the sizes",
            with(&|b| b[payload_len_at] -= 4),
            FormatError::PayloadLengthMismatch {
                expected: 68,
                found: 64,
            },
        ),
        (
            "truncated payload",
            good[..good.len() - 5].to_vec(),
            FormatError::TruncatedPayload {
                expected: 68,
                available: 63,
            },
        ),
        (
            "trailing bytes",
            with(&|b| b.extend_from_slice(&[0, 0, 0])),
            FormatError::TrailingBytes { count: 3 },
        ),
    ];
    for (name, bytes, expected) in &cases {
        assert_eq!(
            ModelView::decode(bytes).err(),
            Some(*expected),
            "case: {name}"
        );
        // Every error explains itself in words.
        assert!(!expected.to_string().is_empty());
    }

    // A flipped bit anywhere in the payload is a checksum mismatch.
    for position in payload_start..good.len() {
        let mut flipped = good.clone();
        flipped[position] ^= 0x10;
        assert!(
            matches!(
                ModelView::decode(&flipped),
                Err(FormatError::ChecksumMismatch { .. })
            ),
            "flipped byte at {position}"
        );
    }
    // So is a flipped checksum.
    let mut flipped = good.clone();
    flipped[crc_at] ^= 1;
    assert!(matches!(
        ModelView::decode(&flipped),
        Err(FormatError::ChecksumMismatch { .. })
    ));
}

/// Every prefix and every single-byte corruption of a file decodes or fails cleanly.
#[test]
fn no_prefix_or_byte_flip_panics() {
    let good = model_file(&[3, 5, 2]);
    for len in 0..good.len() {
        assert!(
            ModelView::decode(&good[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    // Every changed byte is refused: in the payload by the checksum, elsewhere by the
    // header's own checks (magic, version, sizes, lengths, padding) or the checksum.
    let payload_start = {
        let view = ModelView::decode(&good).unwrap();
        view.payload().as_ptr() as usize - good.as_ptr() as usize
    };
    for position in 0..good.len() {
        for value in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            if good[position] == value {
                continue;
            }
            let mut bytes = good.clone();
            bytes[position] = value;
            match ModelView::decode(&bytes) {
                Ok(_) => panic!("byte {position} changed to {value:#04x} was accepted"),
                Err(e) if position >= payload_start => assert!(
                    matches!(e, FormatError::ChecksumMismatch { .. }),
                    "payload byte {position}: {e:?}, not the checksum"
                ),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn encode_rejects_what_decode_would() {
    let mut out = [0u8; 256];
    assert_eq!(
        encode(&[2, 3], ElementType::F32, &[0; 4], &mut out),
        Err(FormatError::PayloadLengthMismatch {
            expected: 36,
            found: 4
        })
    );
    assert_eq!(
        encode(&[2], ElementType::F32, &[], &mut out),
        Err(FormatError::NoLayers)
    );
    assert_eq!(
        encode(&[2, 0, 1], ElementType::F32, &[], &mut out),
        Err(FormatError::BadLayerSize { index: 1, size: 0 })
    );
    let payload = vec![0u8; 36];
    let needed = encoded_len(&[2, 3], 36).unwrap();
    assert_eq!(
        encode(&[2, 3], ElementType::F32, &payload, &mut out[..needed - 1]),
        Err(FormatError::BufferTooSmall {
            needed,
            available: needed - 1
        })
    );
}

#[test]
fn crc32_matches_the_standard_check_value() {
    // The CRC-32 "check" value from the catalogue of parametrised CRCs.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}
