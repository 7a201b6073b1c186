//! A re-setup of an existing auth dir, done inside it: `A`, `A/live` and
//! each agent's directory keep their inodes.
//!
//! Running containers bind-mount `A` read-only and `A/live` read-write, and
//! in bind mode each host credential over `A/<agent>/<file>`. Renaming a new
//! tree over `A` would leave them a deleted directory, and replacing or
//! removing a file that is a mount point in a container detaches that
//! mount. So a re-setup writes inside `A`, in three steps:
//!
//! 1. **Stage.** Every new file is written as a temp file beside its target
//!    (`.<name>.caw-XXXXXX.tmp`), a new agent's directory (and `bin/`, and
//!    `live/` when the mode becomes live) as a temp directory in `A`. A
//!    failure removes them all: `A` is as it was.
//! 2. **Commit.** One rename per file or new directory, so every reader sees
//!    a whole old or a whole new file; a credential snapshot that exists is
//!    rewritten where it is (it is the mount target of bind-mode
//!    containers, and nothing reads it). Then `setup-container.sh`, and
//!    `manifest.json` last: until then the old manifest describes files
//!    that all exist.
//! 3. **Prune**, once the new manifest is in place: what it no longer lists
//!    (a dropped agent, a config gone from the host, `bin/`, and `live/`
//!    when the mode becomes bind and no container is attached).
//!
//! Everything else at the top of `A` is left alone: the host sync's
//! `sync.log` and `sync.json` survive a re-setup.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempDir};

use super::Staged;
use crate::auth_dir::{self, BIN_DIR, LIVE_DIR};
use crate::bundle::{BUNDLED_BINARY, SETUP_SCRIPT};
use crate::manifest::{AuthMode, Manifest, MANIFEST_FILE};
use crate::{agents, fs, Result};

/// The new content of an auth dir.
pub(super) struct Snapshot<'a> {
    pub manifest: &'a Manifest,
    pub staged: &'a [Staged],
    /// `bin/caw`'s bytes, when one is bundled.
    pub binary: Option<&'a [u8]>,
}

/// One staged change, applied by [`Plan::commit_files`].
enum Change {
    /// A temp file renamed over its target.
    File { tmp: NamedTempFile, target: PathBuf },
    /// A temp directory renamed to its (missing) target.
    Dir { tmp: TempDir, target: PathBuf },
    /// An existing credential snapshot, rewritten where it is.
    InPlace {
        target: PathBuf,
        bytes: Vec<u8>,
        mode: u32,
    },
}

/// Everything staged in `A`, not yet visible under its real names. Dropped
/// uncommitted, it removes its temps.
pub(super) struct Plan {
    changes: Vec<Change>,
    script: NamedTempFile,
    manifest: NamedTempFile,
}

/// Remove the temp entries a killed re-setup left inside `auth_dir` (the
/// caller holds the setup lock, so none is in use): temp directories and
/// temp files of `manifest.json` and `setup-container.sh` at the top, and
/// caw temp files in the agents' directories and `bin/`. The host sync's
/// temp file of `sync.json` and anything in `live/` are not setup's.
pub(super) fn remove_stale_temps(auth_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(auth_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let stale = if kind.is_dir() && auth_dir::is_dir_temp(&name) {
            std::fs::remove_dir_all(&path)
        } else if kind.is_file()
            && matches!(
                auth_dir::temp_target(&name),
                Some(MANIFEST_FILE | SETUP_SCRIPT)
            )
        {
            std::fs::remove_file(&path)
        } else {
            if kind.is_dir() && name != LIVE_DIR {
                remove_temp_files_in(&path);
            }
            continue;
        };
        match stale {
            Ok(()) => log::info!("removed `{}`, left by an interrupted setup", path.display()),
            Err(e) => log::warn!("cannot remove `{}`: {e}", path.display()),
        }
    }
}

