//! Host tests of int8 models on the device side: the paired kernel against the core's
//! for every small size, predictions equal to `mlp_core::quant::forward_one_i8` for
//! models quantized with `mlp_core::quant`, every load error, and no panic on any
//! truncated or corrupted file.

use mlp_core::format::{
    encode, encoded_len, int8_payload_len, ElementType, FormatError, ModelView,
};
use mlp_core::quant::{
    dense_accumulate_i8, dequantize_logits, forward_one_i8, quantize_layer, write_int8_layer,
};
use mlp_embedded::kernel_i8::{
    dense_accumulate_i8 as device_kernel, dense_accumulate_i8_paired, dense_accumulate_i8_rows,
};
use mlp_embedded::{
    model_in_region, Int8Model, Int8Scratch, LoadError, MemoryNeeds, Model, Scratch,
};

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Pixel-like bytes: about `zero_percent`% zeros, the rest anywhere in 1..=255.
    fn pixels(&mut self, n: usize, zero_percent: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                if self.below(100) < zero_percent {
                    0
                } else {
                    self.below(255) as u8 + 1
                }
            })
            .collect()
    }
}

fn encode_file(sizes: &[u32], element_type: ElementType, payload: &[u8]) -> Vec<u8> {
    let mut file = vec![0u8; encoded_len(sizes, payload.len()).unwrap()];
    let used = encode(sizes, element_type, payload, &mut file).unwrap();
    assert_eq!(used, file.len());
    file
}

/// Quantizes a random f32 network with `mlp_core::quant::quantize_layer` (as
/// `mlp-train quantize` does, with output scales picked here instead of calibrated)
/// and returns the int8 model file.
fn quantized_file(sizes: &[u32], seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut payload = vec![0u8; int8_payload_len(sizes).unwrap()];
    let input_scale = 1.0f32 / 255.0;
    payload[..4].copy_from_slice(&input_scale.to_le_bytes());
    let mut at = 4;
    let mut scale_in = input_scale;
    let layers = sizes.len() - 1;
    for (k, pair) in sizes.windows(2).enumerate() {
        let (inputs, outputs) = (pair[0] as usize, pair[1] as usize);
        let weights: Vec<f32> = (0..inputs * outputs).map(|_| rng.unit() * 0.4).collect();
        let bias: Vec<f32> = (0..outputs).map(|_| rng.unit() * 0.2).collect();
        // Hidden layers: a typical largest ReLU output over 255 steps; the logits get
        // 2^20 steps, as the trainer's calibration gives them.
        let largest = 0.5 * (inputs as f32).sqrt();
        let scale_out = if k + 1 == layers {
            largest / (1 << 20) as f32
        } else {
            largest / 255.0
        };
        let mut q_weights = vec![0i8; inputs * outputs];
        let (mut q_bias, mut multiplier, mut shift) =
            (vec![0; outputs], vec![0; outputs], vec![0; outputs]);
        quantize_layer(
            &weights,
            &bias,
            scale_in,
            scale_out,
            &mut q_weights,
            &mut q_bias,
            &mut multiplier,
            &mut shift,
        )
        .unwrap();
        at += write_int8_layer(
            &mut payload[at..],
            scale_out,
            &q_weights,
            &q_bias,
            &multiplier,
            &shift,
        )
        .unwrap();
        scale_in = scale_out;
    }
    assert_eq!(at, payload.len());
    encode_file(sizes, ElementType::Int8, &payload)
}

/// The host's answer: `mlp_core::quant::forward_one_i8` over the file's layers.
fn host_logits(file: &[u8], pixels: &[u8]) -> Vec<i32> {
    let view = ModelView::decode(file).unwrap();
    let width = view.sizes().max_output();
    let (mut a, mut b, mut acc) = (vec![0u8; width], vec![0u8; width], vec![0i32; width]);
    forward_one_i8(
        view.int8_layers().map(|l| l.params()),
        pixels,
        &mut a,
        &mut b,
        &mut acc,
    )
    .unwrap()
    .to_vec()
}

// --- the kernel --------------------------------------------------------------------------

