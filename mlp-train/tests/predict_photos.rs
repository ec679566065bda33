//! `predict` on the pictures people actually take: digits on grey or unevenly lit
//! paper, faint or bold, framed, dusty, noisy, huge or tiny, in colour or on a
//! transparent layer. The tests make every picture themselves from the bundled digits'
//! **test split** (digits the model never trained on), each with its true label, and
//! check that the default model reads every picture of every digit that it reads
//! right straight from the data set: what is left to get wrong is the preprocessing's.
//! The cases that once failed are kept as named regression tests.
//!
//! `cargo test -p mlp-train --test integration predict_photos:: -- --nocapture` prints
//! the count per kind that the README quotes; `-- --ignored --nocapture` adds a wider
//! set of 100 digits and a model trained with `--augment`.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The default model: `mlp-train train` with every setting at its default (the
/// walkthrough's network, 25 epochs on the bundled digits), trained once per run.
fn model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        ok(&run(["train", "--quiet", "--out", out.to_str().unwrap()]));
        (dir, out.join("model.mlp"))
    });
    path
}

/// The bundled digits' test split.
fn test_split() -> &'static mlp_train::data::Dataset {
    static TEST: OnceLock<mlp_train::data::Dataset> = OnceLock::new();
    TEST.get_or_init(|| mlp_train::data::load_pair(&bundled(), "t10k").unwrap())
}

/// How much ink covers each pixel of a `side × side` square, in `[0, 1]`.
struct Coverage {
    side: usize,
    cov: Vec<f32>,
}

impl Coverage {
    /// A 28×28 test digit enlarged to `side` by bilinear interpolation.
    fn from_mnist(pixels: &[u8], side: usize) -> Coverage {
        let mut cov = vec![0.0; side * side];
        let s = 28.0 / side as f32;
        let at = |x: i32, y: i32| -> f32 {
            if (0..28).contains(&x) && (0..28).contains(&y) {
                f32::from(pixels[y as usize * 28 + x as usize]) / 255.0
            } else {
                0.0
            }
        };
        for y in 0..side {
            for x in 0..side {
                let (fx, fy) = ((x as f32 + 0.5) * s - 0.5, (y as f32 + 0.5) * s - 0.5);
                let (ix, iy) = (fx.floor() as i32, fy.floor() as i32);
                let (tx, ty) = (fx - ix as f32, fy - iy as f32);
                cov[y * side + x] = at(ix, iy) * (1.0 - tx) * (1.0 - ty)
                    + at(ix + 1, iy) * tx * (1.0 - ty)
                    + at(ix, iy + 1) * (1.0 - tx) * ty
                    + at(ix + 1, iy + 1) * tx * ty;
            }
        }
        Coverage { side, cov }
    }

    /// Pen strokes through points in the unit square, `radius` pixels thick either side,
    /// anti-aliased.
    fn from_strokes(strokes: &[[(f32, f32); 2]], side: usize, radius: f32) -> Coverage {
        let mut cov = vec![0.0f32; side * side];
        let s = side as f32;
        for y in 0..side {
            for x in 0..side {
                let p = (x as f32 + 0.5, y as f32 + 0.5);
                let d = strokes
                    .iter()
                    .map(|&[a, b]| segment_distance(p, (a.0 * s, a.1 * s), (b.0 * s, b.1 * s)))
                    .fold(f32::INFINITY, f32::min);
                cov[y * side + x] = (radius + 0.5 - d).clamp(0.0, 1.0);
            }
        }
        Coverage { side, cov }
    }

    /// Thicker (`r > 0`) or thinner (`r < 0`) strokes: a grey-level dilation or
    /// erosion by a disc of radius `|r|`.
    fn morph(&self, r: i32) -> Coverage {
        let n = self.side as i32;
        let rr = r.abs();
        let mut cov = vec![0.0; self.cov.len()];
        for y in 0..n {
            for x in 0..n {
                let mut v: f32 = if r > 0 { 0.0 } else { 1.0 };
                for dy in -rr..=rr {
                    for dx in -rr..=rr {
                        if dx * dx + dy * dy > rr * rr {
                            continue;
                        }
                        let (sx, sy) = (x + dx, y + dy);
                        let c = if (0..n).contains(&sx) && (0..n).contains(&sy) {
                            self.cov[(sy * n + sx) as usize]
                        } else {
                            0.0
                        };
                        v = if r > 0 { v.max(c) } else { v.min(c) };
                    }
                }
                cov[(y * n + x) as usize] = v;
            }
        }
        Coverage {
            side: self.side,
            cov,
        }
    }
}

fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let len2 = vx * vx + vy * vy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * vx + (p.1 - a.1) * vy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (p.0 - a.0 - t * vx, p.1 - a.1 - t * vy);
    (dx * dx + dy * dy).sqrt()
}

/// A hand-drawn-looking "7" and "1", as the issue's user drew them.
const SEVEN: &[[(f32, f32); 2]] = &[[(0.22, 0.18), (0.78, 0.18)], [(0.78, 0.18), (0.42, 0.85)]];
const ONE: &[[(f32, f32); 2]] = &[[(0.54, 0.15), (0.46, 0.85)]];

/// A picture in RGBA floats (`0..=255`), so every kind is made the same way.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[f32; 4]>,
}

impl Canvas {
    /// Paper whose colour at `(x, y)` (fractions of the size) is `paper`.
    fn paper(w: usize, h: usize, paper: impl Fn(f32, f32) -> [f32; 3]) -> Canvas {
        let mut px = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let c = paper(x as f32 / w as f32, y as f32 / h as f32);
                px.push([c[0], c[1], c[2], 255.0]);
            }
        }
        Canvas { w, h, px }
    }

    fn grey(w: usize, h: usize, level: f32) -> Canvas {
        Canvas::paper(w, h, |_, _| [level; 3])
    }

    /// Lays ink of colour `ink` over the paper where `cov` says, top-left at `(x0, y0)`.
    fn ink(mut self, cov: &Coverage, x0: usize, y0: usize, ink: [f32; 3]) -> Canvas {
        for y in 0..cov.side {
            for x in 0..cov.side {
                let (tx, ty) = (x0 + x, y0 + y);
                if tx < self.w && ty < self.h {
                    let a = cov.cov[y * cov.side + x];
                    let p = &mut self.px[ty * self.w + tx];
                    for c in 0..3 {
                        p[c] = p[c] * (1.0 - a) + ink[c] * a;
                    }
                }
            }
        }
        self
    }

    /// The digit centred.
    fn ink_centred(self, cov: &Coverage, ink: [f32; 3]) -> Canvas {
        let (x0, y0) = ((self.w - cov.side) / 2, (self.h - cov.side) / 2);
        self.ink(cov, x0, y0, ink)
    }

    /// A rectangle outline `margin` pixels in from the edge, `thick` pixels wide.
    fn frame(mut self, margin: usize, thick: usize, level: f32) -> Canvas {
        for y in margin..self.h - margin {
            for x in margin..self.w - margin {
                let d = (x - margin)
                    .min(y - margin)
                    .min(self.w - margin - 1 - x)
                    .min(self.h - margin - 1 - y);
                if d < thick {
                    self.px[y * self.w + x] = [level, level, level, 255.0];
                }
            }
        }
        self
    }

    /// `count` dark specks of 1–3 pixels away from the centre, where the digit is.
    fn dust(mut self, count: usize, level: f32, rng: &mut ChaCha8Rng) -> Canvas {
        for _ in 0..count {
            let (x, y) = loop {
                let (x, y) = (rng.random_range(0..self.w), rng.random_range(0..self.h));
                let (cx, cy) = (
                    x as f32 / self.w as f32 - 0.5,
                    y as f32 / self.h as f32 - 0.5,
                );
                if cx.abs() > 0.33 || cy.abs() > 0.33 {
                    break (x, y);
                }
            };
            let r = rng.random_range(1..=3usize);
            for yy in y..(y + r).min(self.h) {
                for xx in x..(x + r).min(self.w) {
                    self.px[yy * self.w + xx] = [level, level, level, 255.0];
                }
            }
        }
        self
    }

    /// Camera-like noise: Gaussian, standard deviation `sigma` grey levels.
    fn noise(mut self, sigma: f32, rng: &mut ChaCha8Rng) -> Canvas {
        for p in &mut self.px {
            // Box–Muller.
            let (u1, u2): (f32, f32) = (rng.random_range(1e-6..1.0), rng.random());
            let n = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos() * sigma;
            for c in &mut p[..3] {
                *c += n;
            }
        }
        self
    }

    /// Ink only, on a transparent layer: alpha is the ink's coverage.
    fn transparent(cov: &Coverage, w: usize, h: usize, ink: [f32; 3]) -> Canvas {
        let mut c = Canvas {
            w,
            h,
            px: vec![[255.0, 255.0, 255.0, 0.0]; w * h],
        };
        let (x0, y0) = ((w - cov.side) / 2, (h - cov.side) / 2);
        for y in 0..cov.side {
            for x in 0..cov.side {
                let a = cov.cov[y * cov.side + x];
                c.px[(y0 + y) * w + x0 + x] = [ink[0], ink[1], ink[2], a * 255.0];
            }
        }
        c
    }

    fn byte(v: f32) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }

    fn gray(&self) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(self.w as u32, self.h as u32, |x, y| {
            let p = self.px[y as usize * self.w + x as usize];
            Luma([Self::byte((p[0] + p[1] + p[2]) / 3.0)])
        }))
    }

    fn rgb(&self) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(self.w as u32, self.h as u32, |x, y| {
            let p = self.px[y as usize * self.w + x as usize];
            Rgb([Self::byte(p[0]), Self::byte(p[1]), Self::byte(p[2])])
        }))
    }

    fn rgba(&self) -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_fn(self.w as u32, self.h as u32, |x, y| {
            let p = self.px[y as usize * self.w + x as usize];
            Rgba(p.map(Self::byte))
        }))
    }
}

