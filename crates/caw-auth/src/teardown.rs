//! `caw auth teardown`: remove an auth dir, and only an auth dir.

use std::path::{Path, PathBuf};

use crate::manifest::Manifest;
use crate::setup::check_replaceable;
use crate::{paths, Error, Result};

/// What to tear down.
#[derive(Debug, Clone, Default)]
pub struct TeardownOptions {
    /// The auth dir; `None` means the default.
    pub auth_dir: Option<PathBuf>,
    /// Remove even when host files are symlinks into the auth dir.
    pub force: bool,
    /// Only say what would be removed.
    pub dry_run: bool,
}

/// What teardown found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TeardownOutcome {
    /// There was nothing at the path.
    Missing(PathBuf),
    /// The auth dir was removed.
    Removed(PathBuf),
    /// Dry run: the auth dir would be removed.
    WouldRemove(PathBuf),
}

/// Remove the auth dir. Host files are never touched.
///
/// Refuses (with [`Error::WouldOrphanSymlinks`]) when a host file named by the
/// manifest is a symlink resolving into the auth dir, the layout caw's older
/// design left, unless `force`. Never removes a directory that is not a caw
/// auth dir (non-empty without `manifest.json`), `force` or not.
pub fn teardown(opts: &TeardownOptions) -> Result<TeardownOutcome> {
    let auth_dir = paths::absolute(&paths::resolve_auth_dir(opts.auth_dir.as_deref())?)?;
    if !check_replaceable(&auth_dir)? {
        return Ok(TeardownOutcome::Missing(auth_dir));
    }
    if !opts.force {
        let links = find_legacy_symlinks(&auth_dir)?;
        if !links.is_empty() {
            return Err(Error::WouldOrphanSymlinks { auth_dir, links });
        }
    }
    if opts.dry_run {
        return Ok(TeardownOutcome::WouldRemove(auth_dir));
    }
    fs_err::remove_dir_all(&auth_dir)?;
    Ok(TeardownOutcome::Removed(auth_dir))
}

/// Host files named by the manifest that are symlinks resolving into `auth_dir`,
/// as `(link, resolved target)` pairs. An empty directory has none.
pub fn find_legacy_symlinks(auth_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let manifest = match Manifest::load(auth_dir) {
        Ok(m) => m,
        Err(Error::NoManifest { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let root = std::fs::canonicalize(auth_dir).unwrap_or_else(|_| auth_dir.to_path_buf());
    let mut links = Vec::new();
    for (_, file) in manifest.files() {
        let host = manifest.host_home.join(&file.host_original);
        let is_link = std::fs::symlink_metadata(&host)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !is_link {
            continue;
        }
        let Some(target) = resolve_link(&host) else {
            continue;
        };
        if target.starts_with(&root) || target.starts_with(auth_dir) {
            links.push((host, target));
        }
    }
    Ok(links)
}

/// Where a symlink points, resolved as far as the file system allows
/// (a dangling link still yields its lexical target).
fn resolve_link(link: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(link) {
        return Some(p);
    }
    let target = std::fs::read_link(link).ok()?;
    let joined = link.parent()?.join(target);
    let parent = joined.parent()?;
    let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    Some(parent.join(joined.file_name()?))
}
