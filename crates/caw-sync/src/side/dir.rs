//! [`DirFile`]: a file below a root the writer does not trust, reached
//! without following links.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use caw_auth::fs::with_path;
use caw_auth::fs_at::{self as fsx, Kind, TempAt};

use super::commit::commit;
use super::{Commit, Fingerprint, Look, WatchPoint, WatchTarget, DIR_EVENTS, PARENT_EVENTS};

/// Where the walk to a file's directory ended.
enum Walk {
    /// The parent directory, opened without following links.
    Found(OwnedFd),
    /// A component does not exist (and was not to be created).
    Missing,
    /// A component is a symlink or not a directory.
    Blocked(String),
}

/// A file at a relative path below a root, reached without following links.
#[derive(Debug, Clone)]
pub struct DirFile {
    root: PathBuf,
    dirs: Vec<OsString>,
    name: OsString,
    /// Owner of what is created (files and directories); `None`: the writer's.
    owner: Option<(u32, u32)>,
    mode: u32,
    durable: bool,
    create_root: bool,
}

/// Mode of directories created below a root: they hold logins.
const DIR_MODE: u32 = 0o700;

impl DirFile {
    /// `root/rel`, where `rel` is a validated relative path (manifest rules).
    ///
    /// Files and directories written get `owner` and files `mode`, set
    /// through the handle. `durable` flushes each file before it is renamed
    /// into place (for copies that are not rebuilt from elsewhere).
    pub fn new(root: impl Into<PathBuf>, rel: &str, owner: Option<(u32, u32)>, mode: u32) -> Self {
        let mut dirs: Vec<OsString> = rel.split('/').map(OsString::from).collect();
        let name = dirs.pop().unwrap_or_default();
        DirFile {
            root: root.into(),
            dirs,
            name,
            owner,
            mode,
            durable: false,
            create_root: false,
        }
    }

    /// Flush each file to disk before it is renamed into place.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Create the root itself (0700, owned like everything else) when missing.
    pub fn create_root(mut self) -> Self {
        self.create_root = true;
        self
    }

