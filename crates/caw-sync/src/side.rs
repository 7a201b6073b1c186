//! The two ends of a pair: how each is read, written and watched.
//!
//! - [`DirFile`]: a file below a root the writer does not trust (the agent's
//!   home, the live directory). Every component below the root is walked
//!   with `O_NOFOLLOW`; writes are a temp file renamed into place, with the
//!   owner and mode set through the handle.
//! - [`HostFile`]: the host user's own credential file, which the host sync
//!   keeps. Trusted: a symlink there (dotfile managers) is followed, and the
//!   file is replaced at its target, keeping its mode and owner.
//! - [`MountedFile`]: a host file bind-mounted into a container (`bind`
//!   mode). It cannot be renamed over, so it is written in place through a
//!   descriptor held from the start: the one write that is not a rename.
//!
//! Every write compares before it commits: the destination is read again
//! just before the rename, and if it no longer holds what the decision was
//! based on, nothing is written and the caller decides again.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use caw_auth::agents::Agent;
use caw_auth::credential::{Credential, Digest, MAX_CREDENTIAL_BYTES};
use nix::sys::inotify::AddWatchFlags as W;

use crate::decide::Observed;
use caw_auth::fs::with_path;
use caw_auth::fs_at::{self as fsx, Kind, TempAt};

/// What is at one side right now, before it is judged. Holds credential
/// bytes: its `Debug` shows their length and digest only.
#[derive(Clone, PartialEq, Eq)]
pub enum Look {
    /// Nothing.
    Missing,
    /// A symlink (never read through).
    Symlink,
    /// Something that must not be read.
    Unusable,
    /// A plain file's bytes (at most one more than the credential cap).
    File(Vec<u8>),
}

impl std::fmt::Debug for Look {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Look::Missing => f.write_str("Missing"),
            Look::Symlink => f.write_str("Symlink"),
            Look::Unusable => f.write_str("Unusable"),
            Look::File(b) => write!(f, "File({} bytes, {:?})", b.len(), Digest::of(b)),
        }
    }
}

impl Look {
    fn from_kind(kind: Kind, bytes: Option<Vec<u8>>) -> Look {
        match (kind, bytes) {
            (Kind::Missing, _) => Look::Missing,
            (Kind::Symlink, _) => Look::Symlink,
            (Kind::File, Some(b)) => Look::File(b),
            _ => Look::Unusable,
        }
    }

    /// Judge what was seen, once: the one place bytes become a verdict.
    pub fn classify(&self, agent: &Agent, now: jiff::Timestamp) -> Observed {
        match self {
            Look::Missing => Observed::Missing,
            Look::Symlink => Observed::Symlink,
            Look::Unusable => Observed::Unusable,
            Look::File(bytes) => match Credential::parse(agent, bytes, now) {
                Some(c) => Observed::Valid(c),
                None => Observed::Incomplete,
            },
        }
    }

    /// What it was, to compare against just before a write commits.
    pub fn fingerprint(&self) -> Fingerprint {
        match self {
            Look::Missing => Fingerprint::Missing,
            Look::Symlink => Fingerprint::Symlink,
            Look::Unusable => Fingerprint::Unusable,
            Look::File(b) => Fingerprint::Bytes(Digest::of(b)),
        }
    }
}

/// A side's state, reduced to what compare-before-commit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingerprint {
    /// Nothing.
    Missing,
    /// A symlink.
    Symlink,
    /// Something not readable.
    Unusable,
    /// A plain file with these bytes.
    Bytes(Digest),
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The new bytes are in place.
    Done,
    /// The destination changed since it was read: nothing was written.
    Changed,
}

/// Something to watch for one side, and the entry name that concerns it.
#[derive(Debug)]
pub struct WatchPoint {
    /// The directory or file to watch.
    pub target: WatchTarget,
    /// Which events.
    pub mask: W,
    /// Events about other names in a watched directory are ignored.
    pub name: Option<OsString>,
}

/// A watch target: an open descriptor (watched through `/proc/self/fd`, so
/// no name is resolved again) or a trusted path.
#[derive(Debug)]
pub enum WatchTarget {
    /// An open file or directory.
    Fd(OwnedFd),
    /// A path.
    Path(PathBuf),
}

// Flags nix does not name.
pub(crate) const MASK_ADD: W = W::from_bits_retain(nix::libc::IN_MASK_ADD);
const EXCL_UNLINK: W = W::from_bits_retain(nix::libc::IN_EXCL_UNLINK);

/// Entries appearing or going away: all a directory on the way needs.
pub(crate) const DIR_EVENTS: W = W::IN_CREATE
    .union(W::IN_DELETE)
    .union(W::IN_MOVED_FROM)
    .union(W::IN_MOVED_TO)
    .union(W::IN_DELETE_SELF)
    .union(W::IN_MOVE_SELF)
    .union(W::IN_ONLYDIR)
    .union(EXCL_UNLINK)
    // Watches on a shared directory serve several pairs: never narrow them.
    .union(MASK_ADD);
/// The file's own directory also reports writes to it.
pub(crate) const PARENT_EVENTS: W = DIR_EVENTS.union(W::IN_MODIFY).union(W::IN_CLOSE_WRITE);
/// A file watched on its own inode.
pub(crate) const FILE_EVENTS: W = W::IN_MODIFY
    .union(W::IN_CLOSE_WRITE)
    .union(W::IN_ATTRIB)
    .union(W::IN_DELETE_SELF)
    .union(W::IN_MOVE_SELF);

