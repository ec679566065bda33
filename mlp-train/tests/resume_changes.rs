//! Resuming with changes (issue 17, items 7–9): the checkpoint identifies its data by
//! absolute path and SHA-256, so a run resumes from any working directory and from a
//! moved copy of the data, and refuses other data; `--epochs` and `--learning-rate`
//! are honoured, every other training flag that differs is refused by name; a data
//! path that is not UTF-8 works.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the bundled digits in `root/name`.
fn copy_of_digits(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(bundled()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

/// A quick run's arguments: 600 training images, 300 for validation, 16 hidden units.
fn quick(data: &Path, out: &Path, epochs: usize) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "train",
        "--quiet",
        "--limit",
        "600",
        "--validation",
        "300",
        "--hidden",
        "16",
        "--epochs",
        &epochs.to_string(),
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.extend(["--data".into(), data.as_os_str().to_owned()]);
    args.extend(["--out".into(), out.as_os_str().to_owned()]);
    args
}

/// Runs the trainer in `cwd`.
fn run_in<I, S>(cwd: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_mlp-train"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

fn resume(ck: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--resume", ck.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(args)
}

#[test]
fn resumes_from_another_directory_and_from_a_moved_copy_of_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let data = copy_of_digits(tmp, "digits");
    ok(&run(quick(&data, &tmp.join("whole"), 3)));
    let expected = std::fs::read(tmp.join("whole/model.mlp")).unwrap();

    // The first run names its data relatively, from `tmp`.
    let mut first = quick(Path::new("digits"), Path::new("parts"), 3);
    first.extend(["--stop-after".into(), "1".into()]);
    ok(&run_in(tmp, &first));
    let parts = tmp.join("parts");
    let ck = parts.join("checkpoint.ckpt");
    let saved = mlp_train::checkpoint::Checkpoint::load(&ck).unwrap();
    assert!(
        saved.config.data_dir.is_absolute(),
        "{:?}",
        saved.config.data_dir
    );
    assert_eq!(saved.data.as_ref().unwrap().files.len(), 4);

    // Another working directory: the absolute path still finds the data.
    let mut second = vec!["train", "--quiet", "--stop-after", "2", "--resume"];
    let ck_text = ck.to_str().unwrap().to_owned();
    second.push(&ck_text);
    ok(&run_in(Path::new("/"), &second));

    // The data moves: resuming says where to look, then takes the moved copy.
    let moved = tmp.join("moved");
    std::fs::rename(&data, &moved).unwrap();
    fails(
        &resume(&ck, &["--quiet"]),
        &["digits", "pass --data with where it is now"],
    );
    let out = ok(&resume(&ck, &["--data", moved.to_str().unwrap()]));
    assert!(out.contains("data now in"), "{out}");
    assert!(out.contains("SHA-256 match"), "{out}");
    assert!(
        std::fs::read(parts.join("model.mlp")).unwrap() == expected,
        "the resumed run's model differs from the uninterrupted run's"
    );
}

#[test]
fn other_data_is_refused_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let data = copy_of_digits(tmp, "digits");
    let out = tmp.join("run");
    let mut args = quick(&data, &out, 2);
    args.extend(["--stop-after".into(), "1".into()]);
    ok(&run(&args));
    // A copy with one test label changed.
    let other = copy_of_digits(tmp, "other");
    let labels = other.join("t10k-labels-idx1-ubyte.gz");
    let mut raw = mlp_train::idx::read_labels(&labels, 10).unwrap();
    raw[0] = (raw[0] + 1) % 10;
    std::fs::write(
        &labels,
        mlp_train::idx::gzip(&mlp_train::idx::encode_labels(&raw)),
    )
    .unwrap();
    let ck = out.join("checkpoint.ckpt");
    let before = std::fs::read(&ck).unwrap();
    fails(
        &resume(&ck, &["--data", other.to_str().unwrap()]),
        &[
            "other",
            "not the data the checkpoint was trained on",
            "t10k-labels-idx1-ubyte.gz has SHA-256",
        ],
    );
    assert_eq!(std::fs::read(&ck).unwrap(), before, "checkpoint changed");
    assert!(!out.join("model.mlp").exists());
}

#[test]
fn more_epochs_and_a_new_learning_rate_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    ok(&run(quick(&bundled(), &out, 2)));
    let ck = out.join("checkpoint.ckpt");
    let text = ok(&resume(&ck, &["--epochs", "4", "--lr", "0.01"]));
    assert!(
        text.contains("continuing to 4 epochs instead of 2"),
        "{text}"
    );
    assert!(
        text.contains("learning rate 0.01 from epoch 3 on (was 0.1"),
        "{text}"
    );
    assert!(text.contains("epoch   4/4"), "{text}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rates: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(rates, ["0.1", "0.1", "0.01", "0.01"]);
    let ck_now = mlp_train::checkpoint::Checkpoint::load(&ck).unwrap();
    assert_eq!(ck_now.config.epochs, 4);
    assert_eq!(ck_now.config.learning_rate, 0.01);
    // Fewer epochs than done is refused.
    fails(
        &resume(&ck, &["--epochs", "3"]),
        &["--epochs 3", "4 epochs done already"],
    );
}

#[test]
fn flags_that_cannot_change_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut args = quick(&bundled(), &out, 3);
    args.extend(["--stop-after".into(), "1".into()]);
    ok(&run(&args));
    let ck = out.join("checkpoint.ckpt");
    let before = std::fs::read(&ck).unwrap();
    for (flags, needle) in [
        (&["--seed", "5"][..], "--seed 5 (the checkpoint's is 1)"),
        (&["--hidden", "8"], "--hidden 8 (the checkpoint's is 16)"),
        (&["--batch-size", "16"], "--batch-size 16"),
        (&["--optimizer", "adam"], "--optimizer adam"),
        (&["--limit", "500"], "--limit 500"),
        (&["--validation", "100"], "--validation 100"),
        (&["--schedule", "cosine"], "--schedule cosine"),
        (&["--weight-decay", "0.1"], "--weight-decay 0.1"),
        (&["--patience", "3"], "--patience 3"),
        (&["--name", "x"], "--name"),
    ] {
        let message = fails(&resume(&ck, flags), &[needle]);
        assert!(
            message.contains("when resuming") || message.contains("--out"),
            "{message}"
        );
    }
    assert_eq!(std::fs::read(&ck).unwrap(), before, "checkpoint changed");
    // The checkpoint's own values may be repeated.
    ok(&resume(&ck, &["--quiet", "--seed", "1", "--hidden", "16"]));
}

#[cfg(unix)]
#[test]
fn a_data_path_that_is_not_utf8_trains_and_resumes() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"digits-\xff");
    let data = tmp.path().join(name);
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(bundled()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let out = tmp.path().join("run");
    let mut args = quick(&data, &out, 2);
    args.extend(["--stop-after".into(), "1".into()]);
    ok(&run(&args));
    let ck = out.join("checkpoint.ckpt");
    let saved = mlp_train::checkpoint::Checkpoint::load(&ck).unwrap();
    assert_eq!(saved.config.data_dir, data);
    ok(&run([
        "train".as_ref(),
        "--quiet".as_ref(),
        "--resume".as_ref(),
        ck.as_os_str(),
    ]));
    assert!(out.join("model.mlp").is_file());
    assert!(out.join("summary.json").is_file());
}