    /// `root/rel`.
    pub fn path(&self) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(&self.dirs);
        p.push(&self.name);
        p
    }

    fn walk(&self, create: bool) -> io::Result<Walk> {
        let mut cur = match fsx::open_dir(&self.root) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create && self.create_root => {
                self.make_root()?;
                fsx::open_dir(&self.root).map_err(|e| with_path(e, &self.root))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Walk::Missing),
            Err(e) => return Err(with_path(e, &self.root)),
        };
        let mut here = self.root.clone();
        for part in &self.dirs {
            here.push(part);
            let next = match fsx::open_subdir(cur.as_fd(), part) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fsx::make_subdir(cur.as_fd(), part, DIR_MODE)
                        .map_err(|e| with_path(e, &here))?;
                    // Opened again without following: a link swapped in
                    // meanwhile makes this fail instead of being followed.
                    let fd = match fsx::open_subdir(cur.as_fd(), part) {
                        Ok(fd) => fd,
                        Err(_) => {
                            return Ok(Walk::Blocked(format!(
                                "`{}` changed while being created",
                                here.display()
                            )))
                        }
                    };
                    self.own(&File::from(fd.try_clone()?), DIR_MODE)
                        .map_err(|e| with_path(e, &here))?;
                    fd
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Walk::Missing),
                Err(e) if fsx::is_link_or_not_dir(&e) => {
                    let what = match fsx::kind_at(cur.as_fd(), part) {
                        Ok(Kind::Symlink) => "a symlink",
                        _ => "not a directory",
                    };
                    return Ok(Walk::Blocked(format!("`{}` is {what}", here.display())));
                }
                Err(e) => return Err(with_path(e, &here)),
            };
            cur = next;
        }
        Ok(Walk::Found(cur))
    }

    fn make_root(&self) -> io::Result<()> {
        if let Some(parent) = self.root.parent() {
            std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
        }
        match std::fs::create_dir(&self.root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(with_path(e, &self.root)),
        }
        let dir = File::from(fsx::open_dir(&self.root)?);
        self.own(&dir, DIR_MODE)
            .map_err(|e| with_path(e, &self.root))
    }

    /// Give an open file or directory the configured owner and `mode`.
    fn own(&self, file: &File, mode: u32) -> io::Result<()> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    }

    /// Replace the file by `bytes` whatever it holds now (configs, which
    /// are not synced): the same no-follow walk and rename as every write.
    pub fn put(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            if self.replace(bytes, self.look()?.fingerprint())? == Commit::Done {
                return Ok(());
            }
        }
    }

    pub(super) fn look(&self) -> io::Result<Look> {
        match self.walk(false)? {
            Walk::Found(dir) => self.look_in(dir.as_fd()),
            Walk::Missing => Ok(Look::Missing),
            Walk::Blocked(why) => {
                log::debug!("{why}; not following it");
                Ok(Look::Unusable)
            }
        }
    }

    fn look_in(&self, dir: BorrowedFd<'_>) -> io::Result<Look> {
        let (kind, bytes) =
            fsx::read_at(dir, &self.name).map_err(|e| with_path(e, &self.path()))?;
        Ok(Look::from_kind(kind, bytes))
    }

    pub(super) fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
        let path = self.path();
        let dir = match self.walk(true)? {
            Walk::Found(dir) => dir,
            Walk::Blocked(reason) => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("refusing to write `{}`: {reason}", path.display()),
                ))
            }
            Walk::Missing => return Err(with_path(io::ErrorKind::NotFound.into(), &path)),
        };
        let mut tmp =
            TempAt::create(dir.as_fd(), &self.name, self.mode).map_err(|e| with_path(e, &path))?;
        self.own(&tmp.file, self.mode)
            .map_err(|e| with_path(e, &path))?;
        tmp.file.write_all(bytes).map_err(|e| with_path(e, &path))?;
        if self.durable {
            tmp.file.sync_all().map_err(|e| with_path(e, &path))?;
        }
        commit(tmp, dir.as_fd(), &self.name, expect).map_err(|e| with_path(e, &path))
    }

    /// The directories from the root down to the file's parent, each with
    /// the entry that leads on; stops at the first missing or blocked one
    /// (whose name is still watched, so its creation is noticed).
    pub(super) fn watch_points(&self) -> Vec<WatchPoint> {
        let mut out = Vec::new();
        let Ok(mut cur) = fsx::open_dir(&self.root) else {
            return out;
        };
        for part in &self.dirs {
            let next = fsx::open_subdir(cur.as_fd(), part);
            out.push(WatchPoint {
                target: WatchTarget::Fd(cur),
                mask: DIR_EVENTS,
                name: Some(part.clone()),
            });
            match next {
                Ok(fd) => cur = fd,
                Err(_) => return out,
            }
        }
        out.push(WatchPoint {
            target: WatchTarget::Fd(cur),
            mask: PARENT_EVENTS,
            name: Some(self.name.clone()),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use caw_auth::credential::MAX_CREDENTIAL_BYTES;

    use super::*;
    use crate::decide::Observed;
    use crate::side::test_util::{fp, CRED};

    fn me() -> Option<(u32, u32)> {
        let meta = std::fs::metadata("/proc/self").unwrap();
        Some((meta.uid(), meta.gid()))
    }

    #[test]
    fn writes_create_private_parents_and_set_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let end = DirFile::new(
            dir.path().join("home"),
            ".claude/.credentials.json",
            me(),
            0o600,
        )
        .create_root();
        assert_eq!(end.look().unwrap(), Look::Missing);
        assert_eq!(
            end.replace(CRED, Fingerprint::Missing).unwrap(),
            Commit::Done
        );
        let file = dir.path().join("home/.claude/.credentials.json");
        assert_eq!(std::fs::read(&file).unwrap(), CRED);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        for d in ["home", "home/.claude"] {
            assert_eq!(
                std::fs::metadata(dir.path().join(d)).unwrap().mode() & 0o777,
                0o700,
                "{d}"
            );
        }
        assert_eq!(end.look().unwrap(), Look::File(CRED.to_vec()));
        assert_eq!(
            std::fs::read_dir(dir.path().join("home/.claude"))
                .unwrap()
                .count(),
            1,
            "temp file left"
        );
    }

    #[test]
    fn a_write_commits_nothing_when_the_destination_moved() {
        let dir = tempfile::tempdir().unwrap();
        let end = DirFile::new(dir.path(), "cred.json", None, 0o600);
        std::fs::write(dir.path().join("cred.json"), b"{\"v\":1}").unwrap();
        // Decided on {"v":1}, but someone wrote {"v":2} since.
        std::fs::write(dir.path().join("cred.json"), b"{\"v\":2}").unwrap();
        assert_eq!(
            end.replace(b"{\"v\":3}", fp(b"{\"v\":1}")).unwrap(),
            Commit::Changed
        );
        assert_eq!(
            std::fs::read(dir.path().join("cred.json")).unwrap(),
            b"{\"v\":2}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
        assert_eq!(
            end.replace(b"{\"v\":3}", fp(b"{\"v\":2}")).unwrap(),
            Commit::Done
        );
        assert_eq!(
            std::fs::read(dir.path().join("cred.json")).unwrap(),
            b"{\"v\":3}"
        );
    }

    #[test]
    fn a_symlinked_credential_is_never_read_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("elsewhere.json");
        std::fs::write(&secret, CRED).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.claude")).unwrap();
        let link = dir.path().join("home/.claude/.credentials.json");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let end = DirFile::new(
            dir.path().join("home"),
            ".claude/.credentials.json",
            None,
            0o600,
        );
        assert_eq!(end.look().unwrap(), Look::Symlink);
        assert_eq!(
            end.replace(b"{}", Fingerprint::Symlink).unwrap(),
            Commit::Done
        );
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
        let end = DirFile::new(
            dir.path().join("home"),
            ".claude/.credentials.json",
            None,
            0o600,
        );
        assert_eq!(end.look().unwrap(), Look::Unusable);
        let err = end.replace(b"{}", Fingerprint::Unusable).unwrap_err();
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
        let root = dir.path().join("home");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(dir.path().join("other"), CRED).unwrap();
        std::fs::hard_link(dir.path().join("other"), root.join("a/hard.json")).unwrap();
        std::fs::create_dir(root.join("a/dir.json")).unwrap();
        nix::unistd::mkfifo(
            &root.join("a/fifo.json"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        for rel in ["a/hard.json", "a/dir.json", "a/fifo.json"] {
            assert_eq!(
                DirFile::new(&root, rel, None, 0o600).look().unwrap(),
                Look::Unusable,
                "{rel}"
            );
        }
        for rel in ["a/none.json", "b/none.json"] {
            assert_eq!(
                DirFile::new(&root, rel, None, 0o600).look().unwrap(),
                Look::Missing,
                "{rel}"
            );
        }
        // Replacing one is a rename over the name: the other link keeps its bytes.
        let hard = DirFile::new(&root, "a/hard.json", None, 0o600);
        assert_eq!(
            hard.replace(b"{}", Fingerprint::Unusable).unwrap(),
            Commit::Done
        );
        assert_eq!(std::fs::read(dir.path().join("other")).unwrap(), CRED);
    }

    #[test]
    fn oversized_files_are_read_only_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![b' '; MAX_CREDENTIAL_BYTES as usize + 4096];
        std::fs::write(dir.path().join("big.json"), &big).unwrap();
        let Look::File(read) = DirFile::new(dir.path(), "big.json", None, 0o600)
            .look()
            .unwrap()
        else {
            panic!("a plain file")
        };
        assert_eq!(read.len() as u64, MAX_CREDENTIAL_BYTES + 1);
        let agent = caw_auth::agents::by_name("claude").unwrap();
        assert_eq!(
            Look::File(read).classify(agent, jiff::Timestamp::now()),
            Observed::Incomplete
        );
    }
}
