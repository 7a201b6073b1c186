//! Errors of the container side. None carries a credential's contents.

use std::path::PathBuf;

/// A failed container-side operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system call failed; the message names the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] caw_auth::Error),

    /// The auth dir is not mounted where it was expected.
    #[error(
        "`{}` is not mounted: start the container with `docker run $(caw auth docker-flags) …`",
        path.display()
    )]
    NotMounted {
        /// The mount point.
        path: PathBuf,
    },

    /// A credential that should be bind-mounted from the host is empty or absent.
    #[error(
        "`{}` is {what}: the credential mount for {agent} is missing; start the container \
         with `docker run $(caw auth docker-flags) …` (on the host, `caw auth docker-flags` \
         prints the mounts)",
        path.display()
    )]
    MissingBindSource {
        /// The agent.
        agent: String,
        /// The path under the mount point.
        path: PathBuf,
        /// `missing`, `empty`, `not a regular file` or `not bind-mounted from the host`.
        what: &'static str,
    },

    /// Live mode, but `M/live` is not mounted from the host.
    #[error(
        "`{}` is not mounted from the host: the live credentials are missing; start the \
         container with `docker run $(caw auth docker-flags) …` or with `caw run`",
        path.display()
    )]
    MissingLiveMount {
        /// `M/live`.
        path: PathBuf,
    },

    /// A staged config named by the manifest is absent from the auth dir.
    #[error("`{}` is missing from the auth dir; run `caw auth setup` again on the host", path.display())]
    MissingStaged {
        /// The path under the mount point.
        path: PathBuf,
    },

    /// The agent user is not in the password file.
    #[error("user `{user}` is not in `{}`; create it in the image", passwd.display())]
    UnknownUser {
        /// The name given.
        user: String,
        /// The file searched.
        passwd: PathBuf,
    },

    /// Container setup needs root to give files to the agent user.
    #[error("must run as root (from the image's entrypoint) to set up files for `{user}`")]
    NotRoot {
        /// The agent user.
        user: String,
    },

    /// The background guard did not come up.
    #[error("the credential guard did not start: {reason}")]
    GuardStart {
        /// What happened to it.
        reason: String,
    },
}

/// The container side's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
