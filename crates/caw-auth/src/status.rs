//! `caw auth status`: what an auth dir manages and how fresh each login is.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use std::os::fd::AsFd as _;

use crate::auth_dir::LIVE_DIR;
use crate::credential::Credential;
use crate::host_sync::{self, SyncStatus};
use crate::manifest::{AuthMode, FileType, Manifest, ManifestFile, Strategy};
use crate::{agents, auth_dir, expiry, trusted, Error, Result};

/// The largest credential `status` reads for its expiry.
const CREDENTIAL_MAX_BYTES: u64 = 1 << 20;

/// Where a managed file's authoritative copy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The host file a credential is bind-mounted from.
    Host(PathBuf),
    /// The staged config in the auth dir.
    Staged(PathBuf),
    /// The authoritative copy does not exist.
    Missing(PathBuf),
}

impl Source {
    /// The path, whatever the kind.
    pub fn path(&self) -> &Path {
        match self {
            Source::Host(p) | Source::Staged(p) | Source::Missing(p) => p,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, path) = match self {
            Source::Host(p) => ("host", p),
            Source::Staged(p) => ("staged", p),
            Source::Missing(p) => ("missing", p),
        };
        write!(f, "{kind} {}", path.display())
    }
}

/// Status of one managed file (the fields of the documented `AuthFileStatus`, plus detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFileStatus {
    /// Agent name.
    pub agent: String,
    /// The host path relative to the host home (`host_original`).
    pub file: String,
    /// Credential or config.
    pub file_type: FileType,
    /// Bind or copy.
    pub strategy: Strategy,
    /// Whether the authoritative copy exists.
    pub exists: bool,
    /// `valid (… remaining)` / `EXPIRED (… ago)`; `None` for configs or when unknown.
    pub token_expiry: Option<String>,
    /// Where the authoritative copy is.
    pub source: Source,
    /// Its modification time.
    pub modified: Option<Timestamp>,
    /// When the token expires, if known.
    pub expires_at: Option<Timestamp>,
    /// Live mode, credentials: which of the host file and its live copy
    /// holds the newest login.
    pub newest: Option<Newest>,
    /// Live mode, credentials, while the host sync refreshes: what its
    /// refresher did and will do for this login.
    pub refresh: Option<host_sync::LoginRefresh>,
}

/// Which side of a credential holds the newest login (live mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newest {
    /// Both hold the same bytes.
    Same,
    /// The host file.
    Host,
    /// The live copy (a container refreshed; the sync carries it to the host).
    Live,
    /// They differ and their files do not tell which is newer.
    Unknown,
}

impl std::fmt::Display for Newest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Newest::Same => "same",
            Newest::Host => "host",
            Newest::Live => "live",
            Newest::Unknown => "unknown",
        })
    }
}

/// Everything `caw auth status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The auth dir, absolute.
    pub auth_dir: PathBuf,
    /// How credentials reach containers.
    pub mode: AuthMode,
    /// One row per managed file of the selected agents.
    pub rows: Vec<AuthFileStatus>,
    /// Live mode: whether the host sync runs, and what it last did.
    pub sync: Option<SyncStatus>,
}

/// Status of every managed file, now. See [`get_status_at`].
pub fn get_status(agents: &[String], auth_dir: Option<&Path>) -> Result<Vec<AuthFileStatus>> {
    get_status_at(agents, auth_dir, Timestamp::now())
}

/// Status of every managed file of the selected agents, as of `now`.
///
/// Credential freshness is read from the host file (the source of truth),
/// never from the staged snapshot. `agents` empty or holding `all` selects
/// every agent in the manifest; any other name must be a known agent or one
/// the manifest lists.
pub fn get_status_at(
    agents: &[String],
    auth_dir: Option<&Path>,
    now: Timestamp,
) -> Result<Vec<AuthFileStatus>> {
    Ok(status_report(agents, auth_dir, now)?.rows)
}

