//! Training-image augmentation (`train --augment`): every epoch, each training image is
//! replaced by a randomly shifted, rotated and scaled copy (and, for data where it makes
//! sense, mirrored), so that a network trained on a few thousand images sees a new
//! variant of each one every epoch.
//!
//! # Determinism
//! The transform of image `i` in epoch `e` of a run with seed `s` is drawn from a
//! counter-based generator keyed by `(s, e, i)` ([`image_key`]), not from a generator
//! that advances: an epoch's images do not depend on the thread that made them, on the
//! order they were made in, or on whether the run was resumed from a checkpoint (the
//! epoch number is all a checkpoint needs to store). The resampling is integer
//! arithmetic (16.16 fixed point, bilinear weights in 1/256ths); the only floating
//! point is the transform's coefficients, computed from basic operations (`+ - * /`,
//! which IEEE 754 rounds the same everywhere; Rust never fuses them) with a polynomial
//! sine and cosine rather than the platform's `libm`. The same seed therefore gives the
//! same pixel bytes on every machine.
//!
//! # Transform
//! With `c` the image centre, `t` the shift, `θ` the angle and `k` the scale, an
//! output pixel centre `p` takes the bilinear sample of the source at
//! `c + R(−θ)(p − c − t) / k` (pixels outside the source are 0, the background).
//! A mirrored image then swaps left and right.

use serde::{Deserialize, Serialize};

/// The most any setting may ask for: beyond these a digit leaves the frame or becomes
/// another digit, and the fixed-point arithmetic's ranges are no longer checked.
const MAX_SHIFT: f32 = 8.0;
/// See [`MAX_SHIFT`] (degrees).
const MAX_ROTATE: f32 = 45.0;
/// See [`MAX_SHIFT`] (a fraction of the size).
const MAX_SCALE: f32 = 0.5;

/// How much each training image may be moved, turned, resized and mirrored. Each image
/// of each epoch draws its shift, angle and scale uniformly from these ranges.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Largest shift along each axis, in pixels (drawn independently for x and y).
    pub shift: f32,
    /// Largest rotation either way, in degrees.
    pub rotate: f32,
    /// Largest relative change of size: the scale is drawn from `[1 − scale, 1 + scale]`.
    pub scale: f32,
    /// Mirror half the images left to right (for clothes, not for digits: a mirrored
    /// 2, 3, 4, 5, 6, 7 or 9 is no digit).
    pub flip: bool,
}

impl Augment {
    /// The settings plain `--augment` stands for, chosen on the bundled digits (see the
    /// README's figures): shifts up to 2 pixels, rotations up to 10°, sizes ±10%, no
    /// mirroring.
    pub const DIGITS: Augment = Augment {
        shift: 2.0,
        rotate: 10.0,
        scale: 0.1,
        flip: false,
    };

    /// Parses `--augment`'s value: `default` ([`Augment::DIGITS`]), or a
    /// comma-separated list of `shift=PIXELS`, `rotate=DEGREES`, `scale=FRACTION` and
    /// `flip`, starting from no change at all (`shift=2` alone only shifts).
    ///
    /// # Errors
    /// An unknown name, a value that is not a number, or one out of range, with a
    /// message naming it.
    pub fn parse(text: &str) -> Result<Augment, String> {
        let text = text.trim();
        if text == "default" || text.is_empty() {
            return Ok(Augment::DIGITS);
        }
        let mut a = Augment {
            shift: 0.0,
            rotate: 0.0,
            scale: 0.0,
            flip: false,
        };
        for part in text.split(',').map(str::trim) {
            if part == "flip" {
                a.flip = true;
                continue;
            }
            let Some((name, value)) = part.split_once('=') else {
                return Err(format!(
                    "'{part}': expected shift=PIXELS, rotate=DEGREES, scale=FRACTION or flip"
                ));
            };
            let (slot, max) = match name.trim() {
                "shift" => (&mut a.shift, MAX_SHIFT),
                "rotate" => (&mut a.rotate, MAX_ROTATE),
                "scale" => (&mut a.scale, MAX_SCALE),
                other => {
                    return Err(format!(
                        "'{other}' is not an augmentation (shift, rotate, scale, flip)"
                    ))
                }
            };
            let v: f32 = value
                .trim()
                .parse()
                .map_err(|_| format!("{name}: '{value}' is not a number"))?;
            if !(0.0..=max).contains(&v) {
                return Err(format!("{name} must be from 0 to {max}, got {v}"));
            }
            *slot = v;
        }
        Ok(a)
    }
}

