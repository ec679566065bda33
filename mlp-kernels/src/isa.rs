//! Which kernels compute: the public choice ([`Kernels`], [`Isa`]) and the private
//! backend that holds the proof that the CPU runs it.

use core::fmt;
use core::str::FromStr;

use crate::gemm::{self, panels, Gemm, Pack};
use crate::simd::{Portable, Simd};

/// An instruction set the fast kernels are written for.
///
/// Every one computes the same bits (see the crate docs); they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust on 8-lane arrays: runs on every target (its fused multiply-add is
    /// done in software where the CPU has none, so it is slow there).
    Portable,
    /// x86-64 AVX2 with FMA (8 lanes).
    Avx2,
    /// x86-64 AVX-512F (16 lanes, masked partial vectors).
    Avx512,
    /// AArch64 NEON (4 lanes).
    Neon,
}

impl Isa {
    /// Every instruction set, portable first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// Whether this CPU runs it (checked at run time).
    pub fn is_supported(self) -> bool {
        Backend::new(Kernels::Fast(self)).is_ok()
    }

    /// The instruction sets this CPU runs, portable first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The fastest instruction set this CPU runs.
    pub fn best() -> Isa {
        [Isa::Avx512, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|i| i.is_supported())
            .unwrap_or(Isa::Portable)
    }

    /// Its name on the command line: `portable`, `avx2`, `avx512` or `neon`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an instruction set's (see [`Isa::name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownIsa(pub String);

impl fmt::Display for UnknownIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown instruction set {:?} (expected portable, avx2, avx512 or neon)",
            self.0
        )
    }
}

impl std::error::Error for UnknownIsa {}

impl FromStr for Isa {
    type Err = UnknownIsa;
    fn from_str(s: &str) -> Result<Isa, UnknownIsa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| UnknownIsa(s.to_owned()))
    }
}

/// The kernels a pass computes with: the arithmetic, and for the fast one the
/// instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// The device's arithmetic (`mlp_core::dense`: each product rounded, then added),
    /// in the same order of operations as the core's kernels, so a pass gives the
    /// bits the core's kernels (and a Cortex-M running them) give. Portable code.
    Core,
    /// The fast arithmetic (fused multiply-adds; see the crate docs) with this
    /// instruction set.
    Fast(Isa),
}

impl Kernels {
    /// The fast kernels with the fastest instruction set this CPU runs.
    pub fn best() -> Kernels {
        Kernels::Fast(Isa::best())
    }
}

impl fmt::Display for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kernels::Core => f.write_str("core"),
            Kernels::Fast(isa) => write!(f, "fast ({isa})"),
        }
    }
}

/// The CPU does not run the instruction set asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported(pub Isa);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this CPU does not run the {} kernels (it runs: {})",
            self.0,
            Isa::supported()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl std::error::Error for Unsupported {}

/// [`Kernels`] with the proof that the CPU runs them: the x86 and Arm variants hold
/// tokens that only run-time detection builds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    /// [`Kernels::Core`].
    Core,
    /// [`Isa::Portable`].
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(crate::simd::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(crate::simd::Avx512),
    #[cfg(target_arch = "aarch64")]
    Neon(crate::simd::Neon),
}

