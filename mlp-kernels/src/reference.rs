//! The crate's arithmetic (see the crate docs) in plain scalar loops: what every
//! instruction set's kernels must reproduce bit for bit. For tests, and as the
//! readable definition; nothing here is fast.
//!
//! Each function takes the [`Kernels`] whose arithmetic it computes; the instruction
//! set of [`Kernels::Fast`] does not matter (they all compute the same).

use mlp_core::dense::DenseShape;
use mlp_core::loss::{argmax, softmax_cross_entropy_row};
use mlp_core::network::layer_ranges;

use crate::Kernels;

/// `acc + a·b` in the arithmetic of `kernels`: fused for the fast kernels, the product
/// rounded first for the core's.
#[inline]
pub fn multiply_add(kernels: Kernels, acc: f32, a: f32, b: f32) -> f32 {
    match kernels {
        Kernels::Core => acc + a * b,
        Kernels::Fast(_) => a.mul_add(b, acc),
    }
}

/// Where a network's first layer splits its sum in the arithmetic of `kernels` (see
/// the crate docs): `None` for the core's, or with fewer than 32 inputs.
pub fn first_layer_split(kernels: Kernels, inputs: usize) -> Option<usize> {
    let split = 16 * (inputs / 32);
    (matches!(kernels, Kernels::Fast(_)) && split > 0).then_some(split)
}

/// Forward pass of one layer: `y ← x·W + b`, then ReLU if `relu`; with `split = Some(s)`
/// the sum over inputs is split at `s` as for a first layer.
///
/// # Shapes
/// `x: [batch, inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`,
/// `y: [batch, outputs]` (overwritten).
#[allow(clippy::too_many_arguments)]
pub fn dense_forward(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    y: &mut [f32],
    relu: bool,
    split: Option<usize>,
) {
    let (n_in, n_out) = (shape.inputs, shape.outputs);
    let chain = |row: &[f32], j: usize, from: usize, to: usize, start: f32| {
        let mut acc = start;
        for (i, &xi) in row.iter().enumerate().take(to).skip(from) {
            if xi != 0.0 {
                acc = multiply_add(kernels, acc, xi, weights[i * n_out + j]);
            }
        }
        acc
    };
    for r in 0..shape.batch {
        let row = &x[r * n_in..(r + 1) * n_in];
        for j in 0..n_out {
            let v = match split {
                Some(s) => chain(row, j, 0, s, bias[j]) + chain(row, j, s, n_in, 0.0),
                None => chain(row, j, 0, n_in, bias[j]),
            };
            y[r * n_out + j] = if relu && v < 0.0 { 0.0 } else { v };
        }
    }
}

/// Input gradient of one layer: `gx ← g·Wᵀ`, then `+0` wherever `mask` (the layer's
/// input, a ReLU output) is not `> 0`, if given.
///
/// # Shapes
/// `weights: [inputs, outputs]`, `g: [batch, outputs]`, `gx` and `mask: [batch, inputs]`.
pub fn dense_backward_input(
    kernels: Kernels,
    shape: DenseShape,
    weights: &[f32],
    g: &[f32],
    gx: &mut [f32],
    mask: Option<&[f32]>,
) {
    let (n_in, n_out) = (shape.inputs, shape.outputs);
    for r in 0..shape.batch {
        for i in 0..n_in {
            let mut acc = 0.0f32;
            for j in 0..n_out {
                acc = multiply_add(kernels, acc, g[r * n_out + j], weights[i * n_out + j]);
            }
            let keep = mask.is_none_or(|h| h[r * n_in + i] > 0.0);
            gx[r * n_in + i] = if keep { acc } else { 0.0 };
        }
    }
}

/// Weight and bias gradients of one layer: `gw ← xᵀ·g`, `gb ← Σ_rows g`.
///
/// # Shapes
/// `x: [batch, inputs]`, `g: [batch, outputs]`, `gw: [inputs, outputs]`, `gb: [outputs]`.
pub fn dense_backward_weights(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    g: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
) {
    let (n_in, n_out) = (shape.inputs, shape.outputs);
    for i in 0..n_in {
        for j in 0..n_out {
            let mut acc = 0.0f32;
            for r in 0..shape.batch {
                let xi = x[r * n_in + i];
                if xi != 0.0 {
                    acc = multiply_add(kernels, acc, xi, g[r * n_out + j]);
                }
            }
            gw[i * n_out + j] = acc;
        }
    }
    for (j, gb) in gb.iter_mut().enumerate().take(n_out) {
        *gb = (0..shape.batch).fold(0.0f32, |acc, r| acc + g[r * n_out + j]);
    }
}

