//! The host sync (`caw auth sync`) from outside: where it keeps its lock,
//! state and log, and how it is started ([`ensure`]), found ([`status`]) and
//! stopped ([`stop`]). Every front end goes through here; each passes the
//! command line that runs the sync ([`SyncCommand`]), since it owns that
//! syntax. The sync itself is `caw_sync::host`.
//!
//! The lock is a file *beside* the auth dir, `<parent>/.<name>.sync.lock`:
//! containers mount the auth dir, and a container could open any file in it
//! read-only and lock it, so the one lock that says "a sync runs for this
//! auth dir" must live where no container can reach. The state (`sync.json`)
//! and log (`sync.log`) are in the auth dir, which containers only read.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::manifest::AuthMode;

/// The host sync's state file in the auth dir.
pub const STATE_FILE: &str = "sync.json";
/// The host sync's log in the auth dir (when started by `docker-flags`).
pub const LOG_FILE: &str = "sync.log";
/// `CAW_NO_SYNC=1`: `docker-flags` does not start a sync.
pub const NO_SYNC_ENV: &str = "CAW_NO_SYNC";
/// A log larger than this is emptied when a sync starts, and by the
/// running sync ([`cap_log`]).
pub const LOG_LIMIT: u64 = 1 << 20;
/// How long a starting sync may take to take its lock.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// What the running sync reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// When it last copied a credential, if it has.
    pub last_sync: Option<Timestamp>,
    /// What its refresher does for each login, by agent; `None`: it does
    /// not refresh (`--no-refresh`, or a build without the refresher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<std::collections::BTreeMap<String, LoginRefresh>>,
    /// The store it joins this machine's logins to (`--store`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreState>,
}

/// The host sync's view of the store (no token, no key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// `etcd://…`, as given.
    pub url: String,
    /// Since when no member answers; `None`: it answers.
    #[serde(default)]
    pub unreachable_since: Option<Timestamp>,
    /// The agents whose logins this machine refreshes for every machine.
    #[serde(default)]
    pub refresher_of: Vec<String>,
    /// The agents whose last refresh (on any machine) has an unknown outcome.
    #[serde(default)]
    pub outcome_unknown: Vec<String>,
    /// The last thing that went wrong (a wrong store key, …).
    #[serde(default)]
    pub problem: Option<String>,
}

/// The refresher's record of one login (no token: `sync.json` is readable
/// by containers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRefresh {
    /// When caw will refresh it next; `None`: never (no refresh token, a
    /// dead login) or now.
    #[serde(default)]
    pub next_at: Option<Timestamp>,
    /// When the last refresh was tried.
    #[serde(default)]
    pub last_at: Option<Timestamp>,
    /// How it ended: `ok`, or why not (`refused (invalid_grant): log in
    /// again on the host`, `no answer (…); retrying`).
    #[serde(default)]
    pub last: Option<String>,
    /// Whether the last refresh succeeded.
    #[serde(default)]
    pub ok: Option<bool>,
    /// Whether containers get the login without its refresh token.
    #[serde(default)]
    pub held: bool,
    /// Why it is not refreshed here now, although due (another machine
    /// refreshes it, the store is unreachable, an outcome is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// Whether a sync runs for an auth dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Its lock is held; the state it wrote, if readable.
    Running(Option<SyncState>),
    /// Nobody holds its lock.
    Stopped,
}

/// `<parent>/.<name>.sync.lock`, beside the auth dir.
pub fn lock_path(auth_dir: &Path) -> PathBuf {
    let name = auth_dir
        .file_name()
        .map_or_else(|| "auth".into(), |n| n.to_string_lossy().into_owned());
    auth_dir
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!(".{name}.sync.lock"))
}

fn open_lock(auth_dir: &Path) -> io::Result<File> {
    let path = lock_path(auth_dir);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| crate::fs::with_path(e, &path))
}

/// The lock of the one sync of an auth dir, held while it runs.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
}

impl SyncLock {
    /// Take the lock, or `None` when another sync holds it.
    pub fn acquire(auth_dir: &Path) -> io::Result<Option<SyncLock>> {
        let file = open_lock(auth_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SyncLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(crate::fs::with_path(e, &lock_path(auth_dir)))
            }
        }
    }
}