fn remove_temp_files_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if auth_dir::temp_target(&name).is_some() && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Step 1: write everything new beside its target. `fresh_live`: also a
/// `live/` holding the host's credentials (the mode becomes live).
pub(super) fn stage(auth_dir: &Path, new: &Snapshot<'_>, fresh_live: bool) -> Result<Plan> {
    let mut changes = Vec::new();
    let mut agent_dirs: Vec<(&str, Vec<&Staged>)> = Vec::new();
    for file in new.staged {
        match agent_dirs.iter_mut().find(|(a, _)| *a == file.agent) {
            Some((_, files)) => files.push(file),
            None => agent_dirs.push((file.agent, vec![file])),
        }
    }
    for (agent, files) in &agent_dirs {
        stage_agent(auth_dir, agent, files, &mut changes)?;
    }
    if let Some(bytes) = new.binary {
        let bin = auth_dir.join(BIN_DIR);
        if is_real_dir(&bin) {
            changes.push(Change::File {
                tmp: temp_file(&bin, "caw", bytes, 0o755)?,
                target: auth_dir.join(BUNDLED_BINARY),
            });
        } else {
            let tmp = temp_dir(auth_dir, BIN_DIR, 0o755)?;
            fs::write_new(&tmp.path().join("caw"), bytes, 0o755)?;
            changes.push(Change::Dir { tmp, target: bin });
        }
    }
    if fresh_live {
        let tmp = temp_dir(auth_dir, LIVE_DIR, 0o700)?;
        for file in new.staged.iter().filter(|f| f.credential) {
            super::write_file(&tmp.path().join(&file.src), &file.bytes, 0o600)?;
        }
        changes.push(Change::Dir {
            tmp,
            target: auth_dir.join(LIVE_DIR),
        });
    }
    let script = crate::bundle::setup_script(new.manifest);
    Ok(Plan {
        changes,
        script: temp_file(auth_dir, SETUP_SCRIPT, script.as_bytes(), 0o755)?,
        manifest: temp_file(
            auth_dir,
            MANIFEST_FILE,
            new.manifest.to_json().as_bytes(),
            0o600,
        )?,
    })
}

/// One agent's files: into its existing directory, each beside its target,
/// or as a new directory.
fn stage_agent(
    auth_dir: &Path,
    agent: &str,
    files: &[&Staged],
    changes: &mut Vec<Change>,
) -> Result<()> {
    let dir = auth_dir.join(agent);
    if !is_real_dir(&dir) {
        let tmp = temp_dir(auth_dir, agent, 0o700)?;
        for file in files {
            // `src` is `<agent>/<file>`: the temp directory stands in for `<agent>`.
            let rel = Path::new(&file.src).strip_prefix(agent).map_err(|_| {
                fs::with_path(
                    std::io::Error::other("not below its agent's directory"),
                    Path::new(&file.src),
                )
            })?;
            super::write_file(&tmp.path().join(rel), &file.bytes, file.mode.bits())?;
        }
        changes.push(Change::Dir { tmp, target: dir });
        return Ok(());
    }
    for file in files {
        let target = auth_dir.join(&file.src);
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            continue;
        };
        let existing = std::fs::symlink_metadata(&target);
        if file.credential && existing.as_ref().is_ok_and(|m| m.is_file()) {
            changes.push(Change::InPlace {
                target,
                bytes: file.bytes.clone(),
                mode: file.mode.bits(),
            });
            continue;
        }
        fs::create_dir_all(parent, 0o700)?;
        let name = name.to_string_lossy();
        changes.push(Change::File {
            tmp: temp_file(parent, &name, &file.bytes, file.mode.bits())?,
            target,
        });
    }
    Ok(())
}

impl Plan {
    /// Step 2, but the manifest: every new file and directory under its real
    /// name, in order. On a failure, what is not yet renamed is removed; the
    /// old manifest still describes files that all exist.
    pub(super) fn commit_files(&mut self) -> Result<()> {
        for change in std::mem::take(&mut self.changes) {
            match change {
                Change::File { tmp, target } => {
                    tmp.persist(&target)
                        .map_err(|e| fs::with_path(e.error, &target))?;
                }
                Change::Dir { tmp, target } => {
                    fs_err::rename(tmp.path(), &target)?;
                    let _ = tmp.keep();
                }
                Change::InPlace {
                    target,
                    bytes,
                    mode,
                } => rewrite(&target, &bytes, mode)?,
            }
        }
        Ok(())
    }

