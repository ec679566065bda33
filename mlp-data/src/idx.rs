//! Reader for the IDX files that MNIST, Fashion-MNIST and KMNIST ship in, plain or
//! gzip-compressed.
//!
//! An IDX file is a big-endian header — magic number (2051 = images with three
//! dimensions, 2049 = labels with one), then one `u32` per dimension — followed by the
//! unsigned bytes of the data. The reader checks the magic number, that the
//! dimensions are non-zero and do not overflow, that the file holds exactly as many
//! bytes as the header promises, and (for labels) that every label fits the class
//! count. Every error names the file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Magic number of an IDX file of unsigned-byte images: `[count, rows, cols]`.
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of unsigned-byte labels: `[count]`.
pub const LABELS_MAGIC: u32 = 2049;
/// Largest image side accepted; guards against absurd headers.
pub const MAX_SIDE: u32 = 4096;

/// A problem with an IDX file; `Display` names the file and the problem on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdxError {
    /// The file could not be opened or read (including a broken gzip stream).
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The magic number is not the one expected.
    #[error("{path}: bad magic number {found} (expected {expected}: {what})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number wanted.
        expected: u32,
        /// What kind of file was wanted.
        what: &'static str,
    },
    /// A dimension is zero or too large.
    #[error("{path}: bad dimensions {dims:?}")]
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// The dimensions read from the header.
        dims: Vec<u32>,
    },
    /// The file ends before the header or the data it promises.
    #[error("{path}: truncated: the header promises {expected} data bytes, the file has {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes promised.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The file has bytes after the data the header promises.
    #[error("{path}: trailing bytes after the {expected} data bytes the header promises")]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes promised.
        expected: usize,
    },
    /// A label is not below the class count.
    #[error("{path}: label {label} at index {index} is not below the class count {classes}")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Index of the offending label.
        index: usize,
        /// The label.
        label: u8,
        /// The class count.
        classes: usize,
    },
}

/// Images read from an IDX file: `count` images of `rows × cols` bytes, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count × rows × cols` pixel bytes.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.pixels[index * n..(index + 1) * n]
    }
}

/// Opens `path`, transparently un-gzipping it when it starts with the gzip magic.
fn open(path: &Path) -> Result<Box<dyn Read>, IdxError> {
    let io_err = |source| IdxError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    decoder(BufReader::new(file)).map_err(io_err)
}

/// `reader`'s bytes, un-gzipped when they start with the gzip magic.
fn decoder<'a, R: std::io::BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = reader.fill_buf()?.get(..2).map(|h| [h[0], h[1]]);
    if head == Some([0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// Reads up to `buf.len()` bytes; returns how many were read (fewer only at the end).
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the header and exactly the data it promises from `path`, or from `bytes`
/// (an in-memory file that `path` names in errors); returns dims and data.
fn read_idx(
    path: &Path,
    bytes: Option<&[u8]>,
    magic: u32,
    ndims: usize,
    what: &'static str,
) -> Result<(Vec<u32>, Vec<u8>), IdxError> {
    let io_err = |source| IdxError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = match bytes {
        Some(bytes) => decoder(bytes).map_err(io_err)?,
        None => open(path)?,
    };
    let header_len = 4 + 4 * ndims;
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut *reader, &mut header).map_err(io_err)?;
    if got < 4 {
        return Err(IdxError::Truncated {
            path: path.to_owned(),
            expected: header_len,
            found: got,
        });
    }
    let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic {
        return Err(IdxError::BadMagic {
            path: path.to_owned(),
            found,
            expected: magic,
            what,
        });
    }
    if got < header_len {
        return Err(IdxError::Truncated {
            path: path.to_owned(),
            expected: header_len,
            found: got,
        });
    }
    let dims: Vec<u32> = header[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bad = || IdxError::BadDimensions {
        path: path.to_owned(),
        dims: dims.clone(),
    };
    if dims.iter().skip(1).any(|&d| d == 0 || d > MAX_SIDE) {
        return Err(bad());
    }
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .filter(|&t| t <= (1usize << 34))
        .ok_or_else(bad)?;
    let mut data = Vec::new();
    // `take` bounds the read, so a lying header cannot make us allocate without limit
    // beyond the promised size; one extra byte detects trailing data.
    let read = (&mut *reader)
        .take(total as u64)
        .read_to_end(&mut data)
        .map_err(io_err)?;
    if read < total {
        return Err(IdxError::Truncated {
            path: path.to_owned(),
            expected: total,
            found: read,
        });
    }
    let mut extra = [0u8; 1];
    if read_full(&mut *reader, &mut extra).map_err(io_err)? != 0 {
        return Err(IdxError::TrailingBytes {
            path: path.to_owned(),
            expected: total,
        });
    }
    Ok((dims, data))
}

/// Reads an IDX image file (magic 2051, dimensions `[count, rows, cols]`).
pub fn read_images(path: &Path) -> Result<Images, IdxError> {
    images(path, None)
}

/// [`read_images`] for a file already in memory (plain or gzip); `name` names it in
/// errors.
pub fn parse_images(bytes: &[u8], name: &Path) -> Result<Images, IdxError> {
    images(name, Some(bytes))
}

fn images(path: &Path, bytes: Option<&[u8]>) -> Result<Images, IdxError> {
    let (dims, pixels) = read_idx(path, bytes, IMAGES_MAGIC, 3, "an image file")?;
    Ok(Images {
        count: dims[0] as usize,
        rows: dims[1] as usize,
        cols: dims[2] as usize,
        pixels,
    })
}

/// Reads an IDX label file (magic 2049, dimension `[count]`) and checks that every
/// label is below `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>, IdxError> {
    labels(path, None, classes)
}

/// [`read_labels`] for a file already in memory (plain or gzip); `name` names it in
/// errors.
pub fn parse_labels(bytes: &[u8], name: &Path, classes: usize) -> Result<Vec<u8>, IdxError> {
    labels(name, Some(bytes), classes)
}

fn labels(path: &Path, bytes: Option<&[u8]>, classes: usize) -> Result<Vec<u8>, IdxError> {
    let (_, labels) = read_idx(path, bytes, LABELS_MAGIC, 1, "a label file")?;
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= classes)
    {
        return Err(IdxError::LabelOutOfRange {
            path: path.to_owned(),
            index,
            label,
            classes,
        });
    }
    Ok(labels)
}

