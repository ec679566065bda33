//! Where outputs go and how runs end: special files are written through, never
//! replaced; an output that is an input is refused; Ctrl-C saves and says how to
//! resume; a failed run leaves no empty directory; a closed or full stdout does not
//! panic; the binary needs nothing from its build folder; `predict` goes on past a
//! broken image.

use crate::common::*;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlp_train::fsio::TEMP_SUFFIX;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mlp-train")
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// A small trained-shape model (zero weights) in `dir`.
fn small_model(dir: &Path) -> PathBuf {
    let path = dir.join("model.mlp");
    mlp_train::model::Mlp::zeroed(&[784, 8, 10])
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// Names of temporary files anywhere under `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            found.extend(temporaries(&entry.path()));
        } else if name.ends_with(TEMP_SUFFIX) {
            found.push(name);
        }
    }
    found
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Item 1: /dev/null, /dev/full (private nodes as root), a FIFO and a symbolic link
/// as outputs. As root (CI, containers) a rename would replace the device node; it
/// must stay a device.
#[test]
fn special_files_are_written_through_and_links_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_model(tmp.path());
    let m = p(&model);
    let (null, full) = (
        device_node(tmp.path(), "null"),
        device_node(tmp.path(), "full"),
    );

    let o = run(["quantize", "--model", &m, "--out", &p(&null)]);
    ok(&o);
    assert!(is_char_device(&null), "{} was replaced", null.display());

    for args in [
        vec!["quantize", "--model", &m, "--out", &p(&full)],
        vec!["show", "--png", &p(&full)],
    ] {
        let o = run(&args);
        fails(&o, &[&p(&full), "No space left on device"]);
        assert!(is_char_device(&full), "{} was replaced", full.display());
    }

    // A FIFO: the int8 model goes through it to the reader.
    let fifo = tmp.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&run(["quantize", "--model", &m, "--out", &p(&fifo)]));
    let through = reader.join().unwrap();
    assert!(through.starts_with(b"MLPW"), "{} bytes", through.len());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(temporaries(tmp.path()).is_empty());

    // A symbolic link: the file it names is replaced, the link stays.
    let target = tmp.path().join("elsewhere").join("int8.mlp");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    std::fs::write(&target, b"old").unwrap();
    let link = tmp.path().join("link.mlp");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ok(&run(["quantize", "--model", &m, "--out", &p(&link)]));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), through);
    assert!(temporaries(tmp.path()).is_empty());
}

/// Item 2: an output that is an input (same path, a link, a hard link) is refused
/// before anything is written.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_model(tmp.path());
    let before = std::fs::read(&model).unwrap();
    let link = tmp.path().join("link.mlp");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    let hard = tmp.path().join("hard.mlp");
    std::fs::hard_link(&model, &hard).unwrap();
    for out in [&model, &link, &hard] {
        let o = run(["quantize", "--model", &p(&model), "--out", &p(out)]);
        fails(&o, &["the output is the input file", "model.mlp"]);
        assert_eq!(std::fs::read(&model).unwrap(), before);
    }

    // show --png onto one of the data's files.
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in std::fs::read_dir(bundled()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, data.join(f.file_name().unwrap())).unwrap();
    }
    let images = data.join("train-images-idx3-ubyte.gz");
    let data_before = std::fs::read(&images).unwrap();
    let o = run(["show", "--data", &p(&data), "--png", &p(&images)]);
    fails(
        &o,
        &["train-images-idx3-ubyte.gz", "the output is the input"],
    );

    // train: an output file of the run that links to a data file.
    let out = tmp.path().join("run");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&images, out.join("model.mlp")).unwrap();
    let o = run([
        "train",
        "--quiet",
        "--data",
        &p(&data),
        "--epochs",
        "1",
        "--out",
        &p(&out),
    ]);
    fails(&o, &["model.mlp", "train-images-idx3-ubyte.gz"]);
    assert_eq!(std::fs::read(&images).unwrap(), data_before);
    assert_eq!(files_in(&out), ["model.mlp"]);
}

/// The arguments of a short run on the bundled digits (30 quick epochs).
fn short_run(out: &Path) -> Vec<String> {
    [
        "train",
        "--limit",
        "1000",
        "--validation",
        "500",
        "--epochs",
        "30",
        "--out",
        &p(out),
    ]
    .map(String::from)
    .to_vec()
}

