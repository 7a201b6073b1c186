//! Which side of a credential pair wins, or whether to wait: a pure function.
//!
//! The guard reads both sides of a pair — the host file bind-mounted under
//! the mount point `M` and the agent's copy under the container home `C` —
//! into [`SideState`]s and asks [`decide`] what to do. Nothing here touches
//! the file system, a clock or a thread, so every case is a table row in the
//! tests below.
//!
//! | mount | home | last synced | action |
//! | --- | --- | --- | --- |
//! | missing / unusable / incomplete | any | any | skip: nothing trustworthy to copy |
//! | valid | missing | any | home ← mount (restore) |
//! | valid | symlink | any | home ← mount, as a regular file (the link is never followed) |
//! | valid | unusable / incomplete | any | skip: wait for the agent to finish, never clobber |
//! | valid `x` | valid `x` | any | in sync (remember `x`) |
//! | changed | unchanged | `L` | home ← mount, unless home's expiry is newer |
//! | unchanged | changed | `L` | mount ← home, unless mount's expiry is newer |
//! | changed | changed | `L` or none | the fresher wins; the mount (host) when freshness cannot tell |

use std::fmt;

use caw_auth::expiry::Freshness;
use sha2::Digest as _;

/// A content fingerprint (SHA-256 of a file's bytes).
///
/// Its `Debug` shows only a short prefix: enough to tell two states apart in
/// a debug log, useless for guessing a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(sha2::Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A complete credential: a JSON object, fingerprinted, with its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// Fingerprint of the exact bytes.
    pub digest: Digest,
    /// How fresh the token is, as the agent's file format tells.
    pub freshness: Freshness,
}

/// What one side of a pair holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideState {
    /// Nothing at the path (or a parent directory is missing).
    Missing,
    /// A symbolic link. Never read through; on the home side it is replaced.
    Symlink,
    /// Something the guard must not read or replace: a directory, FIFO or
    /// device, a file with other hard links, or a path below a symlinked
    /// directory.
    Unusable,
    /// A regular file that is not a complete JSON object: a write in progress,
    /// garbage, or larger than any credential.
    Incomplete,
    /// A complete credential.
    Valid(Credential),
}

impl SideState {
    /// The state of a regular file holding `bytes`, read for `agent`.
    pub fn of_bytes(agent: &str, bytes: &[u8]) -> SideState {
        match caw_auth::agents::freshness_of(agent, bytes) {
            Some(freshness) => SideState::Valid(Credential {
                digest: Digest::of(bytes),
                freshness,
            }),
            None => SideState::Incomplete,
        }
    }
}

/// Why a copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyReason {
    /// The home copy is gone: restore it.
    HomeMissing,
    /// The home copy is a symlink: replace the link by a regular file.
    HomeSymlink,
    /// Only the mount side changed since the last sync.
    MountChanged,
    /// Only the home side changed since the last sync.
    HomeChanged,
    /// Both changed (or there is no last sync) and the mount's token is fresher.
    MountFresher,
    /// Both changed (or there is no last sync) and the home's token is fresher.
    HomeFresher,
    /// Both changed and their freshness cannot tell: the host's file wins.
    MountPreferred,
}

/// Why nothing is done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The mount side is gone (the bind mount is missing).
    MountMissing,
    /// The mount side is not a plain readable file.
    MountUnusable,
    /// The mount side is not complete JSON yet; a later event will tell.
    MountIncomplete,
    /// The home side is not a plain file the guard may read or replace.
    HomeUnusable,
    /// The home side is not complete JSON yet; a later event will tell.
    HomeIncomplete,
    /// Copying the mount side would replace the home's token by an older one.
    WouldDowngradeHome,
    /// Copying the home side would replace the host's token by an older one.
    WouldDowngradeMount,
}

/// What the guard does with a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Both sides hold the same bytes; remember them as the last synced.
    InSync,
    /// Copy the mount side over the home side.
    ToHome(CopyReason),
    /// Copy the home side into the mount side.
    ToMount(CopyReason),
    /// Leave both sides alone.
    Skip(SkipReason),
}