impl std::fmt::Display for Augment {
    /// The form [`Augment::parse`] reads back: `shift=2,rotate=10,scale=0.1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shift={},rotate={},scale={}",
            self.shift, self.rotate, self.scale
        )?;
        if self.flip {
            f.write_str(",flip")?;
        }
        Ok(())
    }
}

/// One step of SplitMix64: a bijective mix of 64 bits, so distinct inputs give
/// distinct, well-spread outputs.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of image `index`'s transform in epoch `epoch` (from 0) of a run seeded
/// `seed`. A separate stream from the generator that initialises the weights and
/// shuffles, so that turning augmentation on changes nothing else.
pub fn image_key(seed: u64, epoch: u64, index: u64) -> u64 {
    // An arbitrary constant ("augment" in ASCII) separates this use of the seed.
    splitmix(splitmix(splitmix(seed ^ 0x0061_7567_6d65_6e74) ^ epoch) ^ index)
}

/// A stream of uniform numbers from a key: SplitMix64 over a counter.
struct Draws(u64);

impl Draws {
    /// A uniform number in `[-1, 1)`, with 24 bits (exact in `f32`).
    fn symmetric(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(1);
        let bits = splitmix(self.0) >> 40;
        (bits as f64) / f64::from(1u32 << 23) - 1.0
    }

    /// A fair coin.
    fn coin(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        splitmix(self.0) >> 63 == 1
    }
}

/// `1 / n!` for n = 0..=18, computed once at compile time with the same basic
/// operations every machine rounds alike.
const INVERSE_FACTORIALS: [f64; 19] = {
    let mut t = [1.0f64; 19];
    let mut n = 1;
    while n < 19 {
        t[n] = t[n - 1] / n as f64;
        n += 1;
    }
    t
};

/// Sine and cosine of `x` (|x| ≤ π/4) from their Taylor series, evaluated with basic
/// operations only, so every machine gets the same bits (a platform's `sin` may
/// differ in the last bit). Error below 1e-15 at π/4.
fn sin_cos(x: f64) -> (f64, f64) {
    let x2 = x * x;
    let (mut s, mut c) = (0.0f64, 0.0f64);
    // Horner from the highest term down: sin to x^17, cos to x^16.
    for k in (0..9).rev() {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        s = s * x2 + sign * INVERSE_FACTORIALS[2 * k + 1];
        c = c * x2 + sign * INVERSE_FACTORIALS[2 * k];
    }
    (s * x, c)
}

/// One image's transform in 16.16 fixed point: source = `origin + m · (p − c)`, where
/// `p − c` is the output pixel centre's offset from the image centre.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transform {
    /// The inverse map's matrix, row-major, 16.16.
    pub m: [i64; 4],
    /// The source point the output centre comes from, minus half a pixel (so that its
    /// integer part indexes the top-left of the four pixels sampled), 16.16.
    pub origin: [i64; 2],
    /// Mirror left to right.
    pub flip: bool,
}

/// 1.0 in 16.16 fixed point.
const ONE: f64 = 65536.0;

impl Transform {
    /// The transform image `index` gets in epoch `epoch` of a run seeded `seed`, for
    /// images of `shape` (rows, cols).
    pub fn draw(a: &Augment, shape: (usize, usize), seed: u64, epoch: u64, index: u64) -> Self {
        let mut d = Draws(image_key(seed, epoch, index));
        // Always draw every number, so one setting's draws do not depend on another's.
        let tx = d.symmetric() * f64::from(a.shift);
        let ty = d.symmetric() * f64::from(a.shift);
        let angle = d.symmetric() * f64::from(a.rotate) * (std::f64::consts::PI / 180.0);
        let k = 1.0 + d.symmetric() * f64::from(a.scale);
        let flip = d.coin() && a.flip;
        Transform::new(shape, tx, ty, angle, k, flip)
    }

