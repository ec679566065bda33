//! The Dense (fully connected) layer: `y = x·W + b`, its gradients, and the SGD step.
//!
//! Two levels:
//! - slice kernels ([`dense_forward`], [`dense_backward`], [`sgd_step`]) for code whose
//!   shapes are known only at run time (the trainer, a model read from a file);
//! - the typed layer [`Dense<IN, OUT>`](Dense), whose array types make a layer that
//!   does not fit the previous one a compile error. It calls the same slice kernels.

/// A weight stored in some encoding that can be read as an `f32`.
///
/// The forward kernel is generic over it so the firmware can read weights in place
/// from flash: as `f32` when the bytes are 4-byte aligned, or as little-endian
/// `[u8; 4]` when they are not. Both give the same value, so both give the same
/// result bits.
pub trait Weight: Copy {
    /// The weight's value.
    fn value(self) -> f32;
}

impl Weight for f32 {
    #[inline(always)]
    fn value(self) -> f32 {
        self
    }
}

impl Weight for [u8; 4] {
    #[inline(always)]
    fn value(self) -> f32 {
        f32::from_le_bytes(self)
    }
}

/// The sizes of one Dense layer applied to a batch.
///
/// # Shapes
/// `x: [batch, inputs]`, `W: [inputs, outputs]`, `b: [outputs]`, `y: [batch, outputs]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DenseShape {
    /// Rows in the batch.
    pub batch: usize,
    /// Input features per row (rows of `W`).
    pub inputs: usize,
    /// Output features per row (columns of `W`).
    pub outputs: usize,
}

impl DenseShape {
    /// A shape from its three sizes.
    pub const fn new(batch: usize, inputs: usize, outputs: usize) -> Self {
        Self {
            batch,
            inputs,
            outputs,
        }
    }

    /// Elements of `x` (and of the input gradient): `batch × inputs`.
    pub const fn input_len(&self) -> usize {
        self.batch * self.inputs
    }

    /// Elements of `y` (and of the output gradient): `batch × outputs`.
    pub const fn output_len(&self) -> usize {
        self.batch * self.outputs
    }

    /// Elements of `W`: `inputs × outputs`.
    pub const fn weight_len(&self) -> usize {
        self.inputs * self.outputs
    }
}

/// Forward pass: `y ← x·W + b` for every row of the batch.
///
/// # Arithmetic (the contract that makes host and device agree bit for bit)
/// For each row and each output `j`: `acc = b[j]`, then for `i` ascending, skipping
/// inputs with `x[i] == 0.0`, `acc = acc + x[i] * W[i][j]`, the product rounded to
/// `f32` before the sum (never fused). Skipping zeros only changes the sign of an
/// all-zero sum and saves most of the work on MNIST-like inputs and ReLU outputs,
/// where most values are zero. A faster kernel that must stay bit-identical has to
/// keep exactly this order.
///
/// # Shapes
/// `x: [batch, inputs]`, `weights: [inputs, outputs]`, `bias: [outputs]`,
/// `y: [batch, outputs]` (overwritten). `y` must not alias `x` (the borrow checker
/// enforces it).
pub fn dense_forward<W: Weight>(
    shape: DenseShape,
    x: &[f32],
    weights: &[W],
    bias: &[W],
    y: &mut [f32],
) {
    debug_assert_eq!(x.len(), shape.input_len(), "x length");
    debug_assert_eq!(weights.len(), shape.weight_len(), "weights length");
    debug_assert_eq!(bias.len(), shape.outputs, "bias length");
    debug_assert_eq!(y.len(), shape.output_len(), "y length");
    if shape.outputs == 0 {
        return;
    }
    let mut y_rows = y.chunks_exact_mut(shape.outputs);
    if shape.inputs == 0 {
        for y_row in y_rows.take(shape.batch) {
            fill_from_bias(y_row, bias);
        }
        return;
    }
    for (x_row, y_row) in x.chunks_exact(shape.inputs).zip(&mut y_rows) {
        forward_row(x_row, weights, bias, y_row, shape.outputs);
    }
}

#[inline(always)]
fn fill_from_bias<W: Weight>(y_row: &mut [f32], bias: &[W]) {
    for (y, b) in y_row.iter_mut().zip(bias) {
        *y = b.value();
    }
}

