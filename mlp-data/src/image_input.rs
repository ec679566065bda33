//! Turning a picture of a digit (PNG or PGM, any size, light or dark background) into
//! the 784 inputs a model expects, following MNIST's own recipe:
//!
//! 1. grey levels (a transparent background counts as white);
//! 2. if the border is mostly light, invert, so the ink is bright on black as in MNIST;
//! 3. crop to the bounding box of the ink (pixels brighter than [`INK_THRESHOLD`]);
//! 4. scale so the longer side is 20 pixels, keeping the aspect ratio;
//! 5. paste into a black 28×28 frame so the centre of mass sits at the centre (14, 14);
//! 6. scale to `[0, 1]` by dividing by 255, as for training.

use std::path::Path;

use anyhow::{bail, Result};
use image::imageops::FilterType;
use image::{GrayImage, Luma};

/// MNIST's side length.
pub const SIDE: usize = 28;
/// The side of the box the digit is scaled into.
pub const DIGIT_BOX: u32 = 20;
/// Grey level above which a pixel counts as ink (after inversion).
pub const INK_THRESHOLD: u8 = 40;

/// Reads a PNG or PGM file as grey levels, compositing transparency over white.
pub fn load_gray(path: &Path) -> Result<GrayImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read image: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| anyhow::anyhow!("{}: cannot read image: {e}", path.display()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: not a readable PNG or PGM image: {e}", path.display()))?;
    let la = img.to_luma_alpha8();
    let (w, h) = la.dimensions();
    Ok(GrayImage::from_fn(w, h, |x, y| {
        let p = la.get_pixel(x, y);
        let (l, a) = (u32::from(p[0]), u32::from(p[1]));
        Luma([((l * a + 255 * (255 - a)) / 255) as u8])
    }))
}

/// Brings a grey image to MNIST's 28×28 form and returns its inputs (`pixel / 255`).
/// Fails when the image holds no ink.
pub fn to_mnist_inputs(gray: &GrayImage) -> Result<Vec<f32>> {
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        bail!("the image is empty");
    }
    // 2. Light background → invert.
    let border: Vec<u8> = (0..w)
        .flat_map(|x| [gray.get_pixel(x, 0)[0], gray.get_pixel(x, h - 1)[0]])
        .chain((0..h).flat_map(|y| [gray.get_pixel(0, y)[0], gray.get_pixel(w - 1, y)[0]]))
        .collect();
    let border_mean = border.iter().map(|&v| f64::from(v)).sum::<f64>() / border.len() as f64;
    let mut img = gray.clone();
    if border_mean > 127.0 {
        image::imageops::invert(&mut img);
    }
    // 3. Bounding box of ink.
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p[0] > INK_THRESHOLD {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 == u32::MAX {
        bail!("no digit found: the image has no ink");
    }
    let crop = image::imageops::crop_imm(&img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    // 4. Longer side to 20 px.
    let (cw, ch) = crop.dimensions();
    let scale = f64::from(DIGIT_BOX) / f64::from(cw.max(ch));
    let nw = ((f64::from(cw) * scale).round() as u32).clamp(1, DIGIT_BOX);
    let nh = ((f64::from(ch) * scale).round() as u32).clamp(1, DIGIT_BOX);
    let small = image::imageops::resize(&crop, nw, nh, FilterType::Triangle);
    // 5. Centre of mass to the frame's centre.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = f64::from(p[0]);
        mass += v;
        mx += v * (f64::from(x) + 0.5);
        my += v * (f64::from(y) + 0.5);
    }
    let (cx, cy) = if mass > 0.0 {
        (mx / mass, my / mass)
    } else {
        (f64::from(nw) / 2.0, f64::from(nh) / 2.0)
    };
    let half = SIDE as f64 / 2.0;
    let (dx, dy) = ((half - cx).round() as i64, (half - cy).round() as i64);
    let mut inputs = vec![0.0f32; SIDE * SIDE];
    for (x, y, p) in small.enumerate_pixels() {
        let (tx, ty) = (i64::from(x) + dx, i64::from(y) + dy);
        if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
            inputs[ty as usize * SIDE + tx as usize] = f32::from(p[0]) / 255.0;
        }
    }
    Ok(inputs)
}

/// Loads an image file and brings it to MNIST's form; errors name the file.
pub fn load_mnist_inputs(path: &Path) -> Result<Vec<f32>> {
    let gray = load_gray(path)?;
    to_mnist_inputs(&gray).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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

    #[test]
    fn blank_image_is_an_error() {
        let blank = GrayImage::from_pixel(10, 10, Luma([255]));
        assert!(to_mnist_inputs(&blank)
            .unwrap_err()
            .to_string()
            .contains("no ink"));
    }
}