    /// The rest of step 2: `setup-container.sh`, then `manifest.json`.
    pub(super) fn commit_manifest(self, auth_dir: &Path) -> Result<()> {
        let script = auth_dir.join(SETUP_SCRIPT);
        self.script
            .persist(&script)
            .map_err(|e| fs::with_path(e.error, &script))?;
        let manifest = auth_dir.join(MANIFEST_FILE);
        self.manifest
            .persist(&manifest)
            .map_err(|e| fs::with_path(e.error, &manifest))?;
        fs_err::File::open(auth_dir)?.sync_all()?;
        Ok(())
    }
}

/// Step 3: remove what `new` no longer has. Failures are logged, not
/// returned: the new auth dir is complete without it.
pub(super) fn prune(auth_dir: &Path, new: &Snapshot<'_>) {
    let Ok(entries) = std::fs::read_dir(auth_dir) else {
        return;
    };
    let wanted: BTreeSet<&str> = new.staged.iter().map(|f| f.src.as_str()).collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if name == BIN_DIR && new.binary.is_none() {
            remove(&path);
        } else if name == LIVE_DIR && new.manifest.mode == AuthMode::Bind {
            prune_live(&path);
        } else if agents::by_name(&name).is_some() {
            if !new.manifest.agents.iter().any(|(a, _)| *a == name) {
                remove(&path);
                continue;
            }
            let Ok(files) = std::fs::read_dir(&path) else {
                continue;
            };
            for file in files.flatten() {
                let src = format!("{name}/{}", file.file_name().to_string_lossy());
                if !wanted.contains(src.as_str()) {
                    remove(&file.path());
                }
            }
        }
    }
}

/// The mode became bind: `live/` goes, unless containers still use it
/// (they then keep sharing logins through it, and the host sync that runs
/// keeps serving it until it goes idle).
fn prune_live(live: &Path) {
    match crate::attached::attached(live) {
        None => remove(live),
        Some(attached) => log::warn!(
            "kept `{}`: {} container(s) still use it ({attached}); they keep their logins \
             until they stop",
            live.display(),
            attached.count()
        ),
    }
}

fn remove(path: &Path) {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = removed {
        log::warn!("cannot remove `{}`: {e}", path.display());
    }
}

/// A directory, not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// `.<name>.caw-XXXXXX.tmp` in `dir`, holding `bytes` with exactly `mode`, flushed.
fn temp_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.caw-"))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| fs::with_path(e, dir))?;
    let path = tmp.path().to_path_buf();
    let file = tmp.as_file_mut();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fs::with_path(e, &path))?;
    file.write_all(bytes).map_err(|e| fs::with_path(e, &path))?;
    file.sync_all().map_err(|e| fs::with_path(e, &path))?;
    Ok(tmp)
}

/// `.<name>.caw-XXXXXX.tmp/` in `dir`, with exactly `mode`.
fn temp_dir(dir: &Path, name: &str, mode: u32) -> Result<TempDir> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.caw-"))
        .suffix(".tmp")
        .tempdir_in(dir)
        .map_err(|e| fs::with_path(e, dir))?;
    fs::set_mode(tmp.path(), mode)?;
    Ok(tmp)
}

/// Overwrite the regular file `path` with `bytes`, keeping its inode: it
/// may be a mount point in a bind-mode container, where a rename over it
/// would detach the host file mounted there.
fn rewrite(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let at = |e| fs::with_path(e, path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(at)?;
    if !file.metadata().map_err(at)?.is_file() {
        return Err(at(std::io::Error::other("it is not a regular file")).into());
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(at)?;
    file.write_all(bytes).map_err(at)?;
    file.set_len(bytes.len() as u64).map_err(at)?;
    file.sync_all().map_err(at)?;
    Ok(())
}
