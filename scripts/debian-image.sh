#!/usr/bin/env bash
# A plain Debian image built without a registry: debootstrap (minbase) from the
# Debian mirror this machine's apt is configured with, then `docker import`.
# Prints the image's tag on stdout (everything else goes to stderr).
#
#   scripts/debian-image.sh [--repository NAME] [--include PKG[,PKG…]]
#
# The tag is NAME:<hash of the inputs> (mirror, suite, variant, packages and
# this script), default repository `caw-debian`; an image with that tag is
# reused, so the slow debootstrap runs only when an input changes. The
# packages of a given suite still move with the mirror's point releases:
# delete the image (`docker rmi`) to pick those up.
#
#   CAW_DEBIAN_MIRROR   mirror URL (default: the first Debian URI in apt's sources)
#   CAW_DEBIAN_SUITE    suite (default: the host's VERSION_CODENAME, else bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."

repository=caw-debian
include=""
while [ $# -gt 0 ]; do
    case "$1" in
    --repository) repository=$2; shift 2 ;;
    --include) include=$2; shift 2 ;;
    *) echo "error: unknown argument \`$1\`" >&2
       echo "usage: scripts/debian-image.sh [--repository NAME] [--include PKG[,PKG…]]" >&2
       exit 2 ;;
    esac
done

# The Debian mirror apt uses here (deb822 .sources or one-line .list files):
# the first URI whose path ends in /debian.
mirror=${CAW_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null |
        grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)
fi
if [ -z "$mirror" ]; then
    echo "error: no Debian mirror in /etc/apt/sources.list*" >&2
    echo "hint: set CAW_DEBIAN_MIRROR to a Debian mirror URL" >&2
    exit 1
fi
suite=${CAW_DEBIAN_SUITE:-}
if [ -z "$suite" ]; then
    suite=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)
    suite=${suite:-bookworm}
fi
variant=minbase

hash=$(printf '%s\n' "$mirror" "$suite" "$variant" "$include" |
    cat - "$0" | sha256sum | cut -c1-16)
tag="$repository:$hash"
if docker image inspect --format '{{.Id}}' "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing debootstrap" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
    else
        echo "error: debootstrap is not installed" >&2
        echo "hint: \`sudo apt-get install -y debootstrap\`" >&2
        exit 1
    fi
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: debootstrap needs root (it creates device nodes and chroots)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/caw-debootstrap.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "building $tag: debootstrap --variant=$variant $suite from $mirror${include:+ with $include} (a few minutes)" >&2
args=(--variant="$variant")
[ -n "$include" ] && args+=(--include="$include")
if ! debootstrap "${args[@]}" "$suite" "$work/rootfs" "$mirror" >"$work/log" 2>&1; then
    tail -n 30 "$work/log" >&2
    echo "error: debootstrap failed (log above)" >&2
    exit 1
fi
# Smaller image, and no apt lists that go stale.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
# Imported untagged and tagged only once complete and runnable, so a failed
# import never leaves a broken image under the cached tag.
tar --numeric-owner --xattrs -C "$work/rootfs" -c . >"$work/rootfs.tar"
id=$(docker import --change 'CMD ["/bin/bash"]' --message "debootstrap $suite $variant" \
    "$work/rootfs.tar")
if ! docker run --rm --network none "$id" /bin/true; then
    docker rmi "$id" >/dev/null 2>&1 || true
    echo "error: the imported rootfs does not run /bin/true" >&2
    exit 1
fi
docker tag "$id" "$tag"

# Earlier builds of this repository are dropped (one in use stays).
docker images "$repository" --format '{{.Repository}}:{{.Tag}}' | while read -r old; do
    [ "$old" = "$tag" ] || docker rmi "$old" >/dev/null 2>&1 || true
done
echo "$tag"
