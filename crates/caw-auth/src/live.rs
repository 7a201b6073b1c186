//! Setup's writes into an existing live directory `A/live`.
//!
//! Containers mount `A/live` read-write, so everything below it is input from
//! the container user: a credential file may be a FIFO, a huge file or a
//! symlink, and an agent directory may have been replaced by a symlink to
//! anywhere on the host. Every access here is therefore relative to an open
//! directory (`openat`, `mkdirat`, `renameat`) with `O_NOFOLLOW`, never by
//! path: nothing below `A/live` is followed, and nothing is written outside it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::{SignedDuration, Timestamp};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::{agents, fs};

/// The largest live credential caw reads (real ones are a few KiB).
pub const LIVE_FILE_MAX_BYTES: u64 = 1 << 20;

/// An expiry further ahead than this orders nothing: one poisoned write must
/// not pin an old login for ever.
const PLAUSIBLE_EXPIRY: SignedDuration = SignedDuration::from_hours(365 * 24);

/// One credential to bring up to date in the live directory.
#[derive(Debug)]
pub(crate) struct LiveCredential<'a> {
    /// The agent's name.
    pub agent: &'a str,
    /// `<agent>/<file>`, the manifest's `src`.
    pub src: &'a str,
    /// The host credential's bytes.
    pub host: &'a [u8],
}

/// After a re-setup that carried `live` over: per credential, keep the live
/// file when it is a valid credential whose expiry is later than the host's,
/// else replace it by the host's bytes (temp file + rename). What cannot be
/// done is logged; the host sync reconciles it later.
pub(crate) fn refresh(live: &Path, credentials: &[LiveCredential<'_>]) {
    let dir = match open_live(live) {
        Ok(dir) => dir,
        Err(e) => {
            log::warn!("cannot update `{}`: {e}", live.display());
            return;
        }
    };
    let now = Timestamp::now();
    for credential in credentials {
        let path = live.join(credential.src);
        match refresh_one(&dir, credential, now) {
            Ok(Outcome::Kept) => log::info!(
                "kept `{}`: it holds a fresher login than the host's",
                path.display()
            ),
            Ok(Outcome::Same | Outcome::Replaced) => {}
            Err(e) => log::warn!(
                "cannot update `{}` ({e}); containers keep the login they have",
                path.display()
            ),
        }
    }
}

enum Outcome {
    Kept,
    Same,
    Replaced,
}

/// `A/live` itself: a real directory of the host user's (containers cannot
/// rename it: it is their mount point, in a read-only auth dir).
fn open_live(live: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(live)
        .map_err(|e| fs::with_path(e, live))?;
    dir.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

fn refresh_one(live: &File, c: &LiveCredential<'_>, now: Timestamp) -> std::io::Result<Outcome> {
    let Some((agent_dir, file)) = c.src.split_once('/').filter(|(_, f)| !f.contains('/')) else {
        return Err(std::io::Error::other("not an `<agent>/<file>` path"));
    };
    let dir = agent_dir_at(live, agent_dir)?;
    if let Ok(old) = read_at(&dir, file) {
        if old == c.host {
            return Ok(Outcome::Same);
        }
        if live_is_fresher(c.agent, &old, c.host, now) {
            return Ok(Outcome::Kept);
        }
    }
    write_at(&dir, file, c.host)?;
    Ok(Outcome::Replaced)
}

/// True when `live` is a credential whose expiry is strictly later than
/// `host`'s; an expiry more than a year ahead counts as none.
pub(crate) fn live_is_fresher(agent: &str, live: &[u8], host: &[u8], now: Timestamp) -> bool {
    let plausible =
        |at: Option<Timestamp>| at.filter(|t| t.duration_since(now) <= PLAUSIBLE_EXPIRY);
    let Some(live) = agents::freshness_of(agent, live) else {
        return false;
    };
    let host = agents::freshness_of(agent, host).unwrap_or_default();
    plausible(live.expires_at) > plausible(host.expires_at)
}

/// `live/<name>` as an open directory, 0700: created when missing, and
/// recreated when something else (a file, a FIFO, a symlink) is in its place.
fn agent_dir_at(live: &File, name: &str) -> std::io::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let open = || openat(live, name, flags, Mode::empty());
    let fd = match open() {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            mkdirat(live, name, Mode::from_bits_truncate(0o700))?;
            open()?
        }
        Err(Errno::ENOTDIR | Errno::ELOOP) => {
            unlinkat(live, name, UnlinkatFlags::NoRemoveDir)?;
            mkdirat(live, name, Mode::from_bits_truncate(0o700))?;
            open()?
        }
        Err(e) => return Err(e.into()),
    };
    let dir = File::from(fd);
    dir.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// `dir/<name>` when it is a regular file within the size cap; never blocks.
fn read_at(dir: &File, name: &str) -> Result<Vec<u8>, fs::ReadError> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::empty()).map_err(|e| fs::ReadError::Io(e.into()))?;
    fs::read_regular_file(File::from(fd), LIVE_FILE_MAX_BYTES)
}

