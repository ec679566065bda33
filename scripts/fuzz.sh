#!/usr/bin/env bash
# Time-boxed coverage-guided fuzzing of every parser of untrusted bytes (cargo-fuzz,
# libFuzzer). Each target starts from the committed seeds in fuzz/seeds/<target>/ and
# runs for FUZZ_SECONDS (default 20); any crash, panic or failed check fails the step.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
targets=(format_decode embedded_load_f32 embedded_load_int8 idx_reader predict_image)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is missing; cargo-fuzz needs it (rustup toolchain install nightly)" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cargo +nightly fuzz build -O
summary=()
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    cp seeds/"$target"/* "$corpus"/
    log=$(mktemp)
    if ! timeout $((seconds + 120)) cargo +nightly fuzz run -O "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $target FAILED (reproducer in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    summary+=("$(printf '  %-18s %10s executions in %ss, 0 crashes' "$target" "$runs" "$seconds")")
    rm -rf "$corpus" "$log"
done
echo "fuzz summary:"
printf '%s\n' "${summary[@]}"
