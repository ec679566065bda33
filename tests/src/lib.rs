//! Workspace-level tests live in `tests/tests/`; this library only holds shared helpers for them.
//!
//! [`firmware`]: building the firmware (`mlp-embedded/firmware`) for a target with
//! chosen assets, and running an ELF in QEMU under `timeout`.

pub mod firmware {
    //! Building and running the firmware from a test.

    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::Mutex;

    /// Every QEMU run ends within this many seconds, or the test fails.
    pub const QEMU_TIMEOUT_SECONDS: &str = "120";

    /// The workspace's root folder.
    pub fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .to_path_buf()
    }

    /// `mlp-embedded/firmware`.
    pub fn firmware_dir() -> PathBuf {
        workspace().join("mlp-embedded/firmware")
    }

    /// Where the tests write the firmware's default assets.
    pub fn assets_dir() -> PathBuf {
        firmware_dir().join("target/assets")
    }

    /// Builds the firmware for `target` with these `MLP_*` variables (every other
    /// `MLP_*` variable unset: defaults) and `bins`, the `cargo build` arguments that
    /// choose binaries (e.g. `["--bins"]`); returns the folder that then holds a copy of
    /// each binary it linked, `mlp-embedded/firmware/target/tests/<name>/`.
    ///
    /// Every configuration builds in the firmware's one target folder, so the
    /// dependencies compile once per target rather than once per configuration (a
    /// folder of their own each cost a minute of CPU); a changed variable relinks only
    /// the firmware crate. The copy is what keeps configurations apart: the next build
    /// overwrites the target folder's binaries.
    pub fn build(target: &str, name: &str, bins: &[&str], vars: &[(&str, String)]) -> PathBuf {
        let mut args = vec!["--target", target];
        args.extend_from_slice(bins);
        let removed = [
            "MLP_MODEL",
            "MLP_IMAGES",
            "MLP_EXPECTED",
            "MLP_LAYERS",
            "MLP_BOARD",
            "MLP_INT8_MODEL",
            "MLP_INT8_IMAGES",
            "MLP_INT8_EXPECTED",
            "MLP_TABULAR_LAYERS",
            "MLP_TABULAR_MODEL",
            "MLP_TABULAR_INT8_MODEL",
            "MLP_TABULAR_FEATURES",
        ];
        let out = firmware_dir().join("target/tests").join(name);
        build_and_copy(
            &firmware_dir(),
            &firmware_dir().join("target"),
            &args,
            &removed,
            vars,
            &out,
        );
        out
    }

    /// `cargo build --release --locked ARGS` in `crate_dir` with `CARGO_TARGET_DIR`
    /// set to `target_dir`, the `removed` variables unset and `vars` set; then copies
    /// every binary it linked into `out`. One build at a time in this process: a build
    /// between another's link and its copy would hand that one the wrong binary.
    ///
    /// Each copy replaces its file by a rename: two tests that build the same
    /// configuration (the M4F binary for the M4F and the M7) may run one while the
    /// other copies it again, and QEMU must never find it missing or half written.
    pub fn build_and_copy(
        crate_dir: &Path,
        target_dir: &Path,
        args: &[&str],
        removed: &[&str],
        vars: &[(&str, String)],
        out: &Path,
    ) {
        static ONE_BUILD_AT_A_TIME: Mutex<()> = Mutex::new(());
        // A test that failed while building leaves the lock poisoned; the folder is
        // still consistent (cargo's own lock), so the next build may go on.
        let _guard = ONE_BUILD_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(crate_dir)
            .args(["build", "--release", "--locked"])
            .arg("--message-format=json-render-diagnostics")
            .args(args)
            .env("CARGO_TARGET_DIR", target_dir)
            .stdout(Stdio::piped());
        for var in removed {
            command.env_remove(var);
        }
        for (var, value) in vars {
            command.env(var, value);
        }
        let output = command
            .spawn()
            .and_then(|child| child.wait_with_output())
            .expect("run cargo build");
        assert!(
            output.status.success(),
            "cargo build {args:?} in {} failed",
            crate_dir.display()
        );
        fs::create_dir_all(out).unwrap();
        let mut copied = 0;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let message: serde_json::Value =
                serde_json::from_str(line).expect("cargo's JSON messages");
            if let Some(executable) = message["executable"].as_str() {
                let executable = Path::new(executable);
                let name = executable.file_name().expect("a binary's file name");
                let partial = out.join(".partial");
                fs::copy(executable, &partial).unwrap();
                fs::rename(&partial, out.join(name)).unwrap();
                copied += 1;
            }
        }
        assert!(copied > 0, "cargo build {args:?} linked no binary");
    }

    /// What a QEMU run printed and whether it exited with status 0.
    pub struct Run {
        /// Exit status 0.
        pub success: bool,
        /// Everything printed over semihosting.
        pub stdout: String,
    }

    /// Runs an ELF in QEMU with the given machine arguments, inside `timeout`; fails the
    /// test if it timed out.
    pub fn run_qemu(machine: &[&str], elf: &Path, extra: &[String]) -> Run {
        let output = Command::new("timeout")
            .args([QEMU_TIMEOUT_SECONDS, "qemu-system-arm"])
            .args(machine)
            .args([
                "-nographic",
                "-semihosting-config",
                "enable=on,target=native",
            ])
            .args(extra)
            .arg("-kernel")
            .arg(elf)
            .output()
            .expect("run qemu-system-arm (scripts/setup.sh installs it)");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_ne!(
            output.status.code(),
            Some(124),
            "{} ({machine:?}) timed out:\n{stdout}",
            elf.display()
        );
        Run {
            success: output.status.success(),
            stdout,
        }
    }
}
