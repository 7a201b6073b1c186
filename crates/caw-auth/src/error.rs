//! The library's error type: one variant per way a caw operation can fail.

use std::fmt;
use std::path::PathBuf;

/// A failed caw operation.
///
/// Every variant names the file or option involved. None of them carries the
/// contents of a credential: parse errors keep only a line and column, never
/// the offending text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed; the message names the path (via `fs-err`).
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// An agent name that is neither `all` nor a known agent.
    #[error("Unknown agent `{name}` (known agents: {})", known.join(", "))]
    UnknownAgent {
        /// The name as given.
        name: String,
        /// Every name that would have been accepted.
        known: Vec<String>,
    },

    /// None of the selected agents has its required files in the host home.
    #[error("no usable agent in `{}`: {}", home.display(), MissingList(missing))]
    NoUsableAgent {
        /// The host home that was searched.
        home: PathBuf,
        /// For each selected agent, the required files (relative to `home`) that are missing.
        missing: Vec<(String, Vec<String>)>,
    },

    /// The auth dir has no `manifest.json`.
    #[error("no manifest at `{}`", path.display())]
    NoManifest {
        /// Where the manifest was looked for.
        path: PathBuf,
    },

    /// `manifest.json` exists but does not satisfy the v1 schema.
    #[error("invalid manifest `{}`: field `{field}` {reason}", path.display())]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// A JSON path to the offending field, e.g. `agents.claude.files[0].src`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A host input file (credential or config) could not be parsed.
    #[error("cannot parse `{}`: {reason}", path.display())]
    InvalidInput {
        /// The host file.
        path: PathBuf,
        /// Parser message with line and column, without the file's text.
        reason: String,
    },

    /// A directory that caw would replace or remove is not a caw auth dir.
    #[error("`{}` is not a caw auth dir: {reason}", path.display())]
    NotAnAuthDir {
        /// The directory.
        path: PathBuf,
        /// Why it does not look like one.
        reason: String,
    },

    /// Teardown refused: host files are symlinks into the auth dir (caw's old design).
    #[error(
        "refusing to remove `{}`: {} host file(s) are symlinks into it and would dangle:\n{}",
        auth_dir.display(),
        links.len(),
        LinkList(links)
    )]
    WouldOrphanSymlinks {
        /// The auth dir.
        auth_dir: PathBuf,
        /// `(host link, resolved target inside the auth dir)` pairs.
        links: Vec<(PathBuf, PathBuf)>,
    },

    /// A bind source named by the manifest does not exist on the host.
    #[error("credential `{}` for agent `{agent}` does not exist", path.display())]
    MissingBindSource {
        /// The agent it belongs to.
        agent: String,
        /// The missing host file.
        path: PathBuf,
    },

    /// A path that cannot be passed to `docker run -v` safely.
    #[error("path `{}` cannot be used in a docker mount flag: {reason}", path.display())]
    UnsafeMountPath {
        /// The offending path.
        path: PathBuf,
        /// What it contains.
        reason: String,
    },

    /// `caw auth sync` on an auth dir that does not use the live directory.
    #[error("`{}` is set up in bind mode: there is no live directory to sync", path.display())]
    NotLiveMode {
        /// The auth dir.
        path: PathBuf,
    },

    /// An option value that is out of range (e.g. a relative container home).
    #[error("invalid {option} `{value}`: {reason}")]
    InvalidOption {
        /// The option, as the CLI spells it.
        option: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

impl Error {
    /// A one-line suggestion for the user, where there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoManifest { .. } => Some("run `caw auth setup` first".into()),
            Error::NoUsableAgent { .. } => Some(
                "log in to the agent on this machine first, or pass `--source-home` \
                 to read another home"
                    .into(),
            ),
            Error::InvalidManifest { .. } => {
                Some("run `caw auth setup` again to rewrite the auth dir".into())
            }
            Error::InvalidInput { .. } => Some(
                "fix or remove the file (caw never edits it), then run `caw auth setup` again"
                    .into(),
            ),
            Error::NotAnAuthDir { .. } => Some(
                "pass `--auth-dir` (or set `CAW_AUTH_DIR`) to a new or empty directory".into(),
            ),
            Error::WouldOrphanSymlinks { .. } => Some(
                "either replace each link with a copy of its target \
                 (`cp --remove-destination \"$(readlink -f LINK)\" LINK`) and run teardown again, \
                 or pass `--force` to remove the auth dir anyway and log in again afterwards"
                    .into(),
            ),
            Error::MissingBindSource { .. } => Some(
                "log in to the agent on this machine (or drop it with `caw auth setup --agents …`) \
                 and run `caw auth setup` again; docker would otherwise create a root-owned \
                 directory at that path"
                    .into(),
            ),
            Error::UnsafeMountPath { .. } => Some(
                "use an auth dir and home without white space or `:` (see `--auth-dir`), \
                 or `--format json` and pass each argument yourself"
                    .into(),
            ),
            Error::UnknownAgent { .. } => Some("use `all` or one of the known agents".into()),
            Error::NotLiveMode { .. } => Some(
                "containers of a bind-mode auth dir mount the host files themselves and need no \
                 sync; run `caw auth setup` again for the live mode (the default)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

struct MissingList<'a>(&'a [(String, Vec<String>)]);

impl fmt::Display for MissingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (agent, files)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{agent} is missing {}", files.join(", "))?;
        }
        Ok(())
    }
}

struct LinkList<'a>(&'a [(PathBuf, PathBuf)]);

impl fmt::Display for LinkList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (link, target)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {} -> {}", link.display(), target.display())?;
        }
        Ok(())
    }
}
