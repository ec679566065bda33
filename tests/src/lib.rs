//! Workspace-level tests live in `tests/tests/`; this library only holds shared helpers for them.
//!
//! [`firmware`]: building the firmware (`mlp-embedded/firmware`) for a target with
//! chosen assets, and running an ELF in QEMU under `timeout`.

pub mod firmware {
    //! Building and running the firmware from a test.

    use std::path::{Path, PathBuf};
    use std::process::Command;

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

    /// Builds the firmware for `target` into `target_dir` (`bins`: the `cargo build`
    /// arguments that choose binaries, e.g. `["--bins"]`), with these `MLP_*` variables
    /// and every other `MLP_*` variable unset (defaults).
    pub fn build(target: &str, target_dir: &Path, bins: &[&str], vars: &[(&str, String)]) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(firmware_dir())
            .args(["build", "--release", "--locked", "--target", target])
            .args(bins)
            .env("CARGO_TARGET_DIR", target_dir);
        for var in [
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
        ] {
            command.env_remove(var);
        }
        for (var, value) in vars {
            command.env(var, value);
        }
        let status = command.status().expect("run cargo build for the firmware");
        assert!(status.success(), "firmware build for {target} failed");
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
