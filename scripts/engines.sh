#!/usr/bin/env bash
# What the engine rows of the e2e suite (crates/caw-cli/tests/e2e/engines.rs)
# need besides Docker, installed from Debian when missing, idempotent:
# - podman, uidmap (newuidmap), slirp4netns, fuse-overlayfs, rootlesskit;
# - the unprivileged user `caw-rootless` (uid 4242, gid 4343: the e2e
#   suite's host user) with subordinate uid and gid ranges, and its own
#   XDG_RUNTIME_DIR (/run/user/4242, 0700), for the rootless rows;
# - rootless Docker for that user (dockerd-rootless.sh, started when it
#   does not answer);
# - the engine configuration the tests pass through CONTAINERS_CONF and
#   CONTAINERS_STORAGE_CONF (written under target/engines, never /etc):
#   on this machine kind root lacks CAP_SYS_RESOURCE, so podman's default
#   nofile limit cannot be set (use the hard limit), crun does not run on
#   hybrid cgroups (use runc and cgroupfs), /dev/net/tun is 0600 (rootless
#   containers get netns="none"), and some places have no fuse (vfs
#   storage for rootless).
# Prints `KEY=value` lines for the tests on stdout. Needs root for the
# install and the user; without root it only writes the configuration.
# CAW_ENGINES_NO_INSTALL=1 (the e2e suite) installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

user=caw-rootless
uid=4242
gid=4343
out=${CARGO_TARGET_DIR:-target}/engines
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ "$(id -u)" = 0 ]; then
    missing=()
    for pair in podman:podman newuidmap:uidmap slirp4netns:slirp4netns \
        fuse-overlayfs:fuse-overlayfs rootlesskit:rootlesskit runc:runc; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ] && [ -z "${CAW_ENGINES_NO_INSTALL:-}" ]; then
        echo "installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${missing[@]}" >&2 || {
            apt-get update >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                "${missing[@]}" >&2
        }
    fi
    getent group "$user" >/dev/null || groupadd --gid "$gid" "$user"
    getent passwd "$user" >/dev/null ||
        useradd --uid "$uid" --gid "$gid" --create-home --shell /bin/sh "$user"
    grep -q "^$user:" /etc/subuid || echo "$user:200000:65536" >>/etc/subuid
    grep -q "^$user:" /etc/subgid || echo "$user:200000:65536" >>/etc/subgid
    install -d -m 0700 -o "$uid" -g "$gid" "/run/user/$uid"
fi

# Rootless Docker for caw-rootless, from docker.io's contrib files, unless
# it answers already: rootlesskit with the host network (slirp4netns needs
# /dev/net/tun, which is 0600 here; the tests run with --network none), vfs
# storage, no bridge or iptables. It keeps running (like the Docker daemon);
# stop it with `kill $(cat /run/user/4242/docker.pid)`.
rootless_docker=unix:///run/user/$uid/docker.sock
contrib=/usr/share/docker.io/contrib
as_user() {
    runuser -u "$user" -- env XDG_RUNTIME_DIR="/run/user/$uid" HOME="/home/$user" \
        PATH="$contrib:/usr/sbin:/usr/bin:/sbin:/bin" "$@"
}
if [ "$(id -u)" = 0 ] && [ -x "$contrib/dockerd-rootless.sh" ] &&
    ! as_user env DOCKER_HOST="$rootless_docker" docker info >/dev/null 2>&1; then
    echo "starting rootless Docker for $user (log: $out/dockerd-rootless.log)" >&2
    as_user env DOCKERD_ROOTLESS_ROOTLESSKIT_NET=host \
        DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=none \
        setsid dockerd-rootless.sh --bridge=none --iptables=false --ip6tables=false \
        --storage-driver=vfs </dev/null >"$out/dockerd-rootless.log" 2>&1 &
    for _ in $(seq 60); do
        as_user env DOCKER_HOST="$rootless_docker" docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
fi

nofile=$(ulimit -Hn)
cat >"$out/rootful.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
cat >"$out/rootless.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
cat >"$out/rootless-storage.conf" <<CONF
[storage]
driver = "vfs"
runroot = "/run/user/$uid/containers"
graphroot = "/home/$user/.local/share/containers/storage"
CONF
chmod 0644 "$out"/*.conf
# caw-rootless reads its configuration from here.
chmod 0755 "$out"

echo "CAW_ENGINES_ROOTFUL_CONF=$out/rootful.conf"
echo "CAW_ENGINES_ROOTLESS_CONF=$out/rootless.conf"
echo "CAW_ENGINES_ROOTLESS_STORAGE_CONF=$out/rootless-storage.conf"
echo "CAW_ENGINES_ROOTLESS_USER=$user"
echo "CAW_ENGINES_ROOTLESS_DOCKER_HOST=$rootless_docker"