/// [`get_status_at`], with the mode and, in live mode, the host sync's
/// state and which side of each credential holds the newest login.
pub fn status_report(
    agents: &[String],
    auth_dir: Option<&Path>,
    now: Timestamp,
) -> Result<StatusReport> {
    let auth_dir = auth_dir::resolve(auth_dir)?;
    let manifest = match Manifest::load(&auth_dir) {
        Ok(m) => m,
        Err(e @ Error::NoManifest { .. }) => {
            // A misspelt agent is the more useful thing to report.
            selection(agents)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let wanted = selection(agents)?;
    // Host paths only from the registry: a manifest naming another file is refused.
    let credentials = trusted::credentials(&manifest, &auth_dir)?;

    let mut rows = Vec::new();
    for (agent, file) in manifest.files() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&agent)) {
            continue;
        }
        let path = match file.strategy {
            Strategy::Bind => credentials
                .iter()
                .find(|c| c.agent.name == agent)
                .map(|c| c.host.clone())
                .expect("every bind file is a trusted credential"),
            Strategy::Copy => auth_dir.join(&file.src),
        };
        let mut row = row(agent, file, path, now);
        if manifest.mode == AuthMode::Live && file.strategy == Strategy::Bind {
            row.newest = newest(agent, &row, &auth_dir.join(LIVE_DIR), &file.src, now);
        }
        rows.push(row);
    }
    let sync = (manifest.mode == AuthMode::Live).then(|| host_sync::status(&auth_dir));
    if let Some(SyncStatus::Running(Some(host_sync::SyncState {
        refresh: Some(records),
        ..
    }))) = &sync
    {
        for row in rows.iter_mut().filter(|r| r.strategy == Strategy::Bind) {
            row.refresh = records.get(&row.agent).cloned();
        }
    }
    Ok(StatusReport {
        auth_dir,
        mode: manifest.mode,
        rows,
        sync,
    })
}

/// Which of the host file (`row`) and `live/<src>` holds the newest login,
/// judged as the sync judges them. The live copy is read like any input
/// from a container: never through a link, never blocking, size-capped.
fn newest(
    agent: &str,
    row: &AuthFileStatus,
    live: &Path,
    src: &str,
    now: Timestamp,
) -> Option<Newest> {
    let agent = agents::by_name(agent)?;
    let read_live = || -> Option<Vec<u8>> {
        let (dir, name) = src.split_once('/')?;
        let live = crate::fs_at::open_dir(live).ok()?;
        let dir = crate::fs_at::open_subdir(live.as_fd(), std::ffi::OsStr::new(dir)).ok()?;
        match crate::fs_at::read_at(dir.as_fd(), std::ffi::OsStr::new(name)).ok()? {
            (crate::fs_at::Kind::File, bytes) => bytes,
            _ => None,
        }
    };
    let host = crate::fs::read_regular_following(row.source.path(), CREDENTIAL_MAX_BYTES).ok();
    let live = read_live();
    if host.is_some() && host == live {
        return Some(Newest::Same);
    }
    let judge = |b: &Option<Vec<u8>>| b.as_deref().and_then(|b| Credential::parse(agent, b, now));
    Some(match (judge(&host), judge(&live)) {
        (Some(h), Some(l)) if h.usable != l.usable => {
            if h.usable {
                Newest::Host
            } else {
                Newest::Live
            }
        }
        (Some(h), Some(l)) if l.freshness.is_fresher_than(&h.freshness) => Newest::Live,
        (Some(h), Some(l)) if h.freshness.is_fresher_than(&l.freshness) => Newest::Host,
        (Some(_), None) => Newest::Host,
        (None, Some(_)) => Newest::Live,
        _ => Newest::Unknown,
    })
}

/// The status of one managed file whose authoritative copy is `path`.
fn row(agent: &str, file: &ManifestFile, path: PathBuf, now: Timestamp) -> AuthFileStatus {
    let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
    let exists = meta.is_some();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| Timestamp::try_from(t).ok());
    let expires_at = if exists && file.file_type == FileType::Credential {
        // The host's own file: a symlink (a dotfile manager's) is followed;
        // a FIFO or device is not read.
        crate::fs::read_regular_following(&path, CREDENTIAL_MAX_BYTES)
            .ok()
            .and_then(|bytes| crate::credential::freshness_of(agent, &bytes))
            .and_then(|f| f.expires_at)
    } else {
        None
    };
    let source = match (exists, file.strategy) {
        (false, _) => Source::Missing(path),
        (true, Strategy::Bind) => Source::Host(path),
        (true, Strategy::Copy) => Source::Staged(path),
    };
    AuthFileStatus {
        agent: agent.to_string(),
        file: file.host_original.clone(),
        file_type: file.file_type,
        strategy: file.strategy,
        exists,
        token_expiry: expires_at.map(|at| expiry::describe(at, now)),
        source,
        modified,
        expires_at,
        newest: None,
        refresh: None,
    }
}

/// The selected agents' names (the one selection rule of
/// [`agents::select`]); `None` when every agent is selected.
fn selection(agents: &[String]) -> Result<Option<Vec<&'static str>>> {
    let selected = agents::select(agents)?;
    Ok(
        (selected.len() < agents::REGISTRY.len())
            .then(|| selected.iter().map(|a| a.name).collect()),
    )
}
