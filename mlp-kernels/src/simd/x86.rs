//! AVX-512F and AVX2 with FMA.
use core::arch::x86_64::*;

use super::{pack_columns_one_by_one, Simd};

/// AVX-512F: 16 lanes, 32 vector registers, mask registers for partial vectors.
/// Only [`Avx512::detect`] builds one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512 {
    _private: (),
}

impl Avx512 {
    /// `Some` when this CPU runs AVX-512F (and AVX2 and FMA, which it implies).
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma"))
        .then_some(Avx512 { _private: () })
    }
}

/// [`Simd::transpose8`] with 256-bit vectors (AVX): unpacks within 128-bit halves,
/// then shuffles, then swaps of the halves.
#[inline(always)]
fn transpose8_avx(src: &[f32], stride_in: usize, dst: &mut [f32], stride_out: usize) {
    let rows: [&[f32]; 8] = core::array::from_fn(|a| &src[a * stride_in..][..8]);
    let mut outs: [&mut [f32]; 8] = Default::default();
    let mut rest = dst;
    for (b, out) in outs.iter_mut().enumerate() {
        let skip = if b == 0 { 0 } else { stride_out - 8 };
        let (_, after) = core::mem::take(&mut rest).split_at_mut(skip);
        let (mine, after) = after.split_at_mut(8);
        *out = mine;
        rest = after;
    }
    // SAFETY: only called by the `Avx2` and `Avx512` implementations, whose tokens
    // prove AVX was detected; every row and out slice has 8 elements (sliced above).
    unsafe {
        let r: [__m256; 8] = core::array::from_fn(|a| _mm256_loadu_ps(rows[a].as_ptr()));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let o = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (out, v) in outs.iter_mut().zip(o) {
            _mm256_storeu_ps(out.as_mut_ptr(), v);
        }
    }
}

