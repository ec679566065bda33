//! Atomic file output: every file the trainer writes (model, log, chart, checkpoint,
//! downloads) goes to a temporary name in the same directory, is flushed and synced,
//! and only then renamed over the final name. A crash or an error never leaves a
//! half-written file under the final name, and the temporary is removed on error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of temporary files; the repository's `.gitignore` ignores `*.tmp`.
pub const TEMP_SUFFIX: &str = ".tmp";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path next to `path`: `.<name>.<pid>-<n>.tmp` in the same directory, so
/// the final rename never crosses a file system.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_owned());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = format!(".{name}.{}-{n}{TEMP_SUFFIX}", std::process::id());
    path.with_file_name(temp)
}

/// Writes a file atomically: `write` fills a buffered writer on a temporary file,
/// which is then synced and renamed to `path`. On any error the temporary file is
/// removed and `path` is untouched.
pub fn write_atomic<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let temp = temp_path_for(path);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        sync_parent(path);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// [`write_atomic`] for a byte buffer already in memory.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |out| out.write_all(bytes))
}

/// Syncs the directory that holds `path`, so the rename itself survives a power cut.
/// Best effort: some file systems do not support syncing a directory.
pub fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// Creates `dir` and its parents, with an error message that names it.
pub fn create_output_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create output directory: {e}", dir.display()))?;
    // Probe that we can create files there before spending minutes training.
    let probe = temp_path_for(&dir.join("probe"));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "{}: output directory is not writable: {e}",
            dir.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_bytes_atomic(&path, b"one").unwrap();
        write_bytes_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_bytes_atomic(&path, b"old").unwrap();
        let err = write_atomic(&path, |out| {
            out.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