const BLACK: [f32; 3] = [0.0; 3];

/// One picture of the set.
struct Scene {
    label: u8,
    image: DynamicImage,
}

/// The kinds of picture, each made from test-split digit `index`.
fn scene(kind: &'static str, index: usize) -> Scene {
    let set = test_split();
    let pixels = set.image(index);
    let label = set.labels[index];
    let mut rng = ChaCha8Rng::seed_from_u64(index as u64 * 1_000 + kind.len() as u64);
    let digit = |side| Coverage::from_mnist(pixels, side);
    let image = match kind {
        "white paper" => Canvas::grey(200, 200, 255.0)
            .ink_centred(&digit(140), BLACK)
            .gray(),
        "paper #d0d0d0" => Canvas::grey(200, 200, 208.0)
            .ink_centred(&digit(140), BLACK)
            .gray(),
        "paper #c8c8c8" => Canvas::grey(200, 200, 200.0)
            .ink_centred(&digit(140), BLACK)
            .gray(),
        "paper #b4b4b4" => Canvas::grey(200, 200, 180.0)
            .ink_centred(&digit(140), BLACK)
            .gray(),
        "gradient" => Canvas::paper(240, 240, |x, y| [250.0 - 110.0 * (0.6 * x + 0.4 * y); 3])
            .ink_centred(&digit(160), [20.0; 3])
            .gray(),
        "vignetting" => Canvas::paper(320, 240, |x, y| {
            let r2 = (x - 0.45).powi(2) + (y - 0.55).powi(2);
            [235.0 - 260.0 * r2; 3]
        })
        .ink_centred(&digit(180), [30.0; 3])
        .gray(),
        "low contrast" => Canvas::grey(200, 200, 200.0)
            .ink_centred(&digit(140), [160.0; 3])
            .noise(2.0, &mut rng)
            .gray(),
        "thick strokes" => Canvas::grey(240, 240, 230.0)
            .ink_centred(&digit(168).morph(7), BLACK)
            .gray(),
        "thin strokes" => Canvas::grey(240, 240, 230.0)
            .ink_centred(&digit(168).morph(-5), BLACK)
            .gray(),
        "frame" => Canvas::grey(240, 240, 215.0)
            .frame(8, 4, 20.0)
            .ink_centred(&digit(140), BLACK)
            .gray(),
        "dust" => Canvas::grey(240, 240, 220.0)
            .dust(25, 40.0, &mut rng)
            .ink_centred(&digit(140), BLACK)
            .gray(),
        "photo noise" => Canvas::paper(300, 300, |x, y| [200.0 - 50.0 * x + 20.0 * y; 3])
            .ink_centred(&digit(200), [40.0; 3])
            .noise(12.0, &mut rng)
            .gray(),
        "large 600×800" => Canvas::grey(600, 800, 205.0)
            .ink(&digit(420), 60, 250, [25.0; 3])
            .noise(4.0, &mut rng)
            .gray(),
        "small 20×20" => Canvas::grey(20, 20, 235.0)
            .ink_centred(&digit(18), BLACK)
            .gray(),
        "colour" => Canvas::paper(200, 200, |_, y| [240.0, 225.0 - 20.0 * y, 170.0])
            .ink_centred(&digit(140), [20.0, 40.0, 150.0])
            .rgb(),
        "transparent" => Canvas::transparent(&digit(140), 200, 200, BLACK).rgba(),
        "chalk on a board" => {
            Canvas::paper(240, 200, |x, _| [40.0 + 30.0 * x, 60.0 + 30.0 * x, 50.0])
                .ink_centred(&digit(150), [230.0; 3])
                .noise(5.0, &mut rng)
                .rgb()
        }
        other => panic!("no such kind: {other}"),
    };
    Scene { label, image }
}

