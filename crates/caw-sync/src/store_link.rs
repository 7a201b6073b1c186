//! The store (`caw_store`, etcd) as one more side of each host login: the
//! host file is A, the login's key in the store is B, and every value read
//! from the store is judged by [`decide`] like any file before it reaches
//! the host (and from there, through the host sync, the containers).
//!
//! Three threads, none of them the host sync's own, so a store that does
//! not answer never holds up the containers:
//! - **lease**: renews this machine's lease every few seconds and stands
//!   for each login's refresher; it knows whether this machine may
//!   refresh, and since when the store is unreachable;
//! - **watch**: reads every login key, then follows the store's changes
//!   from that revision on (after a cut, from the last revision seen: it
//!   catches up);
//! - **link**: reconciles each host file with its key whenever either
//!   changes (inotify on the host files, the watch's events), writing the
//!   store only with a compare on the key's revision, and the host file
//!   only while it still holds what was decided on.
//!
//! The refresher asks the link ([`RefreshGate`]) before it plans a refresh
//! (only the lease holder does), right before it sends one (the intent is
//! recorded first), and with the answer (stored before the host file).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caw_auth::agents::Agent;
use caw_auth::credential::{Credential, Digest};
use caw_store::etcd::Event;
use caw_store::{LoginKeys, NotNow, Store, StoreError, Stored, Written};
use jiff::Timestamp;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};

use crate::decide::{self, Action, Context, Observed, Side};
use crate::side::{Commit, End, HostFile, Look};

const VOICE: &str = "[caw store]";
/// How often the link looks at every login even without an event.
const TICK: Duration = Duration::from_secs(1);
/// How long the watch waits before it connects again after a failure.
const WATCH_RETRY: Duration = Duration::from_millis(500);

/// What the refresher asks before and around a refresh (see the module docs).
pub trait RefreshGate: Send + Sync + std::fmt::Debug {
    /// Whether this machine may refresh the login in `host` now (no I/O).
    fn may_refresh(&self, host: &Path) -> Result<(), String>;
    /// Right before `refresh_token` is sent: record the intent. An `Err`
    /// means the request must not go out.
    fn begin(&self, host: &Path, refresh_token: &str) -> Result<(), String>;
    /// The new login, before it is written to `host`.
    fn finish(&self, host: &Path, new: &[u8]);
    /// The request was not sent, or the server said it did nothing: the
    /// token was not spent.
    fn abandon(&self, host: &Path);
}

/// One login the link keeps in the store.
#[derive(Debug, Clone)]
pub struct StoreLogin {
    pub agent: &'static Agent,
    /// The host credential file.
    pub host: PathBuf,
    pub keys: LoginKeys,
}

/// The account a login is kept under in the store: the one its agent
/// names (Claude's in `.claude.json`, the others' in the credential).
pub fn account_of(agent: &Agent, host: &Path) -> Option<String> {
    if agent.name == "claude" {
        return caw_refresh::vouch::claude_host_account(host);
    }
    let Ok(Look::File(bytes)) = End::Host(HostFile::new(host)).look() else {
        return None;
    };
    Credential::parse(agent, &bytes, Timestamp::now())?
        .identity
        .get("account")
        .map(str::to_string)
}

/// What `sync.json` says about the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Since when no member answers; `None`: reachable.
    pub unreachable_since: Option<Timestamp>,
    /// The agents whose logins this machine refreshes (holds the lease of).
    pub refresher_of: Vec<String>,
    /// The agents whose last refresh has an unknown outcome.
    pub outcome_unknown: Vec<String>,
    /// The last thing that went wrong (no secret): a refusal while it
    /// lasts (a wrong password), else a value that did not open.
    pub problem: Option<String>,
    /// A refusal by etcd, until a request goes through again.
    refusal: Option<String>,
}

struct Shared {
    store: Store,
    /// The logins linked (replaced when the auth dir is set up again).
    logins: std::sync::RwLock<Vec<StoreLogin>>,
    /// Bumped when `logins` is replaced.
    generation: std::sync::atomic::AtomicU64,
    holder: Mutex<HashMap<PathBuf, bool>>,
    status: Mutex<LinkStatus>,
    /// Written to when the status changes (the host sync records it).
    news: Mutex<UnixStream>,
}

