//! Which way a credential moves, or why it does not: a pure function.
//!
//! A pair has two sides. `A` is the one nearer the host's truth (the live
//! file for a container's guard, the host file for the host sync); `B` is
//! the copy that gets restored when it goes missing (the agent's home copy
//! for the guard, the live file for the host sync). Both are observed and
//! classified once ([`Observed`]), then [`decide`] says what to do, given
//! the fingerprint both held after the last sync. Nothing here touches the
//! file system, a clock or a thread, so every rule is a table row in the
//! tests below.
//!
//! | A | B | rule |
//! | --- | --- | --- |
//! | missing / unusable / incomplete | any | hold: nothing trustworthy to copy |
//! | valid | missing or a symlink | restore B from A |
//! | valid | incomplete or unusable | hold (a write in progress); repair from A once quiet |
//! | `x` | `x` | in sync |
//! | valid | valid | the side that changed since the last sync is copied; both changed: a usable login over a logged-out one, then the fresher, then A |
//!
//! and a copy from `src` to `dst` is refused when `src` holds no usable
//! login but `dst` does (a logout or refused refresh stays where it was
//! written), or when the two are logins of different accounts or kinds.
//! When `dst` is known to be fresher than `src` (a lost race, a stale
//! writer), the copy goes the other way: the newest login always spreads.

use caw_auth::credential::{Credential, Digest};

/// One side of a pair as it is now, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Nothing at the path (or a directory on the way is missing).
    Missing,
    /// A symbolic link, never read through.
    Symlink,
    /// Something caw must not read: a directory, FIFO or device, a file
    /// with other hard links, or a path below a symlinked directory.
    Unusable,
    /// A regular file that is not one complete JSON object within the size
    /// cap: a write in progress, or garbage.
    Incomplete,
    /// A complete credential.
    Valid(Credential),
}

impl Observed {
    /// The credential, when the side holds one.
    pub fn credential(&self) -> Option<&Credential> {
        match self {
            Observed::Valid(c) => Some(c),
            _ => None,
        }
    }
}

/// A side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side nearer the host's truth.
    A,
    /// The side that is restored when missing.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Why a copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// B is missing: restore it.
    Restore,
    /// B is a symlink: replace the link by a regular file.
    ReplaceSymlink,
    /// B stayed incomplete or unusable with nothing happening: repair it.
    Repair,
    /// Only the source changed since the last sync.
    Changed,
    /// Both changed (or there was no last sync) and the source won.
    Newer,
    /// The destination had been replaced by an older login: the newer one
    /// is carried back over it.
    KeepNewest,
    /// A replaced B's login, which it had held, with an older one: the
    /// judge of B's logins refused it (see [`Context::a_judges`]).
    Overruled,
    /// B's login was refused by the host sync's check with the provider:
    /// A is put back over it.
    Unvouched,
}

/// Why nothing is done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hold {
    /// A side holds nothing to copy yet (missing, unusable or incomplete).
    Waiting(Side, Waiting),
    /// The side that changed holds no usable login (a logout, a refused
    /// refresh) while the other does: the logged-out file stays where it is.
    LoggedOut(Side),
    /// The side that changed holds a login of another account or kind.
    Foreign(Side),
    /// The side that changed states an expiry further ahead than the
    /// agent's tokens live, or none against one that states it: a planted
    /// login, which never replaces a real one.
    Implausible(Side),
    /// The side that changed holds a login the provider has not vouched for
    /// yet (the host sync asks it before a container's login reaches the
    /// host; see `caw_refresh::vouch`): nothing moves until it answers.
    Unvouched(Side),
}

/// What a side is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Waiting {
    /// It does not exist.
    Missing,
    /// It is not something caw may read (or it is a symlink, on side A).
    Unusable,
    /// It is not complete JSON yet.
    Incomplete,
}

