//! Finite-difference checks of every gradient the core computes: Dense (input,
//! weights, bias), ReLU, softmax cross-entropy, and a whole 784-100-200-10 network.

mod common;

use common::{Mlp, SplitMix};
use mlp_core::activation::{relu_backward, relu_forward};
use mlp_core::dense::{dense_backward, dense_forward, DenseShape};
use mlp_core::loss::softmax_cross_entropy;

/// |a − b| / max(|a|, |b|, floor): relative where it can be, absolute near zero.
fn relative_error(analytic: f64, numeric: f64, floor: f64) -> f64 {
    (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(floor)
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// A Dense layer under the linear loss `L = Σ r ⊙ y`: `dL/dy = r` exactly and `L` is
/// linear in `x`, `W` and `b`, so central differences are exact up to rounding and
/// every element can be checked tightly.
#[test]
fn dense_gradients_match_finite_differences() {
    let mut rng = SplitMix(1);
    for &(batch, inputs, outputs) in &[(1, 1, 1), (3, 5, 4), (2, 7, 3), (4, 3, 6)] {
        let shape = DenseShape::new(batch, inputs, outputs);
        let x = rng.vec(shape.input_len());
        let w = rng.vec(shape.weight_len());
        let b = rng.vec(outputs);
        let r = rng.vec(shape.output_len());
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; shape.output_len()];
            dense_forward(shape, x, w, b, &mut y);
            dot(&y, &r)
        };
        let mut grad_x = vec![0.0; shape.input_len()];
        let mut grad_w = vec![0.0; shape.weight_len()];
        let mut grad_b = vec![0.0; outputs];
        dense_backward(
            shape,
            &x,
            &w,
            &r,
            Some(&mut grad_x),
            &mut grad_w,
            &mut grad_b,
        );

        let eps = 1e-2f32;
        let numeric = |which: usize, k: usize| {
            let (mut xp, mut wp, mut bp) = (x.clone(), w.clone(), b.clone());
            let (mut xm, mut wm, mut bm) = (x.clone(), w.clone(), b.clone());
            match which {
                0 => (xp[k] += eps, xm[k] -= eps),
                1 => (wp[k] += eps, wm[k] -= eps),
                _ => (bp[k] += eps, bm[k] -= eps),
            };
            (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * f64::from(eps))
        };
        for (which, analytic) in [(0, &grad_x), (1, &grad_w), (2, &grad_b)] {
            for (k, &a) in analytic.iter().enumerate() {
                let n = numeric(which, k);
                let error = relative_error(f64::from(a), n, 1e-3);
                assert!(
                    error < 1e-3,
                    "shape {shape:?}, tensor {which}, element {k}: analytic {a}, numeric {n}"
                );
            }
        }
    }
}

#[test]
fn relu_gradient_matches_finite_differences() {
    let mut rng = SplitMix(2);
    // Keep inputs away from the kink at 0, where the derivative does not exist.
    let z: Vec<f32> = rng
        .vec(64)
        .into_iter()
        .map(|v| {
            if v.abs() < 0.05 {
                v + 0.1f32.copysign(v)
            } else {
                v
            }
        })
        .collect();
    let r = rng.vec(64);
    let loss = |z: &[f32]| {
        let mut a = z.to_vec();
        relu_forward(&mut a);
        dot(&a, &r)
    };
    let mut activations = z.clone();
    relu_forward(&mut activations);
    let mut grad = r.clone();
    relu_backward(&activations, &mut grad);
    let eps = 1e-3;
    for k in 0..z.len() {
        let (mut plus, mut minus) = (z.clone(), z.clone());
        plus[k] += eps;
        minus[k] -= eps;
        let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(eps));
        assert!(
            relative_error(f64::from(grad[k]), numeric, 1e-3) < 1e-3,
            "element {k}"
        );
    }
    assert!(
        grad.iter().filter(|&&g| g == 0.0).count() > 10,
        "both sides of the kink covered"
    );
}

#[test]
fn loss_gradient_matches_finite_differences() {
    let mut rng = SplitMix(3);
    let (batch, classes) = (5, 7);
    let logits: Vec<f32> = rng.vec(batch * classes).iter().map(|v| v * 4.0).collect();
    let labels: Vec<u8> = (0..batch).map(|_| rng.below(classes) as u8).collect();
    let mut grad = vec![0.0; batch * classes];
    softmax_cross_entropy(&logits, &labels, classes, Some(&mut grad));
    let eps = 1e-2;
    for k in 0..logits.len() {
        let (mut plus, mut minus) = (logits.clone(), logits.clone());
        plus[k] += eps;
        minus[k] -= eps;
        let numeric = (f64::from(softmax_cross_entropy(&plus, &labels, classes, None))
            - f64::from(softmax_cross_entropy(&minus, &labels, classes, None)))
            / (2.0 * f64::from(eps));
        let error = relative_error(f64::from(grad[k]), numeric, 1e-2);
        assert!(
            error < 2e-3,
            "logit {k}: analytic {}, numeric {numeric}",
            grad[k]
        );
    }
}