/// Decide what to do with a pair, given both sides and the fingerprint both
/// held after the last sync (`None` before the first one).
///
/// The guard's own writes come back as events; they then find both sides
/// equal ([`Action::InSync`]), which is what keeps the guard from looping.
pub fn decide(mount: &SideState, home: &SideState, last_synced: Option<&Digest>) -> Action {
    let m = match mount {
        SideState::Valid(c) => c,
        SideState::Missing => return Action::Skip(SkipReason::MountMissing),
        SideState::Symlink | SideState::Unusable => return Action::Skip(SkipReason::MountUnusable),
        SideState::Incomplete => return Action::Skip(SkipReason::MountIncomplete),
    };
    let h = match home {
        SideState::Valid(c) => c,
        SideState::Missing => return Action::ToHome(CopyReason::HomeMissing),
        SideState::Symlink => return Action::ToHome(CopyReason::HomeSymlink),
        SideState::Unusable => return Action::Skip(SkipReason::HomeUnusable),
        SideState::Incomplete => return Action::Skip(SkipReason::HomeIncomplete),
    };
    if m.digest == h.digest {
        return Action::InSync;
    }
    let mount_changed = last_synced != Some(&m.digest);
    let home_changed = last_synced != Some(&h.digest);
    match (mount_changed, home_changed) {
        (true, false) if h.freshness.is_downgraded_by(&m.freshness) => {
            Action::Skip(SkipReason::WouldDowngradeHome)
        }
        (true, false) => Action::ToHome(CopyReason::MountChanged),
        (false, true) if m.freshness.is_downgraded_by(&h.freshness) => {
            Action::Skip(SkipReason::WouldDowngradeMount)
        }
        (false, true) => Action::ToMount(CopyReason::HomeChanged),
        // Both moved since the last sync, or there was none (the guard just
        // started): whichever token is fresher is the one still valid.
        // `x.is_downgraded_by(y)`: y is older than x.
        _ if m.freshness.is_downgraded_by(&h.freshness) => Action::ToHome(CopyReason::MountFresher),
        _ if h.freshness.is_downgraded_by(&m.freshness) => Action::ToMount(CopyReason::HomeFresher),
        _ => Action::ToHome(CopyReason::MountPreferred),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use Action::*;
    use CopyReason::*;
    use SkipReason::*;

    /// A credential named by a letter, expiring at `exp` (seconds; 0 = unknown).
    fn cred(name: u8, exp: i64) -> SideState {
        SideState::Valid(Credential {
            digest: Digest::of(&[name]),
            freshness: Freshness::expiring((exp > 0).then(|| Timestamp::from_second(exp).unwrap())),
        })
    }

    fn digest(name: u8) -> Digest {
        Digest::of(&[name])
    }

    #[test]
    fn decision_table() {
        use SideState::{Incomplete, Missing, Symlink, Unusable};
        let a = b'a';
        let b = b'b';
        #[rustfmt::skip]
        let cases: &[(&str, SideState, SideState, Option<u8>, Action)] = &[
            // Nothing trustworthy on the mount side: wait.
            ("mount missing", Missing, cred(a, 100), Some(a), Skip(MountMissing)),
            ("mount a symlink", Symlink, cred(a, 100), Some(a), Skip(MountUnusable)),
            ("mount a directory", Unusable, Missing, None, Skip(MountUnusable)),
            ("mount half-written", Incomplete, cred(a, 100), Some(a), Skip(MountIncomplete)),
            ("mount half-written, home gone: wait, then restore", Incomplete, Missing, Some(a), Skip(MountIncomplete)),
            // The home copy is gone or replaced: restore it from the mount.
            ("home deleted", cred(a, 100), Missing, Some(a), ToHome(HomeMissing)),
            ("home deleted before any sync", cred(a, 100), Missing, None, ToHome(HomeMissing)),
            ("home a symlink", cred(a, 100), Symlink, Some(a), ToHome(HomeSymlink)),
            ("home a symlink, mount older than last", cred(b, 50), Symlink, Some(a), ToHome(HomeSymlink)),
            // The home side is mid-write or not ours to touch: wait.
            ("home half-written", cred(a, 100), Incomplete, Some(a), Skip(HomeIncomplete)),
            ("home half-written while mount changed", cred(b, 200), Incomplete, Some(a), Skip(HomeIncomplete)),
            ("home a directory", cred(a, 100), Unusable, Some(a), Skip(HomeUnusable)),
            // Equal: nothing to copy (this is how the guard's own writes end).
            ("both equal", cred(a, 100), cred(a, 100), Some(a), InSync),
            ("both equal, first look", cred(a, 100), cred(a, 100), None, InSync),
            ("both equal, new content", cred(b, 100), cred(b, 100), Some(a), InSync),
            // One side changed since the last sync.
            ("host refreshed", cred(b, 200), cred(a, 100), Some(a), ToHome(MountChanged)),
            ("agent refreshed", cred(a, 100), cred(b, 200), Some(a), ToMount(HomeChanged)),
            ("host changed, no expiry known", cred(b, 0), cred(a, 0), Some(a), ToHome(MountChanged)),
            ("agent changed, no expiry known", cred(a, 0), cred(b, 0), Some(a), ToMount(HomeChanged)),
            ("host changed, same expiry", cred(b, 100), cred(a, 100), Some(a), ToHome(MountChanged)),
            ("host changed to unknown expiry", cred(b, 0), cred(a, 100), Some(a), ToHome(MountChanged)),
            // ...but never to an older token.
            ("host wrote an older token", cred(b, 50), cred(a, 100), Some(a), Skip(WouldDowngradeHome)),
            ("agent wrote an older token", cred(a, 100), cred(b, 50), Some(a), Skip(WouldDowngradeMount)),
            // Both changed, or the guard just started: the fresher wins.
            ("both changed, mount fresher", cred(b, 300), cred(a, 200), Some(b'z'), ToHome(MountFresher)),
            ("both changed, home fresher", cred(a, 200), cred(b, 300), Some(b'z'), ToMount(HomeFresher)),
            ("no last sync, home fresher", cred(a, 200), cred(b, 300), None, ToMount(HomeFresher)),
            ("no last sync, mount fresher", cred(a, 300), cred(b, 200), None, ToHome(MountFresher)),
            ("both changed, same expiry: host wins", cred(a, 100), cred(b, 100), Some(b'z'), ToHome(MountPreferred)),
            ("no last sync, no expiry: host wins", cred(a, 0), cred(b, 0), None, ToHome(MountPreferred)),
            ("both changed, only home expiry known", cred(a, 0), cred(b, 100), Some(b'z'), ToHome(MountPreferred)),
        ];
        for (name, mount, home, last, want) in cases {
            let last = last.map(digest);
            assert_eq!(decide(mount, home, last.as_ref()), *want, "case: {name}");
        }
    }

    #[test]
    fn own_write_comes_back_in_sync() {
        // After ToHome the guard records the mount digest; the write's own
        // inotify event then sees two equal sides and stops there.
        let (m, h) = (cred(b'b', 200), cred(b'a', 100));
        assert_eq!(decide(&m, &h, Some(&digest(b'a'))), ToHome(MountChanged));
        assert_eq!(decide(&m, &m, Some(&digest(b'b'))), InSync);
    }

    #[test]
    fn codex_tiebreak_counts_as_freshness() {
        let at = |s| Some(Timestamp::from_second(s).unwrap());
        let side = |name: u8, tie| {
            SideState::Valid(Credential {
                digest: Digest::of(&[name]),
                freshness: Freshness {
                    expires_at: at(100),
                    tiebreak: at(tie),
                },
            })
        };
        let last = digest(b'a');
        assert_eq!(
            decide(&side(b'b', 5), &side(b'a', 9), Some(&last)),
            Skip(WouldDowngradeHome)
        );
        assert_eq!(
            decide(&side(b'b', 10), &side(b'a', 9), Some(&last)),
            ToHome(MountChanged)
        );
    }

    #[test]
    fn bytes_that_are_not_a_json_object_are_incomplete() {
        for bytes in [
            &b""[..],
            b"{\"claudeAiOauth\": {",
            b"[1,2]",
            b"null",
            b"{} x",
        ] {
            assert_eq!(SideState::of_bytes("claude", bytes), SideState::Incomplete);
        }
        let full = br#"{"claudeAiOauth":{"expiresAt":1700000000000}}"#;
        match SideState::of_bytes("claude", full) {
            SideState::Valid(c) => assert_eq!(
                c.freshness.expires_at,
                Some(Timestamp::from_second(1_700_000_000).unwrap())
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn digest_debug_shows_a_prefix_only() {
        let text = format!("{:?}", Digest::of(b"secret-refresh-token"));
        assert!(text.starts_with("Digest(") && text.len() < 20, "{text}");
    }
}