/// The mask selecting the first `n ≤ 16` lanes.
#[inline(always)]
fn mask_upto16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// The mask selecting the first `n < 16` lanes.
#[inline(always)]
fn mask16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    const MASKED_TAIL: bool = true;

    #[inline(always)]
    fn load_upto(self, s: &[f32]) -> __m512 {
        let s = &s[..s.len().min(16)];
        // SAFETY: AVX-512F was detected; the mask enables only the first `s.len()`
        // lanes, and masked-off lanes are never accessed.
        unsafe { _mm512_maskz_loadu_ps(mask_upto16(s.len()), s.as_ptr()) }
    }
    #[inline(always)]
    fn store_upto(self, s: &mut [f32], v: __m512) {
        let n = s.len().min(16);
        let s = &mut s[..n];
        // SAFETY: AVX-512F was detected; only the first `s.len()` lanes are written.
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), mask_upto16(s.len()), v) }
    }

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: `self` exists only if AVX-512F was detected at run time.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: AVX-512F was detected (see `zero`).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        let s = &s[..16];
        // SAFETY: AVX-512F was detected; `s` has 16 readable elements.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> __m512 {
        debug_assert!(s.len() < 16);
        let m = mask16(s.len().min(15));
        // SAFETY: AVX-512F was detected; the mask enables only the first
        // `s.len()` lanes, and masked-off lanes are never accessed.
        unsafe { _mm512_maskz_loadu_ps(m, s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m512) {
        let s = &mut s[..16];
        // SAFETY: AVX-512F was detected; `s` has 16 writable elements.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: __m512) {
        debug_assert!(s.len() < 16);
        let m = mask16(s.len().min(15));
        // SAFETY: AVX-512F was detected; only the first `s.len()` lanes are written.
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), m, v) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F was detected.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F was detected.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F was detected.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F was detected.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn relu(self, v: __m512) -> __m512 {
        // `max(0, v)` returns its second operand when either is NaN, and `v` for
        // −0 (0 > −0 is false): the core's `if v < 0 { 0 }` exactly.
        // SAFETY: AVX-512F was detected.
        unsafe { _mm512_max_ps(_mm512_setzero_ps(), v) }
    }
    #[inline(always)]
    fn transpose8(self, src: &[f32], stride_in: usize, dst: &mut [f32], stride_out: usize) {
        transpose8_avx(src, stride_in, dst, stride_out);
    }
    #[inline(always)]
    fn nonzero_mask(self, v: __m512) -> u32 {
        // SAFETY: AVX-512F was detected.
        unsafe { u32::from(_mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, _mm512_setzero_ps())) }
    }
    #[inline(always)]
    fn pack_columns4(
        self,
        data: &[f32],
        cs: usize,
        k: usize,
        vals: &mut [f32],
        cols: &mut [u32],
    ) -> usize {
        // Four columns at a time: one vector of their 16 values, one test, and a
        // compression that keeps whole columns (each kept column's 4 lanes), instead
        // of a test and a branch-free append per column.
        let (vals, cols) = (&mut vals[..k * 4], &mut cols[..k]);
        if k > 0 {
            assert!((k - 1) * cs + 4 <= data.len(), "columns past the data");
        }
        let mut count = 0;
        let mut p = 0;
        while p + 4 <= k {
            // SAFETY: AVX-512F was detected; columns `p..p + 4` are readable
            // (checked above); `count ≤ p`, so the 16 values stored at `4·count`
            // end by `4(p + 4) ≤ 4k`.
            let any = unsafe {
                let at = data.as_ptr().add(p * cs);
                let v = _mm512_insertf32x4::<3>(
                    _mm512_insertf32x4::<2>(
                        _mm512_insertf32x4::<1>(
                            _mm512_castps128_ps512(_mm_loadu_ps(at)),
                            _mm_loadu_ps(at.add(cs)),
                        ),
                        _mm_loadu_ps(at.add(2 * cs)),
                    ),
                    _mm_loadu_ps(at.add(3 * cs)),
                );
                let m = u32::from(_mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, _mm512_setzero_ps()));
                // Bit 4i: column p + i has a non-zero; spread over its 4 lanes.
                let any = (m | m >> 1 | m >> 2 | m >> 3) & 0x1111;
                let packed = _mm512_maskz_compress_ps((any * 0xf) as __mmask16, v);
                _mm512_storeu_ps(vals.as_mut_ptr().add(count * 4), packed);
                any
            };
            for i in 0..4 {
                cols[count] = (p + i) as u32;
                count += ((any >> (4 * i)) & 1) as usize;
            }
            p += 4;
        }
        if p == k {
            return count;
        }
        let tail = pack_columns_one_by_one::<4>(
            &data[p * cs..],
            cs,
            k - p,
            &mut vals[count * 4..],
            &mut cols[count..],
        );
        for c in &mut cols[count..count + tail] {
            *c += p as u32;
        }
        count + tail
    }
    #[inline(always)]
    fn compress_entries<const MR: usize>(
        self,
        rows: &[__m512; MR],
        mask: u32,
        base: u32,
        vals: &mut [f32],
        cols: &mut [u32],
    ) {
        let k = mask as __mmask16;
        /// The column indices of the set lanes, compressed like the values.
        /// A function, not a closure: it must be inlined into the caller to get
        /// its target features.
        #[inline(always)]
        fn compress_cols(k: __mmask16, base: u32, cols: &mut [u32]) {
            let cols = &mut cols[..16];
            // SAFETY: only called from `compress_entries` of an `Avx512` (so
            // AVX-512F was detected); `cols` has 16 writable elements.
            unsafe {
                let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                let index = _mm512_add_epi32(_mm512_set1_epi32(base as i32), lanes);
                let packed = _mm512_maskz_compress_epi32(k, index);
                _mm512_storeu_epi32(cols.as_mut_ptr().cast(), packed);
            }
        }
        match rows.as_slice() {
            [a] => {
                compress_cols(k, base, cols);
                let vals = &mut vals[..16];
                // SAFETY: AVX-512F was detected; `vals` has 16 writable elements.
                unsafe { _mm512_storeu_ps(vals.as_mut_ptr(), _mm512_maskz_compress_ps(k, *a)) }
            }
            [a, b, c, d] => {
                compress_cols(k, base, cols);
                let vals = &mut vals[..64];
                // Compress each row, then interleave the four: a 4 × 16 transpose,
                // by pairs within 128-bit lanes, then of the 128-bit lanes.
                // SAFETY: AVX-512F was detected; `vals` has 64 writable elements.
                unsafe {
                    let (a, b) = (
                        _mm512_maskz_compress_ps(k, *a),
                        _mm512_maskz_compress_ps(k, *b),
                    );
                    let (c, d) = (
                        _mm512_maskz_compress_ps(k, *c),
                        _mm512_maskz_compress_ps(k, *d),
                    );
                    let (t0, t1) = (_mm512_unpacklo_ps(a, c), _mm512_unpackhi_ps(a, c));
                    let (t2, t3) = (_mm512_unpacklo_ps(b, d), _mm512_unpackhi_ps(b, d));
                    // u_j holds, in 128-bit lane q, entry 4q + j.
                    let (u0, u1) = (_mm512_unpacklo_ps(t0, t2), _mm512_unpackhi_ps(t0, t2));
                    let (u2, u3) = (_mm512_unpacklo_ps(t1, t3), _mm512_unpackhi_ps(t1, t3));
                    let v0 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u0, u1);
                    let v1 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u2, u3);
                    let v2 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u0, u1);
                    let v3 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u2, u3);
                    let p = vals.as_mut_ptr();
                    _mm512_storeu_ps(p, _mm512_shuffle_f32x4::<0b10_00_10_00>(v0, v1));
                    _mm512_storeu_ps(p.add(16), _mm512_shuffle_f32x4::<0b11_01_11_01>(v0, v1));
                    _mm512_storeu_ps(p.add(32), _mm512_shuffle_f32x4::<0b10_00_10_00>(v2, v3));
                    _mm512_storeu_ps(p.add(48), _mm512_shuffle_f32x4::<0b11_01_11_01>(v2, v3));
                }
            }
            _ => super::compress_entries_one_by_one(self, rows, mask, base, vals, cols),
        }
    }
    #[inline(always)]
    fn keep_where_positive(self, h: __m512, a: __m512) -> __m512 {
        // Ordered, quiet `>`: false for NaN.
        // SAFETY: AVX-512F was detected.
        unsafe {
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(h, _mm512_setzero_ps());
            _mm512_maskz_mov_ps(positive, a)
        }
    }
}