    /// The transform that shifts by `(tx, ty)` pixels, turns by `angle` radians
    /// (clockwise on screen, as y grows downwards) and scales by `k` about the image
    /// centre, then mirrors if `flip`.
    pub fn new(shape: (usize, usize), tx: f64, ty: f64, angle: f64, k: f64, flip: bool) -> Self {
        let (s, c) = sin_cos(angle);
        // The inverse of rotation by θ then scaling by k: R(−θ) / k.
        let m = [c / k, s / k, -s / k, c / k];
        let fixed = |v: f64| (v * ONE).round() as i64;
        let (rows, cols) = (shape.0 as f64, shape.1 as f64);
        // Where the output centre comes from: the centre moved back by the shift.
        let ox = cols / 2.0 - (m[0] * tx + m[1] * ty) - 0.5;
        let oy = rows / 2.0 - (m[2] * tx + m[3] * ty) - 0.5;
        Transform {
            m: m.map(fixed),
            origin: [fixed(ox), fixed(oy)],
            flip,
        }
    }

    /// Writes the transformed `src` (`rows × cols` bytes) into `dst`.
    pub fn apply(&self, src: &[u8], dst: &mut [u8], shape: (usize, usize)) {
        let sources = Sources::new(src, shape);
        self.sample(&sources, 0, dst);
    }

    /// Writes the transformed image `index` of `sources` into `dst`.
    ///
    /// Along a row, the source point advances by the matrix's first column per pixel;
    /// the pixels whose sample can touch ink are found by division, once per row, and
    /// only they are computed (the rest stay 0), each from the bordered copy of the
    /// source without bounds checks of its own.
    fn sample(&self, sources: &Sources, index: usize, dst: &mut [u8]) {
        let (rows, cols) = sources.shape;
        assert_eq!(dst.len(), rows * cols);
        dst.fill(0);
        let Some([x_lo, x_hi, y_lo, y_hi]) = sources.ink[index] else {
            return;
        };
        let stride = cols + 2;
        let padded = &sources.padded[index * stride * (rows + 2)..][..stride * (rows + 2)];
        // The top-left sample pixel must lie in [lo − 1, hi] for a sample to touch ink.
        let (x_first, x_span) = (i64::from(x_lo) - 1, u64::from(x_hi - x_lo) + 1);
        let (y_first, y_span) = (i64::from(y_lo) - 1, u64::from(y_hi - y_lo) + 1);
        let [m00, m01, m10, m11] = self.m;
        // Offset of a pixel centre from the image centre in 16.16: (2i + 1 − n) / 2.
        let half = |i: usize, n: usize| (2 * i as i64 + 1 - n as i64) << 15;
        let (dx0, mirror_step) = if self.flip {
            (half(cols - 1, cols), -1)
        } else {
            (half(0, cols), 1)
        };
        let (step_x, step_y) = (m00 * mirror_step, m10 * mirror_step);
        // 16.16 bounds of the source point whose top-left sample pixel is in range.
        let x_bounds = (x_first << 16, ((x_first + x_span as i64 + 1) << 16) - 1);
        let y_bounds = (y_first << 16, ((y_first + y_span as i64 + 1) << 16) - 1);
        for (y, row) in dst.chunks_exact_mut(cols).enumerate() {
            let dy = half(y, rows);
            let sx = self.origin[0] + ((m00 * dx0 + m01 * dy) >> 16);
            let sy = self.origin[1] + ((m10 * dx0 + m11 * dy) >> 16);
            // The pixels of this row that sample ink: no test per pixel, and no
            // branch to mispredict where the row enters and leaves the digit.
            let (a, b) = steps_within(sx, step_x, x_bounds, cols);
            let (c, d) = steps_within(sy, step_y, y_bounds, cols);
            let (first, end) = (a.max(c), b.min(d));
            if first >= end {
                continue;
            }
            let (mut sx, mut sy) = (sx + step_x * first as i64, sy + step_y * first as i64);
            for out in &mut row[first..end] {
                let (x0, y0) = (sx >> 16, sy >> 16);
                // 8 bits of fraction weight the four pixels (weights sum to 2^16).
                let (fx, fy) = (((sx >> 8) & 0xff) as i32, ((sy >> 8) & 0xff) as i32);
                let at = (y0 + 1) as usize * stride + (x0 + 1) as usize;
                let p = &padded[at..at + stride + 2];
                let (p00, p01) = (i32::from(p[0]), i32::from(p[1]));
                let (p10, p11) = (i32::from(p[stride]), i32::from(p[stride + 1]));
                let top = (p00 << 8) + (p01 - p00) * fx;
                let bottom = (p10 << 8) + (p11 - p10) * fx;
                *out = (((top << 8) + (bottom - top) * fy + 32768) >> 16) as u8;
                sx += step_x;
                sy += step_y;
            }
        }
    }
}

