//! An independent reader of model files, written from `docs/FORMAT.md` alone (no
//! postcard, no serde, a bitwise CRC): the fuzz targets compare its verdict, and for a
//! file both accept everything it decoded, with `mlp_core::format::ModelView::decode`
//! on every input.
//!
//! It reads every version the format has: 1 (f32), 2 (f32 or int8, with the int8
//! payload split into its fields and their range checks) and 3 (the input transform,
//! the normalization, the int8 zero point and the class names). Any other version is
//! rejected, as the spec says a reader must.

use std::ops::Range;

use mlp_core::format::ModelView;

/// What the spec says a valid file holds. Ranges are byte offsets into the file.
#[derive(Debug)]
pub struct Model {
    /// The format version: 1, 2 or 3.
    pub version: u16,
    /// The input transform's code: 0 features, 1 pixels (versions 1 and 2), 2
    /// standardized.
    pub input: u8,
    /// A standardized model's `(offset, scale)` bits, feature by feature.
    pub normalization: Vec<(u32, u32)>,
    /// An int8 model's input zero point (0 before version 3).
    pub zero_point: i32,
    /// The class names (none: empty).
    pub class_names: Vec<String>,
    /// The element type's code: 0 (f32) or 1 (int8, version 2 only).
    pub element_type: u8,
    /// Layer sizes, input first.
    pub sizes: Vec<u32>,
    /// The CRC-32 in the header.
    pub crc: u32,
    /// Where the payload lies.
    pub payload: Range<usize>,
    /// For an f32 model: each layer's `(weights, bias)`.
    pub f32_layers: Vec<(Range<usize>, Range<usize>)>,
    /// For an int8 model: the input scale's bits and each layer's fields.
    pub int8: Option<(u32, Vec<Int8Layer>)>,
    /// Whether every varint is minimal, the payload is 4-byte aligned and the version
    /// is the one the writer uses for the element type: the bytes the writer produces
    /// for this model.
    pub canonical: bool,
}

/// One int8 layer's fields, as the spec lays them out.
#[derive(Debug)]
pub struct Int8Layer {
    /// The output scale's bits.
    pub output_scale: u32,
    /// `[outputs]` int32 biases.
    pub bias: Range<usize>,
    /// `[outputs]` int32 multipliers.
    pub multiplier: Range<usize>,
    /// `[outputs]` int32 shifts.
    pub shift: Range<usize>,
    /// `[inputs × outputs]` int8 weights.
    pub weights: Range<usize>,
}

impl Model {
    /// Panics unless `view`, decoded from `file`, holds what the spec reads from it:
    /// the same version, element type, sizes and checksum, the same payload bytes at
    /// the same place, and every layer's fields where the spec puts them.
    pub fn assert_matches(&self, file: &[u8], view: &ModelView<'_>) {
        assert_eq!(view.version(), self.version, "version");
        assert_eq!(
            view.element_type().code(),
            self.element_type,
            "element type"
        );
        assert_eq!(view.layer_sizes(), &self.sizes[..], "layer sizes");
        assert_eq!(view.input_kind().code(), self.input, "input transform");
        let normalization: Vec<(u32, u32)> = match view.input_transform() {
            mlp_core::format::InputTransform::Standardized(norm) => norm
                .pairs()
                .map(|(o, s)| (o.to_bits(), s.to_bits()))
                .collect(),
            _ => Vec::new(),
        };
        assert_eq!(normalization, self.normalization, "offsets and scales");
        let names: Vec<String> = view
            .class_names()
            .map(|n| n.iter().map(str::to_owned).collect())
            .unwrap_or_default();
        assert_eq!(names, self.class_names, "class names");
        if self.int8.is_some() {
            assert_eq!(
                view.input_quantization().map(|q| q.zero_point),
                Some(self.zero_point),
                "zero point"
            );
        }
        assert_eq!(view.payload_crc(), self.crc, "checksum");
        let at = |bytes: &[u8]| {
            let start = bytes.as_ptr() as usize - file.as_ptr() as usize;
            start..start + bytes.len()
        };
        assert_eq!(at(view.payload()), self.payload, "where the payload lies");
        let layers: Vec<_> = view.layers().map(|l| (at(l.weights), at(l.bias))).collect();
        assert_eq!(layers, self.f32_layers, "f32 layers");
        match &self.int8 {
            None => {
                assert_eq!(view.input_scale(), None, "an f32 model has no input scale");
                assert_eq!(
                    view.int8_layers().len(),
                    0,
                    "an f32 model has no int8 layers"
                );
            }
            Some((input_scale, int8_layers)) => {
                assert_eq!(
                    view.input_scale().map(f32::to_bits),
                    Some(*input_scale),
                    "input scale"
                );
                assert_eq!(
                    view.int8_layers().len(),
                    int8_layers.len(),
                    "int8 layer count"
                );
                for (k, (got, want)) in view.int8_layers().zip(int8_layers).enumerate() {
                    assert_eq!(
                        (got.inputs, got.outputs),
                        (self.sizes[k] as usize, self.sizes[k + 1] as usize)
                    );
                    assert_eq!(
                        got.output_scale.to_bits(),
                        want.output_scale,
                        "layer {k} output scale"
                    );
                    assert_eq!(at(got.bias), want.bias, "layer {k} bias");
                    assert_eq!(at(got.multiplier), want.multiplier, "layer {k} multiplier");
                    assert_eq!(at(got.shift), want.shift, "layer {k} shift");
                    assert_eq!(at(got.weights), want.weights, "layer {k} weights");
                }
            }
        }
    }
}