/// Item 3: the first Ctrl-C saves the last finished epoch's model and checkpoint,
/// says how to resume, exits 130 and leaves no temporary file; resuming gives the
/// uninterrupted run's exact model.
#[test]
fn ctrl_c_saves_the_last_epoch_and_resume_gives_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    ok(&run(short_run(&whole)));
    let expected = std::fs::read(whole.join("model.mlp")).unwrap();

    let out = tmp.path().join("interrupted");
    let mut child = Command::new(bin())
        .args(short_run(&out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // After the first epoch's line, a checkpoint exists.
    loop {
        let line = lines.next().expect("an epoch line").unwrap();
        if line.starts_with("epoch ") {
            break;
        }
    }
    sigint(&child);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        !rest.iter().any(|l| l.starts_with("test accuracy")),
        "the run finished before the signal: {rest:?}"
    );
    assert!(err.contains("interrupted during epoch"), "{err}");
    let checkpoint = out.join("checkpoint.ckpt");
    assert!(
        err.contains(&format!("train --resume {}", checkpoint.display())),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // No summary.json: it describes a finished run (its test accuracy).
    assert_eq!(
        files_in(&out),
        ["checkpoint.ckpt", "curves.svg", "metrics.csv", "model.mlp"]
    );
    let ck = mlp_train::checkpoint::Checkpoint::load(&checkpoint).unwrap();
    assert!(ck.epochs_done >= 1 && ck.epochs_done < 30);
    // The model written is the checkpoint's weights.
    let model = mlp_train::model::Mlp::load(&out.join("model.mlp")).unwrap();
    assert_eq!(model.params, ck.params);
    eprintln!(
        "interrupted after {} epochs; message: {}",
        ck.epochs_done,
        err.trim()
    );

    ok(&run(["train", "--quiet", "--resume", &p(&checkpoint)]));
    assert!(
        std::fs::read(out.join("model.mlp")).unwrap() == expected,
        "the resumed model differs from the uninterrupted run's"
    );
    assert!(temporaries(tmp.path()).is_empty());
}

/// Item 3: a second Ctrl-C quits at once (exit 130), even in the middle of a long
/// batch, and removes temporary files.
#[test]
fn a_second_ctrl_c_quits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // One batch of 7,500 images through two layers of 1,000: seconds per step.
    let mut child = Command::new(bin())
        .args([
            "train",
            "--hidden",
            "1000,1000",
            "--batch-size",
            "7500",
            "--epochs",
            "3",
            "--out",
            &p(&out),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sigint(&child);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("interrupted"), "{line}");
    let second = Instant::now();
    sigint(&child);
    let status = child.wait().unwrap();
    let waited = second.elapsed();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{line}{rest}");
    assert!(rest.contains("interrupted twice"), "{rest}");
    assert!(waited < Duration::from_millis(500), "took {waited:?}");
    assert!(temporaries(tmp.path()).is_empty());
}

/// Item 4: a train that fails on bad data or flags leaves no directory behind, not
/// even the parents it would have created; an existing directory stays.
#[test]
fn a_failed_train_leaves_no_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a").join("b").join("run");
    for (flags, needle) in [
        (vec!["--data", "/nowhere/at/all"], "/nowhere/at/all"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--batch-size", "0"], "--batch-size"),
        (vec!["--validation", "9000"], "validation"),
    ] {
        let mut args = vec!["train", "--quiet", "--out", out.to_str().unwrap()];
        args.extend(flags);
        fails(&run(&args), &[needle]);
        assert!(
            files_in(tmp.path()).is_empty(),
            "{args:?} left {:?}",
            files_in(tmp.path())
        );
    }
    // A Ctrl-C before the first epoch ends (here: as the data loads, right after the
    // first line) saves nothing and removes the directory.
    let mut child = Command::new(bin())
        .args(["train", "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    sigint(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(
        stderr(&output).contains("nothing was saved"),
        "{}",
        stderr(&output)
    );
    assert!(files_in(tmp.path()).is_empty());
    // An existing directory is kept.
    let existing = tmp.path().join("kept");
    std::fs::create_dir(&existing).unwrap();
    fails(
        &run([
            "train",
            "--epochs",
            "0",
            "--out",
            existing.to_str().unwrap(),
        ]),
        &["--epochs"],
    );
    assert!(existing.is_dir());
}

/// Item 5: a reader that closes the pipe early, and a full stdout.
#[test]
fn a_closed_or_full_stdout_does_not_panic() {
    // `show --count 1000 | head -1`: far more than a pipe's buffer.
    let mut child = Command::new(bin())
        .args(["show", "--count", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("label"), "{first}");
    } // the read end closes here
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");

    // `train | head -1`: training goes on and writes the model.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut child = Command::new(bin())
        .args([
            "train",
            "--epochs",
            "3",
            "--limit",
            "1000",
            "--out",
            &p(&out),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("training"), "{first}");
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
    assert_eq!(
        files_in(&out),
        [
            "checkpoint.ckpt",
            "curves.svg",
            "metrics.csv",
            "model.mlp",
            "summary.json"
        ]
    );

    // Standard output on a full device: one line, exit 1.
    for args in [vec!["show"], vec!["inspect", &p(&out.join("model.mlp"))]] {
        let output = Command::new(bin())
            .args(&args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        fails(&output, &["standard output", "No space left on device"]);
    }
    // train: the run finishes, writes its files, then reports the lost output.
    let full = tmp.path().join("full");
    let output = Command::new(bin())
        .args([
            "train",
            "--epochs",
            "2",
            "--limit",
            "1000",
            "--out",
            &p(&full),
        ])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    fails(
        &output,
        &["standard output", "No space left", "wrote its files"],
    );
    assert!(full.join("model.mlp").is_file());
}

/// Item 6: a copy of the binary, run in an empty directory, trains on the compiled-in
/// digits and writes there; nothing is read from or written to the source tree.
#[test]
fn a_copied_binary_works_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let copy = bin_dir.join("mlp-train");
    std::fs::copy(bin(), &copy).unwrap();
    let cwd = tmp.path().join("work");
    std::fs::create_dir(&cwd).unwrap();
    let source_runs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runs");
    let listing = |dir: &Path| -> Vec<(String, Option<std::time::SystemTime>)> {
        let mut all: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|run| {
                std::fs::read_dir(run.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|f| {
                (
                    f.path().display().to_string(),
                    f.metadata().and_then(|m| m.modified()).ok(),
                )
            })
            .collect();
        all.sort();
        all
    };
    let before = listing(&source_runs);
    let in_cwd = |args: &[&str]| {
        Command::new(&copy)
            .args(args)
            .current_dir(&cwd)
            .env_remove("MLP_DATA_DIR")
            .output()
            .unwrap()
    };
    let out = ok(&in_cwd(&["train", "--epochs", "1", "--limit", "2000"]));
    assert!(out.contains("data: the bundled digits"), "{out}");
    assert!(out.contains("runs/mnist-digits"), "{out}");
    assert_eq!(
        files_in(&cwd.join("runs/mnist-digits")),
        [
            "checkpoint.ckpt",
            "curves.svg",
            "metrics.csv",
            "model.mlp",
            "summary.json"
        ]
    );
    let eval = ok(&in_cwd(&[
        "evaluate",
        "--model",
        "runs/mnist-digits/model.mlp",
    ]));
    assert!(eval.contains("accuracy"), "{eval}");
    ok(&in_cwd(&["show", "--count", "1"]));
    ok(&in_cwd(&[
        "train",
        "--quiet",
        "--resume",
        "runs/mnist-digits/checkpoint.ckpt",
    ]));
    assert_eq!(
        listing(&source_runs),
        before,
        "the source tree's runs changed"
    );
    assert_eq!(files_in(&cwd), ["runs"]);
}

/// Item 11: `predict` classifies every image it can, names each one it cannot, and
/// exits 1 at the end.
#[test]
fn predict_goes_on_past_a_broken_image() {
    let tmp = tempfile::tempdir().unwrap();
    let model = small_model(tmp.path());
    let good = |name: &str| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            [b"P5\n2 2\n255\n".as_slice(), &[0, 255, 255, 0]].concat(),
        )
        .unwrap();
        p(&path)
    };
    let (a, c) = (good("a.pgm"), good("c.pgm"));
    let broken = tmp.path().join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let missing = p(&tmp.path().join("missing.png"));
    let o = run([
        "predict",
        "--model",
        &p(&model),
        &a,
        &p(&broken),
        &c,
        &missing,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("a.pgm: class") && out.contains("c.pgm: class"),
        "{out}"
    );
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains("broken.png"), "{err}");
    assert!(lines[1].contains("missing.png"), "{err}");
    assert!(lines[2].contains("2 of 4 images"), "{err}");
}

/// Item 12: `bench` without NumPy does not claim to interleave with it.
#[test]
fn bench_without_numpy_says_so() {
    let o = run([
        "bench",
        "--data",
        mlp_train::data::BUNDLED,
        "--rounds",
        "1",
        "--infer",
        "10",
        "--threads",
        "1",
    ]);
    let out = ok(&o);
    assert!(!out.contains("NumPy interleaved"), "{out}");
    assert!(out.contains("no NumPy reference"), "{out}");
}