/// One end of a pair.
#[derive(Debug)]
pub enum End {
    /// Below an untrusted root.
    Dir(DirFile),
    /// The host's own file.
    Host(HostFile),
    /// A bind-mounted host file, written in place.
    Mounted(MountedFile),
}

impl End {
    /// Where it is, for messages.
    pub fn path(&self) -> PathBuf {
        match self {
            End::Dir(d) => d.path(),
            End::Host(h) => h.path.clone(),
            End::Mounted(m) => m.path.clone(),
        }
    }

    /// Read it now.
    pub fn look(&self) -> io::Result<Look> {
        match self {
            End::Dir(d) => d.look(),
            End::Host(h) => h.look(),
            End::Mounted(m) => m.look(),
        }
    }

    /// Replace its content by `bytes` if it still matches `expect`.
    pub fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
        match self {
            End::Dir(d) => d.replace(bytes, expect),
            End::Host(h) => h.replace(bytes, expect),
            End::Mounted(m) => m.replace(bytes, expect),
        }
    }

    /// What to watch to see it change, as things are now.
    pub fn watch_points(&self) -> Vec<WatchPoint> {
        match self {
            End::Dir(d) => d.watch_points(),
            End::Host(h) => h.watch_points(),
            End::Mounted(m) => m.watch_points(),
        }
    }
}

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

    fn look(&self) -> io::Result<Look> {
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

    fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
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
    fn watch_points(&self) -> Vec<WatchPoint> {
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

    fn look(&self) -> io::Result<Look> {
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
    fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
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
    fn watch_points(&self) -> Vec<WatchPoint> {
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

    /// Whether writes can reach the host.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// How many names the host inode has left; 0: the host replaced its file
    /// by a rename, and this mount shows an orphan.
    pub fn links(&self) -> u64 {
        self.file.metadata().map_or(1, |m| m.nlink())
    }

    fn look(&self) -> io::Result<Look> {
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
    fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
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

    fn watch_points(&self) -> Vec<WatchPoint> {
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

/// How many times a commit hands back a file it displaced, when writers
/// keep replacing the destination, before it leaves the pair for the next event.
const MAX_GIVE_BACKS: usize = 4;

/// Put `tmp` at `name` in `dir` only while `name` still holds `expect`.
///
/// A plain compare-then-rename leaves a window in which a writer that
/// renames its own file into place just before ours is silently replaced:
/// a lost refresh. Here nothing is lost. A missing destination is created
/// with `RENAME_NOREPLACE`; an existing one is swapped in one step
/// (`RENAME_EXCHANGE`), and what it held an instant before is then checked:
/// when it was not what the decision was based on, it is swapped back, and
/// the caller decides again. Where the file system has neither (`EINVAL`),
/// it falls back to compare-then-rename.
fn commit(
    mut tmp: TempAt<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    expect: Fingerprint,
) -> io::Result<Commit> {
    let now_at = |n: &OsStr| -> io::Result<Fingerprint> {
        let (kind, bytes) = fsx::read_at(dir, n)?;
        Ok(Look::from_kind(kind, bytes).fingerprint())
    };
    if expect == Fingerprint::Missing {
        return match tmp.commit_new(name) {
            Ok(()) => Ok(Commit::Done),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Commit::Changed),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                plain_commit(tmp, name, expect, now_at)
            }
            Err(e) => Err(e),
        };
    }
    // Cheap first look.
    if now_at(name)? != expect {
        return Ok(Commit::Changed);
    }
    // Nothing replaces a directory (a rename could not either).
    if fsx::is_dir_at(dir, name) {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is in the way",
        ));
    }
    let ours = now_at(tmp.name())?;
    match tmp.exchange(name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            return plain_commit(tmp, name, expect, now_at)
        }
        Err(e) => return Err(e),
    }
    for _ in 0..MAX_GIVE_BACKS {
        // The temp name now holds what `name` held when we swapped.
        if now_at(tmp.name())? == expect {
            return Ok(Commit::Done);
        }
        // Someone wrote `name` after we looked: give their file back.
        tmp.exchange(name)?;
        if now_at(tmp.name())? == ours {
            return Ok(Commit::Changed);
        }
        // And someone else wrote it again meanwhile: theirs is the one out now.
    }
    log::warn!(
        "`{}` keeps changing under caw; looking again at the next change",
        name.to_string_lossy()
    );
    Ok(Commit::Changed)
}

/// Compare, then rename: for file systems without `renameat2` flags.
fn plain_commit(
    tmp: TempAt<'_>,
    name: &OsStr,
    expect: Fingerprint,
    now_at: impl Fn(&OsStr) -> io::Result<Fingerprint>,
) -> io::Result<Commit> {
    if now_at(name)? != expect {
        return Ok(Commit::Changed);
    }
    tmp.commit(name)?;
    Ok(Commit::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRED: &[u8] = br#"{"claudeAiOauth":{"expiresAt":1700000000000}}"#;

    fn me() -> Option<(u32, u32)> {
        let meta = std::fs::metadata("/proc/self").unwrap();
        Some((meta.uid(), meta.gid()))
    }

    fn fp(bytes: &[u8]) -> Fingerprint {
        Fingerprint::Bytes(Digest::of(bytes))
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

#[cfg(test)]
mod debug_tests {
    use super::Look;

    #[test]
    fn a_look_s_debug_shows_no_credential_bytes() {
        let look = Look::File(br#"{"refreshToken":"sk-ant-ort01-SECRET"}"#.to_vec());
        let text = format!("{look:?}");
        assert!(
            !text.contains("SECRET") && !text.contains("refreshToken"),
            "{text}"
        );
        assert!(text.starts_with("File(38 bytes, Digest("), "{text}");
    }
}
