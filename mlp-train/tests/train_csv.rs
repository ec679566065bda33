//! Training on CSV files: the bundled breast-cancer table trains, evaluates and
//! predicts; the `split` command's files train the same model bytes as the split
//! `train` makes itself; a resumed run equals the uninterrupted one and refuses other
//! data; any number of classes; every bad file ends with one line naming the file,
//! the row and the column.

use crate::common::*;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cancer(name: &str) -> String {
    root()
        .join("data/breast-cancer")
        .join(name)
        .display()
        .to_string()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// A synthetic table: `rows` rows of 3 features whose class is the band the first
/// feature falls in, `classes` classes, labels as names `c00`, `c01`, ... in a column
/// in the middle.
fn synthetic(rows: usize, classes: usize) -> String {
    let mut s = String::from("x,kind,y,z\n");
    for i in 0..rows {
        let c = i % classes;
        let x = c as f32 + ((i * 37 % 100) as f32) / 200.0;
        s += &format!(
            "{x},c{c:02},{},{}\n",
            (i * 13 % 7) as f32 - 3.0,
            1000.0 + i as f32
        );
    }
    s
}

#[test]
fn bundled_table_trains_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train = ok(&run([
        "train",
        "--data",
        &cancer("train.csv"),
        "--test",
        &cancer("test.csv"),
        "--hidden",
        "32",
        "--epochs",
        "20",
        "--learning-rate",
        "0.01",
        "--quiet",
        "--out",
        &p(&out),
    ]));
    // Every instruction set reaches 96-98% here; 90% leaves room for any of them.
    let accuracy = test_accuracy(&train);
    assert!(accuracy >= 0.90, "{train}");
    let model = p(&out.join("model.mlp"));
    let inspect = ok(&run(["inspect", &model]));
    assert!(inspect.contains("30-32-2"), "{inspect}");
    // evaluate recomputes the normalization from the same flags: the same figure.
    let evaluate = ok(&run([
        "evaluate",
        "--model",
        &model,
        "--data",
        &cancer("train.csv"),
        "--test",
        &cancer("test.csv"),
    ]));
    let line = format!("accuracy: {:.2}%", 100.0 * accuracy);
    assert!(evaluate.starts_with(&line), "{evaluate}\n{train}");
    assert!(
        evaluate.contains("benign") && evaluate.contains("malignant"),
        "{evaluate}"
    );
    // predict --rows on the test file (its label column is read and ignored).
    let predicted = ok(&run([
        "predict",
        "--model",
        &model,
        "--rows",
        &cancer("test.csv"),
        "--data",
        &cancer("train.csv"),
        "--test",
        &cancer("test.csv"),
    ]));
    let lines: Vec<&str> = predicted.lines().collect();
    assert_eq!(lines.len(), 114, "{predicted}");
    assert!(lines[0].contains("test.csv row 2: "), "{}", lines[0]);
    let truth: Vec<String> = std::fs::read_to_string(cancer("test.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_owned())
        .collect();
    let right = lines
        .iter()
        .zip(&truth)
        .filter(|(l, t)| l.contains(&format!(": {t} (")))
        .count();
    // predict uses the core's arithmetic, evaluate the fast kernels': a row on the
    // edge may differ, not more.
    let evaluated = (accuracy * 114.0).round() as usize;
    assert!(right.abs_diff(evaluated) <= 1, "{right} vs {evaluated}");
}

#[test]
fn split_files_train_the_same_bytes_as_the_split_train_makes() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.csv");
    std::fs::write(&full, synthetic(300, 4)).unwrap();
    let parts = dir.path().join("parts");
    let split = ok(&run([
        "split",
        "--data",
        &p(&full),
        "--label",
        "kind",
        "--test-fraction",
        "0.25",
        "--split-seed",
        "5",
        "--out",
        &p(&parts),
    ]));
    assert!(
        split.contains("(225 rows)") && split.contains("(75 rows)"),
        "{split}"
    );
    let common = [
        "--hidden", "8", "--epochs", "2", "--quiet", "--label", "kind",
    ];
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let mut args = vec!["train", "--data", full.to_str().unwrap()];
    args.extend(["--test-fraction", "0.25", "--split-seed", "5"]);
    args.extend(common);
    args.extend(["--out", a.to_str().unwrap()]);
    let from_full = ok(&run(&args));
    let train = p(&parts.join("train.csv"));
    let test = p(&parts.join("test.csv"));
    let mut args = vec![
        "train",
        "--data",
        &train,
        "--test",
        &test,
        "--split-seed",
        "5",
    ];
    args.extend(common);
    args.extend(["--out", b.to_str().unwrap()]);
    let from_parts = ok(&run(&args));
    assert_eq!(test_accuracy(&from_full), test_accuracy(&from_parts));
    assert!(from_full.contains("/75)"), "{from_full}");
    assert_eq!(
        std::fs::read(a.join("model.mlp")).unwrap(),
        std::fs::read(b.join("model.mlp")).unwrap()
    );
    // Another split seed: other test rows, another model.
    let c = dir.path().join("c");
    let mut args = vec!["train", "--data", full.to_str().unwrap()];
    args.extend(["--test-fraction", "0.25", "--split-seed", "6"]);
    args.extend(common);
    args.extend(["--out", c.to_str().unwrap()]);
    ok(&run(&args));
    assert_ne!(
        std::fs::read(a.join("model.mlp")).unwrap(),
        std::fs::read(c.join("model.mlp")).unwrap()
    );
}

#[test]
fn any_number_of_classes_and_no_validation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("twelve.csv");
    std::fs::write(&data, synthetic(600, 12)).unwrap();
    let out = dir.path().join("run");
    let text = ok(&run([
        "train",
        "--data",
        &p(&data),
        "--label",
        "2",
        "--hidden",
        "24",
        "--epochs",
        "40",
        "--learning-rate",
        "0.5",
        "--validation",
        "0",
        "--out",
        &p(&out),
    ]));
    // No validation set: the epoch lines have the training figures only.
    let last = text
        .lines()
        .find(|l| l.starts_with("epoch  40/40"))
        .unwrap();
    assert_eq!(last.matches('%').count(), 1, "{last}");
    assert!(text.contains("(training; no validation set)"), "{text}");
    let inspect = ok(&run(["inspect", &p(&out.join("model.mlp"))]));
    assert!(inspect.contains("3-24-12"), "{inspect}");
    // The bands are separable by the first feature; chance is 1/12. Every
    // instruction set trains the same bytes, which reach about 87%; the floor is far
    // below that and far above chance.
    assert!(test_accuracy(&text) > 0.5, "{text}");
    fails(
        &run([
            "train",
            "--data",
            &p(&data),
            "--label",
            "kind",
            "--validation",
            "0",
            "--patience",
            "2",
        ]),
        &["--validation 0 leaves early stopping (--patience) nothing to watch"],
    );
}

