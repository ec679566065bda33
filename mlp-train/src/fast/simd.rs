//! The vector operations the fast kernels are written in, once, generically, and
//! three implementations: AVX-512, AVX2 with FMA, and a portable one.
//!
//! A kernel is a generic function over [`Simd`] marked `#[inline(always)]`; each
//! instruction set gets an entry point with `#[target_feature]` that calls it, so the
//! whole kernel is compiled for that instruction set (the products once per set, see
//! `gemm::Products`; the passes around them once per job, see `dispatch`). The x86 types
//! can only be built by [`Avx512::detect`] and [`Avx2::detect`], which check the CPU at
//! run time: holding one is the proof that its intrinsics may be executed, which is
//! what every `// SAFETY:` comment below relies on.

/// A set of vector instructions over `f32` lanes.
///
/// Loads and stores take slices and touch exactly `LANES` elements (the `*_partial`
/// ones exactly `slice.len() < LANES`), so no method can read or write out of bounds.
pub(crate) trait Simd: Copy {
    /// A vector of `LANES` floats.
    type V: Copy;
    /// Floats per vector.
    const LANES: usize;
    /// Largest number of vectors per row a micro-kernel with `mr` rows keeps in
    /// registers (accumulators `mr × nv` plus a few temporaries must fit the register
    /// file).
    fn max_vectors(mr: usize) -> usize;
    /// All lanes zero.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` elements of `s` (panics if shorter).
    fn load(self, s: &[f32]) -> Self::V;
    /// The `s.len() < LANES` elements of `s`, the other lanes zero.
    fn load_partial(self, s: &[f32]) -> Self::V;
    /// [`Simd::load`] from a pointer, for inner loops whose bounds are checked once
    /// outside.
    ///
    /// # Safety
    /// `p` points to `LANES` readable elements.
    #[inline(always)]
    unsafe fn load_ptr(self, p: *const f32) -> Self::V {
        // SAFETY: the caller's promise.
        self.load(unsafe { core::slice::from_raw_parts(p, Self::LANES) })
    }
    /// [`Simd::load_partial`] of `n < LANES` elements from a pointer.
    ///
    /// # Safety
    /// `p` points to `n` readable elements.
    #[inline(always)]
    unsafe fn load_partial_ptr(self, p: *const f32, n: usize) -> Self::V {
        // SAFETY: the caller's promise.
        self.load_partial(unsafe { core::slice::from_raw_parts(p, n) })
    }
    /// Stores into the first `LANES` elements of `s` (panics if shorter).
    fn store(self, s: &mut [f32], v: Self::V);
    /// Stores the first `s.len() < LANES` lanes of `v` into `s`.
    fn store_partial(self, s: &mut [f32], v: Self::V);
    /// `a·b + c` (fused where the hardware has FMA).
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// ReLU as `mlp_core::activation::relu_forward` does it: negative lanes become 0,
    /// NaN and −0 stay.
    fn relu(self, v: Self::V) -> Self::V;
    /// The sum of the lanes (in a fixed order of this implementation's choosing).
    fn sum(self, v: Self::V) -> f32;
    /// The sums of the lanes of four vectors (in a fixed order of this
    /// implementation's choosing, not necessarily [`Simd::sum`]'s): where one sum is
    /// a chain of shuffles, four can share theirs.
    #[inline(always)]
    fn sums4(self, v: [Self::V; 4]) -> [f32; 4] {
        [
            self.sum(v[0]),
            self.sum(v[1]),
            self.sum(v[2]),
            self.sum(v[3]),
        ]
    }
    /// Bit `i` set where lane `i` is not `0.0` or `−0.0` (NaN included).
    fn nonzero_mask(self, v: Self::V) -> u32;
    /// `a` where `h > 0`, else `0.0` (NaN in `h` gives `0.0`): ReLU's backward mask,
    /// as `mlp_core::activation::relu_backward` applies it.
    fn keep_where_positive(self, h: Self::V, a: Self::V) -> Self::V;
    /// Packs the lanes selected by `mask` (bit `i` = lane `i`), in lane order: entry
    /// `e` (the `e`-th set lane `i`) gets `vals[e·MR + r] = rows[r][i]` for each row
    /// `r` and `cols[e] = base + i`. May write up to `LANES · MR` values and `LANES`
    /// indices past the entries (the slices must have room for them).
    #[inline(always)]
    fn compress_entries<const MR: usize>(
        self,
        rows: &[Self::V; MR],
        mask: u32,
        base: u32,
        vals: &mut [f32],
        cols: &mut [u32],
    ) {
        compress_entries_one_by_one(self, rows, mask, base, vals, cols);
    }
    /// Packs the columns `p < k` of a block of 4 rows of a column-major `A` (column
    /// `p` is `data[p·cs..][..4]`) where any of the 4 is not zero (NaN counts as not
    /// zero): `vals[e·4 + r]` and `cols[e] = p` for the `e`-th such column. Returns
    /// the count. Writes nothing past `vals[..4k]` and `cols[..k]`.
    #[inline(always)]
    fn pack_columns4(
        self,
        data: &[f32],
        cs: usize,
        k: usize,
        vals: &mut [f32],
        cols: &mut [u32],
    ) -> usize {
        pack_columns_one_by_one::<4>(data, cs, k, vals, cols)
    }
}

/// [`Simd::pack_columns4`] one column at a time.
#[inline(always)]
pub(crate) fn pack_columns_one_by_one<const MR: usize>(
    data: &[f32],
    cs: usize,
    k: usize,
    vals: &mut [f32],
    cols: &mut [u32],
) -> usize {
    let cols = &mut cols[..k];
    let vals = &mut vals[..k * MR];
    let mut count = 0;
    // Branch-free: every column is written at `count`, which only advances when it
    // has a non-zero, so the data-dependent pattern costs no mispredictions.
    for p in 0..k {
        let v = &data[p * cs..][..MR];
        vals[count * MR..count * MR + MR].copy_from_slice(v);
        let any = v.iter().fold(false, |any, &x| any | (x != 0.0));
        cols[count] = p as u32;
        count += usize::from(any);
    }
    count
}

