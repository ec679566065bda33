#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`.ci/run` calls this script).
#
# On a fresh machine it first installs what the tests need; every install step is
# idempotent and takes well under a second when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long the suite has run so far, so the slow sections show in CI's log.
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# Variables that would shorten sweeps or rewrite golden digests have no place in the
# test command: refuse them rather than pass a weaker suite.
for var in MLP_KERNEL_SWEEP MLP_GOLDEN_BLESS; do
    if [ -n "${!var+set}" ]; then
        echo "test.sh: $var is set ($var=${!var}); it weakens or rewrites tests; unset it" >&2
        exit 1
    fi
done

# CI builds from a clean clone, where incremental compilation's caches are only
# written, never read: off for every build below (a warm local rerun recompiles an
# edited crate whole instead).
export CARGO_INCREMENTAL=0

# --- setup -------------------------------------------------------------------
step "setup: Rust targets and components"
scripts/setup.sh

# --- cheapest checks first ---------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host workspace, all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The QEMU plugin that counts the firmware's instructions is a crate of its own (a
# cdylib outside the workspace): its format and lints too.
step "fmt and clippy for tools/qemu-insn-count"
(cd tools/qemu-insn-count && unset CARGO_TARGET_DIR && cargo fmt --check \
    && CARGO_TARGET_DIR=../../target/qemu-insn-count cargo clippy --locked --all-targets -- -D warnings)

step "documentation of every crate (warnings are errors; the doc tests run with the tests)"
RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps --workspace

step "no_std cross builds of mlp-core and mlp-embedded"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf; do
    cargo build --locked --release -p mlp-core -p mlp-embedded --target "$target"
done

# Which instruction sets the native tests cover here: the others are covered by the
# golden digests (written on an AVX-512 machine) and, for NEON, by QEMU below.
isas="portable"
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && isas+=" avx2"
grep -qw avx512f /proc/cpuinfo && isas+=" avx512"
echo "host kernels tested natively on this CPU: core, $isas"

# --- the tests ------------------------------------------------------------------
# Every test binary is built first, with both cores. Then a second lane starts in the
# background: Miri, then the AArch64 cross builds. The tests run beside it: the tests
# that drive QEMU (tests/: firmware against the host, bit for bit, and the board crates'
# protocol), Miri and the firmware section below are mostly one core each (an emulator,
# an interpreter, fat-LTO firmware links), so together they keep both cores busy where
# either alone would leave one idle, and the cross builds fill the time the firmware
# section would otherwise leave. One package selection (`--workspace`) for the build and
# the run: `-p` or `--exclude` would resolve dev-dependency features differently and
# build everything a second time.
step "build every test binary (cargo test --workspace --no-run)"
cargo test --workspace --locked --no-run

# --- the second lane: Miri (scripts/miri.sh: the portable kernels and the thread team),
# then the AArch64 cross builds (scripts/aarch64.sh build) -----------------------------
step "in the background, beside the tests: mlp-kernels under Miri, then the AArch64 cross builds"
lane=$(mktemp -d)
(
    status=0
    scripts/miri.sh >"$lane/miri.log" 2>&1 || status=$?
    echo "$status" >"$lane/miri.status"
    status=0
    scripts/aarch64.sh build >"$lane/aarch64.log" 2>&1 || status=$?
    echo "$status" >"$lane/aarch64.status"
) &
lane_pid=$!
trap 'kill "$lane_pid" 2>/dev/null || true; rm -rf "$lane"' EXIT

step "cargo test --workspace (the firmware in QEMU included)"
cargo test --workspace --locked

# --- firmware in QEMU -----------------------------------------------------------------
# Boot, predict, panic and HardFault exit statuses on both boards, a separately
# flashed model, the panic-never link check, then the flash/RAM/instructions-per-MAC
# figures, which fail if the Cortex-M4F misses its goals. Every QEMU run is inside
# `timeout`.
step "firmware checks in QEMU (Cortex-M4F mps2-an386, v6-M on mps2-an385)"
scripts/firmware.sh check

step "firmware figures: flash, RAM, peak stack, instructions per MAC"
scripts/firmware.sh bench

# The board crates' protocol ran in QEMU above (tests/tests/boards_in_qemu.rs); here
# their release builds and sizes, then their figures in QEMU (peak stack, instructions
# per request, round trip) over 10 and 20 requests instead of 100 and 200, with the
# debug host binary that `cargo test` built above: fails if a figure is missing.
step "board firmware (boards/): release builds, flash, RAM, figures in QEMU"
BOARD_N=10 MLP_TRAIN=target/debug/mlp-train scripts/firmware.sh boards-bench
# --- end of the firmware section ------------------------------------------------

# The fuzz targets' build (with sanitizers: nothing to share with the builds above)
# while the second lane finishes; they run at the end.
step "build the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain)"
scripts/fuzz.sh build

# lane_result NAME WHAT: prints the second lane's log NAME and fails the suite unless
# that part exited with status 0.
lane_result() {
    local status
    status=$(cat "$lane/$1.status" 2>/dev/null || echo "missing")
    cat "$lane/$1.log" 2>/dev/null || true
    if [ "$status" != 0 ]; then
        echo "FAIL: $2 (exit status $status)" >&2
        exit 1
    fi
}

step "the second lane: waiting for it to end"
wait "$lane_pid" || true

step "mlp-kernels under Miri: its result"
lane_result miri "mlp-kernels under Miri"

step "the AArch64 cross builds: their result"
lane_result aarch64 "the AArch64 cross builds"

# --- AArch64 under QEMU user mode (scripts/aarch64.sh) ---------------------------
# mlp-kernels' tests (cross-built in the second lane) run by qemu-aarch64: the NEON
# path against the scalar reference, bit for bit; then the golden training runs of
# mlp-train/tests/golden/models.txt with NEON and portable code, whose model files
# must have the SHA-256s that x86 wrote.
step "clippy for AArch64 (the NEON module)"
cargo clippy --locked -p mlp-kernels --all-targets --target aarch64-unknown-linux-gnu -- -D warnings

step "mlp-kernels tests on AArch64 under QEMU (NEON against the reference)"
scripts/aarch64.sh test

step "golden training runs on AArch64 under QEMU (committed SHA-256s)"
scripts/aarch64.sh golden
# --- end of the AArch64 section ---------------------------------------------------

# --- fuzzing (fuzz/, cargo-fuzz on the nightly toolchain) -------------------------
# Every parser of untrusted bytes, time-boxed: the core's format decoder, the device's
# model loader, the IDX reader and predict's image path. A crash fails the suite.
step "fuzz every parser of untrusted bytes (${FUZZ_SECONDS:-20} s each)"
scripts/fuzz.sh

step "all checks passed"
