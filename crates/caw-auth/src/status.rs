//! `caw auth status`: what an auth dir manages and how fresh each login is.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::manifest::{FileType, Manifest, ManifestFile, Strategy};
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
    let auth_dir = auth_dir::resolve(auth_dir)?;
    let manifest = match Manifest::load(&auth_dir) {
        Ok(m) => m,
        Err(e @ Error::NoManifest { .. }) => {
            // A misspelt agent is the more useful thing to report.
            selection(agents, None)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let wanted = selection(agents, Some(&manifest))?;
    // Host paths only from the registry: a manifest naming another file is refused.
    let credentials = trusted::credentials(&manifest, &auth_dir)?;

    let mut rows = Vec::new();
    for (agent, file) in manifest.files() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|n| n == agent))
        {
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
        rows.push(row(agent, file, path, now));
    }
    Ok(rows)
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
            .and_then(|bytes| agents::freshness_of(agent, &bytes))
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
    }
}

fn selection(agents: &[String], manifest: Option<&Manifest>) -> Result<Option<Vec<String>>> {
    let names: Vec<String> = agents
        .iter()
        .flat_map(|n| n.split(','))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(None);
    }
    for name in &names {
        let listed = manifest.is_some_and(|m| m.agents.iter().any(|(n, _)| n == name));
        if !listed && agents::by_name(name).is_none() {
            return Err(Error::UnknownAgent {
                name: name.clone(),
                known: agents::known_names(),
            });
        }
    }
    Ok(Some(names))
}