/// [`Simd::compress_entries`] one set lane at a time.
#[inline(always)]
pub(crate) fn compress_entries_one_by_one<S: Simd, const MR: usize>(
    s: S,
    rows: &[S::V; MR],
    mask: u32,
    base: u32,
    vals: &mut [f32],
    cols: &mut [u32],
) {
    let mut lanes = [[0.0f32; 16]; MR];
    for (lanes, &v) in lanes.iter_mut().zip(rows) {
        s.store(&mut lanes[..], v);
    }
    let mut mask = mask;
    let mut e = 0;
    while mask != 0 {
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        for (r, lanes) in lanes.iter().enumerate() {
            vals[e * MR + r] = lanes[i];
        }
        cols[e] = base + i as u32;
        e += 1;
    }
}

/// Loads and stores for a `&[f32]` with one vector's worth of elements, shared by the
/// portable implementation.
#[inline(always)]
fn lanes<const L: usize>(s: &[f32]) -> [f32; L] {
    let mut out = [0.0; L];
    out.copy_from_slice(&s[..L]);
    out
}

/// The portable implementation: eight lanes as an array, which the compiler turns
/// into whatever vector instructions the target has (SSE2, NEON) or scalar code.
/// Products and sums are rounded separately (no FMA), since emulated FMA is slow.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Portable;

impl Simd for Portable {
    type V = [f32; 8];
    const LANES: usize = 8;

    fn max_vectors(mr: usize) -> usize {
        if mr >= 4 {
            2
        } else {
            4
        }
    }
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
        lanes::<8>(s)
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
            *o += x * y;
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
    fn sum(self, v: Self::V) -> f32 {
        ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
    }
    #[inline(always)]
    fn nonzero_mask(self, v: Self::V) -> u32 {
        let mut mask = 0;
        for (i, &x) in v.iter().enumerate() {
            mask |= u32::from(x != 0.0) << i;
        }
        mask
    }
    #[inline(always)]
    fn keep_where_positive(self, h: Self::V, a: Self::V) -> Self::V {
        let mut out = a;
        for (o, &h) in out.iter_mut().zip(&h) {
            if h.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater) {
                *o = 0.0;
            }
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
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

    /// The mask selecting the first `n < 16` lanes.
    #[inline(always)]
    fn mask16(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;

        fn max_vectors(mr: usize) -> usize {
            // 32 registers: 4 × 6 accumulators + a weight vector + 4 broadcasts (4 × 7
            // would spill accumulators to the stack).
            match mr {
                0..=3 => 8,
                _ => 6,
            }
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
        unsafe fn load_ptr(self, p: *const f32) -> __m512 {
            // SAFETY: AVX-512F was detected; the caller promises 16 readable elements.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_partial_ptr(self, p: *const f32, n: usize) -> __m512 {
            // SAFETY: AVX-512F was detected; the mask enables only the first `n`
            // lanes, which the caller promises are readable.
            unsafe { _mm512_maskz_loadu_ps(mask16(n.min(15)), p) }
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
        fn sum(self, v: __m512) -> f32 {
            // SAFETY: AVX-512F was detected.
            unsafe { _mm512_reduce_add_ps(v) }
        }
        #[inline(always)]
        fn sums4(self, v: [__m512; 4]) -> [f32; 4] {
            let [a, b, c, d] = v;
            let mut out = [0.0f32; 4];
            // SAFETY: AVX-512F was detected; `out` has 4 writable elements.
            unsafe {
                // Within each 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same
                // for c, d; then [a, b, c, d] (that lane's sums).
                let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
                let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
                let lanes = _mm512_add_ps(
                    _mm512_shuffle_ps::<0b01_00_01_00>(ab, cd),
                    _mm512_shuffle_ps::<0b11_10_11_10>(ab, cd),
                );
                // The four 128-bit lanes added: halves, then quarters.
                let half = _mm256_add_ps(
                    _mm512_castps512_ps256(lanes),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(lanes))),
                );
                let quarter = _mm_add_ps(
                    _mm256_castps256_ps128(half),
                    _mm256_extractf128_ps::<1>(half),
                );
                _mm_storeu_ps(out.as_mut_ptr(), quarter);
            }
            out
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
            // compression that keeps whole columns (each kept column's 4 lanes). The
            // one-at-a-time loop took about 10 µs of a training step (perf).
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
                    let lanes =
                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
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

    /// The integer mask selecting the first `n < 8` lanes.
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

        fn max_vectors(mr: usize) -> usize {
            // 16 registers: accumulators `mr × nv` plus a weight vector and `mr`
            // broadcasts (4 × 3 would need 17 and spill accumulators).
            match mr {
                0 | 1 => 8,
                2 | 3 => 5,
                _ => 2,
            }
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
        unsafe fn load_ptr(self, p: *const f32) -> __m256 {
            // SAFETY: AVX was detected; the caller promises 8 readable elements.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_partial_ptr(self, p: *const f32, n: usize) -> __m256 {
            // SAFETY: AVX2 was detected; the mask enables only the first `n` lanes,
            // which the caller promises are readable.
            unsafe { _mm256_maskload_ps(p, mask8(self, n.min(7))) }
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
        fn sum(self, v: __m256) -> f32 {
            // SAFETY: AVX was detected (SSE and SSE3 come with it).
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
                _mm_cvtss_f32(s)
            }
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
}