/// A set of images made ready for [`Transform`]s once, rather than every epoch: each
/// with a border of zero pixels (so that a bilinear sample next to the edge needs no
/// bounds check) and the bounding box of its ink (only output pixels that sample it
/// can be non-zero).
#[derive(Clone, Debug, PartialEq)]
pub struct Sources {
    /// Image side lengths `(rows, cols)`.
    shape: (usize, usize),
    /// The images as given, to recognise them again ([`Sources::holds`]).
    pixels: Vec<u8>,
    /// Each image with a one-pixel zero border: `(rows + 2) × (cols + 2)` bytes.
    padded: Vec<u8>,
    /// Each image's ink `[x_lo, x_hi, y_lo, y_hi]` (inclusive), `None` if blank.
    ink: Vec<Option<[u32; 4]>>,
}

impl Sources {
    /// Prepares `pixels`: images of `shape` (rows, cols), one after another.
    pub fn new(pixels: &[u8], shape: (usize, usize)) -> Sources {
        let (rows, cols) = shape;
        let features = rows * cols;
        let count = pixels.len().checked_div(features).unwrap_or(0);
        let stride = cols + 2;
        let mut padded = vec![0; count * stride * (rows + 2)];
        let mut ink = Vec::with_capacity(count);
        for (image, out) in pixels
            .chunks_exact(features.max(1))
            .zip(padded.chunks_exact_mut((stride * (rows + 2)).max(1)))
        {
            let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (cols, 0, rows, 0);
            for (y, row) in image.chunks_exact(cols).enumerate() {
                out[(y + 1) * stride + 1..][..cols].copy_from_slice(row);
                if let Some(first) = row.iter().position(|&p| p != 0) {
                    let last = row.iter().rposition(|&p| p != 0).unwrap_or(first);
                    x_lo = x_lo.min(first);
                    x_hi = x_hi.max(last);
                    y_lo = y_lo.min(y);
                    y_hi = y_hi.max(y);
                }
            }
            ink.push((x_lo <= x_hi).then(|| [x_lo, x_hi, y_lo, y_hi].map(|v| v as u32)));
        }
        Sources {
            shape,
            pixels: pixels.to_vec(),
            padded,
            ink,
        }
    }

    /// True when these are `pixels` of `shape`.
    pub fn holds(&self, pixels: &[u8], shape: (usize, usize)) -> bool {
        self.shape == shape && self.pixels == pixels
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.ink.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.ink.is_empty()
    }

    /// Bytes per image.
    pub fn features(&self) -> usize {
        self.shape.0 * self.shape.1
    }

    /// Fills `dst` (as long as the images) with epoch `epoch`'s augmented copy of every
    /// image, for a run seeded `seed`, on `threads` threads. The bytes do not depend on
    /// `threads`.
    pub fn augment_epoch(
        &self,
        a: &Augment,
        dst: &mut [u8],
        seed: u64,
        epoch: u64,
        threads: usize,
    ) {
        let features = self.shape.0 * self.shape.1;
        assert_eq!(dst.len(), self.pixels.len());
        if features == 0 || self.is_empty() {
            return;
        }
        let per = self.len().div_ceil(threads.max(1));
        let work = |first: usize, dst: &mut [u8]| {
            for (j, out) in dst.chunks_exact_mut(features).enumerate() {
                let i = first + j;
                let t = Transform::draw(a, self.shape, seed, epoch, i as u64);
                t.sample(self, i, out);
            }
        };
        if threads <= 1 || self.len() < 2 {
            work(0, dst);
            return;
        }
        std::thread::scope(|s| {
            for (n, part) in dst.chunks_mut(per * features).enumerate() {
                let work = &work;
                s.spawn(move || work(n * per, part));
            }
        });
    }
}

