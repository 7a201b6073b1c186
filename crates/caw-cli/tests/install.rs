//! Every install path gives auth dirs a static `bin/caw` (crates/caw-bundle).
//!
//! - this test build's `caw auth setup` (a dynamic debug build) bundles the
//!   embedded static binary;
//! - `cargo install --path crates/caw-cli` into a fresh root, then `caw auth
//!   setup` on a temp home;
//! - `pip install .` into a fresh venv, then `caw.auth.setup(…)`.
//!
//! The two installs take minutes on a cold cache, so they run only when
//! `CAW_TEST_INSTALL=1` (scripts/test.sh sets it) or `CI` is set, and say
//! so otherwise. Their cargo target dirs live under this build's target dir
//! (`install-test/`) and share the nested static build (`caw-bundle/`), so
//! a second run is quick.

#[path = "support/skip.rs"]
#[allow(dead_code)]
mod skip;
#[path = "cli/util.rs"]
#[allow(dead_code)]
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use caw_auth::bundle::is_static_linux_executable;
use util::{stderr, TestEnv};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn enabled(test: &str) -> bool {
    let on = |v: &str| std::env::var_os(v).is_some_and(|v| !v.is_empty() && v != "0");
    if on("CAW_TEST_INSTALL") || on("CI") {
        return true;
    }
    eprintln!("skipped `{test}`: set CAW_TEST_INSTALL=1 to run the install tests");
    false
}

/// `A/bin/caw` is a static Linux executable that runs and is this version.
fn assert_static_bin(auth: &Path, how: &str) {
    let bin = auth.join("bin/caw");
    assert!(
        is_static_linux_executable(&bin),
        "{how}: `{}` is missing or not a static Linux executable",
        bin.display()
    );
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("caw {}", env!("CARGO_PKG_VERSION")),
        "{how}: bin/caw --version"
    );
}

/// A command for an install, with the nested static build shared and the
/// developer's opt-out cleared.
fn install_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace())
        .env("CAW_BUNDLE_TARGET_DIR", target_dir().join("caw-bundle"))
        .env_remove("CAW_NO_BUNDLE")
        .env_remove("RUSTFLAGS");
    cmd
}

#[test]
fn setup_bundles_the_embedded_static_caw() {
    let caw = Path::new(env!("CARGO_BIN_EXE_caw"));
    assert!(
        !is_static_linux_executable(caw),
        "the test build is static; this test is meant to show the embedded copy is used"
    );
    let env = TestEnv::full();
    let out = env.setup();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_static_bin(&env.auth, "a dynamic caw's setup");
}

#[test]
fn cargo_install_gives_a_static_bin_caw() {
    if !enabled("cargo_install_gives_a_static_bin_caw") {
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("caw-install-")
        .tempdir_in(target_dir())
        .unwrap();
    let out = install_command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["install", "--locked", "--path", "crates/caw-cli", "--root"])
        .arg(root.path())
        .env("CARGO_TARGET_DIR", target_dir().join("install-test/cargo"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo install: {}", stderr(&out));
    let caw = root.path().join("bin/caw");
    let env = TestEnv::full();
    let out = Command::new(&caw)
        .args(["auth", "setup", "--auth-dir"])
        .arg(&env.auth)
        .env("HOME", &env.home)
        .env_remove("CAW_STATIC_BINARY")
        .env_remove("CAW_AUTH_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "installed caw auth setup: {}",
        stderr(&out)
    );
    assert_static_bin(&env.auth, "cargo install");
}

#[test]
fn pip_install_gives_a_static_bin_caw() {
    if !enabled("pip_install_gives_a_static_bin_caw") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("caw-pip-")
        .tempdir_in(target_dir())
        .unwrap();
    let venv = dir.path().join("venv");
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let out = Command::new(python)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(out.status.success(), "venv: {}", stderr(&out));
    let py = venv.join("bin/python");
    let out = install_command(&py)
        .args(["-m", "pip", "install", "--quiet", "."])
        .env("CARGO_TARGET_DIR", target_dir().join("install-test/pip"))
        .output()
        .unwrap();
    assert!(out.status.success(), "pip install .: {}", stderr(&out));
    let env = TestEnv::full();
    let script =
        "import sys, caw; print(caw.auth.setup(source_home=sys.argv[1], dest_dir=sys.argv[2]))";
    let out = Command::new(&py)
        .args(["-c", script])
        .arg(&env.home)
        .arg(&env.auth)
        // Not the checkout's python/ directory: the installed package.
        .current_dir(dir.path())
        .env_remove("CAW_STATIC_BINARY")
        .env_remove("CAW_AUTH_DIR")
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "caw.auth.setup: {}", stderr(&out));
    assert_static_bin(&env.auth, "pip install");
}