/// Random int8 weights (all of -128..=127, although the quantizer writes -127..=127)
/// and int32 biases, some near the ends of the range so that sums wrap.
fn random_layer(rng: &mut Rng, inputs: usize, outputs: usize) -> (Vec<u8>, Vec<[u8; 4]>) {
    let weights = (0..inputs * outputs)
        .map(|_| rng.next_u64() as u8)
        .collect();
    let bias = (0..outputs)
        .map(|_| {
            let value = match rng.below(4) {
                0 => i32::MAX - rng.below(1000) as i32,
                1 => i32::MIN + rng.below(1000) as i32,
                _ => rng.next_u64() as i32 >> 8,
            };
            value.to_le_bytes()
        })
        .collect();
    (weights, bias)
}

fn check_kernels(rng: &mut Rng, inputs: usize, outputs: usize, zero_percent: u64) {
    let (weights, bias) = random_layer(rng, inputs, outputs);
    let x = rng.pixels(inputs, zero_percent);
    let mut expected = vec![0i32; outputs];
    dense_accumulate_i8(&x, &weights, &bias, &mut expected);
    let mut paired = vec![7i32; outputs];
    dense_accumulate_i8_paired(&x, &weights, &bias, &mut paired);
    assert_eq!(
        paired, expected,
        "paired kernel, {inputs}x{outputs}, x {x:?}"
    );
    let mut rows = vec![7i32; outputs];
    dense_accumulate_i8_rows(&x, &weights, &bias, &mut rows);
    assert_eq!(rows, expected, "two-row kernel, {inputs}x{outputs}");
    let mut device = vec![7i32; outputs];
    device_kernel(&x, &weights, &bias, &mut device);
    assert_eq!(device, expected, "device kernel, {inputs}x{outputs}");
}

#[test]
fn the_paired_kernel_equals_the_core_kernel_for_every_small_size() {
    let short = std::env::var("MLP_KERNEL_SWEEP").as_deref() == Ok("short");
    let max = if short { 12 } else { 40 };
    let mut rng = Rng(3);
    for inputs in 0..=max {
        for outputs in 0..=max {
            for zero_percent in [0, 50, 90, 100] {
                check_kernels(&mut rng, inputs, outputs, zero_percent);
            }
        }
    }
    // Awkward sizes: more non-zero inputs than one batch of pairs (64), odd counts,
    // and the walkthrough's layers.
    for (inputs, outputs) in [(17, 257), (129, 5), (784, 100), (100, 200), (200, 10)] {
        for zero_percent in [0, 30, 80] {
            check_kernels(&mut rng, inputs, outputs, zero_percent);
        }
    }
}

#[test]
fn the_largest_products_wrap_as_on_the_host() {
    // 255 × -128 in every product and a bias at the edge: sums wrap modulo 2^32.
    for (inputs, outputs) in [(1, 4), (3, 7), (66_000 / 1000, 8)] {
        let weights = vec![0x80u8; inputs * outputs];
        let bias = vec![i32::MIN.to_le_bytes(); outputs];
        let x = vec![255u8; inputs];
        let mut expected = vec![0; outputs];
        dense_accumulate_i8(&x, &weights, &bias, &mut expected);
        let mut paired = vec![0; outputs];
        dense_accumulate_i8_paired(&x, &weights, &bias, &mut paired);
        assert_eq!(paired, expected);
        let mut rows = vec![0; outputs];
        dense_accumulate_i8_rows(&x, &weights, &bias, &mut rows);
        assert_eq!(rows, expected);
        assert_eq!(
            expected[0],
            i32::MIN.wrapping_add(inputs as i32 * 255 * -128)
        );
    }
}

#[test]
fn the_device_requantization_equals_the_core_for_every_shift() {
    use mlp_core::quant::{requantize, QuantizedMultiplier};
    let mut rng = Rng(21);
    let accs = [
        0,
        1,
        -1,
        2,
        -2,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        1 << 30,
        -(1 << 30),
    ];
    let multipliers = [
        0,
        1,
        1 << 30,
        (1 << 30) + 1,
        i32::MAX,
        i32::MAX - 1,
        1 << 15,
    ];
    for shift in -3..=66 {
        let core_shift = shift.clamp(0, 62) as u32;
        let check = |acc: i32, multiplier: i32| {
            let expected = requantize(
                acc,
                QuantizedMultiplier {
                    multiplier,
                    shift: core_shift,
                },
            );
            assert_eq!(
                mlp_embedded::kernel_i8::requantize(acc, multiplier, shift),
                expected,
                "acc {acc} multiplier {multiplier} shift {shift}"
            );
        };
        for &acc in &accs {
            for &multiplier in &multipliers {
                check(acc, multiplier);
            }
        }
        for _ in 0..2000 {
            let multiplier = (rng.next_u64() >> 33) as i32; // 0..2^31
            check(rng.next_u64() as i32, multiplier);
            check(rng.next_u64() as i32 >> rng.below(31), multiplier);
            check(rng.next_u64() as i32, -(multiplier >> 1)); // not in a valid file
        }
    }
}

