#!/usr/bin/env bash
# Firmware checks and figures in QEMU (mlp-embedded/firmware).
#
#   scripts/firmware.sh check   boot, the kernels on odd shapes against mlp-core's
#                               (kernel_shapes), predict, panic and HardFault on both boards, the
#                               int8 predict on the Cortex-M4F and on a Cortex-M0
#                               (micro:bit), plus the panic-never link check (f32 and
#                               int8 paths); every QEMU run in `timeout`
#   scripts/firmware.sh boards  fmt, clippy and release builds of the board crates
#                               (boards/<board>), and their flash and static RAM
#   scripts/firmware.sh bench   flash, RAM, peak stack and instructions per inference
#                               (per MAC) on the Cortex-M4F and on v6-M, for the f32
#                               and the int8 model; fails if RAM reaches 8 KB or code
#                               16 KB on either, if the M4F needs more than 2.0
#                               instructions per MAC (f32, dense input), or if the int8
#                               model needs more than 1.0 per MAC on the M4F (the 100
#                               test images)
#
# Both use the models and images that the `device_parity` and `device_parity_int8`
# tests write to mlp-embedded/firmware/target/assets/ (run first if they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fw=$root/mlp-embedded/firmware
assets=$fw/target/assets
QEMU_TIMEOUT=${QEMU_TIMEOUT:-120}
sysroot_bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin

# target  cpu  machine
boards=(
    "thumbv7em-none-eabihf cortex-m4 mps2-an386"
    "thumbv6m-none-eabi cortex-m3 mps2-an385"
)

# The micro:bit build of the int8 firmware (its own memory map, so its own folder).
microbit_dir=$fw/target/microbit-int8

prepare() {
    if [ ! -s "$assets/model.mlp" ] || [ ! -s "$assets/host-stats.txt" ]; then
        echo "firmware: no assets yet; the device_parity test trains the model and writes them"
        cargo test --locked -p mlp-workspace-tests --test device_parity
    fi
    if [ ! -s "$assets/int8/model.mlp" ] || [ ! -s "$assets/int8/host-stats.txt" ]; then
        echo "firmware: no int8 assets yet; the device_parity_int8 test quantizes a model and writes them"
        cargo test --locked -p mlp-workspace-tests --test device_parity_int8
    fi
    for board in "${boards[@]}"; do
        read -r target _ _ <<<"$board"
        (cd "$fw" && CARGO_TARGET_DIR=$fw/target cargo build --quiet --release --locked --bins --target "$target")
    done
    (cd "$fw" && MLP_BOARD=microbit CARGO_TARGET_DIR=$microbit_dir cargo build --quiet --release --locked \
        --bin predict_int8 --target thumbv6m-none-eabi)
}

# qemu TARGET CPU MACHINE BIN [extra qemu args...]: runs a firmware binary, prints its
# output, returns QEMU's exit status (124 if it had to be killed). The binaries are
# taken from $fw/target, or from $FW_TARGET_DIR when set (the micro:bit build).
qemu() {
    local target=$1 cpu=$2 machine=$3 bin=$4
    shift 4
    timeout "$QEMU_TIMEOUT" qemu-system-arm -cpu "$cpu" -machine "$machine" -nographic \
        -semihosting-config enable=on,target=native "$@" \
        -kernel "${FW_TARGET_DIR:-$fw/target}/$target/release/$bin"
}

# expect STATUS PATTERN TARGET CPU MACHINE BIN: the run must exit with STATUS and print PATTERN.
expect() {
    local want=$1 pattern=$2 status=0 out
    shift 2
    out=$(qemu "$@") || status=$?
    if [ "$status" -ne "$want" ] || ! grep -q -- "$pattern" <<<"$out"; then
        printf '%s\n' "$out" | tail -5
        echo "FAIL: $4 on $3: exit status $status (want $want), output must contain '$pattern'" >&2
        return 1
    fi
    echo "ok: $4 on $3 ($1): exit status $status, '$pattern'"
}

