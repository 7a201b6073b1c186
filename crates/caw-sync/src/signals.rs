//! SIGTERM, SIGINT and SIGHUP as a readable descriptor, so a loop blocked in
//! `poll` wakes up to stop cleanly.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The stop signals, blocked and readable from a descriptor.
#[derive(Debug)]
pub struct StopSignals {
    fd: SignalFd,
}

impl StopSignals {
    /// Block SIGTERM, SIGINT and SIGHUP in this thread (call it before any
    /// other thread starts) and receive them here instead.
    pub fn new() -> std::io::Result<StopSignals> {
        let mut set = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            set.add(s);
        }
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(StopSignals { fd })
    }

    /// The name of a signal that arrived, if one did.
    pub fn pending(&self) -> Option<&'static str> {
        let info = self.fd.read_signal().ok()??;
        Signal::try_from(info.ssi_signo as i32)
            .ok()
            .map(Signal::as_str)
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