#[test]
fn hidden_layer_requantization_equals_the_core_with_small_and_other_multipliers() {
    // All shifts in 33..=62 takes the device's one-test-per-layer path; one output
    // outside it (a larger multiplier, shift 32 or a raw shift out of range) sends the
    // whole layer through the per-output path. Both must give the core's bytes.
    let mut rng = Rng(33);
    let mut between = 0;
    for odd_one in [None, Some(31), Some(32), Some(63), Some(-1)] {
        for _ in 0..200 {
            let outputs = 1 + rng.below(40) as usize;
            let acc: Vec<i32> = (0..outputs)
                .map(|_| rng.next_u64() as i32 >> rng.below(31))
                .collect();
            let multiplier: Vec<i32> = (0..outputs)
                .map(|_| (1 << 30) + (rng.next_u64() >> 34) as i32)
                .collect();
            let mut shift: Vec<i32> = (0..outputs).map(|_| 33 + rng.below(30) as i32).collect();
            if let Some(odd) = odd_one {
                shift[rng.below(outputs as u64) as usize] = odd;
            }
            let le = |v: &[i32]| v.iter().map(|x| x.to_le_bytes()).collect::<Vec<_>>();
            let mut expected = vec![0u8; outputs];
            mlp_core::quant::requantize_relu_u8(&acc, &multiplier, &shift, &mut expected);
            let mut device = vec![7u8; outputs];
            mlp_embedded::kernel_i8::requantize_relu_u8(
                &acc,
                &le(&multiplier),
                &le(&shift),
                &mut device,
            );
            assert_eq!(device, expected, "shifts {shift:?}");
            between += expected.iter().filter(|&&y| y > 0 && y < 255).count();
        }
    }
    // Not only zeros and 255s: the test would prove little otherwise.
    assert!(
        between > 500,
        "{between} outputs strictly between 0 and 255"
    );
}

#[test]
fn kernel_shapes_that_do_not_match_give_zeros_not_a_panic() {
    let weights = [1u8; 12];
    let bias = [[1, 0, 0, 0]; 4];
    for (x_len, acc_len) in [(2, 4), (3, 3), (4, 4), (0, 4)] {
        let x = vec![1u8; x_len];
        let mut acc = vec![5i32; acc_len];
        dense_accumulate_i8_paired(&x, &weights, &bias, &mut acc);
        assert!(acc.iter().all(|&a| a == 0), "{x_len} {acc_len}: {acc:?}");
        let mut acc = vec![5i32; acc_len];
        device_kernel(&x, &weights, &bias, &mut acc);
        assert!(acc.iter().all(|&a| a == 0));
        let mut acc = vec![5i32; acc_len];
        dense_accumulate_i8_rows(&x, &weights, &bias, &mut acc);
        assert!(acc.iter().all(|&a| a == 0));
    }
}

// --- the model ---------------------------------------------------------------------------

const SIZES: [u32; 4] = [12, 7, 9, 3];
type Small<'a> = Int8Model<'a, 12, 3, 9>;

#[test]
fn predictions_equal_the_core_forward_pass_aligned_or_not() {
    let mut rng = Rng(11);
    let file = quantized_file(&SIZES, 1);
    let mut shifted = vec![0u8; file.len() + 3];
    for offset in 0..4 {
        shifted[offset..offset + file.len()].copy_from_slice(&file);
        let bytes = &shifted[offset..offset + file.len()];
        let model = Small::load(bytes).unwrap();
        let mut scratch = Int8Scratch::new();
        for zero_percent in [0, 50, 80, 100] {
            let pixels: [u8; 12] = rng.pixels(12, zero_percent).try_into().unwrap();
            let prediction = model.predict_pixels(&pixels, &mut scratch);
            let expected = host_logits(&file, &pixels);
            assert_eq!(prediction.logits.to_vec(), expected, "offset {offset}");
            assert_eq!(
                prediction.class,
                mlp_core::quant::argmax_i32(&expected),
                "class"
            );
        }
    }
}

