//! Turning a picture of a digit (PNG or PGM, any size, any paper, ink darker or lighter
//! than the paper) into the 784 inputs a model expects, the way the MNIST set itself was
//! made from scanned forms:
//!
//! 1. **decode within limits**: at most [`MAX_SIDE`] pixels a side and [`MAX_PIXELS`] in
//!    all, checked from the header before any pixel is decoded, and the decoder's own
//!    allocation limit [`MAX_DECODE_BYTES`];
//! 2. **grey levels**: colour becomes luma; transparent pixels are laid over white, or
//!    over black when the opaque pixels are mostly light (white ink on a transparent
//!    layer);
//! 3. **working size**: a larger picture is area-averaged down to at most
//!    [`WORK_SIDE`] pixels a side (the digit ends up 20 pixels tall anyway);
//! 4. **background**: a quadratic surface `a + bx + cy + dx² + ey² + fxy` fitted to the
//!    picture by trimmed least squares (pixels far from the fit are dropped and the fit
//!    repeated), so grey paper, a lighting gradient and vignetting are all "paper";
//!    the noise level σ is the scaled median absolute deviation of the residuals;
//! 5. **polarity**: ink is the side of the residuals with the heavier tail beyond 3σ
//!    (dark ink on light paper or light chalk on a dark board);
//! 6. **ink components**: pixels whose ink strength is above both 3σ and 30% of the
//!    picture's ink contrast, grouped into 8-connected components;
//! 7. **the digit**: the heaviest component that neither touches the picture's edge nor
//!    encloses other ink like a frame (hollow, much larger than what it holds, and
//!    what it holds lies in its hole or weighs a twentieth of it: a stray mark in a
//!    digit's box does not make the digit a frame), and is not a speck; then the
//!    components that belong to it (heavy enough, close to it), so a "5" whose bar
//!    is detached stays whole while dust, page edges and frames are dropped;
//! 8. **contrast**: ink strength divided by the digit's own contrast (the 90th
//!    percentile of its ink), clamped to `[0, 1]`, so faint pencil and black marker
//!    give the same saturated strokes MNIST has; pixels below the noise floor of
//!    step 6 are paper, but the floor is not subtracted from the others, so noise
//!    does not thin the strokes' edges;
//! 9. **stroke width**: the pen's width is measured along the strokes' centre lines
//!    (the lower quartile of twice the distance to the paper, on the digit brought to
//!    [`STROKE_SIDE`] pixels); a pen thinner or thicker than 80% of MNIST's is
//!    brought to MNIST's median pen by a grey-level dilation or erosion;
//! 10. **MNIST's normalisation**: crop to the digit's bounding box, scale it to fit
//!     20×20 keeping its aspect ratio (area averaging when shrinking, so it is
//!     anti-aliased; linear interpolation when enlarging), and place it in a black
//!     28×28 frame, by whole pixels, so that its centre of mass falls on pixel
//!     (14, 14) counting from 0 — where MNIST's digits have theirs;
//! 11. grey levels `0..=255` (the bytes [`to_mnist_image`] returns, which `predict
//!     --show-input` writes), divided by 255 for the model as in training.
//!
//! Every step is plain arithmetic in a fixed order on one thread: the same picture gives
//! the same bytes on every machine.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use image::{DynamicImage, GrayImage, ImageError, ImageReader, Limits, Luma};

/// MNIST's side length.
pub const SIDE: usize = 28;
/// The side of the box the digit is scaled into.
pub const DIGIT_BOX: u32 = 20;
/// Largest width or height accepted, checked before decoding.
pub const MAX_SIDE: u32 = 20_000;
/// Largest number of pixels accepted (50 megapixels, more than phone cameras store by
/// default), checked before decoding: a 16,000×16,000 PNG of a few kilobytes would
/// otherwise take a gigabyte to decode.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Allocation limit handed to the decoder (an 8-bit RGBA picture of [`MAX_PIXELS`] fits).
pub const MAX_DECODE_BYTES: u64 = 256 << 20;
/// Pictures are area-averaged down to at most this many pixels a side before the
/// digit is looked for: enough detail for a 20-pixel digit, and bounded work.
pub const WORK_SIDE: u32 = 512;

/// Reads a PNG or PGM file as grey levels (see the module docs, steps 1–2). Pictures
/// larger than [`MAX_SIDE`] or [`MAX_PIXELS`] are refused from their header, with an
/// error naming their size.
pub fn load_gray(path: &Path) -> Result<GrayImage> {
    let open = || -> Result<_> {
        ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| anyhow!("{}: cannot read image: {e}", path.display()))
    };
    let unreadable =
        |e: ImageError| anyhow!("{}: not a readable PNG or PGM image: {e}", path.display());
    // The header alone gives the size: refuse a huge picture before allocating for it.
    let (w, h) = open()?.into_dimensions().map_err(unreadable)?;
    check_size(w, h).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut reader = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        ImageError::Limits(_) => anyhow!(
            "{}: the {w}×{h} image needs more than {} MiB to decode ({e}); convert it to 8-bit or make it smaller",
            path.display(),
            MAX_DECODE_BYTES >> 20
        ),
        e => unreadable(e),
    })?;
    Ok(flatten(&img))
}

/// Checks a picture's size against [`MAX_SIDE`] and [`MAX_PIXELS`].
pub fn check_size(w: u32, h: u32) -> Result<()> {
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        bail!(
            "the image is {w}×{h} pixels, larger than the limit of {MAX_SIDE} a side and {} megapixels; make it smaller",
            MAX_PIXELS / 1_000_000
        );
    }
    Ok(())
}

/// Grey levels of a decoded picture. Transparent pixels are laid over white, unless the
/// opaque pixels are mostly light: then over black, so a white digit on a transparent
/// layer stays visible.
pub fn flatten(img: &DynamicImage) -> GrayImage {
    if !img.color().has_alpha() {
        return img.to_luma8();
    }
    let la = img.to_luma_alpha8();
    let (mut lum, mut weight) = (0u64, 0u64);
    for p in la.pixels() {
        lum += u64::from(p[0]) * u64::from(p[1]);
        weight += u64::from(p[1]);
    }
    let backdrop: u32 = if weight > 0 && lum > 127 * weight {
        0
    } else {
        255
    };
    let (w, h) = la.dimensions();
    GrayImage::from_fn(w, h, |x, y| {
        let p = la.get_pixel(x, y);
        let (l, a) = (u32::from(p[0]), u32::from(p[1]));
        Luma([((l * a + backdrop * (255 - a) + 127) / 255) as u8])
    })
}

/// Brings a grey picture to MNIST's 28×28 form (module docs, steps 3–11): black
/// background, ink up to 255. Fails when the picture holds no ink.
pub fn to_mnist_image(gray: &GrayImage) -> Result<GrayImage> {
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        bail!("the image is empty");
    }
    let work = working_copy(gray);
    let digit = find_digit(&work)?;
    let digit = normalise_stroke(digit);
    let pixels = mnist_frame(&digit)?;
    Ok(GrayImage::from_raw(SIDE as u32, SIDE as u32, pixels).expect("28×28 bytes"))
}

/// Brings a grey picture to MNIST's form and returns its inputs (`pixel / 255`).
/// Fails when the picture holds no ink.
pub fn to_mnist_inputs(gray: &GrayImage) -> Result<Vec<f32>> {
    Ok(inputs_of(&to_mnist_image(gray)?))
}

/// The model's inputs for a 28×28 image: each byte divided by 255, as in training.
pub fn inputs_of(image: &GrayImage) -> Vec<f32> {
    image
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0)
        .collect()
}

