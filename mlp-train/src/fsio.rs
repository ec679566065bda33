//! Atomic file output: every file the trainer writes (model, log, chart, checkpoint,
//! downloads) goes to a temporary name in the same directory, is flushed and synced,
//! and only then renamed over the final name. A crash or an error never leaves a
//! half-written file under the final name, and the temporary is removed on error.
//!
//! The rename only ever replaces a regular file. An output path that is a symbolic
//! link is followed, and the file it points to is replaced (the link stays); one that
//! is a character or block device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe)
//! is written through, not replaced; a directory or a socket is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Suffix of temporary files; the repository's `.gitignore` ignores `*.tmp`.
pub const TEMP_SUFFIX: &str = ".tmp";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temporary files being written right now, so that an exit on a second Ctrl-C can
/// remove them ([`remove_temporaries`]).
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

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

/// Records `temp` as being written (`true`) or done with (`false`).
pub fn track_temporary(temp: &Path, in_flight: bool) {
    let mut list = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    if in_flight {
        list.push(temp.to_path_buf());
    } else {
        list.retain(|p| p != temp);
    }
}

/// Removes every temporary file being written (for an immediate exit). Does not wait
/// for a writer that holds the list.
pub fn remove_temporaries() {
    if let Ok(list) = IN_FLIGHT.try_lock() {
        for temp in list.iter() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// How an output path is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A regular file, or nothing yet: written atomically at this path (the end of
    /// any chain of symbolic links).
    Replace(PathBuf),
    /// A character or block device or a FIFO: opened and written through.
    WriteThrough(PathBuf),
}

/// Decides how to write `path` without replacing anything but a regular file: follows
/// symbolic links (up to 40) to the file they name, and tells devices and FIFOs apart.
///
/// # Errors
/// If `path` is (or links to) a directory or a socket, or a link cannot be read.
pub fn output_target(path: &Path) -> io::Result<Target> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let meta = match fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::Replace(current)),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&current)?;
            current = match current.parent() {
                Some(parent) if link.is_relative() => parent.join(link),
                _ => link,
            };
            continue;
        }
        if kind.is_file() {
            return Ok(Target::Replace(current));
        }
        if kind.is_dir() {
            return Err(io::Error::other("is a directory"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
                return Ok(Target::WriteThrough(current));
            }
        }
        return Err(io::Error::other(
            "is not a regular file, device or FIFO; refusing to replace it",
        ));
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Writes a file atomically: `write` fills a buffered writer on a temporary file,
/// which is then synced and renamed to `path`. On any error the temporary file is
/// removed and `path` is untouched. A symbolic link is followed and its target
/// replaced; a device or FIFO is written through ([`output_target`]).
pub fn write_atomic<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let path = match output_target(path)? {
        Target::Replace(path) => path,
        Target::WriteThrough(device) => {
            let file = OpenOptions::new().write(true).open(device)?;
            let mut out = BufWriter::new(file);
            write(&mut out)?;
            return out.flush();
        }
    };
    let path = path.as_path();
    let temp = temp_path_for(path);
    track_temporary(&temp, true);
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
    track_temporary(&temp, false);
    result
}

