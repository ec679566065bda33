//! The one product kernel every fast path uses: `C ← epilogue(A·B)`, skipping the
//! zeros of `A`.
//!
//! # Notation
//! `A: [m, k]` is read through strides (`A[i][p] = a[i·rs + p·cs]`), so it can be a
//! batch `x` (`rs = inputs`, `cs = 1`) or its transpose `xᵀ` (`rs = 1`, `cs = inputs`)
//! without copying. `B: [k, n]` and `C: [m, n]` are row-major and contiguous.
//!
//! # How
//! Rows of `A` are taken `MR` at a time. For each block the `p` where any of the `MR`
//! rows is non-zero are packed, with their `MR` values, into a short list (on MNIST
//! images and ReLU outputs about half the entries are zero, and whole columns of
//! neighbouring pixels are); with AVX-512 a vector of columns at a time, by
//! compressing its non-zero lanes. Then, for each panel of up to `NV` vectors of columns,
//! `MR × NV` accumulators stay in registers while the list is walked: per entry, `NV`
//! vectors of row `p` of `B` are loaded once and used by `MR` fused multiply-adds
//! each. The last vector of a panel may be partial (masked loads and stores), so any
//! `n` works without padding. The epilogue is applied as the accumulators leave the
//! registers, which fuses the bias, ReLU, ReLU's backward mask or an SGD update into
//! the product at no extra pass over memory.
//!
//! Every element of `C` is one sum over `p` ascending, computed the same way whatever
//! the block a row falls into, except that a row sharing a block with others also
//! adds the exact zeros `0·B[p][j]` of the entries only the others need. So results
//! do not depend on how the rows are split between threads, up to the sign of an
//! all-zero sum.

use super::simd::{pack_columns_one_by_one, Portable, Simd};

/// The products, compiled once per instruction set: each implementation is one
/// function with the instruction set's `#[target_feature]`s around the generic body.
/// Everything else (the passes, the loops between products) is inlined into each
/// job's entry point, but the products are large (every panel width, row count and
/// tail is a separate loop), and inlining them into every job multiplied the
/// compiled code and the build time; a call per product costs nothing next to it.
pub(crate) trait Products: Simd {
    /// `C ← epilogue(A·B)`; see [`gemm`].
    fn gemm(self, g: Gemm<'_, '_>);
    /// `C ← A·Bᵀ`, masked; see [`gemm_nt`].
    fn gemm_nt(self, g: GemmNt<'_>);
}

impl Products for Portable {
    #[inline(never)]
    fn gemm(self, g: Gemm<'_, '_>) {
        gemm_generic(self, g);
    }
    #[inline(never)]
    fn gemm_nt(self, g: GemmNt<'_>) {
        gemm_nt_generic(self, g);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::simd::{Avx2, Avx512};
    use super::{gemm_generic, gemm_nt_generic, Gemm, GemmNt, Products};

    /// The products of an x86 instruction set: each is a call to the generic body
    /// compiled with `$features`.
    macro_rules! products {
        ($isa:ty, $features:literal) => {
            impl Products for $isa {
                #[inline(always)]
                fn gemm(self, g: Gemm<'_, '_>) {
                    #[inline(never)]
                    #[target_feature(enable = $features)]
                    fn compiled(s: $isa, g: Gemm<'_, '_>) {
                        gemm_generic(s, g);
                    }
                    // SAFETY: `self` exists, so this CPU has the features (detected).
                    unsafe { compiled(self, g) }
                }
                #[inline(always)]
                fn gemm_nt(self, g: GemmNt<'_>) {
                    #[inline(never)]
                    #[target_feature(enable = $features)]
                    fn compiled(s: $isa, g: GemmNt<'_>) {
                        gemm_nt_generic(s, g);
                    }
                    // SAFETY: as above.
                    unsafe { compiled(self, g) }
                }
            }
        };
    }

    products!(Avx512, "avx512f,avx2,fma");
    products!(Avx2, "avx2,fma");
}

/// What happens to each accumulated `acc = (A·B)[i][j]` on its way to `C[i][j]`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// `C ← acc + bias[j]` (the sum starts from the bias), then ReLU if `relu`.
    Bias {
        /// `bias: [n]`.
        bias: &'a [f32],
        /// Apply ReLU.
        relu: bool,
    },
    /// `C ← acc`.
    Store,
    /// `C ← C − lr·acc`: a weight gradient applied by SGD without storing it.
    Sgd {
        /// The learning rate.
        lr: f32,
    },
    /// `C ← acc` where `h > 0`, else `0`: an input gradient through ReLU's backward.
    Mask {
        /// `h: [m, n]`, the ReLU outputs.
        h: &'a [f32],
    },
}

/// `A` seen through strides: `A[i][p] = data[i·rs + p·cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Rows `m`.
    pub rows: usize,
    /// Columns `k`.
    pub cols: usize,
    /// Distance between rows.
    pub rs: usize,
    /// Distance between columns.
    pub cs: usize,
}

