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
#   scripts/firmware.sh boards-bench
#                               `boards`, then the board firmware in QEMU (stm32f4 in
#                               netduinoplus2 with the f32 and the int8 model, microbit
#                               with the int8 one): peak stack, instructions per request
#                               and the round trip of `board evaluate` per image, in a
#                               table; BOARD_N requests per run (100), the host binary
#                               MLP_TRAIN (default: a release build of mlp-train)
#   scripts/firmware.sh bench   flash, RAM, peak stack and instructions per inference
#                               (per MAC) on the Cortex-M4F and on v6-M, for the f32
#                               and the int8 model; fails if RAM reaches 8 KB or code
#                               16 KB on either, if the M4F needs more than 2.0
#                               instructions per MAC (f32, dense input), or if the int8
#                               model needs more than 1.0 per MAC on the M4F (the 100
#                               test images). Then the tabular models (32-64-32-4, f32
#                               and int8, the predict_features binary) on the M4F:
#                               instructions per inference and per MAC on dense feature
#                               vectors (no zero feature), reported with no goal, but
#                               the bench fails if they are missing
#
# All but `boards` use the models, images and feature vectors that the `device_parity` and
# `device_parity_int8` tests write to mlp-embedded/firmware/target/assets/ (run first if they
# are missing).
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

# Where the micro:bit build of the int8 firmware is kept (its own memory map): built in
# $fw/target like the others, whose v6-M dependencies it shares, then copied here.
microbit_dir=$fw/target/microbit-int8

assets() {
    if [ ! -s "$assets/model.mlp" ] || [ ! -s "$assets/host-stats.txt" ]; then
        echo "firmware: no assets yet; the device_parity test trains the model and writes them"
        cargo test --locked -p mlp-workspace-tests --test device_parity
    fi
    if [ ! -s "$assets/int8/model.mlp" ] || [ ! -s "$assets/int8/host-stats.txt" ]; then
        echo "firmware: no int8 assets yet; the device_parity_int8 test quantizes a model and writes them"
        cargo test --locked -p mlp-workspace-tests --test device_parity_int8
    fi
    if [ ! -s "$assets/tabular/model.mlp" ] || [ ! -s "$assets/tabular/features.bin" ]; then
        echo "firmware: no tabular assets yet; the device_parity test's tabular model writes them"
        cargo test --locked -p mlp-workspace-tests --test device_parity tabular
    fi
}