/// Plain SGD: `params ← params − lr·grads`, the product rounded, then the difference.
pub fn sgd_step(params: &mut [f32], grads: &[f32], lr: f32) {
    for (p, &g) in params.iter_mut().zip(grads) {
        *p -= lr * g;
    }
}

/// What one training step gave: the batch's mean loss and the rows classified right.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean softmax cross-entropy of the batch before the update.
    pub loss: f32,
    /// Rows whose largest logit was their label.
    pub correct: usize,
}

/// The logits of a network (`sizes` input first, `params` in file order) for the rows
/// of `x: [batch, sizes[0]]`, as `[batch, classes]`.
pub fn logits(kernels: Kernels, sizes: &[usize], params: &[f32], x: &[f32]) -> Vec<f32> {
    forward_all(kernels, sizes, params, x)
        .pop()
        .unwrap_or_default()
}

/// Every layer's output (after ReLU for hidden layers) for the rows of `x`.
fn forward_all(kernels: Kernels, sizes: &[usize], params: &[f32], x: &[f32]) -> Vec<Vec<f32>> {
    let batch = x.len() / sizes[0].max(1);
    let layers: Vec<_> = layer_ranges(sizes).collect();
    let mut acts: Vec<Vec<f32>> = Vec::new();
    for (k, l) in layers.iter().enumerate() {
        let input = if k == 0 { x } else { &acts[k - 1] };
        let mut y = vec![0.0; batch * l.outputs];
        let split = if k == 0 {
            first_layer_split(kernels, l.inputs)
        } else {
            None
        };
        dense_forward(
            kernels,
            DenseShape::new(batch, l.inputs, l.outputs),
            input,
            &params[l.weights.clone()],
            &params[l.bias.clone()],
            &mut y,
            k + 1 < layers.len(),
            split,
        );
        acts.push(y);
    }
    acts
}

/// One training step on the rows of `x` with `labels`: forward, loss, backward, and
/// either an SGD step with `lr` (`grads = None`) or the gradients stored in `grads`
/// (in the parameters' order). Nothing is updated or stored when the loss is not
/// finite.
pub fn train_step(
    kernels: Kernels,
    sizes: &[usize],
    params: &mut [f32],
    x: &[f32],
    labels: &[u8],
    lr: f32,
    grads: Option<&mut [f32]>,
) -> StepOutcome {
    let batch = labels.len();
    let layers: Vec<_> = layer_ranges(sizes).collect();
    let acts = forward_all(kernels, sizes, params, x);
    let classes = *sizes.last().unwrap_or(&0);
    let logits = acts.last().map_or(&[][..], |a| &a[..]);
    let mut delta = vec![0.0; batch * classes];
    let scale = 1.0 / batch as f32;
    let mut total = 0.0f32;
    let mut correct = 0;
    for (r, &label) in labels.iter().enumerate() {
        let row = &logits[r * classes..(r + 1) * classes];
        let g = &mut delta[r * classes..(r + 1) * classes];
        total += softmax_cross_entropy_row(row, label, scale, Some(g));
        correct += usize::from(argmax(row) == usize::from(label));
    }
    let loss = total * scale;
    if !loss.is_finite() {
        return StepOutcome { loss, correct };
    }
    let mut all_grads = vec![0.0; params.len()];
    for (k, l) in layers.iter().enumerate().rev() {
        let shape = DenseShape::new(batch, l.inputs, l.outputs);
        let input = if k == 0 { x } else { &acts[k - 1] };
        let (gw, gb) = all_grads[l.weights.start..l.bias.end].split_at_mut(l.weights.len());
        dense_backward_weights(kernels, shape, input, &delta, gw, gb);
        if k > 0 {
            let mut below = vec![0.0; batch * l.inputs];
            dense_backward_input(
                kernels,
                shape,
                &params[l.weights.clone()],
                &delta,
                &mut below,
                Some(input),
            );
            delta = below;
        }
    }
    match grads {
        Some(out) => out.copy_from_slice(&all_grads),
        None => sgd_step(params, &all_grads, lr),
    }
    StepOutcome { loss, correct }
}
