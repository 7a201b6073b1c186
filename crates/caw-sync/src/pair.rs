//! One credential kept equal on two ends: observe both, decide, apply.
//!
//! [`Pair::step`] is the whole pipeline for one look at a pair: read both
//! ends ([`End::look`]), classify each once, [`decide`], and carry out the
//! decision, the only code that writes. A write that finds its destination
//! changed since it was read commits nothing, and the pair is decided again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caw_auth::agents::Agent;
use caw_auth::credential::Digest;
use jiff::Timestamp;

use crate::decide::{decide, Action, Context, Hold, Observed, Side, Waiting, Why};
use crate::side::{Commit, End, Look};

/// How long an incomplete or unusable B must stay unchanged, with nothing
/// happening to the pair, before it is repaired from A: long enough for any
/// live writer to finish, short enough that an agent does not notice.
pub const REPAIR_AFTER: Duration = Duration::from_secs(3);

/// How often one look may find its destination changed under it before the
/// pair is left for the next event.
const MAX_ROUNDS: usize = 8;

/// The moment a pair is looked at, on both clocks it reads: the monotonic
/// one for its waits (repairs, patient restores), the wall clock to judge
/// expiries. The engine reads them once per round and passes them in; a
/// test steps a pair at any moment it likes, without sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For waits.
    pub at: Instant,
    /// For expiries.
    pub wall: Timestamp,
}

impl Now {
    /// Both clocks, now.
    pub fn read() -> Now {
        Now {
            at: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    /// `d` later on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            at: self.at + d,
            wall: self.wall + d,
        }
    }
}

/// How a pair's log lines read.
#[derive(Debug, Clone, Copy)]
pub struct Voice {
    /// Put before every line, e.g. `[credential-guard]`.
    pub prefix: &'static str,
    /// Said when B is restored after having existed (a deleted copy).
    pub on_deleted: &'static str,
}

/// What one look at a pair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The ends were equal.
    InSync,
    /// One end was copied over the other.
    Copied {
        /// The source end.
        from: Side,
        /// Why.
        why: Why,
    },
    /// Nothing was done, for this reason.
    Held(Hold),
    /// An end could not be read or written (logged).
    Failed,
}

/// Whether a login from B may be copied over A: the host sync asks the
/// agent's provider before a container's login reaches a host file.
pub trait Admission: std::fmt::Debug + Send + Sync {
    /// Whether B's `bytes` may replace A's (`a`, at `a_path`), asked at
    /// `now` (the moment the pair is stepped at).
    fn admit(
        &self,
        agent: &'static Agent,
        bytes: &[u8],
        a: &[u8],
        a_path: &Path,
        now: Instant,
    ) -> Admit;
}

/// An [`Admission`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Copy it.
    Yes,
    /// Not yet: the answer is pending (the pair is stepped again when it
    /// comes), or, with an instant, look again then.
    Wait(Option<Instant>),
    /// Never: put A back over B (why, for the log).
    No(String),
}

/// A credential and its two ends.
#[derive(Debug)]
pub struct Pair {
    agent: &'static Agent,
    a: End,
    b: End,
    voice: Voice,
    /// The fingerprint both ends held after the last sync.
    last: Option<Digest>,
    /// The hold last reported, so a standing condition is said once.
    reported: Option<Hold>,
    /// Whether the last look failed (and said so).
    failing: bool,
    /// When something last happened to either end; until then, the first
    /// look.
    last_event: Option<Instant>,
    /// How long B must have been gone, with nothing happening, before it is
    /// restored (zero: at once).
    restore_after: Duration,
    /// Whether B is written by caw only (see [`Context::b_shared`]).
    b_shared: bool,
    /// Whether a logged-out B heals from A once quiet (see [`Context::heal_b`]).
    heal_b: bool,
    /// The A that last healed a logged-out B. The same A heals only once:
    /// an agent whose refresh with it was refused would otherwise be handed
    /// the dead token again and again, each time spending a request.
    healed_from: Option<Digest>,
    /// B is never a side of its own but this function of A (a copy with
    /// the refresh tokens held back): nothing of B ever reaches A.
    derive_b: Option<Derive>,
    /// Whether A judges B's logins (see [`Context::a_judges`]).
    a_judges: bool,
    /// Asked before B's login replaces A's.
    admission: Option<Arc<dyn Admission>>,
    /// The B last refused by the admission (said once).
    refused: Option<Digest>,
}