impl<'a> Strided<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Strided {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
}

/// Packing space for one thread: grows to the largest `k` seen, then never again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pack {
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl Pack {
    /// Room for blocks of `MAX_MR` rows over `k` columns, plus the vector's worth
    /// that packing may write past the last entry.
    pub fn reserve(&mut self, k: usize) {
        let room = k + PACK_SLACK;
        if self.cols.len() < room {
            self.cols.resize(room, 0);
            self.vals.resize(room * MAX_MR, 0.0);
        }
    }
}

/// Entries packing may write past the last one: a whole vector's lanes (16 at most).
const PACK_SLACK: usize = 16;

/// The most rows a block can have.
pub(crate) const MAX_MR: usize = 4;

/// Everything one product needs.
pub(crate) struct Gemm<'a, 'p> {
    /// `A: [m, k]`.
    pub a: Strided<'a>,
    /// `B: [k, n]`, row-major.
    pub b: &'a [f32],
    /// Columns `n` of `B` and `C`.
    pub n: usize,
    /// `C: [m, n]`, row-major.
    pub c: &'a mut [f32],
    /// What to do with each sum.
    pub epilogue: Epilogue<'a>,
    /// Rows per block (1, 2 or 4; larger shares more loads of `B`, smaller skips
    /// more zeros).
    pub mr: usize,
    /// Packing space.
    pub pack: &'p mut Pack,
}

/// `C ← epilogue(A·B)` with the instructions of `s`; see the module docs.
#[inline(always)]
pub(crate) fn gemm<S: Products>(s: S, g: Gemm<'_, '_>) {
    s.gemm(g);
}

/// [`gemm`]'s body, compiled once per instruction set by [`Products`] and, within
/// that, once per kind of epilogue: with the kind a constant the compiler keeps the
/// accumulators in registers (with a kind known only at run time it stored them to
/// the stack after every multiply-add, and the products ran at half speed).
#[inline(always)]
fn gemm_generic<S: Simd>(s: S, g: Gemm<'_, '_>) {
    // Each arm passes an epilogue built from a constant kind.
    macro_rules! body {
        ($epilogue:expr) => {
            gemm_body(
                s,
                Gemm {
                    epilogue: $epilogue,
                    ..g
                },
            )
        };
    }
    match g.epilogue {
        Epilogue::Bias { bias, relu: true } => body!(Epilogue::Bias { bias, relu: true }),
        Epilogue::Bias { bias, relu: false } => body!(Epilogue::Bias { bias, relu: false }),
        Epilogue::Store => body!(Epilogue::Store),
        Epilogue::Sgd { lr } => body!(Epilogue::Sgd { lr }),
        Epilogue::Mask { h } => body!(Epilogue::Mask { h }),
    }
}

