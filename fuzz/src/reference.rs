//! An independent reader of version-1 model files, written from `docs/FORMAT.md` alone
//! (no postcard, no serde, a bitwise CRC): the fuzz targets compare its verdict with
//! `mlp_core::format::ModelView::decode` on every input.
//!
//! It only has an opinion on version-1 files; for any other version [`parse`] returns
//! `None` and the targets check only that decoding does not panic.

use mlp_core::format::ModelView;

/// What the spec says a valid version-1 file holds.
#[derive(Debug)]
pub struct Model {
    /// Layer sizes, input first.
    pub sizes: Vec<u32>,
    /// The CRC-32 in the header.
    pub crc: u32,
    /// Where the payload starts.
    pub payload_offset: usize,
    /// Whether every varint is minimal and the payload is 4-byte aligned: the bytes the
    /// writer produces for this model.
    pub canonical: bool,
}

impl Model {
    /// Panics unless `view` holds what the spec reads from the same file.
    pub fn assert_matches(&self, view: &ModelView<'_>) {
        assert_eq!(view.version(), 1);
        assert_eq!(view.element_type().code(), 0);
        assert_eq!(view.layer_sizes(), &self.sizes[..]);
        assert_eq!(view.payload_crc(), self.crc);
        assert_eq!(view.payload().len(), payload_len(&self.sizes));
    }
}

/// `None`: not a version-1 file (no opinion). `Some(Err(why))`: the spec rejects it.
pub fn parse(bytes: &[u8]) -> Option<Result<Model, &'static str>> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        minimal: true,
    };
    if bytes.len() < 4 {
        return Some(Err("shorter than the magic"));
    }
    if bytes[..4] != *b"MLPW" {
        return Some(Err("bad magic"));
    }
    reader.pos = 4;
    let version = match reader.varint(16) {
        Ok(v) => v,
        Err(why) => return Some(Err(why)),
    };
    if version != 1 {
        return None;
    }
    Some(parse_v1(reader))
}

fn parse_v1(mut r: Reader<'_>) -> Result<Model, &'static str> {
    if r.byte()? != 0 {
        return Err("element type other than f32 in version 1");
    }
    let count = r.varint(usize::BITS)?;
    if !(2..=17).contains(&count) {
        return Err("layer count outside 1..=16");
    }
    let mut sizes = Vec::new();
    for _ in 0..count {
        let size = r.varint(32)?;
        if !(1..=1 << 20).contains(&size) {
            return Err("layer size outside 1..=2^20");
        }
        sizes.push(size as u32);
    }
    let crc = u32::from_le_bytes([r.byte()?, r.byte()?, r.byte()?, r.byte()?]);
    let padding = r.varint(usize::BITS)?;
    if padding > 3 {
        return Err("more than 3 padding bytes");
    }
    for _ in 0..padding {
        if r.byte()? != 0 {
            return Err("non-zero padding");
        }
    }
    let declared = r.varint(usize::BITS)?;
    if declared != payload_len(&sizes) as u64 {
        return Err("payload length does not match the sizes");
    }
    let payload_offset = r.pos;
    let payload = &r.bytes[payload_offset..];
    if (payload.len() as u64) < declared {
        return Err("truncated payload");
    }
    if (payload.len() as u64) > declared {
        return Err("trailing bytes");
    }
    if bitwise_crc32(payload) != crc {
        return Err("checksum mismatch");
    }
    Ok(Model {
        sizes,
        crc,
        payload_offset,
        canonical: r.minimal && payload_offset % 4 == 0,
    })
}

fn payload_len(sizes: &[u32]) -> usize {
    sizes
        .windows(2)
        .map(|p| 4 * (p[0] as usize * p[1] as usize + p[1] as usize))
        .sum()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    minimal: bool,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let byte = *self.bytes.get(self.pos).ok_or("truncated header")?;
        self.pos += 1;
        Ok(byte)
    }

    /// A LEB128 varint of an unsigned integer of `bits` bits, as postcard writes it: at
    /// most ceil(bits / 7) bytes, the last one without bits beyond the type. Overlong
    /// forms (a final zero group) are accepted but make the file non-canonical.
    fn varint(&mut self, bits: u32) -> Result<u64, &'static str> {
        let max_bytes = bits.div_ceil(7);
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == max_bytes - 1 && u32::from(byte) >> (bits - 7 * i) != 0 {
                    return Err("varint overflows its type");
                }
                if i > 0 && byte == 0 {
                    self.minimal = false;
                }
                return Ok(value);
            }
        }
        Err("varint too long")
    }
}

/// CRC-32/IEEE bit by bit, the textbook way (no table).
pub fn bitwise_crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
