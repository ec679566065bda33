//! The one product kernel every pass uses: `C ← epilogue(A·B)`, skipping the zeros of
//! `A`.
//!
//! # Notation
//! `A: [m, k]` is read through strides (`A[i][p] = data[i·rs + p·cs]`), so it can be a
//! batch `x` (`cs = 1`) or its transpose `xᵀ` (`rs = 1`) without copying. `B: [k, n]`
//! and `C: [m, n]` are row-major and contiguous.
//!
//! # How
//! Rows of `A` are taken four at a time (one at a time for the last `m mod 4`). For
//! each block the columns `p` where any of its rows is not zero are packed, with the
//! block's values there, into a short list: on images and ReLU outputs about half the
//! entries are zero, and whole columns of neighbouring pixels are. Then, for each
//! panel of up to a few vectors of columns, `rows × vectors` accumulators stay in
//! registers while the list is walked: per entry, the panel's vectors of row `p` of
//! `B` are loaded once and used by every row of the block. Columns past the last whole
//! vector go through a one-vector panel with partial loads and stores. The epilogue is
//! applied as the accumulators leave the registers, which fuses the bias, ReLU, ReLU's
//! backward mask or an SGD update into the product at no extra pass over memory.
//!
//! Every element of `C` is one chain of multiply-adds over `p` ascending (see the
//! crate docs for the arithmetic). A row sharing a block with others also adds the
//! exact zeros `0·B[p][j]` of the entries only the others need; that leaves a chain
//! unchanged unless it is at `−0.0`, which a chain from `+0.0` never is (see the crate
//! docs), so results do not depend on the blocks.
//!
//! Which panel widths exist is a per-instruction-set constant ([`Panels`]): only the
//! widths whose accumulators fit the register file are compiled.

use crate::simd::{pack_columns_one_by_one, Simd};

/// `A` seen through strides: `A[i][p] = data[i·rs + p·cs]`, with `rs = 1` or `cs = 1`.
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
    /// A row-major `[rows, cols]` matrix whose rows are `stride` apart.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize, stride: usize) -> Self {
        Strided {
            data,
            rows,
            cols,
            rs: stride,
            cs: 1,
        }
    }

    /// The transpose of a row-major `[cols, rows]` matrix whose rows are `stride`
    /// apart: `A[i][p] = data[p·stride + i]`.
    pub(crate) fn transposed(data: &'a [f32], rows: usize, cols: usize, stride: usize) -> Self {
        Strided {
            data,
            rows,
            cols,
            rs: 1,
            cs: stride,
        }
    }

    /// The index of the last element plus one (0 when empty).
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// What happens to each accumulated chain on its way to `C[i][j]`, and where the
/// chain starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// The chain starts from `bias[j]`; `C ← acc`, then ReLU if `relu`.
    Bias {
        /// `bias: [n]`.
        bias: &'a [f32],
        /// Apply ReLU.
        relu: bool,
    },
    /// The chain starts from `+0.0`; `C ← C + acc`, then ReLU if `relu`: the second
    /// half of a split sum (see the crate docs).
    Add {
        /// Apply ReLU.
        relu: bool,
    },
    /// The chain starts from `+0.0`; `C ← acc`.
    Store,
    /// The chain starts from `+0.0`; `C ← C − lr·acc` (the product rounded, then the
    /// difference): a weight gradient applied by SGD without being stored.
    Sgd {
        /// The learning rate.
        lr: f32,
    },
    /// The chain starts from `+0.0`; `C ← acc` where `h > 0`, else `+0.0`: an input
    /// gradient through ReLU's backward.
    Mask {
        /// `h: [m, n]`, the ReLU outputs.
        h: &'a [f32],
    },
}

/// Everything one product needs.
pub(crate) struct Gemm<'a> {
    /// `A: [m, k]`.
    pub a: Strided<'a>,
    /// `B: [k, n]`, row-major.
    pub b: &'a [f32],
    /// Columns `n` of `B` and `C`.
    pub n: usize,
    /// `C: [m, n]`, row-major.
    pub c: &'a mut [f32],
    /// What to do with each chain.
    pub epilogue: Epilogue<'a>,
}

/// Packing space for one thread: grows to the largest `k` seen, then never again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pack {
    cols: Vec<u32>,
    vals: Vec<f32>,
}

/// Entries packing may write past the last one: a whole vector's lanes.
const PACK_SLACK: usize = crate::simd::MAX_LANES;

/// Rows of `A` per block (but for the last `m mod BLOCK_ROWS`, taken one by one).
pub(crate) const BLOCK_ROWS: usize = 4;

