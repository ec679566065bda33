//! Arm NEON (AArch64 Advanced SIMD): 4 lanes, 32 vector registers, fused
//! multiply-add. Every AArch64 CPU has it; it is still detected at run time, so the
//! type carries the same proof as the x86 ones.

use core::arch::aarch64::*;

use super::Simd;

/// AArch64 NEON. Only [`Neon::detect`] builds one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon {
    _private: (),
}

impl Neon {
    /// `Some` when this CPU runs NEON (every AArch64 CPU does).
    pub(crate) fn detect() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon { _private: () })
    }
}

impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;

    #[inline(always)]
    fn zero(self) -> float32x4_t {
        // SAFETY: `self` exists only if NEON was detected at run time.
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        // SAFETY: NEON was detected (see `zero`).
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        let s = &s[..4];
        // SAFETY: NEON was detected; `s` has 4 readable elements.
        unsafe { vld1q_f32(s.as_ptr()) }
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> float32x4_t {
        let mut lanes = [0.0f32; 4];
        lanes[..s.len()].copy_from_slice(s);
        self.load(&lanes)
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: float32x4_t) {
        let s = &mut s[..4];
        // SAFETY: NEON was detected; `s` has 4 writable elements.
        unsafe { vst1q_f32(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: float32x4_t) {
        let mut lanes = [0.0f32; 4];
        self.store(&mut lanes, v);
        let n = s.len();
        s.copy_from_slice(&lanes[..n]);
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // `vfmaq_f32(c, a, b)` is `c + a·b` with one rounding (FMLA).
        // SAFETY: NEON was detected.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON was detected.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON was detected.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON was detected.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn relu(self, v: float32x4_t) -> float32x4_t {
        // A select, not `vmaxq_f32`: FMAX orders −0 below +0 and turns NaN into the
        // default NaN, where the core keeps both as they are.
        // SAFETY: NEON was detected.
        unsafe {
            let zero = vdupq_n_f32(0.0);
            vbslq_f32(vcltq_f32(v, zero), zero, v)
        }
    }
    #[inline(always)]
    fn keep_where_positive(self, h: float32x4_t, a: float32x4_t) -> float32x4_t {
        // `h > 0` is all-zero bits for NaN, so those lanes become +0.0.
        // SAFETY: NEON was detected.
        unsafe {
            let positive = vcgtq_f32(h, vdupq_n_f32(0.0));
            vreinterpretq_f32_u32(vandq_u32(positive, vreinterpretq_u32_f32(a)))
        }
    }
    #[inline(always)]
    fn nonzero_mask(self, v: float32x4_t) -> u32 {
        // SAFETY: NEON was detected.
        unsafe {
            // `v == 0` is false for NaN, so NaN lanes count as non-zero.
            let zero = vceqq_f32(v, vdupq_n_f32(0.0));
            let bits = vld1q_u32([1u32, 2, 4, 8].as_ptr());
            vaddvq_u32(vbicq_u32(bits, zero))
        }
    }
}
