#!/usr/bin/env bash
# A static busybox for the test and demo images (they are built FROM
# scratch: the machine may have no registry). Prints its path on stdout;
# installs Debian's busybox-static when it is missing and we are root with
# apt, else fails saying how to get one.
#
#   CAW_E2E_BUSYBOX   a static busybox to use instead of /bin/busybox
set -euo pipefail

busybox=${CAW_E2E_BUSYBOX:-/bin/busybox}
if [ ! -x "$busybox" ]; then
    if [ -n "${CAW_E2E_BUSYBOX:-}" ]; then
        echo "error: CAW_E2E_BUSYBOX=$busybox is not an executable" >&2
        exit 1
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing busybox-static" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    else
        echo "error: no static busybox at $busybox" >&2
        echo "hint: \`sudo apt-get install -y busybox-static\`, or set CAW_E2E_BUSYBOX to a static busybox" >&2
        exit 1
    fi
fi
echo "$busybox"