impl Pack {
    /// Room for blocks over `k` columns, plus what packing may write past the end.
    pub(crate) fn reserve(&mut self, k: usize) {
        let room = k + PACK_SLACK;
        if self.cols.len() < room {
            self.cols.resize(room, 0);
            self.vals.resize(room * BLOCK_ROWS, 0.0);
        }
    }
}

/// The widest panels an instruction set compiles, in whole vectors, and the
/// micro-kernels that exist for them: `rows × vectors` accumulators, the row's
/// broadcasts and a vector of `B` must fit the register file.
pub(crate) trait Panels: Simd {
    /// The widest panel for blocks of [`BLOCK_ROWS`] rows.
    const WIDEST_BLOCK: usize;
    /// The widest panel for single rows.
    const WIDEST_ROW: usize;
    /// Runs [`panel`] with `nv` (at most the widest for `MR`) vectors.
    fn panel<const MR: usize>(self, nv: usize, block: &Block<'_, MR>, c: &mut [f32]);
}

/// Implements [`Panels`] with the listed panel widths (1 to the widest, for blocks and
/// for single rows): a `match` over constants, so exactly these are compiled.
macro_rules! panels {
    (impl[$($generics:tt)*] $isa:ty, [$($block:literal)*], [$($row:literal)*]) => {
        impl<$($generics)*> crate::gemm::Panels for $isa {
            const WIDEST_BLOCK: usize = [$($block),*].len();
            const WIDEST_ROW: usize = [$($row),*].len();
            #[inline(always)]
            fn panel<const MR: usize>(
                self,
                nv: usize,
                block: &crate::gemm::Block<'_, MR>,
                c: &mut [f32],
            ) {
                if MR == crate::gemm::BLOCK_ROWS {
                    match nv {
                        $($block => crate::gemm::panel::<Self, MR, $block>(self, block, c),)*
                        _ => {}
                    }
                } else {
                    match nv {
                        $($row => crate::gemm::panel::<Self, MR, $row>(self, block, c),)*
                        _ => {}
                    }
                }
            }
        }
    };
}
pub(crate) use panels;

/// `C ← epilogue(A·B)` with the instructions of `s`; see the module docs.
///
/// # Panics
/// If a slice is shorter than the shapes say (checked once, before any work).
#[inline(always)]
pub(crate) fn gemm<S: Panels>(s: S, g: Gemm<'_>, pack: &mut Pack) {
    let Gemm {
        a,
        b,
        n,
        c,
        epilogue,
    } = g;
    let (m, k) = (a.rows, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(a.rs == 1 || a.cs == 1, "A is row- or column-major");
    assert!(a.data.len() >= a.extent(), "A is shorter than its shape");
    assert!(b.len() >= k * n, "B is shorter than its shape");
    assert!(c.len() >= m * n, "C is shorter than its shape");
    match epilogue {
        Epilogue::Bias { bias, .. } => assert!(bias.len() >= n, "bias is shorter than n"),
        Epilogue::Mask { h } => assert!(h.len() >= m * n, "mask is shorter than C"),
        _ => {}
    }
    pack.reserve(k);
    let mut r0 = 0;
    while r0 < m {
        if m - r0 >= BLOCK_ROWS {
            block::<S, BLOCK_ROWS>(s, a, r0, b, n, c, epilogue, pack);
            r0 += BLOCK_ROWS;
        } else {
            block::<S, 1>(s, a, r0, b, n, c, epilogue, pack);
            r0 += 1;
        }
    }
}

/// One packed block of `MR` rows of `A`, and where its results go.
pub(crate) struct Block<'a, const MR: usize> {
    /// The packed columns.
    cols: &'a [u32],
    /// `MR` values per packed column.
    vals: &'a [f32],
    b: &'a [f32],
    n: usize,
    /// The block's first row.
    r0: usize,
    /// The panel's first column.
    col0: usize,
    /// The panel's columns: its vectors' lanes, but for a last partial vector.
    width: usize,
    epilogue: Epilogue<'a>,
}

/// Packs rows `r0..r0 + MR` of `A` and runs every panel of columns over them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<S: Panels, const MR: usize>(
    s: S,
    a: Strided<'_>,
    r0: usize,
    b: &[f32],
    n: usize,
    c: &mut [f32],
    epilogue: Epilogue<'_>,
    pack: &mut Pack,
) {
    let entries = if a.cs == 1 {
        pack_rows::<S, MR>(s, a, r0, pack)
    } else if MR == BLOCK_ROWS {
        s.pack_columns4(&a.data[r0..], a.cs, a.cols, &mut pack.vals, &mut pack.cols)
    } else {
        pack_columns_one_by_one::<MR>(&a.data[r0..], a.cs, a.cols, &mut pack.vals, &mut pack.cols)
    };
    if entries == 0 && matches!(epilogue, Epilogue::Sgd { .. }) {
        // An all-zero gradient leaves the rows as they are (`c − lr·0 = c`, bit for bit).
        return;
    }
    let mut block = Block::<MR> {
        cols: &pack.cols[..entries],
        vals: &pack.vals[..entries * MR],
        b,
        n,
        r0,
        col0: 0,
        width: 0,
        epilogue,
    };
    let lanes = S::LANES;
    // With masked instructions the last panel ends in the last partial vector;
    // without, panels are of whole vectors and the rest is an edge panel's.
    let vectors = if S::MASKED_TAIL {
        n.div_ceil(lanes)
    } else {
        n / lanes
    };
    let widest = if MR == BLOCK_ROWS {
        S::WIDEST_BLOCK
    } else {
        S::WIDEST_ROW
    };
    // Panels as even as possible.
    let panels = vectors.div_ceil(widest);
    for p in 0..panels {
        let nv = vectors / panels + usize::from(p < vectors % panels);
        block.width = (nv * lanes).min(n - block.col0);
        s.panel(nv, &block, c);
        block.col0 += block.width;
    }
    if block.col0 < n {
        block.width = n - block.col0;
        edge_panel(s, &block, c);
    }
}

