//! Every bad input ends the program with exit code 1, a one-line message naming the
//! file and the problem, and no partial output file.

use crate::common::*;

use std::path::{Path, PathBuf};

use mlp_train::idx::{encode_images, encode_labels, gzip};

/// Writes a small valid data directory (24 train, 8 test images of 28×28) and
/// returns it.
fn small_data(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let px = |n: usize| -> Vec<u8> { (0..n * 784).map(|i| (i * 7 % 256) as u8).collect() };
    let labels = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 10) as u8).collect() };
    std::fs::write(
        dir.join("train-images-idx3-ubyte.gz"),
        gzip(&encode_images(24, 28, 28, &px(24))),
    )
    .unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gzip(&encode_labels(&labels(24))),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        encode_images(8, 28, 28, &px(8)),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        encode_labels(&labels(8)),
    )
    .unwrap();
    dir
}

/// Trains on `data` into `out` and expects a failure mentioning `needles`, with no
/// file left in `out`.
fn train_fails(data: &Path, out: &Path, needles: &[&str]) {
    fails(
        &run([
            "train",
            "--quiet",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        needles,
    );
    assert_eq!(
        files_in(out),
        Vec::<String>::new(),
        "files left in {}",
        out.display()
    );
}

#[test]
fn small_valid_data_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "ok");
    let out = tmp.path().join("out");
    ok(&run([
        "train",
        "--quiet",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(out.join("model.mlp").is_file());
}

#[test]
fn missing_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    train_fails(
        &tmp.path().join("nowhere"),
        &out,
        &["nowhere", "data directory cannot be read"],
    );
}

#[test]
fn missing_file_in_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    train_fails(
        &data,
        &tmp.path().join("out"),
        &["no t10k-labels-idx1-ubyte"],
    );
}

#[test]
fn bad_magic_number() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    // A label file where the images should be.
    std::fs::write(data.join("t10k-images-idx3-ubyte"), encode_labels(&[1; 8])).unwrap();
    train_fails(
        &data,
        &tmp.path().join("out"),
        &["t10k-images-idx3-ubyte", "bad magic number 2049"],
    );
}

#[test]
fn truncated_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    let p = data.join("t10k-images-idx3-ubyte");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    train_fails(
        &data,
        &tmp.path().join("out"),
        &["t10k-images-idx3-ubyte", "truncated"],
    );
}

#[test]
fn corrupt_gzip_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    let p = data.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    train_fails(
        &data,
        &tmp.path().join("out"),
        &["train-images-idx3-ubyte.gz"],
    );
}

#[test]
fn label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    let mut labels = vec![1u8; 8];
    labels[5] = 12;
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), encode_labels(&labels)).unwrap();
    train_fails(
        &data,
        &tmp.path().join("out"),
        &["t10k-labels-idx1-ubyte", "label 12 at index 5"],
    );
}

#[test]
fn image_and_label_counts_disagree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), encode_labels(&[1; 7])).unwrap();
    train_fails(
        &data,
        &tmp.path().join("out"),
        &["t10k-labels-idx1-ubyte", "7 labels", "8 images"],
    );
}

#[test]
fn unwritable_output_path() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let out = blocker.join("run");
    fails(
        &run([
            "train",
            "--quiet",
            "--epochs",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        &["a-file/run", "cannot create output directory"],
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"x");
}

#[test]
fn bad_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    let out = tmp.path().join("out");
    let base = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--quiet",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        run(a)
    };
    fails(&base(&["--epochs", "0"]), &["--epochs"]);
    fails(&base(&["--validation", "24"]), &["validation size 24"]);
    fails(&base(&["--lr=-1"]), &["--learning-rate"]);
    // clap's own errors use exit code 2.
    assert_eq!(base(&["--hidden", "10,x"]).status.code(), Some(2));

    // Without --quiet, a refused setting is refused before the run's banner: the
    // error is all the user sees.
    let loud = run([
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--lr=-1",
    ]);
    fails(
        &loud,
        &["--learning-rate must be a positive number, got -1"],
    );
    assert_eq!(stdout(&loud), "", "a banner before the error");
}

