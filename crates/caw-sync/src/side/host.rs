//! [`HostFile`]: the host user's own credential file, which the host sync
//! keeps (trusted: a symlink there is followed).

use std::io::{self, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use caw_auth::fs::with_path;
use caw_auth::fs_at::{self as fsx, TempAt};
use nix::sys::inotify::AddWatchFlags as W;

use super::commit::commit;
use super::{Commit, Fingerprint, Look, WatchPoint, WatchTarget, PARENT_EVENTS};

/// The host user's credential file (trusted: symlinks followed).
#[derive(Debug, Clone)]
pub struct HostFile {
    path: PathBuf,
}

impl HostFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HostFile { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file a write lands in: the path, or a symlink's final target.
    fn target(&self) -> PathBuf {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&self.path)
                .unwrap_or_else(|_| {
                    // A dangling link: its target as written, relative to the link.
                    let to = std::fs::read_link(&self.path).unwrap_or_default();
                    self.path.parent().unwrap_or(Path::new("/")).join(to)
                }),
            _ => self.path.clone(),
        }
    }

    pub(super) fn look(&self) -> io::Result<Look> {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Look::Missing),
            Err(e) => return Err(with_path(e, &self.path)),
        };
        if !file
            .metadata()
            .map_err(|e| with_path(e, &self.path))?
            .is_file()
        {
            return Ok(Look::Unusable);
        }
        Ok(Look::File(
            fsx::read_capped(file).map_err(|e| with_path(e, &self.path))?,
        ))
    }

    /// Temp file + rename next to the real file, keeping its mode and owner.
    pub(super) fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
        let target = self.target();
        let (Some(dir_path), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(with_path(io::ErrorKind::InvalidInput.into(), &target));
        };
        let meta = std::fs::metadata(&target).ok();
        let mode = meta.as_ref().map_or(0o600, |m| m.mode() & 0o7777);
        let dir = fsx::open_dir(dir_path).map_err(|e| with_path(e, dir_path))?;
        let mut tmp = TempAt::create(dir.as_fd(), name, mode).map_err(|e| with_path(e, &target))?;
        if let Some(m) = &meta {
            // Only root can give a file away; anyone else writes as the owner.
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::fchown(&tmp.file, Some(m.uid()), Some(m.gid()))
                    .map_err(|e| with_path(e, &target))?;
            }
        }
        tmp.file
            .write_all(bytes)
            .map_err(|e| with_path(e, &target))?;
        tmp.file.sync_all().map_err(|e| with_path(e, &target))?;
        commit(tmp, dir.as_fd(), name, expect).map_err(|e| with_path(e, &target))
    }

    /// The file's directory (renames are seen there), and the directory of a
    /// symlink's target.
    pub(super) fn watch_points(&self) -> Vec<WatchPoint> {
        let mut out = Vec::new();
        let mut add = |p: &Path| {
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                out.push(WatchPoint {
                    target: WatchTarget::Path(dir.to_path_buf()),
                    mask: PARENT_EVENTS.union(W::IN_ATTRIB),
                    name: Some(name.to_os_string()),
                });
            }
        };
        add(&self.path);
        let target = self.target();
        if target != self.path {
            add(&target);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;
    use crate::side::test_util::fp;

    #[test]
    fn a_host_symlink_is_written_at_its_target_keeping_mode_and_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir(&dotfiles).unwrap();
        let real = dotfiles.join("credentials.json");
        std::fs::write(&real, b"{\"v\":1}").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join(".credentials.json");
        std::os::unix::fs::symlink("dotfiles/credentials.json", &link).unwrap();
        let host = HostFile::new(&link);
        assert_eq!(host.look().unwrap(), Look::File(b"{\"v\":1}".to_vec()));
        let before = std::fs::metadata(&real).unwrap().ino();
        assert_eq!(
            host.replace(b"{\"v\":2}", fp(b"{\"v\":1}")).unwrap(),
            Commit::Done
        );
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let meta = std::fs::metadata(&real).unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"{\"v\":2}");
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_ne!(meta.ino(), before, "not a rename");
        assert_eq!(
            std::fs::read_dir(&dotfiles).unwrap().count(),
            1,
            "temp file left"
        );
    }
}
