//! The Cortex-M kernel's structure (gathering non-zero inputs, register blocks of 16,
//! 8 and 4 outputs, the remainder) against `mlp-core`'s canonical kernel, bit for bit.
//!
//! On the host the register blocks are the plain-Rust ones; the assembly used on
//! hard-float Cortex-M is checked in QEMU on odd shapes by the firmware's
//! `kernel_shapes` binary (`scripts/firmware.sh check`) and on the trained model by the
//! parity test (`tests/tests/device_parity.rs`).
//! `MLP_KERNEL_SWEEP=short` shortens the sweep (e.g. under an emulator).

use mlp_core::dense::{dense_forward, DenseShape};
use mlp_core::format::{InputTransform, Normalization};
use mlp_embedded::kernel::{
    dense_forward_sparse_blocked, dense_forward_sparse_blocked_bytes,
    dense_forward_sparse_blocked_pixels, CHUNK,
};

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[derive(Clone, Copy, Debug)]
enum Inputs {
    /// About two thirds zeros (as MNIST pixels and ReLU outputs), some -0.0.
    Sparse,
    /// No zero at all.
    Dense,
    /// All zeros: the output is the bias.
    Zero,
}

fn check(inputs: usize, outputs: usize, kind: Inputs, rng: &mut Rng) {
    let x: Vec<f32> = (0..inputs)
        .map(|_| match kind {
            Inputs::Sparse => match rng.next_u64() % 6 {
                0 => -0.0,
                1..=3 => 0.0,
                _ => rng.unit() * 3.0,
            },
            Inputs::Dense => {
                let v = rng.unit();
                if v == 0.0 {
                    0.5
                } else {
                    v
                }
            }
            Inputs::Zero => 0.0,
        })
        .collect();
    let weights: Vec<f32> = (0..inputs * outputs).map(|_| rng.unit()).collect();
    let bias: Vec<f32> = (0..outputs).map(|_| rng.unit()).collect();
    let mut expected = vec![f32::NAN; outputs];
    dense_forward(
        DenseShape::new(1, inputs, outputs),
        &x,
        &weights,
        &bias,
        &mut expected,
    );
    let mut got = vec![f32::NAN; outputs];
    dense_forward_sparse_blocked(&x, &weights, &bias, &mut got);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&expected), "{inputs}x{outputs} {kind:?}");
}

fn short() -> bool {
    std::env::var("MLP_KERNEL_SWEEP").is_ok_and(|v| v == "short")
}

#[test]
fn every_size_up_to_40_matches_the_core_bit_for_bit() {
    let mut rng = Rng(1);
    let limit = if short() { 12 } else { 40 };
    for inputs in 0..=limit {
        for outputs in 0..=limit {
            for kind in [Inputs::Sparse, Inputs::Dense, Inputs::Zero] {
                check(inputs, outputs, kind, &mut rng);
            }
        }
    }
}

#[test]
fn chunk_boundaries_and_awkward_sizes_match() {
    let mut rng = Rng(2);
    let sizes = [
        (CHUNK - 1, 5),
        (CHUNK, 17),
        (CHUNK + 1, 16),
        (2 * CHUNK, 8),
        (2 * CHUNK + 3, 4),
        (17, 257),
        (257, 17),
        (784, 100),
        (100, 200),
        (200, 10),
        (1, 1000),
    ];
    for (inputs, outputs) in sizes {
        for kind in [Inputs::Sparse, Inputs::Dense, Inputs::Zero] {
            check(inputs, outputs, kind, &mut rng);
        }
    }
}

#[test]
fn non_finite_inputs_propagate_as_in_the_core() {
    let x = [0.0, f32::NAN, 1.0, f32::INFINITY, -0.0, 2.0];
    let weights: Vec<f32> = (0..6 * 20).map(|k| k as f32 * 0.25 - 10.0).collect();
    let bias = [0.5; 20];
    let mut expected = [0.0; 20];
    dense_forward(
        DenseShape::new(1, 6, 20),
        &x,
        &weights,
        &bias,
        &mut expected,
    );
    let mut got = [0.0; 20];
    dense_forward_sparse_blocked(&x, &weights, &bias, &mut got);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.is_nan(), e.is_nan());
        if !e.is_nan() {
            assert_eq!(g.to_bits(), e.to_bits());
        }
    }
}

