//! `evaluate`, `predict`, `inspect` and `show` on a model trained on the bundled
//! digits.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One model for all tests here: 2 epochs on the bundled digits (about 93%).
fn model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        ok(&run([
            "train",
            "--quiet",
            "--epochs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ]));
        (dir, out.join("model.mlp"))
    });
    path
}

#[test]
fn evaluate_prints_accuracy_precision_recall_and_confusion() {
    let out = ok(&run(["evaluate", "--model", model().to_str().unwrap()]));
    assert!(out.contains("accuracy: "), "{out}");
    assert!(out.contains("precision") && out.contains("recall"), "{out}");
    assert!(out.contains("confusion matrix"), "{out}");
    // 1,000 test images: the confusion matrix rows add up to that.
    assert!(out.contains("/1000)"), "{out}");
    let val = ok(&run([
        "evaluate",
        "--model",
        model().to_str().unwrap(),
        "--split",
        "validation",
    ]));
    assert!(val.contains("/1500)"), "{val}");
}

#[test]
fn inspect_reports_sizes_and_device_needs() {
    let out = ok(&run(["inspect", model().to_str().unwrap()]));
    let size = std::fs::metadata(model()).unwrap().len();
    assert!(out.contains("784-100-200-10"), "{out}");
    assert!(out.contains("parameters:  100710 (F32)"), "{out}");
    assert!(out.contains(&format!("flash:       {size} bytes")), "{out}");
    // 2 × 200 × 4 + 784 × 4
    assert!(out.contains("RAM:         4736 bytes"), "{out}");
    assert!(out.contains("MACs:        100400"), "{out}");
}

#[test]
fn show_prints_art_and_writes_a_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("grid.png");
    let out = ok(&run([
        "show",
        "--count",
        "4",
        "--png",
        png.to_str().unwrap(),
    ]));
    let train =
        mlp_train::data::load_split(&bundled(), mlp_train::data::Split::Train, None).unwrap();
    for i in 0..4 {
        assert!(
            out.contains(&format!("#{i} label {}", train.labels[i])),
            "{out}"
        );
    }
    assert!(out.contains('@'), "{out}");
    let img = image::open(&png).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (2 + 2 * (28 * 4 + 2), 2 + 2 * (28 * 4 + 2))
    );
}

/// Writes test image `i` of the bundled digits at 3× size, dark ink on a light
/// background, as PNG (even `i`) or PGM (odd `i`).
fn write_digit(dir: &Path, data: &mlp_train::data::Dataset, i: usize) -> PathBuf {
    let img = image::GrayImage::from_fn(84, 84, |x, y| {
        let v = data.input(i)[(y / 3 * 28 + x / 3) as usize];
        image::Luma([255 - (v * 255.0).round() as u8])
    });
    let path = dir.join(if i.is_multiple_of(2) {
        format!("d{i}.png")
    } else {
        format!("d{i}.pgm")
    });
    img.save(&path).unwrap();
    path
}

#[test]
fn predict_classifies_digit_images() {
    let tmp = tempfile::tempdir().unwrap();
    let test = mlp_train::data::load_pair(&bundled(), "t10k").unwrap();
    let n = 20;
    let paths: Vec<PathBuf> = (0..n).map(|i| write_digit(tmp.path(), &test, i)).collect();
    let mut args = vec![
        "predict".to_owned(),
        "--model".into(),
        model().display().to_string(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let out = ok(&run(&args));
    let mut right = 0;
    for (i, line) in out.lines().enumerate() {
        let class: u8 = line
            .split("class ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(line.contains("probabilities 0:"), "{line}");
        right += usize::from(class == test.labels[i]);
    }
    assert_eq!(out.lines().count(), n);
    assert!(
        right >= 16,
        "only {right}/{n} re-drawn test digits classified right:\n{out}"
    );
}