/// Every kind of picture in the set.
const KINDS: &[&str] = &[
    "white paper",
    "paper #d0d0d0",
    "paper #c8c8c8",
    "paper #b4b4b4",
    "gradient",
    "vignetting",
    "low contrast",
    "thick strokes",
    "thin strokes",
    "frame",
    "dust",
    "photo noise",
    "large 600×800",
    "small 20×20",
    "colour",
    "transparent",
    "chalk on a board",
];

/// The first `per_class` test-split digits of each class: a fixed choice made without
/// looking at what the model answers.
fn chosen_digits(per_class: usize) -> Vec<usize> {
    let set = test_split();
    let mut seen = [0usize; 10];
    let mut out = Vec::new();
    for i in 0..set.len() {
        let l = usize::from(set.labels[i]);
        if seen[l] < per_class {
            seen[l] += 1;
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

/// The class the model gives an image file, through `predict`'s own image path.
fn classify(model: &mlp_train::model::Mlp, path: &Path) -> usize {
    let inputs = mlp_train::image_input::load_mnist_inputs(path).unwrap();
    mlp_core::loss::argmax(&model.logits_one(&inputs).unwrap())
}

/// Saves a picture as PNG in `dir` and returns its path.
fn save(dir: &Path, name: &str, image: &DynamicImage) -> PathBuf {
    let path = dir.join(format!("{}.png", name.replace([' ', '#', '×'], "_")));
    image.save(&path).unwrap();
    path
}

/// What a model makes of the pictures of some test digits, and of the same digits as
/// the data set gives them.
struct Reading {
    digits: Vec<usize>,
    /// `(digit, class)` for the digits the model reads wrong from the data set.
    wrong_directly: Vec<(usize, usize)>,
    kinds: Vec<KindReading>,
}

/// The pictures of one kind.
struct KindReading {
    kind: &'static str,
    /// `(digit, class)` for the pictures read wrong.
    wrong: Vec<(usize, usize)>,
    /// The mean over the digits of `Σ |input - data set's digit| / 255` over the 784
    /// pixels: how far the preprocessing is from the data set's own digit, in pixels
    /// of full ink.
    difference: f64,
}

impl Reading {
    fn of(model: &mlp_train::model::Mlp, digits: Vec<usize>) -> Reading {
        let set = test_split();
        let dir = tempfile::tempdir().unwrap();
        let class_of = |inputs: &[f32]| mlp_core::loss::argmax(&model.logits_one(inputs).unwrap());
        let wrong_directly = digits
            .iter()
            .map(|&i| (i, class_of(&set.input(i))))
            .filter(|&(i, class)| class != usize::from(set.labels[i]))
            .collect();
        let kinds = KINDS
            .iter()
            .map(|&kind| {
                let (mut wrong, mut difference) = (Vec::new(), 0.0);
                for &i in &digits {
                    let s = scene(kind, i);
                    let path = save(dir.path(), &format!("{kind}-{i}"), &s.image);
                    let seen = mlp_train::image_input::load_mnist_image(&path).unwrap();
                    difference += seen
                        .as_raw()
                        .iter()
                        .zip(set.image(i))
                        .map(|(a, b)| f64::from(a.abs_diff(*b)))
                        .sum::<f64>()
                        / 255.0;
                    let class = class_of(&mlp_train::image_input::inputs_of(&seen));
                    if class != usize::from(s.label) {
                        wrong.push((i, class));
                    }
                }
                KindReading {
                    kind,
                    wrong,
                    difference: difference / digits.len() as f64,
                }
            })
            .collect();
        Reading {
            digits,
            wrong_directly,
            kinds,
        }
    }

    fn read_directly(&self, i: usize) -> bool {
        !self.wrong_directly.iter().any(|&(d, _)| d == i)
    }

    /// Pictures of the digits the model reads right from the data set: how many there
    /// are, and how many it reads right.
    fn of_digits_read_directly(&self) -> (usize, usize) {
        let per_kind = self.digits.len() - self.wrong_directly.len();
        let wrong: usize = self
            .kinds
            .iter()
            .map(|k| {
                k.wrong
                    .iter()
                    .filter(|&&(i, _)| self.read_directly(i))
                    .count()
            })
            .sum();
        let all = per_kind * self.kinds.len();
        (all - wrong, all)
    }

    /// The table the README quotes.
    fn print(&self, what: &str) {
        let set = test_split();
        let n = self.digits.len();
        let named =
            |&(i, class): &(usize, usize)| format!("#{i} ({} read as {class})", set.labels[i]);
        let directly: Vec<String> = self.wrong_directly.iter().map(named).collect();
        println!(
            "{what}: the {n} test digits as the data set gives them: {} right{}",
            n - directly.len(),
            if directly.is_empty() {
                String::new()
            } else {
                format!("; wrong: {}", directly.join(", "))
            }
        );
        println!("{:>18}  right  difference  wrong", "kind of picture");
        let mut right = 0;
        for KindReading {
            kind,
            wrong,
            difference,
        } in &self.kinds
        {
            right += n - wrong.len();
            let names: Vec<String> = wrong.iter().map(named).collect();
            println!(
                "{kind:>18}  {:>3}/{n}  {difference:>10.1}  {}",
                n - wrong.len(),
                names.join(", ")
            );
        }
        let (of_direct, all_direct) = self.of_digits_read_directly();
        println!(
            "{what}: {right}/{} pictures right; of the pictures of digits read right from the data set, {of_direct}/{all_direct}",
            n * self.kinds.len()
        );
    }
}

/// The issue's goal, measured on the preprocessing: every picture of a digit that the
/// default model reads right from the data set is read right. The digit it reads
/// wrong from the data set (test digit 7, a 5, taken for a 6) is reported, not
/// counted against the pictures.
#[test]
fn default_model_reads_the_photo_like_set() {
    let model = mlp_train::model::Mlp::load(model()).unwrap();
    let reading = Reading::of(&model, chosen_digits(2));
    reading.print("default model");
    // The default model's bytes are pinned (tests/golden): a drop here is training's,
    // and it would shrink the goal below, so it fails too.
    assert!(
        reading.wrong_directly.len() <= 1,
        "the data set's own digits read wrong: {:?}",
        reading.wrong_directly
    );
    let (right, all) = reading.of_digits_read_directly();
    assert_eq!(
        right, all,
        "pictures of digits the model reads right from the data set, read wrong"
    );
}

/// The same on 100 test digits (the first 10 of each class): a check beyond the 20
/// digits the preprocessing was worked on. About 40 s; `cargo test -p mlp-train
/// --test integration predict_photos:: -- --ignored --nocapture` prints its table.
#[test]
#[ignore = "1,700 pictures; run by hand for the README's figures"]
fn default_model_reads_a_wider_set() {
    let model = mlp_train::model::Mlp::load(model()).unwrap();
    let reading = Reading::of(&model, chosen_digits(10));
    reading.print("default model, 100 digits");
    let (right, all) = reading.of_digits_read_directly();
    // 1,626 of 1,632 when written; the few wrong ones are listed in the README.
    assert!(right + 10 >= all, "{right}/{all}");
}

/// The README's best settings on the bundled digits with `--augment` (98.2% on the
/// test split), trained once per run.
fn augmented_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        ok(&run([
            "train",
            "--quiet",
            "--hidden",
            "1024,512",
            "--optimizer",
            "nesterov",
            "--lr",
            "0.05",
            "--schedule",
            "cosine",
            "--epochs",
            "30",
            "--weight-decay",
            "2e-4",
            "--batch-size",
            "64",
            "--augment",
            "--out",
            out.to_str().unwrap(),
        ]));
        (dir, out.join("model.mlp"))
    });
    path
}