check() {
    prepare
    for board in "${boards[@]}"; do
        read -r target cpu machine <<<"$board"
        expect 0 "boot: ok" "$target" "$cpu" "$machine" boot
        # The device's kernels on odd shapes against mlp-core's, bit for bit: the
        # assembly on the Cortex-M4F, the plain-Rust blocks on v6-M (under 3 s each).
        expect 0 "kernel shapes: ok" "$target" "$cpu" "$machine" kernel_shapes
        expect 0 "result: 100/100 match" "$target" "$cpu" "$machine" predict
        expect 1 "panic: panicked at" "$target" "$cpu" "$machine" fault_panic
        expect 1 "hardfault: pc=" "$target" "$cpu" "$machine" fault_hardfault
    done
    # A separately flashed model, loaded where memory.x puts the MODEL region.
    expect 0 "result: 100/100 match" thumbv7em-none-eabihf cortex-m4 mps2-an386 predict_region \
        -device "loader,file=$assets/model.mlp,addr=0x00300000"
    expect 1 "load error: invalid model file: not a model file" thumbv7em-none-eabihf cortex-m4 mps2-an386 predict_region
    # int8: the SMLAD kernel on the Cortex-M4F, the core's kernel on a real Cortex-M0.
    expect 0 "result: 100/100 match" thumbv7em-none-eabihf cortex-m4 mps2-an386 predict_int8
    FW_TARGET_DIR=$microbit_dir expect 0 "result: 100/100 match" thumbv6m-none-eabi cortex-m0 microbit predict_int8
    # panic-never: a build whose panic handler cannot link, so it only links if the
    # optimizer removed every panic path of loading and predicting (f32 and int8
    # models), on the Cortex-M4F and on v6-M.
    for board in "${boards[@]}"; do
        read -r target cpu machine <<<"$board"
        (cd "$fw" && CARGO_TARGET_DIR=$fw/target cargo build --quiet --release --locked \
            --features panic-never --bin panic_never --target "$target")
        expect 0 "" "$target" "$cpu" "$machine" panic_never
    done
    echo "ok: panic_never links: no panic path left in loading and predicting (f32 and int8, M4F and v6-M)"
}

