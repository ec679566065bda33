//! The `show` command's output: a few images of a data set with their labels, as
//! terminal art (two image rows per character row) and optionally as a PNG grid.

use std::path::Path;

use anyhow::{Context, Result};

use crate::data::Dataset;

/// Characters from dark to bright.
const RAMP: &[u8] = b" .:-=+*#%@";

/// Terminal art of the images `indices`, side by side, each with its label on top.
pub fn ascii_art(data: &Dataset, indices: &[usize]) -> String {
    let (rows, cols) = data.shape;
    let mut out = String::new();
    for &i in indices {
        out.push_str(&format!(
            "{:<width$}  ",
            format!("#{i} label {}", data.labels[i]),
            width = cols
        ));
    }
    out.push('\n');
    for r in (0..rows).step_by(2) {
        for &i in indices {
            let img = data.input(i);
            for c in 0..cols {
                let top = img[r * cols + c];
                let bottom = if r + 1 < rows {
                    img[(r + 1) * cols + c]
                } else {
                    top
                };
                let v = (top + bottom) / 2.0;
                let k = ((v * (RAMP.len() - 1) as f32).round() as usize).min(RAMP.len() - 1);
                out.push(RAMP[k] as char);
            }
            out.push_str("  ");
        }
        out.push('\n');
    }
    out
}

/// Writes the images `indices` as a grid PNG (`columns` wide, each image scaled
/// `scale` times, 2-pixel grey gaps), atomically.
pub fn write_grid_png(
    path: &Path,
    data: &Dataset,
    indices: &[usize],
    columns: usize,
    scale: u32,
) -> Result<()> {
    let (rows, cols) = (data.shape.0 as u32, data.shape.1 as u32);
    let columns = columns.max(1) as u32;
    let grid_rows = (indices.len() as u32).div_ceil(columns).max(1);
    let gap = 2;
    let cell_w = cols * scale + gap;
    let cell_h = rows * scale + gap;
    let mut img = image::GrayImage::from_pixel(
        columns * cell_w + gap,
        grid_rows * cell_h + gap,
        image::Luma([128]),
    );
    for (n, &i) in indices.iter().enumerate() {
        let (gx, gy) = (n as u32 % columns, n as u32 / columns);
        let pixels = data.input(i);
        for y in 0..rows * scale {
            for x in 0..cols * scale {
                let v = pixels[((y / scale) * cols + x / scale) as usize];
                img.put_pixel(
                    gap + gx * cell_w + x,
                    gap + gy * cell_h + y,
                    image::Luma([(v * 255.0).round() as u8]),
                );
            }
        }
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("cannot encode PNG")?;
    crate::fsio::write_bytes_atomic(path, &bytes)
        .with_context(|| format!("{}: cannot write image", path.display()))
}
