//! The library's error type: one variant per way a caw operation can fail.

use std::fmt;
use std::path::PathBuf;

use crate::attached::Attached;
use crate::flag_format::FlagFormat;
use crate::hint::{hint, Hint, HintPart, OptionName, Spelling, Step};

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

    /// `manifest.json` exists but is not a v1 manifest (or not a regular
    /// file); the directory is then not a caw auth dir either.
    #[error("invalid manifest `{}`: {}", path.display(), field_reason(field, reason))]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// A JSON path to the offending field, e.g. `agents.claude.files[0].src`;
        /// [`crate::manifest::ROOT`] for the file as a whole.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A valid manifest names a host or auth-dir path that is not the agent
    /// registry's (see [`crate::trusted`]); nothing is mounted or read from it.
    #[error("invalid manifest `{}`: {}", path.display(), field_reason(field, reason))]
    UntrustedManifestEntry {
        /// The manifest file.
        path: PathBuf,
        /// The entry, e.g. `agents.claude.files[0].host_original`.
        field: String,
        /// What it should be.
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

    /// Teardown refused: containers' guards are attached to the auth dir's
    /// `live/` (removing it would cut them off from every refresh).
    #[error(
        "refusing to remove `{}`: {} container(s) are attached to it: {attached}",
        auth_dir.display(),
        attached.count()
    )]
    ContainersAttached {
        /// The auth dir.
        auth_dir: PathBuf,
        /// Who holds the lock on `live/`.
        attached: Attached,
    },

    /// A bind source named by the manifest does not exist on the host.
    #[error("credential `{}` for agent `{agent}` does not exist", path.display())]
    MissingBindSource {
        /// The agent it belongs to.
        agent: String,
        /// The missing host file.
        path: PathBuf,
    },

    /// A live-mode auth dir without its `live/` directory (docker would
    /// create a root-owned one).
    #[error("the live directory `{}` is missing", path.display())]
    MissingLiveDir {
        /// Where it should be.
        path: PathBuf,
    },

    /// A path that cannot survive the chosen form of the docker flags.
    #[error("path `{}` cannot be used in a docker mount flag ({}): {reason}", path.display(), format.name())]
    UnsafeMountPath {
        /// The offending path.
        path: PathBuf,
        /// The output form it was refused for.
        format: FlagFormat,
        /// What it contains.
        reason: String,
    },

    /// `caw auth sync` on an auth dir that does not use the live directory.
    #[error("`{}` is set up in bind mode: there is no live directory to sync", path.display())]
    NotLiveMode {
        /// The auth dir.
        path: PathBuf,
    },

    /// The store (`--store`) cannot be used as given: its key, its TLS
    /// files, its address.
    #[error("cannot use the store: {reason}")]
    Store {
        /// What is wrong (a path, never a secret).
        reason: String,
    },

    /// A `caw run` command line that cannot be split (exit 2).
    #[error("{reason}")]
    RunUsage {
        /// What is wrong with it.
        reason: String,
    },

    /// `caw run` found no agent user: none given and the image's `USER` is
    /// root or empty.
    #[error("{reason}: caw run needs the agent user of `{image}`")]
    NoAgentUser {
        /// The image.
        image: String,
        /// What the image says.
        reason: String,
    },

    /// `caw run` has nothing to run: no command given and none in the image.
    #[error("`{image}` has no ENTRYPOINT or CMD, and no command was given")]
    NoCommand {
        /// The image.
        image: String,
    },

    /// The auth dir has no static Linux `bin/caw` for the container's entrypoint.
    #[error(
        "`{}` is missing or not a static Linux build; caw run needs it as the container's entrypoint",
        path.display()
    )]
    MissingBundledBinary {
        /// Where it should be.
        path: PathBuf,
    },

    /// An engine name that is neither `docker` nor `podman`.
    #[error("unknown container engine `{name}` (known: docker, podman)")]
    UnknownEngine {
        /// The name as given.
        name: String,
    },

    /// No engine was chosen and neither `docker` nor `podman` answers.
    #[error("no container engine answers: neither `docker version` nor `podman version` succeeds")]
    NoEngine,

    /// An engine option that only the other engine has.
    #[error("`{option}` is an option of `{owner}`, not of `{engine}`")]
    ForeignEngineOption {
        /// The option as given.
        option: String,
        /// The engine that has it.
        owner: String,
        /// The chosen engine.
        engine: String,
    },

    /// An engine and mode in which caw cannot keep its guarantees.
    #[error("caw cannot keep its guarantees with `{engine}` in {mode}")]
    UnsupportedEngineMode {
        /// The engine.
        engine: String,
        /// The mode, in words.
        mode: String,
        /// What to do instead.
        what_to_do: String,
    },

    /// The container engine's program cannot be run.
    #[error("cannot run `{engine}`: {reason}")]
    EngineUnavailable {
        /// The program (`docker`, `podman`).
        engine: String,
        /// Why.
        reason: String,
    },

    /// The engine cannot tell what an image runs.
    #[error("cannot inspect image `{image}` with `{engine}`: {reason}")]
    ImageInspect {
        /// The program asked.
        engine: String,
        /// The image.
        image: String,
        /// The engine's answer.
        reason: String,
    },

    /// An option value that is out of range (e.g. a relative container home).
    #[error("invalid {option} `{value}`: {reason}")]
    InvalidOption {
        /// The option; front ends spell it their way ([`Error::message`]).
        option: OptionName,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

impl Error {
    /// The message in a front end's words: like `Display`, but options are
    /// named as `spelling` names them (`--mount-point`, `mount_point`).
    pub fn message(&self, spelling: &dyn Spelling) -> String {
        match self {
            Error::InvalidOption {
                option,
                value,
                reason,
            } => {
                let name = spelling
                    .option(*option)
                    .unwrap_or_else(|| option.words().to_string());
                format!("invalid {name} `{value}`: {reason}")
            }
            _ => self.to_string(),
        }
    }

    /// A one-line suggestion for the user, where there is an obvious next
    /// step; render it with [`Hint::render`].
    pub fn hint(&self) -> Option<Hint> {
        Some(match self {
            Error::NoManifest { .. } => hint![Step::Setup, " first"],
            Error::NoUsableAgent { .. } => hint![
                "log in to the agent on this machine first, or pass ",
                OptionName::SourceHome,
                " to read another home"
            ],
            Error::InvalidManifest { .. } => hint![
                "if caw wrote this auth dir, remove it and ",
                Step::Setup,
                " again; otherwise pass ",
                OptionName::AuthDir,
                " to use another"
            ],
            Error::UntrustedManifestEntry { .. } => {
                hint![Step::Setup, " again to rewrite the auth dir"]
            }
            Error::InvalidInput { .. } => hint![
                "fix or remove the file (caw never edits it), then ",
                Step::Setup,
                " again"
            ],
            Error::NotAnAuthDir { .. } => hint![
                "pass ",
                OptionName::AuthDir,
                " (or set `CAW_AUTH_DIR`) to a new or empty directory; \
                 caw never replaces or removes a directory it did not write"
            ],
            Error::WouldOrphanSymlinks { .. } => hint![
                "either replace each link with a copy of its target \
                 (`cp --remove-destination \"$(readlink -f LINK)\" LINK`) and ",
                Step::Teardown,
                " again, or pass ",
                HintPart::OptionValue(OptionName::Force, ""),
                " to remove the auth dir anyway and log in again afterwards"
            ],
            Error::ContainersAttached { attached, .. } => {
                let stop = if attached.containers.is_empty() {
                    "stop them first".to_string()
                } else {
                    let ids: Vec<&str> = attached.containers.keys().map(String::as_str).collect();
                    format!("stop them first (`docker stop {}`)", ids.join(" "))
                };
                hint![
                    stop,
                    ", or pass ",
                    HintPart::OptionValue(OptionName::Force, ""),
                    " to remove it anyway (a newer login in it is still carried to the host; \
                     the containers keep the login they have, but share no refresh any more)"
                ]
            }
            Error::MissingBindSource { .. } => hint![
                "log in to the agent on this machine (or leave it out with ",
                OptionName::Agents,
                ") and ",
                Step::Setup,
                " again; docker would otherwise create a root-owned directory at that path"
            ],
            Error::MissingLiveDir { .. } => hint![Step::Setup, " again to write it"],
            Error::UnsafeMountPath { format, path, .. } => unsafe_mount_hint(*format, path),
            Error::UnknownAgent { .. } => hint!["use `all` or one of the known agents"],
            Error::RunUsage { .. } => hint![
                "caw run [--auth-dir A] [--agents NAMES] [--user U] [DOCKER RUN OPTIONS…] IMAGE [CMD…]"
            ],
            Error::NoAgentUser { .. } => {
                hint!["pass `--user NAME` (a user in the image's /etc/passwd)"]
            }
            Error::NoCommand { .. } => {
                hint!["give the command after the image: caw run … IMAGE CMD [ARGS…]"]
            }
            Error::MissingBundledBinary { .. } => hint![
                Step::Setup,
                " again with a caw that bundles it (`cargo install --path crates/caw-cli` or \
                 `pip install .` do), or point CAW_STATIC_BINARY at one \
                 (scripts/build-static.sh builds it)"
            ],
            Error::UnknownEngine { .. } => hint!["pass `--engine docker` or `--engine podman`"],
            Error::NoEngine => hint![
                "install Docker or Podman, start its daemon (Docker), or pass `--engine` \
                 (or set `CAW_ENGINE`)"
            ],
            Error::ForeignEngineOption { owner, .. } => {
                hint![format!("pass `--engine {owner}` (or set `CAW_ENGINE={owner}`)")]
            }
            Error::UnsupportedEngineMode { what_to_do, .. } => hint![what_to_do.clone()],
            Error::EngineUnavailable { engine, .. } => hint![format!(
                "install {engine}, or put the `{engine}` client on PATH"
            )],
            Error::ImageInspect { engine, .. } => hint![format!(
                "check the image name (`{engine} images`), or pass both `--user` and a command"
            )],
            Error::NotLiveMode { .. } => hint![
                "containers of a bind-mode auth dir mount the host files themselves and need \
                 no sync; ",
                Step::Setup,
                " again for the live mode (the default)"
            ],
            _ => return None,
        })
    }
}

/// Avoid the characters; where the JSON form could carry the path, say so.
fn unsafe_mount_hint(format: FlagFormat, path: &std::path::Path) -> Hint {
    let mut h = hint![
        "use an auth dir (",
        OptionName::AuthDir,
        "), host home and mount point without ",
        format.refused().to_string()
    ];
    if format != FlagFormat::Json && FlagFormat::Json.accepts(path) {
        h.0.push(HintPart::IfAvailable(vec![
            ", or ".into(),
            HintPart::OptionValue(OptionName::Format, "json"),
            " and pass each argument yourself".into(),
        ]));
    }
    h
}

/// "field `version` must be 1", or the reason alone for the whole file.
pub(crate) fn field_reason(field: &str, reason: &str) -> String {
    if field == crate::manifest::ROOT {
        reason.to_string()
    } else {
        format!("field `{field}` {reason}")
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
