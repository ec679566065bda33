//! A small network built only from mlp-core learns a problem no linear model can:
//! proof that forward, backward and the SGD step fit together.

mod common;

use common::{Mlp, SplitMix};

/// XOR of two noisy blobs per class: class 1 where exactly one coordinate is positive.
fn xor_blobs(rng: &mut SplitMix, samples: usize) -> (Vec<f32>, Vec<u8>) {
    let mut x = Vec::with_capacity(samples * 2);
    let mut labels = Vec::with_capacity(samples);
    for _ in 0..samples {
        let (a, b) = (rng.below(2), rng.below(2));
        let centre = |bit: usize| if bit == 1 { 1.0 } else { -1.0 };
        x.push(centre(a) + 0.3 * rng.symmetric());
        x.push(centre(b) + 0.3 * rng.symmetric());
        labels.push((a ^ b) as u8);
    }
    (x, labels)
}

fn train(sizes: &[usize], steps: usize, seed: u64) -> f32 {
    let mut rng = SplitMix(seed);
    let (train_x, train_y) = xor_blobs(&mut rng, 512);
    let (test_x, test_y) = xor_blobs(&mut rng, 512);
    let mut model = Mlp::new_xavier(sizes, &mut rng);
    let batch = 32;
    for step in 0..steps {
        let start = (step * batch) % train_y.len();
        let x = &train_x[start * 2..(start + batch) * 2];
        let y = &train_y[start..start + batch];
        let (loss, grads) = model.loss_and_gradients(x, y);
        assert!(loss.is_finite(), "loss diverged at step {step}");
        model.sgd(&grads, 0.1);
    }
    model.accuracy(&test_x, &test_y)
}

#[test]
fn hidden_layers_learn_xor_in_a_few_hundred_steps() {
    for seed in [1, 2, 3] {
        let accuracy = train(&[2, 16, 16, 2], 400, seed);
        assert!(accuracy >= 0.98, "seed {seed}: test accuracy {accuracy}");
    }
}

#[test]
fn a_linear_model_cannot_learn_xor() {
    // The same loop without hidden layers stays near chance: the problem needs them.
    let accuracy = train(&[2, 2], 400, 1);
    assert!(accuracy < 0.75, "a linear model reached {accuracy}");
}
