//! One Dense layer's forward pass, gradients and SGD step with any [`Kernels`]: the
//! building blocks of the passes, public so that tests can hold each against
//! [`crate::reference`]. Each call allocates its own packing space (and, for the input
//! gradient, the transposed weights): the passes reuse theirs.

use mlp_core::dense::DenseShape;

use crate::gemm::{Epilogue, Gemm, Pack, Strided};
use crate::isa::Backend;
use crate::{Kernels, Unsupported};

/// Forward pass of one Dense layer: `y ← x·W + b`, then ReLU if `relu` (as
/// `mlp_core::activation::relu_forward` does it). One chain per output, as for every
/// layer but a network's first (see [`dense_forward_split`]).
///
/// # Shapes
/// `x: [batch, inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`,
/// `y: [batch, outputs]` (overwritten).
///
/// # Errors
/// If this CPU does not run `kernels`.
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    y: &mut [f32],
    relu: bool,
) -> Result<(), Unsupported> {
    dense_forward_split(kernels, shape, x, weights, bias, y, relu, None)
}

/// [`dense_forward`] with the sum over inputs split at `split` as a network's first
/// layer's is (see the crate docs): `y = (chain over i < s from b) + (chain over
/// i ≥ s from +0)`, then ReLU if `relu`.
///
/// # Errors
/// If this CPU does not run `kernels`.
///
/// # Panics
/// If a slice is shorter than its shape says or `split > inputs`.
#[allow(clippy::too_many_arguments)]
pub fn dense_forward_split(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    y: &mut [f32],
    relu: bool,
    split: Option<usize>,
) -> Result<(), Unsupported> {
    let backend = Backend::new(kernels)?;
    let mut pack = Pack::default();
    let n = shape.inputs;
    let mut product = |cols: core::ops::Range<usize>, epilogue: Epilogue<'_>, y: &mut [f32]| {
        backend.gemm(
            Gemm {
                a: Strided::rows(&x[cols.start.min(x.len())..], shape.batch, cols.len(), n),
                b: &weights[cols.start * shape.outputs..cols.end * shape.outputs],
                n: shape.outputs,
                c: y,
                epilogue,
            },
            &mut pack,
        )
    };
    match split {
        Some(s) => {
            assert!(s <= n, "split past the inputs");
            product(0..s, Epilogue::Bias { bias, relu: false }, y);
            product(s..n, Epilogue::Add { relu }, y);
        }
        None => product(0..n, Epilogue::Bias { bias, relu }, y),
    }
    Ok(())
}

/// The input gradient of one Dense layer: `grad_in ← grad_out · Wᵀ` (overwritten); with
/// `mask` (the layer's input, a ReLU output) ReLU's backward is fused in: `grad_in` is
/// `+0` where `mask` is not `> 0` (NaN included), as
/// `mlp_core::activation::relu_backward` does it.
///
/// # Shapes
/// `weights: [inputs, outputs]`, `grad_out: [batch, outputs]`, `grad_in` and `mask:
/// [batch, inputs]`.
///
/// # Errors
/// If this CPU does not run `kernels`.
///
/// # Panics
/// If a slice is shorter than its shape says.
pub fn dense_backward_input(
    kernels: Kernels,
    shape: DenseShape,
    weights: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
    mask: Option<&[f32]>,
) -> Result<(), Unsupported> {
    let backend = Backend::new(kernels)?;
    let (inputs, outputs) = (shape.inputs, shape.outputs);
    let mut transposed = vec![0.0; inputs * outputs];
    for (i, row) in weights[..inputs * outputs]
        .chunks_exact(outputs.max(1))
        .enumerate()
    {
        for (j, &w) in row.iter().enumerate() {
            transposed[j * inputs + i] = w;
        }
    }
    let epilogue = match mask {
        Some(h) => Epilogue::Mask { h },
        None => Epilogue::Store,
    };
    if outputs == 0 {
        grad_in[..shape.input_len()].fill(0.0);
        return Ok(());
    }
    backend.gemm(
        Gemm {
            a: Strided::rows(grad_out, shape.batch, outputs, outputs),
            b: &transposed,
            n: inputs,
            c: grad_in,
            epilogue,
        },
        &mut Pack::default(),
    );
    Ok(())
}

/// The weight and bias gradients of one Dense layer: `grad_weights ← xᵀ·grad_out`,
/// `grad_bias ← Σ_batch grad_out` (both overwritten).
///
/// # Shapes
/// `x: [batch, inputs]`, `grad_out: [batch, outputs]`, `grad_weights: [inputs, outputs]`,
/// `grad_bias: [outputs]`.
///
/// # Errors
/// If this CPU does not run `kernels`.
///
/// # Panics
/// If a slice is shorter than its shape says.
pub fn dense_backward_weights(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    grad_out: &[f32],
    grad_weights: &mut [f32],
    grad_bias: &mut [f32],
) -> Result<(), Unsupported> {
    weight_products(kernels, shape, x, grad_out, grad_weights, grad_bias, None)
}

/// One plain-SGD step of one Dense layer with its gradients never stored:
/// `W ← W − lr·(xᵀ·grad_out)`, `b ← b − lr·Σ_batch grad_out`. The same bits as
/// [`dense_backward_weights`] followed by [`sgd_step`].
///
/// # Shapes
/// As [`dense_backward_weights`], with `weights` and `bias` in place of the gradients.
///
/// # Errors
/// If this CPU does not run `kernels`.
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub fn dense_sgd_update(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    grad_out: &[f32],
    weights: &mut [f32],
    bias: &mut [f32],
    learning_rate: f32,
) -> Result<(), Unsupported> {
    weight_products(
        kernels,
        shape,
        x,
        grad_out,
        weights,
        bias,
        Some(learning_rate),
    )
}

fn weight_products(
    kernels: Kernels,
    shape: DenseShape,
    x: &[f32],
    grad_out: &[f32],
    w: &mut [f32],
    bias: &mut [f32],
    lr: Option<f32>,
) -> Result<(), Unsupported> {
    let backend = Backend::new(kernels)?;
    let (inputs, outputs) = (shape.inputs, shape.outputs);
    let w = &mut w[..inputs * outputs];
    let bias = &mut bias[..outputs];
    if shape.batch == 0 {
        if lr.is_none() {
            w.fill(0.0);
            bias.fill(0.0);
        }
        return Ok(());
    }
    backend.gemm(
        Gemm {
            a: Strided::transposed(x, inputs, shape.batch, inputs),
            b: grad_out,
            n: outputs,
            c: w,
            epilogue: match lr {
                Some(lr) => Epilogue::Sgd { lr },
                None => Epilogue::Store,
            },
        },
        &mut Pack::default(),
    );
    crate::step::bias_gradient(&grad_out[..shape.output_len()], outputs, bias, lr);
    Ok(())
}

/// Plain SGD: `params ← params − learning_rate · grads`, the product rounded before
/// the difference (the same in both arithmetics).
///
/// # Panics
/// If the slices' lengths differ.
pub fn sgd_step(params: &mut [f32], grads: &[f32], learning_rate: f32) {
    assert_eq!(params.len(), grads.len(), "params and grads lengths");
    for (p, &g) in params.iter_mut().zip(grads) {
        *p -= learning_rate * g;
    }
}
