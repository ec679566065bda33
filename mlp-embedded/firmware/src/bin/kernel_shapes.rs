//! The device's Dense kernels on odd shapes, bit for bit against `mlp-core`'s reference
//! kernels, on the core itself: on the Cortex-M4F (`thumbv7em-none-eabihf`) that is the
//! `vmla.f32` register blocks and the `SMLAD` int8 block, in assembly; on v6-M the
//! plain-Rust blocks and the two-row int8 kernel.
//!
//! The 784-100-200-10 parity firmware only ever runs the blocks on its three layer
//! widths. Here every way an output count splits into blocks is run: `f32` outputs
//! 0 to 40 (blocks of 16, 8 and 4 and a tail of 0–3 in every combination), int8 outputs
//! 0 to 21 (fewer than 4, which never reach the assembly, and every 1–3 tail after whole
//! blocks), with 1 input, input counts around the gathering batch (`kernel::CHUNK`
//! inputs for `f32`, `kernel_i8::PAIRS` pairs for int8), odd numbers of non-zero inputs
//! (an int8 input left without a partner), all-zero inputs, and int8 weights at every
//! byte alignment. Inputs, weights and biases come from a fixed-seed generator, so a
//! failure prints a case that reproduces.
//!
//! Prints `kernel shapes: ok, …` and exits 0 if every output of every case has the
//! reference's bits; otherwise prints the first mismatch and exits 1.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use mlp_core::dense::{dense_forward, DenseShape};
use mlp_embedded::kernel::{dense_forward_sparse_blocked, dense_forward_sparse_blocked_pixels};
use mlp_embedded::kernel_i8::dense_accumulate_i8;
use mlp_firmware::{exit, hprintln};

mlp_firmware::handlers!();

/// `f32` weights the largest case needs (inputs × outputs): fits the 32 KB of RAM the
/// board's memory map allows, with the int8 buffers and the stack.
const F32_WEIGHTS: usize = 3072;
/// Input counts of the `f32` cases: 1 input, a few, and either side of one and two
/// gathering batches of `CHUNK` = 64 inputs.
const F32_INPUTS: [usize; 10] = [1, 2, 3, 5, 7, 63, 64, 65, 128, 129];
/// Largest `f32` output count: 40 = 16 + 16 + 8, and every smaller count, so each of
/// the 16-, 8- and 4-blocks runs alone, after the others, and before a 1–3 tail.
const F32_MAX_OUTPUTS: usize = 40;
/// Input counts of the int8 cases: 1 to 9 (every remainder of the 4-byte gathering
/// words, odd and even counts) and either side of one and two batches of `PAIRS` = 64
/// pairs (128 and 256 non-zero inputs).
const I8_INPUTS: [usize; 14] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 127, 128, 129, 257, 300];
/// Largest int8 output count: 21 = 5 blocks of 4 and a tail of 1; every smaller count
/// too, so tails of 1, 2 and 3 follow 1 to 5 blocks, and 1–3 outputs take the plain loop.
const I8_MAX_OUTPUTS: usize = 21;
/// Int8 weights the largest case needs, plus 3 bytes to start them at every alignment.
const I8_WEIGHTS: usize = 300 * I8_MAX_OUTPUTS + 3;

/// Which inputs are zero (the kernels skip those, so each pattern changes what they
/// gather).
#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// None.
    Dense,
    /// Every third; for `f32` also one `-0.0`, which must be skipped like `0.0`.
    EveryThird,
    /// All but the last.
    LastOnly,
    /// All of them: nothing gathered, the outputs are the bias.
    Zero,
}

const PATTERNS: [Pattern; 4] = [
    Pattern::Dense,
    Pattern::EveryThird,
    Pattern::LastOnly,
    Pattern::Zero,
];