#[test]
fn resume_gives_the_uninterrupted_bytes_and_refuses_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    std::fs::write(&data, synthetic(200, 3)).unwrap();
    let args = |out: &Path| {
        vec![
            "train".to_owned(),
            "--data".into(),
            p(&data),
            "--label".into(),
            "kind".into(),
            "--hidden".into(),
            "8".into(),
            "--epochs".into(),
            "4".into(),
            "--quiet".into(),
            "--out".into(),
            p(out),
        ]
    };
    let whole = dir.path().join("whole");
    ok(&run(args(&whole)));
    let parts = dir.path().join("parts");
    let mut first = args(&parts);
    first.extend(["--stop-after".into(), "2".into()]);
    ok(&run(&first));
    let ck = p(&parts.join("checkpoint.ckpt"));
    ok(&run(["train", "--resume", &ck, "--quiet"]));
    assert_eq!(
        std::fs::read(whole.join("model.mlp")).unwrap(),
        std::fs::read(parts.join("model.mlp")).unwrap()
    );
    fails(
        &run(["train", "--resume", &ck, "--label", "x"]),
        &["cannot change --label x (the checkpoint's is kind)"],
    );
    fails(
        &run(["train", "--resume", &ck, "--split-seed", "3"]),
        &["--split-seed 3 (the checkpoint's is 1)"],
    );
    // The same name, other contents: the SHA-256 differs.
    std::fs::write(&data, synthetic(201, 3)).unwrap();
    fails(
        &run(["train", "--resume", &ck, "--quiet"]),
        &[
            "not the data the checkpoint was trained on",
            "d.csv has SHA-256",
        ],
    );
}

