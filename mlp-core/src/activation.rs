//! The ReLU activation, `max(x, 0)`, and its gradient.

/// ReLU in place: every negative value becomes `0.0`.
///
/// NaN stays NaN (it is not less than zero), so a diverging network is noticed by
/// its loss instead of being silently zeroed.
pub fn relu_forward(values: &mut [f32]) {
    for v in values {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// ReLU backward in place: `grad[k] ← 0` wherever the layer's output
/// `activations[k]` is not positive, else `grad[k]` is kept.
///
/// `activations` is the ReLU's *output* (equivalently its input: both are positive at
/// the same places), `grad` the gradient with respect to it; both have the same length.
pub fn relu_backward(activations: &[f32], grad: &mut [f32]) {
    debug_assert_eq!(
        activations.len(),
        grad.len(),
        "activations and grad lengths"
    );
    for (g, &a) in grad.iter_mut().zip(activations) {
        if a <= 0.0 || a.is_nan() {
            *g = 0.0;
        }
    }
}