/// How B is made from A's bytes (`None`: A is not a credential object).
pub type Derive = fn(&Agent, &[u8]) -> Option<Vec<u8>>;

impl Pair {
    /// `agent`'s credential at `a` (nearer the host's truth) and `b` (restored when missing).
    pub fn new(agent: &'static Agent, a: End, b: End, voice: Voice) -> Self {
        Pair {
            agent,
            a,
            b,
            voice,
            last: None,
            reported: None,
            failing: false,
            last_event: None,
            restore_after: Duration::ZERO,
            b_shared: false,
            heal_b: false,
            healed_from: None,
            derive_b: None,
            a_judges: false,
            admission: None,
            refused: None,
        }
    }

    /// A is written by a sync that judges B (the live file, for a guard in
    /// live mode): see [`Context::a_judges`].
    pub fn judged_by_a(mut self) -> Self {
        self.a_judges = true;
        self
    }

    /// Ask `admission` before B's login replaces A's.
    pub fn admitting(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// B is `derive(A)` and nothing else: whatever is written to B is put
    /// back, and B never reaches A (`--hold-refresh-token`'s live copies).
    pub fn deriving_b(mut self, derive: Derive) -> Self {
        self.derive_b = Some(derive);
        self
    }

    /// B is an agent's copy in a container: a logged-out B is repaired from
    /// a usable A of the same account once quiet (see [`Context::heal_b`]).
    pub fn healing_b(mut self) -> Self {
        self.heal_b = true;
        self
    }

    /// B is a copy no agent writes (the live directory, for the host sync):
    /// see [`Context::b_shared`].
    pub fn shared_b(mut self) -> Self {
        self.b_shared = true;
        self
    }

    /// Restore a missing B only once it has stayed missing for `after` with
    /// nothing else happening. For the host sync's live copies: a directory
    /// being removed (`rm -r` of the auth dir) is not written back into
    /// while its removal runs, and is gone by the time anything would be.
    pub fn patient_restores(mut self, after: Duration) -> Self {
        self.restore_after = after;
        self
    }

    /// The agent.
    pub fn agent(&self) -> &'static Agent {
        self.agent
    }

