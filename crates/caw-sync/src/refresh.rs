//! The host sync's refresher: each login refreshed once, a margin before
//! its agent would, so that no agent (on the host or in any container)
//! ever spends the shared refresh token.
//!
//! The main loop only plans: after every wake it reads each host credential,
//! works out when it is due ([`caw_refresh::Protocol::due`]) and arms a
//! wall-clock timer for the earliest (a `timerfd` on `CLOCK_REALTIME` that
//! is cancelled by a clock jump, so a suspend, a resume or a changed clock
//! is noticed at once). A due login is refreshed on a worker thread, so a
//! slow token endpoint never holds up a sync:
//!
//! 1. caw's per-login lock, then the agent's own refresh lock on the host;
//! 2. the credential read again (another process may just have refreshed);
//! 3. the agent's request, sent once;
//! 4. the answer written into the host file, temp file + rename, comparing
//!    before it commits; the engine then carries it to `live/` and every
//!    container, like any host refresh.
//!
//! Failures keep today's behaviour: a network error or a 5xx backs off and
//! tries again (the agents can still refresh themselves meanwhile); a
//! refusal (`invalid_grant`) writes nothing and waits for a new login.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use caw_auth::agents::Agent;
use caw_auth::credential::{Credential, Digest};
use caw_auth::host_sync::LoginRefresh;
use caw_refresh::http::{Client, Reply};
use caw_refresh::lock::{AgentLock, LoginLock};
use caw_refresh::{Outcome, Protocol};
use jiff::{SignedDuration, Timestamp};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::decide::Side;
use crate::host::RefreshOptions;
use crate::side::{Commit, End, HostFile, Look};
use crate::store_link::RefreshGate;
use crate::Engine;

/// The longest wait between attempts after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long a worker waits for another caw's refresh of the same login.
const LOGIN_LOCK_WAIT: Duration = Duration::from_secs(90);
/// How long a worker waits for a host agent's own refresh.
const AGENT_LOCK_WAIT: Duration = Duration::from_secs(15);
/// After the lock was busy, look again this soon.
const BUSY_AGAIN: Duration = Duration::from_secs(2);

use crate::{REFRESH_DONE as DONE_WAKE, REFRESH_TIMER as TIMER_WAKE};

/// How one attempt ended.
#[derive(Debug)]
enum Done {
    /// The new login is in the host file.
    Refreshed,
    /// The answer came, but the host file meanwhile got a fresher login.
    Superseded,
    /// Not due any more once read under the lock: someone refreshed.
    NotDue,
    /// Another refresher of this login held its lock.
    Busy,
    /// The server refused the refresh token (its error code).
    Refused(String),
    /// The answer is another account's login: the refresh token in the
    /// host file was not this login's (planted). Nothing written.
    Foreign,
    /// Worth another try later.
    Retry(String),
    /// Not sent: the store says another machine refreshes, or cannot be
    /// asked, or a refresh with this token has an unknown outcome.
    Deferred(String),
}

/// One login's planning state.
#[derive(Debug, Default)]
struct Login {
    in_flight: bool,
    /// The credential (by digest) the server refused: nothing is tried
    /// again until the file changes (a new login).
    refused: Option<Digest>,
    /// After a failure: not before then, unless the file changes.
    retry: Option<(Digest, Timestamp)>,
    failures: u32,
    record: LoginRefresh,
}

/// The refresher of one host sync.
#[derive(Debug)]
pub struct Refresher {
    opts: RefreshOptions,
    client: Client,
    logins: HashMap<PathBuf, Login>,
    timer: TimerFd,
    done_tx: Sender<(PathBuf, Done)>,
    done_rx: Receiver<(PathBuf, Done)>,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    held: bool,
    /// The store's say on who refreshes (`--store`).
    gate: Option<Arc<dyn RefreshGate>>,
}

