#!/usr/bin/env bash
# Install the earlier Python implementation (PyPI coding-agent-wrapper 0.1.9)
# into its own venv and print the path of its `caw` command. Used by the
# interchangeability tests and the benchmarks; it never runs against your ~.
# `mcp<2` is pinned because 0.1.9 imports an API that mcp 2 renamed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CAW_REFERENCE_VENV:-$PWD/target/reference-venv}
if [ ! -x "$venv/bin/caw" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'coding-agent-wrapper==0.1.9' 'mcp<2' >&2
fi
echo "$venv/bin/caw"
