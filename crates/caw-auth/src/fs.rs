//! File writes with explicit modes: every credential and auth-dir file goes through here.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Owner to give a file, as numeric ids (`None` keeps the writer's).
pub type Owner = Option<(u32, u32)>;

/// Replace `path` by a file holding `bytes`, atomically.
///
/// The bytes go to a temp file in the same directory whose mode (and owner,
/// when given) is set through the open handle before anything is written, so
/// umask never applies and no reader ever sees a partial file or a wider mode.
/// The temp file is then renamed over `path`; if `path` is a symlink, the
/// link itself is replaced and its target is left alone.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: Owner) -> std::io::Result<()> {
    write_atomic_impl(path, bytes, mode, owner, true)
}

/// [`write_atomic`] without the `fsync` before the rename.
///
/// For a copy that is rebuilt from elsewhere after a crash (the container
/// home's credential, restored from the bind-mounted host file): readers
/// still never see a partial file or a wider mode, and the write takes
/// microseconds instead of the milliseconds a flush to disk can cost.
pub fn write_atomic_unsynced(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
) -> std::io::Result<()> {
    write_atomic_impl(path, bytes, mode, owner, false)
}

fn write_atomic_impl(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
    sync: bool,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.caw-"))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| with_path(e, dir))?;
    let file = tmp.as_file_mut();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, path))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&*file, Some(uid), Some(gid)).map_err(|e| with_path(e, path))?;
    }
    file.write_all(bytes).map_err(|e| with_path(e, path))?;
    if sync {
        file.sync_all().map_err(|e| with_path(e, path))?;
    }
    tmp.persist(path).map_err(|e| with_path(e.error, path))?;
    Ok(())
}

/// Create a new file (it must not exist) with `bytes` and exactly `mode`.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| with_path(e, path))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, path))?;
    file.write_all(bytes).map_err(|e| with_path(e, path))?;
    file.sync_all().map_err(|e| with_path(e, path))?;
    Ok(())
}

/// Create `path` and any missing parents, each new one with exactly `mode`.
///
/// Directories that already exist keep their mode.
pub fn create_dir_all(path: &Path, mode: u32) -> std::io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    for dir in missing.into_iter().rev() {
        match std::fs::create_dir(dir) {
            Ok(()) => set_mode(dir, mode)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(with_path(e, dir)),
        }
    }
    Ok(())
}

/// Set `path`'s mode exactly, whatever the umask did.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(e, path))
}

/// Swap two existing paths in one step (Linux `renameat2(RENAME_EXCHANGE)`).
///
/// Returns `Ok(false)` where the kernel or file system cannot do it, so the
/// caller can fall back to two renames.
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(with_path(e.into(), a)),
    }
}

/// Why a file that must be a small regular file was not read.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// It could not be opened or read (missing, no permission, …); the
    /// message names the path.
    Io(std::io::Error),
    /// It is not a regular file: `"a directory"`, `"a FIFO"`, `"a symlink"`, ….
    NotRegular(&'static str),
    /// It is larger than the cap (in bytes).
    TooLarge(u64),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge(cap) => write!(f, "it is larger than {cap} bytes"),
        }
    }
}

/// Read `path` when it is a regular file of at most `cap` bytes.
///
/// Never blocks and never follows a symlink: the file is opened with
/// `O_NONBLOCK | O_NOFOLLOW` and checked with `fstat` before a byte is
/// read, so a FIFO, a device or a link in its place is refused at once.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    open_and_read(path, cap, libc::O_NONBLOCK | libc::O_NOFOLLOW)
}

/// [`read_regular`], but a symlink is followed: for the user's own files,
/// such as a host credential a dotfile manager links into place.
pub fn read_regular_following(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    open_and_read(path, cap, libc::O_NONBLOCK)
}

fn open_and_read(path: &Path, cap: u64, flags: i32) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path);
    match file {
        Ok(file) => read_regular_file(file, cap).map_err(|e| match e {
            ReadError::Io(e) => ReadError::Io(with_path(e, path)),
            other => other,
        }),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(ReadError::NotRegular("a symlink")),
        Err(e) => Err(ReadError::Io(with_path(e, path))),
    }
}

/// Read an open file when it is a regular file of at most `cap` bytes.
pub fn read_regular_file(mut file: std::fs::File, cap: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge(cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        // It grew while we read it.
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// What a file type is, for messages: "a directory", "a FIFO", ….
pub fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symlink"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Attach the path to an error from a std call, the way `fs-err` does.
pub fn with_path(err: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(err.kind(), format!("{err} (path: `{}`)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn write_atomic_sets_mode_despite_umask_and_replaces_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        std::fs::write(&path, "old").unwrap();
        let before = std::fs::metadata(&path).unwrap().ino();
        write_atomic(&path, b"new", 0o600, None).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_ne!(meta.ino(), before);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        write_atomic(&path, b"wide", 0o644, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }

    #[test]
    fn write_atomic_replaces_a_symlink_without_touching_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("cred.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"{}", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_new(&path, b"a", 0o644).unwrap();
        let err = write_new(&path, b"b", 0o644).unwrap_err();
        assert!(err.to_string().contains("path: `"), "{err}");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
    }

    #[test]
    fn read_regular_refuses_fifos_links_and_big_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Nobody writes the FIFO: a plain open would block here for ever.
        assert!(matches!(
            read_regular(&fifo, 10),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, "12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        assert!(matches!(
            read_regular(&file, 4),
            Err(ReadError::TooLarge(4))
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read_regular(&link, 10),
            Err(ReadError::NotRegular("a symlink"))
        ));
        assert_eq!(read_regular_following(&link, 10).unwrap(), b"12345");
        let fifo_link = dir.path().join("fifo-link");
        std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
        assert!(matches!(
            read_regular_following(&fifo_link, 10),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_regular(dir.path(), 10),
            Err(ReadError::NotRegular("a directory"))
        ));
        match read_regular(&dir.path().join("missing"), 10) {
            Err(ReadError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                assert!(e.to_string().contains("missing"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exchange_swaps_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x"), "").unwrap();
        let (ino_a, ino_b) = (inode(&a), inode(&b));
        let swapped = exchange(&a, &b).unwrap();
        if cfg!(target_os = "linux") {
            // ext4, tmpfs, btrfs and xfs all support RENAME_EXCHANGE; a
            // `false` here means setup silently takes its two-rename path.
            assert!(
                swapped,
                "RENAME_EXCHANGE is not supported in `{}`",
                dir.path().display()
            );
        }
        if swapped {
            assert!(b.join("x").exists() && !a.join("x").exists());
            assert_eq!((inode(&a), inode(&b)), (ino_b, ino_a));
        } else {
            assert_eq!((inode(&a), inode(&b)), (ino_a, ino_b), "nothing moved");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn exchange_of_a_missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&b).unwrap();
        let err = exchange(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(err.to_string().contains(&a.display().to_string()), "{err}");
    }

    fn inode(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }
}
