//! Helpers shared by the trainer's integration tests: running the binary, the data
//! directories, and checks on failures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The full Fashion-MNIST (the test command installs it).
pub const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's directory, with a clear message when it is missing.
pub fn fashion() -> PathBuf {
    let dir = PathBuf::from(FASHION);
    assert!(
        dir.join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST is missing from {FASHION}: run scripts/setup.sh (apt-get install dataset-fashion-mnist)"
    );
    dir
}

/// The bundled digits' directory in the repository (the binary has them compiled in,
/// as `mlp_train::data::BUNDLED`).
pub fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-digits")
}

/// A character device like `/dev/NAME` (`null`: 1,3; `full`: 1,7) made in `dir` with
/// mknod when allowed (as root), else `/dev/NAME` itself. As root a regression that
/// renames over its output would replace the node: a private one keeps the system's
/// `/dev/null` and `/dev/full` safe from the test that would catch it.
pub fn device_node(dir: &Path, name: &str) -> PathBuf {
    let minor = match name {
        "null" => "3",
        "full" => "7",
        _ => panic!("no device {name}"),
    };
    let node = dir.join(format!("dev-{name}"));
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", minor])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if made {
        node
    } else {
        PathBuf::from(format!("/dev/{name}"))
    }
}

/// True when `path` is a character device (not replaced by a regular file).
pub fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// Runs the trainer binary with `args`.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_mlp-train"))
        .args(args)
        .output()
        .expect("the trainer binary runs")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts a failure with exit code 1 and a one-line message containing every
/// `needle`; returns the message.
pub fn fails(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1\nstdout:\n{}\nstderr:\n{err}",
        stdout(o)
    );
    let line = err.trim_end();
    assert_eq!(
        line.lines().count(),
        1,
        "expected a one-line message, got:\n{err}"
    );
    for n in needles {
        assert!(line.contains(n), "message lacks {n:?}: {line}");
    }
    line.to_owned()
}

/// Names of the files in `dir` (empty when it does not exist).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The figure after "test accuracy: " in the trainer's output, as a fraction.
pub fn test_accuracy(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("test accuracy: "))
        .unwrap_or_else(|| panic!("no test accuracy line in:\n{out}"));
    let pct: f64 = line["test accuracy: ".len()..]
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    pct / 100.0
}

/// Trains a model on the bundled digits for `epochs` epochs (with `extra` flags, such
/// as `--hidden 16`) into `out`, quietly; returns the model file's path.
pub fn train_bundled(out: &Path, epochs: u32, extra: &[&str]) -> PathBuf {
    let epochs = epochs.to_string();
    let mut args = vec!["train", "--quiet", "--epochs", &epochs, "--out"];
    args.push(out.to_str().expect("a UTF-8 temporary path"));
    args.extend_from_slice(extra);
    ok(&run(args));
    out.join("model.mlp")
}

/// Arguments for a quick Fashion-MNIST run: `limit` training images, 2,000
/// validation images, `epochs` epochs, outputs in `out`.
pub fn quick_fashion(out: &Path, limit: usize, epochs: usize) -> Vec<String> {
    vec![
        "train".into(),
        "--quiet".into(),
        "--data".into(),
        fashion().display().to_string(),
        "--limit".into(),
        limit.to_string(),
        "--validation".into(),
        "2000".into(),
        "--epochs".into(),
        epochs.to_string(),
        "--out".into(),
        out.display().to_string(),
    ]
}

/// The metrics log without its wall-time column.
pub fn metrics_without_time(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
        .collect()
}
