//! Softmax cross-entropy computed from logits, its gradient, and argmax prediction.
//!
//! Everything goes through the log-sum-exp with the row's maximum subtracted first,
//! `lse(z) = m + ln Σ exp(z_j − m)` with `m = max_j z_j`, so no `exp` ever overflows
//! and logits of ±1e4 give finite, exact losses.

/// The row's maximum `m` and `Σ_j exp(row[j] − m)`, which lies in `[1, len]`.
///
/// Every quantity below is built from these two, always keeping `row[j] − m` apart
/// from `ln Σ`: adding `ln Σ` (at most `ln len`) to a logit of 1e4 first would round
/// it away, since f32 values near 1e4 are 1e-3 apart.
fn max_and_shifted_sum(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return (max, f32::NAN);
    }
    (max, row.iter().map(|&z| libm::expf(z - max)).sum())
}

/// `ln Σ_j exp(row[j])`, computed stably: `m + ln Σ_j exp(row[j] − m)`. NaN for an
/// empty row or one whose maximum is not finite.
pub fn log_sum_exp(row: &[f32]) -> f32 {
    let (max, sum) = max_and_shifted_sum(row);
    max + libm::logf(sum)
}

/// Softmax of one row into `out`: `out[j] = exp(row[j] − m) / Σ_k exp(row[k] − m)`,
/// with `m` the row's maximum; `out` sums to 1 up to rounding.
pub fn softmax(row: &[f32], out: &mut [f32]) {
    debug_assert_eq!(row.len(), out.len(), "row and out lengths");
    let (max, sum) = max_and_shifted_sum(row);
    let inv_sum = 1.0 / sum;
    for (o, &z) in out.iter_mut().zip(row) {
        *o = libm::expf(z - max) * inv_sum;
    }
}

/// Mean softmax cross-entropy of a batch, and optionally its gradient with respect to
/// the logits.
///
/// Row `n`'s loss is `lse(z_n) − z_n[label_n]`, computed as
/// `(m − z_n[label_n]) + ln Σ_j exp(z_n[j] − m)`; the result is their mean. With `grad`,
/// `grad[n][j] ← (softmax(z_n)[j] − [j == label_n]) / batch` (overwritten), so each
/// gradient row sums to zero up to rounding.
///
/// A label that is not below `classes` makes that row's loss NaN and its gradient
/// row NaN: callers validate labels when they load data, and NaN is what the training
/// loop's divergence check catches.
///
/// # Shapes
/// `logits: [batch, classes]`, `labels: [batch]`, `grad: [batch, classes]`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    mut grad: Option<&mut [f32]>,
) -> f32 {
    debug_assert_eq!(logits.len(), labels.len() * classes, "logits length");
    if classes == 0 || labels.is_empty() {
        return f32::NAN;
    }
    let batch = labels.len();
    let inv_batch = 1.0 / batch as f32;
    let mut total = 0.0f32;
    for (n, (row, &label)) in logits.chunks_exact(classes).zip(labels).enumerate() {
        let grad_row = grad
            .as_deref_mut()
            .and_then(|g| g.get_mut(n * classes..(n + 1) * classes));
        total += softmax_cross_entropy_row(row, label, inv_batch, grad_row);
    }
    total * inv_batch
}

/// One row of [`softmax_cross_entropy`]: the row's loss `lse(z) − z[label]`, and with
/// `grad` its gradient scaled by `scale` (the batch mean uses `1 / batch`):
/// `grad[j] ← (softmax(z)[j] − [j == label]) · scale`. A label not below `row.len()`
/// gives NaN, as in the batch function. Public so that a trainer splitting a batch's
/// rows between threads computes exactly the batch function's numbers.
///
/// # Shapes
/// `grad: [row.len()]`.
pub fn softmax_cross_entropy_row(
    row: &[f32],
    label: u8,
    scale: f32,
    grad: Option<&mut [f32]>,
) -> f32 {
    let label = usize::from(label);
    let (max, sum) = max_and_shifted_sum(row);
    let loss = match row.get(label) {
        Some(&z) => (max - z) + libm::logf(sum),
        None => f32::NAN,
    };
    if let Some(grad_row) = grad {
        let inv_sum = 1.0 / sum;
        for (j, (g, &z)) in grad_row.iter_mut().zip(row).enumerate() {
            let target = if j == label { 1.0 } else { 0.0 };
            *g = (libm::expf(z - max) * inv_sum - target) * scale;
        }
        if label >= row.len() {
            grad_row.fill(f32::NAN);
        }
    }
    loss
}

/// Index of the largest value (the predicted class). Ties go to the lowest index;
/// NaN never wins; an empty or all-NaN row gives 0.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (j, &v) in row.iter().enumerate() {
        if v > best_value {
            best = j;
            best_value = v;
        }
    }
    best
}
