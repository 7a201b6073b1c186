//! The watch loop: inotify events → debounce → per-pair [`decide`] → copy.
//!
//! Two kinds of watch feed it. The mount side is watched on the
//! bind-mounted file's own inode, the only place a host-side write shows up
//! (a watch on the directory above a bind-mounted file never reports it).
//! The home side is watched on each directory from `C` down to the file's
//! parent, filtered by the entry name that leads on: that sees in-place
//! writes, temp-file-plus-rename writes, deletes, and a directory on the way
//! being removed or replaced (the chain is re-armed whenever a pair is
//! looked at). The loop blocks in `ppoll` while nothing happens, so an idle
//! guard uses no CPU.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use caw_auth::manifest::{Manifest, Strategy};

use crate::decide::{decide, Action, CopyReason, Digest, SideState, SkipReason};
use crate::home::Home;
use crate::mount::MountFile;
use crate::sys::{self, Event, Inotify};
use crate::user::User;
use crate::Result;

/// A burst ends after this long without a relevant event. Short, because
/// every sync waits for it; long enough to fold a write's `MODIFY` and
/// `CLOSE_WRITE`, or a temp file's rename, into one look.
pub const QUIET: Duration = Duration::from_millis(1);
/// A steady stream of writes is still looked at this often.
pub const MAX_DELAY: Duration = Duration::from_millis(10);

const MOUNT_MASK: u32 = libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;
/// Entries appearing or going away: all an ancestor directory needs.
const DIR_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_EXCL_UNLINK
    // Watches on a shared directory serve several pairs: never narrow them.
    | libc::IN_MASK_ADD;
/// The file's own directory also reports writes to it.
const PARENT_MASK: u32 = DIR_MASK | libc::IN_MODIFY | libc::IN_CLOSE_WRITE;

/// One credential the guard keeps equal on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSpec {
    /// The agent (decides how expiry is read).
    pub agent: String,
    /// Path under the mount point.
    pub src: String,
    /// Path under the container home.
    pub target: String,
    /// Mode of the home copy.
    pub mode: u32,
}

/// What the guard watches, and for whom it writes.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// `M`.
    pub mount_point: PathBuf,
    /// `C`.
    pub container_home: PathBuf,
    /// The agent user's `(uid, gid)`: owner of every home-side write.
    pub owner: (u32, u32),
    /// The credentials.
    pub pairs: Vec<PairSpec>,
}

impl GuardConfig {
    /// Every `bind` file of `manifest`, as mounted at `mount_point`.
    pub fn from_manifest(
        manifest: &Manifest,
        mount_point: impl Into<PathBuf>,
        container_home: impl Into<PathBuf>,
        user: &User,
    ) -> Self {
        GuardConfig {
            mount_point: mount_point.into(),
            container_home: container_home.into(),
            owner: user.owner(),
            pairs: manifest
                .files()
                .filter(|(_, f)| f.strategy == Strategy::Bind)
                .map(|(agent, f)| PairSpec {
                    agent: agent.to_string(),
                    src: f.src.clone(),
                    target: f.container_target.clone(),
                    mode: f.mode.bits(),
                })
                .collect(),
        }
    }
}

#[derive(Debug)]
struct Pair {
    spec: PairSpec,
    mount: MountFile,
    home_path: PathBuf,
    mount_wd: Option<i32>,
    /// What both sides held after the last sync.
    last: Option<Digest>,
    /// The last skip that was reported, so a standing condition is said once.
    reported: Option<SkipReason>,
    orphan_reported: bool,
}

/// The running guard: watches, pair states, and the loop.
#[derive(Debug)]
pub struct Guard {
    inotify: Inotify,
    home: Home,
    pairs: Vec<Pair>,
    /// Directory watch → (pair, entry name that concerns it).
    dirs: HashMap<i32, Vec<(usize, OsString)>>,
    /// Mount-file watch → pair.
    mounts: HashMap<i32, usize>,
    events: Vec<Event>,
    dirty: BTreeSet<usize>,
}

impl Guard {
    /// Open every mount file and arm every watch. Nothing is copied yet.
    pub fn new(config: &GuardConfig) -> Result<Self> {
        let inotify = Inotify::new()?;
        let home = Home::new(&config.container_home, config.owner);
        let mut pairs = Vec::with_capacity(config.pairs.len());
        for spec in &config.pairs {
            let mount = MountFile::open(&config.mount_point.join(&spec.src))?;
            if !mount.writable() {
                log::warn!(
                    "[credential-guard] `{}` is mounted read-only: refreshes made in the container \
                     will not reach the host",
                    mount.path().display()
                );
            }
            pairs.push(Pair {
                home_path: home.path(&spec.target),
                spec: spec.clone(),
                mount,
                mount_wd: None,
                last: None,
                reported: None,
                orphan_reported: false,
            });
        }
        let mut guard = Guard {
            inotify,
            home,
            pairs,
            dirs: HashMap::new(),
            mounts: HashMap::new(),
            events: Vec::new(),
            dirty: BTreeSet::new(),
        };
        for i in 0..guard.pairs.len() {
            guard.arm_mount(i)?;
            guard.arm_home(i);
        }
        Ok(guard)
    }

