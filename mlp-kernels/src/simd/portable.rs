//! The portable implementation: eight lanes as an array, which the compiler turns
//! into whatever vector instructions the target has, or scalar code.

use super::Simd;

/// Plain Rust on 8-lane arrays; runs on every target. With `FUSED` its `mul_add` is
/// `f32::mul_add` (one rounding, as the fast kernels' contract requires; in software
/// on CPUs without FMA, so slow there); without, a rounded product then a rounded sum,
/// which is the device's arithmetic (`mlp_core::dense`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Portable<const FUSED: bool>;

impl<const FUSED: bool> Simd for Portable<FUSED> {
    type V = [f32; 8];
    const LANES: usize = 8;

    #[inline(always)]
    fn zero(self) -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::V {
        let mut out = [0.0; 8];
        out.copy_from_slice(&s[..8]);
        out
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> Self::V {
        let mut out = [0.0; 8];
        out[..s.len()].copy_from_slice(s);
        out
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: Self::V) {
        s[..8].copy_from_slice(&v);
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: Self::V) {
        let n = s.len();
        s.copy_from_slice(&v[..n]);
    }
    #[inline(always)]
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        let mut out = c;
        for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
            *o = if FUSED { x.mul_add(y, *o) } else { *o + x * y };
        }
        out
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        let mut out = a;
        for (o, &y) in out.iter_mut().zip(&b) {
            *o += y;
        }
        out
    }
    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        let mut out = a;
        for (o, &y) in out.iter_mut().zip(&b) {
            *o -= y;
        }
        out
    }
    #[inline(always)]
    fn mul(self, a: Self::V, b: Self::V) -> Self::V {
        let mut out = a;
        for (o, &y) in out.iter_mut().zip(&b) {
            *o *= y;
        }
        out
    }
    #[inline(always)]
    fn relu(self, v: Self::V) -> Self::V {
        v.map(|x| if x < 0.0 { 0.0 } else { x })
    }
    #[inline(always)]
    fn keep_where_positive(self, h: Self::V, a: Self::V) -> Self::V {
        let mut out = a;
        for (o, &h) in out.iter_mut().zip(&h) {
            // `!(h > 0)`, which is also true for NaN.
            if h.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater) {
                *o = 0.0;
            }
        }
        out
    }
    #[inline(always)]
    fn nonzero_mask(self, v: Self::V) -> u32 {
        let mut mask = 0;
        for (i, &x) in v.iter().enumerate() {
            mask |= u32::from(x != 0.0) << i;
        }
        mask
    }
}
