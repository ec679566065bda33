#!/usr/bin/env bash
# The host kernels on AArch64 Linux, under QEMU user mode (qemu-aarch64): the NEON path
# checked against the scalar reference bit for bit, and trained models checked against
# the bytes x86 writes.
#
#   scripts/aarch64.sh [test]         cross-builds `cargo test -p mlp-kernels`
#                                     and runs it under QEMU: NEON, portable and the
#                                     core's arithmetic against the reference
#   scripts/aarch64.sh train ARGS...  `mlp-train train ARGS` natively and under QEMU
#                                     (`--kernels neon` unless ARGS choose); the two
#                                     model files must have the same SHA-256
#   scripts/aarch64.sh golden         every run of mlp-train/tests/golden/models.txt
#                                     under QEMU (GOLDEN_KERNELS, default neon and
#                                     portable; GOLDEN_THREADS, default 1 and 2), each
#                                     model's SHA-256 against the committed one
#   scripts/aarch64.sh all            test, then golden
#   scripts/aarch64.sh build          only the cross builds of test and golden (test.sh
#                                     runs them beside other work; test and golden
#                                     then find them built)
#
# `test` is the quick one (about 2 minutes on 2 cores from a clean clone). `train` and
# `golden` first cross-build mlp-train with all its dependencies, which takes several
# minutes the first time. Build and run times are printed separately. Every QEMU run
# is inside `timeout` (QEMU_TIMEOUT seconds, default 600). The cross builds go to
# target/aarch64 (AARCH64_TARGET_DIR to change it), so they never invalidate the host's.
#
# NEON is a baseline feature of aarch64-unknown-linux-gnu, so the kernels' run-time
# detection always finds it there: the tests cannot fall back to portable code silently.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=aarch64-unknown-linux-gnu
target_dir=${AARCH64_TARGET_DIR:-$root/target/aarch64}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-600}
# Where qemu-aarch64 finds the AArch64 dynamic loader and C library (Debian's
# libc6-arm64-cross, which libc6-dev-arm64-cross pulls in).
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
# `cargo test --target aarch64-...` runs each test binary with this.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-qemu-aarch64}

step() { printf '\n==> %s\n' "$*"; }
now() { date +%s.%N; }
# since START: seconds from START (a `now`) until now, to a tenth.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

for tool in qemu-aarch64 "$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"; do
    if ! command -v "$tool" >/dev/null; then
        echo "aarch64: $tool is missing; scripts/setup.sh installs it (as root)" >&2
        exit 1
    fi
done
if ! grep -qx "$target" <<<"$(rustup target list --installed)"; then
    echo "aarch64: the Rust target $target is missing; scripts/setup.sh adds it" >&2
    exit 1
fi

# cargo_aarch64 ARGS...: cargo for the AArch64 target, in its own target directory.
cargo_aarch64() {
    CARGO_TARGET_DIR=$target_dir cargo "$@" --target "$target"
}

# qemu ARGS...: runs an AArch64 binary under QEMU inside `timeout` (exit status 124 if
# it had to be killed), with no input.
qemu() {
    timeout --kill-after=10 "$QEMU_TIMEOUT" qemu-aarch64 "$@" </dev/null
}

# --- the kernels' tests under QEMU ------------------------------------------------------
build_kernel_tests() {
    step "cross-build the mlp-kernels tests for $target (test profile: optimized, with debug assertions and overflow checks)"
    cargo_aarch64 test --locked -p mlp-kernels --no-run
}

test_kernels() {
    local t0 build run status=0
    t0=$(now)
    build_kernel_tests
    build=$(since "$t0")

    step "run them under qemu-aarch64 (timeout ${QEMU_TIMEOUT} s)"
    t0=$(now)
    timeout --kill-after=10 "$QEMU_TIMEOUT" env CARGO_TARGET_DIR="$target_dir" \
        cargo test --locked -p mlp-kernels --target "$target" || status=$?
    run=$(since "$t0")
    echo "aarch64 test: build ${build} s, run under QEMU ${run} s"
    if [ "$status" -eq 124 ]; then
        echo "FAIL: the mlp-kernels tests under QEMU took more than ${QEMU_TIMEOUT} s" >&2
    elif [ "$status" -ne 0 ]; then
        echo "FAIL: the mlp-kernels tests under QEMU (exit status $status)" >&2
    fi
    return "$status"
}

# --- training under QEMU against x86 (train_and_compare, golden) -------------------------
native_bin=
aarch64_bin=

# build_train [native]: builds the mlp-train binary for AArch64 (once per run), and
# with `native` also for this machine (the golden runs compare with committed digests
# and need no native build).
build_train() {
    local t0
    if [ -z "$aarch64_bin" ]; then
        step "build mlp-train for $target (profile golden: the workspace as in release)"
        t0=$(now)
        # Without the `download` feature: its HTTPS stack (C and assembly built for
        # the target) is a large part of a cross build and no golden run uses it.
        cargo_aarch64 build --locked --profile golden -p mlp-train --bin mlp-train --no-default-features
        echo "mlp-train build for $target: $(since "$t0") s"
        aarch64_bin=$target_dir/$target/golden/mlp-train
    fi
    if [ "${1:-}" = native ] && [ -z "$native_bin" ]; then
        step "build mlp-train natively (release)"
        t0=$(now)
        cargo build --locked --release -p mlp-train --bin mlp-train
        echo "mlp-train native build: $(since "$t0") s"
        native_bin=${CARGO_TARGET_DIR:-$root/target}/release/mlp-train
    fi
}

