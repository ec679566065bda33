//! Shared test helpers: seeded data, and the kernels this CPU runs.

#![allow(dead_code)]

use mlp_kernels::{Isa, Kernels};

/// Every kernel this CPU runs: the core's arithmetic and each supported instruction
/// set of the fast one (the portable one always). Under Miri only the portable fast
/// kernels: the core's are the same generic code with unfused multiply-adds.
pub fn all_kernels() -> Vec<Kernels> {
    let mut k = if cfg!(miri) {
        vec![]
    } else {
        vec![Kernels::Core]
    };
    k.extend(Isa::supported().into_iter().map(Kernels::Fast));
    k
}

/// The fast kernels this CPU runs, portable first.
pub fn fast_kernels() -> Vec<Kernels> {
    Isa::supported().into_iter().map(Kernels::Fast).collect()
}

/// A small seeded generator (xorshift), so tests need no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[-1, 1)`.
    pub fn signed(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    /// `len` values in `[-1, 1)`, about `zeros` of them exactly zero.
    pub fn values(&mut self, len: usize, zeros: f32) -> Vec<f32> {
        (0..len)
            .map(|_| {
                let v = self.signed();
                if (self.signed() + 1.0) / 2.0 < zeros {
                    0.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// `len` pixel bytes, about half of them zero.
    pub fn pixels(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let v = self.next_u64();
                if v & 1 == 0 {
                    0
                } else {
                    (v >> 8) as u8
                }
            })
            .collect()
    }
}

/// Asserts two slices are equal bit for bit (NaN payloads aside: any NaN matches
/// any NaN, since x86 and Arm make different default NaNs).
pub fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: element {i} is {g:e} ({:#010x}), expected {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}
