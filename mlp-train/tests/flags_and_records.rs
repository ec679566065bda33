//! Issue 17, items 10 and 13–16: flags out of range are refused up front by name,
//! Adam gets its own default learning rate, a one-epoch chart shows its point, the
//! printed lines fit 80 columns, messages are worded right and said once, and every
//! run leaves a JSON summary; `evaluate --json` is machine-readable.

use crate::common::*;

use std::path::Path;

/// `train` on 600 bundled images with 16 hidden units, outputs in `out`, plus `extra`.
fn quick(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--limit",
        "600",
        "--validation",
        "300",
        "--hidden",
        "16",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(args)
}

#[test]
fn flags_out_of_range_are_refused_up_front_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (flags, needle) in [
        (
            &["--weight-decay=-1"][..],
            "--weight-decay must be a number >= 0",
        ),
        (
            &["--weight-decay", "-1"],
            "--weight-decay must be a number >= 0",
        ),
        (
            &["--optimizer", "momentum", "--momentum", "5"],
            "--momentum",
        ),
        (
            &["--optimizer", "nesterov", "--momentum", "1"],
            "--momentum",
        ),
        (&["--optimizer", "adam", "--beta1", "1"], "--beta1"),
        (&["--optimizer", "adam", "--beta2", "-0.1"], "--beta2"),
        (
            &["--schedule", "cosine", "--min-lr", "0.5"],
            "--min-lr 0.5 is above the learning rate 0.1",
        ),
        (&["--schedule", "step", "--step-every", "0"], "--step-every"),
        (&["--schedule", "step", "--gamma", "0"], "--gamma"),
        (&["--schedule", "step", "--gamma", "1.5"], "--gamma"),
        (&["--lr", "-1"], "--learning-rate"),
        // A flag the settings do not use would be ignored: refused instead.
        (
            &["--gamma", "0.5"],
            "--gamma is used by --schedule step only",
        ),
        (&["--momentum", "0.5"], "--momentum is used by"),
        (
            &["--beta1", "0.5"],
            "--beta1 is used by --optimizer adam only",
        ),
        (
            &["--min-lr", "0.01"],
            "--min-lr is used by --schedule cosine",
        ),
        (
            &["--monitor", "val-loss"],
            "--monitor is used by early stopping",
        ),
    ] {
        fails(&quick(&out, flags), &[needle]);
        assert!(files_in(&out).is_empty(), "{flags:?} left files");
    }
    // clap's own errors (exit code 2) say what is wrong with the value.
    for (flags, needle) in [
        (
            &["--epochs", "-1"][..],
            "must be a positive whole number, got -1",
        ),
        (&["--batch-size", "-3"], "must be a positive whole number"),
        (&["--epochs", "x"], "'x' is not a whole number"),
    ] {
        let o = quick(&out, flags);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{flags:?}: {}", stderr(&o));
    }
    let o = run(["train", "--hidden", ""]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("none for no hidden layer"),
        "{}",
        stderr(&o)
    );
    // `--hidden none` is the way to ask for no hidden layer.
    ok(&run([
        "train",
        "--quiet",
        "--limit",
        "600",
        "--epochs",
        "1",
        "--hidden",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]));
    let model = mlp_train::model::Mlp::load(&out.join("model.mlp")).unwrap();
    assert_eq!(model.sizes(), [784, 10]);
}

#[test]
fn each_optimizer_gets_its_default_learning_rate_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    for (optimizer, rate) in [("adam", "0.001"), ("sgd", "0.1"), ("nesterov", "0.1")] {
        let out = tmp.path().join(optimizer);
        let text = ok(&quick(&out, &["--epochs", "1", "--optimizer", optimizer]));
        let said = format!("optimizer {optimizer}, learning rate {rate} ({optimizer}'s default)");
        assert!(text.lines().any(|l| l == said), "{text}");
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().nth(1).unwrap().split(',').nth(1), Some(rate));
    }
    // A rate given is used as given.
    let out = tmp.path().join("given");
    let text = ok(&quick(
        &out,
        &["--epochs", "1", "--optimizer", "adam", "--lr", "0.01"],
    ));
    assert!(
        text.lines()
            .any(|l| l == "optimizer adam, learning rate 0.01"),
        "{text}"
    );
}

#[test]
fn a_one_epoch_chart_shows_its_points() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    ok(&quick(&out, &["--quiet", "--epochs", "1"]));
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    // Train and validation, in each of the two panels.
    assert_eq!(svg.matches("<circle").count(), 4);
}

