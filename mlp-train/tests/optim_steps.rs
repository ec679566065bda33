//! The optimizers and schedules pinned step by step on a small parameter vector,
//! against an independent double-precision implementation of PyTorch's `torch.optim`
//! algorithms (written out below from its documentation, not from this crate's code).
//! Each update rule differs from its neighbours within the first steps (Nesterov from
//! heavy-ball momentum, AdamW's decoupled decay from L2), so a rule that is only
//! "downhill" fails here.

use mlp_train::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};

const P0: [f64; 3] = [1.0, -0.5, 0.25];
/// The gradients of three steps (the weight-decay term is added by the optimizer).
const GRADS: [[f64; 3]; 3] = [[0.1, -0.2, 0.3], [0.05, 0.1, -0.2], [-0.3, 0.2, 0.1]];

/// PyTorch's SGD (`torch.optim.SGD`, dampening 0), per element:
/// `g ← g + λp`; with momentum `μ`: `b ← g` at the first step, else `b ← μb + g`;
/// then `g ← g + μb` for Nesterov, else `g ← b`; finally `p ← p − lr·g`.
fn torch_sgd(lr: f64, momentum: f64, nesterov: bool, decay: f64) -> Vec<[f64; 3]> {
    let (mut p, mut b) = (P0, [0.0; 3]);
    let mut out = Vec::new();
    for (t, grad) in GRADS.iter().enumerate() {
        for i in 0..3 {
            let mut g = grad[i] + decay * p[i];
            if momentum != 0.0 {
                b[i] = if t == 0 { g } else { momentum * b[i] + g };
                g = if nesterov { g + momentum * b[i] } else { b[i] };
            }
            p[i] -= lr * g;
        }
        out.push(p);
    }
    out
}

/// PyTorch's AdamW (`torch.optim.AdamW`; with `decay = 0` it is Adam), per element at
/// step `t` from 1: `p ← p·(1 − lr·λ)`; `m ← β₁m + (1 − β₁)g`; `v ← β₂v + (1 − β₂)g²`;
/// `p ← p − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)`.
fn torch_adamw(lr: f64, b1: f64, b2: f64, eps: f64, decay: f64) -> Vec<[f64; 3]> {
    let (mut p, mut m, mut v) = (P0, [0.0; 3], [0.0; 3]);
    let mut out = Vec::new();
    for (t, grad) in GRADS.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..3 {
            let g = grad[i];
            p[i] *= 1.0 - lr * decay;
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        out.push(p);
    }
    out
}

/// The optimizer of `config` on the same steps, in f32.
fn ours(config: OptimizerConfig, lr: f32) -> Vec<[f64; 3]> {
    let mut opt = Optimizer::new(config, 3);
    let mut p = P0.map(|x| x as f32);
    let mut out = Vec::new();
    for grad in GRADS {
        let mut g = grad.map(|x| x as f32);
        opt.step(&mut p, &mut g, lr);
        out.push(p.map(f64::from));
    }
    out
}

/// Every step's parameters within f32 rounding of the reference.
fn assert_steps(what: &str, got: &[[f64; 3]], want: &[[f64; 3]]) {
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..3 {
            let tolerance = 1e-6 * w[i].abs().max(1.0);
            assert!(
                (g[i] - w[i]).abs() <= tolerance,
                "{what}: step {}, parameter {i}: {} against PyTorch's {}",
                t + 1,
                g[i],
                w[i]
            );
        }
    }
}

fn config(kind: OptimizerKind, momentum: f32, weight_decay: f32) -> OptimizerConfig {
    OptimizerConfig {
        kind,
        momentum,
        weight_decay,
        ..OptimizerConfig::default()
    }
}

#[test]
fn sgd_momentum_and_nesterov_follow_pytorch_step_by_step() {
    for decay in [0.0, 0.01] {
        let sgd = ours(config(OptimizerKind::Sgd, 0.9, decay), 0.1);
        assert_steps("sgd", &sgd, &torch_sgd(0.1, 0.0, false, f64::from(decay)));
        let heavy = ours(config(OptimizerKind::Momentum, 0.9, decay), 0.1);
        assert_steps(
            "momentum",
            &heavy,
            &torch_sgd(0.1, 0.9, false, f64::from(decay)),
        );
        let nesterov = ours(config(OptimizerKind::Nesterov, 0.9, decay), 0.1);
        assert_steps(
            "nesterov",
            &nesterov,
            &torch_sgd(0.1, 0.9, true, f64::from(decay)),
        );
    }
    // Another momentum coefficient is honoured, not a fixed one.
    let half = ours(config(OptimizerKind::Momentum, 0.5, 0.0), 0.1);
    assert_steps("momentum 0.5", &half, &torch_sgd(0.1, 0.5, false, 0.0));
}

#[test]
fn adam_and_adamw_follow_pytorch_step_by_step() {
    for decay in [0.0, 0.01] {
        let got = ours(
            OptimizerConfig {
                kind: OptimizerKind::Adam,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                weight_decay: decay,
                ..OptimizerConfig::default()
            },
            0.01,
        );
        let want = torch_adamw(0.01, 0.9, 0.999, 1e-8, f64::from(decay));
        assert_steps(&format!("adam, weight decay {decay}"), &got, &want);
    }
    // Other betas are honoured.
    let got = ours(
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            beta1: 0.5,
            beta2: 0.9,
            epsilon: 1e-8,
            ..OptimizerConfig::default()
        },
        0.01,
    );
    assert_steps(
        "adam 0.5/0.9",
        &got,
        &torch_adamw(0.01, 0.5, 0.9, 1e-8, 0.0),
    );
}

/// PyTorch's `StepLR` (`lr·γ^⌊epoch/step⌋`) and `CosineAnnealingLR` with `T_max` the
/// epochs (`η_min + (lr − η_min)(1 + cos(π·epoch/T_max))/2`), epoch by epoch.
#[test]
fn schedules_follow_pytorch_epoch_by_epoch() {
    let (base, epochs) = (0.1f64, 10usize);
    let step = Schedule::Step {
        every: 3,
        gamma: 0.5,
    };
    let cosine = Schedule::Cosine { min_lr: 0.001 };
    for epoch in 0..epochs {
        let want_step = base * 0.5f64.powi((epoch / 3) as i32);
        let got = f64::from(step.rate(base as f32, epoch, epochs));
        assert!(
            (got - want_step).abs() <= 1e-7,
            "step, epoch {epoch}: {got} vs {want_step}"
        );
        let want_cos = 0.001
            + (base - 0.001) * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos())
                / 2.0;
        let got = f64::from(cosine.rate(base as f32, epoch, epochs));
        assert!(
            (got - want_cos).abs() <= 1e-7,
            "cosine, epoch {epoch}: {got} vs {want_cos}"
        );
        assert_eq!(
            Schedule::Constant.rate(base as f32, epoch, epochs),
            base as f32
        );
    }
}