prepare() {
    assets
    # The micro:bit build first, so that the default builds after it leave $fw/target
    # with the mps2 memory map.
    (cd "$fw" && MLP_BOARD=microbit CARGO_TARGET_DIR=$fw/target cargo build --quiet --release --locked \
        --bin predict_int8 --target thumbv6m-none-eabi)
    mkdir -p "$microbit_dir/thumbv6m-none-eabi/release"
    cp "$fw/target/thumbv6m-none-eabi/release/predict_int8" "$microbit_dir/thumbv6m-none-eabi/release/"
    for board in "${boards[@]}"; do
        read -r target _ _ <<<"$board"
        (cd "$fw" && CARGO_TARGET_DIR=$fw/target cargo build --quiet --release --locked --bins --target "$target")
    done
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
    bench_tabular "$plugin" || failed=1
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

# bench_tabular PLUGIN: instructions per inference and per MAC of the tabular f32 and
# int8 models (predict_features) on the Cortex-M4F. Sensor features are rarely zero, so
# these are the kernels' figures without the zero-skipping that makes images cheap.
# Reported, not judged: there is no goal, but a missing figure fails the bench.
bench_tabular() {
    local plugin=$1 out status=0 header shape macs vectors figures
    out=$(qemu thumbv7em-none-eabihf cortex-m4 mps2-an386 predict_features -plugin "$plugin" 2>&1) || status=$?
    header=$(sed -n 's/^tabular model \([0-9 ]*\): \([0-9]*\) MACs.*/\1:\2/p' <<<"$out")
    shape=$(tr ' ' '-' <<<"${header%%:*}")
    macs=${header##*:}
    vectors=$(sed -n 's/^result: \([0-9]*\) feature vectors$/\1/p' <<<"$out")
    if [ "$status" -ne 0 ] || ! [[ "$macs" =~ ^[1-9][0-9]*$ ]] || ! [[ "$vectors" =~ ^[1-9][0-9]*$ ]]; then
        grep -v '^insn-' <<<"$out" | tail -3 >&2
        echo "  FIGURE MISSING (tabular): predict_features exited with status $status, printed" \
            "${macs:-no} MACs and ${vectors:-no} feature vectors (stale assets? run the device_parity test)" >&2
        return 1
    fi
    # Each count comes right before the line of the prediction it measured, whose prefix
    # names the model: "features N" (f32) or "int8 features N". QEMU writes the plugin's
    # counts and the firmware's lines as they happen; were they ever out of step, the
    # numbers of counts per model would not match and the figure would be missing.
    figures=$(awk '
        /^insn-count: / { n = $2; next }
        n != "" && /^int8 features / { i += n; ni++; n = ""; next }
        n != "" && /^features / { f += n; nf++; n = ""; next }
        END { printf "%d %d %d %d\n", nf, f, ni, i }' <<<"$out")
    local f32_count f32_sum int8_count int8_sum
    read -r f32_count f32_sum int8_count int8_sum <<<"$figures"
    if [ "$f32_count" -ne "$vectors" ] || [ "$int8_count" -ne "$vectors" ]; then
        echo "  FIGURE MISSING (tabular): $f32_count f32 and $int8_count int8 instruction counts," \
            "expected $vectors each" >&2
        return 1
    fi
    echo
    echo "== Figures: $shape tabular models, f32 and int8, $vectors dense feature vectors (f32 each) =="
    echo "model files: f32 $(wc -c <"$assets/tabular/model.mlp") bytes, int8" \
        "$(wc -c <"$assets/tabular/int8-model.mlp") bytes; $macs MACs per inference"
    echo "dense input: no feature is zero after standardization, no quantized input byte is 0," \
        "so the first layer skips nothing (the hidden layers keep ReLU's zeros)"
    echo
    echo "-- tabular, thumbv7em-none-eabihf on QEMU mps2-an386 (cortex-m4) --"
    awk -v f="$f32_sum" -v i="$int8_sum" -v v="$vectors" -v m="$macs" 'BEGIN {
        printf "  f32  instructions per inference, dense features (mean): %.0f = %.2f per MAC\n", f / v, f / v / m
        printf "  int8 instructions per inference, dense features (mean): %.0f = %.2f per MAC\n", i / v, i / v / m
    }'
}

# The board crates (boards/<board>): release builds and their sizes. Their protocol
# runs against QEMU in the workspace test tests/tests/boards_in_qemu.rs.
boards() {
    local dir elf text rodata data bss uninit vectors
    # The library every board shares: formatted and linted on a Cortex-M target.
    (cd "$root/boards/common" && unset CARGO_TARGET_DIR && cargo fmt --check \
        && cargo clippy --quiet --release --locked --target thumbv7em-none-eabihf -- -D warnings)
    for dir in "$root"/boards/*/; do
        # boards/target is the shared build folder, boards/common a library.
        [ -f "$dir/src/main.rs" ] || continue
        local name
        name=$(basename "$dir")
        # Every board crate builds into boards/target (their .cargo/config.toml), for
        # the default model shape (no MLP_LAYERS): the figures are the default build's.
        (cd "$dir" && unset CARGO_TARGET_DIR MLP_LAYERS && cargo fmt --check \
            && cargo clippy --quiet --release --locked -- -D warnings \
            && cargo build --quiet --release --locked)
        elf=$(find "$root/boards/target" -maxdepth 3 -path '*/release/*' -type f -name "mlp-board-$name" | head -n 1)
        [ -n "$elf" ] || { echo "boards: $name built no ELF" >&2; return 1; }
        vectors=$(section "$elf" .vector_table)
        text=$(section "$elf" .text)
        rodata=$(section "$elf" .rodata)
        data=$(section "$elf" .data)
        bss=$(section "$elf" .bss)
        uninit=$(section "$elf" .uninit)
        printf '%s: flash %d bytes (.vector_table %d + .text %d + .rodata %d + .data %d); static RAM %d bytes (.data %d + .bss %d + .uninit %d); the model is flashed on its own\n' \
            "$name" $((vectors + text + rodata + data)) "$vectors" "$text" "$rodata" "$data" \
            $((data + bss + uninit)) "$data" "$bss" "$uninit"
    done
}

# symbol ELF NAME: the address of a symbol, in hex without 0x.
symbol() { "$sysroot_bin/llvm-nm" "$1" | awk -v s="$2" '$3 == s { print $1; exit }'; }

# region_origin BOARD REGION: where the board's memory.x puts a region (MODEL, RAM).
region_origin() {
    sed -n "s/^ *$2 *: *ORIGIN = \(0x[0-9A-Fa-f]*\).*/\1/p" "$root/boards/$1/memory.x"
}

# served_run DIR BOARD MACHINE ELF MODEL IMAGES [PLUGIN]: starts the board's firmware in
# QEMU with MODEL in its model region, drives it over its emulated UART with `mlp-train
# board evaluate --tcp` (IMAGES test images; with 0, only `board info`'s greeting),
# then, through QEMU's monitor, saves the stack region (_stack_end to _stack_start,
# painted at boot) to DIR/stack.bin and quits QEMU. QEMU's and the plugin's output go
# to DIR/qemu.txt, the host's to DIR/host.txt. QEMU and the host each run in `timeout`.
served_run() {
    local dir=$1 board=$2 machine=$3 elf=$4 model=$5 images=$6 plugin=${7:-}
    local stack_end stack_start port="" qemu_pid monitor status=0
    stack_end=$(symbol "$elf" _stack_end)
    stack_start=$(symbol "$elf" _stack_start)
    rm -rf "$dir"
    mkdir -p "$dir"
    mkfifo "$dir/monitor"
    # Port 0: the system picks a free port, and `info chardev` says which.
    local args=(-machine "$machine" -display none -monitor stdio
        -serial tcp:127.0.0.1:0,server=on,wait=off -kernel "$elf"
        -device "loader,file=$model,addr=$(region_origin "$board" MODEL)")
    [ -z "$plugin" ] || args+=(-plugin "$plugin,idle=wait_until")
    timeout "$QEMU_TIMEOUT" qemu-system-arm "${args[@]}" \
        <"$dir/monitor" >"$dir/monitor.txt" 2>"$dir/qemu.txt" &
    qemu_pid=$!
    exec {monitor}>"$dir/monitor"
    echo "info chardev" >&"$monitor"
    for _ in $(seq 100); do
        port=$(sed -n 's/^serial0: filename=.*tcp:127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$dir/monitor.txt")
        [ -z "$port" ] && kill -0 "$qemu_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        exec {monitor}>&-
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" || true
        echo "boards-bench: QEMU ($machine) opened no serial port: $(tail -3 "$dir/qemu.txt")" >&2
        return 1
    fi
    if [ "$images" -gt 0 ]; then
        timeout "$QEMU_TIMEOUT" "$mlp" board evaluate --tcp "127.0.0.1:$port" --model "$model" \
            --limit "$images" >"$dir/host.txt" 2>&1 || status=$?
    else
        timeout "$QEMU_TIMEOUT" "$mlp" board info --tcp "127.0.0.1:$port" >"$dir/host.txt" 2>&1 || status=$?
    fi
    printf 'memsave 0x%s %d "%s"\nquit\n' "$stack_end" $((0x$stack_start - 0x$stack_end)) \
        "$dir/stack.bin" >&"$monitor" || true
    exec {monitor}>&-
    wait "$qemu_pid" || status=$?
    if [ "$status" -ne 0 ] || { [ "$images" -gt 0 ] && ! grep -q "bit for bit: $images/$images" "$dir/host.txt"; }; then
        tail -5 "$dir/host.txt" "$dir/qemu.txt" >&2
        echo "boards-bench: $board on QEMU $machine, $images images: failed (status $status)" >&2
        return 1
    fi
}

# stack_peak DIR: bytes of stack used at the deepest point, from the bottom of the saved
# stack region up to the first word that is no longer the paint (cortex-m-rt's
# paint-stack, 0xcccccccc).
stack_peak() {
    local size
    size=$(wc -c <"$1/stack.bin")
    od -An -v -tx4 -w4 "$1/stack.bin" |
        awk -v size="$size" '!found && $1 != "cccccccc" { peak = size - 4 * (NR - 1); found = 1 }
            END { print peak + 0 }'
}

insn_total() { sed -n 's/^insn-total: //p' "$1/qemu.txt"; }

# The emulated boards and the models each is measured with: board, QEMU machine,
# target, model.
emulated_runs=(
    "stm32f4 netduinoplus2 thumbv7em-none-eabihf f32"
    "stm32f4 netduinoplus2 thumbv7em-none-eabihf int8"
    "microbit microbit thumbv6m-none-eabi int8"
)
# The walkthrough network, 784-100-200-10: its multiply-accumulates per inference.
BOARD_MACS=$((784 * 100 + 100 * 200 + 200 * 10))
# Requests per instruction-count run: 0, N, then 2N; a difference over N is one
# request's instructions, with boot and the greeting cancelled out. The test command
# runs a smaller N (BOARD_N=10), which keeps the figures' plumbing tested.
BOARD_N=${BOARD_N:-100}

# The board firmware's figures: sizes of every board, and in QEMU, for each emulated
# board and model, the peak stack over 2N requests, the instructions per request (runs
# of 0, N and 2N requests under the instruction-count plugin, waiting for the UART left
# out), and the median round trip per image of `board evaluate --qemu` over 2N images.
# Fails if a figure is missing, or if the two halves' instructions per request differ
# by more than 10% (they are different images, but the same work per request: more
# would mean that something besides the requests got counted).
boards_bench() {
    boards
    assets
    local plugin work
    plugin=$("$root/tools/qemu-insn-count/build.sh") || {
        echo "boards-bench: cannot build the instruction-count plugin (tools/qemu-insn-count)" >&2
        return 1
    }
    # The host side: a release build, or the binary MLP_TRAIN names (the test command's
    # debug build: the figures are the device's, and the host's own share of a round
    # trip, encoding and decoding frames, is small either way).
    if [ -n "${MLP_TRAIN:-}" ]; then
        mlp=$(realpath "$MLP_TRAIN")
        [ -x "$mlp" ] || { echo "boards-bench: MLP_TRAIN=$MLP_TRAIN is not an executable" >&2; return 1; }
    else
        cargo build --quiet --release --locked -p mlp-train
        mlp=$root/target/release/mlp-train
    fi
    work=$root/target/boards-bench
    mkdir -p "$work"
    trap '' PIPE
    local n=$BOARD_N rows=() run
    for run in "${emulated_runs[@]}"; do
        local board machine target kind model elf dir zero one two peak first insn trip
        read -r board machine target kind <<<"$run"
        model=$assets/model.mlp
        [ "$kind" = f32 ] || model=$assets/int8/model.mlp
        elf=$root/boards/target/$target/release/mlp-board-$board
        dir=$work/$board-$kind
        served_run "$dir/0" "$board" "$machine" "$elf" "$model" 0 "$plugin"
        served_run "$dir/n" "$board" "$machine" "$elf" "$model" "$n" "$plugin"
        served_run "$dir/2n" "$board" "$machine" "$elf" "$model" $((2 * n)) "$plugin"
        zero=$(insn_total "$dir/0")
        one=$(insn_total "$dir/n")
        two=$(insn_total "$dir/2n")
        [[ "$zero" =~ ^[0-9]+$ && "$one" =~ ^[0-9]+$ && "$two" =~ ^[0-9]+$ ]] || {
            echo "boards-bench: FIGURE MISSING: no instruction count for $board ($kind)" >&2
            return 1
        }
        peak=$(stack_peak "$dir/2n")
        [ "$peak" -gt 0 ] || {
            echo "boards-bench: FIGURE MISSING: no painted stack left for $board ($kind)" >&2
            return 1
        }
        first=$(((one - zero) / n))
        insn=$(((two - one) / n))
        if [ $((10 * (first - insn))) -gt "$insn" ] || [ $((10 * (insn - first))) -gt "$insn" ]; then
            echo "boards-bench: $board ($kind): $first and $insn instructions per request in the two" \
                "halves, more than 10% apart: something besides the requests was counted" >&2
            return 1
        fi
        timeout "$QEMU_TIMEOUT" "$mlp" board evaluate --qemu "$board" --firmware "$elf" \
            --model "$model" --limit $((2 * n)) >"$dir/round-trip.txt" 2>&1 || {
            tail -5 "$dir/round-trip.txt" >&2
            echo "boards-bench: board evaluate --qemu $board failed" >&2
            return 1
        }
        trip=$(sed -n 's/^round trip per image: \([0-9.]*\) ms.*/\1/p' "$dir/round-trip.txt")
        rows+=("$board $kind $target $(wc -c <"$model") $peak $first $insn $trip")
    done
    echo
    echo "== Board firmware in QEMU: 784-100-200-10 models ($BOARD_MACS MACs), image requests =="
    printf '%-8s %-4s %11s %10s %10s %14s %15s %8s %11s\n' board model "model bytes" "static RAM" \
        "peak stack" "insn, 1st $n" "insn, next $n" "per MAC" "round trip"
    local row
    for row in "${rows[@]}"; do
        local board kind target size peak first insn trip elf static
        read -r board kind target size peak first insn trip <<<"$row"
        elf=$root/boards/target/$target/release/mlp-board-$board
        static=$(($(section "$elf" .data) + $(section "$elf" .bss) + $(section "$elf" .uninit)))
        printf '%-8s %-4s %11d %10d %10d %14d %15d %8.2f %8s ms\n' "$board" "$kind" "$size" "$static" \
            "$peak" "$first" "$insn" "$(awk -v i="$insn" -v m="$BOARD_MACS" 'BEGIN { print i / m }')" "$trip"
    done
    echo "insn: instructions per request (PredictPixels, 784 pixels), from its first byte to the end of its answer:"
    echo "  receiving, COBS and CRC-32, inference, encoding and sending the answer; waiting on the UART left out"
    echo "  (tools/qemu-insn-count, idle=wait_until). Runs of 0, $n and $((2 * n)) requests: '1st $n' is"
    echo "  (run $n - run 0) / $n, test images 0-$((n - 1)); 'next $n' is (run $((2 * n)) - run $n) / $n, images $n-$((2 * n - 1))."
    echo "  per MAC: 'next $n' / $BOARD_MACS. Static RAM: .data + .bss + .uninit (1 KB of it the RTT log buffer)."
    echo "peak stack: the run of $((2 * n)) requests, boot included (cortex-m-rt's paint-stack, read through QEMU's monitor)."
    echo "round trip: the median over $((2 * n)) images of \`mlp-train board evaluate --qemu BOARD\` (QEMU's emulated UART)."
    echo
    echo "Peak stack on a board: after some requests, with probe-rs (count the words still painted from the bottom):"
    for board in stm32f4 microbit pico nrf52840; do
        local target=thumbv7em-none-eabihf chip
        case $board in
            stm32f4) chip=STM32F405RGTx ;;
            microbit) chip=nRF51822_xxAA; target=thumbv6m-none-eabi ;;
            pico) chip=RP2040; target=thumbv6m-none-eabi ;;
            nrf52840) chip=nRF52840_xxAA ;;
        esac
        local elf=$root/boards/target/$target/release/mlp-board-$board start end words
        end=$(symbol "$elf" _stack_end)
        start=$(symbol "$elf" _stack_start)
        words=$(((0x$start - 0x$end) / 4))
        echo "  $board: probe-rs read --chip $chip b32 0x$end $words | tr ' ' '\n' | grep -x '[0-9a-f]\{8\}' | awk '\$1 != \"cccccccc\" { print 4 * ($words - NR + 1), \"bytes of stack used\"; exit }'"
    done
}

case "${1:-}" in
    check) check ;;
    bench) bench ;;
    boards) boards ;;
    boards-bench) boards_bench ;;
    *)
        echo "usage: $0 check|bench|boards|boards-bench" >&2
        exit 2
        ;;
esac
