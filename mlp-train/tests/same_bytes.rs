//! Same seed, same model, on every machine: the runs listed in `golden/models.txt`
//! train, with every instruction set this CPU runs (the portable one included) and on
//! 1 and 2 threads, a model file whose SHA-256 is the one committed there. The digests
//! were written on one machine; any other (AVX2-only, AVX-512, Arm under QEMU in
//! `scripts/aarch64.sh`) must reproduce them.
//!
//! After a deliberate change of the arithmetic, `MLP_GOLDEN_BLESS=1 cargo test -p
//! mlp-train --test integration same_bytes::` rewrites the digests (and still checks
//! that every path and thread count agrees).

use std::path::{Path, PathBuf};

use mlp_kernels::Isa;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/models.txt")
}

/// One golden line: the digest and the `train` arguments.
struct Golden {
    digest: String,
    args: Vec<String>,
}

fn goldens(text: &str) -> Vec<Golden> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace().map(str::to_owned);
            let digest = words.next().expect("a digest");
            Golden {
                digest,
                args: words.collect(),
            }
        })
        .collect()
}

/// Trains `args` with `kernels` on `threads` threads into a fresh directory and
/// returns the model file's SHA-256.
fn train(args: &[String], kernels: &str, threads: usize) -> String {
    let out = tempfile::tempdir().unwrap();
    let mut argv: Vec<String> = vec!["mlp-train".into(), "train".into()];
    for a in args {
        // Data paths are relative to the repository root.
        argv.push(if a.starts_with("data/") {
            root().join(a).display().to_string()
        } else {
            a.clone()
        });
    }
    argv.extend(["--threads".into(), threads.to_string(), "--quiet".into()]);
    if !args.iter().any(|a| a == "--kernels") {
        argv.extend(["--kernels".into(), kernels.into()]);
    }
    argv.extend(["--out".into(), out.path().display().to_string()]);
    let cli = <mlp_train::cli::Cli as clap::Parser>::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    mlp_train::cli::run(cli).unwrap_or_else(|e| panic!("{argv:?}: {e:#}"));
    let bytes = std::fs::read(out.path().join("model.mlp")).unwrap();
    format!("{:x}", Sha256::digest(&bytes))
}

#[test]
fn every_instruction_set_and_thread_count_trains_the_committed_bytes() {
    let text = std::fs::read_to_string(golden_file()).unwrap();
    let lines = goldens(&text);
    assert!(lines.len() >= 4, "golden/models.txt lists the runs");
    let bless = std::env::var_os("MLP_GOLDEN_BLESS").is_some();
    let mut blessed = text.clone();
    for g in &lines {
        let core = g.args.iter().any(|a| a == "core");
        let kernels: Vec<&str> = if core {
            vec!["core"]
        } else {
            Isa::supported().into_iter().map(Isa::name).collect()
        };
        let mut first: Option<(String, String)> = None;
        for k in kernels {
            for threads in [1, 2] {
                let digest = train(&g.args, k, threads);
                let what = format!("{k} on {threads} threads: {}", g.args.join(" "));
                match &first {
                    None => first = Some((digest, what)),
                    Some((d, w)) => assert_eq!(&digest, d, "{what} differs from {w}"),
                }
            }
        }
        let (digest, what) = first.unwrap();
        if bless {
            blessed = blessed.replacen(&g.digest, &digest, 1);
        } else {
            assert_eq!(digest, g.digest, "{what}: not the committed digest");
        }
    }
    if bless {
        std::fs::write(golden_file(), blessed).unwrap();
    }
}

/// Sanity of the list itself: every line's arguments parse, and the fast runs do not
/// pin an instruction set (the test varies it).
#[test]
fn golden_lines_parse() {
    let text = std::fs::read_to_string(golden_file()).unwrap();
    for g in goldens(&text) {
        assert_eq!(g.digest.len(), 64, "{}", g.digest);
        assert!(g.digest.chars().all(|c| c.is_ascii_hexdigit()));
        let mut argv = vec!["mlp-train".to_owned(), "train".to_owned()];
        argv.extend(g.args.iter().cloned());
        <mlp_train::cli::Cli as clap::Parser>::try_parse_from(&argv).unwrap();
        let kernels = g.args.iter().position(|a| a == "--kernels");
        if let Some(i) = kernels {
            assert_eq!(g.args[i + 1], "core", "only core is pinned");
        }
    }
}
