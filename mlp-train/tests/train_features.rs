//! Optimizers, schedules, weight decay and early stopping on a Fashion-MNIST subset.

use crate::common::*;

use mlp_train::train::{self, EarlyStopping, Monitor, RunOptions, TrainConfig};

#[test]
fn every_optimizer_and_schedule_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["--optimizer", "momentum", "--lr", "0.02"],
        &[
            "--optimizer",
            "nesterov",
            "--lr",
            "0.02",
            "--weight-decay",
            "0.0005",
        ],
        &[
            "--optimizer",
            "adam",
            "--lr",
            "0.001",
            "--schedule",
            "cosine",
        ],
        &["--schedule", "step", "--step-every", "1", "--gamma", "0.5"],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let out_dir = tmp.path().join(format!("r{i}"));
        let mut args = quick_fashion(&out_dir, 5000, 2);
        args.extend(extra.iter().map(|s| s.to_string()));
        let acc = test_accuracy(&ok(&run(&args)));
        // Every CPU reaches the same figures (one arithmetic): momentum 78.59%,
        // Nesterov 77.04%, Adam 81.39%, the step schedule 69.15%. The floor is 4.15
        // points under the lowest.
        assert!(acc > 0.65, "{extra:?}: test accuracy {acc}");
    }
    // The step schedule halves the rate each epoch.
    let csv = std::fs::read_to_string(tmp.path().join("r3/metrics.csv")).unwrap();
    let rates: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(rates, ["0.1", "0.05"]);
}

fn config(limit: usize, epochs: usize, lr: f32, early: Option<EarlyStopping>) -> TrainConfig {
    TrainConfig {
        data_dir: fashion(),
        validation: Some(2000),
        train_limit: Some(limit),
        hidden: vec![32],
        epochs,
        learning_rate: lr,
        early_stopping: early,
        ..TrainConfig::default()
    }
}

fn options(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        out_dir: dir.to_path_buf(),
        resume: None,
        stop_after: None,
        verbose: false,
    }
}

#[test]
fn early_stopping_stops_and_keeps_the_best_weights() {
    let tmp = tempfile::tempdir().unwrap();
    // A rate too small to change any f32 weight: the validation loss never improves
    // after epoch 1, so patience 2 stops the run after epoch 3.
    let early = EarlyStopping {
        monitor: Monitor::ValLoss,
        patience: 2,
    };
    let report = train::run(config(1000, 10, 1e-30, Some(early)), &options(tmp.path())).unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.history.len(), 3);
    assert_eq!(report.best_epoch, Some(1));

    // A real run: whatever happens, the saved model is the best validation epoch's.
    let early = EarlyStopping {
        monitor: Monitor::ValAccuracy,
        patience: 2,
    };
    let dir = tmp.path().join("real");
    let report = train::run(config(4000, 6, 0.3, Some(early)), &options(&dir)).unwrap();
    let best = report
        .history
        .iter()
        .map(|m| m.val_accuracy)
        .fold(f64::NEG_INFINITY, f64::max);
    let model = mlp_train::model::Mlp::load(&dir.join("model.mlp")).unwrap();
    let val =
        mlp_train::data::load_split(&fashion(), mlp_train::data::Split::Validation, Some(2000))
            .unwrap();
    let kept = mlp_train::metrics::evaluate(&model, &val, Default::default())
        .unwrap()
        .accuracy;
    assert_eq!(kept, best, "saved model is not the best epoch's");
    let best_epoch = report.best_epoch.unwrap();
    assert_eq!(report.history[best_epoch - 1].val_accuracy, best);
}