/// Whether a sync runs for `auth_dir`.
///
/// Opening the lock file also tells a running sync that someone is about to
/// use it (it watches for that), which restarts its idle countdown.
pub fn status(auth_dir: &Path) -> SyncStatus {
    let Ok(file) = open_lock(auth_dir) else {
        return SyncStatus::Stopped;
    };
    match file.try_lock_shared() {
        Ok(()) => SyncStatus::Stopped,
        Err(_) => SyncStatus::Running(read_state(auth_dir)),
    }
}

/// The state the sync wrote in `auth_dir`, if it is there and sane.
pub fn read_state(auth_dir: &Path) -> Option<SyncState> {
    let bytes = crate::fs::read_regular(&auth_dir.join(STATE_FILE), 64 * 1024).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Record the sync's state (atomically; the file is readable by containers).
pub fn write_state(auth_dir: &Path, state: &SyncState) -> io::Result<()> {
    let mut text = serde_json::to_vec(state).map_err(io::Error::other)?;
    text.push(b'\n');
    crate::fs::write_atomic_unsynced(&auth_dir.join(STATE_FILE), &text, 0o644, None)
}

/// Stop the sync of `auth_dir`, if one runs: SIGTERM to the pid it
/// recorded (only when that process is `caw auth sync` for this auth dir),
/// then wait for its lock to be released. Returns the pid stopped.
///
/// The lock file is removed once free, so a stopped auth dir leaves nothing
/// beside it.
pub fn stop(auth_dir: &Path) -> io::Result<Option<u32>> {
    let pid = match status(auth_dir) {
        SyncStatus::Stopped => None,
        SyncStatus::Running(state) => state
            .map(|s| s.pid)
            .filter(|&pid| is_sync_of(pid, auth_dir)),
    };
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while matches!(status(auth_dir), SyncStatus::Running(_)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Removed only while we hold it: a sync that still runs keeps its file.
    if let Some(lock) = SyncLock::acquire(auth_dir)? {
        let _ = std::fs::remove_file(lock_path(auth_dir));
        drop(lock);
    }
    Ok(pid)
}

/// Whether `pid` is `caw auth sync` for `auth_dir` (its command line says
/// so): every front end's [`SyncCommand`] (`caw auth sync --auth-dir A`,
/// `python -m caw auth sync --auth-dir A`) has `auth sync` and the auth dir,
/// which a process that merely reuses the pid does not.
fn is_sync_of(pid: u32, auth_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let dir = auth_dir.as_os_str().as_encoded_bytes();
    args.windows(2).any(|w| w == [&b"auth"[..], &b"sync"[..]]) && args.contains(&dir)
}

/// When the sync's log (its stderr, when that is a regular file: the
/// `sync.log` that `ensure_running` opens) has grown past `limit`, empty
/// it: every container write logs a line, and a busy or misbehaving
/// container must not fill the disk. Returns whether it did.
pub fn cap_log(limit: u64) -> bool {
    use std::os::fd::AsFd as _;
    let stderr = std::io::stderr();
    let Ok(dup) = stderr.as_fd().try_clone_to_owned() else {
        return false;
    };
    let file = File::from(dup);
    match file.metadata() {
        Ok(m) if m.is_file() && m.len() > limit => file.set_len(0).is_ok(),
        _ => false,
    }
}

/// How a sync came to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// One was already running.
    AlreadyRunning,
    /// One was started now, with this pid.
    Now(u32),
}

/// The command line that runs the host sync for one auth dir, as the front
/// end that starts it spells it: the CLI's `caw auth sync --auth-dir A`,
/// Python's `python -m caw auth sync --auth-dir A`. This module starts,
/// finds and stops the process; the caller owns its syntax (as
/// `caw_guard::init::exec` takes the guard's command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCommand {
    /// The program (an absolute path).
    pub program: PathBuf,
    /// Its arguments, after `argv[0]`.
    pub args: Vec<OsString>,
}