/// The most a model or checkpoint file read by [`read_input`] may hold: far more than
/// any network this program trains (a microcontroller's flash is a few MiB).
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Reads a whole input file (model, checkpoint) that starts with `magic`, with
/// bounds: a regular file larger than [`MAX_INPUT_BYTES`] is refused before it is
/// read, and a stream (a device such as `/dev/zero`, a FIFO, `<(...)`) is read only
/// as far as its first bytes when they are not `magic` (the caller's decoder then
/// says what is wrong with them) and never past the limit. Without this, an endless
/// device is read until memory runs out.
///
/// # Errors
/// An I/O error, or one saying the input is too large.
pub fn read_input(path: &Path, magic: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let too_large = || {
        io::Error::other(format!(
            "larger than {} MiB, more than any model or checkpoint",
            MAX_INPUT_BYTES >> 20
        ))
    };
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() {
        if meta.len() > MAX_INPUT_BYTES {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
        return if bytes.len() as u64 > MAX_INPUT_BYTES {
            Err(too_large())
        } else {
            Ok(bytes)
        };
    }
    let mut reader = file.take(MAX_INPUT_BYTES + 1);
    let mut bytes = Vec::new();
    (&mut reader)
        .take(magic.len() as u64)
        .read_to_end(&mut bytes)?;
    if bytes != magic {
        return Ok(bytes);
    }
    reader.read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// True when `a` and `b` are the same existing file (same device and inode on Unix;
/// the same canonical path elsewhere), whatever the links and spellings.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Refuses to write `output` when it is the same file as one of `inputs`: writing it
/// would destroy an input before (or while) it is read.
///
/// # Errors
/// Names the output and the input it would overwrite.
pub fn refuse_overwriting_input(output: &Path, inputs: &[PathBuf]) -> anyhow::Result<()> {
    for input in inputs {
        if same_file(output, input) {
            anyhow::bail!(
                "{}: the output is the input file {}; choose another output path",
                output.display(),
                input.display()
            );
        }
    }
    Ok(())
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

/// Creates `dir` and its parents, with an error message that names it, and checks
/// that files can be created there. Returns the directories it created, deepest
/// first, for [`remove_empty_dirs`] if the command then fails.
pub fn create_output_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let created: Vec<PathBuf> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| fs::symlink_metadata(d).is_err())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create output directory: {e}", dir.display()))?;
    // Probe that we can create files there before spending minutes training.
    let probe = temp_path_for(&dir.join("probe"));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(created)
        }
        Err(e) => {
            remove_empty_dirs(&created);
            Err(anyhow::anyhow!(
                "{}: output directory is not writable: {e}",
                dir.display()
            ))
        }
    }
}

/// Removes the directories `created` (deepest first) that are still empty: what a
/// failed command leaves of the output directory it created. A directory that holds
/// anything stays.
pub fn remove_empty_dirs(created: &[PathBuf]) {
    for dir in created {
        if fs::remove_dir(dir).is_err() {
            break;
        }
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

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.bin");
        write_bytes_atomic(&real, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        write_bytes_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        // A dangling link creates the file it names.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("created.bin", &dangling).unwrap();
        write_bytes_atomic(&dangling, b"x").unwrap();
        assert_eq!(fs::read(dir.path().join("created.bin")).unwrap(), b"x");
        assert!(same_file(&link, &real));
        assert!(!same_file(&link, &dangling));
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_written_through() {
        assert_eq!(
            output_target(Path::new("/dev/null")).unwrap(),
            Target::WriteThrough("/dev/null".into())
        );
        write_bytes_atomic(Path::new("/dev/null"), b"gone").unwrap();
        use std::os::unix::fs::FileTypeExt;
        let kind = fs::symlink_metadata("/dev/null").unwrap().file_type();
        assert!(kind.is_char_device());
        let dir = tempfile::tempdir().unwrap();
        let e = write_bytes_atomic(dir.path(), b"x").unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_input_is_read_only_as_far_as_its_first_bytes() {
        // /dev/zero never ends: without bounds this read would take all memory.
        let bytes = read_input(Path::new("/dev/zero"), b"MLPW").unwrap();
        assert_eq!(bytes, [0, 0, 0, 0]);
        assert_eq!(read_input(Path::new("/dev/null"), b"MLPW").unwrap(), b"");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        fs::write(&path, b"MLPW and the rest").unwrap();
        assert_eq!(read_input(&path, b"MLPW").unwrap(), b"MLPW and the rest");
        // A regular file is read whole, whatever it starts with.
        fs::write(&path, b"hello").unwrap();
        assert_eq!(read_input(&path, b"MLPW").unwrap(), b"hello");
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