/// The steps `i` in `0..n` for which `start + i · step` lies in `[lo, hi]`, as a range
/// `(first, end)` (empty when `first >= end`).
fn steps_within(start: i64, step: i64, (lo, hi): (i64, i64), n: usize) -> (usize, usize) {
    let last = start + step * (n as i64 - 1).max(0);
    if start.max(last) < lo || start.min(last) > hi {
        // The whole row misses (most rows above and below a digit): no division.
        return (0, 0);
    }
    // ⌊a / b⌋ (b > 0) from a floating-point estimate, corrected to the exact integer
    // (an estimate is off by one at most): a division instruction per row edge of every
    // image of every epoch was a sixth of augmentation's time.
    let floor_div = |a: i64, b: i64| {
        let mut q = (a as f64 / b as f64) as i64;
        while q * b > a {
            q -= 1;
        }
        while (q + 1) * b <= a {
            q += 1;
        }
        q
    };
    let n = n as i64;
    let (first, end) = match step.signum() {
        0 => (0, n),
        // lo <= start + i·step <= hi, for i rounded inwards.
        1 => (
            -floor_div(start - lo, step),
            floor_div(hi - start, step) + 1,
        ),
        _ => (
            -floor_div(hi - start, -step),
            floor_div(start - lo, -step) + 1,
        ),
    };
    (first.clamp(0, n) as usize, end.clamp(0, n) as usize)
}

