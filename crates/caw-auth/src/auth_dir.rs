//! The auth dir `A` itself: where it is, what caw writes at its top, whether
//! a directory is one, and the temp dirs `setup` builds beside it.
//!
//! caw replaces and removes whole directories, so it decides strictly what
//! it may replace: an auth dir is a directory whose `manifest.json` is a valid
//! caw manifest and whose every top-level entry is one caw writes. Anything
//! else (a browser extension's `manifest.json`, a project with
//! `node_modules`) is refused, `--force` or not.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::bundle::SETUP_SCRIPT;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::{agents, fs, paths, Error, Result};

/// The live directory inside `A`: the only path containers may write (live mode).
pub const LIVE_DIR: &str = "live";
/// The directory of the bundled static `caw`.
pub const BIN_DIR: &str = "bin";
/// The host sync's log, appended to.
pub const SYNC_LOG: &str = "sync.log";
/// The host sync's state, written atomically.
pub const SYNC_STATE: &str = "sync.json";

/// Files caw writes at the top of `A` (the sync's two included).
const TOP_FILES: [&str; 4] = [MANIFEST_FILE, SETUP_SCRIPT, SYNC_LOG, SYNC_STATE];
/// Directories caw writes at the top of `A`, besides one per known agent.
const TOP_DIRS: [&str; 2] = [BIN_DIR, LIVE_DIR];

/// The auth dir to use: `given` (a leading `~` expanded), else
/// `$CAW_AUTH_DIR`, else `~/.caw/auth`; absolute, symlinks not resolved.
///
/// The one resolver every command uses.
pub fn resolve(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => paths::expand_tilde(p)?,
        None => paths::default_auth_dir()?,
    };
    paths::absolute(&path)
}

/// What is at a path that caw is about to replace or remove.
#[derive(Debug)]
pub enum Existing {
    /// Nothing.
    Missing,
    /// An empty directory.
    Empty,
    /// A caw auth dir, with its manifest.
    AuthDir(Box<Manifest>),
}

/// Decide whether `dir` may be replaced (by setup) or removed (by teardown).
///
/// Refuses, with [`Error::NotAnAuthDir`] saying what was found, a symlink,
/// a non-directory, a directory holding anything caw does not write, or one
/// whose `manifest.json` is missing or not a valid caw manifest.
pub fn check_replaceable(dir: &Path) -> Result<Existing> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(e) => return Err(fs::with_path(e, dir).into()),
    };
    let not = |reason: String| Error::NotAnAuthDir {
        path: dir.to_path_buf(),
        reason,
    };
    if !meta.is_dir() {
        return Err(not(format!("it is {}", fs::kind_of(meta.file_type()))));
    }
    let names = foreign_entries(dir)?;
    if let Some(reason) = describe_foreign(&names.foreign) {
        return Err(not(reason));
    }
    if names.count == 0 {
        return Ok(Existing::Empty);
    }
    match Manifest::load(dir) {
        Ok(manifest) => Ok(Existing::AuthDir(Box::new(manifest))),
        Err(Error::NoManifest { .. }) => Err(not(format!(
            "it has no `{MANIFEST_FILE}` (it holds only files caw writes: \
             remove it yourself if a setup was interrupted)"
        ))),
        Err(Error::InvalidManifest { field, reason, .. }) => Err(not(format!(
            "its `{MANIFEST_FILE}` is not a caw manifest ({})",
            crate::error::field_reason(&field, &reason)
        ))),
        Err(e) => Err(e),
    }
}

/// Entries of a directory that caw did not write, and how many there are in all.
struct Entries {
    count: usize,
    foreign: Vec<String>,
}

fn foreign_entries(dir: &Path) -> Result<Entries> {
    let mut out = Entries {
        count: 0,
        foreign: Vec::new(),
    };
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        out.count += 1;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry
            .file_type()
            .map_err(|e| fs::with_path(e, &entry.path()))?;
        if let Err(reason) = check_entry(&name, file_type) {
            out.foreign.push(reason);
        }
    }
    out.foreign.sort();
    Ok(out)
}

/// Whether `name` of `file_type` is something caw writes at the top of `A`;
/// `Err` says why not.
fn check_entry(name: &str, file_type: std::fs::FileType) -> std::result::Result<(), String> {
    let wants_dir = if TOP_FILES.contains(&name) || is_atomic_temp(name) {
        false
    } else if is_top_dir(name) || is_dir_temp(name) {
        true
    } else {
        return Err(format!("`{name}` is not something caw writes"));
    };
    match (wants_dir, file_type.is_dir(), file_type.is_file()) {
        (true, true, _) | (false, _, true) => Ok(()),
        (true, ..) => Err(format!(
            "`{name}` is {}, not a directory",
            fs::kind_of(file_type)
        )),
        (false, ..) => Err(format!(
            "`{name}` is {}, not a regular file",
            fs::kind_of(file_type)
        )),
    }
}