/// What to do with a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Both sides hold the same bytes; remember them as the last synced.
    InSync,
    /// Copy `from` over the other side.
    Copy {
        /// The source side.
        from: Side,
        /// Why.
        why: Why,
    },
    /// Leave both sides alone.
    Hold(Hold),
}

/// What [`decide`] needs besides the two sides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The fingerprint both sides held after the last sync (`None` before
    /// the first).
    pub last: Option<&'a Digest>,
    /// B has been incomplete or unusable for a while with nothing happening
    /// to the pair: a writer that is gone, so B is repaired from A.
    pub b_quiet: bool,
    /// B is a copy no agent writes (the live directory, for the host sync):
    /// only caw's own writers, which never put a logged-out file over a
    /// login, or a container misbehaving. A logged-out B is then repaired
    /// from a usable A instead of being left where it was written.
    pub b_shared: bool,
    /// B is an agent's copy in a container: once quiet, a B with no usable
    /// login is repaired from a usable A of the same account (a container
    /// that lost a refresh race must not stay logged out while the shared
    /// login is good). On the host a logout stays.
    pub heal_b: bool,
    /// A is written by a sync that judges B before it takes it (the live
    /// file, for a container's guard in live mode). When A replaces a login
    /// it held with an older one, that is its verdict (a refused or foreign
    /// login put right from the host), and B follows it instead of pushing
    /// the newer-looking login back.
    pub a_judges: bool,
}

/// Decide what to do with a pair.
pub fn decide(a: &Observed, b: &Observed, ctx: Context<'_>) -> Action {
    let Context {
        last,
        b_quiet,
        b_shared,
        heal_b,
        a_judges,
    } = ctx;
    let copy = |from, why| Action::Copy { from, why };
    let ca = match a {
        Observed::Valid(c) => c,
        Observed::Missing => return Action::Hold(Hold::Waiting(Side::A, Waiting::Missing)),
        Observed::Symlink | Observed::Unusable => {
            return Action::Hold(Hold::Waiting(Side::A, Waiting::Unusable))
        }
        Observed::Incomplete => return Action::Hold(Hold::Waiting(Side::A, Waiting::Incomplete)),
    };
    let cb = match b {
        Observed::Valid(c) => c,
        Observed::Missing => return copy(Side::A, Why::Restore),
        Observed::Symlink => return copy(Side::A, Why::ReplaceSymlink),
        Observed::Unusable | Observed::Incomplete if b_quiet => return copy(Side::A, Why::Repair),
        Observed::Unusable => return Action::Hold(Hold::Waiting(Side::B, Waiting::Unusable)),
        Observed::Incomplete => return Action::Hold(Hold::Waiting(Side::B, Waiting::Incomplete)),
    };
    if ca.digest == cb.digest {
        return Action::InSync;
    }
    let (from, why) = match (last != Some(&ca.digest), last != Some(&cb.digest)) {
        (true, false) => (Side::A, Why::Changed),
        (false, true) => (Side::B, Why::Changed),
        // Both moved since the last sync, or there was none.
        _ => (newer_of(ca, cb), Why::Newer),
    };
    let (src, dst) = match from {
        Side::A => (ca, cb),
        Side::B => (cb, ca),
    };
    if !src.usable && dst.usable {
        let heal = heal_b && b_quiet && !src.identity.conflicts_with(&dst.identity);
        if from == Side::B && (b_shared || heal) {
            return copy(Side::A, Why::Repair);
        }
        return Action::Hold(Hold::LoggedOut(from));
    }
    if src.identity.conflicts_with(&dst.identity) {
        return Action::Hold(Hold::Foreign(from));
    }
    let unordered = src.usable
        && dst.usable
        && src.freshness.expires_at.is_none()
        && dst.freshness.expires_at.is_some();
    if src.implausible || unordered {
        if from == Side::B && b_shared {
            return copy(Side::A, Why::Repair);
        }
        return Action::Hold(Hold::Implausible(from));
    }
    if dst.usable && dst.freshness.is_fresher_than(&src.freshness) {
        // A took B's login back (B unchanged since A held it): its verdict.
        if from == Side::A && why == Why::Changed && a_judges {
            return copy(Side::A, Why::Overruled);
        }
        return copy(from.other(), Why::KeepNewest);
    }
    copy(from, why)
}