    /// End `side`.
    pub fn end(&self, side: Side) -> &End {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// Note that something happened to one of the ends (an event).
    pub fn touched(&mut self, at: Instant) {
        self.last_event = Some(at);
    }

    /// Look at the pair once, at `now`, and act. Returns what happened and,
    /// when B is waiting to be repaired, when to look again.
    pub fn step(&mut self, now: Now) -> (Outcome, Option<Instant>) {
        if let Some(derive) = self.derive_b {
            return (self.step_derived(derive, now.wall), None);
        }
        let at = now.at;
        let last_event = *self.last_event.get_or_insert(at);
        for _ in 0..MAX_ROUNDS {
            let (la, lb) = match (self.a.look(), self.b.look()) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return (self.failed(&e), None),
            };
            let (oa, ob) = (
                la.classify(self.agent, now.wall),
                lb.classify(self.agent, now.wall),
            );
            let quiet = at.saturating_duration_since(last_event) >= REPAIR_AFTER;
            let a_digest = oa.credential().map(|c| c.digest);
            let heal_b = self.heal_b && (a_digest.is_none() || a_digest != self.healed_from);
            let ctx = Context {
                last: self.last.as_ref(),
                b_quiet: quiet,
                b_shared: self.b_shared,
                heal_b,
                a_judges: self.a_judges,
            };
            let mut action = decide(&oa, &ob, ctx);
            if let (Action::Copy { from: Side::B, .. }, Some(gate), Look::File(b), Look::File(a)) =
                (action, self.admission.as_ref(), &lb, &la)
            {
                match gate.admit(self.agent, b, a, &self.a.path(), at) {
                    Admit::Yes => {}
                    Admit::Wait(at) => {
                        let hold = Hold::Unvouched(Side::B);
                        self.report(hold);
                        return (Outcome::Held(hold), at);
                    }
                    Admit::No(why) => {
                        let digest = Digest::of(b);
                        if self.refused != Some(digest) {
                            self.refused = Some(digest);
                            log::warn!(
                                "{} not syncing {} -> {}: {why}; putting the host's login back",
                                self.voice.prefix,
                                self.b.path().display(),
                                self.a.path().display()
                            );
                        }
                        action = Action::Copy {
                            from: Side::A,
                            why: Why::Unvouched,
                        };
                    }
                }
            }
            match action {
                Action::InSync => {
                    self.last = oa.credential().map(|c| c.digest);
                    self.settle();
                    return (Outcome::InSync, None);
                }
                Action::Hold(hold) => {
                    self.report(hold);
                    let repairable = match hold {
                        Hold::Waiting(Side::B, Waiting::Incomplete | Waiting::Unusable) => true,
                        Hold::LoggedOut(Side::B) => heal_b && !quiet,
                        _ => false,
                    };
                    let wake = repairable.then(|| last_event + REPAIR_AFTER);
                    return (Outcome::Held(hold), wake);
                }
                Action::Copy {
                    why: Why::Restore, ..
                } if at.saturating_duration_since(last_event) < self.restore_after => {
                    let hold = Hold::Waiting(Side::B, Waiting::Missing);
                    self.report(hold);
                    return (Outcome::Held(hold), Some(last_event + self.restore_after));
                }
                Action::Copy { from, why } => {
                    let (src, dst_look) = match from {
                        Side::A => (&la, &lb),
                        Side::B => (&lb, &la),
                    };
                    let Look::File(bytes) = src else {
                        unreachable!("decide copies only a valid credential")
                    };
                    match self
                        .end(from.other())
                        .replace(bytes, dst_look.fingerprint())
                    {
                        Ok(Commit::Done) => {
                            let existed = self.last.is_some();
                            if heal_b && from == Side::A && why == Why::Repair {
                                self.healed_from = a_digest;
                            }
                            self.last = Some(Digest::of(bytes));
                            self.settle();
                            self.say_copied(from, why, existed);
                            return (Outcome::Copied { from, why }, None);
                        }
                        // The destination moved since it was read: decide again.
                        Ok(Commit::Changed) => continue,
                        Err(e) => return (self.failed(&e), None),
                    }
                }
            }
        }
        log::debug!(
            "{} {}: still changing; waiting for the next event",
            self.voice.prefix,
            self.agent.name
        );
        (Outcome::Failed, None)
    }

