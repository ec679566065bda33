//! Crash safety: the trainer killed with SIGKILL at many different moments never
//! leaves a damaged model or checkpoint behind, and a full disk fails cleanly.

mod common;
use common::*;
use mlp_train::checkpoint::Checkpoint;
use mlp_train::fsio::TEMP_SUFFIX;
use std::path::Path;
use std::process::Command;
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
                ["model.mlp", "checkpoint.ckpt", "metrics.csv", "curves.svg"]
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
        eprintln!("SKIPPED: cannot mount a small tmpfs here (not root?)");
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
