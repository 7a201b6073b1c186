//! The watch loop: inotify events → debounce → [`Pair::step`] per pair
//! touched → re-arm its watches. It blocks in `poll` while nothing happens,
//! so an idle engine uses no CPU.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify, WatchDescriptor};

use crate::pair::{Now, Outcome, Pair};
use crate::side::WatchTarget;
use caw_auth::fs_at::fd_path;

/// A burst ends after this long without a relevant event: short, because
/// every sync waits for it; long enough to fold a write's `MODIFY` and
/// `CLOSE_WRITE`, or a temp file's rename, into one look.
pub const QUIET: Duration = Duration::from_millis(1);
/// A steady stream of writes is still looked at this often.
pub const MAX_DELAY: Duration = Duration::from_millis(10);

/// Events that can change what a pair's end holds.
const PAIR_EVENTS: W = crate::side::PARENT_EVENTS
    .union(crate::side::FILE_EVENTS)
    .difference(crate::side::MASK_ADD);

/// Events after which a write is complete: nothing more of it will come.
const FINISHED: W = W::IN_MOVED_TO
    .union(W::IN_CLOSE_WRITE)
    .union(W::IN_DELETE)
    .union(W::IN_MOVED_FROM)
    .union(W::IN_DELETE_SELF)
    .union(W::IN_MOVE_SELF);

/// Why the caller's hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something happened to an extra watch added with [`Engine::watch_extra`].
    Extra(u32),
    /// The tick period passed.
    Tick,
    /// A credential was copied.
    Synced,
}

/// The running engine: pairs, watches and the loop.
#[derive(Debug)]
pub struct Engine {
    inotify: Inotify,
    pairs: Vec<Pair>,
    /// Watch → (pair, entry name that concerns it; `None`: any event).
    watches: HashMap<WatchDescriptor, Vec<(usize, Option<OsString>)>>,
    /// Extra watch → the caller's id.
    extras: HashMap<WatchDescriptor, u32>,
    dirty: BTreeSet<usize>,
    /// Whether a write that marked a pair dirty is known to be finished (a
    /// rename into place, a close after writing, a removal): then there is
    /// no burst left to wait for.
    settled: bool,
    woken: BTreeSet<u32>,
    /// When a pair asked to be looked at again (a repair after quiet).
    wake: Vec<Option<Instant>>,
    /// More descriptors to wait on (a timer, a worker's pipe), each with
    /// the id the hook is woken with when it becomes readable.
    sources: Vec<(OwnedFd, u32)>,
}