#[test]
fn printed_lines_fit_80_columns_and_are_worded_right() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    let text = ok(&quick(&out, &["--epochs", "1"]));
    assert!(
        text.contains("for 1 epoch, batch 32\noptimizer sgd,"),
        "{text}"
    );
    assert!(
        !text.contains("1 epochs") && !text.contains("Sgd"),
        "{text}"
    );
    let long = tmp.path().join("long");
    let text = ok(&quick(
        &long,
        &[
            "--epochs",
            "12",
            "--schedule",
            "cosine",
            "--min-lr",
            "0.0001",
        ],
    ));
    let out_path = long.display().to_string();
    let data_path = bundled().display().to_string();
    for line in text.lines() {
        let width = line.chars().count();
        // Lines naming a directory are as long as its name: their own text must leave
        // room for one.
        let own = width
            - if line.contains(&out_path) {
                out_path.chars().count()
            } else if line.contains(&data_path) {
                data_path.chars().count()
            } else {
                0
            };
        assert!(own <= 72, "{width} columns: {line}");
        if line.starts_with("epoch") {
            assert!(width <= 80, "{width} columns: {line}");
        }
    }
    assert!(text.contains("epoch  12/12"), "{text}");
    // Early stopping after one bad epoch: "1 epoch".
    let text = ok(&quick(
        &tmp.path().join("early"),
        &[
            "--epochs",
            "5",
            "--lr",
            "1e-30",
            "--patience",
            "1",
            "--monitor",
            "val-loss",
        ],
    ));
    assert!(text.contains("no improvement for 1 epoch;"), "{text}");
}

#[test]
fn model_file_messages_are_said_once_and_counted_right() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.mlp");
    mlp_train::model::Mlp::zeroed(&[784, 10])
        .unwrap()
        .save(&model)
        .unwrap();
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.push(0);
    let one_more = tmp.path().join("one-more.mlp");
    std::fs::write(&one_more, &bytes).unwrap();
    let message = fails(
        &run(["inspect", one_more.to_str().unwrap()]),
        &["one-more.mlp", "1 unexpected byte after the payload"],
    );
    assert!(!message.contains("bytes after"), "{message}");
    bytes.extend([0, 0]);
    std::fs::write(&one_more, &bytes).unwrap();
    fails(
        &run(["inspect", one_more.to_str().unwrap()]),
        &["3 unexpected bytes after the payload"],
    );

    let text = tmp.path().join("text.mlp");
    std::fs::write(&text, b"hello, not a model").unwrap();
    for args in [
        vec!["inspect", text.to_str().unwrap()],
        vec!["evaluate", "--model", text.to_str().unwrap()],
    ] {
        let message = fails(
            &run(&args),
            &["text.mlp: not a valid model file: it starts with 68 65 6c 6c"],
        );
        assert!(!message.contains("not a model file"), "{message}");
    }
}

#[test]
fn a_broken_gzip_stream_is_reported_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(bundled()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let images = data.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..20_000]).unwrap();
    let message = fails(
        &run([
            "train",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--out",
            tmp.path().join("out").to_str().unwrap(),
        ]),
        &["train-images-idx3-ubyte.gz: cannot read"],
    );
    // Each cause once: no "X: X".
    let parts: Vec<&str> = message.split(": ").collect();
    for pair in parts.windows(2) {
        assert_ne!(pair[0], pair[1], "said twice: {message}");
    }
    assert_eq!(message.matches("deflate").count(), 1, "{message}");
}

#[test]
fn a_run_leaves_a_json_summary_and_evaluate_speaks_json() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let text = ok(&quick(&out, &["--epochs", "2", "--seed", "3"]));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["format"], "mlp-train run summary 1");
    assert_eq!(summary["seed"], 3);
    assert_eq!(summary["settings"]["seed"], 3);
    assert_eq!(summary["settings"]["optimizer"]["kind"], "sgd");
    assert_eq!(summary["settings"]["hidden"], serde_json::json!([16]));
    assert_eq!(summary["epochs_done"], 2);
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(summary["final_epoch"]["epoch"], 2);
    let accuracy = summary["test"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - test_accuracy(&text)).abs() < 5e-5, "{summary}");
    assert_eq!(summary["test"]["count"], 1000);
    let model = std::fs::read(out.join("model.mlp")).unwrap();
    assert_eq!(
        summary["model"]["sha256"],
        format!("{:x}", sha2::Sha256::digest(&model))
    );
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["data"]["files"].as_array().unwrap().len(), 4);

    let json = ok(&run([
        "evaluate",
        "--json",
        "--model",
        out.join("model.mlp").to_str().unwrap(),
    ]));
    let e: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(e["format"], "mlp-train evaluation 1");
    assert_eq!(e["split"], "test");
    assert_eq!(e["accuracy"].as_f64().unwrap(), accuracy);
    let confusion = e["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1000);
    let diagonal: u64 = (0..10).map(|c| confusion[c][c].as_u64().unwrap()).sum();
    assert_eq!(e["correct"].as_u64().unwrap(), diagonal);
    for class in e["classes"].as_array().unwrap() {
        for key in ["precision", "recall"] {
            let v = &class[key];
            assert!(
                v.is_null() || (0.0..=1.0).contains(&v.as_f64().unwrap()),
                "{class}"
            );
        }
    }
}
