//! The static Linux `caw` that containers run (`A/bin/caw`), embedded in
//! every build of the CLI and of the Python extension.
//!
//! `build.rs` builds it: a nested `cargo build -p caw-cli --profile bundle
//! --target <this build's target>` with `-C target-feature=+crt-static`,
//! into `<target dir>/caw-bundle` (shared by every profile, and by
//! `scripts/build-static.sh`, which builds the same thing). So `cargo
//! install --path crates/caw-cli` and `pip install .` both give a `caw`
//! whose `caw auth setup` writes a static `bin/caw`, whatever rustflags
//! the outer build used.
//!
//! There is no binary when:
//! - `CAW_NO_BUNDLE=1` was set at build time (a faster edit-compile loop;
//!   CI never sets it);
//! - the target is not Linux (a macOS build cannot link a Linux binary);
//! - this is the nested build itself (`CAW_BUNDLE_NESTED=1`): a static
//!   `caw` bundles its own executable instead.

static BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/caw"));

/// The embedded static `caw`, or `None` when this build has none
/// ([`missing_reason`] says why).
pub fn binary() -> Option<&'static [u8]> {
    (!BYTES.is_empty()).then_some(BYTES)
}

/// Why [`binary`] is `None`; `None` when there is a binary.
pub fn missing_reason() -> Option<&'static str> {
    match env!("CAW_BUNDLE_MISSING") {
        "" => None,
        reason => Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_or_a_reason_never_both() {
        assert_eq!(binary().is_some(), missing_reason().is_none());
    }
}
