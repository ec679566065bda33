//! Host tests of the device crate: every load error, no panic on corrupt files, and
//! predictions bit-identical to `mlp_core::network::forward_one`.

use mlp_core::format::{encode, encoded_len, ElementType, FormatError, ModelView};
use mlp_core::network::{forward_one, LayerParams};
use mlp_embedded::{model_in_region, LoadError, MemoryNeeds, Model, Scratch};

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn payload(sizes: &[u32], rng: &mut Rng) -> Vec<u8> {
    let len = mlp_core::format::f32_payload_len(sizes).unwrap();
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        bytes.extend_from_slice(&(rng.unit() * 0.5).to_le_bytes());
    }
    bytes
}

fn model_file(sizes: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut file = vec![0u8; encoded_len(sizes, payload.len()).unwrap()];
    let used = encode(sizes, ElementType::F32, payload, &mut file).unwrap();
    assert_eq!(used, file.len());
    file
}

/// Offset of the payload in an encoded file (the file ends with it).
fn payload_offset(file: &[u8]) -> usize {
    file.len() - ModelView::decode(file).unwrap().payload().len()
}

/// The host reference: mlp-core's whole forward pass over f32 parameters.
fn reference_logits(file: &[u8], input: &[f32]) -> Vec<f32> {
    let view = ModelView::decode(file).unwrap();
    let params: Vec<(usize, usize, Vec<f32>, Vec<f32>)> = view
        .layers()
        .map(|layer| {
            let floats = |b: &[u8]| {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            };
            (
                layer.inputs,
                layer.outputs,
                floats(layer.weights),
                floats(layer.bias),
            )
        })
        .collect();
    let width = params.iter().map(|p| p.1).max().unwrap();
    let (mut a, mut b) = (vec![0.0; width], vec![0.0; width]);
    let layers = params.iter().map(|(inputs, outputs, w, bias)| LayerParams {
        inputs: *inputs,
        outputs: *outputs,
        weights: &w[..],
        bias: &bias[..],
    });
    forward_one(layers, input, &mut a, &mut b).unwrap().to_vec()
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

const SIZES: [u32; 4] = [12, 7, 9, 3];
type Small<'a> = Model<'a, 12, 3, 9>;

fn small_file(seed: u64) -> Vec<u8> {
    model_file(&SIZES, &payload(&SIZES, &mut Rng(seed)))
}

#[test]
fn predictions_are_bit_identical_to_the_core_forward_pass_aligned_or_not() {
    let mut rng = Rng(7);
    let file = small_file(1);
    // The same file at every offset modulo 4: in place as f32 or as bytes.
    for shift in 0..4 {
        let mut buffer = vec![0u8; shift];
        buffer.extend_from_slice(&file);
        let model = Small::load(&buffer[shift..]).unwrap();
        let mut scratch = Scratch::new();
        for case in 0..50 {
            let mut input = [0.0f32; 12];
            for x in &mut input {
                // Mostly zeros, like MNIST pixels, and some negative values.
                *x = if rng.next_u64().is_multiple_of(3) {
                    rng.unit()
                } else {
                    0.0
                };
            }
            if case == 0 {
                input = [0.0; 12];
            }
            let prediction = model.predict(&input, &mut scratch);
            assert_eq!(
                bits(&prediction.logits),
                bits(&reference_logits(&file, &input)),
                "shift {shift} case {case}"
            );
            assert_eq!(prediction.class, mlp_core::loss::argmax(&prediction.logits));
        }
    }
}

#[test]
fn pixels_are_scaled_by_one_over_255_as_on_the_host() {
    let file = small_file(2);
    let model = Small::load(&file).unwrap();
    let pixels: [u8; 12] = [0, 255, 1, 128, 0, 0, 77, 254, 0, 3, 0, 200];
    let input = pixels.map(|p| p as f32 / 255.0);
    let mut scratch = Scratch::new();
    let from_pixels = model.predict_pixels(&pixels, &mut scratch);
    let from_floats = model.predict(&input, &mut scratch);
    assert_eq!(
        bits(&from_pixels.logits),
        bits(&reference_logits(&file, &input))
    );
    assert_eq!(from_pixels, from_floats);
    let probabilities = from_pixels.probabilities();
    assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert_eq!(mlp_core::loss::argmax(&probabilities), from_pixels.class);
}

#[test]
fn a_single_layer_model_works() {
    let sizes = [5, 2];
    let file = model_file(&sizes, &payload(&sizes, &mut Rng(3)));
    let model = Model::<5, 2, 2>::load(&file).unwrap();
    let input = [0.5, 0.0, -1.0, 2.0, 0.25];
    let prediction = model.predict(&input, &mut Scratch::new());
    assert_eq!(
        bits(&prediction.logits),
        bits(&reference_logits(&file, &input))
    );
}

#[test]
fn corrupt_files_give_the_matching_error() {
    let file = small_file(4);
    let start = payload_offset(&file);

    let mut bad_magic = file.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        Small::load(&bad_magic).unwrap_err(),
        LoadError::Format(FormatError::BadMagic { found: *b"XLPW" })
    );

    let mut bad_version = file.clone();
    bad_version[4] = 99;
    assert_eq!(
        Small::load(&bad_version).unwrap_err(),
        LoadError::Format(FormatError::UnsupportedVersion { found: 99 })
    );

    let mut bad_type = file.clone();
    bad_type[5] = 7;
    assert_eq!(
        Small::load(&bad_type).unwrap_err(),
        LoadError::Format(FormatError::UnknownElementType { found: 7 })
    );

    assert_eq!(
        Small::load(&file[..3]).unwrap_err(),
        LoadError::Format(FormatError::TruncatedHeader)
    );
    assert!(matches!(
        Small::load(&file[..file.len() - 1]).unwrap_err(),
        LoadError::Format(FormatError::TruncatedPayload { .. })
    ));

    let mut flipped = file.clone();
    flipped[start + 17] ^= 0x10;
    assert!(matches!(
        Small::load(&flipped).unwrap_err(),
        LoadError::Format(FormatError::ChecksumMismatch { .. })
    ));
}

