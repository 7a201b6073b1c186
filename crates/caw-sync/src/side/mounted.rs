//! [`MountedFile`]: a host file bind-mounted into a container (`bind`
//! mode), written in place through a descriptor held from the start.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use caw_auth::credential::MAX_CREDENTIAL_BYTES;
use caw_auth::fs::with_path;

use super::{Commit, Fingerprint, Look, WatchPoint, WatchTarget, FILE_EVENTS};

/// A host file bind-mounted into the container, held open.
#[derive(Debug)]
pub struct MountedFile {
    file: File,
    path: PathBuf,
    writable: bool,
    orphan_said: std::sync::atomic::AtomicBool,
}

impl MountedFile {
    /// Open `path` for reading and, where the mount allows, writing.
    ///
    /// A read-only mount is accepted: host refreshes still reach the home.
    pub fn open(path: &Path) -> io::Result<Self> {
        let open = |write: bool| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
                .open(path)
        };
        let (file, writable) = match open(true) {
            Ok(f) => (f, true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                (open(false).map_err(|e| with_path(e, path))?, false)
            }
            Err(e) => return Err(with_path(e, path)),
        };
        if !file.metadata().map_err(|e| with_path(e, path))?.is_file() {
            return Err(with_path(
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
                path,
            ));
        }
        Ok(MountedFile {
            file,
            path: path.to_path_buf(),
            writable,
            orphan_said: Default::default(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writes can reach the host.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// How many names the host inode has left; 0: the host replaced its file
    /// by a rename, and this mount shows an orphan.
    pub fn links(&self) -> u64 {
        self.file.metadata().map_or(1, |m| m.nlink())
    }

    pub(super) fn look(&self) -> io::Result<Look> {
        if self.links() == 0
            && !self
                .orphan_said
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            log::warn!(
                "the host replaced the file mounted at `{}` (a rename): this container no longer \
                 sees it; restart the container to pick up the host's login (live mode, the \
                 default of `caw auth setup`, does not have this problem)",
                self.path.display()
            );
        }
        // Positioned reads: the descriptor's offset is never relied on.
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = self
                .file
                .read_at(&mut chunk, bytes.len() as u64)
                .map_err(|e| with_path(e, &self.path))?;
            if n == 0 || bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
        }
        Ok(Look::File(bytes))
    }

    /// In place, keeping the host file's inode, owner and mode.
    pub(super) fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
        if !self.writable {
            return Err(with_path(
                io::Error::new(io::ErrorKind::PermissionDenied, "mounted read-only"),
                &self.path,
            ));
        }
        if self.look()?.fingerprint() != expect {
            return Ok(Commit::Changed);
        }
        // Write first, truncate after: a reader never sees an empty file.
        self.file
            .write_all_at(bytes, 0)
            .map_err(|e| with_path(e, &self.path))?;
        self.file
            .set_len(bytes.len() as u64)
            .map_err(|e| with_path(e, &self.path))?;
        self.file
            .sync_data()
            .map_err(|e| with_path(e, &self.path))?;
        Ok(Commit::Done)
    }

    pub(super) fn watch_points(&self) -> Vec<WatchPoint> {
        match self.file.try_clone() {
            Ok(f) => vec![WatchPoint {
                target: WatchTarget::Fd(f.into()),
                mask: FILE_EVENTS,
                name: None,
            }],
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::side::test_util::fp;

    #[test]
    fn a_mounted_file_keeps_its_inode_and_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        std::fs::write(&path, br#"{"a":"a much longer old token"}"#).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        let m = MountedFile::open(&path).unwrap();
        let old = fp(br#"{"a":"a much longer old token"}"#);
        assert_eq!(m.replace(br#"{"a":"new"}"#, old).unwrap(), Commit::Done);
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"a":"new"}"#);
        assert_eq!((after.ino(), after.mode()), (before.ino(), before.mode()));
        // The held inode survives a rename over its name, and says so.
        std::fs::write(dir.path().join("tmp"), b"{}").unwrap();
        std::fs::rename(dir.path().join("tmp"), &path).unwrap();
        assert_eq!(m.look().unwrap(), Look::File(br#"{"a":"new"}"#.to_vec()));
        assert_eq!(m.links(), 0);
        assert!(MountedFile::open(dir.path()).is_err());
    }
}