/// Make sure the host sync runs for `auth_dir` before its mounts are handed
/// to `docker run`; **this starts a process that outlives the caller**.
///
/// When none runs, `command(auth_dir)` is started in the background (see
/// [`ensure_running`]). Nothing to do in bind mode or with `CAW_NO_SYNC=1`
/// ([`NO_SYNC_ENV`]). A sync that cannot be started is a warning, logged
/// here, and not an error: containers still share their logins through the
/// live directory, only the host's do not reach it.
pub fn ensure(
    auth_dir: &Path,
    mode: AuthMode,
    command: impl FnOnce(&Path) -> io::Result<SyncCommand>,
) -> Option<Started> {
    let opted_out = std::env::var_os(NO_SYNC_ENV).is_some_and(|v| v == "1");
    if mode != AuthMode::Live || opted_out {
        return None;
    }
    match command(auth_dir).and_then(|command| ensure_running(auth_dir, &command)) {
        Ok(started) => {
            if let Started::Now(pid) = started {
                log::info!("started the host sync (pid {pid})");
            }
            Some(started)
        }
        Err(e) => {
            log::warn!(
                "cannot start the host sync ({e}): host refreshes will not reach containers \
                 until `caw auth sync` runs"
            );
            None
        }
    }
}

/// Make sure a sync runs for `auth_dir`: when none does, start `command` in
/// the background (its own process group, stdin from /dev/null, output
/// appended to `sync.log`) and wait until it holds its lock and has recorded
/// its pid in `sync.json`.
pub fn ensure_running(auth_dir: &Path, command: &SyncCommand) -> io::Result<Started> {
    let program = command.program.as_path();
    if matches!(status(auth_dir), SyncStatus::Running(_)) {
        return Ok(Started::AlreadyRunning);
    }
    let log_path = auth_dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log_path)
        .map_err(|e| crate::fs::with_path(e, &log_path))?;
    if log.metadata().is_ok_and(|m| m.len() > LOG_LIMIT) {
        log.set_len(0)
            .map_err(|e| crate::fs::with_path(e, &log_path))?;
    }
    let mut child = Command::new(program)
        .args(&command.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the terminal does not stop it.
        .process_group(0)
        .spawn()
        .map_err(|e| crate::fs::with_path(e, program))?;
    let pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        // Ready once it holds the lock and has recorded itself.
        if matches!(status(auth_dir), SyncStatus::Running(Some(ref s)) if s.pid == pid) {
            // Reaped in the background when it exits, for a long-lived
            // caller (Python); a CLI process exits long before.
            std::thread::spawn(move || child.wait());
            return Ok(Started::Now(pid));
        }
        if let Some(exit) = child.try_wait()? {
            // Another start won the race, or it failed: its log says which.
            if matches!(status(auth_dir), SyncStatus::Running(_)) {
                return Ok(Started::AlreadyRunning);
            }
            return Err(io::Error::other(format!(
                "`caw auth sync` exited at once ({exit}); see `{}`",
                log_path.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "`caw auth sync` did not start within {} s; see `{}`",
                START_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_lives_beside_the_auth_dir() {
        assert_eq!(
            lock_path(Path::new("/home/me/.caw/auth")),
            Path::new("/home/me/.caw/.auth.sync.lock")
        );
    }

    #[test]
    fn one_lock_holder_at_a_time_and_status_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth");
        std::fs::create_dir(&auth).unwrap();
        assert_eq!(status(&auth), SyncStatus::Stopped);
        let held = SyncLock::acquire(&auth).unwrap().expect("free");
        assert!(SyncLock::acquire(&auth).unwrap().is_none());
        let state = SyncState {
            pid: 42,
            started_at: Timestamp::from_second(1_700_000_000).unwrap(),
            last_sync: None,
            refresh: None,
            store: None,
        };
        write_state(&auth, &state).unwrap();
        assert_eq!(status(&auth), SyncStatus::Running(Some(state)));
        drop(held);
        assert_eq!(status(&auth), SyncStatus::Stopped);
        assert!(SyncLock::acquire(&auth).unwrap().is_some());
    }
}