impl Shared {
    /// Tell the host sync that the status changed.
    fn changed(&self) {
        let _ = self
            .news
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(b"!");
    }

    fn login(&self, host: &Path) -> Option<StoreLogin> {
        self.logins().into_iter().find(|l| l.host == host)
    }

    /// The logins linked now.
    fn logins(&self) -> Vec<StoreLogin> {
        self.logins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reachable(&self, yes: bool, why: Option<String>) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if yes && status.refusal.take().is_some() {
            drop(status);
            self.changed();
            status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        }
        match (yes, status.unreachable_since) {
            (true, Some(_)) => {
                log::info!("{VOICE} the store answers again; catching up");
                status.unreachable_since = None;
                drop(status);
                self.changed();
            }
            (false, None) => {
                log::warn!(
                    "{VOICE} store unreachable ({}): this machine keeps its logins and refreshes none",
                    why.as_deref().unwrap_or("no answer")
                );
                status.unreachable_since = Some(Timestamp::now());
                self.holder
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                drop(status);
                self.changed();
            }
            _ => {}
        }
    }

    /// The store cannot be used now: cut off, or refusing (a wrong
    /// password, a missing permission: a problem the user must fix, shown
    /// in status).
    fn trouble(&self, e: &StoreError) {
        if let StoreError::Failed(why) = e {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            if status.refusal.as_deref() != Some(why) {
                status.refusal = Some(why.clone());
                drop(status);
                self.changed();
            }
        }
        self.reachable(false, Some(e.to_string()));
    }

    fn set_unknown(&self, agent: &str, unknown: bool) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let before = status.outcome_unknown.clone();
        status.outcome_unknown.retain(|a| a != agent);
        if unknown {
            status.outcome_unknown.push(agent.to_string());
        }
        if status.outcome_unknown != before {
            drop(status);
            self.changed();
        }
    }
}

/// The running link; its threads end with the process.
#[derive(Clone)]
pub struct StoreLink {
    shared: Arc<Shared>,
    news: Arc<UnixStream>,
}

impl std::fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLink")
            .field("store", &self.shared.store)
            .field("logins", &self.shared.logins().len())
            .finish()
    }
}

impl StoreLink {
    /// Start the lease, watch and link threads for `logins`.
    pub fn start(store: Store, logins: Vec<StoreLogin>) -> std::io::Result<StoreLink> {
        let (news_tx, news_rx) = UnixStream::pair()?;
        news_tx.set_nonblocking(true)?;
        news_rx.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            store,
            logins: std::sync::RwLock::new(logins),
            generation: std::sync::atomic::AtomicU64::new(0),
            holder: Mutex::new(HashMap::new()),
            status: Mutex::new(LinkStatus::default()),
            news: Mutex::new(news_tx),
        });
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        let (events_tx, events_rx) = mpsc::channel();
        let lease = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("caw-store-lease".into())
            .spawn(move || lease_loop(&lease))?;
        let watch = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("caw-store-watch".into())
            .spawn(move || watch_loop(&watch, &events_tx, wake_tx))?;
        let link = Arc::clone(&shared);
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        std::thread::Builder::new()
            .name("caw-store-link".into())
            .spawn(move || link_loop(&link, &events_rx, &wake_rx, &inotify))?;
        Ok(StoreLink {
            shared,
            news: Arc::new(news_rx),
        })
    }

    /// Readable when the status changed: a source for the host sync's engine.
    pub fn news_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        Ok(std::os::fd::OwnedFd::from(self.news.try_clone()?))
    }

    /// Empty [`StoreLink::news_fd`].
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&*self.news).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// What the link knows now.
    pub fn status(&self) -> LinkStatus {
        let mut status = self
            .shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(refusal) = status.refusal.clone() {
            status.problem = Some(refusal);
        }
        let holder = self.shared.holder.lock().unwrap_or_else(|e| e.into_inner());
        status.refresher_of = self
            .shared
            .logins()
            .iter()
            .filter(|l| holder.get(&l.host) == Some(&true))
            .map(|l| l.agent.name.to_string())
            .collect();
        status
    }

    /// The keys of `agent`'s login of `account` in this store.
    pub fn keys(&self, agent: &str, account: Option<&str>) -> LoginKeys {
        self.shared.store.keys(agent, account)
    }

    /// Link these logins from now on (the auth dir was set up again).
    pub fn set_logins(&self, logins: Vec<StoreLogin>) {
        *self
            .shared
            .logins
            .write()
            .unwrap_or_else(|e| e.into_inner()) = logins;
        self.shared
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Let go of this machine's claims, so another takes over at once.
    pub fn resign(&self) {
        self.shared.store.resign();
    }
}

