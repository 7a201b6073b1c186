//! The container's guard: the sync engine on each credential, the agent's
//! home copy ⇄ `M/live/<src>` (live mode) or ⇄ the bind-mounted host file
//! `M/<src>` (bind mode), until SIGTERM.
//!
//! The home end belongs to the agent user, who may plant symlinks anywhere
//! in it: it is walked without following links, and written as a temp file
//! owned by the user with the manifest's mode. The live end is shared with
//! the host and every other container: written as a temp file owned by the
//! owner of `live/` (the host user), flushed before the rename. A guard holds
//! a shared lock on `live/` for as long as it runs, which is how the host
//! sync knows a container is attached.

use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use caw_auth::agents;
use caw_auth::auth_dir::LIVE_DIR;
use caw_auth::manifest::{AuthMode, Manifest, Strategy};
use caw_sync::side::{DirFile, End, MountedFile};
use caw_sync::{Engine, Pair, StopSignals, Voice};
use nix::fcntl::{Flock, FlockArg};

use crate::user::User;
use crate::Result;

/// How the guard's lines read.
pub(crate) const VOICE: Voice = Voice {
    prefix: "[credential-guard]",
    on_deleted: "a logout inside a container does not log the host out, but if it \
                 revoked the login (`claude auth logout`, `codex logout`), log in again \
                 on the host",
};

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

/// One pair per credential of `manifest`: the shared end at the mount point,
/// the agent user's copy in `home`.
pub(crate) fn pairs(
    manifest: &Manifest,
    mount_point: &Path,
    home: &Path,
    user: &User,
) -> io::Result<Vec<Pair>> {
    let live = mount_point.join(LIVE_DIR);
    let live_owner = match manifest.mode {
        AuthMode::Live => caw_auth::ownership::live_owner(&live)?,
        AuthMode::Bind => None,
    };
    let mut pairs = Vec::new();
    for (name, file) in manifest
        .files()
        .filter(|(_, f)| f.strategy == Strategy::Bind)
    {
        let Some(agent) = agents::by_name(name) else {
            log::warn!(
                "{} `{name}` is not an agent this caw knows; not syncing it",
                VOICE.prefix
            );
            continue;
        };
        let shared = match manifest.mode {
            AuthMode::Live => End::Dir(DirFile::new(&live, &file.src, live_owner, 0o600).durable()),
            AuthMode::Bind => {
                let mounted = MountedFile::open(&mount_point.join(&file.src))?;
                if !mounted.writable() {
                    log::warn!(
                        "{} `{}` is mounted read-only: refreshes made in the container will not \
                         reach the host",
                        VOICE.prefix,
                        mount_point.join(&file.src).display()
                    );
                }
                End::Mounted(mounted)
            }
        };
        let own = DirFile::new(
            home,
            &file.container_target,
            Some(user.owner()),
            file.mode.bits(),
        )
        .create_root();
        let mut pair = Pair::new(agent, shared, End::Dir(own), VOICE).healing_b();
        if manifest.mode == AuthMode::Live {
            // The host sync writes `live/` after judging what containers put there.
            pair = pair.judged_by_a();
        }
        // Refresh tokens held on the host: the home copy is `live/`'s and
        // nothing else; what the agent writes there never goes back.
        pairs.push(if manifest.hold_refresh_token {
            pair.deriving_b(|_, bytes| Some(bytes.to_vec()))
        } else {
            pair
        });
    }
    Ok(pairs)
}

/// Hold a shared lock on `M/live` while the guard runs: the host sync sees
/// from it that a container is attached. `None` in bind mode, or when the
/// lock cannot be taken (someone holds it exclusively: the sync then only
/// believes no container is attached, which costs nothing but its idle exit).
fn attach(mount_point: &Path, mode: AuthMode) -> Option<Flock<std::fs::File>> {
    if mode != AuthMode::Live {
        return None;
    }
    let mut dir = std::fs::File::open(mount_point.join(LIVE_DIR)).ok()?;
    for _ in 0..50 {
        match Flock::lock(dir, FlockArg::LockSharedNonblock) {
            Ok(lock) => return Some(lock),
            Err((back, _)) => {
                // The host sync holds it exclusively for an instant while it checks.
                dir = back;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
    None
}

/// Run the guard in the foreground until SIGTERM, SIGINT or SIGHUP.
pub fn run_guard(opts: GuardOptions) -> Result<()> {
    // Blocked first, so a stop that arrives during start-up waits in the fd.
    let signals = StopSignals::new()?;
    let manifest = Manifest::load(&opts.mount_point)?;
    let user = crate::user::lookup_name_or_uid(&opts.user, Path::new(crate::user::PASSWD))?;
    let _attached = attach(&opts.mount_point, manifest.mode);
    let mut engine = Engine::new(pairs(
        &manifest,
        &opts.mount_point,
        &opts.container_home,
        &user,
    )?)?;
    engine.sync_all();
    log::info!(
        "{} watching {} credential(s) for {} ({} mode, pid {})",
        VOICE.prefix,
        engine.pairs().len(),
        user.name,
        manifest.mode.as_str(),
        std::process::id()
    );
    if let Some(fd) = opts.ready {
        let _ = io::Write::write_all(&mut std::fs::File::from(fd), b"R");
    }
    engine.run(signals.as_fd(), None, |_, _| {
        std::ops::ControlFlow::Continue(())
    })?;
    let signal = signals.pending().unwrap_or("a stop request");
    log::info!("{} stopped ({signal})", VOICE.prefix);
    Ok(())
}
