#!/usr/bin/env bash
# Build the `caw` Python package from this checkout and run its tests.
#
# Creates the venv .venv (python3 -m venv) when it is missing, installs maturin
# and pytest into it, installs the package with `pip install .` (maturin builds
# crates/caw-python with cargo, honouring CARGO_TARGET_DIR), then runs pytest
# on tests/python. Arguments are passed to pytest. Exits non-zero on failure.
#
#   CAW_PYTHON_VENV  venv to use (default .venv)
#   PYTHON           interpreter that creates it (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CAW_PYTHON_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
venv=$(cd "$venv" && pwd)
py="$venv/bin/python"
# maturin's build backend runs the `maturin` executable it finds on PATH.
export PATH="$venv/bin:$PATH"

"$py" -m pip install --quiet "maturin>=1.9.4,<2" "pytest>=7"
# Build with the maturin just installed rather than a fresh one per run;
# reinstall even when the version is unchanged, so the tests see this checkout.
"$py" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps .
"$py" -m pytest -p no:cacheprovider tests/python "$@"