/// A directory caw writes at the top of `A`: `bin`, `live`, or a known agent's.
fn is_top_dir(name: &str) -> bool {
    TOP_DIRS.contains(&name) || agents::by_name(name).is_some()
}

/// `.<file>.caw-XXXXXX.tmp`: a temp file of [`fs::write_atomic`] for one of
/// caw's files at the top of `A` (a re-setup writes `manifest.json` and
/// `setup-container.sh` so, the host sync `sync.json`).
pub(crate) fn is_atomic_temp(name: &str) -> bool {
    temp_target(name).is_some_and(|file| TOP_FILES.contains(&file))
}

/// `.<dir>.caw-XXXXXX.tmp`: a directory a re-setup builds inside `A` before
/// renaming it to `<dir>` (a new agent's, `bin`, `live`).
pub(crate) fn is_dir_temp(name: &str) -> bool {
    temp_target(name).is_some_and(is_top_dir)
}

/// The name a caw temp name `.<target>.caw-XXXXXX.tmp` stands in for.
pub(crate) fn temp_target(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (target, random) = rest.rsplit_once(".caw-")?;
    (!target.is_empty() && !random.is_empty() && !random.contains('/')).then_some(target)
}

fn describe_foreign(foreign: &[String]) -> Option<String> {
    match foreign {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!("{first} (and {} more entries)", rest.len())),
    }
}

/// The lock every `setup` of one auth dir holds while it replaces it:
/// `flock(LOCK_EX)` on `.<name>.setup.lock` beside the auth dir, a file that
/// exists only while a setup runs.
///
/// Setups of the same auth dir run one after the other, so one never takes
/// another's temp dir for stale, and a re-setup's live directory cannot be
/// lost to a concurrent one that did not see it.
#[derive(Debug)]
pub(crate) struct SetupLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for SetupLock {
    fn drop(&mut self) {
        // Removed while still locked: a setup waiting on this file finds it
        // gone once it gets the lock, and starts again with a new one.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Take the setup lock of `auth_dir`, waiting for a running setup.
pub(crate) fn lock_setup(auth_dir: &Path) -> Result<SetupLock> {
    let parent = auth_dir.parent().unwrap_or(Path::new("."));
    let path = parent.join(format!(".{}.setup.lock", file_name(auth_dir)));
    let mut said = false;
    loop {
        let file = open_lock_file(&path, auth_dir)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                if !std::mem::replace(&mut said, true) {
                    log::info!(
                        "waiting for another `caw auth setup` of `{}`",
                        auth_dir.display()
                    );
                }
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, errno)| fs::with_path(errno.into(), &path))?
            }
            Err((_, errno)) => return Err(fs::with_path(errno.into(), &path).into()),
        };
        let held = lock.metadata().map_err(|e| fs::with_path(e, &path))?;
        let current = std::fs::symlink_metadata(&path);
        if current.is_ok_and(|m| m.ino() == held.ino() && m.dev() == held.dev()) {
            return Ok(SetupLock { path, _lock: lock });
        }
    }
}

fn open_lock_file(path: &Path, auth_dir: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fs::with_path(e, path))?;
    let meta = file.metadata().map_err(|e| fs::with_path(e, path))?;
    if !meta.is_file() {
        return Err(Error::NotAnAuthDir {
            path: auth_dir.to_path_buf(),
            reason: format!(
                "its setup lock `{}` is {}",
                path.display(),
                fs::kind_of(meta.file_type())
            ),
        });
    }
    Ok(file)
}

/// A new temp dir in `parent` named `<prefix>XXXXXX`, mode 0700.
pub(crate) fn temp_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| fs::with_path(e, parent))?;
    fs::set_mode(dir.path(), 0o700)?;
    Ok(dir)
}

/// The prefixes of setup's temp dirs beside `auth_dir`: `.<name>.new-` and `.<name>.old-`.
pub(crate) fn temp_prefixes(auth_dir: &Path) -> [String; 2] {
    let name = file_name(auth_dir);
    [format!(".{name}.new-"), format!(".{name}.old-")]
}

/// The last component of `auth_dir`, for temp names beside it.
pub(crate) fn file_name(auth_dir: &Path) -> String {
    auth_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth".into())
}

