//! The two ends of a pair: how each is read, written and watched.
//!
//! One file for each thing observed; this one holds what they share (what a
//! look sees, its fingerprint, what to watch) and [`End`], which picks one.
//!
//! - [`DirFile`] (`dir.rs`): a file below a root the writer does not trust (the agent's
//!   home, the live directory). Every component below the root is walked
//!   with `O_NOFOLLOW`; writes are a temp file renamed into place, with the
//!   owner and mode set through the handle.
//! - [`HostFile`] (`host.rs`): the host user's own credential file, which the host sync
//!   keeps. Trusted: a symlink there (dotfile managers) is followed, and the
//!   file is replaced at its target, keeping its mode and owner.
//! - [`MountedFile`] (`mounted.rs`): a host file bind-mounted into a container (`bind`
//!   mode). It cannot be renamed over, so it is written in place through a
//!   descriptor held from the start: the one write that is not a rename.
//!
//! Every write compares before it commits (`commit.rs`): the destination is read again
//! just before the rename, and if it no longer holds what the decision was
//! based on, nothing is written and the caller decides again.

mod commit;
mod dir;
mod host;
mod mounted;

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use caw_auth::agents::Agent;
use caw_auth::credential::{Credential, Digest};
use caw_auth::fs_at::Kind;
use nix::sys::inotify::AddWatchFlags as W;

pub use dir::DirFile;
pub use host::HostFile;
pub use mounted::MountedFile;

use crate::decide::Observed;

/// What is at one side right now, before it is judged. Holds credential
/// bytes: its `Debug` shows their length and digest only.
#[derive(Clone, PartialEq, Eq)]
pub enum Look {
    /// Nothing.
    Missing,
    /// A symlink (never read through).
    Symlink,
    /// Something that must not be read.
    Unusable,
    /// A plain file's bytes (at most one more than the credential cap).
    File(Vec<u8>),
}

impl std::fmt::Debug for Look {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Look::Missing => f.write_str("Missing"),
            Look::Symlink => f.write_str("Symlink"),
            Look::Unusable => f.write_str("Unusable"),
            Look::File(b) => write!(f, "File({} bytes, {:?})", b.len(), Digest::of(b)),
        }
    }
}

impl Look {
    fn from_kind(kind: Kind, bytes: Option<Vec<u8>>) -> Look {
        match (kind, bytes) {
            (Kind::Missing, _) => Look::Missing,
            (Kind::Symlink, _) => Look::Symlink,
            (Kind::File, Some(b)) => Look::File(b),
            _ => Look::Unusable,
        }
    }

    /// Judge what was seen, once: the one place bytes become a verdict.
    pub fn classify(&self, agent: &Agent, now: jiff::Timestamp) -> Observed {
        match self {
            Look::Missing => Observed::Missing,
            Look::Symlink => Observed::Symlink,
            Look::Unusable => Observed::Unusable,
            Look::File(bytes) => match Credential::parse(agent, bytes, now) {
                Some(c) => Observed::Valid(c),
                None => Observed::Incomplete,
            },
        }
    }

    /// What it was, to compare against just before a write commits.
    pub fn fingerprint(&self) -> Fingerprint {
        match self {
            Look::Missing => Fingerprint::Missing,
            Look::Symlink => Fingerprint::Symlink,
            Look::Unusable => Fingerprint::Unusable,
            Look::File(b) => Fingerprint::Bytes(Digest::of(b)),
        }
    }
}

/// A side's state, reduced to what compare-before-commit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingerprint {
    /// Nothing.
    Missing,
    /// A symlink.
    Symlink,
    /// Something not readable.
    Unusable,
    /// A plain file with these bytes.
    Bytes(Digest),
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The new bytes are in place.
    Done,
    /// The destination changed since it was read: nothing was written.
    Changed,
}

/// Something to watch for one side, and the entry name that concerns it.
#[derive(Debug)]
pub struct WatchPoint {
    /// The directory or file to watch.
    pub target: WatchTarget,
    /// Which events.
    pub mask: W,
    /// Events about other names in a watched directory are ignored.
    pub name: Option<OsString>,
}

