#!/usr/bin/env bash
# The tabular comparison in one run: scikit-learn's MLPClassifier against the Rust
# trainer on the same CSV split (data/breast-cancer by default), the same hidden sizes
# and the same SGD settings, several seeds each, medians printed
# (bench/sklearn_mlp.py does the work; see its docstring for what is matched and what
# cannot be). Figures, not a pass/fail test; check `uptime` first.
#
#   bench/sklearn.sh                          # the README's comparison
#   bench/sklearn.sh --seeds 9 --epochs 50    # any flag of bench/sklearn_mlp.py
#   PYTHON=python3.12 bench/sklearn.sh
#
# scikit-learn is the one users get from `pip install scikit-learn`. The script keeps
# it in the same virtual environment as bench/run.sh, .venv-bench/ at the repository
# root (BENCH_VENV to move it), created with $PYTHON (default python3) and given
# numpy, scikit-learn and threadpoolctl from the Python package registry; both steps
# are skipped when already done. As root it installs the Debian package python3-venv
# if `$PYTHON -m venv` cannot work; otherwise it says so and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    else
        echo "bench: missing python3-venv (Debian package); run as root or install it" >&2
        exit 1
    fi
fi

source bench/venv.sh
bench_venv numpy sklearn=scikit-learn threadpoolctl

echo "uptime: $(uptime)"
cargo build --release -q -p mlp-train
"$py" bench/sklearn_mlp.py --trainer target/release/mlp-train "$@"
echo "uptime: $(uptime)"