/// Packs rows `r0..r0 + MR` of a row-major `A`: for every column `p` where one of them
/// is not zero (NaN counts as not zero), `cols[e] = p` and `vals[e·MR + r] =
/// A[r0 + r][p]`. A vector of each row at a time, whose non-zero lanes are found with
/// one comparison, so the cost follows the non-zero columns rather than all of them.
/// Returns the entries.
#[inline(always)]
fn pack_rows<S: Simd, const MR: usize>(s: S, a: Strided<'_>, r0: usize, pack: &mut Pack) -> usize {
    let (k, l) = (a.cols, S::LANES);
    let rows: [&[f32]; MR] = core::array::from_fn(|r| &a.data[(r0 + r) * a.rs..][..k]);
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

/// The micro-kernel: `NV` whole vectors of columns from `block.col0` on, for the
/// block's `MR` rows.
#[inline(always)]
pub(crate) fn panel<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    block: &Block<'_, MR>,
    c: &mut [f32],
) {
    let l = S::LANES;
    let (col0, width) = (block.col0, block.width);
    // The panel's shape, checked once: the loads below rely on it.
    assert!(
        width > (NV - 1) * l && width <= NV * l && (S::MASKED_TAIL || width == NV * l),
        "panel width"
    );
    // Vector `v` of a row that starts at `row[0]` (the last one maybe partial).
    let vector = |row: &[f32], v: usize| {
        if S::MASKED_TAIL && v == NV - 1 {
            s.load_upto(&row[v * l..width])
        } else {
            s.load(&row[v * l..])
        }
    };
    let mut acc = [[s.zero(); NV]; MR];
    if let Epilogue::Bias { bias, .. } = block.epilogue {
        let bias = &bias[col0..col0 + width];
        for v in 0..NV {
            let bv = vector(bias, v);
            for row in acc.iter_mut() {
                row[v] = bv;
            }
        }
    }
    for (a, &p) in block.vals.chunks_exact(MR).zip(block.cols) {
        // One bounds check per entry; the loads below are at constant offsets inside.
        let b_row = &block.b[p as usize * block.n + col0..][..width];
        // Plain loops: everything here must be inlined into the instruction set's
        // entry point to be compiled with its features.
        let mut splats = [s.zero(); MR];
        for (splat, &value) in splats.iter_mut().zip(a) {
            *splat = s.splat(value);
        }
        for v in 0..NV {
            let bv = vector(b_row, v);
            for (acc_row, &splat) in acc.iter_mut().zip(&splats) {
                acc_row[v] = s.mul_add(splat, bv, acc_row[v]);
            }
        }
    }
    // One store loop per kind of epilogue, each with the kind a constant: with the
    // kind known only at run time the store loop is too large to unroll, and the
    // accumulators it indexes would live in memory through the loop above.
    macro_rules! store {
        ($($kind:ident)*) => {
            match Kind::of(block.epilogue) {
                $(Kind::$kind => store_panel::<S, MR, NV, { Kind::$kind as u8 }>(s, &acc, block, c),)*
            }
        };
    }
    store!(Bias BiasRelu Add AddRelu Store Sgd Mask);
}

