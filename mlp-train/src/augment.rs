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

/// Sine and cosine of `x` (|x| ≤ π/4) from their Taylor series, evaluated with basic
/// operations only, so every machine gets the same bits (a platform's `sin` may
/// differ in the last bit). Error below 1e-15 at π/4.
fn sin_cos(x: f64) -> (f64, f64) {
    let x2 = x * x;
    let (mut s, mut c) = (0.0f64, 0.0f64);
    // Horner from the highest term down: sin to x^17, cos to x^18.
    for k in (0..9).rev() {
        let n = 2 * k as u32;
        let fs = 1.0 / factorial(n + 1);
        let fc = 1.0 / factorial(n);
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        s = s * x2 + sign * fs;
        c = c * x2 + sign * fc;
    }
    (s * x, c)
}

/// `n!` as `f64` (exact up to 18!).
fn factorial(n: u32) -> f64 {
    (1..=n).fold(1.0, |a, k| a * f64::from(k))
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
        let (rows, cols) = shape;
        debug_assert_eq!(src.len(), rows * cols);
        debug_assert_eq!(dst.len(), rows * cols);
        let [m00, m01, m10, m11] = self.m;
        // Offsets of pixel centres from the image centre, in halves of a pixel scaled
        // to 16.16: (2x + 1 − cols) / 2.
        let half = |i: usize, n: usize| (2 * i as i64 + 1 - n as i64) << 15;
        let sample = |x: i64, y: i64| -> u8 {
            // Integer parts index the top-left pixel; 8 bits of fraction weight it.
            let (x0, y0) = (x >> 16, y >> 16);
            let (fx, fy) = ((x >> 8) & 0xff, (y >> 8) & 0xff);
            let at = |xi: i64, yi: i64| -> i64 {
                if xi < 0 || yi < 0 || xi >= cols as i64 || yi >= rows as i64 {
                    0
                } else {
                    i64::from(src[yi as usize * cols + xi as usize])
                }
            };
            let top = at(x0, y0) * (256 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (256 - fx) + at(x0 + 1, y0 + 1) * fx;
            ((top * (256 - fy) + bottom * fy + 32768) >> 16) as u8
        };
        for (y, row) in dst.chunks_exact_mut(cols).enumerate() {
            let dy = half(y, rows);
            for (x, out) in row.iter_mut().enumerate() {
                let xm = if self.flip { cols - 1 - x } else { x };
                let dx = half(xm, cols);
                let sx = self.origin[0] + ((m00 * dx + m01 * dy) >> 16);
                let sy = self.origin[1] + ((m10 * dx + m11 * dy) >> 16);
                *out = sample(sx, sy);
            }
        }
    }
}

/// Fills `dst` (as long as `src`) with epoch `epoch`'s augmented copy of every image in
/// `src` (`features` bytes each, of `shape`), for a run seeded `seed`, on `threads`
/// threads. The bytes do not depend on `threads`.
pub fn augment_epoch(
    a: &Augment,
    src: &[u8],
    dst: &mut [u8],
    shape: (usize, usize),
    seed: u64,
    epoch: u64,
    threads: usize,
) {
    let features = shape.0 * shape.1;
    assert_eq!(src.len(), dst.len());
    if features == 0 {
        return;
    }
    let images = src.len() / features;
    let per = images.div_ceil(threads.max(1)).max(1);
    let work = |first: usize, dst: &mut [u8]| {
        for (j, out) in dst.chunks_exact_mut(features).enumerate() {
            let i = first + j;
            let t = Transform::draw(a, shape, seed, epoch, i as u64);
            t.apply(&src[i * features..(i + 1) * features], out, shape);
        }
    };
    if threads <= 1 || images < 2 {
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
