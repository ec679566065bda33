#!/bin/sh
# Builds the plugin and prints the path of the .so to pass to qemu-system-arm -plugin.
# The build goes to target/qemu-insn-count at the repository root (CARGO_TARGET_DIR to
# change it), so it is built once per checkout.
set -e
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../../target/qemu-insn-count}
CARGO_TARGET_DIR="$target" cargo build --quiet --locked --release --manifest-path "$here/Cargo.toml"
echo "$(cd "$target/release" && pwd)/libqemu_insn_count.so"