# chooses_kernels ARGS...: whether ARGS contain --kernels.
chooses_kernels() {
    local a
    for a in "$@"; do
        case $a in --kernels | --kernels=*) return 0 ;; esac
    done
    return 1
}

# model_digest DIR: the SHA-256 of DIR/model.mlp.
model_digest() { sha256sum "$1/model.mlp" | cut -d' ' -f1; }

# train_and_compare ARGS...: `mlp-train train ARGS` natively (with the kernels `auto`
# picks, unless ARGS choose) and under QEMU (NEON, unless ARGS choose); fails unless the
# two model files are byte for byte the same.
train_and_compare() {
    build_train native
    local out kernels=() t0 native aarch64 want got status=0
    chooses_kernels "$@" || kernels=(--kernels neon)
    out=$(mktemp -d)
    step "train natively: mlp-train train $*"
    t0=$(now)
    "$native_bin" train "$@" --quiet --out "$out/x86_64"
    native=$(since "$t0")
    step "train under qemu-aarch64: mlp-train train $* ${kernels[*]}"
    t0=$(now)
    qemu "$aarch64_bin" train "$@" "${kernels[@]}" --quiet --out "$out/aarch64" || status=$?
    aarch64=$(since "$t0")
    if [ "$status" -ne 0 ]; then
        rm -rf "$out"
        echo "FAIL: training under QEMU exited with status $status (124: timeout)" >&2
        return 1
    fi
    want=$(model_digest "$out/x86_64")
    got=$(model_digest "$out/aarch64")
    rm -rf "$out"
    echo "  x86-64  $want (${native} s)"
    echo "  aarch64 $got (${aarch64} s under QEMU)"
    if [ "$got" != "$want" ]; then
        echo "FAIL: the model trained under QEMU differs from the native one" >&2
        return 1
    fi
    echo "ok: same model file on both"
}

# golden_run WANT KERNELS THREADS ARGS...: one golden run under QEMU (KERNELS `listed`:
# those ARGS choose); prints its verdict and fails unless the model file's SHA-256 is WANT.
golden_run() {
    local want=$1 k=$2 threads=$3 out got status=0
    shift 3
    local extra=(--threads "$threads")
    [ "$k" = listed ] || extra+=(--kernels "$k")
    out=$(mktemp -d)
    qemu "$aarch64_bin" train "$@" "${extra[@]}" --quiet --out "$out" >/dev/null || status=$?
    if [ "$status" -ne 0 ]; then
        rm -rf "$out"
        echo "FAIL ($k, threads $threads): exit status $status (124: timeout): $*"
        return 1
    fi
    got=$(model_digest "$out")
    rm -rf "$out"
    if [ "$got" != "$want" ]; then
        echo "FAIL ($k, threads $threads) $*: $got, committed $want"
        return 1
    fi
    echo "ok   ($k, threads $threads) $*"
}

# golden: every run of the golden list under QEMU, against the committed digests, as
# many at once as there are cores (most runs are one thread; QEMU emulates each guest
# thread on a host thread of its own).
golden() {
    build_train
    local file=mlp-train/tests/golden/models.txt lines line want args kernels k threads
    local t0 failed=0 runs=0 jobs logs run
    local -a pids=()
    mapfile -t lines < <(grep -v -e '^#' -e '^[[:space:]]*$' "$file")
    step "the ${#lines[@]} golden runs of $file under qemu-aarch64"
    jobs=$(nproc 2>/dev/null || echo 1)
    logs=$(mktemp -d)
    t0=$(now)
    for line in "${lines[@]}"; do
        read -r want line <<<"$line"
        read -ra args <<<"$line"
        if chooses_kernels "${args[@]}"; then
            kernels=(listed)
        else
            read -ra kernels <<<"${GOLDEN_KERNELS:-neon portable}"
        fi
        for k in "${kernels[@]}"; do
            for threads in ${GOLDEN_THREADS:-1 2}; do
                while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
                    sleep 0.2
                done
                golden_run "$want" "$k" "$threads" "${args[@]}" >"$logs/$runs" 2>&1 &
                pids+=($!)
                runs=$((runs + 1))
            done
        done
    done
    for run in "${!pids[@]}"; do
        wait "${pids[$run]}" || failed=$((failed + 1))
        cat "$logs/$run"
    done
    rm -rf "$logs"
    echo "aarch64 golden: $runs runs under QEMU ($jobs at a time) in $(since "$t0") s, $failed failed"
    [ "$failed" -eq 0 ]
}

case ${1:-test} in
    test) test_kernels ;;
    train)
        shift
        train_and_compare "$@"
        ;;
    golden) golden ;;
    all)
        test_kernels
        golden
        ;;
    build)
        build_kernel_tests
        build_train
        ;;
    *)
        echo "usage: scripts/aarch64.sh [test | train ARGS... | golden | all | build]" >&2
        exit 2
        ;;
esac
