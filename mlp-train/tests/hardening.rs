//! Crash safety: the trainer killed with SIGKILL at many different moments never
//! leaves a damaged model or checkpoint behind, and a full disk fails cleanly.

use crate::common::*;
use mlp_train::checkpoint::Checkpoint;
use mlp_train::fsio::TEMP_SUFFIX;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// A run on the bundled digits long enough (a second or two) to be killed mid-way,
/// writing a checkpoint after every epoch.
fn run_args(out: &Path, seed: u64) -> Vec<String> {
    [
        "train",
        "--quiet",
        "--limit",
        "6000",
        "--validation",
        "1000",
        "--epochs",
        "6",
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The model and checkpoint in `dir` are whole: the model decodes with its checksum
/// and loads, the checkpoint loads with its checksum.
fn assert_outputs_intact(dir: &Path) {
    let model = std::fs::read(dir.join("model.mlp")).expect("model.mlp is still there");
    mlp_core::format::ModelView::decode(&model).expect("model.mlp decodes");
    mlp_train::model::Mlp::from_bytes(&model).expect("model.mlp loads");
    Checkpoint::load(&dir.join("checkpoint.ckpt")).expect("checkpoint.ckpt loads");
}

/// Every file in `dir` is an output of the trainer or one of its temporary files.
fn assert_only_known_files(dir: &Path) -> usize {
    let mut temporaries = 0;
    for name in files_in(dir) {
        if name.ends_with(TEMP_SUFFIX) && name.starts_with('.') {
            temporaries += 1;
        } else {
            assert!(
                [
                    "model.mlp",
                    "checkpoint.ckpt",
                    "metrics.csv",
                    "curves.svg",
                    "summary.json"
                ]
                .contains(&name.as_str()),
                "unexpected file {name}"
            );
        }
    }
    temporaries
}

#[test]
fn sigkill_at_any_moment_leaves_the_previous_model_and_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let started = Instant::now();
    ok(&run(run_args(&out, 1)));
    let full_run = started.elapsed();
    assert_outputs_intact(&out);

    let iterations = 16;
    let mut replaced = 0;
    let mut left_temporaries = 0;
    for i in 0..iterations {
        let before = std::fs::read(out.join("model.mlp")).unwrap();
        // Spread the kills over the whole run, including its first and last moments.
        let delay = full_run.mul_f64((i as f64 + 0.5) / iterations as f64 * 1.1);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mlp-train"))
            .args(run_args(&out, 100 + i))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL on Unix; the run may already have finished
        child.wait().unwrap();
        assert_outputs_intact(&out);
        left_temporaries += assert_only_known_files(&out);
        if std::fs::read(out.join("model.mlp")).unwrap() != before {
            replaced += 1;
        }
    }
    eprintln!(
        "kill test: {iterations} SIGKILLs over a {full_run:?} run, all survived; \
         {replaced} landed after a new model was written, {left_temporaries} left a temporary file"
    );
    // Kills landed both before and after the end of a run, so both states were checked.
    assert!(
        replaced < iterations as usize,
        "every kill came too late to interrupt anything"
    );

    // Kills timed by the clock rarely land inside a write (a few milliseconds of a
    // second-long run), so these are timed by the writes themselves: the directory is
    // watched, and the run is killed as soon as a temporary file of its model or
    // checkpoint appears. A temporary file named with the run's process id that is
    // still there after the kill proves the kill landed between creating it and
    // renaming it: during the write, where a non-atomic write would leave a torn file.
    let watched = 8;
    let mut during_write = 0;
    for i in 0..watched {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mlp-train"))
            .args(run_args(&out, 200 + i))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let ours = [
            format!(".model.mlp.{pid}-"),
            format!(".checkpoint.ckpt.{pid}-"),
        ];
        let mut seen = None;
        while seen.is_none() && child.try_wait().unwrap().is_none() {
            seen = files_in(&out)
                .into_iter()
                .find(|name| ours.iter().any(|prefix| name.starts_with(prefix.as_str())));
        }
        let _ = child.kill();
        child.wait().unwrap();
        assert_outputs_intact(&out);
        assert_only_known_files(&out);
        if seen.is_some_and(|name| out.join(name).exists()) {
            during_write += 1;
        }
    }
    eprintln!("kill test: {during_write} of {watched} watched kills landed during a write");
    assert!(
        during_write > 0,
        "no kill landed while a model or checkpoint was being written"
    );
    // A later run in the same directory is not disturbed by leftovers.
    ok(&run(run_args(&out, 7)));
    assert_outputs_intact(&out);
}

#[test]
fn a_full_disk_gives_a_clear_error_and_no_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    // 64 KiB: room for the metrics but not for a 400 KB model.
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            mount.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // Only a developer's unprivileged run may skip it: as root (CI, the test
        // command) a failed mount is a failure, not a pass.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        assert!(!root, "running as root, but mounting a 64 KiB tmpfs failed");
        eprintln!("not run: mounting a tmpfs needs root");
        return;
    }
    let out = mount.join("run");
    let result = run(run_args(&out, 1));
    let message = stderr(&result);
    let files = files_in(&out);
    let _ = Command::new("umount").arg(&mount).status();
    assert_eq!(result.status.code(), Some(1), "{message}");
    assert_eq!(
        message.trim().lines().count(),
        1,
        "one-line message: {message}"
    );
    assert!(
        message.contains("No space left on device") && message.contains("run"),
        "the message names the problem and the file: {message}"
    );
    for name in files {
        assert!(
            !name.ends_with(TEMP_SUFFIX),
            "temporary file {name} left behind"
        );
        assert_ne!(name, "model.mlp", "a partial model was left behind");
    }
}

