//! Setup's writes into an existing live directory `A/live`, and reading a
//! login from it (teardown carries a newer one to the host).
//!
//! Containers mount `A/live` read-write, so everything below it is input from
//! the container user: a credential file may be a FIFO, a huge file or a
//! symlink, and an agent directory may have been replaced by a symlink to
//! anywhere on the host. Every access here goes through [`crate::fs_at`]:
//! relative to an open directory, with `O_NOFOLLOW`, never by path.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use jiff::Timestamp;

use crate::credential::{Credential, MAX_CREDENTIAL_BYTES};
use crate::fs_at::{self, Kind, TempAt};
use crate::{agents, fs};

/// One credential to bring up to date in the live directory. Holds
/// credential bytes: its `Debug` shows their length only.
pub(crate) struct LiveCredential<'a> {
    /// The agent's name.
    pub agent: &'a str,
    /// `<agent>/<file>`, the manifest's `src`.
    pub src: &'a str,
    /// The host credential's bytes.
    pub host: &'a [u8],
}

impl std::fmt::Debug for LiveCredential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LiveCredential({}, {} bytes)", self.src, self.host.len())
    }
}

/// After a re-setup that carried `live` over: per credential, keep the live
/// file when it holds a fresher login of the same account than the host's
/// (a container refreshed while no sync ran), else replace it by the host's
/// bytes (temp file + rename). What cannot be done is logged; the host sync
/// reconciles it later.
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
fn open_live(live: &Path) -> std::io::Result<OwnedFd> {
    let dir = fs_at::open_dir(live).map_err(|e| fs::with_path(e, live))?;
    let file = File::from(dir.try_clone()?);
    file.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

fn refresh_one(live: &OwnedFd, c: &LiveCredential<'_>, now: Timestamp) -> std::io::Result<Outcome> {
    let Some((agent_dir, file)) = c.src.split_once('/').filter(|(_, f)| !f.contains('/')) else {
        return Err(std::io::Error::other("not an `<agent>/<file>` path"));
    };
    let (agent_dir, file) = (OsStr::new(agent_dir), OsStr::new(file));
    let dir = agent_dir_at(live, agent_dir)?;
    if let (Kind::File, Some(old)) = fs_at::read_at(dir.as_fd(), file)? {
        if old == c.host {
            return Ok(Outcome::Same);
        }
        if live_is_fresher(c.agent, &old, c.host, now) {
            return Ok(Outcome::Kept);
        }
    }
    let mut tmp = TempAt::create(dir.as_fd(), file, 0o600)?;
    tmp.file.write_all(c.host)?;
    tmp.file.sync_all()?;
    tmp.commit(file)?;
    Ok(Outcome::Replaced)
}

/// The bytes of `live/<src>` (`<agent>/<file>`) under the open live
/// directory `live`, when it is a regular file within the credential cap;
/// never through a link, never blocking.
pub(crate) fn read(live: BorrowedFd<'_>, src: &str) -> Option<Vec<u8>> {
    let (agent_dir, file) = src.split_once('/').filter(|(_, f)| !f.contains('/'))?;
    let dir = fs_at::open_subdir(live, OsStr::new(agent_dir)).ok()?;
    match fs_at::read_at(dir.as_fd(), OsStr::new(file)) {
        Ok((Kind::File, Some(bytes))) if bytes.len() as u64 <= MAX_CREDENTIAL_BYTES => Some(bytes),
        _ => None,
    }
}

/// True when `live` holds a usable login that should win over `host`'s, by
/// the sync's own judgement of both: the same account (where known), and a
/// fresher token or a host file without a login.
pub(crate) fn live_is_fresher(agent: &str, live: &[u8], host: &[u8], now: Timestamp) -> bool {
    let Some(agent) = agents::by_name(agent) else {
        return false;
    };
    // Held refresh tokens: `live/` is only ever the host's login, masked.
    if crate::credential::is_held(host) || crate::credential::is_held(live) {
        return false;
    }
    let Some(live) = Credential::parse(agent, live, now).filter(|c| c.usable && !c.implausible)
    else {
        return false;
    };
    match Credential::parse(agent, host, now) {
        Some(host) if host.identity.conflicts_with(&live.identity) => false,
        Some(host) if host.usable => live.freshness.is_fresher_than(&host.freshness),
        _ => true,
    }
}

/// `live/<name>` as an open directory, 0700: created when missing, and
/// recreated when something else (a file, a FIFO, a symlink) is in its place.
fn agent_dir_at(live: &OwnedFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    let fd = match fs_at::open_subdir(live.as_fd(), name) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs_at::make_subdir(live.as_fd(), name, 0o700)?;
            fs_at::open_subdir(live.as_fd(), name)?
        }
        Err(e) if fs_at::is_link_or_not_dir(&e) => {
            fs_at::remove_file_at(live.as_fd(), name)?;
            fs_at::make_subdir(live.as_fd(), name, 0o700)?;
            fs_at::open_subdir(live.as_fd(), name)?
        }
        Err(e) => return Err(e),
    };
    File::from(fd.try_clone()?).set_permissions(std::fs::Permissions::from_mode(0o700))?;
    Ok(fd)
}