#[test]
fn a_hidden_multiplier_above_a_quarter_still_gives_the_core_logits() {
    // The loader checks once whether every hidden multiplier is below 1/4 (as the
    // quantizer writes them) to take the cheaper requantization. Raise one in the
    // second hidden layer to [1/2, 1) (shift 31): the model must take the general path
    // and still give the host's logits.
    let file = quantized_file(&SIZES, 1);
    let mut payload = ModelView::decode(&file).unwrap().payload().to_vec();
    let (inputs, outputs) = (SIZES[0] as usize, SIZES[1] as usize);
    let layer0 = 4 + 12 * outputs + (inputs * outputs).div_ceil(4) * 4;
    let next_outputs = SIZES[2] as usize;
    let shift_at = 4 + layer0 + 4 + 8 * next_outputs + 4 * 3;
    payload[shift_at..shift_at + 4].copy_from_slice(&31i32.to_le_bytes());
    let changed = encode_file(&SIZES, ElementType::Int8, &payload);
    let model = Small::load(&changed).unwrap();
    let mut scratch = Int8Scratch::new();
    let mut rng = Rng(31);
    let mut differs = false;
    for zero_percent in [0, 30, 60, 90] {
        let pixels: [u8; 12] = rng.pixels(12, zero_percent).try_into().unwrap();
        let logits = model.predict_pixels(&pixels, &mut scratch).logits.to_vec();
        assert_eq!(logits, host_logits(&changed, &pixels));
        differs |= logits != host_logits(&file, &pixels);
    }
    assert!(differs, "the raised multiplier changed no logit");
}

#[test]
fn the_walkthrough_shape_matches_the_core_on_many_inputs() {
    let sizes = [784u32, 100, 200, 10];
    let file = quantized_file(&sizes, 2);
    let model = Int8Model::<784, 10, 200>::load_expecting(&file, &sizes).unwrap();
    let mut scratch = Int8Scratch::new();
    let mut rng = Rng(12);
    let mut classes = [0usize; 10];
    for n in 0..40 {
        let pixels: [u8; 784] = rng.pixels(784, [0, 80, 95, 100][n % 4]).try_into().unwrap();
        let prediction = model.predict_pixels(&pixels, &mut scratch);
        assert_eq!(prediction.logits.to_vec(), host_logits(&file, &pixels));
        classes[prediction.class] += 1;
    }
    // The logits are not all the same (the test would prove little otherwise).
    assert!(
        classes.iter().filter(|&&c| c > 0).count() >= 2,
        "{classes:?}"
    );
}

#[test]
fn probabilities_come_from_the_dequantized_logits() {
    let file = quantized_file(&SIZES, 3);
    let model = Small::load(&file).unwrap();
    let prediction = model.predict_pixels(&[200; 12], &mut Int8Scratch::new());
    let mut real = [0.0f32; 3];
    let class = dequantize_logits(&prediction.logits, model.output_scale(), &mut real);
    assert_eq!(prediction.real_logits(), real);
    assert_eq!(prediction.output_scale, model.output_scale());
    assert_eq!(class, prediction.class);
    let probabilities = prediction.probabilities();
    let sum: f32 = probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "{probabilities:?}");
    let best = mlp_core::loss::argmax(&probabilities);
    assert_eq!(best, prediction.class);
    assert_eq!(model.input_scale(), 1.0 / 255.0);
}

