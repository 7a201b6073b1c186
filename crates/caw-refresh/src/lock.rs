//! At most one refresh per login on the machine.
//!
//! - [`LoginLock`]: caw's own, an exclusive `flock` on the credential's
//!   directory on the host (`~/.claude`, `~/.codex`, …). Every host sync of
//!   every auth dir that carries the same login takes the same lock, and no
//!   container can reach it.
//! - [`AgentLock`]: the agent's own lock around its refresh, taken by the
//!   agent's own protocol, so that a host agent and caw never refresh at
//!   once either (Claude Code's `proper-lockfile` directories, Qwen Code's
//!   exclusively created `oauth_creds.lock`). While held, a thread keeps
//!   its mtime fresh, as the agents do, so that nobody breaks it as stale.

use std::fs::{File, FileTimes};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::protocol::{HostLock, LockAt};

/// caw's lock on one login: held while a refresh of it is under way.
#[derive(Debug)]
pub struct LoginLock {
    _dir: File,
}

impl LoginLock {
    /// Lock the login whose credential lives in `dir`, waiting up to `wait`.
    /// `None` when another caw process held it all that time.
    pub fn acquire(dir: &Path, wait: Duration) -> io::Result<Option<LoginLock>> {
        let file = File::open(dir).map_err(|e| caw_auth::fs::with_path(e, dir))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(LoginLock { _dir: file })),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(caw_auth::fs::with_path(e, dir))
                }
            }
        }
    }
}

/// One lock entry caw holds.
#[derive(Debug)]
enum Held {
    Dir(PathBuf),
    File(PathBuf),
}

impl Held {
    fn path(&self) -> &Path {
        match self {
            Held::Dir(p) | Held::File(p) => p,
        }
    }
}

/// An agent's own refresh lock, held by caw; released on drop.
#[derive(Debug)]
pub struct AgentLock {
    held: Vec<Held>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

/// Where a lock entry is for a credential in `dir`.
pub fn lock_path(dir: &Path, at: LockAt) -> PathBuf {
    match at {
        LockAt::InDir(name) => dir.join(name),
        LockAt::DirSuffix(suffix) => {
            let mut p = dir.as_os_str().to_os_string();
            p.push(suffix);
            PathBuf::from(p)
        }
    }
}

impl AgentLock {
    /// Take `lock` for the credential in `dir`, waiting up to `wait` for a
    /// live holder. `None` when the agent held it all that time (it is
    /// refreshing: the caller reads the credential again later).
    pub fn acquire(lock: HostLock, dir: &Path, wait: Duration) -> io::Result<Option<AgentLock>> {
        let deadline = Instant::now() + wait;
        let mut taken = AgentLock {
            held: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
        };
        let update = match lock {
            HostLock::None => return Ok(Some(taken)),
            HostLock::ProperLockfile { dirs, stale } => {
                for at in dirs {
                    let path = lock_path(dir, *at);
                    if !take(&path, stale, deadline, make_dir)? {
                        return Ok(None);
                    }
                    taken.held.push(Held::Dir(path));
                }
                stale / 12
            }
            HostLock::ExclusiveFile { file, stale } => {
                let path = lock_path(dir, file);
                if !take(&path, stale, deadline, make_file)? {
                    return Ok(None);
                }
                taken.held.push(Held::File(path));
                stale / 5
            }
        };
        taken.start_heartbeat(update);
        Ok(Some(taken))
    }

    /// Keep every held entry's mtime fresh every `every`, until dropped.
    fn start_heartbeat(&mut self, every: Duration) {
        let paths: Vec<PathBuf> = self.held.iter().map(|h| h.path().to_path_buf()).collect();
        let stop = self.stop.clone();
        let spawned = std::thread::Builder::new()
            .name("caw-lock-heartbeat".into())
            .spawn(move || {
                let step = Duration::from_millis(50);
                let mut next = Instant::now() + every;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(step);
                    if Instant::now() >= next {
                        paths.iter().for_each(|p| touch(p));
                        next = Instant::now() + every;
                    }
                }
            });
        self.heartbeat = spawned.ok();
    }
}