impl Refresher {
    /// A refresher whose timer and completion wake `engine`.
    /// `held`: containers get logins without their refresh token.
    pub fn new(
        opts: RefreshOptions,
        client: Client,
        held: bool,
        engine: &mut Engine,
    ) -> std::io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        engine.add_source(timer.as_fd().try_clone_to_owned()?, TIMER_WAKE);
        engine.add_source(OwnedFd::from(wake_rx.try_clone()?), DONE_WAKE);
        let (done_tx, done_rx) = mpsc::channel();
        Ok(Refresher {
            opts,
            client,
            logins: HashMap::new(),
            timer,
            done_tx,
            done_rx,
            wake_tx,
            wake_rx,
            held,
            gate: None,
        })
    }

    /// Ask `gate` before each refresh (the store's elected refresher).
    pub fn set_gate(&mut self, gate: Arc<dyn RefreshGate>) {
        self.gate = Some(gate);
    }

    /// What `sync.json` says about each login, by agent.
    pub fn records(&self, engine: &Engine) -> std::collections::BTreeMap<String, LoginRefresh> {
        engine
            .pairs()
            .iter()
            .filter_map(|p| {
                let login = self.logins.get(&p.end(Side::A).path())?;
                Some((p.agent().name.to_string(), login.record.clone()))
            })
            .collect()
    }

    /// Take in finished attempts, start the ones due, arm the timer for the
    /// next. Call after every wake of the engine.
    pub fn poll(&mut self, engine: &Engine) {
        self.drain_wakes();
        while let Ok((key, done)) = self.done_rx.try_recv() {
            self.finished(&key, done);
        }
        let now = Timestamp::now();
        let mut next: Option<Timestamp> = None;
        let mut live = Vec::new();
        for pair in engine.pairs() {
            let Some(protocol) = caw_refresh::protocol(pair.agent().name) else {
                continue;
            };
            let key = pair.end(Side::A).path();
            live.push(key.clone());
            if let Some(at) = self.plan(pair.agent(), protocol, &key, now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        self.logins.retain(|k, l| l.in_flight || live.contains(k));
        self.arm(next);
    }

    /// One login: start it when due; else when to look again.
    fn plan(
        &mut self,
        agent: &'static Agent,
        protocol: &'static Protocol,
        host: &Path,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let held = self.held;
        let login = self.logins.entry(host.to_path_buf()).or_default();
        login.record.held = held;
        if login.in_flight {
            return None;
        }
        let Ok(Look::File(bytes)) = End::Host(HostFile::new(host)).look() else {
            login.record.next_at = None;
            return None;
        };
        let digest = Digest::of(&bytes);
        let value: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let due = value.as_ref().and_then(|v| protocol.due(v));
        if login.refused == Some(digest) {
            login.record.next_at = None;
            return None;
        }
        login.refused = None;
        let due = match (due, login.retry) {
            (None, _) => {
                login.record.next_at = None;
                return None;
            }
            (Some(due), Some((d, retry))) if d == digest => due.max(retry),
            (Some(due), _) => {
                login.retry = None;
                due
            }
        };
        login.record.next_at = Some(due);
        if due > now {
            login.record.waiting = None;
            return Some(due);
        }
        if let Some(gate) = &self.gate {
            if let Err(why) = gate.may_refresh(host) {
                // Looked at again every second: a newly elected holder
                // refreshes a due login at once.
                login.record.waiting = Some(why);
                return Some(now + SignedDuration::from_secs(1));
            }
        }
        login.record.waiting = None;
        let job = Job {
            agent,
            protocol,
            host: host.to_path_buf(),
            client: self.client.clone(),
            done: self.done_tx.clone(),
            wake: self.wake_tx.try_clone().ok(),
            gate: self.gate.clone(),
        };
        match std::thread::Builder::new()
            .name(format!("caw-refresh-{}", agent.name))
            .spawn(move || job.run())
        {
            Ok(_) => {
                login.in_flight = true;
                None
            }
            Err(e) => {
                log::warn!("[caw sync] {}: cannot start a refresh: {e}", agent.name);
                Some(now + SignedDuration::from_secs(5))
            }
        }
    }

    /// Record what an attempt did.
    fn finished(&mut self, key: &Path, done: Done) {
        let backoff = self.opts.backoff;
        let Some(login) = self.logins.get_mut(key) else {
            return;
        };
        login.in_flight = false;
        let now = Timestamp::now();
        let digest_now = match End::Host(HostFile::new(key)).look() {
            Ok(Look::File(b)) => Some(Digest::of(&b)),
            _ => None,
        };
        let (ok, text) = match &done {
            Done::Refreshed | Done::Superseded | Done::NotDue => {
                login.failures = 0;
                login.retry = None;
                (Some(true), None)
            }
            Done::Busy => {
                login.retry = digest_now.map(|d| (d, now + signed(BUSY_AGAIN)));
                (None, None)
            }
            Done::Refused(code) => {
                login.refused = digest_now;
                login.failures = 0;
                (
                    Some(false),
                    Some(format!(
                        "refresh refused ({code}): log in again on the host"
                    )),
                )
            }
            Done::Deferred(why) => {
                login.retry = digest_now.map(|d| (d, now + signed(BUSY_AGAIN)));
                login.record.waiting = Some(why.clone());
                (None, None)
            }
            Done::Foreign => {
                login.refused = digest_now;
                login.failures = 0;
                (
                    Some(false),
                    Some(
                        "the provider answered for another account: the refresh token in \
                         this file is not the host's login's; nothing written; log in again \
                         on the host"
                            .into(),
                    ),
                )
            }
            Done::Retry(why) => {
                let wait = backoff
                    .saturating_mul(1 << login.failures.min(10))
                    .min(MAX_BACKOFF);
                login.failures += 1;
                login.retry = digest_now.map(|d| (d, now + signed(wait)));
                (
                    Some(false),
                    Some(format!("{why}; trying again in {} s", wait.as_secs())),
                )
            }
        };
        if matches!(
            done,
            Done::Refreshed | Done::Refused(_) | Done::Foreign | Done::Retry(_)
        ) {
            login.record.last_at = Some(now);
            login.record.ok = ok;
            login.record.last = Some(text.clone().unwrap_or_else(|| "ok".into()));
        }
        let name = key.display();
        match (&done, text) {
            (Done::Refreshed, _) => log::info!("[caw sync] refreshed the login in {name}"),
            (Done::Refused(_) | Done::Foreign, Some(t)) => log::warn!("[caw sync] {name}: {t}"),
            (Done::Retry(_), Some(t)) => log::warn!("[caw sync] {name}: {t}"),
            (d, _) => log::debug!("[caw sync] {name}: {d:?}"),
        }
    }

    fn drain_wakes(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake_rx.read(&mut buf), Ok(n) if n > 0) {}
        // Expired, or cancelled by a clock change: either way, plan again.
        let _ = self.timer.wait();
    }

    /// Wake at `at` (wall clock), or never.
    fn arm(&mut self, at: Option<Timestamp>) {
        let Some(at) = at else {
            let _ = self.timer.unset();
            return;
        };
        let spec = TimeSpec::new(at.as_second(), i64::from(at.subsec_nanosecond().max(0)));
        let flags =
            TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET;
        if let Err(e) = self.timer.set(Expiration::OneShot(spec), flags) {
            log::warn!("[caw sync] cannot arm the refresh timer: {e}");
        }
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// One refresh, on its own thread.
struct Job {
    agent: &'static Agent,
    protocol: &'static Protocol,
    host: PathBuf,
    client: Client,
    done: Sender<(PathBuf, Done)>,
    wake: Option<UnixStream>,
    gate: Option<Arc<dyn RefreshGate>>,
}

impl Job {
    fn run(mut self) {
        let done = self
            .attempt()
            .unwrap_or_else(|e| Done::Retry(e.to_string()));
        let _ = self.done.send((self.host.clone(), done));
        if let Some(w) = self.wake.as_mut() {
            let _ = w.write_all(b"!");
        }
    }

    fn attempt(&self) -> std::io::Result<Done> {
        let host = End::Host(HostFile::new(&self.host));
        let real = std::fs::canonicalize(&self.host).unwrap_or_else(|_| self.host.clone());
        let dir = real.parent().unwrap_or(Path::new("/"));
        let Some(_login) = LoginLock::acquire(dir, LOGIN_LOCK_WAIT)? else {
            return Ok(Done::Busy);
        };
        let Some(_agent) = AgentLock::acquire(self.protocol.host_lock, dir, AGENT_LOCK_WAIT)?
        else {
            return Ok(Done::Busy);
        };
        // Read again under the locks: whoever held them may have refreshed.
        let Look::File(before) = host.look()? else {
            return Ok(Done::NotDue);
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&before) else {
            return Ok(Done::NotDue);
        };
        let now = Timestamp::now();
        if self.protocol.due(&value).is_none_or(|due| due > now) {
            return Ok(Done::NotDue);
        }
        let Some(request) = self.protocol.request(&value) else {
            return Ok(Done::NotDue);
        };
        let url = self.protocol.endpoint().map_err(std::io::Error::other)?;
        if let Some(gate) = &self.gate {
            // The intent is in the store before the token leaves.
            let token = (self.protocol.refresh_token)(&value).unwrap_or("");
            if let Err(why) = gate.begin(&self.host, token) {
                return Ok(Done::Deferred(why));
            }
        }
        let abandon = || {
            if let Some(gate) = &self.gate {
                gate.abandon(&self.host);
            }
        };
        log::info!(
            "[caw sync] refreshing the {} login at {url}",
            self.agent.name
        );
        // A refused token is dead and a lost answer may have spent it: the
        // intent stays, and no machine sends that token again. A request not
        // sent, or answered with "try later", spent nothing.
        let body = match self.client.post(&url, &request) {
            Reply::Status(status, body) => match caw_refresh::classify(status, body) {
                Outcome::Answer(body) => body,
                Outcome::Refused(code) => return Ok(Done::Refused(code)),
                outcome @ Outcome::Retry(_) => {
                    abandon();
                    return Ok(Done::Retry(outcome.to_string()));
                }
            },
            Reply::NotSent(why) => {
                abandon();
                return Ok(Done::Retry(format!("not sent: {why}")));
            }
            Reply::Unanswered(why) => return Ok(Done::Retry(format!("no answer: {why}"))),
        };
        if caw_refresh::vouch::answer_is_foreign(self.agent.name, &body, &self.host) {
            return Ok(Done::Foreign);
        }
        let new = match self.protocol.apply(&before, &body, Timestamp::now()) {
            Ok(new) => new,
            Err(e) => return Ok(Done::Retry(format!("unusable answer: {e}"))),
        };
        let judged = Credential::parse(self.agent, &new, Timestamp::now());
        if !judged.as_ref().is_some_and(|c| c.usable) {
            return Ok(Done::Retry("the answer makes no usable login".into()));
        }
        let old = Credential::parse(self.agent, &before, Timestamp::now());
        if let (Some(old), Some(new)) = (&old, &judged) {
            if old.identity.conflicts_with(&new.identity) {
                return Ok(Done::Foreign);
            }
        }
        if let Some(gate) = &self.gate {
            gate.finish(&self.host, &new);
        }
        self.store(&host, &before, &new, judged.as_ref())
    }

    /// Put `new` in the host file, unless something fresher landed there
    /// since `before` was read. Compare before commit, a few rounds.
    fn store(
        &self,
        host: &End,
        before: &[u8],
        new: &[u8],
        judged: Option<&Credential>,
    ) -> std::io::Result<Done> {
        let mut expect = Look::File(before.to_vec()).fingerprint();
        for _ in 0..8 {
            match host.replace(new, expect)? {
                Commit::Done => return Ok(Done::Refreshed),
                Commit::Changed => {}
            }
            let now = host.look()?;
            if let (Look::File(bytes), Some(ours)) = (&now, judged) {
                let theirs = Credential::parse(self.agent, bytes, Timestamp::now());
                if theirs.is_some_and(|t| {
                    t.usable
                        && !ours.freshness.is_fresher_than(&t.freshness)
                        && t.digest != ours.digest
                }) {
                    return Ok(Done::Superseded);
                }
            }
            expect = now.fingerprint();
        }
        Err(std::io::Error::other(format!(
            "`{}` kept changing; the new login was not written",
            self.host.display()
        )))
    }
}