/// The nested tree in a `.old-` temp dir (setup's fallback when the two
/// directories cannot be exchanged in one step).
pub(crate) const OLD_TREE: &str = "auth";

/// Remove the temp dirs killed setups left beside `auth_dir` (they hold
/// copies of credentials), each only when every entry in it is one caw
/// writes. Holding the setup lock, no other setup of `auth_dir` runs, so
/// every such dir is stale. Returns the paths removed; what cannot be
/// removed is logged and left.
pub(crate) fn remove_stale_temp_dirs(auth_dir: &Path, _lock: &SetupLock) -> Vec<PathBuf> {
    let Some(parent) = auth_dir.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let prefixes = temp_prefixes(auth_dir);
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            continue;
        }
        let path = entry.path();
        match remove_if_stale(&path) {
            Ok(true) => {
                log::info!("removed `{}`, left by an interrupted setup", path.display());
                removed.push(path);
            }
            Ok(false) => {}
            Err(reason) => log::warn!(
                "leaving `{}` (left by an interrupted setup?): {reason}",
                path.display()
            ),
        }
    }
    removed
}

/// `Err`: not ours to remove.
fn remove_if_stale(path: &Path) -> std::result::Result<bool, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err(format!("it is {}", fs::kind_of(meta.file_type())));
    }
    let check = |dir: &Path| -> std::result::Result<(), String> {
        let entries = foreign_entries(dir).map_err(|e| e.to_string())?;
        describe_foreign(&entries.foreign).map_or(Ok(()), Err)
    };
    let nested = path.join(OLD_TREE);
    match std::fs::symlink_metadata(&nested) {
        Ok(m) if m.is_dir() => {
            check(&nested)?;
            let others = fs_err::read_dir(path).map_err(|e| e.to_string())?.count();
            if others != 1 {
                return Err(format!("it holds more than `{OLD_TREE}`"));
            }
        }
        _ => check(path)?,
    }
    fs_err::remove_dir_all(path).map_err(|e| e.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"version":1,"host_home":"/h","agents":{}}"#;

    fn refusal(dir: &Path) -> String {
        match check_replaceable(dir) {
            Err(e @ Error::NotAnAuthDir { .. }) => e.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn missing_and_empty_are_replaceable() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("auth");
        assert!(matches!(check_replaceable(&dir), Ok(Existing::Missing)));
        std::fs::create_dir(&dir).unwrap();
        assert!(matches!(check_replaceable(&dir), Ok(Existing::Empty)));
    }

    #[test]
    fn everything_caw_writes_is_accepted() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("auth");
        write(&dir.join(MANIFEST_FILE), MANIFEST);
        for file in [
            "setup-container.sh",
            "bin/caw",
            "live/claude/credentials.json",
            "claude/credentials.json",
            "qwen/oauth_creds.json",
            "sync.log",
            "sync.json",
            ".sync.json.caw-Ab12Cd.tmp",
            ".manifest.json.caw-x.tmp",
        ] {
            write(&dir.join(file), "");
        }
        assert!(matches!(check_replaceable(&dir), Ok(Existing::AuthDir(_))));
    }

    #[test]
    fn a_directory_written_by_caw_0_1_9_is_accepted() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("auth");
        // What `caw auth setup` 0.1.9 writes (checked with scripts/reference-caw.sh).
        let manifest = r#"{"version": 1, "created_at": "2026-01-01T00:00:00+00:00",
            "host_home": "/home/me", "container_home": "/home/playground",
            "mount_point": "/tmp/caw_auth", "agents": {"codex": {"files": [
            {"src": "codex/auth.json", "container_target": ".codex/auth.json",
             "host_original": ".codex/auth.json", "type": "credential",
             "strategy": "bind", "mode": "0600"}]}}}"#;
        write(&dir.join(MANIFEST_FILE), manifest);
        write(&dir.join("setup-container.sh"), "#!/bin/sh\n");
        write(&dir.join("codex/auth.json"), "{}");
        write(&dir.join("codex/config.toml"), "");
        match check_replaceable(&dir) {
            Ok(Existing::AuthDir(m)) => assert_eq!(m.mode, crate::AuthMode::Bind),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anything_else_is_refused_saying_what_was_found() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("auth");
        write(&dir.join(MANIFEST_FILE), MANIFEST);
        std::fs::create_dir(dir.join("node_modules")).unwrap();
        let msg = refusal(&dir);
        assert!(
            msg.ends_with(": `node_modules` is not something caw writes"),
            "{msg}"
        );
        write(&dir.join("package.json"), "{}");
        write(&dir.join(".git/HEAD"), "");
        let msg = refusal(&dir);
        assert!(
            msg.ends_with(": `.git` is not something caw writes (and 2 more entries)"),
            "{msg}"
        );
    }

    #[test]
    fn a_manifest_that_is_not_caw_s_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ext");
        write(
            &dir.join(MANIFEST_FILE),
            r#"{"manifest_version": 3, "name": "An extension", "version": "1.0"}"#,
        );
        let msg = refusal(&dir);
        assert!(
            msg.ends_with("its `manifest.json` is not a caw manifest (field `version` must be 1)"),
            "{msg}"
        );
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        write(&dir.join("claude/credentials.json"), "{}");
        assert!(refusal(&dir).contains("it has no `manifest.json`"));
    }

    #[test]
    fn wrong_kinds_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("auth");
        write(&dir.join(MANIFEST_FILE), MANIFEST);
        write(&dir.join("bin"), "");
        assert!(refusal(&dir).ends_with("`bin` is a regular file, not a directory"));
        std::fs::remove_file(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("claude")).unwrap();
        assert!(refusal(&dir).ends_with("`claude` is a symlink, not a directory"));
        std::fs::remove_file(dir.join("claude")).unwrap();
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join(MANIFEST_FILE))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(refusal(&dir).ends_with("`manifest.json` is a FIFO, not a regular file"));

        let file = root.path().join("file");
        write(&file, "");
        assert!(refusal(&file).ends_with("it is a regular file"));
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        assert!(refusal(&link).ends_with("it is a symlink"));
    }

    #[test]
    fn atomic_temp_names() {
        for ok in [".manifest.json.caw-abc.tmp", ".sync.json.caw-1.tmp"] {
            assert!(is_atomic_temp(ok), "{ok}");
        }
        for bad in [
            ".manifest.json.caw-.tmp",
            ".notes.txt.caw-abc.tmp",
            "manifest.json.caw-abc.tmp",
            ".manifest.json.caw-abc",
        ] {
            assert!(!is_atomic_temp(bad), "{bad}");
        }
    }

    #[test]
    fn resolve_makes_the_path_absolute() {
        let resolved = resolve(Some(Path::new("some/auth"))).unwrap();
        assert!(resolved.is_absolute());
        assert!(resolved.ends_with("some/auth"));
    }

    #[test]
    fn stale_temp_dirs_are_removed_only_when_unused_and_caw_s() {
        let root = tempfile::tempdir().unwrap();
        let auth = root.path().join("auth");
        let stale_new = root.path().join(".auth.new-AAAAAA");
        write(&stale_new.join("claude/credentials.json"), "{}");
        write(&stale_new.join("live/claude/credentials.json"), "{}");
        let stale_old = root.path().join(".auth.old-BBBBBB");
        write(&stale_old.join("auth/manifest.json"), MANIFEST);
        write(&stale_old.join("auth/codex/auth.json"), "{}");
        let empty = root.path().join(".auth.new-CCCCCC");
        std::fs::create_dir(&empty).unwrap();
        let foreign = root.path().join(".auth.new-DDDDDD");
        write(&foreign.join("thesis.tex"), "mine");
        let other = root.path().join(".other.new-EEEEEE");
        write(&other.join("claude/credentials.json"), "{}");
        let lock = lock_setup(&auth).unwrap();
        let mut removed = remove_stale_temp_dirs(&auth, &lock);
        removed.sort();
        let mut expected = vec![stale_new, stale_old, empty];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(
            foreign.join("thesis.tex").exists(),
            "foreign content removed"
        );
        assert!(other.exists(), "another auth dir's temp dir removed");
        assert!(root.path().join(".auth.setup.lock").is_file());
        drop(lock);
        assert!(!root.path().join(".auth.setup.lock").exists());
    }

    #[test]
    fn setups_of_one_auth_dir_take_turns() {
        let root = tempfile::tempdir().unwrap();
        let auth = root.path().join("auth");
        let first = lock_setup(&auth).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let auth = auth.clone();
            std::thread::spawn(move || {
                let _second = lock_setup(&auth).unwrap();
                tx.send(()).unwrap();
            })
        };
        let waited = rx.recv_timeout(std::time::Duration::from_millis(300));
        assert!(waited.is_err(), "a second setup ran beside the first");
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second setup never got its turn");
        waiter.join().unwrap();
        // Another auth dir in the same parent is not held up.
        let _other = lock_setup(&root.path().join("other")).unwrap();
    }
}
