#!/usr/bin/env bash
# Build our release binary, make bench/.venv with coding-agent-wrapper 0.1.9,
# and run bench/compare.py. Extra arguments go to compare.py, e.g.
#   bench/run.sh --flags-runs 50 --setup-runs 20 --wait-quiet 300
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
python="${PYTHON:-python3}"

# The earlier implementation. It needs mcp<2 pinned or it fails to import.
if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("coding-agent-wrapper") != "0.1.9")' 2>/dev/null; then
    echo "creating $venv with coding-agent-wrapper 0.1.9" >&2
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet 'coding-agent-wrapper==0.1.9' 'mcp<2'
fi

# Our release binary, in $CARGO_TARGET_DIR if set (relative to the workspace,
# where cargo runs), else target/.
(cd "$root" && cargo build --release -p caw-cli)
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

exec "$python" "$here/compare.py" --ours "$target/release/caw" --theirs "$venv/bin/caw" "$@"
