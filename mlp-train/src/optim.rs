//! Optimizers (plain SGD, momentum, Nesterov momentum, Adam) and learning-rate
//! schedules (constant, step, cosine).
//!
//! All parameters live in one flat slice (see [`crate::model`]), so an optimizer is a
//! loop over three slices. Plain SGD without weight decay calls the core's
//! [`mlp_core::dense::sgd_step`]; the others are written here because the core has
//! only SGD. Conventions follow PyTorch:
//! - weight decay `λ` adds `λ·p` to the gradient for SGD and momentum (L2), and is
//!   decoupled (`p ← p − lr·λ·p`, as AdamW) for Adam; it applies to every parameter;
//! - momentum: `v ← μ·v + g`, then `p ← p − lr·v` (Nesterov: `p ← p − lr·(g + μ·v)`);
//! - Adam: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//!   `p ← p − lr·m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`.

use serde::{Deserialize, Serialize};

/// Which update rule to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain minibatch SGD (the walkthrough's).
    Sgd,
    /// SGD with heavy-ball momentum.
    Momentum,
    /// SGD with Nesterov momentum.
    Nesterov,
    /// Adam (with decoupled weight decay, i.e. AdamW, when weight decay is set).
    Adam,
}

impl OptimizerKind {
    /// The name as the command line spells it (`sgd`, `momentum`, `nesterov`, `adam`).
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Momentum => "momentum",
            OptimizerKind::Nesterov => "nesterov",
            OptimizerKind::Adam => "adam",
        }
    }

    /// The learning rate used when none is given: 0.1 for the SGD family (the
    /// walkthrough's), 0.001 for Adam (the default of Keras and PyTorch).
    pub fn default_learning_rate(self) -> f32 {
        match self {
            OptimizerKind::Sgd | OptimizerKind::Momentum | OptimizerKind::Nesterov => 0.1,
            OptimizerKind::Adam => 0.001,
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An optimizer's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Momentum coefficient `μ` (momentum and Nesterov).
    pub momentum: f32,
    /// Adam's `β₁`.
    pub beta1: f32,
    /// Adam's `β₂`.
    pub beta2: f32,
    /// Adam's `ε`.
    pub epsilon: f32,
    /// Weight decay `λ` (0 = none).
    pub weight_decay: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// What an optimizer remembers between steps (saved in checkpoints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken so far.
    pub steps: u64,
    /// Velocity (momentum) or first moment (Adam); empty for SGD.
    pub first: Vec<f32>,
    /// Second moment (Adam); empty otherwise.
    pub second: Vec<f32>,
}

/// An optimizer with its state.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    /// Settings.
    pub config: OptimizerConfig,
    /// State.
    pub state: OptimizerState,
}

impl Optimizer {
    /// A fresh optimizer for `params` parameters.
    pub fn new(config: OptimizerConfig, params: usize) -> Optimizer {
        let (first, second) = match config.kind {
            OptimizerKind::Sgd => (0, 0),
            OptimizerKind::Momentum | OptimizerKind::Nesterov => (params, 0),
            OptimizerKind::Adam => (params, params),
        };
        Optimizer {
            config,
            state: OptimizerState {
                steps: 0,
                first: vec![0.0; first],
                second: vec![0.0; second],
            },
        }
    }