impl RefreshGate for StoreLink {
    fn may_refresh(&self, host: &Path) -> Result<(), String> {
        if self
            .shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unreachable_since
            .is_some()
        {
            return Err(NotNow::Unreachable("no member answers".into()).to_string());
        }
        let holder = self.shared.holder.lock().unwrap_or_else(|e| e.into_inner());
        match holder.get(host) {
            Some(true) => Ok(()),
            _ => Err(NotNow::NotHolder.to_string()),
        }
    }

    fn begin(&self, host: &Path, refresh_token: &str) -> Result<(), String> {
        let Some(login) = self.shared.login(host) else {
            return Ok(());
        };
        let digest = caw_store::token_digest(refresh_token);
        match self.shared.store.begin_refresh(&login.keys, &digest) {
            Ok(()) => {
                // Another token (a login from any side): no longer unknown.
                self.shared.set_unknown(login.agent.name, false);
                Ok(())
            }
            Err(why) => {
                if why == NotNow::OutcomeUnknown {
                    self.shared.set_unknown(login.agent.name, true);
                }
                if why == NotNow::NotHolder {
                    self.shared
                        .holder
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(host.to_path_buf(), false);
                }
                Err(why.to_string())
            }
        }
    }

    fn finish(&self, host: &Path, new: &[u8]) {
        let Some(login) = self.shared.login(host) else {
            return;
        };
        self.shared.set_unknown(login.agent.name, false);
        if let Err(e) = self.shared.store.finish_refresh(&login.keys, new) {
            // The host file gets it all the same, and the link takes it to
            // the store once it answers: a new login is never dropped.
            log::warn!(
                "{VOICE} {}: the new login could not be stored first ({e}); it goes to the host file and to the store when it answers",
                login.agent.name
            );
        }
    }

    fn abandon(&self, host: &Path) {
        if let Some(login) = self.shared.login(host) {
            let _ = self.shared.store.abandon_refresh(&login.keys);
        }
    }
}

/// Renew the lease and stand for every login, for as long as the process runs.
fn lease_loop(shared: &Shared) {
    loop {
        match shared.store.keep_lease() {
            Ok(()) => {
                shared.reachable(true, None);
                for login in &shared.logins() {
                    let holds = match shared.store.campaign(&login.keys) {
                        Ok(h) => h,
                        Err(e) => {
                            shared.trouble(&e);
                            false
                        }
                    };
                    let mut holder = shared.holder.lock().unwrap_or_else(|e| e.into_inner());
                    let before = holder.insert(login.host.clone(), holds);
                    drop(holder);
                    if holds && before != Some(true) {
                        log::info!(
                            "{VOICE} this machine now refreshes the {} login",
                            login.agent.name
                        );
                    }
                    if before != Some(holds) {
                        shared.changed();
                    }
                }
            }
            Err(e) => shared.trouble(&e),
        }
        std::thread::sleep(caw_store::KEEPALIVE_EVERY);
    }
}

/// What the watch hands the link.
enum Seen {
    /// Every login key as of a revision (at start, and after a cut).
    All(Vec<caw_store::etcd::Kv>),
    /// One change.
    One(Event),
}