/// Loads an image file and brings it to MNIST's 28×28 form; errors name the file.
pub fn load_mnist_image(path: &Path) -> Result<GrayImage> {
    let gray = load_gray(path)?;
    to_mnist_image(&gray).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Loads an image file and brings it to MNIST's form; errors name the file.
pub fn load_mnist_inputs(path: &Path) -> Result<Vec<f32>> {
    Ok(inputs_of(&load_mnist_image(path)?))
}

/// A grey picture as floats, row-major.
#[derive(Clone, Debug)]
struct Plane {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Plane {
    fn at(&self, x: usize, y: usize) -> f32 {
        self.px[y * self.w + x]
    }
}

/// Step 3: the picture as floats, area-averaged down to [`WORK_SIDE`] if larger.
fn working_copy(gray: &GrayImage) -> Plane {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let src = Plane {
        w,
        h,
        px: gray.as_raw().iter().map(|&v| f32::from(v)).collect(),
    };
    let long = w.max(h);
    let work = WORK_SIDE as usize;
    if long <= work {
        return src;
    }
    let (dw, dh) = (
        (w * work).div_ceil(long).max(1),
        (h * work).div_ceil(long).max(1),
    );
    resample(&src, dw, dh)
}

/// For each of `n_out` output samples along one axis, the input samples it reads and
/// their weights (summing to 1): the exact overlap of its box with each input pixel
/// when shrinking (area averaging, which anti-aliases), linear interpolation between
/// pixel centres when enlarging.
fn axis_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            if n_out <= n_in {
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                let mut taps = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n_in {
                    let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
                    if overlap > 0.0 {
                        taps.push((i, (overlap / scale) as f32));
                    }
                    i += 1;
                }
                taps
            } else {
                let x = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
                let i = x.floor() as usize;
                let f = x - i as f64;
                if i + 1 < n_in && f > 0.0 {
                    vec![(i, (1.0 - f) as f32), (i + 1, f as f32)]
                } else {
                    vec![(i, 1.0)]
                }
            }
        })
        .collect()
}

/// Resamples a plane to `dw × dh`, rows then columns (the filters are separable).
fn resample(src: &Plane, dw: usize, dh: usize) -> Plane {
    let wx = axis_weights(src.w, dw);
    let wy = axis_weights(src.h, dh);
    let mut rows = vec![0.0f32; dw * src.h];
    for y in 0..src.h {
        let line = &src.px[y * src.w..(y + 1) * src.w];
        for (x, taps) in wx.iter().enumerate() {
            rows[y * dw + x] = taps.iter().map(|&(i, t)| line[i] * t).sum();
        }
    }
    let mut px = vec![0.0f32; dw * dh];
    for (y, taps) in wy.iter().enumerate() {
        for x in 0..dw {
            px[y * dw + x] = taps.iter().map(|&(i, t)| rows[i * dw + x] * t).sum();
        }
    }
    Plane { w: dw, h: dh, px }
}

/// The median of some values (the lower middle one for an even count).
fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = (values.len() - 1) / 2;
    *values.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Number of terms of the background surface.
const TERMS: usize = 6;

/// The background surface's terms at `(x, y)`, coordinates scaled to `[-1, 1]` so the
/// least-squares system stays well conditioned.
fn terms(x: usize, y: usize, w: usize, h: usize) -> [f64; TERMS] {
    let u = if w > 1 {
        2.0 * x as f64 / (w - 1) as f64 - 1.0
    } else {
        0.0
    };
    let v = if h > 1 {
        2.0 * y as f64 / (h - 1) as f64 - 1.0
    } else {
        0.0
    };
    [1.0, u, v, u * u, v * v, u * v]
}

/// Least squares of the surface on the samples `(x, y, value)`, with a tiny ridge so a
/// degenerate picture (one row, one column) still has a solution.
fn fit_surface(samples: &[(usize, usize, f32)], w: usize, h: usize) -> [f64; TERMS] {
    let mut a = [[0.0f64; TERMS + 1]; TERMS];
    for &(x, y, v) in samples {
        let t = terms(x, y, w, h);
        for i in 0..TERMS {
            for j in 0..TERMS {
                a[i][j] += t[i] * t[j];
            }
            a[i][TERMS] += t[i] * f64::from(v);
        }
    }
    let ridge = 1e-9 * (a[0][0] + 1.0);
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += ridge;
    }
    // Gauss–Jordan elimination with partial pivoting.
    for col in 0..TERMS {
        let pivot = (col..TERMS)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-300 {
            continue;
        }
        for v in &mut a[col][col..] {
            *v /= d;
        }
        let pivot_row = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            let f = row[col];
            if r != col && f != 0.0 {
                for (v, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *v -= f * p;
                }
            }
        }
    }
    let mut c = [0.0; TERMS];
    for (i, ci) in c.iter_mut().enumerate() {
        *ci = a[i][TERMS];
    }
    c
}

/// Evaluates the surface on every pixel.
fn surface(c: &[f64; TERMS], w: usize, h: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let t = terms(x, y, w, h);
            out.push(t.iter().zip(c).map(|(a, b)| a * b).sum::<f64>() as f32);
        }
    }
    out
}

/// Step 4: the paper's grey level at every pixel and the noise level σ. Starts from the
/// median (robust to the ink, which is a minority), then refits the surface to the
/// pixels within 2.5σ of the previous fit a few times, so ink, frames and dust stop
/// pulling on it.
fn background(img: &Plane) -> (Vec<f32>, f32) {
    let (w, h) = (img.w, img.h);
    // About 40,000 samples are plenty for six coefficients.
    let step = ((w * h) as f64 / 40_000.0).sqrt().ceil().max(1.0) as usize;
    let mut samples = Vec::new();
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            samples.push((x, y, img.at(x, y)));
        }
    }
    let mut values: Vec<f32> = samples.iter().map(|s| s.2).collect();
    let med = median(&mut values);
    let mut coef = [0.0; TERMS];
    coef[0] = f64::from(med);
    let residuals = |coef: &[f64; TERMS]| -> Vec<f32> {
        samples
            .iter()
            .map(|&(x, y, v)| {
                let t = terms(x, y, w, h);
                v - t.iter().zip(coef).map(|(a, b)| a * b).sum::<f64>() as f32
            })
            .collect()
    };
    let sigma_of = |r: &[f32]| {
        let mut abs: Vec<f32> = r.iter().map(|v| v.abs()).collect();
        1.4826 * median(&mut abs)
    };
    for _ in 0..6 {
        let r = residuals(&coef);
        let band = (2.5 * sigma_of(&r)).max(3.0);
        let inliers: Vec<(usize, usize, f32)> = samples
            .iter()
            .zip(&r)
            .filter(|(_, r)| r.abs() <= band)
            .map(|(s, _)| *s)
            .collect();
        if inliers.len() < 2 * TERMS {
            break;
        }
        coef = fit_surface(&inliers, w, h);
    }
    let sigma = sigma_of(&residuals(&coef));
    (surface(&coef, w, h), sigma)
}

/// One 8-connected group of ink pixels.
#[derive(Clone, Debug)]
struct Component {
    pixels: Vec<usize>,
    /// Sum of ink strength.
    mass: f64,
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    touches_edge: bool,
    /// Encloses other ink the way a frame does.
    encloses: bool,
}

impl Component {
    fn width(&self) -> usize {
        self.x1 - self.x0 + 1
    }
    fn height(&self) -> usize {
        self.y1 - self.y0 + 1
    }
    fn size(&self) -> usize {
        self.width().max(self.height())
    }
    fn box_area(&self) -> usize {
        self.width() * self.height()
    }
}