section() { # ELF SECTION: size in bytes (0 if absent)
    "$sysroot_bin/llvm-size" -A "$1" | awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

host_stat() { awk -v k="$1" '$1 == k { print $2 }' "$assets/host-stats.txt"; }

# figures_present WHAT PEAK COUNTS: whether a run printed its stack peak and one
# instruction count per test image plus the dense input's (101 numbers); says which
# is missing otherwise.
figures_present() {
    local what=$1 peak=$2 counts=$3 n
    n=$(grep -c '^[0-9][0-9]*$' <<<"$counts" || true)
    if ! [[ "$peak" =~ ^[0-9]+$ ]]; then
        echo "  FIGURE MISSING ($what): no stack-peak line in the firmware's output" >&2
        return 1
    fi
    if [ "$n" -ne 101 ]; then
        echo "  FIGURE MISSING ($what): $n instruction counts, expected 101 (100 test images and the dense input)" >&2
        return 1
    fi
}

bench() {
    prepare
    # The instruction counts come from a QEMU plugin kept in the repository
    # (tools/qemu-insn-count); without it, or without any figure below, the bench fails:
    # a goal is never passed by a missing number.
    local plugin
    plugin=$("$root/tools/qemu-insn-count/build.sh") || {
        echo "bench: cannot build the instruction-count plugin (tools/qemu-insn-count)" >&2
        return 1
    }
    local model images expected nominal effective dense_effective zero_share

    model=$(wc -c <"$assets/model.mlp")
    images=$(wc -c <"$assets/images.bin")
    expected=$(wc -c <"$assets/expected.bin")
    nominal=$(host_stat nominal_macs)
    effective=$(host_stat mean_effective_macs)
    dense_effective=$(host_stat dense_effective_macs)
    zero_share=$(host_stat zero_pixel_share)
    local failed=0
    echo
    echo "== Figures: 784-100-200-10 f32 model, image given as 784 bytes =="
    echo "model file $model bytes, $((images / 784)) test images ($images bytes), expected classes $expected bytes"
    echo "test images: $(awk -v z="$zero_share" 'BEGIN { printf "%.1f", 100 * z }')% of pixels are zero;" \
        "mean effective MACs (non-zero inputs x outputs, all layers) $effective of $nominal nominal;" \
        "dense input (no zero pixel): $dense_effective effective"
    for board in "${boards[@]}"; do
        read -r target cpu machine <<<"$board"
        local elf=$fw/target/$target/release/predict
        local vectors text rodata data bss uninit out peak counts real dense
        vectors=$(section "$elf" .vector_table)
        text=$(section "$elf" .text)
        rodata=$(section "$elf" .rodata)
        data=$(section "$elf" .data)
        bss=$(section "$elf" .bss)
        uninit=$(section "$elf" .uninit)
        local flash=$((vectors + text + rodata + data))
        local code=$((flash - model - images - expected))
        out=$(qemu "$target" "$cpu" "$machine" predict -plugin "$plugin" 2>&1)
        peak=$(sed -n 's/^stack peak \([0-9]*\) bytes.*/\1/p' <<<"$out")
        counts=$(sed -n 's/^insn-count: //p' <<<"$out")
        figures_present "$target" "$peak" "$counts" || { failed=1; continue; }
        local ram=$((data + bss + uninit + peak))
        echo
        echo "-- $target on QEMU $machine ($cpu) --"
        printf '  flash %7d bytes: .vector_table %d + .text %d + .rodata %d + .data %d\n' \
            "$flash" "$vectors" "$text" "$rodata" "$data"
        printf '  code  %7d bytes: flash minus model, images and expected classes\n' "$code"
        printf '  RAM   %7d bytes: .data %d + .bss %d + .uninit %d + peak stack %d (activations 1600 of it)\n' \
            "$ram" "$data" "$bss" "$uninit" "$peak"
        real=$(head -n 100 <<<"$counts" | awk '{ s += $1 } END { printf "%.0f", s / NR }')
        dense=$(tail -n 1 <<<"$counts")
        awk -v r="$real" -v d="$dense" -v n="$nominal" -v e="$effective" -v de="$dense_effective" 'BEGIN {
            printf "  instructions per inference, 100 test images (mean): %d = %.2f per nominal MAC, %.2f per effective MAC\n", r, r / n, r / e
            printf "  instructions per inference, dense input:            %d = %.2f per nominal MAC, %.2f per effective MAC\n", d, d / n, d / de
        }'
        [ "$ram" -lt 8192 ] || { echo "  GOAL MISSED: RAM $ram >= 8192 bytes" >&2; failed=1; }
        [ "$code" -lt 16384 ] || { echo "  GOAL MISSED: code $code >= 16384 bytes" >&2; failed=1; }
        if [ "$target" = thumbv7em-none-eabihf ]; then
            if [ $((dense * 2)) -gt $((nominal * 4)) ]; then
                echo "  GOAL MISSED: dense input above 2.0 instructions per nominal MAC" >&2
                failed=1
            fi
        fi
    done
    bench_int8 "$plugin" || failed=1
    return $failed
}

int8_stat() { awk -v k="$1" '$1 == k { print $2 }' "$assets/int8/host-stats.txt"; }

