//! Every layer kernel, on every kernel this CPU runs, against the scalar reference of
//! the arithmetic, bit for bit, over every shape with up to 40 inputs and 40 outputs
//! (batches 0–9); and the core's arithmetic against `mlp_core::dense` itself.
//!
//! Under Miri (portable paths only) the sweep is cut to a few awkward sizes.

mod common;

use common::{all_kernels, assert_bits, Rng};
use mlp_core::dense::DenseShape;
use mlp_kernels::{layer, reference, Kernels};

/// The sizes swept in each dimension.
fn sizes() -> Vec<usize> {
    if cfg!(miri) {
        vec![0, 3, 17]
    } else {
        (0..=40).collect()
    }
}

fn batches() -> Vec<usize> {
    if cfg!(miri) {
        vec![1, 5]
    } else {
        (0..=9).collect()
    }
}

/// Runs `check(kernels, shape, rng)` on every kernel and shape of the sweep.
fn sweep(mut check: impl FnMut(Kernels, DenseShape, &mut Rng)) {
    let mut rng = Rng::new(42);
    for kernels in all_kernels() {
        for &batch in &batches() {
            for &inputs in &sizes() {
                for &outputs in &sizes() {
                    check(kernels, DenseShape::new(batch, inputs, outputs), &mut rng);
                }
            }
        }
    }
}

#[test]
fn forward_matches_the_reference_with_and_without_relu() {
    sweep(|kernels, shape, rng| {
        let x = rng.values(shape.input_len(), 0.4);
        let w = rng.values(shape.weight_len(), 0.0);
        let b = rng.values(shape.outputs, 0.0);
        for relu in [false, true] {
            let mut got = vec![f32::NAN; shape.output_len()];
            let mut want = vec![f32::NAN; shape.output_len()];
            layer::dense_forward(kernels, shape, &x, &w, &b, &mut got, relu).unwrap();
            reference::dense_forward(kernels, shape, &x, &w, &b, &mut want, relu, None);
            assert_bits(
                &format!("{kernels} forward {shape:?} relu {relu}"),
                &got,
                &want,
            );
        }
    });
}

#[test]
fn a_split_forward_matches_the_reference() {
    sweep(|kernels, shape, rng| {
        let x = rng.values(shape.input_len(), 0.4);
        let w = rng.values(shape.weight_len(), 0.0);
        let b = rng.values(shape.outputs, 0.0);
        let split = shape.inputs / 2;
        let mut got = vec![f32::NAN; shape.output_len()];
        let mut want = vec![f32::NAN; shape.output_len()];
        layer::dense_forward_split(kernels, shape, &x, &w, &b, &mut got, true, Some(split))
            .unwrap();
        reference::dense_forward(kernels, shape, &x, &w, &b, &mut want, true, Some(split));
        assert_bits(&format!("{kernels} split forward {shape:?}"), &got, &want);
    });
}

#[test]
fn input_gradients_match_the_reference_with_and_without_the_mask() {
    sweep(|kernels, shape, rng| {
        let w = rng.values(shape.weight_len(), 0.0);
        // Masked deltas are mostly zero; the mask has zeros and negatives.
        let g = rng.values(shape.output_len(), 0.5);
        let h = rng.values(shape.input_len(), 0.3);
        for mask in [None, Some(&h[..])] {
            let mut got = vec![f32::NAN; shape.input_len()];
            let mut want = vec![f32::NAN; shape.input_len()];
            layer::dense_backward_input(kernels, shape, &w, &g, &mut got, mask).unwrap();
            reference::dense_backward_input(kernels, shape, &w, &g, &mut want, mask);
            let what = format!("{kernels} input gradient {shape:?} mask {}", mask.is_some());
            assert_bits(&what, &got, &want);
        }
    });
}

#[test]
fn weight_gradients_and_fused_sgd_match_the_reference() {
    sweep(|kernels, shape, rng| {
        let x = rng.values(shape.input_len(), 0.4);
        let g = rng.values(shape.output_len(), 0.1);
        let mut got_w = vec![f32::NAN; shape.weight_len()];
        let mut got_b = vec![f32::NAN; shape.outputs];
        let mut want_w = vec![f32::NAN; shape.weight_len()];
        let mut want_b = vec![f32::NAN; shape.outputs];
        layer::dense_backward_weights(kernels, shape, &x, &g, &mut got_w, &mut got_b).unwrap();
        reference::dense_backward_weights(kernels, shape, &x, &g, &mut want_w, &mut want_b);
        assert_bits(
            &format!("{kernels} weight gradient {shape:?}"),
            &got_w,
            &want_w,
        );
        assert_bits(
            &format!("{kernels} bias gradient {shape:?}"),
            &got_b,
            &want_b,
        );

        // The fused update gives the stored gradients' SGD step, bit for bit.
        let w0 = rng.values(shape.weight_len(), 0.0);
        let b0 = rng.values(shape.outputs, 0.0);
        let (mut fused_w, mut fused_b) = (w0.clone(), b0.clone());
        layer::dense_sgd_update(kernels, shape, &x, &g, &mut fused_w, &mut fused_b, 0.1).unwrap();
        let (mut want_w2, mut want_b2) = (w0, b0);
        reference::sgd_step(&mut want_w2, &want_w, 0.1);
        reference::sgd_step(&mut want_b2, &want_b, 0.1);
        assert_bits(
            &format!("{kernels} fused SGD {shape:?}"),
            &fused_w,
            &want_w2,
        );
        assert_bits(
            &format!("{kernels} fused SGD bias {shape:?}"),
            &fused_b,
            &want_b2,
        );
    });
}

