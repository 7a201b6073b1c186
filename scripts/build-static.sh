#!/bin/sh
# Build the static Linux `caw` that containers run as A/bin/caw, and print its
# path on stdout (cargo's progress goes to stderr):
#
#   CAW_STATIC_BINARY=$(scripts/build-static.sh) caw auth setup
#
# Every build of the CLI and of the Python extension already embeds this very
# binary (crates/caw-bundle builds it the same way, into the same place), so
# this script is for using it directly: tests, benchmarks, copying it around.
#
# glibc, statically linked: caw never resolves users through NSS (it reads
# /etc/passwd itself), which is what makes a static glibc build safe to run in
# any image. The `bundle` profile trades a little speed for build time.
# Honours CARGO_TARGET_DIR (default: the repository's target/); RUSTFLAGS are
# not used (the flags must match caw-bundle's for the build to be shared).
set -eu
cd "$(dirname "$0")/.."

target=$(rustc -vV | sed -n 's/^host: //p')
dir=${CAW_BUNDLE_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/caw-bundle}
case $dir in
    /*) ;;
    *) dir=$(pwd)/$dir ;;
esac
# The environment caw-bundle's build.rs gives its nested build.
env -u RUSTFLAGS -u CARGO_BUILD_TARGET -u RUSTC_WORKSPACE_WRAPPER \
    CAW_BUNDLE_NESTED=1 \
    CARGO_ENCODED_RUSTFLAGS="$(printf -- '-C\037target-feature=+crt-static')" \
    cargo build -p caw-cli --bin caw --no-default-features --profile bundle --target "$target" \
    --target-dir "$dir" >&2

bin=$dir/$target/bundle/caw
[ -x "$bin" ] || { echo "build-static.sh: no binary at $bin" >&2; exit 1; }
echo "$bin"
