//! A small MLP built only from mlp-core's kernels, shared by the integration tests.
#![allow(dead_code)]

use mlp_core::activation::{relu_backward, relu_forward};
use mlp_core::dense::{dense_backward, dense_forward, sgd_step, DenseShape};
use mlp_core::init::xavier_normal;
use mlp_core::loss::softmax_cross_entropy;

/// SplitMix64: a tiny deterministic generator, enough for tests.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.symmetric()).collect()
    }
}

/// One Dense layer's parameters (and, with the same type, its gradients).
#[derive(Clone, Debug)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A Dense/ReLU network with softmax cross-entropy on top.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub layers: Vec<Layer>,
}

impl Mlp {
    pub fn new_xavier(sizes: &[usize], rng: &mut SplitMix) -> Self {
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let mut weights = vec![0.0; pair[0] * pair[1]];
                xavier_normal(&mut weights, pair[0], pair[1], &mut || rng.next_u64());
                Layer {
                    inputs: pair[0],
                    outputs: pair[1],
                    weights,
                    bias: vec![0.0; pair[1]],
                }
            })
            .collect();
        Self { layers }
    }

    pub fn zeros_like(&self) -> Self {
        let mut zeros = self.clone();
        for layer in &mut zeros.layers {
            layer.weights.fill(0.0);
            layer.bias.fill(0.0);
        }
        zeros
    }

    /// Activations of every layer for a batch (index 0 is the input).
    pub fn forward(&self, x: &[f32], batch: usize) -> Vec<Vec<f32>> {
        let mut activations = vec![x.to_vec()];
        for (k, layer) in self.layers.iter().enumerate() {
            let shape = DenseShape::new(batch, layer.inputs, layer.outputs);
            let mut y = vec![0.0; shape.output_len()];
            dense_forward(
                shape,
                activations.last().unwrap(),
                &layer.weights,
                &layer.bias,
                &mut y,
            );
            if k + 1 < self.layers.len() {
                relu_forward(&mut y);
            }
            activations.push(y);
        }
        activations
    }

    pub fn loss(&self, x: &[f32], labels: &[u8]) -> f32 {
        let activations = self.forward(x, labels.len());
        let classes = self.layers.last().unwrap().outputs;
        softmax_cross_entropy(activations.last().unwrap(), labels, classes, None)
    }

    /// Loss and gradients of every parameter for a batch.
    pub fn loss_and_gradients(&self, x: &[f32], labels: &[u8]) -> (f32, Mlp) {
        let batch = labels.len();
        let activations = self.forward(x, batch);
        let classes = self.layers.last().unwrap().outputs;
        let mut grad = vec![0.0; batch * classes];
        let loss = softmax_cross_entropy(
            activations.last().unwrap(),
            labels,
            classes,
            Some(&mut grad),
        );
        let mut grads = self.zeros_like();
        for k in (0..self.layers.len()).rev() {
            let layer = &self.layers[k];
            let shape = DenseShape::new(batch, layer.inputs, layer.outputs);
            let mut grad_in = vec![0.0; shape.input_len()];
            let g = &mut grads.layers[k];
            dense_backward(
                shape,
                &activations[k],
                &layer.weights,
                &grad,
                (k > 0).then_some(&mut grad_in[..]),
                &mut g.weights,
                &mut g.bias,
            );
            if k > 0 {
                relu_backward(&activations[k], &mut grad_in);
            }
            grad = grad_in;
        }
        (loss, grads)
    }

    pub fn sgd(&mut self, grads: &Mlp, learning_rate: f32) {
        for (layer, g) in self.layers.iter_mut().zip(&grads.layers) {
            sgd_step(&mut layer.weights, &g.weights, learning_rate);
            sgd_step(&mut layer.bias, &g.bias, learning_rate);
        }
    }

    pub fn accuracy(&self, x: &[f32], labels: &[u8]) -> f32 {
        let activations = self.forward(x, labels.len());
        let classes = self.layers.last().unwrap().outputs;
        let correct = activations
            .last()
            .unwrap()
            .chunks_exact(classes)
            .zip(labels)
            .filter(|(row, &label)| mlp_core::loss::argmax(row) == usize::from(label))
            .count();
        correct as f32 / labels.len() as f32
    }
}