/// Replace `dir/<name>` by a 0600 file holding `bytes`: a temp file beside
/// it, flushed, then renamed over it.
fn write_at(dir: &File, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tmp = format!(
        ".{name}.caw-{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut file = File::from(openat(
        dir,
        tmp.as_str(),
        flags,
        Mode::from_bits_truncate(0o600),
    )?);
    let written = file
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .and_then(|()| Ok(renameat(dir, tmp.as_str(), dir, OsStr::new(name))?));
    if written.is_err() {
        let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claude(expires_ms: i64) -> Vec<u8> {
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"a","refreshToken":"r","expiresAt":{expires_ms}}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn only_a_strictly_later_plausible_expiry_is_fresher() {
        let now = Timestamp::now();
        let ms = |hours: i64| (now.as_second() + hours * 3600) * 1000;
        let fresher = |live: &[u8], host: &[u8]| live_is_fresher("claude", live, host, now);
        assert!(fresher(&claude(ms(5)), &claude(ms(1))));
        assert!(!fresher(&claude(ms(1)), &claude(ms(5))));
        assert!(
            !fresher(&claude(ms(1)), &claude(ms(1))),
            "equal is not later"
        );
        assert!(!fresher(b"{}", &claude(ms(1))));
        assert!(!fresher(b"not json", &claude(ms(1))));
        assert!(!fresher(b"[1]", &claude(ms(1))));
        assert!(!fresher(&claude(0), &claude(ms(1))), "logged out");
        assert!(
            !fresher(&claude(ms(2 * 365 * 24)), &claude(ms(1))),
            "two years ahead orders nothing"
        );
        assert!(fresher(&claude(ms(300 * 24)), b"{}"));
    }

    /// A container replaced `live/claude` by a symlink to a host directory
    /// and `live/codex/auth.json` by a FIFO: setup writes neither through
    /// the link nor blocks on the FIFO.
    #[test]
    fn refresh_follows_no_link_and_blocks_on_no_fifo() {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("live");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(live.join("codex")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, live.join("claude")).unwrap();
        let fifo = live.join("codex/auth.json");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let host = claude(1);
        refresh(
            &live,
            &[
                LiveCredential {
                    agent: "claude",
                    src: "claude/credentials.json",
                    host: &host,
                },
                LiveCredential {
                    agent: "codex",
                    src: "codex/auth.json",
                    host: b"{}",
                },
            ],
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let claude_dir = std::fs::symlink_metadata(live.join("claude")).unwrap();
        assert!(claude_dir.is_dir(), "the link was replaced by a directory");
        assert_eq!(claude_dir.permissions().mode() & 0o777, 0o700);
        let cred = live.join("claude/credentials.json");
        assert_eq!(std::fs::read(&cred).unwrap(), host);
        assert_eq!(
            std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            std::fs::metadata(&fifo).unwrap().is_file(),
            "the FIFO was replaced"
        );
        assert_eq!(std::fs::read(&fifo).unwrap(), b"{}");
        let leftovers: Vec<_> = std::fs::read_dir(live.join("claude"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["credentials.json"]);
    }
}
