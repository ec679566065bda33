//! The slice kernels against naive references over every small size and some awkward
//! ones, the typed layer against the slice kernels, Xavier statistics, and the layer
//! loop (batches, every layer kept, a pass from a later layer, kernels other than the
//! core's).

mod common;

use common::{Mlp, SplitMix};
use mlp_core::dense::{dense_backward, dense_forward, sgd_step, Dense, DenseShape};
use mlp_core::init::{xavier_normal, xavier_std};
use mlp_core::network::{
    forward, forward_one, pixel_value, CoreKernel, DenseKernel, EveryLayer, ForwardError,
    LayerParams, PingPong,
};

/// Sizes 0..=6 in every dimension, and a few awkward ones.
fn shapes() -> Vec<DenseShape> {
    let mut shapes = Vec::new();
    for batch in 0..=4 {
        for inputs in 0..=6 {
            for outputs in 0..=6 {
                shapes.push(DenseShape::new(batch, inputs, outputs));
            }
        }
    }
    shapes.extend([
        DenseShape::new(3, 17, 257),
        DenseShape::new(32, 784, 100),
        DenseShape::new(1, 257, 17),
    ]);
    shapes
}

/// Inputs with about a third exact zeros, as after ReLU, some of them negative zeros.
fn sparse_vec(rng: &mut SplitMix, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.below(6) {
            0 => 0.0,
            1 => -0.0,
            _ => rng.symmetric(),
        })
        .collect()
}

#[test]
fn forward_is_bit_identical_to_the_documented_order() {
    let mut rng = SplitMix(10);
    for shape in shapes() {
        let x = sparse_vec(&mut rng, shape.input_len());
        let w = rng.vec(shape.weight_len());
        let b = rng.vec(shape.outputs);
        let mut y = vec![f32::NAN; shape.output_len()];
        dense_forward(shape, &x, &w, &b, &mut y);
        for n in 0..shape.batch {
            for j in 0..shape.outputs {
                let mut acc = b[j];
                for i in 0..shape.inputs {
                    let xi = x[n * shape.inputs + i];
                    if xi != 0.0 {
                        acc += xi * w[i * shape.outputs + j];
                    }
                }
                assert_eq!(
                    y[n * shape.outputs + j].to_bits(),
                    acc.to_bits(),
                    "{shape:?} ({n}, {j})"
                );
            }
        }
    }
}

#[test]
fn forward_reads_unaligned_little_endian_weights_identically() {
    let mut rng = SplitMix(11);
    let shape = DenseShape::new(2, 13, 7);
    let x = sparse_vec(&mut rng, shape.input_len());
    let w = rng.vec(shape.weight_len());
    let b = rng.vec(shape.outputs);
    let w_bytes: Vec<[u8; 4]> = w.iter().map(|v| v.to_le_bytes()).collect();
    let b_bytes: Vec<[u8; 4]> = b.iter().map(|v| v.to_le_bytes()).collect();
    let (mut from_f32, mut from_bytes) = (vec![0.0; 14], vec![0.0; 14]);
    dense_forward(shape, &x, &w, &b, &mut from_f32);
    dense_forward(shape, &x, &w_bytes, &b_bytes, &mut from_bytes);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&from_f32), bits(&from_bytes));
}

#[test]
fn backward_matches_naive_sums() {
    let mut rng = SplitMix(12);
    for shape in shapes() {
        let x = sparse_vec(&mut rng, shape.input_len());
        let w = rng.vec(shape.weight_len());
        let g = rng.vec(shape.output_len());
        let mut grad_in = vec![f32::NAN; shape.input_len()];
        let mut grad_w = vec![f32::NAN; shape.weight_len()];
        let mut grad_b = vec![f32::NAN; shape.outputs];
        dense_backward(
            shape,
            &x,
            &w,
            &g,
            Some(&mut grad_in),
            &mut grad_w,
            &mut grad_b,
        );
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-5 * (1.0 + b.abs());
        for n in 0..shape.batch {
            for i in 0..shape.inputs {
                let expected: f64 = (0..shape.outputs)
                    .map(|j| {
                        f64::from(g[n * shape.outputs + j]) * f64::from(w[i * shape.outputs + j])
                    })
                    .sum();
                assert!(
                    close(grad_in[n * shape.inputs + i], expected),
                    "{shape:?} grad_in"
                );
            }
        }
        for i in 0..shape.inputs {
            for j in 0..shape.outputs {
                let expected: f64 = (0..shape.batch)
                    .map(|n| {
                        f64::from(x[n * shape.inputs + i]) * f64::from(g[n * shape.outputs + j])
                    })
                    .sum();
                assert!(
                    close(grad_w[i * shape.outputs + j], expected),
                    "{shape:?} grad_w"
                );
            }
        }
        for j in 0..shape.outputs {
            let expected: f64 = (0..shape.batch)
                .map(|n| f64::from(g[n * shape.outputs + j]))
                .sum();
            assert!(close(grad_b[j], expected), "{shape:?} grad_b");
        }
    }
}

