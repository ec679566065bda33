//! Softmax cross-entropy at extreme logits, gradient rows, softmax and argmax.

use mlp_core::loss::{argmax, log_sum_exp, softmax, softmax_cross_entropy};

#[test]
fn loss_at_extreme_logits_is_finite_and_exact() {
    let logits = [1e4f32, -1e4, 0.0];
    // lse = 1e4 + ln(1 + e^-2e4 + e^-1e4) = 1e4 exactly in f32.
    assert_eq!(log_sum_exp(&logits), 1e4);
    assert_eq!(softmax_cross_entropy(&logits, &[0], 3, None), 0.0);
    assert_eq!(softmax_cross_entropy(&logits, &[1], 3, None), 2e4);
    assert_eq!(softmax_cross_entropy(&logits, &[2], 3, None), 1e4);
    // Mean over a batch of both.
    let batch = [1e4f32, -1e4, 0.0, -1e4, -1e4, -1e4];
    let loss = softmax_cross_entropy(&batch, &[1, 2], 3, None);
    // Row 2 is ln 3, computed next to logits of -1e4 whose f32 spacing is ~1e-3.
    let expected = (2e4 + 3f64.ln()) / 2.0;
    assert!(
        (f64::from(loss) - expected).abs() < 2e-3,
        "{loss} vs {expected}"
    );
}

#[test]
fn gradient_at_extreme_logits_is_finite_and_rows_sum_to_zero() {
    let logits = [1e4f32, -1e4, 0.0, 3e4, 3e4, -3e4, 0.1, 0.2, 0.3];
    let labels = [1, 0, 2];
    let mut grad = [0.0f32; 9];
    let loss = softmax_cross_entropy(&logits, &labels, 3, Some(&mut grad));
    assert!(loss.is_finite());
    assert!(grad.iter().all(|g| g.is_finite()));
    for row in grad.chunks_exact(3) {
        let sum: f32 = row.iter().sum();
        assert!(sum.abs() < 1e-7, "gradient row {row:?} sums to {sum}");
    }
    // Row 0: softmax is (1, 0, 0), label 1: (1, -1, 0) / 3.
    assert_eq!(&grad[..3], &[1.0 / 3.0, -1.0 / 3.0, 0.0]);
    // Row 1: two equal maxima share the probability.
    assert_eq!(&grad[3..6], &[(0.5 - 1.0) / 3.0, 0.5 / 3.0, 0.0]);
}

#[test]
fn gradient_rows_sum_to_zero_on_random_logits() {
    let mut state = 7u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1 << 24) as f32 * 40.0 - 20.0
    };
    let logits: Vec<f32> = (0..32 * 10).map(|_| next()).collect();
    let labels: Vec<u8> = (0..32).map(|n| (n * 7 % 10) as u8).collect();
    let mut grad = vec![0.0; 320];
    softmax_cross_entropy(&logits, &labels, 10, Some(&mut grad));
    for row in grad.chunks_exact(10) {
        let sum: f32 = row.iter().sum();
        assert!(sum.abs() < 1e-7, "{sum}");
    }
}

#[test]
fn out_of_range_label_gives_nan_not_a_panic() {
    let mut grad = [0.0f32; 3];
    let loss = softmax_cross_entropy(&[1.0, 2.0, 3.0], &[3], 3, Some(&mut grad));
    assert!(loss.is_nan());
    assert!(grad.iter().all(|g| g.is_nan()));
}

#[test]
fn softmax_sums_to_one_and_survives_huge_logits() {
    let mut out = [0.0f32; 4];
    softmax(&[1e4, 1e4 - 1.0, -1e4, 0.0], &mut out);
    assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!((out[0] / out[1] - std::f32::consts::E).abs() < 1e-4);
    assert_eq!(out[2], 0.0);
}

#[test]
fn argmax_picks_first_maximum_and_ignores_nan() {
    assert_eq!(argmax(&[0.0, 3.0, 3.0, 1.0]), 1);
    assert_eq!(argmax(&[f32::NAN, -1.0, -2.0]), 1);
    assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
    assert_eq!(argmax(&[]), 0);
    assert_eq!(argmax(&[f32::NEG_INFINITY, -1e30]), 1);
}