    /// Look at every pair once (at start, and after an event-queue overflow).
    pub fn sync_all(&mut self) {
        self.dirty.extend(0..self.pairs.len());
        self.process();
    }

    /// Run until `stop` becomes readable; pending changes are synced first.
    pub fn run(&mut self, stop: BorrowedFd<'_>) -> Result<()> {
        loop {
            let ready = sys::poll2(self.inotify.as_fd(), stop, None)?;
            if ready.second {
                return Ok(());
            }
            self.collect()?;
            if self.dirty.is_empty() {
                continue;
            }
            // Debounce: fold the rest of the burst in before looking.
            let start = Instant::now();
            let mut stopping = false;
            loop {
                let elapsed = start.elapsed();
                if elapsed >= MAX_DELAY {
                    break;
                }
                let ready = sys::poll2(
                    self.inotify.as_fd(),
                    stop,
                    Some(QUIET.min(MAX_DELAY - elapsed)),
                )?;
                if ready.second {
                    stopping = true;
                    break;
                }
                if !ready.first {
                    break;
                }
                self.collect()?;
            }
            self.process();
            if stopping {
                return Ok(());
            }
        }
    }

    /// Drain the inotify queue into the dirty set.
    fn collect(&mut self) -> Result<()> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let read = self.inotify.read_into(&mut events);
        for ev in &events {
            if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                log::debug!("[credential-guard] event queue overflowed; looking at every pair");
                self.dirty.extend(0..self.pairs.len());
                continue;
            }
            if let Some(&i) = self.mounts.get(&ev.wd) {
                self.dirty.insert(i);
                if ev.mask & libc::IN_IGNORED != 0 {
                    self.mounts.remove(&ev.wd);
                    self.pairs[i].mount_wd = None;
                }
                continue;
            }
            let Some(interests) = self.dirs.get(&ev.wd) else {
                continue;
            };
            match &ev.name {
                Some(name) => self.dirty.extend(
                    interests
                        .iter()
                        .filter(|(_, child)| child == name)
                        .map(|(i, _)| *i),
                ),
                // The directory itself went away or moved: re-walk its pairs.
                None => self.dirty.extend(interests.iter().map(|(i, _)| *i)),
            }
            if ev.mask & libc::IN_IGNORED != 0 {
                self.dirs.remove(&ev.wd);
            }
        }
        // The buffer is kept for the next read.
        self.events = events;
        read?;
        Ok(())
    }

    fn process(&mut self) {
        for i in std::mem::take(&mut self.dirty) {
            if self.pairs[i].mount_wd.is_none() {
                if let Err(e) = self.arm_mount(i) {
                    log::warn!("[credential-guard] cannot watch: {e}");
                }
            }
            // Re-armed before reading, so a change after this look raises a new event.
            self.arm_home(i);
            self.sync(i);
        }
    }

    fn arm_mount(&mut self, i: usize) -> Result<()> {
        let pair = &mut self.pairs[i];
        let path = sys::fd_path(pair.mount.fd());
        let wd = self.inotify.add_watch(&path, MOUNT_MASK).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{e} (path: `{}`)", pair.mount.path().display()),
            )
        })?;
        pair.mount_wd = Some(wd);
        self.mounts.insert(wd, i);
        Ok(())
    }

    /// Point the home-side watches of pair `i` at the directories its path
    /// runs through now.
    fn arm_home(&mut self, i: usize) {
        let target = self.pairs[i].spec.target.clone();
        let mut fresh: Vec<(i32, OsString)> = Vec::new();
        for link in self.home.chain(&target) {
            let mask = if link.is_parent {
                PARENT_MASK
            } else {
                DIR_MASK
            };
            match self
                .inotify
                .add_watch(&sys::fd_path(link.dir.as_fd()), mask)
            {
                Ok(wd) => fresh.push((wd, link.child)),
                Err(e) => log::warn!(
                    "[credential-guard] cannot watch the directory of `{}`: {e}",
                    self.pairs[i].home_path.display()
                ),
            }
        }
        // New interests are added before old ones go, so a watch that stays
        // in use is never removed and re-created.
        for (wd, child) in &fresh {
            let list = self.dirs.entry(*wd).or_default();
            if !list.iter().any(|(p, c)| *p == i && c == child) {
                list.push((i, child.clone()));
            }
        }
        let mut unused = Vec::new();
        for (wd, list) in self.dirs.iter_mut() {
            list.retain(|(p, c)| *p != i || fresh.iter().any(|(w, fc)| w == wd && fc == c));
            if list.is_empty() {
                unused.push(*wd);
            }
        }
        for wd in unused {
            self.dirs.remove(&wd);
            self.inotify.rm_watch(wd);
        }
    }

    /// Look at pair `i` and carry out the decision.
    fn sync(&mut self, i: usize) {
        let pair = &mut self.pairs[i];
        if pair.mount.links() == 0 && !pair.orphan_reported {
            pair.orphan_reported = true;
            log::warn!(
                "[credential-guard] the host replaced the file mounted at `{}` (a rename): this \
                 container no longer sees it; restart the container to pick up the host's login",
                pair.mount.path().display()
            );
        }
        let mount_bytes = match pair.mount.read() {
            Ok(b) => b,
            Err(e) => {
                log::warn!("[credential-guard] cannot read: {e}");
                return;
            }
        };
        let mount_state = if mount_bytes.len() as u64 > crate::home::MAX_CREDENTIAL_BYTES {
            SideState::Incomplete
        } else {
            SideState::of_bytes(&pair.spec.agent, &mount_bytes)
        };
        let (home_state, home_bytes) = match self.home.read(&pair.spec.target, &pair.spec.agent) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("[credential-guard] cannot read: {e}");
                return;
            }
        };
        let action = decide(&mount_state, &home_state, pair.last.as_ref());
        log::debug!(
            "[credential-guard] {}: mount {mount_state:?}, home {home_state:?}: {action:?}",
            pair.spec.agent
        );
        let digest = |s: &SideState| match s {
            SideState::Valid(c) => Some(c.digest),
            _ => None,
        };
        match action {
            Action::InSync => {
                pair.last = digest(&mount_state);
                pair.reported = None;
            }
            Action::ToHome(reason) => {
                match self
                    .home
                    .write(&pair.spec.target, &mount_bytes, pair.spec.mode)
                {
                    Ok(()) => {
                        pair.last = digest(&mount_state);
                        pair.reported = None;
                        log::info!(
                            "[credential-guard] synced {} -> {}{}",
                            pair.mount.path().display(),
                            pair.home_path.display(),
                            match reason {
                                CopyReason::HomeMissing => " (restored)",
                                CopyReason::HomeSymlink => " (replaced a symlink)",
                                _ => "",
                            }
                        );
                    }
                    Err(e) => log::error!("[credential-guard] {e}"),
                }
            }
            Action::ToMount(_) => {
                let Some(bytes) = home_bytes else { return };
                if !pair.mount.writable() {
                    return;
                }
                match pair.mount.write_in_place(&bytes) {
                    Ok(()) => {
                        pair.last = digest(&home_state);
                        pair.reported = None;
                        log::info!(
                            "[credential-guard] synced {} -> {}",
                            pair.home_path.display(),
                            pair.mount.path().display()
                        );
                    }
                    Err(e) => log::error!("[credential-guard] {e}"),
                }
            }
            Action::Skip(reason) => {
                if pair.reported != Some(reason) {
                    pair.reported = Some(reason);
                    report_skip(reason, pair);
                }
            }
        }
    }
}