#[test]
fn sgd_step_moves_against_the_gradient() {
    let mut params = vec![1.0f32, -2.0, 0.5];
    sgd_step(&mut params, &[0.5, -1.0, 0.0], 0.1);
    assert_eq!(params, vec![0.95, -1.9, 0.5]);
}

#[test]
fn typed_layer_uses_the_slice_kernels() {
    let mut rng = SplitMix(13);
    let mut layer = Dense::<5, 3>::zeroed();
    for row in &mut layer.weights {
        row.copy_from_slice(&rng.vec(3));
    }
    layer.bias.copy_from_slice(&rng.vec(3));
    let x: [[f32; 5]; 2] = [[0.5, 0.0, -1.0, 2.0, 0.25], [1.0, 1.0, 0.0, 0.0, -3.0]];
    let mut y = [[0.0f32; 3]; 2];
    layer.forward(&x, &mut y);
    let mut expected = [0.0f32; 6];
    dense_forward(
        Dense::<5, 3>::shape(2),
        x.as_flattened(),
        layer.weights.as_flattened(),
        &layer.bias,
        &mut expected,
    );
    assert_eq!(y.as_flattened(), &expected);

    let grad_out = [[1.0f32, -1.0, 0.5], [0.0, 2.0, 1.0]];
    let mut grads = Dense::<5, 3>::zeroed();
    let mut grad_in = [[0.0f32; 5]; 2];
    layer.backward(&x, &grad_out, Some(&mut grad_in), &mut grads);
    assert_eq!(grads.bias, [1.0, 1.0, 1.5]);
    assert_eq!(grads.weights[0], [0.5, 1.5, 1.25]);
    let before = layer.clone();
    layer.sgd_step(&grads, 0.5);
    assert_eq!(layer.bias[2], before.bias[2] - 0.75);
}

#[test]
fn xavier_normal_has_the_right_spread_and_is_reproducible() {
    let (fan_in, fan_out) = (784, 100);
    let mut seed = 99u64;
    let mut rng = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed
    };
    let mut weights = vec![0.0f32; 200_000];
    xavier_normal(&mut weights, fan_in, fan_out, &mut rng);
    let n = weights.len() as f64;
    let mean = weights.iter().map(|&w| f64::from(w)).sum::<f64>() / n;
    let var = weights
        .iter()
        .map(|&w| (f64::from(w) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = xavier_std(fan_in, fan_out);
    assert!((std - (2.0f64 / 884.0).sqrt()).abs() < 1e-12);
    assert!(mean.abs() < 3.0 * std / n.sqrt() * 2.0, "mean {mean}");
    assert!(
        (var.sqrt() / std - 1.0).abs() < 0.01,
        "std {} vs {std}",
        var.sqrt()
    );
    // Normal, not uniform: about 4.6% of samples beyond two standard deviations.
    let tails = weights
        .iter()
        .filter(|&&w| f64::from(w).abs() > 2.0 * std)
        .count() as f64
        / n;
    assert!((tails - 0.0455).abs() < 0.003, "tail share {tails}");

    let mut again = SplitMix(1);
    let mut a = vec![0.0f32; 10];
    let mut b = vec![0.0f32; 10];
    xavier_normal(&mut a, 3, 4, &mut || again.next_u64());
    let mut again = SplitMix(1);
    xavier_normal(&mut b, 3, 4, &mut || again.next_u64());
    assert_eq!(a, b);
}

#[test]
fn forward_one_matches_the_batch_kernels_bit_for_bit() {
    let mut rng = SplitMix(14);
    let model = Mlp::new_xavier(&[784, 100, 200, 10], &mut rng);
    let x = sparse_vec(&mut rng, 784);
    let expected = model.forward(&x, 1).pop().unwrap();
    let layers = model.layers.iter().map(|l| LayerParams {
        inputs: l.inputs,
        outputs: l.outputs,
        weights: &l.weights[..],
        bias: &l.bias[..],
    });
    let (mut a, mut b) = (vec![0.0; 200], vec![0.0; 200]);
    let logits = forward_one(layers, &x, &mut a, &mut b).unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(logits), bits(&expected));
}

