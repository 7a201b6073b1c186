//! Build the static `caw` that this crate embeds (see src/lib.rs).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set for the nested build, so its own caw-bundle embeds nothing.
const NESTED: &str = "CAW_BUNDLE_NESTED";
/// `CAW_NO_BUNDLE=1`: build without the container binary.
const OPT_OUT: &str = "CAW_NO_BUNDLE";
/// Where the nested build goes instead of `<target dir>/caw-bundle`, so
/// several target dirs (an install test's, say) share one build.
const TARGET_DIR: &str = "CAW_BUNDLE_TARGET_DIR";
const PROFILE: &str = "bundle";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={NESTED}");
    println!("cargo:rerun-if-env-changed={OPT_OUT}");
    println!("cargo:rerun-if-env-changed={TARGET_DIR}");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out_dir.join("caw");
    match build(&out_dir) {
        Ok(binary) => {
            std::fs::copy(&binary, &embedded).unwrap_or_else(|e| {
                panic!(
                    "cannot copy `{}` to `{}`: {e}",
                    binary.display(),
                    embedded.display()
                )
            });
            println!("cargo:rustc-env=CAW_BUNDLE_MISSING=");
        }
        Err(reason) => {
            std::fs::write(&embedded, b"").expect("OUT_DIR is writable");
            println!("cargo:rustc-env=CAW_BUNDLE_MISSING={reason}");
        }
    }
}

/// The nested build's binary, or why there is none. A build that should
/// work and fails panics: a caw without its container binary must not
/// pass for a complete one.
fn build(out_dir: &Path) -> Result<PathBuf, String> {
    if env::var_os(NESTED).is_some() {
        return Err("this is the static build itself".into());
    }
    if env::var(OPT_OUT).as_deref() == Ok("1") {
        println!(
            "cargo:warning=built without the static container binary ({OPT_OUT}=1): \
             auth dirs set up by this caw fall back to the shell guard"
        );
        return Err(format!("built with {OPT_OUT}=1"));
    }
    let target = env::var("TARGET").expect("cargo sets TARGET");
    if !target.contains("-linux-") {
        println!(
            "cargo:warning=no static container binary for target `{target}` (not Linux): \
             set CAW_STATIC_BINARY to a Linux build of caw when setting up auth dirs"
        );
        return Err(format!("target `{target}` is not Linux"));
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("crates/caw-bundle is two levels below the workspace");
    if !workspace.join("crates/caw-cli/Cargo.toml").is_file() {
        println!("cargo:warning=caw-bundle is not in the caw workspace; no container binary");
        return Err("built outside the caw workspace".into());
    }
    watch_sources(workspace);
    let target_dir = match env::var_os(TARGET_DIR).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => shared_target_dir(out_dir, &target),
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args([
            "-p",
            "caw-cli",
            "--bin",
            "caw",
            // No refresher (TLS, HTTP) in the container binary.
            "--no-default-features",
            "--profile",
            PROFILE,
            "--target",
            &target,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // One unit separator between flags: CARGO_ENCODED_RUSTFLAGS wins
        // over RUSTFLAGS and target config, so the outer build's flags
        // (or a workspace config) cannot leak in or go missing.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-C\x1ftarget-feature=+crt-static",
        )
        .env(NESTED, "1")
        // Not the outer build's: its own target dir and target, no clippy.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        // Cargo reads build-script stdout; the nested cargo's goes elsewhere.
        .stdout(Stdio::null());
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the static caw: {e}"));
    if !status.success() {
        panic!(
            "building the static caw for containers failed ({status}); see the messages above. \
             It needs the target's static C library (Debian: libc6-dev; Fedora: glibc-static). \
             Set {OPT_OUT}=1 to build without it (containers then use the slower shell guard)."
        );
    }
    let binary = target_dir.join(&target).join(PROFILE).join("caw");
    if !binary.is_file() {
        panic!("the static caw build left no `{}`", binary.display());
    }
    Ok(binary)
}

/// Rebuild when any crate's sources or manifests, or the lock file, change
/// (a no-op nested build costs well under a second).
fn watch_sources(workspace: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    let crates = workspace.join("crates");
    let Ok(entries) = std::fs::read_dir(&crates) else {
        return;
    };
    for entry in entries.flatten() {
        for part in ["src", "Cargo.toml"] {
            let path = entry.path().join(part);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

/// `<target dir>/caw-bundle`: one nested build for every profile of the
/// outer build, and the same place `scripts/build-static.sh` builds to.
/// `OUT_DIR` is `<target dir>[/<triple>]/<profile>/build/<pkg>-<hash>/out`.
fn shared_target_dir(out_dir: &Path, target: &str) -> PathBuf {
    let mut dir = out_dir.ancestors().nth(4).unwrap_or(out_dir).to_path_buf();
    if dir.file_name().is_some_and(|n| n == target) {
        dir.pop();
    }
    dir.join("caw-bundle")
}