/// A watch target: an open descriptor (watched through `/proc/self/fd`, so
/// no name is resolved again) or a trusted path.
#[derive(Debug)]
pub enum WatchTarget {
    /// An open file or directory.
    Fd(OwnedFd),
    /// A path.
    Path(PathBuf),
}

// Flags nix does not name.
pub(crate) const MASK_ADD: W = W::from_bits_retain(nix::libc::IN_MASK_ADD);
const EXCL_UNLINK: W = W::from_bits_retain(nix::libc::IN_EXCL_UNLINK);

/// Entries appearing or going away: all a directory on the way needs.
pub(crate) const DIR_EVENTS: W = W::IN_CREATE
    .union(W::IN_DELETE)
    .union(W::IN_MOVED_FROM)
    .union(W::IN_MOVED_TO)
    .union(W::IN_DELETE_SELF)
    .union(W::IN_MOVE_SELF)
    .union(W::IN_ONLYDIR)
    .union(EXCL_UNLINK)
    // Watches on a shared directory serve several pairs: never narrow them.
    .union(MASK_ADD);
/// The file's own directory also reports writes to it.
pub(crate) const PARENT_EVENTS: W = DIR_EVENTS.union(W::IN_MODIFY).union(W::IN_CLOSE_WRITE);
/// A file watched on its own inode.
pub(crate) const FILE_EVENTS: W = W::IN_MODIFY
    .union(W::IN_CLOSE_WRITE)
    .union(W::IN_ATTRIB)
    .union(W::IN_DELETE_SELF)
    .union(W::IN_MOVE_SELF);

/// One end of a pair.
#[derive(Debug)]
pub enum End {
    /// Below an untrusted root.
    Dir(DirFile),
    /// The host's own file.
    Host(HostFile),
    /// A bind-mounted host file, written in place.
    Mounted(MountedFile),
}

impl End {
    /// Where it is, for messages.
    pub fn path(&self) -> PathBuf {
        match self {
            End::Dir(d) => d.path(),
            End::Host(h) => h.path().to_path_buf(),
            End::Mounted(m) => m.path().to_path_buf(),
        }
    }

    /// Read it now.
    pub fn look(&self) -> io::Result<Look> {
        match self {
            End::Dir(d) => d.look(),
            End::Host(h) => h.look(),
            End::Mounted(m) => m.look(),
        }
    }

    /// Replace its content by `bytes` if it still matches `expect`.
    pub fn replace(&self, bytes: &[u8], expect: Fingerprint) -> io::Result<Commit> {
        match self {
            End::Dir(d) => d.replace(bytes, expect),
            End::Host(h) => h.replace(bytes, expect),
            End::Mounted(m) => m.replace(bytes, expect),
        }
    }

    /// What to watch to see it change, as things are now.
    pub fn watch_points(&self) -> Vec<WatchPoint> {
        match self {
            End::Dir(d) => d.watch_points(),
            End::Host(h) => h.watch_points(),
            End::Mounted(m) => m.watch_points(),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::Fingerprint;
    use caw_auth::credential::Digest;

    pub const CRED: &[u8] = br#"{"claudeAiOauth":{"expiresAt":1700000000000}}"#;

    pub fn fp(bytes: &[u8]) -> Fingerprint {
        Fingerprint::Bytes(Digest::of(bytes))
    }
}

#[cfg(test)]
mod debug_tests {
    use super::Look;

    #[test]
    fn a_look_s_debug_shows_no_credential_bytes() {
        let look = Look::File(br#"{"refreshToken":"sk-ant-ort01-SECRET"}"#.to_vec());
        let text = format!("{look:?}");
        assert!(
            !text.contains("SECRET") && !text.contains("refreshToken"),
            "{text}"
        );
        assert!(text.starts_with("File(38 bytes, Digest("), "{text}");
    }
}
