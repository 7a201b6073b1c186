#!/usr/bin/env bash
# The Docker end-to-end tests alone: prerequisites, the static caw for the
# bundled-guard tests, then `cargo test -p caw-cli --test e2e`. Extra
# arguments go to the test binary (a name filter, `--nocapture`, …).
#
#   CAW_E2E_STATIC_BIN  a static caw to bundle (default: build one)
#   CAW_E2E_BUSYBOX     a static busybox for the image (default: /bin/busybox)
#   CI                  set: a missing Docker engine fails instead of skipping
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/e2e-prereqs.sh
if [ -z "${CAW_E2E_STATIC_BIN:-}" ]; then
    CAW_E2E_STATIC_BIN=$(scripts/build-static.sh)
    export CAW_E2E_STATIC_BIN
fi
exec cargo test -p caw-cli --test e2e -- "$@"
