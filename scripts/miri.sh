#!/usr/bin/env bash
# mlp-kernels under Miri (nightly toolchain), time-boxed: its unit and integration tests
# run in the interpreter, which fails on undefined behaviour, data races and leaks. That
# covers the portable kernels, the core's arithmetic and the thread team (its lifetime
# erasure and raw-pointer hand-off are the crate's only `unsafe` outside the SIMD
# intrinsics). Miri reports only the CPU features the build enables, so the AVX2,
# AVX-512 and NEON paths are not run here; their tests are the native ones and
# scripts/aarch64.sh.
#
#   scripts/miri.sh              all of mlp-kernels' tests (the sweeps are cut to a few
#                                shapes under cfg(miri)); about 3 minutes on a fast core
#   scripts/miri.sh --test step  any further `cargo miri test` arguments
#
# MIRI_TIMEOUT (seconds, default 900) bounds each run; MIRIFLAGS passes flags to Miri
# (none are needed: the tests run in Miri's default isolation, whose virtual clock
# serves the team's sleeps and timeouts). MIRI_TEAM_SEEDS=N (default 0: off) then runs
# the thread team's unit tests again under N thread schedules (-Zmiri-many-seeds; 16
# take about a minute on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

MIRI_TIMEOUT=${MIRI_TIMEOUT:-900}

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: the nightly toolchain with the miri component is missing; scripts/setup.sh installs it" >&2
    exit 1
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Miri's own build of the standard library: once per toolchain, quick afterwards.
t0=$(now)
cargo +nightly miri setup
setup=$(since "$t0")

t0=$(now)
status=0
timeout --kill-after=10 "$MIRI_TIMEOUT" cargo +nightly miri test --locked -p mlp-kernels "$@" || status=$?
echo "miri: setup ${setup} s, build and tests $(since "$t0") s"
if [ "$status" -eq 124 ]; then
    echo "FAIL: Miri took more than ${MIRI_TIMEOUT} s (MIRI_TIMEOUT)" >&2
elif [ "$status" -ne 0 ]; then
    echo "FAIL: mlp-kernels under Miri (exit status $status)" >&2
fi
[ "$status" -eq 0 ] || exit "$status"

seeds=${MIRI_TEAM_SEEDS:-0}
if [ "$seeds" -gt 0 ]; then
    t0=$(now)
    MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-many-seeds=0..$seeds" timeout --kill-after=10 "$MIRI_TIMEOUT" \
        cargo +nightly miri test --locked -p mlp-kernels --lib team:: || status=$?
    echo "miri: the team's tests under $seeds schedules $(since "$t0") s"
    if [ "$status" -ne 0 ]; then
        echo "FAIL: the team's tests under Miri's schedules (exit status $status; 124: timeout)" >&2
    fi
fi
exit "$status"