/// The core's arithmetic here is `mlp_core::dense`'s, bit for bit: that is what makes
/// `--kernels core` the device's numbers. (Not under Miri: the same generic code as the
/// portable fast path, which Miri runs.)
#[test]
#[cfg_attr(miri, ignore)]
fn the_core_arithmetic_is_mlp_cores() {
    let kernels = Kernels::Core;
    let mut rng = Rng::new(7);
    for &batch in &batches() {
        for &inputs in &sizes() {
            for &outputs in &sizes() {
                let shape = DenseShape::new(batch, inputs, outputs);
                let x = rng.values(shape.input_len(), 0.4);
                let w = rng.values(shape.weight_len(), 0.0);
                let b = rng.values(outputs, 0.0);
                let g = rng.values(shape.output_len(), 0.2);
                let mut got = vec![f32::NAN; shape.output_len()];
                let mut want = vec![f32::NAN; shape.output_len()];
                layer::dense_forward(kernels, shape, &x, &w, &b, &mut got, false).unwrap();
                mlp_core::dense::dense_forward(shape, &x, &w, &b, &mut want);
                assert_bits(&format!("forward {shape:?}"), &got, &want);

                let mut gx = vec![f32::NAN; shape.input_len()];
                let mut gw = vec![f32::NAN; shape.weight_len()];
                let mut gb = vec![f32::NAN; outputs];
                let mut want_gx = vec![f32::NAN; shape.input_len()];
                let mut want_gw = vec![f32::NAN; shape.weight_len()];
                let mut want_gb = vec![f32::NAN; outputs];
                layer::dense_backward_input(kernels, shape, &w, &g, &mut gx, None).unwrap();
                layer::dense_backward_weights(kernels, shape, &x, &g, &mut gw, &mut gb).unwrap();
                mlp_core::dense::dense_backward(
                    shape,
                    &x,
                    &w,
                    &g,
                    Some(&mut want_gx),
                    &mut want_gw,
                    &mut want_gb,
                );
                assert_bits(&format!("input gradient {shape:?}"), &gx, &want_gx);
                assert_bits(&format!("weight gradient {shape:?}"), &gw, &want_gw);
                assert_bits(&format!("bias gradient {shape:?}"), &gb, &want_gb);
            }
        }
    }
}

/// The fast arithmetic really is fused: on a sum where one rounding and two differ,
/// every instruction set gives the one-rounding result.
#[test]
fn the_fast_arithmetic_fuses_every_multiply_add() {
    // (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴: rounded first, the 2⁻²⁴ is lost; then − (1 + 2⁻¹¹)
    // leaves 0 separately and 2⁻²⁴ fused. Powers of two as exact quotients: `powi`'s
    // precision is unspecified, and Miri makes it inexact on purpose.
    let a = 1.0 + 1.0 / 4096.0;
    let shape = DenseShape::new(1, 1, 1);
    for kernels in all_kernels() {
        let mut y = [0.0f32];
        layer::dense_forward(
            kernels,
            shape,
            &[a],
            &[a],
            &[-(1.0 + 1.0 / 2048.0)],
            &mut y,
            false,
        )
        .unwrap();
        let want = match kernels {
            Kernels::Core => 0.0,
            Kernels::Fast(_) => 1.0 / 16_777_216.0,
        };
        assert_eq!(y[0], want, "{kernels}");
    }
}

/// Non-finite and signed-zero inputs: NaN inputs are not skipped (NaN ≠ 0), ReLU keeps
/// NaN and −0, and the mask zeroes where the mask is NaN, on every path.
#[test]
fn nan_and_signed_zeros_follow_the_reference() {
    let specials = [
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        -1.5,
        2.0,
        f32::MIN_POSITIVE,
    ];
    let shape = DenseShape::new(5, specials.len(), 19);
    let mut rng = Rng::new(3);
    for kernels in all_kernels() {
        let mut x = rng.values(shape.input_len(), 0.3);
        for (i, v) in x.iter_mut().enumerate().step_by(3) {
            *v = specials[i % specials.len()];
        }
        let w = rng.values(shape.weight_len(), 0.0);
        let b = rng.values(shape.outputs, 0.0);
        let mut got = vec![0.0; shape.output_len()];
        let mut want = vec![0.0; shape.output_len()];
        layer::dense_forward(kernels, shape, &x, &w, &b, &mut got, true).unwrap();
        reference::dense_forward(kernels, shape, &x, &w, &b, &mut want, true, None);
        assert_bits(&format!("{kernels} forward with specials"), &got, &want);

        let g = rng.values(shape.output_len(), 0.3);
        let mut got = vec![0.0; shape.input_len()];
        let mut want = vec![0.0; shape.input_len()];
        layer::dense_backward_input(kernels, shape, &w, &g, &mut got, Some(&x)).unwrap();
        reference::dense_backward_input(kernels, shape, &w, &g, &mut want, Some(&x));
        assert_bits(
            &format!("{kernels} masked gradient with specials"),
            &got,
            &want,
        );
    }
}