fn watch_loop(shared: &Shared, events: &Sender<Seen>, mut wake: UnixStream) {
    let prefix = shared.store.logins_prefix();
    let mut send = |seen: Seen| -> bool {
        let ok = events.send(seen).is_ok();
        let _ = wake.write_all(b"!");
        ok
    };
    loop {
        let from = match shared.store.etcd().get_prefix(&prefix) {
            Ok((kvs, revision)) => {
                shared.reachable(true, None);
                if !send(Seen::All(kvs)) {
                    return;
                }
                revision + 1
            }
            Err(e) => {
                shared.trouble(&StoreError::from(e));
                std::thread::sleep(WATCH_RETRY);
                continue;
            }
        };
        let mut gone = false;
        let result = shared.store.etcd().watch(&prefix, from, |event| {
            if send(Seen::One(event)) {
                std::ops::ControlFlow::Continue(())
            } else {
                gone = true;
                std::ops::ControlFlow::Break(())
            }
        });
        if gone {
            return;
        }
        if let Err(e) = result {
            log::debug!("{VOICE} watch ended: {e}");
        }
        std::thread::sleep(WATCH_RETRY);
    }
}

/// One login's link state.
#[derive(Default)]
struct LinkState {
    /// What the store holds, as last seen (`None`: nothing yet).
    store: Option<Stored>,
    /// Whether `store` did not open with our key.
    sealed_wrong: bool,
    /// The value both sides held after the last reconcile.
    last: Option<Digest>,
    /// Whether anything was seen from the store yet.
    known: bool,
    /// The last hold said, to say it once.
    said: Option<String>,
}