/// A data directory of `rows × cols` images, with the given bytes for any file
/// overridden by `replace` (name, contents).
fn data_dir(
    root: &Path,
    name: &str,
    rows: u32,
    cols: u32,
    replace: &[(&str, Vec<u8>)],
) -> std::path::PathBuf {
    use mlp_train::idx::{encode_images, encode_labels};
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let pixels = (rows * cols) as usize;
    let images = |n: usize| {
        encode_images(
            n as u32,
            rows,
            cols,
            &(0..n * pixels)
                .map(|i| (i * 13 % 256) as u8)
                .collect::<Vec<_>>(),
        )
    };
    let labels = |n: usize| encode_labels(&(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    for (file, bytes) in [
        ("train-images-idx3-ubyte", images(24)),
        ("train-labels-idx1-ubyte", labels(24)),
        ("t10k-images-idx3-ubyte", images(8)),
        ("t10k-labels-idx1-ubyte", labels(8)),
    ] {
        let bytes = replace
            .iter()
            .find(|(n, _)| *n == file)
            .map_or(bytes, |(_, b)| b.clone());
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

/// Bad inputs to every command: each exits with code 1 and one line naming the file
/// at fault, and writes nothing.
#[test]
fn bad_inputs_to_every_command_are_named_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let p = |path: &Path| path.to_str().unwrap().to_owned();

    let good_model = root.join("good.mlp");
    mlp_train::model::Mlp::zeroed(&[784, 8, 10])
        .unwrap()
        .save(&good_model)
        .unwrap();
    let good_bytes = std::fs::read(&good_model).unwrap();
    let mut future = good_bytes.clone();
    future[4] = (mlp_core::format::FORMAT_VERSION + 1) as u8; // a model from the future
    let future_model = root.join("future.mlp");
    std::fs::write(&future_model, &future).unwrap();
    let empty_model = root.join("empty.mlp");
    std::fs::write(&empty_model, b"").unwrap();
    let truncated_model = root.join("truncated.mlp");
    std::fs::write(&truncated_model, &good_bytes[..good_bytes.len() / 2]).unwrap();
    // Version-3 models whose new fields are corrupt, with a checksum that matches, so
    // that each reaches its own check: a NaN offset, a class name with a line break, an
    // input transform this build does not know.
    let standardized = {
        let mut mlp = mlp_train::model::Mlp::zeroed(&[784, 8, 10]).unwrap();
        mlp.input = mlp_train::model::Input::Standardized {
            offsets: vec![0.5; 784],
            scales: vec![2.0; 784],
        };
        mlp.class_names = Some((0..10).map(|c| format!("c{c}")).collect());
        mlp.to_bytes().unwrap()
    };
    let corrupt = |name: &str, edit: &dyn Fn(&mut Vec<u8>, usize)| {
        let view = mlp_core::format::ModelView::decode(&standardized).unwrap();
        let payload_start = standardized.len() - view.payload().len();
        let crc_at = standardized[..payload_start]
            .windows(4)
            .position(|w| w == view.payload_crc().to_le_bytes())
            .unwrap();
        let mut bytes = standardized.clone();
        edit(&mut bytes, payload_start);
        let crc = mlp_core::format::crc32(&bytes[payload_start..]);
        bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        let path = root.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let nan_offset = corrupt("nan-offset.mlp", &|b, at| {
        b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes())
    });
    let bad_name = corrupt("bad-name.mlp", &|b, _| {
        // Class 2's name, "c2", becomes "c\n".
        let len = b.len();
        b[len - 3 * (10 - 2) + 2] = b'\n';
    });
    let unknown_input = corrupt("unknown-input.mlp", &|b, _| b[6] = 7);
    let image = root.join("digit.pgm");
    std::fs::write(
        &image,
        [b"P5\n2 2\n255\n".as_slice(), &[0, 255, 255, 0]].concat(),
    )
    .unwrap();
    let empty_image = root.join("empty.png");
    std::fs::write(&empty_image, b"").unwrap();

    let empty_images = data_dir(
        root,
        "empty-images",
        28,
        28,
        &[("train-images-idx3-ubyte", vec![])],
    );
    let empty_labels = data_dir(
        root,
        "empty-labels",
        28,
        28,
        &[("t10k-labels-idx1-ubyte", vec![])],
    );
    let wrong_size = data_dir(root, "wrong-size", 32, 32, &[]);
    let fewer_labels = data_dir(
        root,
        "fewer-labels",
        28,
        28,
        &[(
            "t10k-labels-idx1-ubyte",
            mlp_train::idx::encode_labels(&[1, 2, 3]),
        )],
    );
    let mut bad_label = mlp_train::idx::encode_labels(&[0, 1, 2, 3, 4, 5, 6, 7]);
    bad_label[10] = 10;
    let label_out_of_range = data_dir(
        root,
        "label-10",
        28,
        28,
        &[("t10k-labels-idx1-ubyte", bad_label)],
    );
    let mut wrong_magic = mlp_train::idx::encode_labels(&[0; 8]);
    wrong_magic[3] = 0x03; // 2051, an images file's magic, in a labels file
    let wrong_magic_dir = data_dir(
        root,
        "wrong-magic",
        28,
        28,
        &[("t10k-labels-idx1-ubyte", wrong_magic)],
    );

    let full = device_node(root, "full");
    // An int8 model, which only `evaluate`, `predict` and `inspect` read.
    let calibration = data_dir(root, "calibration", 28, 28, &[]);
    let int8_model = root.join("good-int8.mlp");
    ok(&run([
        "quantize",
        "--model",
        good_model.to_str().unwrap(),
        "--data",
        calibration.to_str().unwrap(),
    ]));
    assert!(
        int8_model.is_file(),
        "quantize wrote {}",
        int8_model.display()
    );
    // Nothing listens on port 1 of the loopback interface: the connection is refused at
    // once, with no network involved.
    let unreachable = "http://127.0.0.1:1";
    let downloads = root.join("downloads");
    let quantized = |model: &Path| {
        let stem = model.file_stem().unwrap().to_string_lossy().into_owned();
        model.with_file_name(format!("{stem}-int8.mlp"))
    };

    let out = root.join("out");
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "inspect: a standardized model with a NaN offset",
            vec!["inspect".into(), p(&nan_offset)],
            "nan-offset.mlp: not a valid model file: feature 0's normalization is invalid",
        ),
        (
            "evaluate: a class name with a line break",
            vec!["evaluate".into(), "--model".into(), p(&bad_name)],
            "bad-name.mlp: not a valid model file: class 2's name holds a control character",
        ),
        (
            "predict: an input transform this build does not know",
            vec![
                "predict".into(),
                "--model".into(),
                p(&unknown_input),
                p(&image),
            ],
            "unknown-input.mlp: not a valid model file: unknown input transform 7",
        ),
        (
            "quantize: an int8 model",
            vec!["quantize".into(), "--model".into(), p(&int8_model)],
            "good-int8.mlp",
        ),
        (
            "quantize: truncated model",
            vec!["quantize".into(), "--model".into(), p(&truncated_model)],
            "truncated.mlp",
        ),
        (
            "quantize: missing data directory",
            vec![
                "quantize".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&root.join("nowhere")),
            ],
            "nowhere",
        ),
        (
            "quantize: images of the wrong size",
            vec![
                "quantize".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&wrong_size),
                "--out".into(),
                p(&out.join("q.mlp")),
            ],
            "good.mlp",
        ),
        (
            "quantize: no calibration image",
            vec![
                "quantize".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&calibration),
                "--calibration".into(),
                "0".into(),
                "--out".into(),
                p(&out.join("q.mlp")),
            ],
            "--calibration",
        ),
        (
            "quantize: output in a missing directory",
            vec![
                "quantize".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&calibration),
                "--out".into(),
                p(&root.join("no-such-dir/q.mlp")),
            ],
            "no-such-dir/q.mlp",
        ),
        (
            "download: unreachable mirror",
            vec![
                "download".into(),
                "--mirror".into(),
                unreachable.into(),
                "--dir".into(),
                p(&downloads),
            ],
            "http://127.0.0.1:1/train-images-idx3-ubyte.gz",
        ),
        (
            "download: mirror that is not a URL",
            vec![
                "download".into(),
                "--mirror".into(),
                "not-a-url".into(),
                "--dir".into(),
                p(&downloads),
            ],
            "not-a-url/train-images-idx3-ubyte.gz",
        ),
        (
            "download: cache directory is a file",
            vec![
                "download".into(),
                "--mirror".into(),
                unreachable.into(),
                "--dir".into(),
                p(&good_model),
            ],
            "good.mlp",
        ),
        (
            "download: malformed --sha256",
            vec![
                "download".into(),
                "--mirror".into(),
                unreachable.into(),
                "--dir".into(),
                p(&downloads),
                "--sha256".into(),
                "nonsense".into(),
            ],
            "--sha256 nonsense",
        ),
        (
            "bench: missing data directory",
            vec!["bench".into(), "--data".into(), p(&root.join("nowhere"))],
            "nowhere",
        ),
        (
            "bench: images of the wrong size",
            vec!["bench".into(), "--data".into(), p(&wrong_size)],
            "wrong-size",
        ),
        (
            "bench: --rounds 0",
            vec![
                "bench".into(),
                "--data".into(),
                p(&calibration),
                "--rounds".into(),
                "0".into(),
            ],
            "--rounds 0",
        ),
        (
            "bench: --infer 0",
            vec![
                "bench".into(),
                "--data".into(),
                p(&calibration),
                "--infer".into(),
                "0".into(),
            ],
            "--infer 0",
        ),
        (
            "bench: --threads 0",
            vec![
                "bench".into(),
                "--data".into(),
                p(&calibration),
                "--threads".into(),
                "0".into(),
            ],
            "--threads 0",
        ),
        (
            "bench: missing NumPy script",
            vec![
                "bench".into(),
                "--data".into(),
                p(&calibration),
                "--numpy".into(),
                p(&root.join("absent.py")),
            ],
            "absent.py",
        ),
        (
            "inspect: empty model",
            vec!["inspect".into(), p(&empty_model)],
            "empty.mlp",
        ),
        (
            "inspect: truncated model",
            vec!["inspect".into(), p(&truncated_model)],
            "truncated.mlp",
        ),
        (
            "inspect: model from the future",
            vec!["inspect".into(), p(&future_model)],
            "future.mlp",
        ),
        (
            "evaluate: model from the future",
            vec!["evaluate".into(), "--model".into(), p(&future_model)],
            "future.mlp",
        ),
        (
            "predict: model from the future",
            vec![
                "predict".into(),
                "--model".into(),
                p(&future_model),
                p(&image),
            ],
            "future.mlp",
        ),
        (
            "predict: empty image",
            vec![
                "predict".into(),
                "--model".into(),
                p(&good_model),
                p(&empty_image),
            ],
            "empty.png",
        ),
        (
            "predict: missing image",
            vec![
                "predict".into(),
                "--model".into(),
                p(&good_model),
                p(&root.join("absent.png")),
            ],
            "absent.png",
        ),
        (
            "train: empty images file",
            vec![
                "train".into(),
                "--quiet".into(),
                "--data".into(),
                p(&empty_images),
                "--out".into(),
                p(&out),
            ],
            "train-images-idx3-ubyte",
        ),
        (
            "evaluate: empty labels file",
            vec![
                "evaluate".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&empty_labels),
            ],
            "t10k-labels-idx1-ubyte",
        ),
        (
            "evaluate: images of the wrong size",
            vec![
                "evaluate".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&wrong_size),
            ],
            "good.mlp",
        ),
        (
            "evaluate: fewer labels than images",
            vec![
                "evaluate".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&fewer_labels),
            ],
            "t10k",
        ),
        (
            "evaluate: label out of range",
            vec![
                "evaluate".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&label_out_of_range),
            ],
            "t10k-labels-idx1-ubyte",
        ),
        (
            "evaluate: wrong magic",
            vec![
                "evaluate".into(),
                "--model".into(),
                p(&good_model),
                "--data".into(),
                p(&wrong_magic_dir),
            ],
            "t10k-labels-idx1-ubyte",
        ),
        (
            "show: empty images file",
            vec!["show".into(), "--data".into(), p(&empty_images)],
            "train-images-idx3-ubyte",
        ),
        (
            "show: missing directory",
            vec!["show".into(), "--data".into(), p(&root.join("nowhere"))],
            "nowhere",
        ),
        (
            "quantize: --out is the --model",
            vec![
                "quantize".into(),
                "--model".into(),
                p(&good_model),
                "--out".into(),
                p(&good_model),
            ],
            "the output is the input file",
        ),
        (
            "quantize: --out /dev/full",
            vec![
                "quantize".into(),
                "--model".into(),
                p(&good_model),
                "--out".into(),
                p(&full),
            ],
            "No space left on device",
        ),
        (
            "bench: --rounds 0",
            vec!["bench".into(), "--rounds".into(), "0".into()],
            "--rounds",
        ),
    ];
    for (name, args, needle) in &cases {
        let output = run(args);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        let message = stderr(&output);
        assert_eq!(
            message.trim().lines().count(),
            1,
            "{name}: one line: {message}"
        );
        assert!(
            message.contains(needle),
            "{name}: the message names {needle}: {message}"
        );
        eprintln!("{name:40} -> {}", message.trim());
    }
    assert!(
        !out.exists(),
        "a failed command left files or an empty output directory behind"
    );
    assert_eq!(std::fs::read(&good_model).unwrap(), good_bytes);
    assert!(is_char_device(&full), "{} was replaced", full.display());
    // The failed quantizations wrote no int8 model next to theirs, and the failed
    // downloads fetched nothing.
    for model in [&int8_model, &truncated_model] {
        assert!(!quantized(model).exists(), "{}", quantized(model).display());
    }
    assert!(
        files_in(&downloads).is_empty(),
        "{:?}",
        files_in(&downloads)
    );
    eprintln!("{} bad-input cases in this table", cases.len());
}