impl Engine {
    /// An engine for `pairs`, with every watch armed. Nothing is synced yet.
    pub fn new(pairs: Vec<Pair>) -> io::Result<Engine> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let mut engine = Engine {
            inotify,
            wake: vec![None; pairs.len()],
            pairs,
            watches: HashMap::new(),
            extras: HashMap::new(),
            dirty: BTreeSet::new(),
            settled: false,
            woken: BTreeSet::new(),
            sources: Vec::new(),
        };
        for i in 0..engine.pairs.len() {
            engine.arm(i);
        }
        Ok(engine)
    }

    /// The pairs.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// Replace every pair (the set of credentials changed), re-arming watches.
    pub fn set_pairs(&mut self, pairs: Vec<Pair>) {
        for wd in self.watches.keys() {
            let _ = self.inotify.rm_watch(*wd);
        }
        self.watches.clear();
        self.dirty.clear();
        self.wake = vec![None; pairs.len()];
        self.pairs = pairs;
        for i in 0..self.pairs.len() {
            self.arm(i);
        }
    }

    /// Also watch `path` for `mask`; events there wake the hook with `id`.
    pub fn watch_extra(&mut self, path: &Path, mask: W, id: u32) -> io::Result<()> {
        let wd = self.inotify.add_watch(path, mask | crate::side::MASK_ADD)?;
        self.extras.insert(wd, id);
        Ok(())
    }

    /// Also wait on `fd`: when it becomes readable the hook is woken with
    /// `Wake::Extra(id)`, and must consume what made it readable.
    pub fn add_source(&mut self, fd: OwnedFd, id: u32) {
        self.sources.push((fd, id));
    }

    /// Look at every pair once (at start, and after the event queue overflowed).
    pub fn sync_all(&mut self) -> Vec<Outcome> {
        self.dirty.extend(0..self.pairs.len());
        self.process(Now::read())
    }

    /// Run until `stop` becomes readable or the hook breaks. `tick` wakes the
    /// hook periodically; extra watches wake it when they fire.
    pub fn run(
        &mut self,
        stop: BorrowedFd<'_>,
        tick: Option<Duration>,
        mut hook: impl FnMut(Wake, &mut Engine) -> ControlFlow<()>,
    ) -> io::Result<()> {
        let mut next_tick = tick.map(|t| Instant::now() + t);
        loop {
            let deadline = self
                .wake
                .iter()
                .flatten()
                .chain(next_tick.as_ref())
                .min()
                .copied();
            let (events, stopping) = self.wait(stop, deadline)?;
            if stopping {
                return Ok(());
            }
            if events {
                self.collect()?;
                if !self.dirty.is_empty() && !self.settled && self.debounce(stop)? {
                    // Stopping: what changed is still synced first.
                    self.process(Now::read());
                    return Ok(());
                }
            }
            let now = Now::read();
            for (i, w) in self.wake.iter_mut().enumerate() {
                if w.is_some_and(|w| w <= now.at) {
                    *w = None;
                    self.dirty.insert(i);
                }
            }
            let outcomes = self.process(now);
            if outcomes.iter().any(|o| matches!(o, Outcome::Copied { .. }))
                && hook(Wake::Synced, self).is_break()
            {
                return Ok(());
            }
            for id in std::mem::take(&mut self.woken) {
                if hook(Wake::Extra(id), self).is_break() {
                    return Ok(());
                }
            }
            if let (Some(t), Some(at)) = (tick, next_tick) {
                if now.at >= at {
                    next_tick = Some(now.at + t);
                    if hook(Wake::Tick, self).is_break() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Block until an event, a stop, or `deadline`. Returns (events, stop).
    fn wait(
        &mut self,
        stop: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> io::Result<(bool, bool)> {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Rounded up, so a timer never fires a millisecond early and spins.
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![
            PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop, PollFlags::POLLIN),
        ];
        fds.extend(
            self.sources
                .iter()
                .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
        );
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok((false, false)),
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let sources: Vec<u32> = fds[2..]
            .iter()
            .zip(&self.sources)
            .filter(|(fd, _)| ready(fd))
            .map(|(_, (_, id))| *id)
            .collect();
        let (events, stopping) = (ready(&fds[0]), ready(&fds[1]));
        drop(fds);
        self.woken.extend(sources);
        Ok((events, stopping))
    }

    /// Fold the rest of a burst in before looking. Returns whether to stop.
    fn debounce(&mut self, stop: BorrowedFd<'_>) -> io::Result<bool> {
        let start = Instant::now();
        loop {
            let elapsed = start.elapsed();
            if elapsed >= MAX_DELAY {
                return Ok(false);
            }
            let until = Instant::now() + QUIET.min(MAX_DELAY - elapsed);
            let (events, stopping) = self.wait(stop, Some(until))?;
            if stopping {
                return Ok(true);
            }
            if !events {
                return Ok(false);
            }
            self.collect()?;
        }
    }

    /// Drain the inotify queue into the dirty set.
    fn collect(&mut self) -> io::Result<()> {
        let now = Instant::now();
        loop {
            let events = match self.inotify.read_events() {
                Ok(ev) => ev,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for ev in events {
                if ev.mask.contains(W::IN_Q_OVERFLOW) {
                    log::debug!("event queue overflowed; looking at every pair");
                    self.dirty.extend(0..self.pairs.len());
                    continue;
                }
                if let Some(&id) = self.extras.get(&ev.wd) {
                    self.woken.insert(id);
                }
                // A watch shared with an extra one (the same inode) also
                // reports what only the extra asked for (an open): that
                // concerns no pair, and re-arming would open it again.
                let concerns_pairs = ev.mask.intersects(PAIR_EVENTS);
                if let Some(interests) = self.watches.get(&ev.wd).filter(|_| concerns_pairs) {
                    for (i, name) in interests {
                        // A name filter applies to events about entries; an
                        // event about the watched directory itself concerns all.
                        if name.is_none() || ev.name.is_none() || ev.name == *name {
                            self.dirty.insert(*i);
                            self.pairs[*i].touched(now);
                            self.settled |= ev.mask.intersects(FINISHED);
                        }
                    }
                }
                if ev.mask.contains(W::IN_IGNORED) {
                    self.watches.remove(&ev.wd);
                    self.extras.remove(&ev.wd);
                }
            }
        }
    }

    fn process(&mut self, now: Now) -> Vec<Outcome> {
        self.settled = false;
        let mut outcomes = Vec::new();
        for i in std::mem::take(&mut self.dirty) {
            // Re-armed before reading, so a change after this look raises a new event.
            self.arm(i);
            let (outcome, wake) = self.pairs[i].step(now);
            if matches!(outcome, Outcome::Copied { .. }) {
                // The write may have created directories that need watching.
                self.arm(i);
            }
            self.wake[i] = wake;
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Point pair `i`'s watches at what its ends are now.
    fn arm(&mut self, i: usize) {
        let mut fresh: Vec<(WatchDescriptor, Option<OsString>)> = Vec::new();
        let points: Vec<_> = [crate::decide::Side::A, crate::decide::Side::B]
            .into_iter()
            .flat_map(|s| self.pairs[i].end(s).watch_points())
            .collect();
        for point in points {
            let added = match &point.target {
                WatchTarget::Fd(fd) => self.inotify.add_watch(&fd_path(fd.as_fd()), point.mask),
                WatchTarget::Path(p) => self.inotify.add_watch(p, point.mask),
            };
            match added {
                Ok(wd) => fresh.push((wd, point.name)),
                // A directory that does not exist yet: its parent's watch sees it come.
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(e) => log::warn!("cannot watch for {}: {e}", self.pairs[i].agent().name),
            }
        }
        // New interests go in before old ones go, so a watch still in use is
        // never removed and re-created.
        for (wd, name) in &fresh {
            let list = self.watches.entry(*wd).or_default();
            if !list.iter().any(|(p, n)| *p == i && n == name) {
                list.push((i, name.clone()));
            }
        }
        let mut unused = Vec::new();
        for (wd, list) in self.watches.iter_mut() {
            list.retain(|(p, n)| *p != i || fresh.iter().any(|(w, fnm)| w == wd && fnm == n));
            if list.is_empty() {
                unused.push(*wd);
            }
        }
        for wd in unused {
            self.watches.remove(&wd);
            if !self.extras.contains_key(&wd) {
                let _ = self.inotify.rm_watch(wd);
            }
        }
    }
}