impl Pattern {
    /// Whether input `i` of `inputs` is zero.
    fn is_zero(self, i: usize, inputs: usize) -> bool {
        match self {
            Pattern::Dense => false,
            Pattern::EveryThird => i % 3 == 1,
            Pattern::LastOnly => i + 1 != inputs,
            Pattern::Zero => true,
        }
    }
}

/// xorshift32: a fixed sequence, so every run checks the same cases.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// A float in about ±2 with 24 significant bits and magnitudes from 2⁻⁸ up, so
    /// products and sums round (and the order of the additions shows in the bits).
    fn float(&mut self) -> f32 {
        let r = self.next();
        (r as i32 as f32) * (1.0 / (1u32 << 30) as f32) / (1u32 << (r & 7)) as f32
    }
}

/// Counts of the cases checked.
#[derive(Default)]
struct Tally {
    f32_cases: usize,
    pixel_cases: usize,
    int8_cases: usize,
}

/// Prints a mismatch and exits with failure.
fn mismatch(
    kind: &str,
    inputs: usize,
    outputs: usize,
    detail: &str,
    j: usize,
    got: u32,
    want: u32,
) -> ! {
    hprintln!(
        "kernel shapes: MISMATCH {} inputs {} outputs {} {}: output {} is {:08x}, \
         the reference gives {:08x}",
        kind,
        inputs,
        outputs,
        detail,
        j,
        got,
        want
    );
    exit(false)
}

