//! The agent's side of a pair: files under the container home `C`, reached
//! without ever following a symlink below `C`.
//!
//! The guard runs as root and the home belongs to the agent user, who can
//! plant symlinks anywhere in it. So every path below `C` is walked one
//! component at a time with `O_NOFOLLOW`, and the file is read and replaced
//! relative to the directory fd that walk ends on. A symlink where a
//! directory should be stops the walk ([`SideState::Unusable`]: the guard
//! leaves it alone and says so); a symlink where the credential should be is
//! never read and is replaced by a regular file (rename replaces the link
//! itself, not its target).

use std::ffi::{OsStr, OsString};
use std::io::{self, Read as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use caw_auth::fs::with_path;

use crate::decide::SideState;
use crate::sys;
use crate::{Error, Result};

/// Bytes read at most from a credential; anything larger is not one.
pub const MAX_CREDENTIAL_BYTES: u64 = 1 << 20;

/// Mode of directories the guard creates below the home: they hold logins.
const DIR_MODE: u32 = 0o700;

/// Where the walk to a file's directory ended.
#[derive(Debug)]
enum Walk {
    /// The parent directory, opened without following links.
    Found(OwnedFd),
    /// A component does not exist (and was not to be created).
    Missing,
    /// A component is a symlink or not a directory.
    Blocked(String),
}

/// The container home, owned by the agent user.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    owner: (u32, u32),
}

/// One directory on the way to a file, for watching.
#[derive(Debug)]
pub struct ChainLink {
    /// The directory, opened without following links.
    pub dir: OwnedFd,
    /// The entry in it that leads to (or is) the file.
    pub child: OsString,
    /// Whether `child` is the file itself (so content events matter here).
    pub is_parent: bool,
}

impl Home {
    /// The home at `root`, whose new files and directories belong to `owner`.
    ///
    /// `root` itself is trusted (root chose it) and may be a symlink.
    pub fn new(root: impl Into<PathBuf>, owner: (u32, u32)) -> Self {
        Home {
            root: root.into(),
            owner,
        }
    }

    /// `C/rel`, for messages.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Split `rel` (a validated manifest path) into directories and file name.
    fn split(rel: &str) -> (Vec<&OsStr>, &OsStr) {
        let mut parts: Vec<&OsStr> = rel.split('/').map(OsStr::new).collect();
        let name = parts.pop().unwrap_or_default();
        (parts, name)
    }