    /// One look at a pair whose B is a function of A: B is made to hold
    /// `derive(A)` whenever A holds a complete credential.
    fn step_derived(&mut self, derive: Derive, now: Timestamp) -> Outcome {
        for _ in 0..MAX_ROUNDS {
            let (la, lb) = match (self.a.look(), self.b.look()) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return self.failed(&e),
            };
            let wanted = match (&la, la.classify(self.agent, now)) {
                (Look::File(bytes), Observed::Valid(_)) => derive(self.agent, bytes),
                _ => None,
            };
            let Some(wanted) = wanted else {
                let hold = Hold::Waiting(Side::A, Waiting::Incomplete);
                self.report(hold);
                return Outcome::Held(hold);
            };
            if matches!(&lb, Look::File(b) if *b == wanted) {
                self.last = Some(Digest::of(&wanted));
                self.settle();
                return Outcome::InSync;
            }
            let why = match &lb {
                Look::Missing => Why::Restore,
                Look::Symlink => Why::ReplaceSymlink,
                // B still holds what was last written there: A moved on.
                Look::File(b) if self.last == Some(Digest::of(b)) => Why::Changed,
                _ if self.last.is_some() => Why::Repair,
                _ => Why::Changed,
            };
            match self.b.replace(&wanted, lb.fingerprint()) {
                Ok(Commit::Done) => {
                    let existed = self.last.is_some();
                    self.last = Some(Digest::of(&wanted));
                    self.settle();
                    self.say_copied(Side::A, why, existed);
                    return Outcome::Copied { from: Side::A, why };
                }
                Ok(Commit::Changed) => continue,
                Err(e) => return self.failed(&e),
            }
        }
        Outcome::Failed
    }

    fn settle(&mut self) {
        self.reported = None;
        self.failing = false;
    }

    fn failed(&mut self, e: &std::io::Error) -> Outcome {
        if !self.failing {
            self.failing = true;
            log::error!("{} {}: {e}", self.voice.prefix, self.agent.name);
        }
        Outcome::Failed
    }

    fn say_copied(&self, from: Side, why: Why, existed: bool) {
        let (src, dst) = (self.end(from).path(), self.end(from.other()).path());
        let note = match why {
            Why::Restore if existed => {
                format!(" (restored: it was deleted; {})", self.voice.on_deleted)
            }
            Why::Restore => String::new(),
            Why::ReplaceSymlink => " (replaced a symlink)".into(),
            Why::Repair => " (repaired: it stayed incomplete, unreadable or logged out)".into(),
            Why::KeepNewest => " (it had been replaced by an older login)".into(),
            Why::Overruled => " (the host sync did not take the login written here)".into(),
            Why::Unvouched => " (put back: the provider did not vouch for the login there)".into(),
            Why::Changed | Why::Newer => String::new(),
        };
        log::info!(
            "{} synced {} -> {}{note}",
            self.voice.prefix,
            src.display(),
            dst.display()
        );
    }

    /// Say a hold once while it stands.
    fn report(&mut self, hold: Hold) {
        if self.reported == Some(hold) {
            return;
        }
        self.reported = Some(hold);
        let p = self.voice.prefix;
        let path = |s: Side| self.end(s).path().display().to_string();
        match hold {
            Hold::LoggedOut(s) => log::warn!(
                "{p} not syncing {} -> {}: it holds no usable login (a logout or a refused \
                 refresh); it stays where it was written and the other side keeps its login",
                path(s),
                path(s.other())
            ),
            Hold::Implausible(s) => log::warn!(
                "{p} not syncing {} -> {}: its expiry is missing or further ahead than {}'s \
                 tokens ever live (a planted login); the other side keeps its login",
                path(s),
                path(s.other()),
                self.agent.name
            ),
            Hold::Unvouched(s) => log::info!(
                "{p} not syncing {} -> {} yet: waiting for {}'s provider to vouch for the login",
                path(s),
                path(s.other()),
                self.agent.name
            ),
            Hold::Foreign(s) => log::warn!(
                "{p} not syncing {} -> {}: it is a login of another account or kind; each side \
                 keeps its own",
                path(s),
                path(s.other())
            ),
            Hold::Waiting(Side::A, Waiting::Missing) => {
                log::warn!("{p} {} is missing; waiting for it", path(Side::A))
            }
            Hold::Waiting(Side::A, Waiting::Unusable) => log::warn!(
                "{p} {} is not a plain file caw may read (a symlink, directory, FIFO or hard \
                 link); not syncing it",
                path(Side::A)
            ),
            Hold::Waiting(Side::B, Waiting::Unusable) => log::warn!(
                "{p} {} is not a plain file caw may read (a directory, a FIFO, a hard link, or a \
                 symlink on the way); leaving it alone for now",
                path(Side::B)
            ),
            Hold::Waiting(s, w) => log::debug!("{p} {}: waiting ({w:?})", path(s)),
        }
    }
}

/// Classify what an end holds now (for status and tests).
pub fn observe(end: &End, agent: &Agent) -> std::io::Result<Observed> {
    Ok(end.look()?.classify(agent, Timestamp::now()))
}
