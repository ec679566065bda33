#!/usr/bin/env bash
# Time-boxed coverage-guided fuzzing of every parser of untrusted bytes (cargo-fuzz,
# libFuzzer). Each target starts from the committed seeds in fuzz/seeds/<target>/ and
# runs for FUZZ_SECONDS (default 20), as many targets at once as there are cores; any
# crash, panic or failed check fails the step. `scripts/fuzz.sh build` only builds the
# targets (test.sh builds them while other work runs; the runs then find them built).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
targets=(format_decode embedded_load_f32 embedded_load_int8 idx_reader table_reader predict_image protocol)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is missing; cargo-fuzz needs it (rustup toolchain install nightly)" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cargo +nightly fuzz build -O
[ "${1:-}" != build ] || exit 0

# fuzz_one TARGET LOG: one time-boxed run from the committed seeds; the exit status
# says whether it found nothing.
fuzz_one() {
    local target=$1 log=$2 corpus
    corpus=$(mktemp -d)
    cp seeds/"$target"/* "$corpus"/
    local status=0
    timeout $((seconds + 120)) cargo +nightly fuzz run -O "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
    rm -rf "$corpus"
    return "$status"
}

# Each run is single-threaded: as many at once as there are cores.
jobs=$(nproc 2>/dev/null || echo 1)
logs=$(mktemp -d)
declare -A pids=()
failed=()
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        sleep 0.2
    done
    fuzz_one "$target" "$logs/$target" &
    pids[$target]=$!
done
for target in "${targets[@]}"; do
    wait "${pids[$target]}" || failed+=("$target")
done
summary=()
for target in "${targets[@]}"; do
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target" | grep -o '[0-9]*$' || echo "?")
    summary+=("$(printf '  %-18s %10s executions in %ss' "$target" "$runs" "$seconds")")
done
for target in "${failed[@]}"; do
    tail -40 "$logs/$target" >&2
    echo "fuzz: $target FAILED (reproducer in fuzz/artifacts/$target/)" >&2
done
rm -rf "$logs"
echo "fuzz summary ($jobs at a time):"
printf '%s\n' "${summary[@]}"
[ "${#failed[@]}" -eq 0 ] || exit 1
echo "no crash"