    /// Updates `params` in place from `grads` with learning rate `lr`. `grads` may be
    /// changed (weight decay is added to it). Allocation-free.
    pub fn step(&mut self, params: &mut [f32], grads: &mut [f32], lr: f32) {
        let c = self.config;
        self.state.steps += 1;
        let wd = c.weight_decay;
        match c.kind {
            OptimizerKind::Sgd => {
                if wd != 0.0 {
                    add_scaled(grads, params, wd);
                }
                mlp_core::dense::sgd_step(params, grads, lr);
            }
            OptimizerKind::Momentum | OptimizerKind::Nesterov => {
                if wd != 0.0 {
                    add_scaled(grads, params, wd);
                }
                let mu = c.momentum;
                let nesterov = c.kind == OptimizerKind::Nesterov;
                for ((p, &g), v) in params
                    .iter_mut()
                    .zip(grads.iter())
                    .zip(self.state.first.iter_mut())
                {
                    *v = mu * *v + g;
                    let update = if nesterov { g + mu * *v } else { *v };
                    *p -= lr * update;
                }
            }
            OptimizerKind::Adam => {
                let t = self.state.steps as i32;
                let bc1 = 1.0 - f64::from(c.beta1).powi(t);
                let bc2 = 1.0 - f64::from(c.beta2).powi(t);
                // p ← p − lr/bc1 · m / (√v / √bc2 + ε)
                let step_size = (f64::from(lr) / bc1) as f32;
                let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
                let (b1, b2, eps) = (c.beta1, c.beta2, c.epsilon);
                let decay = 1.0 - lr * wd;
                for (((p, &g), m), v) in params
                    .iter_mut()
                    .zip(grads.iter())
                    .zip(self.state.first.iter_mut())
                    .zip(self.state.second.iter_mut())
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    if wd != 0.0 {
                        *p *= decay;
                    }
                    *p -= step_size * *m / (v.sqrt() * inv_sqrt_bc2 + eps);
                }
            }
        }
    }
}

/// `grads += scale · params`.
fn add_scaled(grads: &mut [f32], params: &[f32], scale: f32) {
    for (g, &p) in grads.iter_mut().zip(params) {
        *g += scale * p;
    }
}

/// A learning-rate schedule over epochs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs (PyTorch's `StepLR`).
    Step {
        /// Epochs between drops.
        every: usize,
        /// Factor per drop.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to `min_lr` over all epochs
    /// (PyTorch's `CosineAnnealingLR` with `T_max` = epochs).
    Cosine {
        /// The rate reached at the end.
        min_lr: f32,
    },
}

impl Schedule {
    /// The learning rate of epoch `epoch` (counted from 0) of `epochs`.
    pub fn rate(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { min_lr } => {
                let progress = epoch as f64 / epochs.max(1) as f64;
                let cos = (std::f64::consts::PI * progress).cos();
                (f64::from(min_lr) + 0.5 * f64::from(base - min_lr) * (1.0 + cos)) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: OptimizerKind) -> f32 {
        // Minimise (p − 3)² from p = 0.
        let config = OptimizerConfig {
            kind,
            ..OptimizerConfig::default()
        };
        let mut opt = Optimizer::new(config, 1);
        let mut p = [0.0f32];
        for _ in 0..500 {
            let mut g = [2.0 * (p[0] - 3.0)];
            opt.step(&mut p, &mut g, 0.05);
        }
        p[0]
    }

    #[test]
    fn optimizers_converge() {
        for kind in [
            OptimizerKind::Sgd,
            OptimizerKind::Momentum,
            OptimizerKind::Nesterov,
            OptimizerKind::Adam,
        ] {
            let p = run(kind);
            assert!((p - 3.0).abs() < 1e-2, "{kind:?} reached {p}");
        }
    }

    #[test]
    fn sgd_matches_core_step() {
        let mut opt = Optimizer::new(OptimizerConfig::default(), 2);
        let mut p = [1.0f32, 2.0];
        opt.step(&mut p, &mut [0.5, -1.0], 0.1);
        assert_eq!(p, [0.95, 2.1]);
    }

    #[test]
    fn weight_decay_shrinks() {
        let config = OptimizerConfig {
            weight_decay: 0.1,
            ..OptimizerConfig::default()
        };
        let mut opt = Optimizer::new(config, 1);
        let mut p = [1.0f32];
        opt.step(&mut p, &mut [0.0], 1.0);
        assert!((p[0] - 0.9).abs() < 1e-6);
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Constant.rate(0.1, 7, 10), 0.1);
        let s = Schedule::Step {
            every: 10,
            gamma: 0.5,
        };
        assert_eq!(s.rate(0.1, 9, 30), 0.1);
        assert_eq!(s.rate(0.1, 10, 30), 0.05);
        let c = Schedule::Cosine { min_lr: 0.0 };
        assert_eq!(c.rate(0.1, 0, 10), 0.1);
        assert!((c.rate(0.1, 5, 10) - 0.05).abs() < 1e-7);
        assert!(c.rate(0.1, 9, 10) < 0.003);
    }
}
