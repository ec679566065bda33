//! The vector operations the kernels are written in: one trait, [`Simd`], and one
//! implementation per instruction set.
//!
//! A kernel is a generic function over [`Simd`] marked `#[inline(always)]`; each
//! instruction set has entry points with `#[target_feature]` that call it (see
//! `crate::backend`), so the kernel is compiled once per instruction set with that
//! set's instructions. The x86 and Arm types can only be built by their `detect`
//! functions, which check the CPU at run time: holding one is the proof that its
//! intrinsics may run, which is what every `// SAFETY:` comment in those modules
//! relies on.
//!
//! Every operation is exact per lane, so results do not depend on the lane count: a
//! lane's `mul_add` is one fused multiply-add (or, for [`Portable`] in the device's
//! arithmetic, a rounded product then a rounded sum), and no operation combines lanes.

mod portable;
pub(crate) use portable::Portable;

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
pub(crate) use neon::Neon;

/// A set of vector instructions over `f32` lanes.
///
/// Loads and stores take slices and touch exactly `LANES` elements (the `*_partial`
/// ones exactly `slice.len() < LANES`), so no method can read or write out of bounds.
pub(crate) trait Simd: Copy {
    /// A vector of `LANES` floats.
    type V: Copy;
    /// Floats per vector.
    const LANES: usize;
    /// All lanes zero.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` elements of `s` (panics if shorter).
    fn load(self, s: &[f32]) -> Self::V;
    /// The `s.len() < LANES` elements of `s`, the other lanes zero.
    fn load_partial(self, s: &[f32]) -> Self::V;
    /// Whether [`Simd::load_upto`] and [`Simd::store_upto`] cost about what whole
    /// vectors do (masked instructions), so that a panel of columns may end in a
    /// partial vector instead of leaving its last columns to a pass of their own.
    const MASKED_TAIL: bool = false;
    /// The `1 ≤ s.len() ≤ LANES` elements of `s`, the other lanes zero.
    #[inline(always)]
    fn load_upto(self, s: &[f32]) -> Self::V {
        if s.len() == Self::LANES {
            self.load(s)
        } else {
            self.load_partial(s)
        }
    }
    /// Stores the first `1 ≤ s.len() ≤ LANES` lanes of `v` into `s`.
    #[inline(always)]
    fn store_upto(self, s: &mut [f32], v: Self::V) {
        if s.len() == Self::LANES {
            self.store(s, v)
        } else {
            self.store_partial(s, v)
        }
    }
    /// Stores into the first `LANES` elements of `s` (panics if shorter).
    fn store(self, s: &mut [f32], v: Self::V);
    /// Stores the first `s.len() < LANES` lanes of `v` into `s`.
    fn store_partial(self, s: &mut [f32], v: Self::V);
    /// `a·b + c` per lane, in the implementation's arithmetic (fused for the fast
    /// kernels, see the crate docs).
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// ReLU as `mlp_core::activation::relu_forward` does it: lanes below zero become
    /// `+0.0`; NaN and `−0.0` stay.
    fn relu(self, v: Self::V) -> Self::V;
    /// `a` where `h > 0`, else `+0.0` (NaN in `h` gives `+0.0`): ReLU's backward, as
    /// `mlp_core::activation::relu_backward` applies it.
    fn keep_where_positive(self, h: Self::V, a: Self::V) -> Self::V;
    /// Bit `i` set where lane `i` is not `0.0` or `−0.0` (NaN included).
    fn nonzero_mask(self, v: Self::V) -> u32;

    /// Packs the lanes selected by `mask` (bit `i` = lane `i`), in lane order: the
    /// `e`-th set lane `i` gives `vals[e·MR + r] = rows[r][i]` for each row `r` and
    /// `cols[e] = base + i`. May write up to `LANES · MR` values and `LANES` indices
    /// past the entries (the slices must have room for them).
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

    /// The 8 × 8 tile at the start of `src` (rows `stride_in` apart) transposed into
    /// `dst` (rows `stride_out` apart): `dst[b·stride_out + a] = src[a·stride_in + b]`.
    #[inline(always)]
    fn transpose8(self, src: &[f32], stride_in: usize, dst: &mut [f32], stride_out: usize) {
        let mut tile = [[0.0f32; 8]; 8];
        for (a, row) in tile.iter_mut().enumerate() {
            row.copy_from_slice(&src[a * stride_in..][..8]);
        }
        for b in 0..8 {
            for (a, row) in tile.iter().enumerate() {
                dst[b * stride_out + a] = row[b];
            }
        }
    }

    /// Packs the columns `p < k` of a block of 4 rows of a column-major `A` (column
    /// `p` is `data[p·stride..][..4]`) where any of the 4 is not zero (NaN counts as
    /// not zero): `vals[e·4 + r]` and `cols[e] = p` for the `e`-th such column.
    /// Returns the count. Writes nothing past `vals[..4k]` and `cols[..k]`.
    #[inline(always)]
    fn pack_columns4(
        self,
        data: &[f32],
        stride: usize,
        k: usize,
        vals: &mut [f32],
        cols: &mut [u32],
    ) -> usize {
        pack_columns_one_by_one::<4>(data, stride, k, vals, cols)
    }
}

/// The most lanes any implementation has.
pub(crate) const MAX_LANES: usize = 16;

/// [`Simd::pack_columns4`] one column at a time, for any block height `MR`.
#[inline(always)]
pub(crate) fn pack_columns_one_by_one<const MR: usize>(
    data: &[f32],
    stride: usize,
    k: usize,
    vals: &mut [f32],
    cols: &mut [u32],
) -> usize {
    let cols = &mut cols[..k];
    let vals = &mut vals[..k * MR];
    let mut count = 0;
    // Branch-free: every column is written at `count`, which only advances when it
    // has a non-zero, so the data-dependent pattern costs no mispredictions.
    for (p, col) in (0..k).zip(0u32..) {
        let v = &data[p * stride..][..MR];
        vals[count * MR..count * MR + MR].copy_from_slice(v);
        let any = v.iter().fold(false, |any, &x| any | (x != 0.0));
        cols[count] = col;
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
    let mut lanes = [[0.0f32; MAX_LANES]; MR];
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

/// Asks the CPU to start loading `data` into its caches: a hint, with no effect on
/// any result (and none at all on targets without a prefetch instruction here).
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let line = (64 / core::mem::size_of::<T>().max(1)).max(1);
        let Some(last) = data.len().checked_sub(1) else {
            return;
        };
        // Every cache line the slice touches: one address per line from the first,
        // and the last element's, whose line a start inside a line could miss.
        for p in (0..data.len()).step_by(line).chain([last]) {
            // SAFETY: SSE (every x86-64 CPU has it) provides PREFETCHT0, which only
            // hints and cannot fault; the address is inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(data[p..].as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}
