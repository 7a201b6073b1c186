//! `caw auth teardown`: remove an auth dir, and only an auth dir.

use std::path::{Path, PathBuf};

use crate::auth_dir::{self, Existing};
use crate::manifest::Manifest;
use crate::{trusted, Error, Result};

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
/// Refuses (with [`Error::WouldOrphanSymlinks`]) when a host file of a
/// managed agent is a symlink resolving into the auth dir, the layout caw's
/// older design left, unless `force`. Never removes a directory that is not
/// a caw auth dir (see [`auth_dir::check_replaceable`]), `force` or not; an
/// empty directory is removed.
pub fn teardown(opts: &TeardownOptions) -> Result<TeardownOutcome> {
    let auth_dir = auth_dir::resolve(opts.auth_dir.as_deref())?;
    let manifest = match auth_dir::check_replaceable(&auth_dir)? {
        Existing::Missing => return Ok(TeardownOutcome::Missing(auth_dir)),
        Existing::Empty => None,
        Existing::AuthDir(manifest) => Some(manifest),
    };
    if let (false, Some(manifest)) = (opts.force, &manifest) {
        let links = legacy_symlinks(&auth_dir, manifest);
        if !links.is_empty() {
            return Err(Error::WouldOrphanSymlinks { auth_dir, links });
        }
    }
    if opts.dry_run {
        return Ok(TeardownOutcome::WouldRemove(auth_dir));
    }
    // Its sync first: it would otherwise see the auth dir go and exit by itself.
    if let Some(pid) = crate::host_sync::stop(&auth_dir)? {
        log::info!("stopped the host sync (pid {pid})");
    }
    fs_err::remove_dir_all(&auth_dir)?;
    Ok(TeardownOutcome::Removed(auth_dir))
}

/// Host files of the agents the manifest lists that are symlinks resolving
/// into `auth_dir`, as `(link, resolved target)` pairs. An empty directory
/// has none. Only the registry's paths are looked at, whatever the manifest
/// names.
pub fn find_legacy_symlinks(auth_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    match Manifest::load(auth_dir) {
        Ok(m) => Ok(legacy_symlinks(auth_dir, &m)),
        Err(Error::NoManifest { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn legacy_symlinks(auth_dir: &Path, manifest: &Manifest) -> Vec<(PathBuf, PathBuf)> {
    let root = std::fs::canonicalize(auth_dir).unwrap_or_else(|_| auth_dir.to_path_buf());
    let mut links = Vec::new();
    for host in trusted::host_files(manifest) {
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
    links
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