# bench_int8 PLUGIN: the int8 figures on the Cortex-M4F (SMLAD kernel) and on the
# Cortex-M0 of the micro:bit (the core's kernel).
bench_int8() {
    local plugin=$1 failed=0 model images expected nominal effective dense_effective
    model=$(wc -c <"$assets/int8/model.mlp")
    images=$(wc -c <"$assets/int8/images.bin")
    expected=$(wc -c <"$assets/int8/expected.bin")
    nominal=$(int8_stat nominal_macs)
    effective=$(int8_stat mean_effective_macs)
    dense_effective=$(int8_stat dense_effective_macs)
    echo
    echo "== Figures: 784-100-200-10 int8 model, image given as 784 bytes =="
    echo "model file $model bytes, $((images / 784)) test images ($images bytes), expected classes $expected bytes"
    echo "mean effective MACs $effective of $nominal nominal; dense input: $dense_effective effective"
    # target cpu machine target-dir
    local int8_boards=(
        "thumbv7em-none-eabihf cortex-m4 mps2-an386 $fw/target"
        "thumbv6m-none-eabi cortex-m0 microbit $microbit_dir"
    )
    for board in "${int8_boards[@]}"; do
        read -r target cpu machine dir <<<"$board"
        local elf=$dir/$target/release/predict_int8
        local vectors text rodata data bss uninit out peak counts real dense
        vectors=$(section "$elf" .vector_table)
        text=$(section "$elf" .text)
        rodata=$(section "$elf" .rodata)
        data=$(section "$elf" .data)
        bss=$(section "$elf" .bss)
        uninit=$(section "$elf" .uninit)
        local flash=$((vectors + text + rodata + data))
        local code=$((flash - model - images - expected))
        out=$(FW_TARGET_DIR=$dir qemu "$target" "$cpu" "$machine" predict_int8 -plugin "$plugin" 2>&1)
        grep -q "result: 100/100 match" <<<"$out" || { echo "  int8 predict failed on $machine" >&2; failed=1; }
        peak=$(sed -n 's/^stack peak \([0-9]*\) bytes.*/\1/p' <<<"$out")
        counts=$(sed -n 's/^insn-count: //p' <<<"$out")
        figures_present "int8 $target" "$peak" "$counts" || { failed=1; continue; }
        local ram=$((data + bss + uninit + peak))
        echo
        echo "-- int8, $target on QEMU $machine ($cpu) --"
        printf '  flash %7d bytes: .vector_table %d + .text %d + .rodata %d + .data %d\n' \
            "$flash" "$vectors" "$text" "$rodata" "$data"
        printf '  code  %7d bytes: flash minus model, images and expected classes\n' "$code"
        printf '  RAM   %7d bytes: .data %d + .bss %d + .uninit %d + peak stack %d (activations and accumulators 1200 of it)\n' \
            "$ram" "$data" "$bss" "$uninit" "$peak"
        real=$(head -n 100 <<<"$counts" | awk '{ s += $1 } END { printf "%.0f", s / NR }')
        dense=$(tail -n 1 <<<"$counts")
        awk -v r="$real" -v d="$dense" -v n="$nominal" -v e="$effective" -v de="$dense_effective" 'BEGIN {
            printf "  instructions per inference, 100 test images (mean): %d = %.2f per nominal MAC, %.2f per effective MAC\n", r, r / n, r / e
            printf "  instructions per inference, dense input:            %d = %.2f per nominal MAC, %.2f per effective MAC\n", d, d / n, d / de
        }'
        if [ "$target" = thumbv7em-none-eabihf ] && [ "$real" -gt "$nominal" ]; then
            echo "  GOAL MISSED: int8 above 1.0 instructions per nominal MAC on the test images" >&2
            failed=1
        fi
        [ "$ram" -lt 8192 ] || { echo "  GOAL MISSED: RAM $ram >= 8192 bytes" >&2; failed=1; }
        [ "$code" -lt 16384 ] || { echo "  GOAL MISSED: code $code >= 16384 bytes" >&2; failed=1; }
    done
    return $failed
}

# The board crates (boards/<board>): release builds and their sizes. Their protocol
# runs against QEMU in the workspace test tests/tests/boards_in_qemu.rs.
boards() {
    local dir elf text rodata data bss vectors
    # The library every board shares: formatted and linted on a Cortex-M target.
    (cd "$root/boards/common" && unset CARGO_TARGET_DIR && cargo fmt --check \
        && cargo clippy --quiet --release --locked --target thumbv7em-none-eabihf -- -D warnings)
    for dir in "$root"/boards/*/; do
        # boards/target is the shared build folder, boards/common a library.
        [ -f "$dir/src/main.rs" ] || continue
        local name
        name=$(basename "$dir")
        # Every board crate builds into boards/target (their .cargo/config.toml).
        (cd "$dir" && unset CARGO_TARGET_DIR && cargo fmt --check \
            && cargo clippy --quiet --release --locked -- -D warnings \
            && cargo build --quiet --release --locked)
        elf=$(find "$root/boards/target" -maxdepth 3 -path '*/release/*' -type f -name "mlp-board-$name" | head -n 1)
        [ -n "$elf" ] || { echo "boards: $name built no ELF" >&2; return 1; }
        vectors=$(section "$elf" .vector_table)
        text=$(section "$elf" .text)
        rodata=$(section "$elf" .rodata)
        data=$(section "$elf" .data)
        bss=$(section "$elf" .bss)
        printf '%s: flash %d bytes (.vector_table %d + .text %d + .rodata %d + .data %d); static RAM %d bytes (.data + .bss); the model is flashed on its own\n' \
            "$name" $((vectors + text + rodata + data)) "$vectors" "$text" "$rodata" "$data" $((data + bss))
    done
}

case "${1:-}" in
    check) check ;;
    bench) bench ;;
    boards) boards ;;
    *)
        echo "usage: $0 check|bench|boards" >&2
        exit 2
        ;;
esac