/// AVX2 with FMA: 8 lanes, 16 vector registers. Only [`Avx2::detect`] builds one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// `Some` when this CPU runs AVX2 and FMA.
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            .then_some(Avx2 { _private: () })
    }
}

/// The integer mask selecting the first `n ≤ 8` lanes.
#[inline(always)]
fn mask8(_proof: Avx2, n: usize) -> __m256i {
    // SAFETY: `_proof` exists only if AVX2 was detected at run time.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    const MASKED_TAIL: bool = true;

    #[inline(always)]
    fn load_upto(self, s: &[f32]) -> __m256 {
        let s = &s[..s.len().min(8)];
        // SAFETY: AVX2 was detected; the mask enables only the first `s.len()` lanes,
        // and masked-off lanes are never accessed.
        unsafe { _mm256_maskload_ps(s.as_ptr(), mask8(self, s.len())) }
    }
    #[inline(always)]
    fn store_upto(self, s: &mut [f32], v: __m256) {
        let n = s.len().min(8);
        let s = &mut s[..n];
        // SAFETY: AVX2 was detected; only the first `s.len()` lanes are written.
        unsafe { _mm256_maskstore_ps(s.as_mut_ptr(), mask8(self, s.len()), v) }
    }

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: `self` exists only if AVX2 and FMA were detected at run time.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: AVX2 was detected (see `zero`).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        let s = &s[..8];
        // SAFETY: AVX2 was detected; `s` has 8 readable elements.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> __m256 {
        debug_assert!(s.len() < 8);
        // SAFETY: AVX2 was detected; the mask enables only the first `s.len()`
        // lanes, and masked-off lanes are never accessed.
        unsafe { _mm256_maskload_ps(s.as_ptr(), mask8(self, s.len().min(7))) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: __m256) {
        let s = &mut s[..8];
        // SAFETY: AVX2 was detected; `s` has 8 writable elements.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32], v: __m256) {
        debug_assert!(s.len() < 8);
        // SAFETY: AVX2 was detected; only the first `s.len()` lanes are written.
        unsafe { _mm256_maskstore_ps(s.as_mut_ptr(), mask8(self, s.len().min(7)), v) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA was detected.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX was detected (implied by AVX2).
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX was detected.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX was detected.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn relu(self, v: __m256) -> __m256 {
        // Same operand order as the AVX-512 version: NaN and −0 pass through.
        // SAFETY: AVX was detected.
        unsafe { _mm256_max_ps(_mm256_setzero_ps(), v) }
    }
    #[inline(always)]
    fn transpose8(self, src: &[f32], stride_in: usize, dst: &mut [f32], stride_out: usize) {
        transpose8_avx(src, stride_in, dst, stride_out);
    }
    #[inline(always)]
    fn nonzero_mask(self, v: __m256) -> u32 {
        // SAFETY: AVX was detected.
        unsafe {
            let ne = _mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps());
            _mm256_movemask_ps(ne) as u32
        }
    }
    #[inline(always)]
    fn keep_where_positive(self, h: __m256, a: __m256) -> __m256 {
        // Ordered, quiet `>`: all-zero bits (so `+0.0`) for NaN.
        // SAFETY: AVX was detected.
        unsafe { _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(h, _mm256_setzero_ps()), a) }
    }
}