#[inline(always)]
fn forward_row<W: Weight>(
    x_row: &[f32],
    weights: &[W],
    bias: &[W],
    y_row: &mut [f32],
    outputs: usize,
) {
    fill_from_bias(y_row, bias);
    for (&xi, w_row) in x_row.iter().zip(weights.chunks_exact(outputs)) {
        if xi == 0.0 {
            continue;
        }
        for (y, w) in y_row.iter_mut().zip(w_row) {
            *y += xi * w.value();
        }
    }
}

/// Backward pass: the gradients of a loss with respect to the input, the weights and
/// the bias, given its gradient with respect to the output.
///
/// - `grad_in ← grad_out · Wᵀ` (skipped when `None`, as for a network's first layer,
///   where nobody needs it: that saves a quarter of a training step's work);
/// - `grad_weights ← xᵀ · grad_out` (rows of `x` with `x[i] == 0.0` add nothing and are
///   skipped);
/// - `grad_bias ← Σ_batch grad_out`.
///
/// All three are overwritten, not accumulated.
///
/// # Shapes
/// `x: [batch, inputs]`, `weights: [inputs, outputs]`, `grad_out: [batch, outputs]`,
/// `grad_in: [batch, inputs]`, `grad_weights: [inputs, outputs]`, `grad_bias: [outputs]`.
pub fn dense_backward(
    shape: DenseShape,
    x: &[f32],
    weights: &[f32],
    grad_out: &[f32],
    grad_in: Option<&mut [f32]>,
    grad_weights: &mut [f32],
    grad_bias: &mut [f32],
) {
    debug_assert_eq!(x.len(), shape.input_len(), "x length");
    debug_assert_eq!(weights.len(), shape.weight_len(), "weights length");
    debug_assert_eq!(grad_out.len(), shape.output_len(), "grad_out length");
    debug_assert_eq!(
        grad_weights.len(),
        shape.weight_len(),
        "grad_weights length"
    );
    debug_assert_eq!(grad_bias.len(), shape.outputs, "grad_bias length");
    grad_weights.fill(0.0);
    grad_bias.fill(0.0);
    if let Some(grad_in) = grad_in {
        debug_assert_eq!(grad_in.len(), shape.input_len(), "grad_in length");
        dense_backward_input(shape, weights, grad_out, grad_in);
    }
    if shape.outputs == 0 {
        return;
    }
    for g_row in grad_out.chunks_exact(shape.outputs).take(shape.batch) {
        for (gb, &g) in grad_bias.iter_mut().zip(g_row) {
            *gb += g;
        }
    }
    if shape.inputs == 0 {
        return;
    }
    for (x_row, g_row) in x
        .chunks_exact(shape.inputs)
        .zip(grad_out.chunks_exact(shape.outputs))
    {
        for (&xi, gw_row) in x_row
            .iter()
            .zip(grad_weights.chunks_exact_mut(shape.outputs))
        {
            if xi == 0.0 {
                continue;
            }
            for (gw, &g) in gw_row.iter_mut().zip(g_row) {
                *gw += xi * g;
            }
        }
    }
}

/// The input gradient alone: `grad_in ← grad_out · Wᵀ` (overwritten).
///
/// # Shapes
/// `weights: [inputs, outputs]`, `grad_out: [batch, outputs]`, `grad_in: [batch, inputs]`.
pub fn dense_backward_input(
    shape: DenseShape,
    weights: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
) {
    if shape.inputs == 0 {
        return;
    }
    if shape.outputs == 0 {
        grad_in.fill(0.0);
        return;
    }
    for (gi_row, g_row) in grad_in
        .chunks_exact_mut(shape.inputs)
        .zip(grad_out.chunks_exact(shape.outputs))
    {
        for (gi, w_row) in gi_row.iter_mut().zip(weights.chunks_exact(shape.outputs)) {
            let mut acc = 0.0f32;
            for (&w, &g) in w_row.iter().zip(g_row) {
                acc += w * g;
            }
            *gi = acc;
        }
    }
}

