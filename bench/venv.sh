# Sourced by bench/run.sh and bench/sklearn.sh: the virtual environment their Python
# references run in, shared by both (.venv-bench/ at the repository root unless
# BENCH_VENV says), so NumPy is installed once.
#
# bench_venv MODULE[=PACKAGE]...: sets $py to the environment's python, first
# (re)creating the environment with $PYTHON when it is missing, broken or made with
# another Python version, and pip-installing the packages whose module cannot be
# imported (PACKAGE when the package's name is not the module's: sklearn=scikit-learn).
bench_venv() {
    local venv=${BENCH_VENV:-$PWD/.venv-bench}
    local version='import sys; print("%d.%d" % sys.version_info[:2])'
    local want_version spec modules=() packages=()
    want_version=$("$PYTHON" -c "$version")
    if [ "$("$venv/bin/python" -c "$version" 2>/dev/null || true)" != "$want_version" ]; then
        echo "bench: creating the virtual environment $venv with $PYTHON ($want_version)"
        "$PYTHON" -m venv --clear "$venv"
    fi
    py=$venv/bin/python
    for spec in "$@"; do
        modules+=("${spec%%=*}")
        packages+=("${spec#*=}")
    done
    if ! "$py" -c "import $(IFS=,; echo "${modules[*]}")" 2>/dev/null; then
        echo "bench: installing ${packages[*]} into $venv"
        "$py" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
    fi
}
