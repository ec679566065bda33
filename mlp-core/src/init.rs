//! Xavier/Glorot normal initialisation, drawing from randomness the caller supplies.
//!
//! The core has no random-number generator of its own: the trainer passes a seeded
//! generator, tests pass whatever they like. Turning raw bits into normal samples
//! happens here, with `libm`, so a given stream of bits gives the same weights on
//! every platform.

/// A source of uniformly distributed 64-bit words.
///
/// Any `FnMut() -> u64` is one, so a `rand` generator plugs in as
/// `&mut || rng.next_u64()`.
pub trait RandomSource {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// A uniform sample in `(0, 1]` with 53 random bits.
pub fn uniform_open_closed(rng: &mut impl RandomSource) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal sample (Box–Muller; takes two words, uses the cosine branch only
/// so that one sample always consumes exactly two words).
pub fn standard_normal(rng: &mut impl RandomSource) -> f64 {
    let radius = libm::sqrt(-2.0 * libm::log(uniform_open_closed(rng)));
    let angle = 2.0 * core::f64::consts::PI * uniform_open_closed(rng);
    radius * libm::cos(angle)
}

/// The standard deviation of Xavier/Glorot normal initialisation, `√(2 / (fan_in + fan_out))`.
pub fn xavier_std(fan_in: usize, fan_out: usize) -> f64 {
    libm::sqrt(2.0 / (fan_in + fan_out) as f64)
}

/// Fills `weights` with samples of N(0, 2 / (fan_in + fan_out)), in order.
///
/// Biases are conventionally zero and are not touched here.
pub fn xavier_normal(
    weights: &mut [f32],
    fan_in: usize,
    fan_out: usize,
    rng: &mut impl RandomSource,
) {
    let std = xavier_std(fan_in, fan_out);
    for w in weights {
        *w = (std * standard_normal(rng)) as f32;
    }
}