/// One step of plain stochastic gradient descent: `params ← params − learning_rate · grads`.
pub fn sgd_step(params: &mut [f32], grads: &[f32], learning_rate: f32) {
    debug_assert_eq!(params.len(), grads.len(), "params and grads lengths");
    for (p, &g) in params.iter_mut().zip(grads) {
        *p -= learning_rate * g;
    }
}

/// A Dense layer whose sizes are part of its type.
///
/// `Dense<784, 100>` followed by `Dense<200, 10>` does not compile, because the first
/// one's output rows are `[f32; 100]` and the second one wants `[f32; 200]`:
///
/// ```compile_fail
/// use mlp_core::dense::Dense;
/// let first = Dense::<4, 3>::zeroed();
/// let second = Dense::<2, 1>::zeroed();
/// let x = [[1.0f32; 4]; 1];
/// let mut hidden = [[0.0f32; 3]; 1];
/// let mut y = [[0.0f32; 1]; 1];
/// first.forward(&x, &mut hidden);
/// second.forward(&hidden, &mut y); // [f32; 3] rows where [f32; 2] rows are expected
/// ```
///
/// Layers that fit chain as expected:
///
/// ```
/// use mlp_core::dense::Dense;
/// let mut first = Dense::<4, 3>::zeroed();
/// first.bias = [1.0, 2.0, 3.0];
/// let second = Dense::<3, 1>::zeroed();
/// let x = [[1.0f32; 4]; 2];
/// let mut hidden = [[0.0f32; 3]; 2];
/// let mut y = [[0.0f32; 1]; 2];
/// first.forward(&x, &mut hidden);
/// second.forward(&hidden, &mut y);
/// assert_eq!(hidden, [[1.0, 2.0, 3.0]; 2]);
/// assert_eq!(y, [[0.0]; 2]);
/// ```
///
/// The same type holds a layer's gradients: they have the shapes of its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<const IN: usize, const OUT: usize> {
    /// `W: [IN, OUT]`; row `i` holds the weights leaving input `i`.
    pub weights: [[f32; OUT]; IN],
    /// `b: [OUT]`.
    pub bias: [f32; OUT],
}

impl<const IN: usize, const OUT: usize> Dense<IN, OUT> {
    /// The layer's shape for a batch of `batch` rows.
    pub const fn shape(batch: usize) -> DenseShape {
        DenseShape::new(batch, IN, OUT)
    }

    /// A layer with all weights and biases zero (also an empty gradient).
    pub const fn zeroed() -> Self {
        Self {
            weights: [[0.0; OUT]; IN],
            bias: [0.0; OUT],
        }
    }

    /// Forward pass for a batch of `B` rows: `y ← x·W + b`; see [`dense_forward`].
    pub fn forward<const B: usize>(&self, x: &[[f32; IN]; B], y: &mut [[f32; OUT]; B]) {
        dense_forward(
            Self::shape(B),
            x.as_flattened(),
            self.weights.as_flattened(),
            &self.bias,
            y.as_flattened_mut(),
        );
    }

    /// Backward pass for a batch of `B` rows: fills `grads` with the weight and bias
    /// gradients and, if given, `grad_in` with the input gradient; see [`dense_backward`].
    pub fn backward<const B: usize>(
        &self,
        x: &[[f32; IN]; B],
        grad_out: &[[f32; OUT]; B],
        grad_in: Option<&mut [[f32; IN]; B]>,
        grads: &mut Self,
    ) {
        dense_backward(
            Self::shape(B),
            x.as_flattened(),
            self.weights.as_flattened(),
            grad_out.as_flattened(),
            grad_in.map(|g| g.as_flattened_mut()),
            grads.weights.as_flattened_mut(),
            &mut grads.bias,
        );
    }

    /// One SGD step with the gradients in `grads`; see [`sgd_step`].
    pub fn sgd_step(&mut self, grads: &Self, learning_rate: f32) {
        sgd_step(
            self.weights.as_flattened_mut(),
            grads.weights.as_flattened(),
            learning_rate,
        );
        sgd_step(&mut self.bias, &grads.bias, learning_rate);
    }
}

impl<const IN: usize, const OUT: usize> Default for Dense<IN, OUT> {
    fn default() -> Self {
        Self::zeroed()
    }
}