#[test]
fn valid_files_for_another_firmware_are_refused() {
    let file = small_file(5);
    assert_eq!(
        Model::<13, 3, 9>::load(&file).unwrap_err(),
        LoadError::InputSizeMismatch {
            expected: 13,
            found: 12
        }
    );
    assert_eq!(
        Model::<12, 4, 9>::load(&file).unwrap_err(),
        LoadError::OutputSizeMismatch {
            expected: 4,
            found: 3
        }
    );
    assert_eq!(
        Model::<12, 3, 8>::load(&file).unwrap_err(),
        LoadError::LayerTooWide {
            layer: 1,
            outputs: 9,
            capacity: 8
        }
    );
    assert_eq!(
        Small::load_expecting(&file, &[12, 7, 8, 3]).unwrap_err(),
        LoadError::ShapeMismatch {
            index: 2,
            expected: 8,
            found: 9
        }
    );
    assert_eq!(
        Small::load_expecting(&file, &[12, 7, 9, 3, 3]).unwrap_err(),
        LoadError::ShapeMismatch {
            index: 4,
            expected: 3,
            found: 0
        }
    );
    assert!(Small::load_expecting(&file, &SIZES).is_ok());
}

#[test]
fn non_finite_parameters_are_refused_with_their_place() {
    for (layer, index, value) in [
        (0, 0, f32::NAN),
        (1, 7 * 9 + 2, f32::INFINITY),
        (2, 5, f32::NEG_INFINITY),
    ] {
        let mut bytes = payload(&SIZES, &mut Rng(6));
        let layer_start: usize = SIZES
            .windows(2)
            .take(layer)
            .map(|p| (p[0] as usize + 1) * p[1] as usize)
            .sum();
        let at = 4 * (layer_start + index);
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        // Re-encoded, so the CRC is right and only the value is wrong.
        let file = model_file(&SIZES, &bytes);
        assert_eq!(
            Small::load(&file).unwrap_err(),
            LoadError::NonFiniteParameter { layer, index }
        );
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let error = LoadError::ShapeMismatch {
        index: 2,
        expected: 200,
        found: 100,
    };
    assert_eq!(
        error.to_string(),
        "layer size 2 is 100, the firmware was built for 200"
    );
    let error = LoadError::from(FormatError::BadMagic { found: *b"XLPW" });
    assert!(error
        .to_string()
        .starts_with("invalid model file: not a model file"));
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_not_a_panic() {
    let file = small_file(8);
    for len in 0..file.len() {
        assert!(
            Small::load(&file[..len]).is_err(),
            "prefix of {len} bytes loaded"
        );
    }
    // Every changed byte is refused: a payload byte by the checksum, a header byte by
    // some check (magic, version, sizes, lengths, checksum, the firmware's shape).
    let payload_start = file.len() - ModelView::decode(&file).unwrap().payload().len();
    let mut rng = Rng(9);
    for _ in 0..2000 {
        let mut corrupt = file.clone();
        let at = (rng.next_u64() % corrupt.len() as u64) as usize;
        corrupt[at] ^= (rng.next_u64() % 255 + 1) as u8;
        match Small::load(&corrupt) {
            Ok(_) => panic!("byte {at} changed and the file still loaded"),
            Err(e) if at >= payload_start => assert!(
                matches!(e, LoadError::Format(FormatError::ChecksumMismatch { .. })),
                "payload byte {at}: {e:?}, not the checksum"
            ),
            Err(_) => {}
        }
    }
    for _ in 0..2000 {
        let len = (rng.next_u64() % 64) as usize;
        let noise: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert!(Small::load(&noise).is_err());
    }
}

#[test]
fn memory_figures_for_the_walkthrough_model() {
    let needs = MemoryNeeds::for_layer_sizes(&[784, 100, 200, 10]).unwrap();
    let parameters = 784 * 100 + 100 + 100 * 200 + 200 + 200 * 10 + 10;
    assert_eq!(parameters, 100_710);
    assert_eq!(needs.macs, 100_400);
    // 4 bytes per parameter plus a header under 32 bytes.
    assert!(
        needs.flash_model_bytes >= 4 * parameters && needs.flash_model_bytes < 4 * parameters + 32
    );
    // Two ping-pong buffers as wide as the widest layer; predict_pixels never holds
    // the input as f32.
    assert_eq!(needs.ram_activation_bytes, 4 * 2 * 200);
    assert_eq!(needs.ram_activation_bytes, 1_600);
    assert_eq!(Scratch::<200>::BYTES, needs.ram_activation_bytes);
    assert_eq!(size_of::<Scratch<200>>(), 1_600);

    let file = small_file(10);
    let model = Small::load(&file).unwrap();
    let figures = model.memory_needs();
    assert_eq!(figures.flash_model_bytes, file.len());
    assert_eq!(figures, MemoryNeeds::for_layer_sizes(&SIZES).unwrap());
}

#[test]
fn a_model_is_found_at_the_start_of_a_flash_region() {
    let file = small_file(11);
    for filler in [0xffu8, 0x00] {
        let mut region = file.clone();
        region.resize(file.len() + 1000, filler);
        let found = model_in_region(&region).unwrap();
        assert_eq!(found, &file[..]);
        assert!(Small::load(found).is_ok());
        assert_eq!(model_in_region(&file).unwrap(), &file[..]);
    }
    // Erased flash: no model there.
    assert_eq!(
        model_in_region(&[0xff; 64]).unwrap_err(),
        LoadError::Format(FormatError::BadMagic { found: [0xff; 4] })
    );
    // A corrupt payload is found, then refused by the load.
    let mut region = file.clone();
    let at = payload_offset(&file) + 3;
    region[at] ^= 1;
    region.resize(file.len() + 100, 0xff);
    let found = model_in_region(&region).unwrap();
    assert!(matches!(
        Small::load(found).unwrap_err(),
        LoadError::Format(FormatError::ChecksumMismatch { .. })
    ));
}

#[test]
fn an_int8_model_is_refused_as_an_unsupported_element_type() {
    use mlp_core::format::int8_payload_len;
    use mlp_core::quant::{write_int8_layer, QuantizedMultiplier};
    let mut payload = vec![0u8; int8_payload_len(&SIZES).unwrap()];
    payload[..4].copy_from_slice(&1.0f32.to_le_bytes()); // input scale
    let mut at = 4;
    let m = QuantizedMultiplier::from_real(0.5).unwrap();
    for pair in SIZES.windows(2) {
        let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
        let weights = vec![1i8; inputs * outputs];
        let zeros = vec![0i32; outputs];
        let multiplier = vec![m.multiplier; outputs];
        let shift = vec![m.shift as i32; outputs];
        at += write_int8_layer(
            &mut payload[at..],
            1.0,
            &weights,
            &zeros,
            &multiplier,
            &shift,
        )
        .unwrap();
    }
    assert_eq!(at, payload.len());
    let mut file = vec![0u8; encoded_len(&SIZES, payload.len()).unwrap()];
    let used = encode(&SIZES, ElementType::Int8, &payload, &mut file).unwrap();
    let file = &file[..used];
    assert_eq!(
        ModelView::decode(file).unwrap().element_type(),
        ElementType::Int8
    );
    assert_eq!(
        Small::load(file).unwrap_err(),
        LoadError::UnsupportedElementType {
            found: ElementType::Int8,
            expected: ElementType::F32,
        }
    );
}

#[test]
fn every_value_of_every_header_byte_loads_or_fails_cleanly() {
    let file = small_file(12);
    let header = payload_offset(&file) + 4;
    let mut loaded = 0;
    for at in 0..header {
        for flip in 1..=255u8 {
            let mut corrupt = file.clone();
            corrupt[at] ^= flip;
            if let Ok(model) = Small::load(&corrupt) {
                loaded += 1;
                let _ = model.predict(&[0.25; 12], &mut Scratch::new());
            }
        }
    }
    // Only the few changes the format allows load (version 1 → 2 is still an f32
    // model, two today); a flip in the first weight is caught by the checksum.
    assert!(loaded <= 2, "{loaded} corrupted headers loaded");
}