/// A run killed with SIGKILL mid-way and resumed from its last checkpoint ends with the
/// same model bytes as an uninterrupted run with the same seed.
#[test]
fn killed_mid_run_and_resumed_gives_the_same_model_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let started = Instant::now();
    ok(&run(run_args(&whole, 42)));
    let full_run = started.elapsed();
    let expected = std::fs::read(whole.join("model.mlp")).unwrap();

    // Kill later and later until a checkpoint exists but the run has not finished.
    for fraction in [0.5, 0.65, 0.8, 0.35, 0.9] {
        let parts = dir.path().join(format!("parts-{fraction}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mlp-train"))
            .args(run_args(&parts, 42))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full_run.mul_f64(fraction));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let checkpoint = parts.join("checkpoint.ckpt");
        if status.success() || parts.join("model.mlp").exists() || !checkpoint.exists() {
            continue; // finished before the kill, or killed before the first epoch ended
        }
        let epochs_done = Checkpoint::load(&checkpoint).unwrap().epochs_done;
        ok(&run([
            "train",
            "--quiet",
            "--resume",
            checkpoint.to_str().unwrap(),
        ]));
        let resumed = std::fs::read(parts.join("model.mlp")).unwrap();
        assert!(
            resumed == expected,
            "resumed model differs (killed at {fraction} of the run)"
        );
        eprintln!(
            "killed at {fraction} of the run after {epochs_done} epochs, resumed: same bytes"
        );
        return;
    }
    panic!("no kill landed between the first checkpoint and the end of the run");
}
