#!/usr/bin/env bash
# What the Docker end-to-end tests (crates/caw-cli/tests/e2e) need besides
# Rust: a static busybox for the FROM scratch test image (Debian's
# busybox-static, installed here when missing), Podman and the rootless test
# user (scripts/engines.sh) and a running Docker engine (checked, never
# installed). No registry is needed: the image is built
# locally from busybox alone.
set -euo pipefail

"$(dirname "$0")/busybox.sh" >/dev/null
# Podman (rootful, rootless, keep-id) for the engine rows (tests/e2e/engines.rs).
if [ "$(id -u)" = 0 ]; then
    "$(dirname "$0")/engines.sh" >/dev/null
else
    echo "warning: not root: the Podman rows need \`sudo scripts/engines.sh\` first" >&2
fi

if ! docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
    echo "warning: \`docker info\` fails: the Docker e2e tests will be skipped (and fail under CI=1)" >&2
    echo "hint: start the Docker engine, or add yourself to the \`docker\` group" >&2
fi
