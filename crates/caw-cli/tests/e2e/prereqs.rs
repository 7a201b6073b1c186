//! What the e2e tests need from the machine: a Docker engine, a static
//! busybox for the image, and a static `caw` for the bundled-guard tests.
//!
//! Without an engine (or busybox) every Docker test is skipped with a message
//! on stderr, unless `CI` is set: there a missing prerequisite is a failure.
//! Anything that goes wrong once the prerequisites are there (an image that
//! does not build, a static build that fails) is always a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::Duration;

use crate::container::run_with_timeout;
use crate::image;

/// The outcome of checking the machine (the image's tag when ready).
type Prereqs = crate::skip::Found<String>;

static PREREQS: OnceLock<Prereqs> = OnceLock::new();
static STATIC_CAW: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Say `message` on the real stderr (see [`crate::skip::say`]).
pub fn say(message: &str) {
    crate::skip::say("caw e2e", message);
}

/// The test image's tag, or `None` when the test must be skipped (after
/// saying why). Panics when the machine is broken, or under `CI` when a
/// prerequisite is missing.
pub fn image_or_skip(test: &str) -> Option<&'static str> {
    static SAID: AtomicBool = AtomicBool::new(false);
    PREREQS
        .get_or_init(check)
        .get("caw e2e", &SAID, test)
        .map(String::as_str)
}

fn check() -> Prereqs {
    let mut info = Command::new("docker");
    info.args(["info", "--format", "{{.ServerVersion}}"]);
    match run_with_timeout(&mut info, None, Duration::from_secs(30)) {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Prereqs::Missing(format!(
                "`docker info` failed, no usable Docker engine: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => return Prereqs::Missing(format!("cannot run `docker info`: {e}")),
    }
    let busybox = match busybox() {
        Ok(path) => path,
        Err(reason) => return Prereqs::Missing(reason),
    };
    match image::ensure(&busybox) {
        Ok(tag) => Prereqs::Ready(tag),
        Err(reason) => Prereqs::Broken(format!("cannot build the e2e image: {reason}")),
    }
}

/// A static busybox: `$CAW_E2E_BUSYBOX`, else Debian's `busybox-static` one.
fn busybox() -> Result<PathBuf, String> {
    let hint = "install it with `scripts/e2e-prereqs.sh` (Debian's busybox-static) \
                or point CAW_E2E_BUSYBOX at a static busybox";
    let candidates: Vec<PathBuf> = match std::env::var_os("CAW_E2E_BUSYBOX") {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => vec!["/bin/busybox".into(), "/usr/bin/busybox".into()],
    };
    let Some(found) = candidates.iter().find(|p| p.is_file()) else {
        return Err(format!("no busybox at {candidates:?}; {hint}"));
    };
    if !caw_auth::bundle::is_static_linux_executable(found) {
        return Err(format!(
            "`{}` is not statically linked and cannot run in a FROM scratch image; {hint}",
            found.display()
        ));
    }
    Ok(found.clone())
}

/// A static `caw` to bundle: `$CAW_E2E_STATIC_BIN`, else built once with
/// `scripts/build-static.sh` into this build's target dir.
pub fn static_caw() -> &'static Path {
    match STATIC_CAW.get_or_init(|| crate::static_caw::find_or_build(say)) {
        Ok(path) => path,
        Err(reason) => panic!("{reason}"),
    }
}