/// Labels the 8-connected components of `mask`.
fn components(mask: &[bool], ink: &[f32], w: usize, h: usize) -> Vec<Component> {
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut c = Component {
            pixels: Vec::new(),
            mass: 0.0,
            x0: usize::MAX,
            y0: usize::MAX,
            x1: 0,
            y1: 0,
            touches_edge: false,
            encloses: false,
        };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            c.pixels.push(i);
            c.mass += f64::from(ink[i]);
            c.x0 = c.x0.min(x);
            c.y0 = c.y0.min(y);
            c.x1 = c.x1.max(x);
            c.y1 = c.y1.max(y);
            c.touches_edge |= x == 0 || y == 0 || x + 1 == w || y + 1 == h;
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        c.pixels.sort_unstable();
        out.push(c);
    }
    out
}

/// Gap between two boxes in pixels (0 when they overlap or touch).
fn box_gap(a: (usize, usize, usize, usize), b: &Component) -> usize {
    let gx = b.x0.saturating_sub(a.2).max(a.0.saturating_sub(b.x1));
    let gy = b.y0.saturating_sub(a.3).max(a.1.saturating_sub(b.y1));
    gx.max(gy)
}

/// The digit found in a picture: ink strength in `[0, 1]` on the working plane, zero
/// away from the digit.
struct Digit {
    ink: Plane,
}