/// `Ok`: the spec accepts the file and this is what it holds; `Err(why)`: the spec
/// rejects it.
pub fn parse(bytes: &[u8]) -> Result<Model, &'static str> {
    let mut r = Reader {
        bytes,
        pos: 0,
        minimal: true,
    };
    if bytes.len() < 4 {
        return Err("shorter than the magic");
    }
    if bytes[..4] != *b"MLPW" {
        return Err("bad magic");
    }
    r.pos = 4;
    let version = r.varint(16)? as u16;
    // Version 1 knows f32 (0); versions 2 and 3 add int8 (1). No other version exists.
    let element_type = r.byte()?;
    match (version, element_type) {
        (1..=3, 0) | (2 | 3, 1) => {}
        (1..=3, _) => return Err("element type unknown to the version"),
        _ => return Err("unsupported version"),
    }
    let input = if version == 3 { r.byte()? } else { 1 };
    if input > 2 {
        return Err("unknown input transform");
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
    let names_len = if version == 3 {
        r.varint(usize::BITS)?
    } else {
        0
    };
    if names_len > 16_384 {
        return Err("class names longer than 16,384 bytes");
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
    let normalization_len = if input == 2 {
        8 * u64::from(sizes[0])
    } else {
        0
    };
    // Version 3 follows the int8 input scale with a 4-byte zero point.
    let zero_point_len = if element_type == 1 && version == 3 {
        4
    } else {
        0
    };
    let parameters_len = if element_type == 0 {
        f32_payload_len(&sizes)
    } else {
        int8_payload_len(&sizes)
    };
    let expected = normalization_len + zero_point_len + parameters_len + names_len;
    if declared != expected {
        return Err("payload length does not match the sizes");
    }
    let start = r.pos;
    let payload = &r.bytes[start..];
    if (payload.len() as u64) < declared {
        return Err("truncated payload");
    }
    if (payload.len() as u64) > declared {
        return Err("trailing bytes");
    }
    if bitwise_crc32(payload) != crc {
        return Err("checksum mismatch");
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let features = sizes[0] as usize;
    let mut normalization = Vec::new();
    for i in 0..features * usize::from(input == 2) {
        let (offset, scale) = (word(start + 4 * i), word(start + 4 * (features + i)));
        let (o, s) = (f32::from_bits(offset), f32::from_bits(scale));
        if !o.is_finite() || !s.is_finite() || s == 0.0 {
            return Err("bad offset or scale");
        }
        normalization.push((offset, scale));
    }
    let parameters_start = start + normalization_len as usize;
    let names_start = bytes.len() - names_len as usize;
    let (f32_layers, int8, zero_point) = if element_type == 0 {
        (f32_layers(&sizes, parameters_start), None, 0)
    } else {
        let zero_point = if version == 3 {
            word(parameters_start + 4) as i32
        } else {
            0
        };
        let allowed = if input == 1 { 0..=0 } else { 0..=255 };
        if !allowed.contains(&zero_point) {
            return Err("input zero point out of range");
        }
        let layers = int8_layers(
            &bytes[..names_start],
            &sizes,
            parameters_start,
            zero_point_len as usize,
        )?;
        (Vec::new(), Some(layers), zero_point)
    };
    let mut class_names = Vec::new();
    let mut at = names_start;
    while at < bytes.len() {
        let len = usize::from(bytes[at]);
        if len == 0 || len > 64 {
            return Err("class name length outside 1..=64");
        }
        let name = bytes
            .get(at + 1..at + 1 + len)
            .ok_or("class name cut short")?;
        let name = std::str::from_utf8(name).map_err(|_| "class name not UTF-8")?;
        if name.chars().any(char::is_control) {
            return Err("control character in a class name");
        }
        class_names.push(name.to_owned());
        at += 1 + len;
    }
    if names_len > 0 && class_names.len() != *sizes.last().unwrap() as usize {
        return Err("not one class name per class");
    }
    // The writer puts f32 models in version 1 and int8 models in version 2 unless they
    // need version 3's fields.
    let plain = input == 1 && names_len == 0 && zero_point == 0;
    let writers_version = if plain {
        1 + u16::from(element_type)
    } else {
        3
    };
    Ok(Model {
        version,
        input,
        normalization,
        zero_point,
        class_names,
        element_type,
        sizes,
        crc,
        payload: start..bytes.len(),
        f32_layers,
        int8,
        canonical: r.minimal && start.is_multiple_of(4) && version == writers_version,
    })
}

/// `4 × Σ (in × out + out)`.
fn f32_payload_len(sizes: &[u32]) -> u64 {
    sizes
        .windows(2)
        .map(|p| 4 * (u64::from(p[0]) * u64::from(p[1]) + u64::from(p[1])))
        .sum()
}

/// `4 + Σ (4 + 12 × out + ⌈in × out / 4⌉ × 4)`.
fn int8_payload_len(sizes: &[u32]) -> u64 {
    4 + sizes
        .windows(2)
        .map(|p| {
            let weights = u64::from(p[0]) * u64::from(p[1]);
            4 + 12 * u64::from(p[1]) + weights.div_ceil(4) * 4
        })
        .sum::<u64>()
}

/// Each f32 layer's weights `[in][out]` then bias `[out]`, 4 bytes each, from `start`.
fn f32_layers(sizes: &[u32], mut at: usize) -> Vec<(Range<usize>, Range<usize>)> {
    let mut layers = Vec::new();
    for p in sizes.windows(2) {
        let (inputs, outputs) = (p[0] as usize, p[1] as usize);
        let weights = at..at + 4 * inputs * outputs;
        let bias = weights.end..weights.end + 4 * outputs;
        at = bias.end;
        layers.push((weights, bias));
    }
    layers
}

/// The int8 parameters from `start` (their length already checked; `file` ends where
/// they do), field by field, with the spec's checks: every scale positive and finite,
/// multipliers ≥ 0, shifts in 0..=62, padding zero. `zero_point_len` bytes follow the
/// input scale (4 in version 3).
fn int8_layers(
    file: &[u8],
    sizes: &[u32],
    start: usize,
    zero_point_len: usize,
) -> Result<(u32, Vec<Int8Layer>), &'static str> {
    let word = |at: usize| u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]);
    let scale_ok = |bits: u32| {
        let value = f32::from_bits(bits);
        value.is_finite() && value > 0.0
    };
    let input_scale = word(start);
    if !scale_ok(input_scale) {
        return Err("input scale not positive and finite");
    }
    let mut at = start + 4 + zero_point_len;
    let mut layers = Vec::new();
    for p in sizes.windows(2) {
        let (inputs, outputs) = (p[0] as usize, p[1] as usize);
        let output_scale = word(at);
        if !scale_ok(output_scale) {
            return Err("output scale not positive and finite");
        }
        let bias = at + 4..at + 4 + 4 * outputs;
        let multiplier = bias.end..bias.end + 4 * outputs;
        let shift = multiplier.end..multiplier.end + 4 * outputs;
        let weights = shift.end..shift.end + inputs * outputs;
        let padded_end = start + (weights.end - start).div_ceil(4) * 4;
        if multiplier.clone().step_by(4).any(|m| (word(m) as i32) < 0) {
            return Err("negative multiplier");
        }
        if shift
            .clone()
            .step_by(4)
            .any(|s| !(0..=62).contains(&(word(s) as i32)))
        {
            return Err("shift outside 0..=62");
        }
        if file[weights.end..padded_end].iter().any(|&b| b != 0) {
            return Err("non-zero padding after the weights");
        }
        at = padded_end;
        layers.push(Int8Layer {
            output_scale,
            bias,
            multiplier,
            shift,
            weights,
        });
    }
    assert_eq!(at, file.len(), "the int8 fields fill the payload");
    Ok((input_scale, layers))
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
