#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine of this project's kind
# (Debian, root, package registries only). Idempotent: quick when everything is present.
set -euo pipefail

# Rust: the Cortex-M targets (firmware, no_std builds) and AArch64 Linux (the NEON
# kernels under QEMU user mode, scripts/aarch64.sh).
need_targets=(thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf aarch64-unknown-linux-gnu)
installed=$(rustup target list --installed)
for target in "${need_targets[@]}"; do
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools

# Nightly with Miri and the standard library's sources (scripts/miri.sh; cargo-fuzz
# in scripts/fuzz.sh uses the same toolchain).
if ! grep -q '^nightly' <<<"$(rustup toolchain list)"; then
    rustup toolchain install nightly --profile minimal --component miri,rust-src
fi
nightly_components=$(rustup +nightly component list --installed)
for component in miri rust-src; do
    grep -q "^$component" <<<"$nightly_components" || rustup +nightly component add "$component"
done

# Debian packages: QEMU for the firmware tests, Fashion-MNIST as the large real dataset,
# QEMU user mode with the AArch64 cross linker and C library for scripts/aarch64.sh.
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
need_debs=()
command -v qemu-system-arm >/dev/null || need_debs+=(qemu-system-arm)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_debs+=(dataset-fashion-mnist)
command -v qemu-aarch64 >/dev/null || need_debs+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need_debs+=(gcc-aarch64-linux-gnu)
have_deb libc6-dev-arm64-cross || need_debs+=(libc6-dev-arm64-cross)
if [ ${#need_debs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
    else
        echo "setup: missing Debian packages ${need_debs[*]}; run as root or install them" >&2
        exit 1
    fi
fi