/// Steps 4–8: background, polarity, components, the digit and its contrast.
fn find_digit(img: &Plane) -> Result<Digit> {
    let (w, h) = (img.w, img.h);
    let (bg, sigma) = background(img);
    let residual: Vec<f32> = img.px.iter().zip(&bg).map(|(v, b)| v - b).collect();
    let floor = (3.0 * sigma).max(4.0);
    // Step 5: the ink's side is the heavier tail beyond the noise.
    let (mut dark, mut light) = (0.0f64, 0.0f64);
    for &r in &residual {
        dark += f64::from((-r - floor).max(0.0));
        light += f64::from((r - floor).max(0.0));
    }
    if dark == 0.0 && light == 0.0 {
        bail!("no digit found: the image has no ink (nothing stands out from the background)");
    }
    let sign = if dark >= light { -1.0 } else { 1.0 };
    let strength: Vec<f32> = residual.iter().map(|r| sign * r).collect();
    // Step 6: a first contrast from all clear ink, to set the threshold.
    let mut clear: Vec<f32> = strength.iter().copied().filter(|&e| e > floor).collect();
    let high = {
        let k = (clear.len() * 99 / 100).min(clear.len() - 1);
        *clear.select_nth_unstable_by(k, f32::total_cmp).1
    };
    let threshold = floor.max(0.3 * high);
    let mask: Vec<bool> = strength.iter().map(|&e| e > threshold).collect();
    let mut comps = components(&mask, &strength, w, h);
    // Heaviest first; ties keep reading order, so the choice is deterministic.
    comps.sort_by(|a, b| {
        b.mass
            .total_cmp(&a.mass)
            .then(a.pixels[0].cmp(&b.pixels[0]))
    });
    // Noise gives thousands of one-pixel specks; only the heavy ones can matter.
    comps.truncate(256);
    mark_frames(&mut comps, w);
    // Step 7: the main component, then what belongs to it.
    let speck = 0.05 * w.max(h) as f64;
    let main = comps
        .iter()
        .position(|c| !c.encloses && !c.touches_edge && c.size() as f64 >= speck)
        .or_else(|| comps.iter().position(|c| !c.encloses))
        .unwrap_or(0);
    let mut chosen = vec![false; comps.len()];
    chosen[main] = true;
    let m = &comps[main];
    let mut bbox = (m.x0, m.y0, m.x1, m.y1);
    let (reach, min_mass, main_edge) = (
        (0.2 * m.size() as f64) as usize,
        0.03 * m.mass,
        m.touches_edge,
    );
    loop {
        let mut grown = false;
        for (i, c) in comps.iter().enumerate() {
            if chosen[i] || c.encloses || (c.touches_edge && !main_edge) || c.mass < min_mass {
                continue;
            }
            if box_gap(bbox, c) <= reach {
                chosen[i] = true;
                bbox = (
                    bbox.0.min(c.x0),
                    bbox.1.min(c.y0),
                    bbox.2.max(c.x1),
                    bbox.3.max(c.y1),
                );
                grown = true;
            }
        }
        if !grown {
            break;
        }
    }
    // Step 8: the digit's own contrast.
    let mut keep = vec![false; w * h];
    let mut own = Vec::new();
    for c in comps
        .iter()
        .zip(&chosen)
        .filter(|(_, &k)| k)
        .map(|(c, _)| c)
    {
        for &i in &c.pixels {
            own.push(strength[i]);
            let (x, y) = (i % w, i / w);
            // One pixel around the strokes keeps their anti-aliased edges.
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    keep[ny * w + nx] = true;
                }
            }
        }
    }
    let contrast = {
        let k = (own.len() * 9 / 10).min(own.len() - 1);
        *own.select_nth_unstable_by(k, f32::total_cmp).1
    };
    // Pixels at the noise level are paper (else the digit's box would take in the
    // noise around its strokes); the others keep their strength, the floor not taken
    // off it. Taken off every pixel, the floor ate the anti-aliased or blurred edge of
    // every stroke in proportion to the noise, so a noisy photo's strokes came out
    // thinner than a clean scan's, to remove noise that the shrinking to 20×20
    // averages away anyway. `contrast` is above the floor, so above zero.
    let px = strength
        .iter()
        .zip(&keep)
        .map(|(&e, &k)| {
            if k && e > floor {
                (e / contrast).clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    Ok(Digit {
        ink: Plane { w, h, px },
    })
}

/// Marks components that enclose other ink the way a frame around a page does: hollow
/// (little ink in their box), much larger than what they hold, and holding something
/// that is not a speck — not a speck beside the frame's own ink either: it weighs a
/// twentieth of the frame or more, or lies in one of the frame's holes. (A digit
/// with a stray mark in its box is hollow and larger than the mark too; by weight
/// alone, a heavy border round a page would not be a frame of the light digit in it.)
fn mark_frames(comps: &mut [Component], w: usize) {
    let n = comps.len();
    for i in 0..n {
        let c = &comps[i];
        let fill = c.pixels.len() as f64 / c.box_area() as f64;
        if fill > 0.35 {
            continue;
        }
        let holds = (0..n).any(|j| {
            let d = &comps[j];
            j != i
                && c.x0 < d.x0
                && d.x1 < c.x1
                && c.y0 < d.y0
                && d.y1 < c.y1
                && d.size() as f64 >= 0.05 * c.size() as f64
                && c.box_area() >= 3 * d.box_area()
                && (d.mass >= 0.05 * c.mass || in_hole(c, d, w))
        });
        comps[i].encloses = holds;
    }
}

/// Whether `inner` lies in a hole of `outer`: no 4-connected path off `outer`'s ink
/// (the background's connectivity for 8-connected ink) leads from it to the edge of
/// `outer`'s box. `w` is the picture's width.
fn in_hole(outer: &Component, inner: &Component, w: usize) -> bool {
    let (bw, bh) = (outer.width(), outer.height());
    let local = |i: usize| (i / w - outer.y0) * bw + i % w - outer.x0;
    let mut wall = vec![false; bw * bh];
    for &i in &outer.pixels {
        wall[local(i)] = true;
    }
    // Flood from the box's edge over everything that is not `outer`'s ink.
    let mut seen = vec![false; bw * bh];
    let mut stack = Vec::new();
    for k in 0..bw * bh {
        let (x, y) = (k % bw, k / bw);
        if (x == 0 || y == 0 || x + 1 == bw || y + 1 == bh) && !wall[k] {
            seen[k] = true;
            stack.push(k);
        }
    }
    while let Some(k) = stack.pop() {
        let (x, y) = (k % bw, k / bw);
        let next = [
            (x > 0).then(|| k - 1),
            (x + 1 < bw).then(|| k + 1),
            (y > 0).then(|| k - bw),
            (y + 1 < bh).then(|| k + bw),
        ];
        for m in next.into_iter().flatten() {
            if !wall[m] && !seen[m] {
                seen[m] = true;
                stack.push(m);
            }
        }
    }
    !inner.pixels.iter().any(|&i| seen[local(i)])
}

/// MNIST's pens, as step 9 measures them (the lower quartile along the strokes'
/// centre lines of twice the distance to the paper) on the bundled training digits
/// brought to [`STROKE_SIDE`] pixels a side, in fractions of that side: a tenth of
/// the digits are drawn thinner than this (`mnist_pens_are_as_the_constants_say`
/// measures all three).
pub const PEN_THIN: f64 = 0.0713;
/// The median of MNIST's pens (see [`PEN_THIN`]).
pub const PEN_MEDIAN: f64 = 0.1027;
/// A tenth of MNIST's digits are drawn thicker than this (see [`PEN_THIN`]).
pub const PEN_THICK: f64 = 0.1491;

/// The digit's pen is measured with its longer side at this many pixels (enlarged or
/// shrunk to it, so a 20-pixel picture is measured as finely as a photo), and changed
/// at that size, which bounds the cost of the morphology.
pub const STROKE_SIDE: usize = 112;

/// Bounding box `(x0, y0, x1, y1)` of the pixels above zero, if any.
fn ink_box(p: &Plane) -> Option<(usize, usize, usize, usize)> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..p.h {
        for x in 0..p.w {
            if p.at(x, y) > 0.0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 != usize::MAX).then_some((x0, y0, x1, y1))
}

/// The part of a plane inside a box, with `margin` zero pixels around it.
fn crop(p: &Plane, (x0, y0, x1, y1): (usize, usize, usize, usize), margin: usize) -> Plane {
    let (w, h) = (x1 - x0 + 1 + 2 * margin, y1 - y0 + 1 + 2 * margin);
    let mut px = vec![0.0; w * h];
    for y in y0..=y1 {
        let row = (y - y0 + margin) * w + margin;
        px[row..row + x1 - x0 + 1].copy_from_slice(&p.px[y * p.w + x0..=y * p.w + x1]);
    }
    Plane { w, h, px }
}

/// Squared distances along one line (Felzenszwalb and Huttenlocher, "Distance
/// transforms of sampled functions", 2012): `d[q] = min over p of (q - p)² + f[p]`,
/// through the lower envelope of the parabolas rooted at each `p`. `v` and `z` are
/// scratch of `f.len()` and `f.len() + 1` entries.
fn lower_envelope(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        let root =
            |p: usize| ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2 * (q - p)) as f64;
        let mut s = root(v[k]);
        // `z[0]` is -∞, so this stops at the first parabola at the latest.
        while s <= z[k] {
            k -= 1;
            s = root(v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *dq = (q as f64 - p as f64).powi(2) + f[p];
    }
}

/// For each pixel above one half, the Euclidean distance from its centre to the
/// nearest centre of a pixel that is not (outside the plane counts as not); 0 off
/// the ink. Exact: along rows by two sweeps, then down columns by [`lower_envelope`].
fn ink_distance(p: &Plane) -> Vec<f64> {
    let (w, h) = (p.w, p.h);
    let mut g = vec![0.0f64; w * h];
    for y in 0..h {
        let on = |x: usize| p.at(x, y) > 0.5;
        // Distance to the nearest paper in the row; the plane's edge is paper.
        let mut run = 0usize;
        for x in 0..w {
            run = if on(x) { run + 1 } else { 0 };
            g[y * w + x] = run as f64;
        }
        run = 0;
        for x in (0..w).rev() {
            run = if on(x) { run + 1 } else { 0 };
            let d = g[y * w + x].min(run as f64);
            g[y * w + x] = d * d;
        }
    }
    // Down the columns, with a paper row above and below.
    let n = h + 2;
    let (mut f, mut d, mut v, mut z) = (
        vec![0.0; n],
        vec![0.0; n],
        vec![0usize; n],
        vec![0.0; n + 1],
    );
    let mut out = vec![0.0; w * h];
    for x in 0..w {
        for y in 0..h {
            f[y + 1] = g[y * w + x];
        }
        lower_envelope(&f, &mut d, &mut v, &mut z);
        for y in 0..h {
            out[y * w + x] = d[y + 1].sqrt();
        }
    }
    out
}

/// The centre lines of the pixels above one half: Zhang and Suen's thinning ("A fast
/// parallel algorithm for thinning digital patterns", 1984), which peels boundary
/// pixels in two alternating sub-passes until lines one pixel wide remain, each
/// stroke keeping its length and connections. Only pixels on the ink's current
/// boundary are examined (what a sub-pass cannot peel stays for the next), so a
/// thick blot costs its area once, not once per layer peeled.
fn centre_lines(p: &Plane) -> Vec<bool> {
    let (w, h) = (p.w, p.h);
    // A border of paper round the plane spares every neighbour look-up a bounds check.
    let pw = w + 2;
    let mut on = vec![false; pw * (h + 2)];
    for y in 0..h {
        for x in 0..w {
            on[(y + 1) * pw + x + 1] = p.at(x, y) > 0.5;
        }
    }
    // Neighbours P2..P9 as the paper numbers them, clockwise from north.
    let around = [
        -(pw as isize),
        1 - pw as isize,
        1,
        pw as isize + 1,
        pw as isize,
        pw as isize - 1,
        -1,
        -(pw as isize) - 1,
    ];
    // Whether a pixel may be peeled, by sub-pass and by its neighbours as bits
    // (P2 the lowest): Zhang and Suen's conditions, worked out once for all 256.
    let peelable: [[bool; 256]; 2] = core::array::from_fn(|pass| {
        core::array::from_fn(|bits| {
            let n: [bool; 8] = core::array::from_fn(|k| bits >> k & 1 == 1);
            let neighbours = n.iter().filter(|&&v| v).count();
            let crossings = (0..8).filter(|&k| !n[k] && n[(k + 1) % 8]).count();
            let (p2, p4, p6, p8) = (n[0], n[2], n[4], n[6]);
            let inner = if pass == 0 {
                p4 && p6 && (p2 || p8)
            } else {
                p2 && p8 && (p4 || p6)
            };
            (2..=6).contains(&neighbours) && crossings == 1 && !inner
        })
    });
    let bits = |on: &[bool], i: usize| {
        around.iter().enumerate().fold(0usize, |b, (k, &d)| {
            b | usize::from(on[i.wrapping_add_signed(d)]) << k
        })
    };
    let mut queued = vec![false; on.len()];
    let mut candidates: Vec<usize> = (0..on.len())
        .filter(|&i| on[i] && bits(&on, i) != 0xff)
        .collect();
    for &i in &candidates {
        queued[i] = true;
    }
    let mut idle_passes = 0;
    for pass in (0..2).cycle() {
        let peel: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| peelable[pass][bits(&on, i)])
            .collect();
        if peel.is_empty() {
            idle_passes += 1;
            if idle_passes == 2 {
                break;
            }
            continue;
        }
        idle_passes = 0;
        for &i in &peel {
            on[i] = false;
        }
        // What stays of the candidates, and the ink that peeling laid bare.
        candidates.retain(|&i| {
            queued[i] = on[i];
            on[i]
        });
        for &i in &peel {
            for d in around {
                let j = i.wrapping_add_signed(d);
                if on[j] && !queued[j] {
                    queued[j] = true;
                    candidates.push(j);
                }
            }
        }
    }
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = on[(y + 1) * pw + x + 1];
        }
    }
    out
}

