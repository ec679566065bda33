#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine of this project's kind
# (Debian, root, package registries only). Idempotent: quick when everything is present.
set -euo pipefail

need_targets=(thumbv6m-none-eabi thumbv7em-none-eabihf)
installed=$(rustup target list --installed)
for target in "${need_targets[@]}"; do
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools

# Debian packages: QEMU for the firmware tests, Fashion-MNIST as the large real dataset.
need_debs=()
command -v qemu-system-arm >/dev/null || need_debs+=(qemu-system-arm)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_debs+=(dataset-fashion-mnist)
if [ ${#need_debs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
    else
        echo "setup: missing Debian packages ${need_debs[*]}; run as root or install them" >&2
        exit 1
    fi
fi
