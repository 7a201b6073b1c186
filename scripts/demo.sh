#!/usr/bin/env bash
# The main job on the shipped example home: setup, status, docker flags, teardown.
# Touches neither your ~/.caw nor your ~: the home is examples/home and the
# auth dir a temp dir that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p caw-cli
caw="$PWD/target/debug/caw"
work=$(mktemp -d "${TMPDIR:-/tmp}/caw-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
auth="$work/auth"

# A throwaway HOME and no CAW_AUTH_DIR, so nothing can fall back to your real ones.
run() {
    echo "$ caw $*"
    env -u CAW_AUTH_DIR HOME="$work/home" "$caw" "$@"
}
mkdir -p "$work/home"

run auth setup --source-home examples/home --auth-dir "$auth"
echo
run auth status --auth-dir "$auth"
echo
run auth docker-flags --auth-dir "$auth"
echo
run auth teardown --auth-dir "$auth"