/// The pen's width in pixels: the lower quartile, over the strokes' centre lines, of
/// twice the distance to the paper. Counting along the centre lines weighs each
/// stroke by its length, not its area, so a blot or a filled loop does not outweigh
/// the strokes; and the lower quartile rather than the median because crossings,
/// blots and filled loops only ever widen a line, so the pen shows in the thinner
/// parts. Dilating or eroding the ink by `r` pixels changes it by `2r`, which
/// [`normalise_stroke`] relies on. 0 when no pixel is above one half.
fn pen_width(p: &Plane) -> f64 {
    let dist = ink_distance(p);
    let mut widths: Vec<f32> = centre_lines(p)
        .iter()
        .zip(&dist)
        .filter(|(&c, _)| c)
        // The middle pixel of an odd width `2k + 1` lies `k + 1` from the paper, of an
        // even width `2k` (thinned to one side) `k`: `2d - 1/2` is right on average.
        .map(|(_, &d)| (2.0 * d - 0.5) as f32)
        .collect();
    if widths.is_empty() {
        return 0.0;
    }
    let k = (widths.len() - 1) / 4;
    f64::from(*widths.select_nth_unstable_by(k, f32::total_cmp).1)
}

/// The digit's box, enlarged or shrunk so its longer side is [`STROKE_SIDE`] pixels.
fn at_stroke_side(p: &Plane) -> Option<Plane> {
    let cropped = crop(p, ink_box(p)?, 0);
    let long = cropped.w.max(cropped.h);
    let (w, h) = (
        (cropped.w * STROKE_SIDE).div_ceil(long).max(1),
        (cropped.h * STROKE_SIDE).div_ceil(long).max(1),
    );
    Some(resample(&cropped, w, h))
}

/// Grey-level dilation (`grow`) or erosion by a disc of radius `r` pixels; outside the
/// plane is paper. The disc is its rows: the extreme over each row's chord
/// (`|dx| <= √(r² - dy²)`) comes from the rows' extremes over widening windows, so
/// the cost grows with `r`, not with the disc's area.
fn morph(p: &Plane, r: usize, grow: bool) -> Plane {
    if grow {
        morph_by(p, r, f32::max, f32::NEG_INFINITY)
    } else {
        morph_by(p, r, f32::min, f32::INFINITY)
    }
}