/// Of two credentials that both changed: a usable login over one without,
/// then the fresher, then A.
fn newer_of(a: &Credential, b: &Credential) -> Side {
    if a.usable != b.usable {
        return if a.usable { Side::A } else { Side::B };
    }
    if b.freshness.is_fresher_than(&a.freshness) {
        Side::B
    } else {
        Side::A
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caw_auth::credential::{Freshness, Identity};
    use jiff::Timestamp;
    use Action::{Copy, Hold as H, InSync};
    use Side::{A, B};
    use Why::*;

    /// A credential named by a letter, expiring at `exp` (seconds; 0 = unknown).
    fn cred(name: u8, exp: i64) -> Observed {
        Observed::Valid(Credential {
            digest: Digest::of(&[name]),
            usable: true,
            freshness: Freshness {
                expires_at: (exp > 0).then(|| Timestamp::from_second(exp).unwrap()),
                tiebreak: None,
            },
            identity: Identity::default(),
            implausible: false,
        })
    }

    /// The same, logged out (no usable token).
    fn out(name: u8, exp: i64) -> Observed {
        let Observed::Valid(mut c) = cred(name, exp) else {
            unreachable!()
        };
        c.usable = false;
        Observed::Valid(c)
    }

    /// The same, with an expiry beyond the agent's token lifetime.
    fn far(name: u8) -> Observed {
        let Observed::Valid(mut c) = cred(name, 0) else {
            unreachable!()
        };
        c.implausible = true;
        Observed::Valid(c)
    }

    /// The same, for account `who`.
    fn of(name: u8, exp: i64, who: &str) -> Observed {
        let Observed::Valid(mut c) = cred(name, exp) else {
            unreachable!()
        };
        c.identity = Identity::new([("account", who)]);
        Observed::Valid(c)
    }

    fn copy(from: Side, why: Why) -> Action {
        Copy { from, why }
    }

    /// `decide` for an agent's home as B (the guard).
    fn d(a: &Observed, b: &Observed, last: Option<&Digest>, b_quiet: bool) -> Action {
        decide(
            a,
            b,
            Context {
                last,
                b_quiet,
                b_shared: false,
                heal_b: false,
                a_judges: false,
            },
        )
    }

    /// Name, A, B, last synced (by letter), B quiet, expected action.
    type Case = (&'static str, Observed, Observed, Option<u8>, bool, Action);

    #[test]
    fn decision_table() {
        use Observed::{Incomplete, Missing, Symlink, Unusable};
        let (a, b, z) = (b'a', b'b', b'z');
        let wait = |s, w| H(Hold::Waiting(s, w));
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // Nothing trustworthy on side A: wait.
            ("A missing", Missing, cred(a, 100), Some(a), false, wait(A, Waiting::Missing)),
            ("A a symlink", Symlink, cred(a, 100), Some(a), false, wait(A, Waiting::Unusable)),
            ("A a directory", Unusable, Missing, None, false, wait(A, Waiting::Unusable)),
            ("A half-written", Incomplete, cred(a, 100), Some(a), false, wait(A, Waiting::Incomplete)),
            ("A half-written, B gone", Incomplete, Missing, Some(a), true, wait(A, Waiting::Incomplete)),
            // B gone or replaced by a link: restore it, whatever it was.
            ("B deleted", cred(a, 100), Missing, Some(a), false, copy(A, Restore)),
            ("B deleted before any sync", cred(a, 100), Missing, None, false, copy(A, Restore)),
            ("B deleted, A logged out", out(a, 0), Missing, Some(a), false, copy(A, Restore)),
            ("B a symlink", cred(a, 100), Symlink, Some(a), false, copy(A, ReplaceSymlink)),
            ("B a symlink, A older than last", cred(b, 50), Symlink, Some(a), false, copy(A, ReplaceSymlink)),
            // B mid-write or not ours: wait, and repair once nothing happens any more.
            ("B half-written", cred(a, 100), Incomplete, Some(a), false, wait(B, Waiting::Incomplete)),
            ("B half-written while A changed", cred(b, 200), Incomplete, Some(a), false, wait(B, Waiting::Incomplete)),
            ("B half-written, writer gone", cred(a, 100), Incomplete, Some(a), true, copy(A, Repair)),
            ("B a directory or hard link", cred(a, 100), Unusable, Some(a), false, wait(B, Waiting::Unusable)),
            ("B unusable, quiet", cred(a, 100), Unusable, Some(a), true, copy(A, Repair)),
            // Equal: nothing to copy (this is how a sync's own writes end).
            ("both equal", cred(a, 100), cred(a, 100), Some(a), false, InSync),
            ("both equal, first look", cred(a, 100), cred(a, 100), None, false, InSync),
            ("both equal, new content", cred(b, 100), cred(b, 100), Some(a), false, InSync),
            // One side changed since the last sync.
            ("A refreshed", cred(b, 200), cred(a, 100), Some(a), false, copy(A, Changed)),
            ("B refreshed", cred(a, 100), cred(b, 200), Some(a), false, copy(B, Changed)),
            ("A changed, no expiry known", cred(b, 0), cred(a, 0), Some(a), false, copy(A, Changed)),
            ("B changed, no expiry known", cred(a, 0), cred(b, 0), Some(a), false, copy(B, Changed)),
            ("A changed, same expiry", cred(b, 100), cred(a, 100), Some(a), false, copy(A, Changed)),
            ("A changed to an unknown expiry", cred(b, 0), cred(a, 100), Some(a), false, H(Hold::Implausible(A))),
            ("B changed to an unknown expiry", cred(a, 100), cred(b, 0), Some(a), false, H(Hold::Implausible(B))),
            ("B planted a far expiry", cred(a, 100), far(b), Some(a), false, H(Hold::Implausible(B))),
            ("A planted a far expiry", far(b), cred(a, 100), Some(a), false, H(Hold::Implausible(A))),
            ("a planted B is replaced by A's refresh", cred(b, 200), far(a), Some(a), false, copy(A, Changed)),
            // ...but an older login never replaces a newer one: the newer goes back.
            ("A wrote an older token", cred(b, 50), cred(a, 100), Some(a), false, copy(B, KeepNewest)),
            ("B wrote an older token", cred(a, 100), cred(b, 50), Some(a), false, copy(A, KeepNewest)),
            // Logged out (a logout, a refused refresh, `{}`): stays where it was written.
            ("B logged out", cred(a, 100), out(b, 0), Some(a), false, H(Hold::LoggedOut(B))),
            ("A logged out", out(b, 0), cred(a, 100), Some(a), false, H(Hold::LoggedOut(A))),
            ("B logged out with a late expiry", cred(a, 100), out(b, 900), Some(a), false, H(Hold::LoggedOut(B))),
            ("B logs in again", out(a, 0), cred(b, 100), Some(a), false, copy(B, Changed)),
            ("A logs in again", cred(b, 100), out(a, 0), Some(a), false, copy(A, Changed)),
            ("both logged out, B changed", out(a, 0), out(b, 0), Some(a), false, copy(B, Changed)),
            ("a stale logged-out file does not come back", cred(b, 900), out(a, 0), Some(b'c'), false, copy(A, Newer)),
            // Another account or kind: never replaces the other side's.
            ("B another account", of(a, 100, "x"), of(b, 200, "y"), Some(a), false, H(Hold::Foreign(B))),
            ("A another account", of(b, 200, "y"), of(a, 100, "x"), Some(a), false, H(Hold::Foreign(A))),
            ("same account", of(a, 100, "x"), of(b, 200, "x"), Some(a), false, copy(B, Changed)),
            ("account unknown on one side", cred(a, 100), of(b, 200, "y"), Some(a), false, copy(B, Changed)),
            // Both changed, or the sync just started: the newer login wins.
            ("both changed, A fresher", cred(b, 300), cred(a, 200), Some(z), false, copy(A, Newer)),
            ("both changed, B fresher", cred(a, 200), cred(b, 300), Some(z), false, copy(B, Newer)),
            ("no last sync, B fresher", cred(a, 200), cred(b, 300), None, false, copy(B, Newer)),
            ("no last sync, A fresher", cred(a, 300), cred(b, 200), None, false, copy(A, Newer)),
            ("both changed, same expiry: A", cred(a, 100), cred(b, 100), Some(z), false, copy(A, Newer)),
            ("no last sync, no expiry: A", cred(a, 0), cred(b, 0), None, false, copy(A, Newer)),
            ("both changed, only B's expiry known", cred(a, 0), cred(b, 100), Some(z), false, H(Hold::Implausible(A))),
            ("no last sync, A logged out", out(a, 0), cred(b, 100), None, false, copy(B, Newer)),
            ("no last sync, B logged out", cred(a, 100), out(b, 900), None, false, copy(A, Newer)),
            ("both changed, other accounts", of(a, 100, "x"), of(b, 200, "y"), Some(z), false, H(Hold::Foreign(B))),
        ];
        for (name, a, b, last, quiet, want) in cases {
            let last = last.map(|l| Digest::of(&[l]));
            assert_eq!(d(a, b, last.as_ref(), *quiet), *want, "case: {name}");
        }
    }

    #[test]
    fn a_sync_ends_in_sync() {
        // A copy makes both sides equal; the write's own event then finds
        // them equal and stops there, whichever way it went.
        let (x, y) = (cred(b'x', 200), cred(b'y', 100));
        let last = Digest::of(b"y");
        assert_eq!(d(&x, &y, Some(&last), false), copy(A, Changed));
        assert_eq!(d(&x, &x, Some(&Digest::of(b"x")), false), InSync);
    }

    #[test]
    fn codex_tiebreak_counts_as_freshness() {
        let at = |s| Some(Timestamp::from_second(s).unwrap());
        let side = |name: u8, tie| {
            Observed::Valid(Credential {
                digest: Digest::of(&[name]),
                usable: true,
                freshness: Freshness {
                    expires_at: at(100),
                    tiebreak: at(tie),
                },
                identity: Identity::default(),
                implausible: false,
            })
        };
        let last = Digest::of(b"a");
        assert_eq!(
            d(&side(b'b', 5), &side(b'a', 9), Some(&last), false),
            copy(B, KeepNewest)
        );
        assert_eq!(
            d(&side(b'b', 10), &side(b'a', 9), Some(&last), false),
            copy(A, Changed)
        );
    }

    #[test]
    fn a_logged_out_shared_copy_is_repaired_from_the_host() {
        // The live copy, for the host sync: no agent writes it, so a
        // logged-out file there is a container misbehaving, not a logout.
        fn shared(a: &Observed, b: &Observed, last: Option<&Digest>) -> Action {
            let ctx = Context {
                last,
                b_quiet: false,
                b_shared: true,
                heal_b: false,
                a_judges: false,
            };
            decide(a, b, ctx)
        }
        let last = Digest::of(b"a");
        assert_eq!(
            shared(&cred(b'a', 100), &out(b'b', 0), Some(&last)),
            copy(A, Repair)
        );
        assert_eq!(
            shared(&cred(b'a', 100), &out(b'b', 0), None),
            copy(A, Newer)
        );
        // A logged-out host file still never replaces a login there.
        assert_eq!(
            shared(&out(b'b', 0), &cred(b'a', 100), Some(&last)),
            H(Hold::LoggedOut(A))
        );
        assert_eq!(
            shared(&out(b'a', 0), &out(b'b', 0), Some(&last)),
            copy(B, Changed)
        );
        // A planted login in live/ is put back from the host at once.
        assert_eq!(
            shared(&cred(b'a', 100), &far(b'b'), Some(&last)),
            copy(A, Repair)
        );
    }

    #[test]
    fn a_logged_out_container_copy_heals_once_quiet() {
        // The guard's home copy: a lost refresh race wrote a logged-out
        // file after the fresh login had arrived.
        fn guard(a: &Observed, b: &Observed, last: Option<&Digest>, quiet: bool) -> Action {
            let ctx = Context {
                last,
                b_quiet: quiet,
                b_shared: false,
                heal_b: true,
                a_judges: false,
            };
            decide(a, b, ctx)
        }
        let last = Digest::of(b"a");
        #[rustfmt::skip]
        let cases: &[(&str, Observed, Observed, bool, Action)] = &[
            ("logged out, still busy", cred(b'a', 100), out(b'b', 0), false, H(Hold::LoggedOut(B))),
            ("logged out, quiet", cred(b'a', 100), out(b'b', 0), true, copy(A, Repair)),
            ("logged out, another account", of(b'a', 100, "x"), { let Observed::Valid(mut c) = of(b'b', 0, "y") else { unreachable!() }; c.usable = false; Observed::Valid(c) }, true, H(Hold::LoggedOut(B))),
            ("live logged out too", out(b'a', 0), out(b'b', 0), true, copy(B, Changed)),
            ("a logged-out live never spreads", out(b'b', 0), cred(b'a', 100), true, H(Hold::LoggedOut(A))),
        ];
        for (name, a, b, quiet, want) in cases {
            assert_eq!(guard(a, b, Some(&last), *quiet), *want, "case: {name}");
        }
    }

    #[test]
    fn a_container_follows_the_live_file_when_it_takes_a_login_back() {
        // The guard in live mode: the host sync refused what the container
        // pushed (another account, a token the provider does not know) and
        // put the host's login back into live/.
        fn guard(a: &Observed, b: &Observed, last: Option<&Digest>) -> Action {
            let ctx = Context {
                last,
                b_quiet: false,
                b_shared: false,
                heal_b: true,
                a_judges: true,
            };
            decide(a, b, ctx)
        }
        let pushed = Digest::of(b"b");
        #[rustfmt::skip]
        let cases: &[(&str, Observed, Observed, Option<&Digest>, Action)] = &[
            ("live took it back", cred(b'a', 100), cred(b'b', 200), Some(&pushed), copy(A, Overruled)),
            // The agent's own newer login still goes up, and an older one
            // written by the agent still gets the newer back.
            ("the agent refreshed", cred(b'a', 100), cred(b'b', 200), Some(&Digest::of(b"a")), copy(B, Changed)),
            ("the agent wrote an older one", cred(b'a', 200), cred(b'b', 100), Some(&Digest::of(b"a")), copy(A, KeepNewest)),
            ("both changed", cred(b'a', 100), cred(b'b', 200), Some(&Digest::of(b"z")), copy(B, Newer)),
        ];
        for (name, a, b, last, want) in cases {
            assert_eq!(guard(a, b, *last), *want, "case: {name}");
        }
        // Without a judge (bind mode: A is the host file itself) the newer
        // login goes back, as ever.
        let ctx = Context {
            last: Some(&pushed),
            heal_b: true,
            ..Context::default()
        };
        assert_eq!(
            decide(&cred(b'a', 100), &cred(b'b', 200), ctx),
            copy(B, KeepNewest)
        );
    }
}