#[test]
fn diverging_training_stops_with_a_message_and_no_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fails(
        &run([
            "train",
            "--quiet",
            "--limit",
            "2000",
            "--lr",
            "1e9",
            "--out",
            out.to_str().unwrap(),
        ]),
        &["training diverged", "epoch 1", "lower the learning rate"],
    );
    assert!(!out.join("model.mlp").exists());
    assert!(!out.join("checkpoint.ckpt").exists());
}

/// A small trained model for the model-file cases.
fn tiny_model(dir: &Path, sizes: &[usize]) -> PathBuf {
    let path = dir.join(format!("m{}.mlp", sizes[0]));
    mlp_train::model::Mlp::zeroed(sizes)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

#[test]
fn model_that_does_not_fit_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path(), &[100, 10]);
    fails(
        &run(["evaluate", "--model", model.to_str().unwrap()]),
        &[
            "m100.mlp",
            "model takes 100 inputs",
            "the data has 784 per example",
        ],
    );
    let img = tmp.path().join("digit.pgm");
    std::fs::write(&img, b"P5\n2 2\n255\n\x00\xff\x00\x00").unwrap();
    fails(
        &run([
            "predict",
            "--model",
            model.to_str().unwrap(),
            img.to_str().unwrap(),
        ]),
        &["m100.mlp", "takes 100 inputs"],
    );
}

#[test]
fn corrupt_or_missing_model_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path(), &[784, 10]);
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let bad = tmp.path().join("bad.mlp");
    std::fs::write(&bad, &bytes).unwrap();
    for cmd in [
        vec!["inspect", bad.to_str().unwrap()],
        vec!["evaluate", "--model", bad.to_str().unwrap()],
    ] {
        fails(&run(cmd), &["bad.mlp", "not a valid model file"]);
    }
    let text = tmp.path().join("text.mlp");
    std::fs::write(&text, b"hello, not a model").unwrap();
    fails(
        &run(["inspect", text.to_str().unwrap()]),
        &["text.mlp", "not a valid model file"],
    );
    fails(
        &run(["inspect", tmp.path().join("absent.mlp").to_str().unwrap()]),
        &["absent.mlp", "cannot read model file"],
    );
}

#[test]
fn bad_image_for_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path(), &[784, 10]);
    let not_image = tmp.path().join("notes.png");
    std::fs::write(&not_image, b"this is not a PNG").unwrap();
    fails(
        &run([
            "predict",
            "--model",
            model.to_str().unwrap(),
            not_image.to_str().unwrap(),
        ]),
        &["notes.png", "not a readable PNG or PGM image"],
    );
    let blank = tmp.path().join("blank.pgm");
    let mut pgm = b"P5\n4 4\n255\n".to_vec();
    pgm.extend([255u8; 16]);
    std::fs::write(&blank, pgm).unwrap();
    fails(
        &run([
            "predict",
            "--model",
            model.to_str().unwrap(),
            blank.to_str().unwrap(),
        ]),
        &["blank.pgm", "no ink"],
    );
}

#[test]
fn empty_validation_set_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path(), "d");
    let out = tmp.path().join("out");
    fails(
        &run([
            "train",
            "--quiet",
            "--validation",
            "0",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        &["validation set would be empty"],
    );
    assert_eq!(files_in(&out), Vec::<String>::new());
}

/// `--kernels` names an arithmetic or an instruction set; a name that is neither, or an
/// instruction set this CPU does not run, is refused with the reason, never replaced
/// by another silently.
#[test]
fn unknown_or_unsupported_kernels_are_refused() {
    let refused = |kernels: &str, needle: &str| {
        let o = run(["train", "--quiet", "--epochs", "1", "--kernels", kernels]);
        assert!(!o.status.success(), "--kernels {kernels} was accepted");
        let err = stderr(&o);
        assert!(err.contains(needle), "--kernels {kernels}: {err}");
    };
    refused("avx-512", "unknown instruction set \"avx-512\"");
    refused("fast", "unknown instruction set \"fast\"");
    for isa in mlp_kernels::Isa::ALL {
        if !isa.is_supported() {
            refused(isa.name(), &format!("does not run the {isa} kernels"));
        }
    }
}