#[test]
fn bad_files_name_the_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        p(&path)
    };
    let good = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,1,x\n2,3,y\n";
    let train_good = write("good.csv", good);
    let bird = write("bird.csv", "a,b,label\n1,2,bird\n");
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            write("word.csv", "a,b,label\n1,2,x\n3,four,y\n"),
            vec![],
            vec!["word.csv: row 3, column 2 (b): 'four' is not a number"],
        ),
        (
            write("empty.csv", "a,b,label\n1,2,x\n,4,y\n"),
            vec![],
            vec!["empty.csv: row 3, column 1 (a): missing value"],
        ),
        (
            write("nan.csv", "a,b,label\n1,2,x\n3,NaN,y\n"),
            vec![],
            vec!["nan.csv: row 3, column 2 (b): 'NaN' is not a finite number"],
        ),
        (
            write("ragged.csv", "a,b,label\n1,2,x\n3,4\n"),
            vec![],
            vec!["ragged.csv: row 3 has 2 cells but the header has 3 columns"],
        ),
        (
            write("one.csv", "a,b,label\n1,2,x\n"),
            vec![],
            vec!["one.csv: 1 data rows; at least 2 are needed"],
        ),
        (
            train_good.clone(),
            vec!["--test", &bird],
            vec![
                "bird.csv: row 2: label 'bird' is not a class of the training file",
                "(x, y)",
            ],
        ),
        (
            train_good.clone(),
            vec!["--label", "species"],
            vec!["good.csv: no label column 'species' (the columns are a, b, label)"],
        ),
        (
            train_good.clone(),
            vec!["--test-fraction", "1.5"],
            vec!["--test-fraction must be above 0 and below 1, got 1.5"],
        ),
        (
            train_good.clone(),
            vec!["--validation", "5"],
            vec!["a validation split of 5 rows leaves no training rows"],
        ),
        (
            p(&dir.path().join("missing.csv")),
            vec![],
            vec!["missing.csv: cannot read"],
        ),
    ];
    for (data, extra, needles) in cases {
        let out = dir.path().join("out");
        let mut args = vec!["train", "--data", &data, "--quiet", "--out"];
        let out_text = p(&out);
        args.push(&out_text);
        args.extend(extra);
        fails(&run(&args), &needles);
        assert!(!out.exists(), "{args:?} left {out:?}");
    }
    fails(
        &run(["show", "--data", &train_good]),
        &["good.csv: a CSV file; this command takes an MNIST-format directory"],
    );
}

/// An int8 model of pixels was calibrated for pixel bytes: CSV values given to it are
/// refused with the way out (quantize the f32 model on the CSV file), by `evaluate`
/// and by `predict --rows`, rather than read as bytes.
#[test]
fn an_int8_model_of_pixels_refuses_csv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_bundled(
        &dir.path().join("run"),
        1,
        &["--hidden", "8", "--limit", "500"],
    );
    ok(&run(["quantize", "--model", &p(&model)]));
    let int8 = p(&model.with_file_name("model-int8.mlp"));
    let data = [
        "--data",
        &cancer("train.csv"),
        "--test",
        &cancer("test.csv"),
    ];
    let needles = [
        "model-int8.mlp: this int8 model takes pixel bytes, not CSV values",
        "quantize the f32 model with the CSV file",
    ];
    let mut evaluate = vec!["evaluate", "--model", &int8];
    evaluate.extend(data);
    fails(&run(&evaluate), &needles);
    let test = cancer("test.csv");
    let mut predict = vec!["predict", "--model", &int8, "--rows", &test];
    predict.extend(data);
    fails(&run(&predict), &needles);
}
