//! `evaluate`, `predict`, `inspect` and `show` on a model trained on the bundled
//! digits.

use crate::common::*;

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
    // mlp-embedded's account (MemoryNeeds, Scratch<200>): 2 × 200 × 4 bytes of
    // activations; the kernel's 64 gathered inputs × 8 bytes on the stack; the pixels
    // are read in place.
    let needs = mlp_embedded::MemoryNeeds::for_layer_sizes(&[784, 100, 200, 10]).unwrap();
    assert_eq!(needs.ram_activation_bytes, 1600);
    assert!(out.contains("RAM:         1600 bytes"), "{out}");
    assert!(out.contains("+ 512 bytes of stack"), "{out}");
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

/// `evaluate`'s figures on a hand-counted case: a 784-10 model whose class is the
/// index of the one lit pixel (weight 1 from pixel `j` to class `j`), on six test
/// images whose labels and predictions are chosen, so the confusion matrix, each
/// class's precision and recall and the accuracy are known. A transposed matrix would
/// swap precision and recall and fail here.
#[test]
fn evaluate_counts_a_hand_made_case_exactly() {
    use mlp_train::idx::{encode_images, encode_labels};
    let dir = tempfile::tempdir().unwrap();
    // (label, predicted class): class 0 is right once and taken for 1 once; class 1
    // right once; class 2 taken for 1 once and right twice.
    let cases: [(u8, usize); 6] = [(0, 0), (0, 1), (1, 1), (2, 1), (2, 2), (2, 2)];
    let mut pixels = vec![0u8; cases.len() * 784];
    for (image, &(_, predicted)) in pixels.chunks_exact_mut(784).zip(&cases) {
        image[predicted] = 255;
    }
    let labels: Vec<u8> = cases.iter().map(|c| c.0).collect();
    for prefix in ["train", "t10k"] {
        let n = cases.len() as u32;
        std::fs::write(
            dir.path().join(format!("{prefix}-images-idx3-ubyte")),
            encode_images(n, 28, 28, &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{prefix}-labels-idx1-ubyte")),
            encode_labels(&labels),
        )
        .unwrap();
    }
    let mut model = mlp_train::model::Mlp::zeroed(&[784, 10]).unwrap();
    for class in 0..10 {
        model.params[class * 10 + class] = 1.0;
    }
    let model_path = dir.path().join("model.mlp");
    model.save(&model_path).unwrap();
    let out = ok(&run([
        "evaluate",
        "--model",
        model_path.to_str().unwrap(),
        "--data",
        dir.path().to_str().unwrap(),
    ]));
    assert!(out.contains("accuracy: 66.67% (4/6)"), "{out}");
    // class, precision, recall, examples: precision of 1 is 1/3 (three predicted, one
    // right), its recall 1/1; class 2's precision 2/2, recall 2/3.
    let row = |class: usize| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(&class.to_string()) && l.contains('%'))
            .unwrap_or_else(|| panic!("no line for class {class}: {out}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row(0), "100.00% 50.00% 2");
    assert_eq!(row(1), "33.33% 100.00% 1");
    assert_eq!(row(2), "100.00% 66.67% 3");
    // The matrix: rows are true classes, columns predicted ones.
    let matrix: Vec<Vec<usize>> = out
        .lines()
        .skip_while(|l| !l.starts_with("confusion matrix"))
        .skip(2)
        .take(3)
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(3)
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(matrix, [[1, 1, 0], [0, 1, 0], [0, 1, 2]], "{out}");
}