#[entry]
fn main() -> ! {
    // Statics in `entry` are handed out once as `&'static mut`: the buffers live in
    // .bss, not on the stack.
    static mut WEIGHTS: [f32; F32_WEIGHTS] = [0.0; F32_WEIGHTS];
    static mut X: [f32; 129] = [0.0; 129];
    static mut PIXELS: [u8; 129] = [0; 129];
    static mut I8_WEIGHT_BYTES: [u8; I8_WEIGHTS] = [0; I8_WEIGHTS];
    static mut I8_X: [u8; 300] = [0; 300];

    let mut rng = Rng(0x2545_f491);
    let mut tally = Tally::default();
    let mut bias = [0f32; F32_MAX_OUTPUTS];
    let mut y = [0f32; F32_MAX_OUTPUTS];
    let mut want = [0f32; F32_MAX_OUTPUTS];

    for &inputs in &F32_INPUTS {
        for outputs in 0..=F32_MAX_OUTPUTS {
            if inputs * outputs > F32_WEIGHTS {
                continue;
            }
            for pattern in PATTERNS {
                let weights = &mut WEIGHTS[..inputs * outputs];
                weights.iter_mut().for_each(|w| *w = rng.float());
                let bias = &mut bias[..outputs];
                bias.iter_mut().for_each(|b| *b = rng.float());
                let x = &mut X[..inputs];
                let pixels = &mut PIXELS[..inputs];
                let mut negative_zero = false;
                for (i, (xi, pi)) in x.iter_mut().zip(pixels.iter_mut()).enumerate() {
                    let r = rng.next();
                    if pattern.is_zero(i, inputs) {
                        *xi = if negative_zero { 0.0 } else { -0.0 };
                        negative_zero = true;
                        *pi = 0;
                    } else {
                        *xi = rng.float();
                        // 1..=255, every pixel value reachable.
                        *pi = (r % 255) as u8 + 1;
                    }
                }
                let shape = DenseShape::new(1, inputs, outputs);
                let (y, want) = (&mut y[..outputs], &mut want[..outputs]);

                // f32 inputs: the blocked kernel (assembly on the M4F) against the core.
                y.fill(f32::NAN);
                dense_forward_sparse_blocked(x, weights, bias, y);
                dense_forward(shape, x, &*weights, bias, want);
                for (j, (a, b)) in y.iter().zip(want.iter()).enumerate() {
                    if a.to_bits() != b.to_bits() {
                        mismatch(
                            "f32",
                            inputs,
                            outputs,
                            pattern_name(pattern),
                            j,
                            a.to_bits(),
                            b.to_bits(),
                        );
                    }
                }
                tally.f32_cases += 1;

                // Pixel inputs (the first layer of predict_pixels): the same blocks fed
                // from bytes, against the core on `pixel as f32 / 255.0`.
                for (xi, &pi) in x.iter_mut().zip(pixels.iter()) {
                    *xi = f32::from(pi) / 255.0;
                }
                y.fill(f32::NAN);
                dense_forward_sparse_blocked_pixels(pixels, &*weights, bias, y);
                dense_forward(shape, x, &*weights, bias, want);
                for (j, (a, b)) in y.iter().zip(want.iter()).enumerate() {
                    if a.to_bits() != b.to_bits() {
                        mismatch(
                            "pixels",
                            inputs,
                            outputs,
                            pattern_name(pattern),
                            j,
                            a.to_bits(),
                            b.to_bits(),
                        );
                    }
                }
                tally.pixel_cases += 1;
            }
        }
    }

    let mut i8_bias = [[0u8; 4]; I8_MAX_OUTPUTS];
    let mut acc = [0i32; I8_MAX_OUTPUTS];
    let mut i8_want = [0i32; I8_MAX_OUTPUTS];
    for &inputs in &I8_INPUTS {
        for outputs in 0..=I8_MAX_OUTPUTS {
            for pattern in PATTERNS {
                // Each pattern at another alignment of the weights, so that every
                // output count meets every alignment across the four patterns.
                let align = (outputs + pattern as usize) % 4;
                let weights = &mut I8_WEIGHT_BYTES[align..align + inputs * outputs];
                for (k, w) in weights.iter_mut().enumerate() {
                    // The extremes -128 and 127 now and then, random bytes otherwise.
                    *w = match k % 29 {
                        0 => 0x80,
                        1 => 0x7f,
                        _ => rng.next() as u8,
                    };
                }
                let bias = &mut i8_bias[..outputs];
                for (j, b) in bias.iter_mut().enumerate() {
                    // Near i32::MAX for some outputs, so the sums wrap.
                    let value = if j % 5 == 0 {
                        i32::MAX - (rng.next() & 0xffff) as i32
                    } else {
                        rng.next() as i32
                    };
                    *b = value.to_le_bytes();
                }
                let x = &mut I8_X[..inputs];
                for (i, xi) in x.iter_mut().enumerate() {
                    let r = rng.next();
                    *xi = if pattern.is_zero(i, inputs) {
                        0
                    } else if i % 7 == 0 {
                        255
                    } else {
                        (r % 255) as u8 + 1
                    };
                }
                let (acc, want) = (&mut acc[..outputs], &mut i8_want[..outputs]);
                acc.fill(0x5555_5555);
                dense_accumulate_i8(x, weights, bias, acc);
                mlp_core::quant::dense_accumulate_i8(x, &*weights, &*bias, want);
                for (j, (a, b)) in acc.iter().zip(want.iter()).enumerate() {
                    if a != b {
                        hprintln!("kernel shapes: int8 weights at byte alignment {}", align);
                        mismatch(
                            "int8",
                            inputs,
                            outputs,
                            pattern_name(pattern),
                            j,
                            *a as u32,
                            *b as u32,
                        );
                    }
                }
                tally.int8_cases += 1;
            }
        }
    }

    hprintln!(
        "kernel shapes: ok, {} f32 cases, {} pixel cases, {} int8 cases bit-identical to mlp-core",
        tally.f32_cases,
        tally.pixel_cases,
        tally.int8_cases
    );
    exit(true)
}

/// The pattern's name for a mismatch report.
fn pattern_name(pattern: Pattern) -> &'static str {
    match pattern {
        Pattern::Dense => "no zero input",
        Pattern::EveryThird => "every third input zero",
        Pattern::LastOnly => "only the last input non-zero",
        Pattern::Zero => "every input zero",
    }
}
