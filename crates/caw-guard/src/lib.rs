//! The container side of caw: copy the staged files into the agent's home,
//! then keep each bind-mounted host credential and the agent's copy equal.
//!
//! The guard is one pipeline: inotify events (on the bind-mounted file's own
//! inode, and on the home directories filtered by name) → debounce →
//! [`decide()`] per pair → an in-place write to the host file or a temp file
//! renamed into the home. [`decide()`] is a pure function of the two sides'
//! states and the last synced fingerprint, so the rules are tested as a
//! table; the loop in [`guard`] only feeds it.
//!
//! The guarantees, each kept by one module:
//! - the host file keeps its inode, owner and mode ([`mount`]: in-place writes
//!   through a descriptor held from the start);
//! - the home copy is replaced atomically, owned by the agent user with the
//!   manifest's mode, and no symlink below the home is followed ([`home`]);
//! - a half-written or non-JSON file is never copied, and no token is replaced
//!   by one that expires earlier ([`mod@decide`]);
//! - users are read from `/etc/passwd`, never NSS, so a static build works in
//!   any image ([`user`]).
//!
//! ```
//! use caw_guard::decide::{decide, Action, CopyReason, SideState};
//!
//! let host = SideState::of_bytes("claude", br#"{"claudeAiOauth":{"expiresAt":2}}"#);
//! assert_eq!(decide(&host, &SideState::Missing, None), Action::ToHome(CopyReason::HomeMissing));
//! ```

pub mod decide;
mod error;
pub mod guard;
pub mod home;
pub mod init;
pub mod mount;
pub mod setup;
pub mod supervise;
mod sys;
pub mod user;

pub use decide::decide;
pub use error::{Error, Result};
pub use guard::{run_guard, Guard, GuardConfig, GuardOptions, PairSpec};
pub use setup::{container_setup, GuardCommand, SetupOptions, READY_FD};

/// Take the ready-notification descriptor a parent `container-setup` passed,
/// if it is open.
pub fn inherited_ready_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    sys::inherited_fd(fd)
}

/// SIGTERM/SIGINT/SIGHUP as a readable descriptor, for callers that drive
/// [`Guard::run`] themselves.
pub fn stop_signals() -> std::io::Result<impl std::os::fd::AsFd> {
    sys::StopSignals::new()
}