/// Wrong lengths fill `y` with NaN, as the docs promise (and never panic): weights that
/// do not match `x` and `bias`, `y` shorter or longer than `bias`.
#[test]
fn wrong_lengths_give_nan() {
    let all_nan = |y: &[f32]| y.iter().all(|v| v.is_nan());
    let mut y = [0.0; 3];
    dense_forward_sparse_blocked(&[1.0; 4], &[1.0; 5], &[0.0; 3], &mut y);
    assert!(all_nan(&y), "weights of the wrong length: {y:?}");
    let mut y = [0.0; 3];
    dense_forward_sparse_blocked(&[1.0; 4], &[1.0; 12], &[0.0; 3], &mut y[..2]);
    assert!(all_nan(&y[..2]), "output shorter than the bias: {y:?}");
    let mut y = [0.0; 4];
    dense_forward_sparse_blocked(&[1.0; 4], &[1.0; 12], &[0.0; 3], &mut y);
    assert!(all_nan(&y), "output longer than the bias: {y:?}");
    dense_forward_sparse_blocked(&[], &[], &[], &mut []);
    let mut y = [0.0; 3];
    dense_forward_sparse_blocked_pixels(&[1; 4], &[1.0f32; 5], &[0.0; 3], &mut y);
    assert!(all_nan(&y), "pixels, weights of the wrong length: {y:?}");
    let mut y = [0.0; 2];
    dense_forward_sparse_blocked_pixels(&[1; 4], &[1.0f32; 12], &[0.0; 3], &mut y);
    assert!(all_nan(&y), "pixels, output shorter than the bias: {y:?}");
    // The right lengths give numbers: the checks above are about the lengths.
    let mut y = [0.0; 3];
    dense_forward_sparse_blocked(&[1.0; 4], &[1.0; 12], &[0.5; 3], &mut y);
    assert_eq!(y, [4.5; 3]);
}

/// Pixels (about two thirds zero, or none), f32 weights and the same weights as
/// little-endian bytes (an unaligned model file): against converting every pixel with
/// `p as f32 / 255.0` and the core's kernel.
fn check_pixels(inputs: usize, outputs: usize, dense: bool, rng: &mut Rng) {
    let pixels: Vec<u8> = (0..inputs)
        .map(|_| {
            let p = (rng.next_u64() % 256) as u8;
            if dense {
                p.max(1)
            } else if rng.next_u64().is_multiple_of(3) {
                p
            } else {
                0
            }
        })
        .collect();
    let x: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    assert_matches_the_core(
        &x,
        outputs,
        &format!("{inputs}x{outputs} pixels"),
        rng,
        |weights, bias, out| dense_forward_sparse_blocked_pixels(&pixels, weights, bias, out),
        |weights, bias, out| dense_forward_sparse_blocked_pixels(&pixels, weights, bias, out),
    );
}

/// Runs a kernel on random weights and biases for the reference input `x`, once with
/// the weights as `f32` (`with_f32`) and once as the little-endian bytes a model file
/// holds (`with_bytes`), and asserts both outputs equal the core's kernel on `x`, bit
/// for bit.
fn assert_matches_the_core(
    x: &[f32],
    outputs: usize,
    what: &str,
    rng: &mut Rng,
    with_f32: impl FnOnce(&[f32], &[f32], &mut [f32]),
    with_bytes: impl FnOnce(&[[u8; 4]], &[[u8; 4]], &mut [f32]),
) {
    let weights: Vec<f32> = (0..x.len() * outputs).map(|_| rng.unit()).collect();
    let bias: Vec<f32> = (0..outputs).map(|_| rng.unit()).collect();
    let mut expected = vec![f32::NAN; outputs];
    dense_forward(
        DenseShape::new(1, x.len(), outputs),
        x,
        &weights,
        &bias,
        &mut expected,
    );
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();

    let mut got = vec![f32::NAN; outputs];
    with_f32(&weights, &bias, &mut got);
    assert_eq!(bits(&got), bits(&expected), "{what}, f32 weights");

    let as_bytes = |v: &[f32]| v.iter().map(|f| f.to_le_bytes()).collect::<Vec<[u8; 4]>>();
    let mut got = vec![f32::NAN; outputs];
    with_bytes(&as_bytes(&weights), &as_bytes(&bias), &mut got);
    assert_eq!(bits(&got), bits(&expected), "{what}, byte weights");
}

