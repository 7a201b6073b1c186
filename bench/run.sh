#!/usr/bin/env bash
# Build our release binary, install coding-agent-wrapper 0.1.9 (scripts/reference-caw.sh),
# and run bench/compare.py. Extra arguments go to compare.py, e.g.
#   bench/run.sh --flags-runs 50 --setup-runs 20 --wait-quiet 300
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-python3}"

# The earlier implementation, in the venv the interchangeability tests use too.
theirs=$("$root/scripts/reference-caw.sh")

# Our release binary, in $CARGO_TARGET_DIR if set (relative to the workspace,
# where cargo runs), else target/.
(cd "$root" && cargo build --release -p caw-cli)
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

exec "$python" "$here/compare.py" --ours "$target/release/caw" --theirs "$theirs" "$@"