fn link_loop(shared: &Shared, events: &Receiver<Seen>, wake: &UnixStream, inotify: &Inotify) {
    // By login key: a re-setup may link a host file to another key.
    let mut states: HashMap<String, LinkState> = HashMap::new();
    let mut watched = false;
    let mut logins = shared.logins();
    let mut generation = shared.generation.load(std::sync::atomic::Ordering::SeqCst);
    loop {
        let now_generation = shared.generation.load(std::sync::atomic::Ordering::SeqCst);
        if now_generation != generation {
            // The auth dir was set up again: new logins are read from the store.
            generation = now_generation;
            logins = shared.logins();
            watched = false;
            states.retain(|key, _| logins.iter().any(|l| &l.keys.login == key));
            for login in &logins {
                if states.get(&login.keys.login).is_some_and(|s| s.known) {
                    continue;
                }
                if let Ok((kv, _)) = shared.store.etcd().get(&login.keys.login) {
                    let state = states.entry(login.keys.login.clone()).or_default();
                    take_value(shared, login, state, kv);
                }
            }
        }
        if !watched {
            // The host files' directories: a rename into place is an event there.
            watched = true;
            for login in &logins {
                let dir = login.host.parent().unwrap_or(Path::new("/"));
                let flags = W::IN_CLOSE_WRITE | W::IN_MOVED_TO | W::IN_CREATE | W::IN_DELETE;
                if inotify.add_watch(dir, flags).is_err() {
                    watched = false;
                }
            }
        }
        while let Ok(seen) = events.try_recv() {
            match seen {
                Seen::All(kvs) => {
                    for login in &logins {
                        let state = states.entry(login.keys.login.clone()).or_default();
                        let kv = kvs.iter().find(|kv| kv.key == login.keys.login.as_bytes());
                        take_value(shared, login, state, kv.cloned());
                    }
                }
                Seen::One(Event::Put(kv)) => {
                    if let Some(login) = logins.iter().find(|l| kv.key == l.keys.login.as_bytes()) {
                        let state = states.entry(login.keys.login.clone()).or_default();
                        if state
                            .store
                            .as_ref()
                            .is_none_or(|s| s.mod_revision < kv.mod_revision)
                        {
                            take_value(shared, login, state, Some(kv));
                        }
                    }
                }
                Seen::One(Event::Delete(key, _)) => {
                    if let Some(login) = logins.iter().find(|l| key == l.keys.login.as_bytes()) {
                        let state = states.entry(login.keys.login.clone()).or_default();
                        take_value(shared, login, state, None);
                    }
                }
            }
        }
        let reachable = shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unreachable_since
            .is_none();
        for login in &logins {
            let state = states.entry(login.keys.login.clone()).or_default();
            if state.known && reachable {
                reconcile(shared, login, state);
            }
        }
        let mut fds = [
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(TICK.as_millis() as i32).unwrap_or(PollTimeout::NONE),
        );
        let mut buf = [0u8; 256];
        while let Ok(n) = (&*wake).read(&mut buf) {
            if n == 0 {
                return;
            }
        }
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}

/// Take what the store holds for `login` into its state.
fn take_value(
    shared: &Shared,
    login: &StoreLogin,
    state: &mut LinkState,
    kv: Option<caw_store::etcd::Kv>,
) {
    state.known = true;
    let Some(kv) = kv else {
        state.store = None;
        state.sealed_wrong = false;
        return;
    };
    match shared.store.open_value(&login.keys.login, &kv.value) {
        Ok(plain) => {
            state.sealed_wrong = false;
            state.store = Some(Stored {
                plain,
                mod_revision: kv.mod_revision,
            });
        }
        Err(e) => {
            if !state.sealed_wrong {
                log::error!("{VOICE} error: {e}; the host's login is left as it is");
                shared
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .problem = Some(e.to_string());
                shared.changed();
            }
            state.sealed_wrong = true;
            state.store = Some(Stored {
                plain: Vec::new(),
                mod_revision: kv.mod_revision,
            });
        }
    }
}

/// Bring the host file and the store together by the decision rules.
fn reconcile(shared: &Shared, login: &StoreLogin, state: &mut LinkState) {
    let host = End::Host(HostFile::new(&login.host));
    for _ in 0..4 {
        let Ok(look) = host.look() else { return };
        let now = Timestamp::now();
        let a = look.classify(login.agent, now);
        let b = match &state.store {
            None => Observed::Missing,
            Some(_) if state.sealed_wrong => Observed::Unusable,
            Some(s) => Look::File(s.plain.clone()).classify(login.agent, now),
        };
        let action = decide::decide(
            &a,
            &b,
            Context {
                last: state.last.as_ref(),
                b_quiet: false,
                b_shared: true,
                heal_b: false,
                a_judges: false,
            },
        );
        match action {
            Action::InSync => {
                state.last = a.credential().map(|c| c.digest);
                state.said = None;
                return;
            }
            Action::Copy { from: Side::A, .. } => {
                let Look::File(bytes) = &look else { return };
                let expect = state.store.as_ref().map_or(0, |s| s.mod_revision);
                match shared.store.write_if(&login.keys.login, bytes, expect) {
                    Ok(Written::Done(revision)) => {
                        log::info!(
                            "{VOICE} {}: the host's login went to the store",
                            login.agent.name
                        );
                        state.store = Some(Stored {
                            plain: bytes.clone(),
                            mod_revision: revision,
                        });
                        state.sealed_wrong = false;
                        state.last = Some(Digest::of(bytes));
                        return;
                    }
                    Ok(Written::Changed(now)) => {
                        // Someone wrote first: judge theirs.
                        state.sealed_wrong = false;
                        state.store = now;
                    }
                    Err(StoreError::Sealed(key, why)) => {
                        log::error!("{VOICE} error: `{key}` in the store: {why}");
                        return;
                    }
                    Err(e) => {
                        shared.trouble(&e);
                        return;
                    }
                }
            }
            Action::Copy { from: Side::B, .. } => {
                let Some(stored) = &state.store else { return };
                let plain = stored.plain.clone();
                match host.replace(&plain, look.fingerprint()) {
                    Ok(Commit::Done) => {
                        log::info!(
                            "{VOICE} {}: a newer login from the store reached {}",
                            login.agent.name,
                            login.host.display()
                        );
                        state.last = Some(Digest::of(&plain));
                        return;
                    }
                    Ok(Commit::Changed) => {}
                    Err(e) => {
                        log::warn!("{VOICE} cannot write {}: {e}", login.host.display());
                        return;
                    }
                }
            }
            Action::Hold(hold) => {
                let said = format!("{hold:?}");
                if state.said.as_deref() != Some(&said) {
                    log::debug!("{VOICE} {}: holding ({said})", login.agent.name);
                    state.said = Some(said);
                }
                return;
            }
        }
    }
}