#[test]
fn pixel_inputs_match_converting_first_bit_for_bit() {
    let mut rng = Rng(3);
    let limit = if short() { 12 } else { 30 };
    for inputs in 0..=limit {
        for outputs in 0..=limit {
            for dense in [false, true] {
                check_pixels(inputs, outputs, dense, &mut rng);
            }
        }
    }
    for (inputs, outputs) in [(CHUNK + 1, 20), (784, 100), (3 * CHUNK, 9)] {
        for dense in [false, true] {
            check_pixels(inputs, outputs, dense, &mut rng);
        }
    }
}

/// Byte features through a stored transform, gathered by the byte kernel (which
/// transforms each byte as it gathers it), against the core's transform of the whole
/// vector (`InputTransform::apply_to_bytes`) followed by the core's kernel, bit for bit,
/// for `f32` and byte weights. The standardized case has offsets equal to some of the
/// bytes, so that some inputs standardize to exactly 0 (skipped) and others to -0.0
/// (`(b - b) × negative scale`), and scales of both signs and wide range.
fn check_bytes(inputs: usize, outputs: usize, standardized: bool, rng: &mut Rng) {
    let bytes: Vec<u8> = (0..inputs)
        .map(|_| match rng.next_u64() % 4 {
            0 => 0,
            _ => (rng.next_u64() % 256) as u8,
        })
        .collect();
    let offsets: Vec<[u8; 4]> = bytes
        .iter()
        .map(|&b| {
            let offset = match rng.next_u64() % 3 {
                0 => f32::from(b),
                _ => rng.unit() * 200.0,
            };
            offset.to_le_bytes()
        })
        .collect();
    let scales: Vec<[u8; 4]> = (0..inputs)
        .map(|_| {
            let scale = match rng.next_u64() % 3 {
                0 => -0.37,
                1 => 1.0 / 97.0,
                _ => rng.unit() * 8.0 + 9.0,
            };
            f32::to_le_bytes(scale)
        })
        .collect();
    let transform = if standardized {
        InputTransform::Standardized(
            Normalization::from_le_bytes(&offsets, &scales).expect("one pair per input"),
        )
    } else {
        InputTransform::Features
    };
    let mut x = vec![f32::NAN; inputs];
    transform.apply_to_bytes(&bytes, &mut x);
    let what = if standardized {
        "standardized"
    } else {
        "features"
    };
    assert_matches_the_core(
        &x,
        outputs,
        &format!("{inputs}x{outputs} {what}"),
        rng,
        |weights, bias, out| {
            dense_forward_sparse_blocked_bytes(&bytes, &transform, weights, bias, out)
        },
        |weights, bias, out| {
            dense_forward_sparse_blocked_bytes(&bytes, &transform, weights, bias, out)
        },
    );
}

#[test]
fn byte_features_through_their_transform_match_transforming_first_bit_for_bit() {
    let mut rng = Rng(4);
    let limit = if short() { 12 } else { 30 };
    for inputs in 0..=limit {
        for outputs in 0..=limit {
            for standardized in [false, true] {
                check_bytes(inputs, outputs, standardized, &mut rng);
            }
        }
    }
    for (inputs, outputs) in [(CHUNK + 1, 20), (784, 100), (3 * CHUNK, 9)] {
        for standardized in [false, true] {
            check_bytes(inputs, outputs, standardized, &mut rng);
        }
    }
}