#[test]
fn each_loader_refuses_the_other_element_type() {
    let int8 = quantized_file(&SIZES, 4);
    let f32_payload = vec![0u8; mlp_core::format::f32_payload_len(&SIZES).unwrap()];
    let f32_file = encode_file(&SIZES, ElementType::F32, &f32_payload);
    assert_eq!(
        Small::load(&f32_file).unwrap_err(),
        LoadError::UnsupportedElementType {
            found: ElementType::F32,
            expected: ElementType::Int8,
        }
    );
    let error = Model::<12, 3, 9>::load(&int8).unwrap_err();
    assert_eq!(
        error,
        LoadError::UnsupportedElementType {
            found: ElementType::Int8,
            expected: ElementType::F32,
        }
    );
    assert_eq!(
        error.to_string(),
        "the model's parameters are int8, this firmware runs f32 models"
    );
    assert_eq!(
        Small::load(&f32_file).unwrap_err().to_string(),
        "the model's parameters are f32, this firmware runs int8 models"
    );
    // Both still load their own.
    assert!(Model::<12, 3, 9>::load(&f32_file).is_ok());
    assert!(Small::load(&int8).is_ok());
}

#[test]
fn files_for_another_firmware_are_refused() {
    let file = quantized_file(&SIZES, 5);
    assert_eq!(
        Int8Model::<11, 3, 9>::load(&file).unwrap_err(),
        LoadError::InputSizeMismatch {
            expected: 11,
            found: 12
        }
    );
    assert_eq!(
        Int8Model::<12, 4, 9>::load(&file).unwrap_err(),
        LoadError::OutputSizeMismatch {
            expected: 4,
            found: 3
        }
    );
    assert_eq!(
        Int8Model::<12, 3, 8>::load(&file).unwrap_err(),
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
    // A wider buffer than needed is fine.
    assert!(Int8Model::<12, 3, 64>::load(&file).is_ok());
}

#[test]
fn bad_quantization_parameters_are_refused_by_the_format_check() {
    let file = quantized_file(&SIZES, 6);
    let view = ModelView::decode(&file).unwrap();
    let start = file.len() - view.payload().len();
    let mut payload = view.payload().to_vec();
    // Layer 0's first shift (after the input scale, output scale, 7 biases and 7
    // multipliers) set to 63.
    let at = 4 + 4 + 7 * 4 + 7 * 4;
    payload[at..at + 4].copy_from_slice(&63i32.to_le_bytes());
    let bad = encode_file(&SIZES, ElementType::Int8, &payload);
    assert_eq!(
        Small::load(&bad).unwrap_err(),
        LoadError::Format(FormatError::BadQuantization { layer: Some(0) })
    );
    // The input scale set to zero.
    let mut payload = file[start..].to_vec();
    payload[..4].copy_from_slice(&0.0f32.to_le_bytes());
    let bad = encode_file(&SIZES, ElementType::Int8, &payload);
    assert_eq!(
        Small::load(&bad).unwrap_err(),
        LoadError::Format(FormatError::BadQuantization { layer: None })
    );
    // A flipped weight: the checksum no longer matches.
    let mut corrupt = file.clone();
    let last = corrupt.len() - 3;
    corrupt[last] ^= 1;
    assert!(matches!(
        Small::load(&corrupt).unwrap_err(),
        LoadError::Format(FormatError::ChecksumMismatch { .. })
    ));
}

#[test]
fn every_truncation_and_corruption_is_an_error_or_a_clean_prediction() {
    let file = quantized_file(&SIZES, 7);
    for len in 0..file.len() {
        assert!(
            Small::load(&file[..len]).is_err(),
            "prefix of {len} bytes loaded"
        );
    }
    let mut rng = Rng(13);
    let mut scratch = Int8Scratch::new();
    for _ in 0..3000 {
        let mut corrupt = file.clone();
        let at = rng.below(corrupt.len() as u64) as usize;
        corrupt[at] ^= (rng.below(255) + 1) as u8;
        if let Ok(model) = Small::load(&corrupt) {
            let prediction = model.predict_pixels(&[77; 12], &mut scratch);
            assert!(prediction.class < 3);
        }
    }
    // Corrupted payloads with a correct checksum (re-encoded): any values of the
    // weights, biases, multipliers and shifts either fail the format check or predict
    // the core's logits.
    let payload = ModelView::decode(&file).unwrap().payload().to_vec();
    let mut loaded = 0;
    for _ in 0..3000 {
        let mut bytes = payload.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
        }
        let corrupt = encode_file(&SIZES, ElementType::Int8, &bytes);
        if let Ok(model) = Small::load(&corrupt) {
            loaded += 1;
            let pixels: [u8; 12] = rng.pixels(12, 30).try_into().unwrap();
            let prediction = model.predict_pixels(&pixels, &mut scratch);
            assert_eq!(prediction.logits.to_vec(), host_logits(&corrupt, &pixels));
        }
    }
    assert!(loaded > 100, "only {loaded} corrupted payloads were valid");
    for _ in 0..2000 {
        let len = rng.below(96) as usize;
        let noise: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert!(Small::load(&noise).is_err());
    }
}