/// [`morph`] with `pick` the maximum (dilation) or the minimum (erosion), and `none`
/// what `pick` never chooses.
fn morph_by(p: &Plane, r: usize, pick: impl Fn(f32, f32) -> f32, none: f32) -> Plane {
    let (w, h) = (p.w, p.h);
    // Rows with `r` pixels of paper either side.
    let pw = w + 2 * r;
    let mut padded = vec![0.0f32; pw * h];
    for y in 0..h {
        padded[y * pw + r..y * pw + r + w].copy_from_slice(&p.px[y * w..(y + 1) * w]);
    }
    // The chord's half-width on each row of the disc, widest first.
    let chord: Vec<usize> = (0..=r)
        .map(|dy| {
            (0..=r)
                .rev()
                .find(|c| c * c + dy * dy <= r * r)
                .unwrap_or(0)
        })
        .collect();
    let mut px = vec![none; w * h];
    // across: the extreme of each row over columns `x - c ..= x + c`, widened by one
    // column each side per step; the disc's rows whose chord is `c` are taken then.
    let mut across = p.px.clone();
    for c in 0..=r {
        if c > 0 {
            for (y, out) in across.chunks_exact_mut(w).enumerate() {
                let row = &padded[y * pw..(y + 1) * pw];
                let (left, right) = (&row[r - c..r - c + w], &row[r + c..r + c + w]);
                for ((o, &a), &b) in out.iter_mut().zip(left).zip(right) {
                    *o = pick(*o, pick(a, b));
                }
            }
        }
        for dy in (0..=r).filter(|&dy| chord[dy] == c) {
            for (y, out) in px.chunks_exact_mut(w).enumerate() {
                let above = y.checked_sub(dy);
                let below = Some(y + dy).filter(|&sy| sy < h && dy > 0);
                for sy in [above, below] {
                    match sy {
                        Some(sy) => {
                            for (o, &v) in out.iter_mut().zip(&across[sy * w..(sy + 1) * w]) {
                                *o = pick(*o, v);
                            }
                        }
                        // A row of paper, except the second look at row `y` itself.
                        None if dy > 0 => {
                            for o in out.iter_mut() {
                                *o = pick(*o, 0.0);
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }
    Plane { w, h, px }
}

/// Step 9: MNIST's writers used similar pens, and a model trained on them reads a
/// hairline or a marker stroke badly. A pen outside the range of 80% of MNIST's
/// ([`PEN_THIN`] to [`PEN_THICK`] of the digit's size) is brought to MNIST's median
/// by a grey-level dilation or erosion: a pen that far off says nothing of the width
/// the digit's writer would have had in MNIST, and the median is the likeliest. A
/// pen within the range is left as it is.
fn normalise_stroke(digit: Digit) -> Digit {
    let Some(mut p) = at_stroke_side(&digit.ink) else {
        return digit;
    };
    let side = p.w.max(p.h) as f64;
    let width = pen_width(&p);
    if width == 0.0 || (PEN_THIN..=PEN_THICK).contains(&(width / side)) {
        return digit;
    }
    // Dilating by `r` also moves each stroke's ends out by `r`, so the box the digit
    // is later scaled by grows by `2r` with the pen: `(width + 2r) / (side + 2r)` is
    // to be the median.
    let r = ((PEN_MEDIAN * side - width) / (2.0 * (1.0 - PEN_MEDIAN))).round();
    if r >= 1.0 {
        let r = r as usize;
        p = morph(&crop(&p, (0, 0, p.w - 1, p.h - 1), r), r, true);
    } else if r <= -1.0 {
        let thinner = morph(&p, -r as usize, false);
        // Never erode a digit away.
        if ink_box(&thinner).is_some() {
            p = thinner;
        }
    }
    Digit { ink: p }
}

/// Steps 10–11: crop, fit into 20×20 keeping the aspect ratio, centre by mass in 28×28.
fn mnist_frame(digit: &Digit) -> Result<Vec<u8>> {
    let p = &digit.ink;
    let Some(bbox) = ink_box(p) else {
        bail!("no digit found: the image has no ink");
    };
    let crop = crop(p, bbox, 0);
    let (cw, ch) = (crop.w, crop.h);
    let box_side = DIGIT_BOX as usize;
    let long = cw.max(ch);
    // Round half up: the shorter side keeps its proportion to the nearest pixel.
    let nw = ((cw * box_side * 2 + long) / (2 * long)).clamp(1, box_side);
    let nh = ((ch * box_side * 2 + long) / (2 * long)).clamp(1, box_side);
    let small = resample(&crop, nw, nh);
    // The centre of mass in pixel indices (pixel `x` at `x`, not at its centre
    // `x + 0.5`), moved to index `SIDE / 2`: where MNIST's digits have theirs. Half a
    // pixel off here is a shift of every stroke the model learnt positions of.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..nh {
        for x in 0..nw {
            let v = f64::from(small.at(x, y));
            mass += v;
            mx += v * x as f64;
            my += v * y as f64;
        }
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        ((nw - 1) as f64 / 2.0, (nh - 1) as f64 / 2.0)
    };
    let centre = (SIDE / 2) as f64;
    let (dx, dy) = ((centre - cx).round() as i64, (centre - cy).round() as i64);
    let mut out = vec![0u8; SIDE * SIDE];
    for y in 0..nh {
        for x in 0..nw {
            let (tx, ty) = (x as i64 + dx, y as i64 + dy);
            if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
                out[ty as usize * SIDE + tx as usize] =
                    (small.at(x, y).clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark "1"-like bar on a light 60×90 background.
    fn bar_light() -> GrayImage {
        GrayImage::from_fn(60, 90, |x, y| {
            if (25..35).contains(&x) && (10..80).contains(&y) {
                Luma([0])
            } else {
                Luma([250])
            }
        })
    }

    #[test]
    fn light_and_dark_backgrounds_agree() {
        let light = bar_light();
        let mut dark = light.clone();
        image::imageops::invert(&mut dark);
        let a = to_mnist_inputs(&light).unwrap();
        let b = to_mnist_inputs(&dark).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 784);
        // The bar is 20 px tall, centred: rows 4..24 have ink in the centre column.
        assert!(a[14 * 28 + 14] > 0.9);
        assert_eq!(a[2 * 28 + 14], 0.0);
        assert_eq!(a[14 * 28 + 2], 0.0);
    }

    /// The bundled digits' test split, read from the repository.
    fn test_digits() -> crate::idx::Images {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-digits");
        crate::idx::read_images(&dir.join("t10k-images-idx3-ubyte.gz")).unwrap()
    }

    /// Test digit `i` drawn `scale` times larger, dark ink on white paper.
    fn drawn(images: &crate::idx::Images, i: usize, scale: u32) -> GrayImage {
        let px = images.image(i);
        GrayImage::from_fn(28 * scale, 28 * scale, |x, y| {
            Luma([255 - px[(y / scale * 28 + x / scale) as usize]])
        })
    }

    /// The centre of mass of a 28×28 image in pixel indices.
    fn centre_of_mass(img: &GrayImage) -> (f64, f64) {
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (x, y, p) in img.enumerate_pixels() {
            let v = f64::from(p[0]);
            m += v;
            mx += v * f64::from(x);
            my += v * f64::from(y);
        }
        (mx / m, my / m)
    }

    /// MNIST moved each digit by whole pixels so its centre of mass fell on pixel
    /// (14, 14): within half a pixel of it, and on average on it. Drawn digits come
    /// out the same way; half a pixel up and left of it (the centre of mass of pixel
    /// centres placed at 14.0) misreads digits the model reads right in the data set.
    #[test]
    fn the_centre_of_mass_falls_where_mnist_puts_it() {
        let images = test_digits();
        let (mut sx, mut sy) = (0.0, 0.0);
        let n = 100;
        for i in 0..n {
            let own = GrayImage::from_raw(28, 28, images.image(i).to_vec()).unwrap();
            let (ox, oy) = centre_of_mass(&own);
            assert!(
                (ox - 14.0).abs() <= 0.5 && (oy - 14.0).abs() <= 0.5,
                "data set digit {i}: ({ox}, {oy})"
            );
            let (cx, cy) = centre_of_mass(&to_mnist_image(&drawn(&images, i, 5)).unwrap());
            assert!(
                (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
                "digit {i}: ({cx}, {cy})"
            );
            sx += cx;
            sy += cy;
        }
        let (mx, my) = (sx / n as f64, sy / n as f64);
        assert!(
            (mx - 14.0).abs() < 0.15 && (my - 14.0).abs() < 0.15,
            "mean ({mx}, {my})"
        );
    }

    /// A blurred bar (edges ramping over 8 pixels, as a photo's) of ink 40 on paper
    /// 200, with Gaussian noise of standard deviation `sigma` grey levels.
    fn blurred_bar(sigma: f64) -> GrayImage {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        GrayImage::from_fn(240, 240, |x, y| {
            let (dx, dy) = ((f64::from(x) - 120.0).abs(), (f64::from(y) - 120.0).abs());
            // Coverage 1 within 6 pixels of the axis, 0 beyond 14; 70 pixels long.
            let across = ((14.0 - dx) / 8.0).clamp(0.0, 1.0);
            let along = ((78.0 - dy) / 8.0).clamp(0.0, 1.0);
            let ink = across * along;
            // The sum of twelve uniforms less six is close to a standard normal.
            let n: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
            Luma([(200.0 - 160.0 * ink + sigma * n).round().clamp(0.0, 255.0) as u8])
        })
    }

    /// Camera noise leaves the strokes about as wide as a clean picture's: the noise
    /// floor (three times the noise) only decides what is ink. Subtracted from the
    /// ink's strength, it ate the blurred edges in proportion to the noise.
    #[test]
    fn noise_does_not_thin_the_strokes() {
        // The ink across the bar's middle rows, in pixels of full ink per row.
        let width = |img: &GrayImage| {
            let digit = find_digit(&working_copy(img)).unwrap().ink;
            let sum: f32 = (100..140)
                .flat_map(|y| (0..240).map(move |x| (x, y)))
                .map(|(x, y)| digit.at(x, y))
                .sum();
            sum / 40.0
        };
        let clean = width(&blurred_bar(0.0));
        // The bar's ink is 20 pixels across (12 full and two 8-pixel ramps).
        assert!((clean - 20.0).abs() < 0.5, "clean: {clean}");
        for sigma in [4.0, 8.0, 12.0] {
            let noisy = width(&blurred_bar(sigma));
            // The noise still lifts the digit's contrast (its 90th percentile) a
            // little; with the floor subtracted, σ 12 lost more than this allows.
            assert!(
                noisy > 0.9 * clean,
                "σ {sigma}: {noisy} pixels across, clean {clean}"
            );
        }
    }

    /// The constants are what [`pen_width`] says of the bundled training digits, each
    /// cropped to its box and enlarged to [`STROKE_SIDE`] as step 9 would (the
    /// 20-pixel box the digit was scaled to is the whole of the scan MNIST kept).
    #[test]
    fn mnist_pens_are_as_the_constants_say() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-digits");
        let images = crate::idx::read_images(&dir.join("train-images-idx3-ubyte.gz")).unwrap();
        let mut pens: Vec<f64> = (0..images.count)
            .map(|i| {
                let ink = Plane {
                    w: 28,
                    h: 28,
                    px: images
                        .image(i)
                        .iter()
                        .map(|&v| f32::from(v) / 255.0)
                        .collect(),
                };
                let p = at_stroke_side(&ink).unwrap();
                pen_width(&p) / p.w.max(p.h) as f64
            })
            .collect();
        pens.sort_by(f64::total_cmp);
        let at = |q: f64| pens[((pens.len() - 1) as f64 * q).round() as usize];
        let (thin, median, thick) = (at(0.1), at(0.5), at(0.9));
        eprintln!("PENS {thin:.4} {median:.4} {thick:.4}");
        for (name, measured, constant) in [
            ("PEN_THIN", thin, PEN_THIN),
            ("PEN_MEDIAN", median, PEN_MEDIAN),
            ("PEN_THICK", thick, PEN_THICK),
        ] {
            assert!(
                (measured - constant).abs() < 5e-5,
                "{name} is {constant}, the training digits say {measured:.4}"
            );
        }
    }

    /// The row-wise dilation and erosion equal the plain ones (every pixel of the disc
    /// looked at), edges included.
    #[test]
    fn morphology_by_rows_is_by_the_disc() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let plane = Plane {
            w: 23,
            h: 17,
            px: (0..23 * 17)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 5) as f32 / 4.0
                })
                .collect(),
        };
        for r in 0..=9usize {
            for grow in [true, false] {
                let ri = r as isize;
                let mut plain = Vec::new();
                for y in 0..plane.h as isize {
                    for x in 0..plane.w as isize {
                        let mut v: f32 = if grow { 0.0 } else { 1.0 };
                        for dy in -ri..=ri {
                            for dx in -ri..=ri {
                                if dx * dx + dy * dy > ri * ri {
                                    continue;
                                }
                                let (sx, sy) = (x + dx, y + dy);
                                let inside = (0..plane.w as isize).contains(&sx)
                                    && (0..plane.h as isize).contains(&sy);
                                let s = if inside {
                                    plane.at(sx as usize, sy as usize)
                                } else {
                                    0.0
                                };
                                v = if grow { v.max(s) } else { v.min(s) };
                            }
                        }
                        plain.push(v);
                    }
                }
                assert_eq!(morph(&plane, r, grow).px, plain, "r {r}, grow {grow}");
            }
        }
    }

    /// Pen strokes through points of the unit square on a `side × side` plane, `radius`
    /// pixels either side of the line, anti-aliased; and discs `(x, y, radius)`.
    fn drawn_plane(
        side: usize,
        lines: &[[(f64, f64); 2]],
        radius: f64,
        blots: &[(f64, f64, f64)],
    ) -> Plane {
        let s = side as f64;
        let mut px = Vec::with_capacity(side * side);
        for y in 0..side {
            for x in 0..side {
                let (px_, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let mut cover: f64 = 0.0;
                for &[a, b] in lines {
                    let (ax, ay, bx, by) = (a.0 * s, a.1 * s, b.0 * s, b.1 * s);
                    let (vx, vy) = (bx - ax, by - ay);
                    let t =
                        (((px_ - ax) * vx + (py - ay) * vy) / (vx * vx + vy * vy)).clamp(0.0, 1.0);
                    let d = (px_ - ax - t * vx).hypot(py - ay - t * vy);
                    cover = cover.max((radius + 0.5 - d).clamp(0.0, 1.0));
                }
                for &(bx, by, r) in blots {
                    let d = (px_ - bx * s).hypot(py - by * s);
                    cover = cover.max((r * s + 0.5 - d).clamp(0.0, 1.0));
                }
                px.push(cover as f32);
            }
        }
        Plane {
            w: side,
            h: side,
            px,
        }
    }

    /// A "7" and a "4" as a pen draws them.
    const SEVEN: &[[(f64, f64); 2]] = &[[(0.2, 0.15), (0.8, 0.15)], [(0.8, 0.15), (0.4, 0.85)]];
    const FOUR: &[[(f64, f64); 2]] = &[
        [(0.55, 0.1), (0.2, 0.6)],
        [(0.2, 0.6), (0.8, 0.6)],
        [(0.65, 0.3), (0.65, 0.9)],
    ];

    /// The measure follows the pen: strokes whose ink is above one half within `k`
    /// pixels of their line measure `2k` (give or take a pixel), and dilating or
    /// eroding by `r` adds or takes `2r` (give or take the pixel and a half that
    /// distances between pixel centres allow), as step 9 assumes when it picks `r`.
    #[test]
    fn the_pen_is_measured_along_the_strokes() {
        for shape in [SEVEN, FOUR] {
            for radius in [2.0, 4.0, 7.0] {
                let p = drawn_plane(112, shape, radius, &[]);
                let width = pen_width(&p);
                assert!(
                    (width - 2.0 * radius).abs() <= 1.0,
                    "radius {radius}: {width}"
                );
                for r in 1..=3 {
                    let grown = pen_width(&morph(&p, r, true));
                    let thinned = pen_width(&morph(&p, r, false));
                    let two_r = 2.0 * r as f64;
                    assert!(
                        (grown - width - two_r).abs() <= 1.5,
                        "radius {radius}, +{r}: {width} to {grown}"
                    );
                    // Erosion can take no more than the stroke has.
                    assert!(
                        two_r + 2.0 > width || (width - thinned - two_r).abs() <= 1.5,
                        "radius {radius}, -{r}: {width} to {thinned}"
                    );
                }
            }
        }
        // A filled blot does not hide thin strokes: the pen is the strokes'.
        let thin = drawn_plane(112, FOUR, 2.0, &[]);
        let blotted = drawn_plane(112, FOUR, 2.0, &[(0.65, 0.6, 0.15)]);
        assert!(
            pen_width(&blotted) <= pen_width(&thin) + 1.0,
            "{} vs {}",
            pen_width(&blotted),
            pen_width(&thin)
        );
    }

    /// A hairline and a marker are brought to MNIST's median pen; a pen within the
    /// range of MNIST's is left as it was drawn.
    #[test]
    fn pens_outside_mnists_range_are_brought_to_its_median() {
        let pen = |p: &Plane| pen_width(&at_stroke_side(p).unwrap()) / STROKE_SIDE as f64;
        // Radii 1, 7.5 and 16 on a 200-pixel plane, whose "7" is about 150 pixels tall.
        for (radius, changed) in [(1.0, true), (7.5, false), (16.0, true)] {
            let plane = drawn_plane(200, SEVEN, radius, &[]);
            let before = pen(&plane);
            assert_eq!(
                (PEN_THIN..=PEN_THICK).contains(&before),
                !changed,
                "radius {radius}: pen {before}"
            );
            let after = pen(&normalise_stroke(Digit { ink: plane.clone() }).ink);
            if changed {
                assert!(
                    (after - PEN_MEDIAN).abs() < 0.015,
                    "radius {radius}: {before} to {after}"
                );
            } else {
                assert_eq!(after, before, "radius {radius}");
            }
        }
    }

    #[test]
    fn blank_image_is_an_error() {
        let blank = GrayImage::from_pixel(10, 10, Luma([255]));
        assert!(to_mnist_inputs(&blank)
            .unwrap_err()
            .to_string()
            .contains("no ink"));
    }

    /// The bar on paper of `paper` grey with ink of `ink` grey, plus `extra` marks.
    fn bar_on(paper: u8, ink: u8, extra: impl Fn(u32, u32) -> Option<u8>) -> GrayImage {
        GrayImage::from_fn(120, 120, |x, y| {
            if let Some(v) = extra(x, y) {
                Luma([v])
            } else if (55..65).contains(&x) && (25..95).contains(&y) {
                Luma([ink])
            } else {
                Luma([paper])
            }
        })
    }

    #[test]
    fn grey_paper_low_contrast_and_gradients_give_the_clean_digit() {
        let clean = to_mnist_image(&bar_on(255, 0, |_, _| None)).unwrap();
        for (paper, ink) in [(208, 0), (200, 0), (180, 0), (200, 150), (60, 230)] {
            let img = to_mnist_image(&bar_on(paper, ink, |_, _| None)).unwrap();
            assert_eq!(img, clean, "paper {paper}, ink {ink}");
        }
        // A gradient from 250 to 130 across the picture.
        let gradient = GrayImage::from_fn(120, 120, |x, y| {
            let paper = 250 - (x + y) / 2;
            if (55..65).contains(&x) && (25..95).contains(&y) {
                Luma([10])
            } else {
                Luma([paper as u8])
            }
        });
        let img = to_mnist_image(&gradient).unwrap();
        let diff: u32 = img
            .as_raw()
            .iter()
            .zip(clean.as_raw())
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .sum();
        assert!(diff < 5 * 255, "gradient differs by {diff}");
    }

    #[test]
    fn frames_dust_and_page_edges_are_not_the_digit() {
        let clean = to_mnist_image(&bar_on(220, 0, |_, _| None)).unwrap();
        let framed = bar_on(220, 0, |x, y| {
            let d = x.min(y).min(119 - x).min(119 - y);
            (4..7).contains(&d).then_some(0)
        });
        assert_eq!(to_mnist_image(&framed).unwrap(), clean);
        let dusty = bar_on(220, 0, |x, y| {
            [(10, 12), (100, 30), (20, 100), (90, 105)]
                .iter()
                .any(|&(dx, dy)| (dx..dx + 2).contains(&x) && (dy..dy + 2).contains(&y))
                .then_some(30)
        });
        assert_eq!(to_mnist_image(&dusty).unwrap(), clean);
        // A dark band where the photo ran past the page's edge.
        let edge = bar_on(220, 0, |x, _| (x < 12).then_some(15));
        assert_eq!(to_mnist_image(&edge).unwrap(), clean);
    }

    /// A digit is hollow and larger than a stray mark inside its box, as a frame is
    /// of the digit it holds; it is still the digit (test digit 17, a "6" with a mark
    /// left of its stem, drawn small or faint, became a blurred blob of the mark).
    /// And a heavy border round a light digit is still a frame: the digit lies in its
    /// hole.
    #[test]
    fn a_mark_in_a_digits_box_does_not_make_the_digit_a_frame() {
        let pen = drawn_plane(200, SEVEN, 4.0, &[]);
        let seven = |x: u32, y: u32| (255.0 * (1.0 - pen.at(x as usize, y as usize))).round() as u8;
        let clean =
            to_mnist_image(&GrayImage::from_fn(200, 200, |x, y| Luma([seven(x, y)]))).unwrap();
        // A 9-pixel mark in the empty lower left of the "7"'s box, a thirtieth of the
        // digit's ink.
        let marked = GrayImage::from_fn(200, 200, |x, y| {
            let mark = (50..59).contains(&x) && (130..139).contains(&y);
            Luma([if mark { 0 } else { seven(x, y) }])
        });
        let out = to_mnist_image(&marked).unwrap();
        let diff: u32 = out
            .as_raw()
            .iter()
            .zip(clean.as_raw())
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .sum();
        // The mark joins the digit (it is near and heavy enough), which shifts and
        // shrinks it a little; taken for the digit, it filled the frame, several times
        // this.
        assert!(
            diff < 80 * 255,
            "differs by {} pixels of full ink",
            diff / 255
        );

        let bar = |x: u32, y: u32| (118..122).contains(&x) && (100..140).contains(&y);
        let on_paper = GrayImage::from_fn(240, 240, |x, y| Luma([if bar(x, y) { 0 } else { 230 }]));
        let bordered = GrayImage::from_fn(240, 240, |x, y| {
            let d = x.min(y).min(239 - x).min(239 - y);
            Luma([if bar(x, y) || (5..15).contains(&d) {
                0
            } else {
                230
            }])
        });
        assert_eq!(
            to_mnist_image(&bordered).unwrap(),
            to_mnist_image(&on_paper).unwrap()
        );
    }

    #[test]
    fn a_detached_piece_stays_with_the_digit() {
        // A "5"-like top bar apart from the body: both belong to the digit.
        let whole = bar_on(255, 0, |x, y| {
            ((55..85).contains(&x) && (25..31).contains(&y)).then_some(0)
        });
        let parted = bar_on(255, 0, |x, y| {
            if (55..65).contains(&x) && (31..36).contains(&y) {
                Some(255)
            } else {
                ((55..85).contains(&x) && (25..31).contains(&y)).then_some(0)
            }
        });
        let (a, b) = (
            to_mnist_image(&whole).unwrap(),
            to_mnist_image(&parted).unwrap(),
        );
        // Columns with ink: a dropped bar would leave a 3-pixel-wide "1".
        let columns = |img: &GrayImage| {
            (0..28)
                .filter(|&x| (0..28).any(|y| img.get_pixel(x, y)[0] > 0))
                .count()
        };
        assert!(columns(&a) >= 8, "{}", columns(&a));
        assert!(
            columns(&b).abs_diff(columns(&a)) <= 1,
            "{} vs {}",
            columns(&b),
            columns(&a)
        );
    }

    #[test]
    fn white_ink_on_a_transparent_layer_is_seen() {
        let layer = image::RgbaImage::from_fn(60, 60, |x, y| {
            let on = (25..35).contains(&x) && (10..50).contains(&y);
            image::Rgba([255, 255, 255, if on { 255 } else { 0 }])
        });
        let gray = flatten(&DynamicImage::ImageRgba8(layer));
        assert_eq!(gray.get_pixel(0, 0)[0], 0);
        assert_eq!(gray.get_pixel(30, 30)[0], 255);
        assert!(to_mnist_image(&gray).is_ok());
    }

    #[test]
    fn the_same_picture_gives_the_same_bytes() {
        let noisy = GrayImage::from_fn(300, 200, |x, y| {
            let n = ((x * 7919 + y * 104_729) % 23) as u8;
            if (140..160).contains(&x) && (40..160).contains(&y) {
                Luma([30 + n])
            } else {
                Luma([190 + n - (x / 10) as u8])
            }
        });
        assert_eq!(
            to_mnist_image(&noisy).unwrap(),
            to_mnist_image(&noisy).unwrap()
        );
    }

    #[test]
    fn size_limits() {
        assert!(check_size(7_000, 7_000).is_ok());
        assert!(check_size(MAX_SIDE, 2_500).is_ok());
        assert!(check_size(MAX_SIDE + 1, 1).is_err());
        assert!(check_size(8_000, 8_000)
            .unwrap_err()
            .to_string()
            .contains("8000×8000"));
    }

    /// A real 16,000×16,000 one-bit PNG, all black, a few tens of kilobytes: refused
    /// from its header, before a byte of its 256 megapixels is decoded.
    #[test]
    fn huge_png_is_refused_from_its_header() {
        use std::io::Write;
        let side: u32 = 16_000;
        let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.sum().to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&side.to_be_bytes());
        ihdr.extend_from_slice(&side.to_be_bytes());
        ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // 1 bit, grey, deflate, no filter, no interlace
        let row = vec![0u8; 1 + side as usize / 8];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..side {
            z.write_all(&row).unwrap();
        }
        let idat = z.finish().unwrap();
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &idat);
        chunk(&mut png, b"IEND", &[]);
        assert!(png.len() < 200_000, "{} bytes", png.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        std::fs::write(&path, &png).unwrap();
        let err = load_gray(&path).unwrap_err().to_string();
        assert!(
            err.contains("huge.png") && err.contains("16000×16000"),
            "{err}"
        );
    }

    /// Any small picture either gives inputs in `[0, 1]` or an error, never a panic:
    /// one-pixel pictures, one row, flat ones, random noise, two levels.
    #[test]
    fn odd_pictures_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..3_000u32 {
            let (w, h) = ((next() % 40) as u32 + 1, (next() % 40) as u32 + 1);
            let levels = [0u8, 255, (next() % 256) as u8];
            let kind = case % 3;
            let img = GrayImage::from_fn(w, h, |_, _| {
                let r = next();
                Luma([match kind {
                    0 => r as u8,
                    1 => levels[(r % 2) as usize],
                    _ => levels[usize::from(r % 50 == 0)],
                }])
            });
            if let Ok(out) = to_mnist_image(&img) {
                assert_eq!(out.dimensions(), (28, 28));
            }
        }
    }
}