fn report_skip(reason: SkipReason, pair: &Pair) {
    let (mount, home) = (pair.mount.path().display(), pair.home_path.display());
    match reason {
        // Writes in progress: the next event finishes the story.
        SkipReason::MountIncomplete | SkipReason::HomeIncomplete => {
            log::debug!(
                "[credential-guard] {}: waiting for a complete file ({reason:?})",
                pair.spec.agent
            )
        }
        SkipReason::MountMissing | SkipReason::MountUnusable => {
            log::warn!(
                "[credential-guard] `{mount}` is not a readable credential file; not syncing it"
            )
        }
        SkipReason::HomeUnusable => log::warn!(
            "[credential-guard] `{home}` is not a plain file the guard may touch (a directory, a \
             hard link, or below a symlink); leaving it alone"
        ),
        SkipReason::WouldDowngradeHome => log::warn!(
            "[credential-guard] not syncing {mount} -> {home}: its token expires before the one \
             already there"
        ),
        SkipReason::WouldDowngradeMount => log::warn!(
            "[credential-guard] not syncing {home} -> {mount}: its token expires before the host's"
        ),
    }
}

/// How the guard is started.
#[derive(Debug)]
pub struct GuardOptions {
    /// `M`.
    pub mount_point: PathBuf,
    /// `C`.
    pub container_home: PathBuf,
    /// `U`.
    pub user: String,
    /// Written to (one byte) and closed once the watches are armed and the
    /// first sync is done; the parent waits on it.
    pub ready: Option<OwnedFd>,
}

/// Run the guard in the foreground until SIGTERM, SIGINT or SIGHUP.
pub fn run_guard(opts: GuardOptions) -> Result<()> {
    // Blocked first, so a stop that arrives during start-up waits in the fd.
    let signals = sys::StopSignals::new()?;
    let manifest = Manifest::load(&opts.mount_point)?;
    let user = crate::user::lookup(&opts.user, std::path::Path::new(crate::user::PASSWD))?;
    let config =
        GuardConfig::from_manifest(&manifest, &opts.mount_point, &opts.container_home, &user);
    let mut guard = Guard::new(&config)?;
    guard.sync_all();
    log::info!(
        "[credential-guard] watching {} credential(s) for {} (pid {})",
        config.pairs.len(),
        user.name,
        std::process::id()
    );
    if let Some(fd) = opts.ready {
        let _ = io::Write::write_all(&mut std::fs::File::from(fd), b"R");
    }
    guard.run(signals.as_fd())?;
    let signal = signals.pending().unwrap_or("a stop request");
    log::info!("[credential-guard] stopped ({signal})");
    Ok(())
}