#[test]
fn every_value_of_every_header_byte_loads_or_fails_cleanly() {
    let file = quantized_file(&SIZES, 8);
    let header = file.len() - ModelView::decode(&file).unwrap().payload().len();
    let mut scratch = Int8Scratch::new();
    let mut accepted = Vec::new();
    for at in 0..header {
        for value in 0..=255u8 {
            let mut bytes = file.clone();
            bytes[at] = value;
            if let Ok(model) = Small::load(&bytes) {
                let _ = model.predict_pixels(&[1; 12], &mut scratch);
                if value != file[at] {
                    accepted.push((at, value));
                }
            }
        }
    }
    // The checksum covers the payload, not the header, so a changed header byte
    // may only be accepted when it spells the same model (a non-minimal varint
    // is one such spelling): same layer sizes, same element type, same payload.
    let original = ModelView::decode(&file).unwrap();
    for &(at, value) in &accepted {
        let mut bytes = file.clone();
        bytes[at] = value;
        let changed = ModelView::decode(&bytes).unwrap();
        assert_eq!(
            changed.layer_sizes(),
            original.layer_sizes(),
            "byte {at} = {value:#04x}"
        );
        assert_eq!(changed.element_type(), original.element_type());
        assert_eq!(
            changed.payload(),
            original.payload(),
            "byte {at} = {value:#04x}"
        );
    }
}

#[test]
fn memory_figures_for_the_walkthrough_model() {
    let needs = MemoryNeeds::for_int8_layer_sizes(&[784, 100, 200, 10]).unwrap();
    assert_eq!(needs.macs, 100_400);
    // docs/FORMAT.md: a 104,136-byte payload and a 24-byte header.
    assert_eq!(needs.flash_model_bytes, 104_160);
    // Two byte buffers and the int32 accumulators, 200 each.
    assert_eq!(needs.ram_activation_bytes, 200 + 200 + 4 * 200);
    assert_eq!(Int8Scratch::<200>::BYTES, needs.ram_activation_bytes);
    assert_eq!(needs.ram_activation_bytes, 1_200);
    // A quarter of the f32 model's flash, and three quarters of its RAM.
    let f32_needs = MemoryNeeds::for_layer_sizes(&[784, 100, 200, 10]).unwrap();
    assert!(needs.flash_model_bytes * 100 <= f32_needs.flash_model_bytes * 26);
    assert_eq!(f32_needs.ram_activation_bytes, Scratch::<200>::BYTES);

    let file = quantized_file(&SIZES, 9);
    let model = Small::load(&file).unwrap();
    let figures = model.memory_needs();
    assert_eq!(figures.flash_model_bytes, file.len());
    assert_eq!(figures.macs, 12 * 7 + 7 * 9 + 9 * 3);
    assert_eq!(figures.ram_activation_bytes, Int8Scratch::<9>::BYTES);
}

#[test]
fn an_int8_model_is_found_at_the_start_of_a_flash_region() {
    let file = quantized_file(&SIZES, 10);
    let mut region = file.clone();
    region.extend_from_slice(&[0xff; 300]);
    let found = model_in_region(&region).unwrap();
    assert_eq!(found, &file[..]);
    let model = Small::load(found).unwrap();
    assert_eq!(model.layer_sizes(), &SIZES);
}

#[test]
fn the_doc_example_model_is_valid() {
    let mut buffer = [0u8; 160];
    let file = mlp_embedded::doc_example_int8_model(&mut buffer);
    assert!(!file.is_empty());
    let model = Int8Model::<4, 2, 3>::load(file).unwrap();
    let prediction = model.predict_pixels(&[255, 0, 128, 64], &mut Int8Scratch::new());
    assert_eq!(
        prediction.logits.to_vec(),
        host_logits(file, &[255, 0, 128, 64])
    );
}