impl Drop for AgentLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        for held in self.held.drain(..).rev() {
            let _ = match &held {
                Held::Dir(p) => std::fs::remove_dir(p),
                Held::File(p) => std::fs::remove_file(p),
            };
        }
    }
}

/// Create the lock entry at `path` with `make`; break it when its mtime is
/// older than `stale`; wait for a live one until `deadline`.
fn take(
    path: &Path,
    stale: Duration,
    deadline: Instant,
    make: fn(&Path) -> io::Result<()>,
) -> io::Result<bool> {
    let mut pause = Duration::from_millis(100);
    loop {
        match make(path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(caw_auth::fs::with_path(e, path)),
        }
        let age = std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|a| a > stale) {
            log::info!("breaking the stale lock `{}`", path.display());
            break_stale(path);
            continue;
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

fn make_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

/// An exclusively created file holding a lock id, as Qwen Code writes it.
fn make_file(path: &Path) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    write!(f, "caw-{}-{nanos:x}", std::process::id())
}

/// Move a stale entry aside, then remove it (as Qwen Code does: a rename is
/// atomic, so two breakers never remove each other's fresh lock).
fn break_stale(path: &Path) {
    let mut aside = path.as_os_str().to_os_string();
    aside.push(format!(".stale.caw-{}", std::process::id()));
    if std::fs::rename(path, &aside).is_ok() {
        let _ = std::fs::remove_dir_all(&aside).or_else(|_| std::fs::remove_file(&aside));
    }
}

fn touch(path: &Path) {
    let now = SystemTime::now();
    if let Ok(f) = File::open(path) {
        let _ = f.set_times(FileTimes::new().set_accessed(now).set_modified(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE: HostLock = HostLock::ProperLockfile {
        dirs: &[
            LockAt::InDir(".oauth_refresh.lock"),
            LockAt::DirSuffix(".lock"),
        ],
        stale: Duration::from_secs(60),
    };

    #[test]
    fn proper_lockfile_dirs_are_taken_in_order_and_removed() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".claude");
        std::fs::create_dir(&dir).unwrap();
        let lock = AgentLock::acquire(CLAUDE, &dir, Duration::ZERO)
            .unwrap()
            .expect("free");
        assert!(dir.join(".oauth_refresh.lock").is_dir());
        assert!(home.path().join(".claude.lock").is_dir());
        // A second taker (the agent) waits.
        assert!(AgentLock::acquire(CLAUDE, &dir, Duration::from_millis(150))
            .unwrap()
            .is_none());
        drop(lock);
        assert!(!dir.join(".oauth_refresh.lock").exists());
        assert!(!home.path().join(".claude.lock").exists());
    }

    #[test]
    fn a_stale_lock_is_broken_and_a_live_one_is_not() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".qwen");
        std::fs::create_dir(&dir).unwrap();
        let qwen = HostLock::ExclusiveFile {
            file: LockAt::InDir("oauth_creds.lock"),
            stale: Duration::from_secs(10),
        };
        let path = dir.join("oauth_creds.lock");
        std::fs::write(&path, "someone").unwrap();
        assert!(AgentLock::acquire(qwen, &dir, Duration::from_millis(150))
            .unwrap()
            .is_none());
        let old = SystemTime::now() - Duration::from_secs(30);
        File::open(&path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(old))
            .unwrap();
        let lock = AgentLock::acquire(qwen, &dir, Duration::ZERO)
            .unwrap()
            .expect("stale lock broken");
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("caw-"));
        drop(lock);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left");
    }

    #[test]
    fn one_login_lock_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = LoginLock::acquire(dir.path(), Duration::ZERO)
            .unwrap()
            .unwrap();
        assert!(LoginLock::acquire(dir.path(), Duration::from_millis(60))
            .unwrap()
            .is_none());
        drop(held);
        assert!(LoginLock::acquire(dir.path(), Duration::ZERO)
            .unwrap()
            .is_some());
    }
}