    fn walk(&self, rel: &str, create: bool) -> io::Result<Walk> {
        let (dirs, _) = Self::split(rel);
        let mut cur = match sys::open_dir(&self.root) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(Walk::Missing),
            Err(e) => return Err(with_path(e, &self.root)),
        };
        let mut at = self.root.clone();
        for part in dirs {
            at.push(part);
            let flags = libc::O_RDONLY | libc::O_DIRECTORY;
            let next = match sys::openat(cur.as_fd(), part, flags) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    match sys::mkdirat(cur.as_fd(), part, DIR_MODE) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(with_path(e, &at)),
                    }
                    // Opened again with O_NOFOLLOW: if the user swapped in a
                    // link meanwhile, this fails instead of following it.
                    let fd =
                        sys::openat(cur.as_fd(), part, flags).map_err(|e| blocked_or(e, &at))?;
                    // Owner and mode through the handle: not left to umask.
                    sys::fchown_fchmod(fd.as_fd(), self.owner, DIR_MODE)
                        .map_err(|e| with_path(e, &at))?;
                    fd
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Walk::Missing),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    // O_NOFOLLOW | O_DIRECTORY reports a symlink as ENOTDIR: ask which.
                    let link = sys::lstatat(cur.as_fd(), part)
                        .is_ok_and(|st| sys::file_type(&st) == libc::S_IFLNK);
                    let what = if link { "a symlink" } else { "not a directory" };
                    return Ok(Walk::Blocked(format!("`{}` is {what}", at.display())));
                }
                Err(e) => return Err(with_path(e, &at)),
            };
            cur = next;
        }
        Ok(Walk::Found(cur))
    }

    /// The directories from `C` down to the file's parent, each with the
    /// entry that leads on; stops at the first missing or blocked one (whose
    /// name is still listed, so its creation can be noticed).
    pub fn chain(&self, rel: &str) -> Vec<ChainLink> {
        let (dirs, name) = Self::split(rel);
        let mut out = Vec::new();
        let Ok(mut cur) = sys::open_dir(&self.root) else {
            return out;
        };
        for part in dirs {
            let next = sys::openat(cur.as_fd(), part, libc::O_RDONLY | libc::O_DIRECTORY);
            out.push(ChainLink {
                dir: cur,
                child: part.to_os_string(),
                is_parent: false,
            });
            match next {
                Ok(fd) => cur = fd,
                Err(_) => return out,
            }
        }
        out.push(ChainLink {
            dir: cur,
            child: name.to_os_string(),
            is_parent: true,
        });
        out
    }

    /// Read `C/rel` for `agent`, never through a link.
    ///
    /// Returns the state and, for a regular file, its bytes.
    pub fn read(&self, rel: &str, agent: &str) -> io::Result<(SideState, Option<Vec<u8>>)> {
        let dir = match self.walk(rel, false)? {
            Walk::Found(dir) => dir,
            Walk::Missing => return Ok((SideState::Missing, None)),
            Walk::Blocked(why) => {
                log::debug!("[credential-guard] {why}; not following it");
                return Ok((SideState::Unusable, None));
            }
        };
        let (_, name) = Self::split(rel);
        let st = match sys::lstatat(dir.as_fd(), name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((SideState::Missing, None)),
            Err(e) => return Err(with_path(e, &self.path(rel))),
        };
        if let Some(state) = not_plain(&st) {
            return Ok((state, None));
        }
        let fd = match sys::openat(
            dir.as_fd(),
            name,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        ) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((SideState::Missing, None)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Ok((SideState::Symlink, None))
            }
            Err(e) => return Err(with_path(e, &self.path(rel))),
        };
        // Checked again on the open file: the entry may have changed since lstat.
        let st = sys::fstat(fd.as_fd()).map_err(|e| with_path(e, &self.path(rel)))?;
        if let Some(state) = not_plain(&st) {
            return Ok((state, None));
        }
        let bytes =
            read_capped(std::fs::File::from(fd)).map_err(|e| with_path(e, &self.path(rel)))?;
        let state = match bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
            true => SideState::Incomplete,
            false => SideState::of_bytes(agent, &bytes),
        };
        Ok((state, Some(bytes)))
    }

    /// Replace `C/rel` by a file holding `bytes`: a temp file in the same
    /// directory, owned by the agent user with `mode`, renamed into place
    /// (not flushed to disk first: see below).
    ///
    /// Missing directories are created (mode 0700, owned by the agent user).
    /// A symlink at `C/rel` is replaced, never followed; a symlink on the way
    /// there is an error.
    pub fn write(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let path = self.path(rel);
        if !self.root.exists() {
            self.create_root()?;
        }
        let dir = match self.walk(rel, true)? {
            Walk::Found(dir) => dir,
            Walk::Blocked(reason) => return Err(Error::UnsafeHomePath { path, reason }),
            Walk::Missing => {
                return Err(Error::Io(with_path(io::ErrorKind::NotFound.into(), &path)));
            }
        };
        let (_, name) = Self::split(rel);
        // `/proc/self/fd/N` is the directory the walk opened, not a name the
        // user can redirect, so the one atomic-write helper can do the rest.
        // Unsynced: the home copy is rebuilt from the host file by the next
        // setup, and a flush to disk would be most of a sync's latency.
        let target = sys::fd_path(dir.as_fd()).join(name);
        caw_auth::fs::write_atomic_unsynced(&target, bytes, mode, Some(self.owner)).map_err(
            |e| {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("cannot write `{}`: {e}", path.display()),
                ))
            },
        )?;
        Ok(())
    }

    /// Create the home itself (and missing parents, root's, 0755): the user's, 0700.
    fn create_root(&self) -> Result<()> {
        if let Some(parent) = self.root.parent() {
            caw_auth::fs::create_dir_all(parent, 0o755)?;
        }
        match std::fs::create_dir(&self.root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(with_path(e, &self.root).into()),
        }
        let fd = sys::open_dir(&self.root).map_err(|e| with_path(e, &self.root))?;
        sys::fchown_fchmod(fd.as_fd(), self.owner, DIR_MODE)
            .map_err(|e| with_path(e, &self.root))?;
        Ok(())
    }
}

/// The state of an entry that must not be read, or `None` for a plain file.
fn not_plain(st: &libc::stat) -> Option<SideState> {
    match sys::file_type(st) {
        libc::S_IFLNK => Some(SideState::Symlink),
        libc::S_IFREG if st.st_nlink <= 1 => None,
        // Another hard link could be any file the user can link to; reading
        // it as root would carry it to the host.
        _ => Some(SideState::Unusable),
    }
}

