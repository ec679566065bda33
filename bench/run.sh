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
# NumPy is the one users get from `pip install numpy`: its wheels bring their own
# OpenBLAS, which picks a kernel for the CPU at run time (Debian's python3-numpy runs
# the slow reference BLAS unless an optimized one is installed). The script keeps a
# virtual environment for it, .venv-bench/ at the repository root (BENCH_VENV to move
# it), created with $PYTHON (default python3) and given numpy and threadpoolctl from the
# Python package registry; both steps are skipped when already done. The output names
# the BLAS library NumPy loaded and the kernel ("architecture") it chose.
#
# Also needs Fashion-MNIST (/usr/share/datasets/fashion-mnist). As root it installs the
# Debian packages dataset-fashion-mnist and, if `$PYTHON -m venv` cannot work,
# python3-venv when missing; otherwise it says what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-/usr/share/datasets/fashion-mnist}
PYTHON=${PYTHON:-python3}

need_debs=()
if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
    need_debs+=(python3-venv)
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
    else
        echo "bench: missing ${need_debs[*]} (Debian packages); run as root or install them" >&2
        exit 1
    fi
fi

source bench/venv.sh
bench_venv numpy threadpoolctl

# Which NumPy, which BLAS, and which of its kernels (threadpoolctl asks the library).
"$py" - <<'EOF'
import numpy
from threadpoolctl import threadpool_info

print(f"numpy {numpy.__version__}")
pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
for p in pools:
    print(
        f"  BLAS: {p.get('internal_api')} {p.get('version')} ({p.get('prefix')}), "
        f"kernel (architecture) {p.get('architecture')}, {p.get('num_threads')} threads"
    )
if not pools:
    print("  BLAS: none that threadpoolctl knows (a reference BLAS?): NumPy's timings will be slow")
EOF

echo "uptime: $(uptime)"
cargo build --release -q -p mlp-train
cargo run --release -q -p mlp-train -- bench --data "$DATA" --numpy bench/numpy_mlp.py --python "$py" \
    --numpy-single-thread --core-epoch "$@"
echo "uptime: $(uptime)"
