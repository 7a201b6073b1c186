//! The static `caw` the Docker tests bundle into auth dirs, and the
//! workspace's scripts. Shared by the test crates through `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (`crates/caw-cli` is two levels below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/caw-cli is two levels below the workspace root")
        .to_path_buf()
}

/// `$CAW_E2E_STATIC_BIN`, else built with `scripts/build-static.sh` into
/// this test build's target dir (where it is cached); checked to be a static
/// Linux executable. `say` tells the user a build is starting.
pub fn find_or_build(say: impl Fn(&str)) -> Result<PathBuf, String> {
    let path = match std::env::var_os("CAW_E2E_STATIC_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => build(say)?,
    };
    if !caw_auth::bundle::is_static_linux_executable(&path) {
        return Err(format!(
            "`{}` (CAW_E2E_STATIC_BIN or scripts/build-static.sh) is not a static Linux executable",
            path.display()
        ));
    }
    Ok(path)
}

fn build(say: impl Fn(&str)) -> Result<PathBuf, String> {
    let root = workspace_root();
    // The target dir this test binary was built in (CARGO_TARGET_TMPDIR is
    // `<target>/tmp`).
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf();
    say(&format!(
        "building a static caw with scripts/build-static.sh into `{}` \
         (set CAW_E2E_STATIC_BIN to use an existing build)",
        target.display()
    ));
    let script = root.join("scripts/build-static.sh");
    let out = Command::new(&script)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("`{}` failed ({})", script.display(), out.status));
    }
    // The script prints the binary's path as its last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(printed) if !printed.is_empty() => Ok(PathBuf::from(printed)),
        _ => Ok(target.join("x86_64-unknown-linux-gnu/release/caw")),
    }
}