/// Encodes images as IDX bytes (used by tests and tools that make small data sets).
pub fn encode_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [IMAGES_MAGIC, count, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Encodes labels as IDX bytes (used by tests and tools that make small data sets).
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Gzip-compresses bytes (used by tests and tools that write `.gz` IDX files).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_plain_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let px: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
        let raw = encode_images(2, 3, 4, &px);
        for p in [
            write(dir.path(), "i", &raw),
            write(dir.path(), "i.gz", &gzip(&raw)),
        ] {
            let im = read_images(&p).unwrap();
            assert_eq!((im.count, im.rows, im.cols), (2, 3, 4));
            assert_eq!(im.pixels, px);
            assert_eq!(im.image(1), &px[12..]);
        }
        let l = write(dir.path(), "l.gz", &gzip(&encode_labels(&[3, 9])));
        assert_eq!(read_labels(&l, 10).unwrap(), vec![3, 9]);
        // The same files from memory.
        for bytes in [raw.clone(), gzip(&raw)] {
            assert_eq!(parse_images(&bytes, Path::new("mem")).unwrap().pixels, px);
        }
        let labels = gzip(&encode_labels(&[3, 9]));
        assert_eq!(
            parse_labels(&labels, Path::new("m"), 10).unwrap(),
            vec![3, 9]
        );
        let e = parse_labels(&labels, Path::new("named"), 5).unwrap_err();
        assert!(e.to_string().contains("named"), "{e}");
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode_images(2, 2, 2, &[0; 8]);
        let msg = |e: IdxError| e.to_string();
        // Wrong magic: a label file read as images.
        let p = write(dir.path(), "labels-as-images", &encode_labels(&[1, 2]));
        let e = msg(read_images(&p).unwrap_err());
        assert!(
            e.contains("labels-as-images") && e.contains("bad magic number 2049"),
            "{e}"
        );
        // Truncated data.
        let p = write(dir.path(), "short", &raw[..raw.len() - 1]);
        let e = msg(read_images(&p).unwrap_err());
        assert!(e.contains("short") && e.contains("truncated"), "{e}");
        // Truncated header.
        let p = write(dir.path(), "tiny", &raw[..6]);
        assert!(msg(read_images(&p).unwrap_err()).contains("truncated"));
        // Trailing bytes.
        let mut long = raw.clone();
        long.push(0);
        let p = write(dir.path(), "long", &long);
        assert!(msg(read_images(&p).unwrap_err()).contains("trailing bytes"));
        // Zero-sized side.
        let p = write(dir.path(), "zero", &encode_images(2, 0, 2, &[]));
        assert!(msg(read_images(&p).unwrap_err()).contains("bad dimensions"));
        // Label out of range.
        let p = write(dir.path(), "lab", &encode_labels(&[1, 10]));
        let e = msg(read_labels(&p, 10).unwrap_err());
        assert!(e.contains("label 10 at index 1"), "{e}");
        // Broken gzip stream.
        let mut gz = gzip(&raw);
        gz.truncate(gz.len() / 2);
        let p = write(dir.path(), "broken.gz", &gz);
        let e = msg(read_images(&p).unwrap_err());
        assert!(e.contains("broken.gz"), "{e}");
        // Missing file.
        let e = msg(read_images(&dir.path().join("nope")).unwrap_err());
        assert!(e.contains("nope") && e.contains("cannot read"), "{e}");
    }
}