/// Remove from `live/` (the directory itself, and each agent directory in
/// it) whatever no caw writer creates there and the host must not keep:
/// device nodes, FIFOs, sockets, symlinks, and files with a setuid,
/// setgid or sticky bit or any execute bit. Root in a container can make
/// all of these; in the host's `A/live` a 0666 device node or a setuid
/// binary would outlive the container. Regular 0600-style files (the
/// credentials, a guard's temp files) and directories stay. Walks without
/// following links; returns what it removed, as `agent/name`.
pub fn sweep(live: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(top) = fs_at::open_dir(live) else {
        return removed;
    };
    sweep_dir(top.as_fd(), "", 1, &mut removed);
    removed
}

fn sweep_dir(
    dir: std::os::fd::BorrowedFd<'_>,
    prefix: &str,
    depth: u32,
    removed: &mut Vec<String>,
) {
    use nix::sys::stat::{fstatat, SFlag};
    // Listed through the open descriptor: no name is resolved again.
    let Ok(entries) = std::fs::read_dir(fs_at::fd_path(dir)) else {
        return;
    };
    let names: Vec<std::ffi::OsString> = entries.flatten().map(|e| e.file_name()).collect();
    for name in names {
        let Ok(st) = fstatat(
            dir,
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let label = format!("{prefix}{}", name.to_string_lossy());
        let remove = match kind {
            SFlag::S_IFDIR => {
                if depth > 0 {
                    if let Ok(sub) = fs_at::open_subdir(dir, &name) {
                        sweep_dir(sub.as_fd(), &format!("{label}/"), depth - 1, removed);
                    }
                }
                false
            }
            SFlag::S_IFREG => st.st_mode & 0o7111 != 0,
            _ => true,
        };
        if remove && fs_at::remove_file_at(dir, &name).is_ok() {
            removed.push(label);
        }
    }
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
        assert!(fresher(&claude(ms(5)), b"{}"));
        assert!(
            !fresher(&claude(ms(300 * 24)), b"{}"),
            "300 days ahead is a plant, not a login (Claude's tokens live 8 hours)"
        );
        // Another account's login never wins, however fresh.
        let codex = |account: &str, exp_hours: i64| {
            let e = |s: &str| {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
            };
            let exp = now.as_second() + exp_hours * 3600;
            let jwt = format!("{}.{}.sig", e("{}"), e(&format!(r#"{{"exp":{exp}}}"#)));
            format!(
                r#"{{"tokens":{{"access_token":"{jwt}","refresh_token":"r","account_id":"{account}"}}}}"#
            )
            .into_bytes()
        };
        assert!(!live_is_fresher(
            "codex",
            &codex("b", 9),
            &codex("a", 1),
            now
        ));
        assert!(live_is_fresher(
            "codex",
            &codex("a", 9),
            &codex("a", 1),
            now
        ));
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

    #[test]
    fn sweep_removes_what_no_caw_writer_makes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        std::fs::create_dir_all(live.join("claude")).unwrap();
        let write = |rel: &str, mode: u32| {
            let p = live.join(rel);
            std::fs::write(&p, b"x").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("claude/credentials.json", 0o600);
        write("claude/.credentials.json.tmp.1", 0o600);
        write("claude/suid", 0o4755);
        write("claude/exec", 0o700);
        write("top-sgid", 0o2600);
        nix::unistd::mkfifo(
            &live.join("claude/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/shadow", live.join("claude/link")).unwrap();
        let mut removed = sweep(&live);
        removed.sort();
        assert_eq!(
            removed,
            [
                "claude/exec",
                "claude/fifo",
                "claude/link",
                "claude/suid",
                "top-sgid"
            ]
        );
        assert!(live.join("claude/credentials.json").is_file());
        assert!(live.join("claude/.credentials.json.tmp.1").is_file());
        assert!(sweep(&live).is_empty());
    }
}
