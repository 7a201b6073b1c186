//! The logic of `caw auth`: carry coding agents' logins into Docker containers
//! without the container's token refresh logging the host out.
//!
//! On the host, [`setup()`] snapshots each agent's credential and cleaned
//! configs into an *auth dir* with a [`Manifest`]; [`get_docker_flags`] prints
//! the `docker run` mounts: the auth dir read-only, plus the credential
//! channel (the live directory, or each host credential file in bind mode),
//! and starts the host sync, a background process, when none runs;
//! [`get_status`] reports what is managed and when tokens expire;
//! [`teardown()`] removes the auth dir. Host files are only read, except by
//! teardown, which first carries a newer login from `live/` back to its host
//! file.
//!
//! ```no_run
//! use caw_auth::host_sync::SyncCommand;
//! use caw_auth::{setup, SetupOptions, get_docker_flags};
//!
//! let report = setup(&SetupOptions {
//!     agents: vec!["claude".into(), "codex".into()],
//!     ..SetupOptions::default()
//! })?;
//! // How this front end runs the host sync, which get_docker_flags starts
//! // in the background when none runs for the auth dir.
//! let sync = |auth_dir: &std::path::Path| {
//!     Ok(SyncCommand {
//!         program: "/usr/local/bin/caw".into(),
//!         args: vec!["auth".into(), "sync".into(), "--auth-dir".into(), auth_dir.into()],
//!     })
//! };
//! println!("docker run {} image", get_docker_flags(Some(&report.auth_dir), sync)?);
//! # Ok::<(), caw_auth::Error>(())
//! ```

pub mod agents;
pub mod attached;
pub mod auth_dir;
pub mod bundle;
pub mod credential;
pub mod docker_flags;
pub mod engine;
mod error;
pub mod expiry;
mod flag_format;
pub mod fs;
pub mod fs_at;
pub mod hint;
pub mod host_sync;
pub mod identity;
pub mod live;
pub mod manifest;
pub mod ownership;
pub mod paths;
pub mod run;
pub mod selinux;
mod setup;
mod status;
mod teardown;
pub mod trusted;

pub use docker_flags::{
    docker_mounts, format_labeled_mounts, format_mounts, get_docker_flags, mount_args,
    DockerMounts, FlagFormat, Mount,
};
pub use engine::Engine;
pub use error::{Error, Result};
pub use hint::{Hint, OptionName, Spelling, Step};
pub use manifest::{AuthMode, FileType, Manifest, ManifestFile, Mode, Strategy};
pub use paths::default_auth_dir;
pub use setup::{setup, SetupOptions, SetupReport};
pub use status::{
    get_status, get_status_at, status_report, AuthFileStatus, Newest, Source, StatusReport,
};
pub use teardown::{find_legacy_symlinks, teardown, TeardownOptions, TeardownOutcome};
