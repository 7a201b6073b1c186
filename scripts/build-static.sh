#!/bin/sh
# Build the static Linux `caw` that `caw auth setup` bundles as A/bin/caw, so
# containers run the inotify guard instead of the shell fallback. Prints the
# binary's path on stdout (cargo's progress goes to stderr):
#
#   CAW_STATIC_BINARY=$(scripts/build-static.sh) caw auth setup
#
# glibc, statically linked: caw never resolves users through NSS (it reads
# /etc/passwd itself), which is what makes a static glibc build safe to run in
# any image. Honours CARGO_TARGET_DIR (default: the repository's target/) and
# extra RUSTFLAGS.
set -eu
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo build --release --target "$target" -p caw-cli >&2

dir=${CARGO_TARGET_DIR:-target}
case $dir in
    /*) ;;
    *) dir=$(pwd)/$dir ;;
esac
bin=$dir/$target/release/caw
[ -x "$bin" ] || { echo "build-static.sh: no binary at $bin" >&2; exit 1; }
echo "$bin"
