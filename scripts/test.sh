#!/usr/bin/env bash
# Every check and test of the project, from a clean checkout on a fresh machine.
# Installs what it needs (busybox-static for the container tests, etcd for
# the store tests, debootstrap
# and the pinned agent wheels for the real-agent tests, a Python venv with
# maturin and pytest), builds the static caw, and runs: fmt, clippy, the Rust
# tests (unit, CLI, container-side bind-mount tests, `caw auth exec` as PID 1,
# the install paths, Docker end-to-end, the real Claude Code and Codex against
# a fake API), the Python tests and the demo.
# CAW_NO_BUNDLE must not be set: the tests check the embedded static caw.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "prerequisites"
scripts/busybox.sh >/dev/null
scripts/etcd.sh
# Podman, uidmap, slirp4netns, fuse-overlayfs, rootlesskit and the rootless
# test user, for the engine rows of the Docker end-to-end suite.
scripts/engines.sh

if [ -n "${CAW_NO_BUNDLE:-}" ]; then
    echo "error: unset CAW_NO_BUNDLE: the tests check the static caw every build embeds" >&2
    exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "static caw for the container side (the one every build embeds)"
CAW_E2E_STATIC_BIN=$(scripts/build-static.sh)
export CAW_E2E_STATIC_BIN
echo "$CAW_E2E_STATIC_BIN"

step "caw 0.1.9 (the Python implementation) for the interchangeability tests"
CAW_REFERENCE_BIN=$(scripts/reference-caw.sh)
export CAW_REFERENCE_BIN

step "real Claude Code and Codex for the real-agent tests (pinned wheels, Debian image)"
real_agents=$(scripts/real-agents.sh)
while IFS='=' read -r key value; do
    case $key in CAW_REAL_AGENTS_*) export "$key=$value" ;; esac
done <<<"$real_agents"
echo "$real_agents"

step "Rust tests"
# Includes tests/install.rs: `cargo install` and `pip install .` into fresh
# prefixes (cached under target/install-test), each giving a static bin/caw.
CAW_TEST_INSTALL=1 cargo test --workspace --locked

step "Python package and tests"
scripts/test-python.sh

step "demo on the example home"
scripts/demo.sh >/dev/null
echo "demo ok"
