//! The container side of caw: put the logins into the agent's home, then
//! keep each credential equal between the home and the host (through
//! `M/live` in live mode, the bind-mounted host file in bind mode) with the
//! sync engine of [`caw_sync`].
//!
//! - [`container_setup`] checks the mounts, copies the configs, brings each
//!   credential into the home by the guard's own rules, and starts the guard
//!   in the background;
//! - [`run_guard`] is that guard: [`caw_sync::Engine`] on one pair per
//!   credential until SIGTERM;
//! - users are read from `/etc/passwd`, never NSS, so a static build works
//!   in any image ([`user`]).

mod error;
mod guard;
pub mod init;
mod mounts;
pub mod setup;
pub mod supervise;
pub mod user;

pub use error::{Error, Result};
pub use guard::{run_guard, GuardOptions};
pub use setup::{container_setup, keep_guard, GuardCommand, SetupOptions, READY_FD};

/// Take the ready-notification descriptor a parent `container-setup` passed,
/// if it is open.
pub fn inherited_ready_fd(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    // Only a descriptor above stdio that this process has open.
    if fd < 3 || !std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists() {
        return None;
    }
    // SAFETY: the descriptor is open (checked above, while this process is
    // still single-threaded) and was handed to this process to own.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}
