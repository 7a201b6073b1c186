//! The host's side of a pair: a credential file bind-mounted from the host
//! at `M/<src>`.
//!
//! The guard opens it once and keeps the descriptor: every read and write
//! goes to that very inode, the host's, whatever later happens to the names
//! under `M`. Writes are in place (offset 0, then truncate): renaming over a
//! bind-mounted file fails with `EBUSY`, and even where it worked it would
//! cut the link to the host file, so this is the one credential write that
//! does not go through `caw_auth::fs::write_atomic`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use caw_auth::fs::with_path;

use crate::sys;

/// A bind-mounted credential, held open.
#[derive(Debug)]
pub struct MountFile {
    file: File,
    path: PathBuf,
    writable: bool,
}

impl MountFile {
    /// Open `path` for reading and, where the mount allows, writing.
    ///
    /// A read-only mount is accepted: the guard can still carry host
    /// refreshes into the home, and says that the other way is closed.
    pub fn open(path: &Path) -> io::Result<Self> {
        let open = |write: bool| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
                .open(path)
        };
        let (file, writable) = match open(true) {
            Ok(f) => (f, true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EROFS | libc::EACCES | libc::EPERM)
                ) =>
            {
                (open(false).map_err(|e| with_path(e, path))?, false)
            }
            Err(e) => return Err(with_path(e, path)),
        };
        let st = sys::fstat(file.as_fd()).map_err(|e| with_path(e, path))?;
        if sys::file_type(&st) != libc::S_IFREG {
            return Err(with_path(
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
                path,
            ));
        }
        Ok(MountFile {
            file,
            path: path.to_path_buf(),
            writable,
        })
    }

    /// `M/<src>`, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the guard may write to it.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The open descriptor (for watching the inode itself).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The current bytes (at most one more than a credential may hold).
    pub fn read(&self) -> io::Result<Vec<u8>> {
        // Positioned reads: the descriptor's offset is never relied on.
        let mut bytes = Vec::new();
        let mut off = 0u64;
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = self
                .file
                .read_at(&mut chunk, off)
                .map_err(|e| with_path(e, &self.path))?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
            off += n as u64;
            if off > crate::home::MAX_CREDENTIAL_BYTES {
                break;
            }
        }
        Ok(bytes)
    }

    /// Write `bytes` over the file in place, keeping its inode, owner and mode.
    pub fn write_in_place(&self, bytes: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(with_path(
                io::Error::new(io::ErrorKind::PermissionDenied, "mounted read-only"),
                &self.path,
            ));
        }
        // Write first, truncate after: a reader never sees an empty file, only
        // (briefly, when the new token is shorter) the new bytes plus an old tail,
        // which no JSON parser accepts.
        self.file
            .write_all_at(bytes, 0)
            .map_err(|e| with_path(e, &self.path))?;
        self.file
            .set_len(bytes.len() as u64)
            .map_err(|e| with_path(e, &self.path))?;
        self.file
            .sync_data()
            .map_err(|e| with_path(e, &self.path))?;
        Ok(())
    }

    /// How many names the host inode has left; 0 means the host replaced its
    /// file (temp file + rename) and this mount now shows an orphan.
    pub fn links(&self) -> u64 {
        // `nlink_t` is u32 on some targets (aarch64), u64 on x86-64.
        #[allow(clippy::useless_conversion)]
        sys::fstat(self.file.as_fd()).map_or(1, |st| u64::from(st.st_nlink))
    }
}

/// Whether `path` is a mount point in this mount namespace; `None` when
/// `/proc/self/mountinfo` cannot be read, so nobody can tell.
pub fn is_mount_point(path: &Path) -> Option<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let Ok(real) = std::fs::canonicalize(path) else {
        return Some(false);
    };
    let found = mount_points(&info).any(|p| p == real);
    Some(found)
}

/// The mount points (field 5) listed in `/proc/self/mountinfo` text.
fn mount_points(info: &str) -> impl Iterator<Item = PathBuf> + '_ {
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
}

/// Undo the kernel's `\040`-style escapes of space, tab, newline and backslash.
fn unescape_octal(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[test]
    fn writes_keep_inode_mode_and_owner_and_shrink_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        std::fs::write(&path, br#"{"a":"a much longer old token"}"#).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        let m = MountFile::open(&path).unwrap();
        m.write_in_place(br#"{"a":"new"}"#).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"a":"new"}"#);
        assert_eq!(after.ino(), before.ino());
        assert_eq!(after.mode(), before.mode());
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(m.read().unwrap(), br#"{"a":"new"}"#);
        assert_eq!(m.links(), 1);
    }

    #[test]
    fn the_held_inode_survives_a_rename_over_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        std::fs::write(&path, b"{\"v\":1}").unwrap();
        let m = MountFile::open(&path).unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, b"{\"v\":2}").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(m.read().unwrap(), b"{\"v\":1}");
        assert_eq!(m.links(), 0);
    }

    #[test]
    fn symlinks_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(MountFile::open(&link).is_err());
        assert!(MountFile::open(dir.path()).is_err());
    }

    #[test]
    fn mountinfo_fields_are_unescaped() {
        let info = "36 35 98:0 /mnt1 /tmp/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 98:0 / / rw - ext4 /dev/sda rw\n";
        let points: Vec<_> = mount_points(info).collect();
        assert_eq!(points, [PathBuf::from("/tmp/a b"), PathBuf::from("/")]);
        assert_eq!(unescape_octal("x\\134y\\011"), "x\\y\t");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn root_is_a_mount_point_and_a_temp_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"{}").unwrap();
        if Path::new("/proc/self/mountinfo").exists() {
            assert_eq!(is_mount_point(&file), Some(false));
            assert_eq!(is_mount_point(Path::new("/")), Some(true));
        }
    }
}