/// The directional derivative of the loss along a random direction in one parameter
/// tensor, by central differences and by the analytic gradient. Checking a direction
/// instead of every element keeps the 100,000-parameter network fast while still
/// involving every element of the tensor.
fn directional_check(
    model: &Mlp,
    grads: &Mlp,
    x: &[f32],
    labels: &[u8],
    layer: usize,
    bias: bool,
    rng: &mut SplitMix,
) -> (f64, f64) {
    let len = if bias {
        model.layers[layer].bias.len()
    } else {
        model.layers[layer].weights.len()
    };
    let direction = rng.vec(len);
    let analytic = if bias {
        dot(&grads.layers[layer].bias, &direction)
    } else {
        dot(&grads.layers[layer].weights, &direction)
    };
    let shifted = |eps: f32| {
        let mut m = model.clone();
        let target = if bias {
            &mut m.layers[layer].bias
        } else {
            &mut m.layers[layer].weights
        };
        for (p, d) in target.iter_mut().zip(&direction) {
            *p += eps * d;
        }
        m
    };
    // As large as possible, so the f32 loss's rounding is small against the
    // difference, but small enough that no pre-activation crosses ReLU's kink.
    let unshifted_mask = relu_mask(model, x, labels.len());
    let mut eps = 1e-3f32;
    loop {
        let (plus, minus) = (shifted(eps), shifted(-eps));
        if relu_mask(&plus, x, labels.len()) == unshifted_mask
            && relu_mask(&minus, x, labels.len()) == unshifted_mask
        {
            let numeric = (f64::from(plus.loss(x, labels)) - f64::from(minus.loss(x, labels)))
                / (2.0 * f64::from(eps));
            return (analytic, numeric);
        }
        eps /= 2.0;
        assert!(
            eps > 1e-5,
            "cannot move along this direction without crossing a kink"
        );
    }
}

fn mnist_shaped_batch(rng: &mut SplitMix, batch: usize) -> (Vec<f32>, Vec<u8>) {
    // Like MNIST: most pixels zero, the rest in (0, 1].
    let x = (0..batch * 784)
        .map(|_| {
            if rng.below(10) < 7 {
                0.0
            } else {
                rng.symmetric().abs()
            }
        })
        .collect();
    let labels = (0..batch).map(|_| rng.below(10) as u8).collect();
    (x, labels)
}

/// Which hidden units are active for this batch.
fn relu_mask(model: &Mlp, x: &[f32], batch: usize) -> Vec<bool> {
    let activations = model.forward(x, batch);
    activations[1..activations.len() - 1]
        .iter()
        .flatten()
        .map(|&a| a > 0.0)
        .collect()
}

/// The smallest |pre-activation| of any hidden unit for this batch.
fn closest_to_kink(model: &Mlp, x: &[f32], batch: usize) -> f32 {
    let activations = model.forward(x, batch);
    let mut closest = f32::INFINITY;
    for (k, layer) in model.layers.iter().enumerate().take(model.layers.len() - 1) {
        let shape = DenseShape::new(batch, layer.inputs, layer.outputs);
        let mut z = vec![0.0; shape.output_len()];
        dense_forward(shape, &activations[k], &layer.weights, &layer.bias, &mut z);
        closest = z.iter().fold(closest, |c, v| c.min(v.abs()));
    }
    closest
}

/// A batch on which no hidden unit is within `margin` of ReLU's kink, so that the
/// finite differences (which move pre-activations by far less than that) see a smooth
/// function.
fn batch_away_from_kinks(
    model: &Mlp,
    rng: &mut SplitMix,
    batch: usize,
    margin: f32,
) -> (Vec<f32>, Vec<u8>) {
    for _ in 0..1000 {
        let (x, labels) = mnist_shaped_batch(rng, batch);
        if closest_to_kink(model, &x, batch) > margin {
            return (x, labels);
        }
    }
    panic!("no batch with all hidden units {margin} away from zero in 1000 tries");
}

#[test]
fn whole_network_gradients_match_finite_differences() {
    let mut rng = SplitMix(4);
    let model = Mlp::new_xavier(&[784, 100, 200, 10], &mut rng);
    let (x, labels) = batch_away_from_kinks(&model, &mut rng, 1, 3e-3);
    let (_, grads) = model.loss_and_gradients(&x, &labels);
    for layer in 0..3 {
        for bias in [false, true] {
            for _ in 0..3 {
                let (analytic, numeric) =
                    directional_check(&model, &grads, &x, &labels, layer, bias, &mut rng);
                let error = relative_error(analytic, numeric, 1e-3);
                assert!(
                    error < 1e-2,
                    "layer {layer} bias {bias}: analytic {analytic}, numeric {numeric}, error {error}"
                );
            }
        }
    }
}

/// The check above must be able to fail: a gradient with a transposed term (here the
/// last layer's weight gradient read as `[outputs, inputs]`) is caught.
#[test]
fn whole_network_check_catches_a_transposed_gradient() {
    let mut rng = SplitMix(5);
    let model = Mlp::new_xavier(&[784, 100, 200, 10], &mut rng);
    let (x, labels) = mnist_shaped_batch(&mut rng, 4);
    let (_, mut grads) = model.loss_and_gradients(&x, &labels);
    let correct = grads.layers[2].weights.clone();
    let (inputs, outputs) = (200, 10);
    for i in 0..inputs {
        for j in 0..outputs {
            // Element (i, j) taken from the transposed position of a [outputs, inputs] reading.
            let flat = i * outputs + j;
            let (tj, ti) = (flat / inputs, flat % inputs);
            grads.layers[2].weights[flat] = correct[ti * outputs + tj];
        }
    }
    let (analytic, numeric) = directional_check(&model, &grads, &x, &labels, 2, false, &mut rng);
    assert!(
        relative_error(analytic, numeric, 1e-3) > 0.1,
        "a transposed gradient went unnoticed: {analytic} vs {numeric}"
    );
}
