//! Directory-relative file operations that never follow a symlink, over
//! `nix`: how caw touches anything below a directory it does not trust (the
//! agent's home, the live directory that containers write). Setup's writes
//! into `live/` and every write of the sync engine go through here.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::credential::MAX_CREDENTIAL_BYTES;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

/// `/proc/self/fd/N`: a path that names exactly the open file or directory.
///
/// For APIs that only take paths (`inotify_add_watch`): the kernel resolves
/// this magic link to the open inode, not by walking names again.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Open a directory by path, following symlinks: only for paths root chose.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Open the directory `name` inside `dir`, refusing a symlink.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Whether an `open_subdir` failure means a symlink or non-directory is in the way
/// (`O_NOFOLLOW | O_DIRECTORY` reports a symlink as `ENOTDIR` or `ELOOP`).
pub fn is_link_or_not_dir(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ELOOP | Errno::ENOTDIR)
    )
}

/// Create the directory `name` inside `dir` (an existing one is fine).
pub fn make_subdir(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What an entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing there.
    Missing,
    /// A symbolic link.
    Symlink,
    /// A regular file with no other hard link.
    File,
    /// Anything else: a directory, FIFO, socket, device, or a hard-linked file.
    Other,
}

/// The kind of `name` inside `dir`, from `fstatat(AT_SYMLINK_NOFOLLOW)`.
pub fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Kind> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        // `nlink_t` is u32 on some targets (aarch64), u64 on x86-64.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => Ok(kind_of(st.st_mode, st.st_nlink as u64)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(Kind::Missing),
        Err(e) => Err(e.into()),
    }
}

fn kind_of(mode: u32, nlink: u64) -> Kind {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFLNK => Kind::Symlink,
        // Another hard link could be any file the writer can link to;
        // reading it as root would carry that file somewhere else.
        SFlag::S_IFREG if nlink <= 1 => Kind::File,
        _ => Kind::Other,
    }
}

/// Whether `name` inside `dir` is a directory (not following a link).
pub fn is_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| {
        SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
    })
}

/// Read `name` inside `dir` if it is a plain file, never through a link and
/// never blocking (a FIFO is `Other`). At most one byte more than the
/// credential cap is read.
pub fn read_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(Kind, Option<Vec<u8>>)> {
    match kind_at(dir, name)? {
        Kind::File => {}
        other => return Ok((other, None)),
    }
    let fd = match nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok((Kind::Missing, None)),
        Err(Errno::ELOOP) => return Ok((Kind::Symlink, None)),
        Err(e) => return Err(e.into()),
    };
    let file = File::from(fd);
    // Checked again on the open file: the entry may have changed since.
    let meta = file.metadata()?;
    match kind_of(meta.mode(), meta.nlink()) {
        Kind::File => Ok((Kind::File, Some(read_capped(file)?))),
        other => Ok((other, None)),
    }
}

/// Read at most one byte more than a credential may hold.
pub fn read_capped(file: File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_CREDENTIAL_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Remove the non-directory entry `name` inside `dir` (never following it).
pub fn remove_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(
        dir,
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )?)
}

/// A temp file caw created next to a target, removed on drop unless renamed.
#[derive(Debug)]
pub struct TempAt<'d> {
    dir: BorrowedFd<'d>,
    name: OsString,
    /// The open file.
    pub file: File,
    done: bool,
}

impl<'d> TempAt<'d> {
    /// Create `.<target>.caw-<unique>.tmp` in `dir` with exactly `mode`.
    pub fn create(dir: BorrowedFd<'d>, target: &OsStr, mode: u32) -> io::Result<TempAt<'d>> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        for _ in 0..16 {
            let unique = format!(
                "{:x}{:x}{:x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            );
            let mut name = OsString::from(".");
            name.push(target);
            name.push(format!(".caw-{unique}.tmp"));
            match nix::fcntl::openat(
                dir,
                name.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            ) {
                Ok(fd) => {
                    let file = File::from(fd);
                    // Exactly `mode`, whatever the umask did.
                    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                    return Ok(TempAt {
                        dir,
                        name,
                        file,
                        done: false,
                    });
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temp file name",
        ))
    }

    /// Rename the temp file over `target` in the same directory.
    pub fn commit(mut self, target: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(self.dir, self.name.as_os_str(), self.dir, target)?;
        self.done = true;
        Ok(())
    }

    /// Rename the temp file to `target` only if nothing is there
    /// (`RENAME_NOREPLACE`): `AlreadyExists` when something is, and
    /// `Unsupported` where the file system cannot tell atomically.
    pub fn commit_new(&mut self, target: &OsStr) -> io::Result<()> {
        let flags = nix::fcntl::RenameFlags::RENAME_NOREPLACE;
        match nix::fcntl::renameat2(self.dir, self.name.as_os_str(), self.dir, target, flags) {
            Ok(()) => {
                self.done = true;
                Ok(())
            }
            Err(e) => Err(unsupported_or(e)),
        }
    }

    /// Swap the temp file with `target` in one step (`RENAME_EXCHANGE`):
    /// afterwards `target` holds the new bytes and the temp file's name
    /// holds whatever was at `target` an instant before, to be checked (and
    /// removed on drop). `Unsupported` where the file system cannot.
    pub fn exchange(&mut self, target: &OsStr) -> io::Result<()> {
        let flags = nix::fcntl::RenameFlags::RENAME_EXCHANGE;
        nix::fcntl::renameat2(self.dir, self.name.as_os_str(), self.dir, target, flags)
            .map_err(unsupported_or)
    }

    /// The temp file's name in its directory.
    pub fn name(&self) -> &OsStr {
        &self.name
    }
}

/// `EINVAL`/`ENOSYS`/`EOPNOTSUPP` from `renameat2` flags mean "not here".
fn unsupported_or(e: Errno) -> io::Error {
    match e {
        Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP => {
            io::Error::new(io::ErrorKind::Unsupported, e.desc())
        }
        e => e.into(),
    }
}

impl Drop for TempAt<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = nix::unistd::unlinkat(
                self.dir,
                self.name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}
