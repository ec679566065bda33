//! A run stopped after an epoch and resumed from its checkpoint ends exactly where an
//! uninterrupted run ends: same model bytes, same metrics (time column aside).

use crate::common::*;

fn check_resume(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let parts = dir.path().join("parts");
    let mut args = quick_fashion(&whole, 3000, 3);
    args.extend(extra.iter().map(|s| s.to_string()));
    ok(&run(&args));

    let mut first = quick_fashion(&parts, 3000, 3);
    first.extend(extra.iter().map(|s| s.to_string()));
    first.extend(["--stop-after".into(), "1".into()]);
    ok(&run(&first));
    assert!(
        !parts.join("model.mlp").exists(),
        "an interrupted run wrote a model"
    );
    assert_eq!(metrics_without_time(&parts).len(), 2);
    let ck = parts.join("checkpoint.ckpt");
    let out = ok(&run(["train", "--quiet", "--resume", ck.to_str().unwrap()]));
    assert!(out.contains("test accuracy"), "{out}");

    let a = std::fs::read(whole.join("model.mlp")).unwrap();
    let b = std::fs::read(parts.join("model.mlp")).unwrap();
    assert!(
        a == b,
        "resumed model differs from the uninterrupted one ({extra:?})"
    );
    assert_eq!(metrics_without_time(&whole), metrics_without_time(&parts));
}

#[test]
fn resume_with_sgd_matches_uninterrupted_run() {
    check_resume(&[]);
}

#[test]
fn resume_with_adam_cosine_and_early_stopping_matches() {
    check_resume(&[
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--schedule",
        "cosine",
        "--weight-decay",
        "0.0001",
        "--patience",
        "2",
    ]);
}

#[test]
fn corrupt_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = quick_fashion(&out, 1000, 2);
    args.extend(["--stop-after".into(), "1".into()]);
    ok(&run(&args));
    let ck = out.join("checkpoint.ckpt");
    let mut bytes = std::fs::read(&ck).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&ck, &bytes).unwrap();
    fails(
        &run(["train", "--resume", ck.to_str().unwrap()]),
        &["checkpoint.ckpt", "corrupt"],
    );
    assert!(!out.join("model.mlp").exists());
}

#[test]
fn divergence_after_a_good_epoch_keeps_that_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = quick_fashion(&out, 1000, 3);
    args.extend(["--stop-after".into(), "1".into()]);
    ok(&run(&args));
    // Make the rest of the run diverge: same state, absurd learning rate.
    let ck_path = out.join("checkpoint.ckpt");
    let mut ck = mlp_train::checkpoint::Checkpoint::load(&ck_path).unwrap();
    ck.config.learning_rate = 1e9;
    ck.save(&ck_path).unwrap();
    let good = std::fs::read(&ck_path).unwrap();
    fails(
        &run(["train", "--quiet", "--resume", ck_path.to_str().unwrap()]),
        &[
            "training diverged",
            "epoch 2",
            "last good checkpoint (epoch 1)",
            "checkpoint.ckpt",
        ],
    );
    assert_eq!(
        std::fs::read(&ck_path).unwrap(),
        good,
        "the good checkpoint was replaced"
    );
    assert!(!out.join("model.mlp").exists());
}