/// [`panel`]'s stores, for the epilogue kind `KIND` (a [`Kind`]).
#[inline(always)]
fn store_panel<S: Simd, const MR: usize, const NV: usize, const KIND: u8>(
    s: S,
    acc: &[[S::V; NV]; MR],
    block: &Block<'_, MR>,
    c: &mut [f32],
) {
    let l = S::LANES;
    for (r, acc_row) in acc.iter().enumerate() {
        let start = (block.r0 + r) * block.n + block.col0;
        let c_row = &mut c[start..start + block.width];
        // Over `v` with a constant count, so that the accumulators stay registers.
        for (v, &a) in acc_row.iter().enumerate() {
            let c_vec = &mut c_row[v * l..((v + 1) * l).min(block.width)];
            let out = finish::<S, KIND>(s, block.epilogue, a, c_vec, start + v * l);
            s.store_upto(c_vec, out);
        }
    }
}

/// The columns past the last whole vector (fewer than one vector's lanes), with
/// partial loads and stores.
#[inline(always)]
fn edge_panel<S: Simd, const MR: usize>(s: S, block: &Block<'_, MR>, c: &mut [f32]) {
    let (col0, width) = (block.col0, block.width);
    let mut acc = [s.zero(); MR];
    if let Epilogue::Bias { bias, .. } = block.epilogue {
        let bv = s.load_partial(&bias[col0..col0 + width]);
        acc = [bv; MR];
    }
    for (a, &p) in block.vals.chunks_exact(MR).zip(block.cols) {
        let start = p as usize * block.n + col0;
        let bv = s.load_partial(&block.b[start..start + width]);
        for (acc, &value) in acc.iter_mut().zip(a) {
            *acc = s.mul_add(s.splat(value), bv, *acc);
        }
    }
    macro_rules! store {
        ($($kind:ident)*) => {
            match Kind::of(block.epilogue) {
                $(Kind::$kind => store_edge::<S, MR, { Kind::$kind as u8 }>(s, &acc, block, c),)*
            }
        };
    }
    store!(Bias BiasRelu Add AddRelu Store Sgd Mask);
}

/// [`edge_panel`]'s stores, for the epilogue kind `KIND` (a [`Kind`]).
#[inline(always)]
fn store_edge<S: Simd, const MR: usize, const KIND: u8>(
    s: S,
    acc: &[S::V; MR],
    block: &Block<'_, MR>,
    c: &mut [f32],
) {
    for (r, &a) in acc.iter().enumerate() {
        let start = (block.r0 + r) * block.n + block.col0;
        let c_part = &mut c[start..start + block.width];
        let out = finish::<S, KIND>(s, block.epilogue, a, c_part, start);
        s.store_partial(c_part, out);
    }
}

/// The kinds of [`Epilogue`], as constants for the store loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Bias,
    BiasRelu,
    Add,
    AddRelu,
    Store,
    Sgd,
    Mask,
}

impl Kind {
    #[inline(always)]
    fn of(e: Epilogue<'_>) -> Kind {
        match e {
            Epilogue::Bias { relu: false, .. } => Kind::Bias,
            Epilogue::Bias { relu: true, .. } => Kind::BiasRelu,
            Epilogue::Add { relu: false } => Kind::Add,
            Epilogue::Add { relu: true } => Kind::AddRelu,
            Epilogue::Store => Kind::Store,
            Epilogue::Sgd { .. } => Kind::Sgd,
            Epilogue::Mask { .. } => Kind::Mask,
        }
    }
}

/// What the epilogue (of kind `KIND`, a [`Kind`]) makes of a chain `acc` leaving the
/// registers for `c` (the `1 ≤ c.len() ≤ LANES` elements of `C` it goes to), whose
/// elements are at index `at` of `C` (and of the mask).
#[inline(always)]
fn finish<S: Simd, const KIND: u8>(
    s: S,
    epilogue: Epilogue<'_>,
    acc: S::V,
    c: &[f32],
    at: usize,
) -> S::V {
    const BIAS_RELU: u8 = Kind::BiasRelu as u8;
    const ADD: u8 = Kind::Add as u8;
    const ADD_RELU: u8 = Kind::AddRelu as u8;
    const SGD: u8 = Kind::Sgd as u8;
    const MASK: u8 = Kind::Mask as u8;
    match (KIND, epilogue) {
        (BIAS_RELU, _) => s.relu(acc),
        (ADD, _) => s.add(s.load_upto(c), acc),
        (ADD_RELU, _) => s.relu(s.add(s.load_upto(c), acc)),
        (SGD, Epilogue::Sgd { lr }) => s.sub(s.load_upto(c), s.mul(s.splat(lr), acc)),
        (MASK, Epilogue::Mask { h }) => {
            s.keep_where_positive(s.load_upto(&h[at..at + c.len()]), acc)
        }
        // Bias without ReLU and Store keep the chain as it is.
        _ => acc,
    }
}