/// Read at most one byte more than a credential may hold.
fn read_capped(file: std::fs::File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_CREDENTIAL_BYTES + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn blocked_or(e: io::Error, at: &Path) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
            e.kind(),
            format!(
                "`{}` changed into a symlink while being created",
                at.display()
            ),
        ),
        _ => with_path(e, at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    const CRED: &[u8] = br#"{"claudeAiOauth":{"expiresAt":1700000000000}}"#;

    fn me() -> (u32, u32) {
        // SAFETY: plain syscalls that cannot fail.
        unsafe { (libc::geteuid(), libc::getegid()) }
    }

    #[test]
    fn writes_create_private_parents_and_set_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("home"), me());
        home.write(".claude/.credentials.json", CRED, 0o600)
            .unwrap();
        let file = dir.path().join("home/.claude/.credentials.json");
        assert_eq!(std::fs::read(&file).unwrap(), CRED);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        let parent = std::fs::metadata(dir.path().join("home/.claude")).unwrap();
        assert_eq!(parent.mode() & 0o777, 0o700);
        let (state, bytes) = home.read(".claude/.credentials.json", "claude").unwrap();
        assert!(matches!(state, SideState::Valid(_)));
        assert_eq!(bytes.unwrap(), CRED);
    }

    #[test]
    fn a_symlinked_credential_is_never_read_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("elsewhere.json");
        std::fs::write(&secret, CRED).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.claude")).unwrap();
        let link = dir.path().join("home/.claude/.credentials.json");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let home = Home::new(dir.path().join("home"), me());
        let (state, bytes) = home.read(".claude/.credentials.json", "claude").unwrap();
        assert_eq!(state, SideState::Symlink);
        assert!(bytes.is_none());
        home.write(".claude/.credentials.json", b"{}", 0o600)
            .unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(std::fs::read(&secret).unwrap(), CRED, "link target touched");
    }

    #[test]
    fn a_symlinked_directory_blocks_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(".credentials.json"), CRED).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("home/.claude")).unwrap();
        let home = Home::new(dir.path().join("home"), me());
        let (state, _) = home.read(".claude/.credentials.json", "claude").unwrap();
        assert_eq!(state, SideState::Unusable);
        let err = home
            .write(".claude/.credentials.json", b"{}", 0o600)
            .unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert_eq!(
            std::fs::read(outside.join(".credentials.json")).unwrap(),
            CRED
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn hard_links_fifos_and_directories_are_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let home_dir = dir.path().join("home");
        std::fs::create_dir_all(home_dir.join("a")).unwrap();
        std::fs::write(dir.path().join("other"), CRED).unwrap();
        std::fs::hard_link(dir.path().join("other"), home_dir.join("a/hard.json")).unwrap();
        std::fs::create_dir(home_dir.join("a/dir.json")).unwrap();
        let fifo = std::ffi::CString::new(home_dir.join("a/fifo.json").to_str().unwrap()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let home = Home::new(&home_dir, me());
        for rel in ["a/hard.json", "a/dir.json", "a/fifo.json"] {
            assert_eq!(
                home.read(rel, "claude").unwrap().0,
                SideState::Unusable,
                "{rel}"
            );
        }
        assert_eq!(
            home.read("a/none.json", "claude").unwrap().0,
            SideState::Missing
        );
        assert_eq!(
            home.read("b/none.json", "claude").unwrap().0,
            SideState::Missing
        );
    }

    #[test]
    fn oversized_and_partial_files_are_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path(), me());
        std::fs::write(dir.path().join("half.json"), &CRED[..20]).unwrap();
        assert_eq!(
            home.read("half.json", "claude").unwrap().0,
            SideState::Incomplete
        );
        let mut big = b"{\"x\":\"".to_vec();
        big.resize(MAX_CREDENTIAL_BYTES as usize + 10, b'a');
        big.extend_from_slice(b"\"}");
        std::fs::write(dir.path().join("big.json"), &big).unwrap();
        assert_eq!(
            home.read("big.json", "claude").unwrap().0,
            SideState::Incomplete
        );
    }

    #[test]
    fn chain_lists_each_directory_and_stops_at_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".local/share")).unwrap();
        let home = Home::new(dir.path(), me());
        let chain = home.chain(".local/share/opencode/auth.json");
        let names: Vec<_> = chain.iter().map(|l| l.child.to_str().unwrap()).collect();
        assert_eq!(names, [".local", "share", "opencode"]);
        assert!(!chain.iter().any(|l| l.is_parent));
        std::fs::create_dir(dir.path().join(".local/share/opencode")).unwrap();
        let chain = home.chain(".local/share/opencode/auth.json");
        assert_eq!(chain.last().unwrap().child, "auth.json");
        assert!(chain.last().unwrap().is_parent);
    }
}