/// Fills `dst` (as long as `src`) with epoch `epoch`'s augmented copy of every image in
/// `src` (of `shape`), for a run seeded `seed`, on `threads` threads: [`Sources::new`]
/// then [`Sources::augment_epoch`].
pub fn augment_epoch(
    a: &Augment,
    src: &[u8],
    dst: &mut [u8],
    shape: (usize, usize),
    seed: u64,
    epoch: u64,
    threads: usize,
) {
    Sources::new(src, shape).augment_epoch(a, dst, seed, epoch, threads);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_and_cosine_match_the_platforms() {
        for i in -100..=100 {
            let x = f64::from(i) * std::f64::consts::FRAC_PI_4 / 100.0;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-15, "sin {x}");
            assert!((c - x.cos()).abs() < 1e-15, "cos {x}");
        }
    }

    #[test]
    fn identity_keeps_every_byte() {
        let src: Vec<u8> = (0..28 * 28).map(|i| (i * 7 % 256) as u8).collect();
        let mut dst = vec![0; src.len()];
        Transform::new((28, 28), 0.0, 0.0, 0.0, 1.0, false).apply(&src, &mut dst, (28, 28));
        assert_eq!(dst, src);
    }

    #[test]
    fn whole_pixel_shift_moves_every_byte() {
        let src: Vec<u8> = (0..28 * 28).map(|i| (i % 251) as u8 + 1).collect();
        let mut dst = vec![0; src.len()];
        Transform::new((28, 28), 3.0, -2.0, 0.0, 1.0, false).apply(&src, &mut dst, (28, 28));
        for y in 0..28 {
            for x in 0..28 {
                let (sx, sy) = (x as i64 - 3, y as i64 + 2);
                let expected = if (0..28).contains(&sx) && (0..28).contains(&sy) {
                    src[sy as usize * 28 + sx as usize]
                } else {
                    0
                };
                assert_eq!(dst[y * 28 + x], expected, "({x}, {y})");
            }
        }
    }

    /// The transform sampled the plain way: every output pixel, bounds checked.
    fn reference(t: &Transform, src: &[u8], (rows, cols): (usize, usize)) -> Vec<u8> {
        let at = |x: i64, y: i64| -> i64 {
            if x < 0 || y < 0 || x >= cols as i64 || y >= rows as i64 {
                0
            } else {
                i64::from(src[y as usize * cols + x as usize])
            }
        };
        let half = |i: usize, n: usize| (2 * i as i64 + 1 - n as i64) << 15;
        let mut out = vec![0; rows * cols];
        for y in 0..rows {
            for x in 0..cols {
                let (x_start, dir) = if t.flip { (cols - 1, -1) } else { (0, 1) };
                let dx0 = half(x_start, cols);
                let dy = half(y, rows);
                let sx =
                    t.origin[0] + ((t.m[0] * dx0 + t.m[1] * dy) >> 16) + dir * t.m[0] * x as i64;
                let sy =
                    t.origin[1] + ((t.m[2] * dx0 + t.m[3] * dy) >> 16) + dir * t.m[2] * x as i64;
                let (x0, y0, fx, fy) = (sx >> 16, sy >> 16, (sx >> 8) & 0xff, (sy >> 8) & 0xff);
                let top = at(x0, y0) * (256 - fx) + at(x0 + 1, y0) * fx;
                let bottom = at(x0, y0 + 1) * (256 - fx) + at(x0 + 1, y0 + 1) * fx;
                out[y * cols + x] = ((top * (256 - fy) + bottom * fy + 32768) >> 16) as u8;
            }
        }
        out
    }

    #[test]
    fn fast_sampling_equals_the_plain_one() {
        let wide = Augment::parse("shift=6,rotate=45,scale=0.5,flip").unwrap();
        for (n, shape) in [(28usize, 28usize), (9, 5), (5, 9), (1, 1), (2, 3)]
            .iter()
            .enumerate()
        {
            let (rows, cols) = *shape;
            for i in 0..300u64 {
                let mut d = Draws(i * 7 + n as u64);
                // Blobs, lines, full and empty images, ink touching the border.
                let src: Vec<u8> = (0..rows * cols)
                    .map(|_| {
                        let r = d.symmetric();
                        if (i % 4 == 0) || r > 0.3 {
                            ((r + 1.0) * 127.0) as u8
                        } else {
                            0
                        }
                    })
                    .collect();
                for a in [Augment::DIGITS, wide] {
                    let t = Transform::draw(&a, *shape, 9, n as u64, i);
                    let mut fast = vec![0; src.len()];
                    t.apply(&src, &mut fast, *shape);
                    assert_eq!(fast, reference(&t, &src, *shape), "{shape:?} image {i} {a}");
                }
            }
        }
    }

    #[test]
    fn flip_mirrors() {
        let src: Vec<u8> = (0..6 * 4).map(|i| i as u8).collect();
        let mut dst = vec![0; src.len()];
        Transform::new((6, 4), 0.0, 0.0, 0.0, 1.0, true).apply(&src, &mut dst, (6, 4));
        for y in 0..6 {
            for x in 0..4 {
                assert_eq!(dst[y * 4 + x], src[y * 4 + 3 - x]);
            }
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        assert_eq!(Augment::parse("default"), Ok(Augment::DIGITS));
        let a = Augment::parse("shift=1.5, rotate=5,scale=0.05,flip").unwrap();
        assert_eq!(
            a,
            Augment {
                shift: 1.5,
                rotate: 5.0,
                scale: 0.05,
                flip: true
            }
        );
        assert_eq!(Augment::parse(&a.to_string()), Ok(a));
        assert!(Augment::parse("shift=9").unwrap_err().contains("shift"));
        assert!(Augment::parse("twist=1").unwrap_err().contains("twist"));
        assert!(Augment::parse("rotate=x").unwrap_err().contains("rotate"));
        assert!(Augment::parse("shear").is_err());
    }

    #[test]
    fn threads_do_not_change_bytes() {
        let src: Vec<u8> = (0..28 * 28 * 13).map(|i| (i * 31 % 256) as u8).collect();
        let mut one = vec![0; src.len()];
        let mut three = vec![0; src.len()];
        augment_epoch(&Augment::DIGITS, &src, &mut one, (28, 28), 5, 2, 1);
        augment_epoch(&Augment::DIGITS, &src, &mut three, (28, 28), 5, 2, 3);
        assert_eq!(one, three);
        assert_ne!(one, src);
    }
}