#[test]
fn forward_one_reports_what_does_not_fit() {
    let w = [0.0f32; 6];
    let b = [0.0f32; 3];
    let layer = |inputs, outputs| LayerParams {
        inputs,
        outputs,
        weights: &w[..inputs * outputs],
        bias: &b[..outputs],
    };
    let (mut a, mut s) = ([0.0f32; 3], [0.0f32; 3]);
    assert_eq!(
        forward_one([layer(2, 3)], &[1.0; 3], &mut a, &mut s),
        Err(ForwardError::InputLength {
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        forward_one([layer(2, 3), layer(2, 1)], &[1.0; 2], &mut a, &mut s),
        Err(ForwardError::LayersDoNotChain { layer: 1 })
    );
    assert_eq!(
        forward_one([layer(2, 3)], &[1.0; 2], &mut a[..2], &mut s),
        Err(ForwardError::ScratchTooSmall {
            layer: 0,
            needed: 3
        })
    );
    let bad = LayerParams {
        inputs: 2,
        outputs: 3,
        weights: &w[..5],
        bias: &b[..],
    };
    assert_eq!(
        forward_one([bad], &[1.0; 2], &mut a, &mut s),
        Err(ForwardError::ParameterLength { layer: 0 })
    );
    assert_eq!(
        forward_one(
            std::iter::empty::<LayerParams<f32>>(),
            &[1.0; 2],
            &mut a,
            &mut s
        ),
        Err(ForwardError::NoLayers)
    );
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn params(model: &Mlp) -> Vec<LayerParams<'_, f32>> {
    model
        .layers
        .iter()
        .map(|l| LayerParams {
            inputs: l.inputs,
            outputs: l.outputs,
            weights: &l.weights[..],
            bias: &l.bias[..],
        })
        .collect()
}

#[test]
fn the_layer_loop_runs_batches_and_keeps_every_layer() {
    let mut rng = SplitMix(15);
    let model = Mlp::new_xavier(&[37, 20, 31, 9, 5], &mut rng);
    let layers = params(&model);
    for rows in [0, 1, 2, 7] {
        let x = sparse_vec(&mut rng, rows * 37);
        let expected = model.forward(&x, rows);
        // Ping-pong: the logits only, bit for bit the batch kernels'.
        let (mut even, mut odd) = (vec![0.0; rows * 31], vec![0.0; rows * 31]);
        let pass = PingPong::new(&mut even, &mut odd);
        let logits = forward(&mut CoreKernel, layers.iter().copied(), &x, rows, pass).unwrap();
        assert_eq!(bits(logits), bits(&expected[4]), "{rows} rows");
        // Every layer: each output as the batch kernels leave it (ReLU on hidden ones).
        let mut outputs: Vec<Vec<f32>> =
            layers.iter().map(|l| vec![0.0; rows * l.outputs]).collect();
        let logits = forward(
            &mut CoreKernel,
            layers.iter().copied(),
            &x,
            rows,
            EveryLayer::new(&mut outputs),
        )
        .unwrap()
        .to_vec();
        assert_eq!(bits(&logits), bits(&expected[4]));
        for (k, output) in outputs.iter().enumerate() {
            assert_eq!(
                bits(output),
                bits(&expected[k + 1]),
                "layer {k}, {rows} rows"
            );
        }
        // Layers 1.. from the first layer's output, as a training step runs them.
        let (first, rest) = outputs.split_at_mut(1);
        let later = layers.iter().copied().skip(1);
        let logits = forward(
            &mut CoreKernel,
            later,
            &first[0],
            rows,
            EveryLayer::new(rest),
        );
        assert_eq!(bits(logits.unwrap()), bits(&expected[4]));
    }
}

/// A kernel that reads pixel bytes for the first layer (`pixel_value`, as the device
/// does) and records what the loop tells it; the arithmetic is the core's.
#[derive(Default)]
struct Recording {
    calls: Vec<(&'static str, usize, bool)>,
}

impl<'a> DenseKernel<LayerParams<'a, f32>> for Recording {
    fn dense(
        &mut self,
        layer: &LayerParams<'a, f32>,
        rows: usize,
        x: &[f32],
        y: &mut [f32],
        relu: bool,
    ) {
        self.calls.push(("f32", rows, relu));
        CoreKernel.dense(layer, rows, x, y, relu);
    }
}

impl<'a> DenseKernel<LayerParams<'a, f32>, u8> for Recording {
    fn dense(
        &mut self,
        layer: &LayerParams<'a, f32>,
        rows: usize,
        x: &[u8],
        y: &mut [f32],
        relu: bool,
    ) {
        self.calls.push(("pixels", rows, relu));
        let x: Vec<f32> = x.iter().map(|&p| pixel_value(p)).collect();
        CoreKernel.dense(layer, rows, &x, y, relu);
    }
}

#[test]
fn the_layer_loop_reads_the_first_input_as_the_kernel_says_and_relu_only_hidden_layers() {
    let mut rng = SplitMix(16);
    let model = Mlp::new_xavier(&[12, 8, 6, 3], &mut rng);
    let layers = params(&model);
    let pixels: Vec<u8> = (0..24).map(|_| rng.below(256) as u8).collect();
    let values: Vec<f32> = pixels.iter().map(|&p| pixel_value(p)).collect();
    let mut kernel = Recording::default();
    let (mut even, mut odd) = (vec![0.0; 16], vec![0.0; 16]);
    let pass = PingPong::new(&mut even, &mut odd);
    let logits = forward(&mut kernel, layers.iter().copied(), &pixels, 2, pass).unwrap();
    assert_eq!(bits(logits), bits(&model.forward(&values, 2)[3]));
    assert_eq!(
        kernel.calls,
        [("pixels", 2, true), ("f32", 2, true), ("f32", 2, false)]
    );
    // One layer: it is the last, so no ReLU.
    let mut kernel = Recording::default();
    let pass = PingPong::new(&mut even, &mut odd);
    forward(
        &mut kernel,
        layers.iter().copied().take(1),
        &pixels[..12],
        1,
        pass,
    )
    .unwrap();
    assert_eq!(kernel.calls, [("pixels", 1, false)]);
}

#[test]
fn the_layer_loop_reports_what_does_not_fit_in_batches() {
    let mut rng = SplitMix(17);
    let model = Mlp::new_xavier(&[4, 3, 2], &mut rng);
    let layers = params(&model);
    let x = [0.5f32; 12];
    let (mut even, mut odd) = ([0.0f32; 9], [0.0f32; 9]);
    assert_eq!(
        forward(
            &mut CoreKernel,
            layers.iter().copied(),
            &x[..11],
            3,
            PingPong::new(&mut even, &mut odd)
        ),
        Err(ForwardError::InputLength {
            expected: 12,
            found: 11
        })
    );
    assert_eq!(
        forward(
            &mut CoreKernel,
            layers.iter().copied(),
            &x,
            3,
            PingPong::new(&mut even, &mut odd[..5])
        ),
        Err(ForwardError::ScratchTooSmall {
            layer: 1,
            needed: 6
        })
    );
    // With every layer kept: a buffer too short, or none for a layer.
    let mut outputs = [vec![0.0; 9], vec![0.0; 5]];
    assert_eq!(
        forward(
            &mut CoreKernel,
            layers.iter().copied(),
            &x,
            3,
            EveryLayer::new(&mut outputs)
        ),
        Err(ForwardError::ScratchTooSmall {
            layer: 1,
            needed: 6
        })
    );
    let mut outputs = [vec![0.0; 9]];
    assert_eq!(
        forward(
            &mut CoreKernel,
            layers.iter().copied(),
            &x,
            3,
            EveryLayer::new(&mut outputs)
        ),
        Err(ForwardError::ScratchTooSmall {
            layer: 1,
            needed: 6
        })
    );
    // Layers are numbered from the first one given.
    let mut outputs = [vec![0.0; 6]];
    assert_eq!(
        forward(
            &mut CoreKernel,
            layers.iter().copied().skip(1),
            &x[..8],
            3,
            EveryLayer::new(&mut outputs)
        ),
        Err(ForwardError::InputLength {
            expected: 9,
            found: 8
        })
    );
    let no_layers = std::iter::empty::<LayerParams<f32>>();
    assert_eq!(
        forward(
            &mut CoreKernel,
            no_layers,
            &x,
            3,
            EveryLayer::new(&mut outputs)
        ),
        Err(ForwardError::NoLayers)
    );
}
