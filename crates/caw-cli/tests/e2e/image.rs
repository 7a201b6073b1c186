//! The test image, built `FROM scratch` (the machine may have no registry):
//! a static busybox with one symlink per applet, `/etc/passwd` and
//! `/etc/group` with root and the agent user `playground` (uid 1000, primary
//! group `agents`, gid 1500: neither the user's name nor its uid, to catch
//! `chown U:U` and uid-for-gid mistakes), `/home/playground` owned by it,
//! `/tmp` with mode 1777, and `tests/e2e/image/entrypoint.sh`.
//!
//! The tag is `caw-e2e:<hash of the build context>`, so the image is rebuilt
//! exactly when busybox, the Dockerfile, the user files or the entrypoint
//! change. caw is not in the image: it reaches the container through the
//! auth dir (`bin/caw`), or not at all for the shell-guard tests.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::container::run_with_timeout;
use crate::prereqs::say;

pub const REPOSITORY: &str = "caw-e2e";
/// The agent user and its primary group, as in `image/passwd` and `image/group`.
pub const USER: &str = "playground";
pub const UID: u32 = 1000;
pub const GROUP: &str = "agents";
pub const GID: u32 = 1500;
pub const HOME: &str = "/home/playground";
pub const MOUNT_POINT: &str = "/tmp/caw_auth";

/// One entry of the build context: a file with its mode, a directory with
/// its mode, or a symlink.
enum Entry {
    File(Vec<u8>, u32),
    Dir(u32),
    Link(String),
}

/// Build the image unless an image with this context's tag exists; return the tag.
pub fn ensure(busybox: &Path) -> Result<String, String> {
    let context = context(busybox)?;
    let tag = format!("{REPOSITORY}:{}", hash(&context));
    if docker_ok(&["image", "inspect", "--format", "{{.Id}}", &tag])? {
        return Ok(tag);
    }
    say(&format!("building the test image `{tag}`"));
    let dir = tempfile::Builder::new()
        .prefix("caw-e2e-image-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("cannot create a build context dir: {e}"))?;
    write_context(dir.path(), &context)?;
    let mut build = Command::new("docker");
    build
        .args(["build", "--quiet", "--label", "caw-e2e=1", "--tag", &tag])
        .arg(dir.path());
    let out = run_with_timeout(&mut build, None, Duration::from_secs(300))
        .map_err(|e| format!("cannot run `docker build`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`docker build` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    remove_stale_tags(&tag);
    Ok(tag)
}

fn context(busybox: &Path) -> Result<BTreeMap<PathBuf, Entry>, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/image");
    let read = |name: &str| {
        std::fs::read(source.join(name))
            .map_err(|e| format!("cannot read `{}`: {e}", source.join(name).display()))
    };
    let mut c = BTreeMap::new();
    let mut put = |path: &str, entry: Entry| {
        c.insert(PathBuf::from(path), entry);
    };
    put("Dockerfile", Entry::File(read("Dockerfile")?, 0o644));
    for dir in [
        "rootfs",
        "rootfs/bin",
        "rootfs/etc",
        "rootfs/e2e",
        "rootfs/home",
    ] {
        put(dir, Entry::Dir(0o755));
    }
    put("rootfs/root", Entry::Dir(0o700));
    put("rootfs/tmp", Entry::Dir(0o1777));
    put("home", Entry::Dir(0o755));
    put("home/playground", Entry::Dir(0o755));
    put("rootfs/etc/passwd", Entry::File(read("passwd")?, 0o644));
    put("rootfs/etc/group", Entry::File(read("group")?, 0o644));
    put(
        "rootfs/e2e/entrypoint.sh",
        Entry::File(read("entrypoint.sh")?, 0o755),
    );
    let bytes =
        std::fs::read(busybox).map_err(|e| format!("cannot read `{}`: {e}", busybox.display()))?;
    put("rootfs/bin/busybox", Entry::File(bytes, 0o755));
    // `busybox --install -s` needs a shell in the image; make the links here.
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("cannot run `{} --list`: {e}", busybox.display()))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        put(
            &format!("rootfs/bin/{applet}"),
            Entry::Link("busybox".into()),
        );
    }
    if !c.contains_key(Path::new("rootfs/bin/sh")) {
        return Err(format!("`{}` has no `sh` applet", busybox.display()));
    }
    Ok(c)
}

/// A stable digest of the context (paths, kinds, modes, bytes) for the tag.
fn hash(context: &BTreeMap<PathBuf, Entry>) -> String {
    // SipHash with fixed keys: stable for a given toolchain, which is all a
    // cache tag needs (a new toolchain at worst rebuilds the image once).
    let mut h = std::hash::DefaultHasher::new();
    for (path, entry) in context {
        path.hash(&mut h);
        match entry {
            Entry::File(bytes, mode) => (0u8, bytes, mode).hash(&mut h),
            Entry::Dir(mode) => (1u8, mode).hash(&mut h),
            Entry::Link(target) => (2u8, target).hash(&mut h),
        }
    }
    format!("{:016x}", h.finish())
}

fn write_context(root: &Path, context: &BTreeMap<PathBuf, Entry>) -> Result<(), String> {
    let err = |path: &Path, e: std::io::Error| format!("`{}`: {e}", path.display());
    // BTreeMap order puts each directory before its contents.
    for (rel, entry) in context {
        let path = root.join(rel);
        match entry {
            Entry::Dir(mode) => {
                std::fs::create_dir_all(&path).map_err(|e| err(&path, e))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                    .map_err(|e| err(&path, e))?;
            }
            Entry::File(bytes, mode) => {
                std::fs::write(&path, bytes).map_err(|e| err(&path, e))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                    .map_err(|e| err(&path, e))?;
            }
            Entry::Link(target) => {
                std::os::unix::fs::symlink(target, &path).map_err(|e| err(&path, e))?;
            }
        }
    }
    Ok(())
}

fn docker_ok(args: &[&str]) -> Result<bool, String> {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(60))
        .map_err(|e| format!("cannot run `docker {}`: {e}", args.join(" ")))?;
    Ok(out.status.success())
}

/// Drop the images of earlier contexts; one in use by a running test stays.
fn remove_stale_tags(current: &str) {
    let Ok(out) = Command::new("docker")
        .args(["images", REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
    else {
        return;
    };
    for tag in String::from_utf8_lossy(&out.stdout).lines() {
        if tag != current && tag.starts_with(REPOSITORY) {
            let _ = Command::new("docker")
                .args(["rmi", tag])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