/// The pictures read by a model trained with `--augment` (shifts, rotations and
/// scalings of the training digits). Its training takes a minute or more.
#[test]
#[ignore = "trains a 1024-512 model for 30 epochs; run by hand for the README's figures"]
fn augmented_model_reads_the_photo_like_set() {
    let model = mlp_train::model::Mlp::load(augmented_model()).unwrap();
    for per_class in [2, 10] {
        let reading = Reading::of(&model, chosen_digits(per_class));
        reading.print(&format!("augmented model, {} digits", 10 * per_class));
    }
}

/// Pictures that were read wrong before the preprocessing was mended, each of a digit
/// the model reads right from the data set.
macro_rules! picture_cases {
    ($($test:ident: $kind:literal, $index:literal;)*) => {$(
        #[test]
        fn $test() {
            let model = mlp_train::model::Mlp::load(model()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let s = scene($kind, $index);
            let path = save(dir.path(), stringify!($test), &s.image);
            assert_eq!(classify(&model, &path), usize::from(s.label), "{} #{}", $kind, $index);
        }
    )*};
}

picture_cases! {
    // Half a pixel off MNIST's centring, then an erosion by half of what it needed.
    thick_strokes_of_test_digit_3: "thick strokes", 3;
    // A hairline stem under a filled loop: the area-weighted measure saw no thin pen.
    thin_strokes_of_test_digit_16: "thin strokes", 16;
    // Strokes thinned by the noise floor, and the centring.
    photo_noise_of_test_digit_19: "photo noise", 19;
    // A stray mark in the digit's box made the digit a "frame" (test digit 17 is
    // outside the table's 20; the wider set found it).
    faint_test_digit_17: "low contrast", 17;
    small_test_digit_17: "small 20×20", 17;
    noisy_test_digit_17: "photo noise", 17;
    chalk_test_digit_17: "chalk on a board", 17;
}

/// The cases the issue reported, each read wrong with high confidence before the
/// background was estimated: a pen-drawn digit on a 200×200 picture (the 7 was taken
/// for 3, 3, 8, 4 and 8; the 1 for an 8).
fn issue_case(paper: Canvas, strokes: &[[(f32, f32); 2]], label: usize, name: &str) {
    let model = mlp_train::model::Mlp::load(model()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = paper
        .ink_centred(&Coverage::from_strokes(strokes, 120, 6.0), BLACK)
        .gray();
    let path = save(dir.path(), name, &image);
    assert_eq!(classify(&model, &path), label, "{name}");
}

macro_rules! issue_cases {
    ($($test:ident: $paper:expr, $strokes:expr, $label:expr;)*) => {$(
        #[test]
        fn $test() {
            issue_case($paper, $strokes, $label, stringify!($test));
        }
    )*};
}

issue_cases! {
    seven_on_paper_d0d0d0: Canvas::grey(200, 200, 208.0), SEVEN, 7;
    seven_on_paper_c8c8c8: Canvas::grey(200, 200, 200.0), SEVEN, 7;
    seven_on_paper_b4b4b4: Canvas::grey(200, 200, 180.0), SEVEN, 7;
    one_on_paper_c8c8c8: Canvas::grey(200, 200, 200.0), ONE, 1;
    seven_on_grey_gradient: Canvas::paper(200, 200, |x, y| [230.0 - 120.0 * (0.5 * x + 0.5 * y); 3]), SEVEN, 7;
    framed_seven: Canvas::grey(200, 200, 255.0).frame(6, 3, 0.0), SEVEN, 7;
}

/// `predict --show-input DIR` writes, for each input, the 28×28 image the network
/// saw; reading it back as inputs gives the printed answer. Inputs of the same file
/// name (here `seven.png` in two directories) get images of their own.
#[test]
fn show_input_writes_what_the_network_saw() {
    let model_file = model();
    let model = mlp_train::model::Mlp::load(model_file).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let seven = Canvas::grey(200, 200, 200.0)
        .ink_centred(&Coverage::from_mnist(test_split().image(0), 140), BLACK)
        .gray();
    let inputs = [
        save(tmp.path(), "seven", &seven),
        tmp.path().join("seven.pgm"),
        save(&other, "seven", &scene("frame", 2).image),
    ];
    seven.save(&inputs[1]).unwrap();
    let shown = tmp.path().join("shown");
    let mut args = vec![
        "predict".to_owned(),
        "--model".into(),
        model_file.display().to_string(),
        "--show-input".into(),
        shown.display().to_string(),
    ];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    let out = ok(&run(&args));
    assert_eq!(
        files_in(&shown),
        [
            "seven.pgm.input.png",
            "seven.png.2.input.png",
            "seven.png.input.png"
        ]
    );
    for (line, name) in out.lines().zip(["seven.png", "seven.pgm", "seven.png.2"]) {
        let seen = image::open(shown.join(format!("{name}.input.png")))
            .unwrap()
            .to_luma8();
        assert_eq!(seen.dimensions(), (28, 28));
        let inputs = mlp_train::image_input::inputs_of(&seen);
        let class = mlp_core::loss::argmax(&model.logits_one(&inputs).unwrap());
        assert!(line.contains(&format!("class {class} ")), "{name}: {line}");
    }
    assert!(out
        .lines()
        .all(|l| !l.contains("class 1 ") || l.contains("other")));
}
