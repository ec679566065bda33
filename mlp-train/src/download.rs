//! The `download` command: fetches the four full-MNIST files from a mirror into a
//! cache directory and checks each against its SHA-256.
//!
//! Each file is streamed to a temporary name in the cache directory while it is
//! hashed, synced, checked, and only then renamed to its final name; a wrong sum, an
//! HTTP error or a dropped connection removes the temporary file, so the cache never
//! holds a half-written or unverified file under a real name. Files already present
//! with the right sum are not fetched again.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::output::outln;

/// The mirror used when none is given (the original site is often unavailable).
pub const DEFAULT_MIRROR: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";

/// A file to fetch and its expected SHA-256 (lower-case hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// File name on the mirror and in the cache.
    pub name: String,
    /// Expected SHA-256, 64 lower-case hex digits.
    pub sha256: String,
}

/// The four original MNIST files and their published SHA-256 sums.
pub fn mnist_files() -> Vec<FileSpec> {
    [
        (
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaaee7df6c4d3da1d2",
        ),
    ]
    .into_iter()
    .map(|(name, sha256)| FileSpec {
        name: name.to_owned(),
        sha256: sha256.to_owned(),
    })
    .collect()
}

/// Applies `NAME=HEX` overrides (from `--sha256`) to the expected sums.
pub fn apply_overrides(files: &mut [FileSpec], overrides: &[String]) -> Result<()> {
    for o in overrides {
        let (name, hex) = o
            .split_once('=')
            .with_context(|| format!("--sha256 {o}: expected NAME=HEX"))?;
        let hex = hex.to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--sha256 {o}: the sum must be 64 hex digits");
        }
        let file = files
            .iter_mut()
            .find(|f| f.name == name)
            .with_context(|| format!("--sha256 {o}: {name} is not one of the files to download"))?;
        file.sha256 = hex;
    }
    Ok(())
}

/// SHA-256 of a file as lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// It was already in the cache with the right sum.
    Cached(PathBuf),
    /// It was downloaded and verified.
    Downloaded(PathBuf),
}

/// Downloads every file in `files` from `mirror` (a URL prefix; a missing trailing
/// slash is added) into `dir`, verifying sums. Stops at the first failure.
pub fn download_all(
    mirror: &str,
    dir: &Path,
    files: &[FileSpec],
    verbose: bool,
) -> Result<Vec<Fetched>> {
    fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create cache directory: {e}", dir.display()))?;
    let agent = http::Agent::new();
    let base = if mirror.ends_with('/') {
        mirror.to_owned()
    } else {
        format!("{mirror}/")
    };
    let mut done = Vec::new();
    for f in files {
        let dest = dir.join(&f.name);
        if dest.is_file() && sha256_file(&dest).ok().as_deref() == Some(f.sha256.as_str()) {
            if verbose {
                outln!("{}: already downloaded, checksum ok", dest.display());
            }
            done.push(Fetched::Cached(dest));
            continue;
        }
        let url = format!("{base}{}", f.name);
        if verbose {
            outln!("fetching {url}");
        }
        fetch_one(&agent, &url, &dest, &f.sha256)?;
        if verbose {
            outln!("{}: downloaded, checksum ok", dest.display());
        }
        done.push(Fetched::Downloaded(dest));
    }
    Ok(done)
}

fn fetch_one(agent: &http::Agent, url: &str, dest: &Path, sha256: &str) -> Result<()> {
    // Replace only a regular file: a link is followed to the file it names.
    let dest = match crate::fsio::output_target(dest) {
        Ok(crate::fsio::Target::Replace(path)) => path,
        Ok(crate::fsio::Target::WriteThrough(path)) => bail!(
            "{}: is a device or FIFO, not a file the cache can keep",
            path.display()
        ),
        Err(e) => bail!("{}: {e}", dest.display()),
    };
    let dest = dest.as_path();
    let temp = crate::fsio::temp_path_for(dest);
    crate::fsio::track_temporary(&temp, true);
    let result = (|| -> Result<()> {
        let mut reader = agent.get(url)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| format!("{}: cannot create file", temp.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => bail!("{url}: download failed: {e}"),
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .with_context(|| format!("{}: cannot write", temp.display()))?;
        }
        file.sync_all()
            .with_context(|| format!("{}: cannot sync", temp.display()))?;
        drop(file);
        let got = hex(&hasher.finalize());
        if got != sha256 {
            bail!("{url}: SHA-256 mismatch (expected {sha256}, got {got}); the file was not kept");
        }
        fs::rename(&temp, dest)
            .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
        crate::fsio::sync_parent(dest);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    crate::fsio::track_temporary(&temp, false);
    result
}

/// The HTTP client behind `download`, or, in a build without the `download` feature,
/// a stand-in that says so when a file has to be fetched (cached files still pass).
mod http {
    use anyhow::Result;

    /// An HTTPS client with connect and receive time limits.
    #[cfg(feature = "download")]
    pub struct Agent(ureq::Agent);

    #[cfg(feature = "download")]
    impl Agent {
        /// A client that gives up on a silent server rather than hang.
        pub fn new() -> Self {
            use std::time::Duration;
            Self(
                ureq::Agent::config_builder()
                    .timeout_connect(Some(Duration::from_secs(20)))
                    .timeout_recv_body(Some(Duration::from_secs(60)))
                    .build()
                    .into(),
            )
        }

        /// The body of a successful GET of `url`.
        pub fn get(&self, url: &str) -> Result<impl std::io::Read> {
            let response = self.0.get(url).call().map_err(|e| match e {
                ureq::Error::StatusCode(code) => {
                    anyhow::anyhow!("{url}: server answered HTTP {code}")
                }
                other => anyhow::anyhow!("{url}: {other}"),
            })?;
            Ok(response.into_body().into_reader())
        }
    }

    /// No client: this build leaves out the HTTPS stack.
    #[cfg(not(feature = "download"))]
    pub struct Agent;

    #[cfg(not(feature = "download"))]
    impl Agent {
        /// The stand-in.
        pub fn new() -> Self {
            Self
        }

        /// Always an error that names the missing feature.
        pub fn get(&self, url: &str) -> Result<std::io::Empty> {
            anyhow::bail!(
                "{url}: this mlp-train was built without the `download` feature \
                 (cargo build --features download)"
            )
        }
    }
}
