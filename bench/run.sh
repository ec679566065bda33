#!/usr/bin/env bash
# The training-speed benchmark in one run: the Rust trainer's fast kernels against the
# NumPy walkthrough (bench/numpy_mlp.py, float32), measurements interleaved so both see
# the same machine load, medians and ratios printed. Figures, not a pass/fail test.
# Training is timed with `--threads` threads (default: as `train`, the cores, at most 2) and, in the same rounds, with
# one thread; check `uptime` first: on a busy machine the threads' gain disappears and
# NumPy's timings collapse.
#
#   bench/run.sh                 # 7 rounds of each measurement; NumPy as configured by
#                                # default (OpenBLAS on every core) and with one BLAS thread
#   bench/run.sh --rounds 11     # more rounds; any flag of `mlp-train bench`
#   DATA=dir PYTHON=python3.12 bench/run.sh
#
# Needs NumPy and Fashion-MNIST (/usr/share/datasets/fashion-mnist); as root it
# installs the Debian packages python3-numpy and dataset-fashion-mnist if missing,
# otherwise it says what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-/usr/share/datasets/fashion-mnist}
PYTHON=${PYTHON:-python3}

need_debs=()
if ! "$PYTHON" -c "import numpy" 2>/dev/null; then
    if /usr/bin/python3 -c "import numpy" 2>/dev/null; then
        PYTHON=/usr/bin/python3
    else
        need_debs+=(python3-numpy)
    fi
fi
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -f "$DATA/train-images-idx3-ubyte" ]; then
    if [ "$DATA" = /usr/share/datasets/fashion-mnist ]; then
        need_debs+=(dataset-fashion-mnist)
    else
        echo "bench: no MNIST-format training images in $DATA" >&2
        exit 1
    fi
fi
if [ ${#need_debs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_debs[@]}"
        [[ " ${need_debs[*]} " == *" python3-numpy "* ]] && PYTHON=/usr/bin/python3
    else
        echo "bench: missing ${need_debs[*]} (Debian packages); run as root or install them (NumPy also: pip install numpy)" >&2
        exit 1
    fi
fi

echo "uptime: $(uptime)"
cargo build --release -q -p mlp-train
cargo run --release -q -p mlp-train -- bench --data "$DATA" --numpy bench/numpy_mlp.py --python "$PYTHON" \
    --numpy-single-thread --core-epoch "$@"
echo "uptime: $(uptime)"