/// [`gemm_generic`] for one kind of epilogue.
#[inline(always)]
fn gemm_body<S: Simd>(s: S, g: Gemm<'_, '_>) {
    let Gemm {
        a,
        b,
        n,
        c,
        epilogue,
        mr,
        pack,
    } = g;
    let (m, k) = (a.rows, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(b.len() >= k * n, "B length");
    debug_assert!(c.len() >= m * n, "C length");
    if let Epilogue::Mask { h } = epilogue {
        debug_assert!(h.len() >= m * n, "mask length");
    }
    pack.reserve(k);
    let mr = match mr {
        0 | 1 => 1,
        2 | 3 => 2,
        _ => 4,
    };
    let mut r0 = 0;
    while r0 < m {
        let rows = if m - r0 >= mr {
            mr
        } else if m - r0 >= 2 && mr >= 2 {
            2
        } else {
            1
        };
        let entries = match rows {
            4 => pack_rows::<S, 4>(s, a, r0, pack),
            2 => pack_rows::<S, 2>(s, a, r0, pack),
            _ => pack_rows::<S, 1>(s, a, r0, pack),
        };
        if entries == 0 && matches!(epilogue, Epilogue::Sgd { .. }) {
            // An all-zero gradient leaves the rows as they are (`c − lr·0 = c`).
            r0 += rows;
            continue;
        }
        let block = Block {
            cols: &pack.cols[..entries],
            vals: &pack.vals[..entries * rows],
            b,
            n,
            r0,
        };
        match rows {
            4 => panels::<S, 4>(s, &block, c, epilogue),
            2 => panels::<S, 2>(s, &block, c, epilogue),
            _ => panels::<S, 1>(s, &block, c, epilogue),
        }
        r0 += rows;
    }
}

/// Packs rows `r0..r0 + MR` of `A`: for every column `p` where one of them is not
/// zero (NaN counts as not zero, as in the core), `cols[e] = p` and
/// `vals[e·MR + r] = A[r0 + r][p]`. Returns the entries.
#[inline(always)]
fn pack_rows<S: Simd, const MR: usize>(s: S, a: Strided<'_>, r0: usize, pack: &mut Pack) -> usize {
    if a.cs == 1 {
        pack_row_major::<S, MR>(s, a, r0, pack)
    } else if a.rs == 1 {
        pack_column_major::<S, MR>(s, a, r0, pack)
    } else {
        pack_strided::<MR>(a, r0, pack)
    }
}

/// [`pack_rows`] for row-major `A` (a batch `x`): a vector of each row at a time,
/// whose non-zero lanes are found with one comparison, so the cost follows the
/// non-zero columns rather than all of them.
#[inline(always)]
fn pack_row_major<S: Simd, const MR: usize>(
    s: S,
    a: Strided<'_>,
    r0: usize,
    pack: &mut Pack,
) -> usize {
    let (k, l) = (a.cols, S::LANES);
    let mut rows: [&[f32]; MR] = [&[]; MR];
    for (r, row) in rows.iter_mut().enumerate() {
        *row = &a.data[(r0 + r) * a.rs..][..k];
    }
    debug_assert!(pack.cols.len() >= k + PACK_SLACK, "pack not reserved");
    let mut count = 0;
    let mut p0 = 0;
    while p0 < k {
        let width = l.min(k - p0);
        let mut mask = 0u32;
        let mut vectors = [s.zero(); MR];
        for (v, row) in vectors.iter_mut().zip(rows) {
            // Lanes past `width` load as zero, so they are never packed.
            *v = if width == l {
                s.load(&row[p0..])
            } else {
                s.load_partial(&row[p0..p0 + width])
            };
            mask |= s.nonzero_mask(*v);
        }
        if mask != 0 {
            s.compress_entries(
                &vectors,
                mask,
                p0 as u32,
                &mut pack.vals[count * MR..],
                &mut pack.cols[count..],
            );
            count += mask.count_ones() as usize;
        }
        p0 += width;
    }
    count
}

/// [`pack_rows`] for `A = xᵀ` (a weight gradient's): the `MR` values of a column are
/// adjacent, so each is one short copy and one test (four columns at once with
/// AVX-512 for 4-row blocks).
#[inline(always)]
fn pack_column_major<S: Simd, const MR: usize>(
    s: S,
    a: Strided<'_>,
    r0: usize,
    pack: &mut Pack,
) -> usize {
    let data = &a.data[r0..];
    let (vals, cols) = (&mut pack.vals[..], &mut pack.cols[..]);
    if MR == 4 {
        s.pack_columns4(data, a.cs, a.cols, vals, cols)
    } else {
        pack_columns_one_by_one::<MR>(data, a.cs, a.cols, vals, cols)
    }
}

/// [`pack_rows`] for any strides.
#[inline(always)]
fn pack_strided<const MR: usize>(a: Strided<'_>, r0: usize, pack: &mut Pack) -> usize {
    let mut count = 0;
    let base = r0 * a.rs;
    // Branch-free: every column is written at `count`, which only advances when it
    // has a non-zero, so the data-dependent pattern costs no mispredictions.
    let cols = &mut pack.cols[..a.cols];
    let vals = &mut pack.vals[..a.cols * MR];
    for p in 0..a.cols {
        let mut any = false;
        for r in 0..MR {
            let v = a.data[base + r * a.rs + p * a.cs];
            vals[count * MR + r] = v;
            any |= v != 0.0;
        }
        cols[count] = p as u32;
        count += usize::from(any);
    }
    count
}

/// One packed block of `MR` rows of `A`.
struct Block<'a> {
    cols: &'a [u32],
    vals: &'a [f32],
    b: &'a [f32],
    n: usize,
    r0: usize,
}

