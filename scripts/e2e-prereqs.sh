#!/usr/bin/env bash
# What the Docker end-to-end tests (crates/caw-cli/tests/e2e) need besides
# Rust: a static busybox for the FROM scratch test image (Debian's
# busybox-static, installed here when missing) and a running Docker engine
# (checked, never installed). No registry is needed: the image is built
# locally from busybox alone.
set -euo pipefail

busybox=${CAW_E2E_BUSYBOX:-/bin/busybox}
if [ ! -x "$busybox" ]; then
    if [ -n "${CAW_E2E_BUSYBOX:-}" ]; then
        echo "error: CAW_E2E_BUSYBOX=$busybox is not an executable" >&2
        exit 1
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing busybox-static for the e2e test image" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    else
        echo "error: no static busybox at $busybox" >&2
        echo "hint: \`sudo apt-get install -y busybox-static\`, or set CAW_E2E_BUSYBOX to a static busybox" >&2
        exit 1
    fi
fi

if ! docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
    echo "warning: \`docker info\` fails: the Docker e2e tests will be skipped (and fail under CI=1)" >&2
    echo "hint: start the Docker engine, or add yourself to the \`docker\` group" >&2
fi
