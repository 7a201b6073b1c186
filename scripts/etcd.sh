#!/usr/bin/env bash
# etcd for the store tests (crates/caw-cli/tests/store): Debian's etcd-server
# and etcd-client, installed when missing. The tests start their own members
# on loopback ports; nothing is started here.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: etcd is missing; install Debian's etcd-server (as root: apt-get install etcd-server etcd-client)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends etcd-server etcd-client >/dev/null 2>&1 || {
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends etcd-server etcd-client >/dev/null
}
command -v etcd >/dev/null