/// Splits the columns into panels of at most `max_vectors(MR)` vectors, as even as
/// possible, and runs each.
#[inline(always)]
fn panels<S: Simd, const MR: usize>(
    s: S,
    block: &Block<'_>,
    c: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    let lanes = S::LANES;
    let vectors = block.n.div_ceil(lanes);
    let max = S::max_vectors(MR);
    let panels = vectors.div_ceil(max);
    let (base, extra) = (vectors / panels, vectors % panels);
    let mut col0 = 0;
    for p in 0..panels {
        let nv = base + usize::from(p < extra);
        let width = (nv * lanes).min(block.n - col0);
        let tail = width % lanes != 0;
        macro_rules! run {
            ($($nv:literal)*) => {
                match (nv, tail) {
                    $(
                        ($nv, false) => panel::<S, MR, $nv, false>(s, block, col0, width, c, epilogue),
                        ($nv, true) => panel::<S, MR, $nv, true>(s, block, col0, width, c, epilogue),
                    )*
                    _ => unreachable!("panel of {nv} vectors"),
                }
            };
        }
        run!(1 2 3 4 5 6 7 8);
        col0 += width;
    }
}

/// The micro-kernel: columns `col0..col0 + width` (`NV` vectors, the last partial if
/// `TAIL`) of the block's `MR` rows.
#[inline(always)]
fn panel<S: Simd, const MR: usize, const NV: usize, const TAIL: bool>(
    s: S,
    block: &Block<'_>,
    col0: usize,
    width: usize,
    c: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    let l = S::LANES;
    let n = block.n;
    // The panel's shape, checked once; the inner loop's loads rely on it.
    assert!(
        width <= NV * l && width > (NV - 1) * l && (TAIL || width == NV * l),
        "panel width"
    );
    let load = |row: &[f32], v: usize| {
        if TAIL && v == NV - 1 {
            s.load_partial(&row[v * l..width])
        } else {
            s.load(&row[v * l..])
        }
    };
    let mut acc = [[s.zero(); NV]; MR];
    if let Epilogue::Bias { bias, .. } = epilogue {
        let bias = &bias[col0..col0 + width];
        for v in 0..NV {
            let bv = load(bias, v);
            for row in acc.iter_mut() {
                row[v] = bv;
            }
        }
    }
    for (e, &p) in block.cols.iter().enumerate() {
        let start = p as usize * n + col0;
        let b_row = &block.b[start..start + width];
        let b_ptr = b_row.as_ptr();
        let a = &block.vals[e * MR..e * MR + MR];
        // Plain loops, not `core::array::from_fn`: a closure that is not inlined would
        // be compiled without the target's features, and each intrinsic would become
        // a call.
        let mut splats = [s.zero(); MR];
        for (splat, &value) in splats.iter_mut().zip(a) {
            *splat = s.splat(value);
        }
        for v in 0..NV {
            // Through a pointer: checking each vector's slice cost the one-row panels
            // of single-image inference 20% (the compiler did not hoist the checks).
            // SAFETY: `b_row` has `width` elements; by the assert above, a full vector
            // (`v < NV − 1`, or any `v` without a tail) ends at or before `width`, and
            // the tail reads `v·l..width`.
            let bv = unsafe {
                if TAIL && v == NV - 1 {
                    s.load_partial_ptr(b_ptr.add(v * l), width - v * l)
                } else {
                    s.load_ptr(b_ptr.add(v * l))
                }
            };
            for (acc_row, &splat) in acc.iter_mut().zip(&splats) {
                acc_row[v] = s.mul_add(splat, bv, acc_row[v]);
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        let start = (block.r0 + r) * n + col0;
        let c_row = &mut c[start..start + width];
        for (v, &a) in acc_row.iter().enumerate() {
            let out = match epilogue {
                Epilogue::Bias { relu: true, .. } => s.relu(a),
                Epilogue::Bias { relu: false, .. } | Epilogue::Store => a,
                Epilogue::Sgd { lr } => s.sub(load(c_row, v), s.mul(s.splat(lr), a)),
                Epilogue::Mask { h } => s.keep_where_positive(load(&h[start..], v), a),
            };
            if TAIL && v == NV - 1 {
                s.store_partial(&mut c_row[v * l..width], out);
            } else {
                s.store(&mut c_row[v * l..], out);
            }
        }
    }
}

/// Everything one "dot-product" product needs: `C ← A·Bᵀ`, masked.
pub(crate) struct GemmNt<'a> {
    /// `A: [m, k]`, row-major.
    pub a: &'a [f32],
    /// `Bᵀ: [n, k]`, row-major (so `B: [k, n]` is read by columns).
    pub bt: &'a [f32],
    /// Rows `m` of `A` and `C`.
    pub m: usize,
    /// Rows `n` of `Bᵀ`, columns of `C`.
    pub n: usize,
    /// The shared dimension `k`.
    pub k: usize,
    /// `C: [m, n]`, row-major.
    pub c: &'a mut [f32],
    /// `h: [m, n]`: if given, `C[i][j]` is kept only where `h[i][j] > 0` (else 0).
    pub mask: Option<&'a [f32]>,
}

/// `C ← A·Bᵀ` (then ReLU's backward mask if given), for an input gradient
/// `grad_out · Wᵀ` with `W: [inputs, outputs]` as stored: each element is a dot product
/// of two contiguous rows, accumulated in vectors along `k` and summed across lanes at
/// the end. Tiles of up to 4 × 4 elements share their loads.
#[inline(always)]
pub(crate) fn gemm_nt<S: Products>(s: S, g: GemmNt<'_>) {
    s.gemm_nt(g);
}

/// [`gemm_nt`]'s body, compiled once per instruction set by [`Products`].
#[inline(always)]
fn gemm_nt_generic<S: Simd>(s: S, g: GemmNt<'_>) {
    let GemmNt {
        a,
        bt,
        m,
        n,
        k,
        c,
        mask,
    } = g;
    debug_assert!(a.len() >= m * k, "A length");
    debug_assert!(bt.len() >= n * k, "Bt length");
    debug_assert!(c.len() >= m * n, "C length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    // Wide vectors have 32 registers: 4 × 4 accumulators; narrow ones 16: 2 × 4.
    let tall = if S::LANES >= 16 { 4 } else { 2 };
    let mut i = 0;
    while i < m {
        let rows = if m - i >= tall {
            tall
        } else if m - i >= 2 {
            2
        } else {
            1
        };
        let mut j = 0;
        while j < n {
            let cols = if n - j >= 4 { 4 } else { 1 };
            let t = NtTile {
                a,
                bt,
                k,
                n,
                i,
                j,
                mask,
            };
            match (rows, cols) {
                (4, 4) => nt_tile::<S, 4, 4>(s, &t, c),
                (4, _) => nt_tile::<S, 4, 1>(s, &t, c),
                (2, 4) => nt_tile::<S, 2, 4>(s, &t, c),
                (2, _) => nt_tile::<S, 2, 1>(s, &t, c),
                (_, 4) => nt_tile::<S, 1, 4>(s, &t, c),
                _ => nt_tile::<S, 1, 1>(s, &t, c),
            }
            j += cols;
        }
        i += rows;
    }
}

/// Where one tile of [`gemm_nt`] is.
struct NtTile<'a> {
    a: &'a [f32],
    bt: &'a [f32],
    k: usize,
    n: usize,
    i: usize,
    j: usize,
    mask: Option<&'a [f32]>,
}

/// Rows `i..i + MR` and columns `j..j + NR` of `C`.
#[inline(always)]
fn nt_tile<S: Simd, const MR: usize, const NR: usize>(s: S, t: &NtTile<'_>, c: &mut [f32]) {
    let l = S::LANES;
    let k = t.k;
    let full = k / l;
    let mut acc = [[s.zero(); NR]; MR];
    let a = &t.a[t.i * k..(t.i + MR) * k];
    let bt = &t.bt[t.j * k..(t.j + NR) * k];
    // Plain loops (see `panel`): every closure here must be inlined.
    for v in 0..full {
        let mut bv = [s.zero(); NR];
        for (q, b) in bv.iter_mut().enumerate() {
            *b = s.load(&bt[q * k + v * l..]);
        }
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let av = s.load(&a[r * k + v * l..]);
            for (acc, &b) in acc_row.iter_mut().zip(&bv) {
                *acc = s.mul_add(av, b, *acc);
            }
        }
    }
    if full * l < k {
        let mut bv = [s.zero(); NR];
        for (q, b) in bv.iter_mut().enumerate() {
            *b = s.load_partial(&bt[q * k + full * l..(q + 1) * k]);
        }
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let av = s.load_partial(&a[r * k + full * l..(r + 1) * k]);
            for (acc, &b) in acc_row.iter_mut().zip(&bv) {
                *acc = s.mul_add(av, b, *acc);
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        let start = (t.i + r) * t.n + t.j;
        let mut sums = [0.0f32; NR];
        if let Ok(four) = <[S::V; 4]>::try_from(&acc_row[..]) {
            sums.copy_from_slice(&s.sums4(four));
        } else {
            for (sum, &v) in sums.iter_mut().zip(acc_row) {
                *sum = s.sum(v);
            }
        }
        for (q, &sum) in sums.iter().enumerate() {
            c[start + q] = match t.mask {
                // Kept only where `h > 0`: NaN and non-positive `h` give 0, as in
                // `mlp_core::activation::relu_backward`.
                Some(h) if h[start + q] > 0.0 => sum,
                Some(_) => 0.0,
                None => sum,
            };
        }
    }
}