impl Backend {
    /// The backend for `kernels`, if this CPU runs them.
    pub(crate) fn new(kernels: Kernels) -> Result<Backend, Unsupported> {
        let isa = match kernels {
            Kernels::Core => return Ok(Backend::Core),
            Kernels::Fast(isa) => isa,
        };
        let found = match isa {
            Isa::Portable => Some(Backend::Portable),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => crate::simd::Avx2::detect().map(Backend::Avx2),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => crate::simd::Avx512::detect().map(Backend::Avx512),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => crate::simd::Neon::detect().map(Backend::Neon),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        found.ok_or(Unsupported(isa))
    }

    /// The kernels this backend computes.
    pub(crate) fn kernels(self) -> Kernels {
        match self {
            Backend::Core => Kernels::Core,
            Backend::Portable => Kernels::Fast(Isa::Portable),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(_) => Kernels::Fast(Isa::Avx2),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(_) => Kernels::Fast(Isa::Avx512),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon(_) => Kernels::Fast(Isa::Neon),
        }
    }

    /// Where a network's first layer splits its sum over its inputs (see the crate
    /// docs): `None` for the core's arithmetic and for fewer than 32 inputs.
    pub(crate) fn first_layer_split(self, inputs: usize) -> Option<usize> {
        let split = SPLIT_ALIGN * (inputs / (2 * SPLIT_ALIGN));
        (!matches!(self, Backend::Core) && split > 0).then_some(split)
    }

    /// `C ← epilogue(A·B)`; see `crate::gemm`.
    pub(crate) fn gemm(self, g: Gemm<'_>, pack: &mut Pack) {
        match self {
            Backend::Core => portable::gemm::<false>(g, pack),
            Backend::Portable => portable::gemm::<true>(g, pack),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the token exists, so AVX-512F, AVX2 and FMA were detected.
            Backend::Avx512(s) => unsafe { avx512::gemm(s, g, pack) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the token exists, so AVX2 and FMA were detected.
            Backend::Avx2(s) => unsafe { avx2::gemm(s, g, pack) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: the token exists, so NEON was detected.
            Backend::Neon(s) => unsafe { neon::gemm(s, g, pack) },
        }
    }

    /// Rows `indices` of the pixel bytes `pixels` (`[n, features]`), columns `cols`,
    /// as inputs `pixel / 255` into `dst: [indices.len(), cols.len()]`.
    pub(crate) fn gather_pixels(
        self,
        pixels: &[u8],
        features: usize,
        indices: &[u32],
        cols: core::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        let args = (pixels, features, indices, cols, dst);
        match self {
            Backend::Core | Backend::Portable => portable::gather_pixels(args),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `gemm`.
            Backend::Avx512(_) => unsafe { avx512::gather_pixels(args) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `gemm`.
            Backend::Avx2(_) => unsafe { avx2::gather_pixels(args) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as in `gemm`.
            Backend::Neon(_) => unsafe { neon::gather_pixels(args) },
        }
    }
}

impl Backend {
    /// Columns `j0..` of `w: [rows, cols]` as rows of `out` (`[·, rows]`, as many
    /// as `out` holds): `out[j − j0][i] = w[i][j]`.
    pub(crate) fn transpose(self, w: &[f32], rows: usize, cols: usize, j0: usize, out: &mut [f32]) {
        let args = (w, rows, cols, j0, out);
        match self {
            Backend::Core | Backend::Portable => portable::transpose(args),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `gemm`.
            Backend::Avx512(s) => unsafe { avx512::transpose(s, args) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `gemm`.
            Backend::Avx2(s) => unsafe { avx2::transpose(s, args) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as in `gemm`.
            Backend::Neon(s) => unsafe { neon::transpose(s, args) },
        }
    }
}

/// The arguments of [`Backend::transpose`].
type TransposeArgs<'a> = (&'a [f32], usize, usize, usize, &'a mut [f32]);

/// [`Backend::transpose`]'s body: 8 × 8 tiles ([`Simd::transpose8`]), the edges one
/// element at a time.
#[inline(always)]
fn transpose_body<S: Simd>(s: S, (w, rows, cols, j0, out): TransposeArgs<'_>) {
    const T: usize = 8;
    if rows == 0 {
        return;
    }
    let count = (out.len() / rows).min(cols.saturating_sub(j0));
    let out = &mut out[..count * rows];
    let (full_i, full_j) = (rows / T * T, count / T * T);
    for jb in (0..full_j).step_by(T) {
        for ib in (0..full_i).step_by(T) {
            s.transpose8(
                &w[ib * cols + j0 + jb..],
                cols,
                &mut out[jb * rows + ib..],
                rows,
            );
        }
        for i in full_i..rows {
            for b in 0..T {
                out[(jb + b) * rows + i] = w[i * cols + j0 + jb + b];
            }
        }
    }
    for j in full_j..count {
        for i in 0..rows {
            out[j * rows + i] = w[i * cols + j0 + j];
        }
    }
}

/// The split of the first layer's inputs is a multiple of this many: a cache line of
/// a batch row.
const SPLIT_ALIGN: usize = 16;

/// The arguments of [`Backend::gather_pixels`].
type GatherArgs<'a> = (
    &'a [u8],
    usize,
    &'a [u32],
    core::ops::Range<usize>,
    &'a mut [f32],
);

/// [`Backend::gather_pixels`]'s body.
#[inline(always)]
fn gather_pixels_body((pixels, features, indices, cols, dst): GatherArgs<'_>) {
    let width = cols.len();
    if width == 0 {
        return;
    }
    for (row, &i) in dst.chunks_exact_mut(width).zip(indices) {
        let start = i as usize * features;
        let from = &pixels[start + cols.start..start + cols.end];
        for (x, &p) in row.iter_mut().zip(from) {
            *x = pixel_value(p);
        }
    }
}

/// `pixel / 255` as `mlp_core::network::pixel_value` computes it, in a form that
/// compiles to vector instructions (a float division per pixel does not pipeline):
/// the product in `f64` rounds to the same `f32` for each of the 256 bytes (a test
/// checks every one).
#[inline(always)]
pub(crate) fn pixel_value(p: u8) -> f32 {
    (f64::from(p) * (1.0 / 255.0)) as f32
}

/// The portable entry points (no target features; the core's arithmetic is these
/// with `FUSED = false`).
mod portable {
    use super::*;

    panels!(impl[const FUSED: bool] Portable<FUSED>, [1 2], [1 2 3 4]);

    #[inline(never)]
    pub(super) fn gemm<const FUSED: bool>(g: Gemm<'_>, pack: &mut Pack) {
        gemm::gemm(Portable::<FUSED>, g, pack);
    }

    #[inline(never)]
    pub(super) fn gather_pixels(args: GatherArgs<'_>) {
        gather_pixels_body(args);
    }

    #[inline(never)]
    pub(super) fn transpose(args: TransposeArgs<'_>) {
        transpose_body(Portable::<true>, args);
    }
}

/// The entry points of an instruction set: each is the generic body compiled with
/// `$features`. Unsafe to call: the caller proves the CPU has the features.
macro_rules! entry_points {
    ($module:ident, $isa:ty, $features:literal) => {
        mod $module {
            use super::*;

            #[inline(never)]
            #[target_feature(enable = $features)]
            pub(super) fn gemm(s: $isa, g: Gemm<'_>, pack: &mut Pack) {
                gemm::gemm(s, g, pack);
            }

            #[inline(never)]
            #[target_feature(enable = $features)]
            pub(super) fn gather_pixels(args: GatherArgs<'_>) {
                gather_pixels_body(args);
            }

            #[inline(never)]
            #[target_feature(enable = $features)]
            pub(super) fn transpose(s: $isa, args: TransposeArgs<'_>) {
                transpose_body(s, args);
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
panels!(impl[] crate::simd::Avx512, [1 2 3 4 5 6], [1 2 3 4 5 6 7 8]);
#[cfg(target_arch = "x86_64")]
panels!(impl[] crate::simd::Avx2, [1 2], [1 2 3 4 5 6 7 8]);
#[cfg(target_arch = "aarch64")]
panels!(impl[] crate::simd::Neon, [1 2 3 4 5 6], [1 2 3 4 5 6 7 8]);

#[cfg(target_arch = "x86_64")]
entry_points!(avx512, crate::simd::Avx512, "avx512f,avx2,fma");
#[cfg(target_arch = "x86_64")]
entry_points!(avx2, crate::simd::Avx2, "avx2,fma");
#[cfg(target_arch = "aarch64")]
entry_points!(neon, crate::simd::Neon, "neon");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_pixel_conversion_is_the_cores_for_every_byte() {
        for p in 0..=255u8 {
            assert_eq!(
                pixel_value(p).to_bits(),
                mlp_core::network::pixel_value(p).to_bits(),
                "pixel {p}"
            );
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for isa in Isa::ALL {
            assert_eq!(isa.name().parse::<Isa>(), Ok(isa));
        }
        assert_eq!(
            "avx-512".parse::<Isa>(),
            Err(UnknownIsa("avx-512".to_owned()))
        );
        assert!(Isa::Portable.is_supported());
        assert!(Isa::best().is_supported());
    }

    #[test]
    fn the_first_layer_splits_at_a_multiple_of_16_near_the_middle() {
        let fast = Backend::Portable;
        assert_eq!(fast.first_layer_split(784), Some(384));
        assert_eq!(fast.first_layer_split(32), Some(16));
        assert_eq!(fast.first_layer_split(31), None);
        assert_eq!(Backend::Core.first_layer_split(784), None);
    }
}
