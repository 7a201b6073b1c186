//! The host sync (`caw auth sync`): each host credential file ⇄ its copy in
//! the auth dir's `live/`, for one auth dir, until stopped.
//!
//! It is the same engine as the container's guard, with the host file as
//! the trusted end (A) and the live file (B) as untrusted input: anything a
//! container wrote there is judged like any other side before it reaches
//! the host. One runs per auth dir (a lock beside it); it reloads when
//! `caw auth setup` writes a new manifest, exits when the auth dir is
//! removed, and, when `idle_exit` is set, once no container has been
//! attached for that long.

use std::ops::ControlFlow;
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caw_auth::auth_dir::LIVE_DIR;
use caw_auth::host_sync::{self, SyncLock, SyncState, SyncStatus};
use caw_auth::manifest::{AuthMode, Manifest};
use caw_auth::{trusted, Error};
use nix::sys::inotify::AddWatchFlags as W;

use crate::side::{DirFile, End, HostFile};
use crate::{Admission, Engine, Pair, StopSignals, Voice, Wake};

/// A live copy that went missing is restored from the host after this long
/// (see [`Pair::patient_restores`]).
const RESTORE_LIVE_AFTER: Duration = Duration::from_millis(300);

const VOICE: Voice = Voice {
    prefix: "[caw sync]",
    on_deleted: "something deleted the live copy",
};

/// What to run on.
#[derive(Debug, Clone)]
pub struct HostSyncOptions {
    /// The auth dir (absolute).
    pub auth_dir: PathBuf,
    /// Exit once no container has been attached for this long; `None`: never.
    pub idle_exit: Option<Duration>,
    /// How often to check whether a container is attached.
    pub check_every: Duration,
    /// Refresh each login ahead of its agents; `None`: never (`--no-refresh`).
    pub refresh: Option<RefreshOptions>,
    /// Empty its log (stderr, when a file) once it grows past this many bytes.
    pub log_limit: u64,
    /// Ask the agent's provider before a container's login reaches the host
    /// (see `caw_refresh::vouch`); `false`: `--no-verify`.
    pub verify: bool,
    /// Join this machine's logins to a store shared by the user's machines
    /// (`--store`); `None`: this machine alone.
    pub store: Option<StoreConfig>,
}

/// The store to join (see `caw_store`): where, and the files to open it with.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`.
    pub url: String,
    /// The store key (`caw auth store-key FILE`).
    pub key_file: PathBuf,
    /// A CA certificate to check the members with.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// An etcd user and the file with its password.
    pub user: Option<(String, PathBuf)>,
}

/// How the refresher behaves (see `caw_sync::refresh`).
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// The first wait after a failed attempt; it doubles up to 10 minutes.
    pub backoff: Duration,
    /// How long one request may take, answer included.
    pub timeout: Duration,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        RefreshOptions {
            backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why the sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Another sync runs for this auth dir (its pid, when known).
    AlreadyRunning(Option<u32>),
    /// A stop signal arrived.
    Stopped(&'static str),
    /// No container was attached for `idle_exit`.
    Idle,
    /// The auth dir was removed (teardown).
    AuthDirGone,
}

/// One pair per credential: the host file (by the agent registry's path
/// under the recorded host home or config dir, never a path the manifest
/// spells out: see [`caw_auth::trusted`]) and its live copy.
///
/// `admission`, when given, is asked before a live copy reaches a host file.
pub fn host_pairs(
    manifest: &Manifest,
    auth_dir: &Path,
    admission: Option<&Arc<dyn Admission>>,
) -> Result<Vec<Pair>, Error> {
    let live = auth_dir.join(LIVE_DIR);
    // Run as root, the sync must not leave root-owned files in live/: a
    // rootless container's root (the host user) could not read them.
    let live_owner = match caw_auth::ownership::live_owner(&live) {
        Ok(owner) => owner,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::Io(e)),
    };
    Ok(trusted::credentials(manifest, auth_dir)?
        .into_iter()
        .map(|c| {
            // Not flushed before the rename: its bytes are the host file's,
            // which a crash cannot lose with it (the next start reconciles).
            let copy = DirFile::new(&live, c.src, live_owner, 0o600);
            let pair = Pair::new(
                c.agent,
                End::Host(HostFile::new(c.host)),
                End::Dir(copy),
                VOICE,
            )
            .patient_restores(RESTORE_LIVE_AFTER)
            .shared_b();
            let pair = match admission {
                Some(a) => pair.admitting(Arc::clone(a)),
                None => pair,
            };
            if manifest.hold_refresh_token {
                // Containers only ever get the host's login, refresh tokens held back.
                pair.deriving_b(caw_auth::credential::hold)
            } else {
                pair
            }
        })
        .collect())
}

/// Whether a container's guard holds its shared lock on `live/`, tried on
/// the sync's own open `live/` (so the check itself opens nothing: an open
/// of `live/` is how a guard without `flock` says it is there).
pub fn attached(live: &std::fs::File) -> bool {
    match live.try_lock() {
        Ok(()) => {
            let _ = live.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// The manifest's inode, to notice a setup: a re-setup renames a new
/// manifest into the auth dir, a first one a new auth dir into place.
fn identity(auth_dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(auth_dir.join(caw_auth::manifest::MANIFEST_FILE))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn load_live(auth_dir: &Path) -> Result<Manifest, Error> {
    let manifest = Manifest::load(auth_dir)?;
    if manifest.mode != AuthMode::Live {
        return Err(Error::NotLiveMode {
            path: auth_dir.to_path_buf(),
        });
    }
    Ok(manifest)
}

/// Whether the auth dir is missing, and still is a moment later.
fn gone(auth_dir: &Path) -> bool {
    std::thread::sleep(Duration::from_millis(200));
    !auth_dir.exists()
}

/// Whether the auth dir's manifest is missing, and still is a moment later
/// (setup renames a new one over it, so a manifest never goes away otherwise).
fn manifest_gone(auth_dir: &Path) -> bool {
    let manifest = auth_dir.join(caw_auth::manifest::MANIFEST_FILE);
    if manifest.exists() {
        return false;
    }
    std::thread::sleep(Duration::from_millis(200));
    !manifest.exists()
}

const LOCK_OPENED: u32 = 1;
const PARENT_CHANGED: u32 = 2;
const ENTRY_REMOVED: u32 = 3;
const LIVE_OPENED: u32 = 4;
const LIVE_CHANGED: u32 = 5;

/// What a container can add to `live/`: entries appear, modes change.
const LIVE_ENTRY_EVENTS: W = W::IN_CREATE
    .union(W::IN_MOVED_TO)
    .union(W::IN_ATTRIB)
    .union(W::IN_ONLYDIR);

/// Watch `live/`'s agent directories for what a container adds (see
/// [`caw_auth::live::sweep`]).
fn watch_live_entries(engine: &mut Engine, auth_dir: &Path) {
    let live = auth_dir.join(LIVE_DIR);
    for entry in std::fs::read_dir(&live).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = engine.watch_extra(&entry.path(), LIVE_ENTRY_EVENTS, LIVE_CHANGED);
        }
    }
}

/// Remove what no caw writer makes from `live/`, saying what went.
fn sweep_live(auth_dir: &Path) {
    for name in caw_auth::live::sweep(&auth_dir.join(LIVE_DIR)) {
        log::warn!(
            "{} removed `{}` from {}: not a file caw writes there (a device, FIFO, link, \
             or a setuid or executable file)",
            VOICE.prefix,
            name,
            auth_dir.join(LIVE_DIR).display()
        );
    }
}

/// Run the host sync for `opts.auth_dir` until it is stopped, removed, or idle.
pub fn run(opts: &HostSyncOptions) -> Result<Exit, Error> {
    let signals = StopSignals::new()?;
    let auth_dir = &opts.auth_dir;
    let Some(_lock) = SyncLock::acquire(auth_dir)? else {
        let pid = match host_sync::status(auth_dir) {
            SyncStatus::Running(Some(state)) => Some(state.pid),
            _ => None,
        };
        return Ok(Exit::AlreadyRunning(pid));
    };
    let manifest = load_live(auth_dir)?;
    let checks = Checks::new(opts);
    let mut engine = Engine::new(host_pairs(&manifest, auth_dir, checks.admission())?)?;
    #[cfg(feature = "refresh")]
    let store = match &opts.store {
        Some(config) => Some(start_store(config, &engine)?),
        None => None,
    };
    #[cfg(not(feature = "refresh"))]
    if opts.store.is_some() {
        return Err(Error::Store {
            reason: "this build of caw has no store support".into(),
        });
    }
    // Opened before `live/` is watched for opens, so this one is not taken for a container.
    let live = std::fs::File::open(auth_dir.join(LIVE_DIR)).ok();
    watch_the_auth_dir(&mut engine, auth_dir)?;
    let mut sync = HostSync {
        opts,
        state: SyncState {
            pid: std::process::id(),
            started_at: jiff::Timestamp::now(),
            last_sync: None,
            refresh: None,
            store: None,
        },
        current: identity(auth_dir),
        idle_since: Instant::now(),
        live,
        exit: None,
        #[cfg(feature = "refresh")]
        refresher: None,
        live_ctime: None,
        checks,
        #[cfg(feature = "refresh")]
        store,
    };
    sync.checks.register(&mut engine);
    sync.start_refresher(&mut engine, manifest.hold_refresh_token);
    #[cfg(feature = "refresh")]
    if let (Some(r), Some(link)) = (sync.refresher.as_mut(), sync.store.as_ref()) {
        r.set_gate(Arc::new(link.clone()));
    }
    #[cfg(feature = "refresh")]
    if let Some(link) = &sync.store {
        match link.news_fd() {
            Ok(fd) => engine.add_source(fd, crate::STORE_CHANGED),
            Err(e) => log::warn!("{} cannot follow the store's status: {e}", VOICE.prefix),
        }
    }
    host_sync::write_state(auth_dir, &sync.state)?;
    sweep_live(auth_dir);
    sync.live_changed();
    engine.sync_all();
    sync.after_wake(&engine);
    log::info!(
        "{} watching {} credential(s) for `{}` (pid {})",
        VOICE.prefix,
        engine.pairs().len(),
        auth_dir.display(),
        sync.state.pid
    );
    engine.run(signals.as_fd(), Some(opts.check_every), |wake, engine| {
        let flow = sync.on(wake, engine);
        sync.after_wake(engine);
        flow
    })?;
    #[cfg(feature = "refresh")]
    if let Some(link) = &sync.store {
        // Another machine takes over this one's logins at once.
        link.resign();
    }
    let exit = sync
        .exit
        .unwrap_or_else(|| Exit::Stopped(signals.pending().unwrap_or("a stop request")));
    match &exit {
        Exit::Idle => log::info!(
            "{} no container attached for {} s; exiting (docker-flags starts it again)",
            VOICE.prefix,
            opts.idle_exit.unwrap_or_default().as_secs()
        ),
        Exit::AuthDirGone => log::info!("{} the auth dir was removed; exiting", VOICE.prefix),
        Exit::Stopped(sig) => log::info!("{} stopped ({sig})", VOICE.prefix),
        Exit::AlreadyRunning(_) => {}
    }
    Ok(exit)
}

/// What besides the credentials wakes the sync: the lock file being opened
/// (someone looking for the sync), the auth dir being replaced or removed.
fn watch_the_auth_dir(engine: &mut Engine, auth_dir: &Path) -> std::io::Result<()> {
    engine.watch_extra(&host_sync::lock_path(auth_dir), W::IN_OPEN, LOCK_OPENED)?;
    // The shell guard, where it has no flock(1), opens `live/` every pass;
    // a container adding an entry is there too.
    engine.watch_extra(
        &auth_dir.join(LIVE_DIR),
        W::IN_OPEN | LIVE_ENTRY_EVENTS,
        LIVE_OPENED,
    )?;
    watch_live_entries(engine, auth_dir);
    if let Some(parent) = auth_dir.parent() {
        let changes =
            W::IN_CREATE | W::IN_DELETE | W::IN_MOVED_FROM | W::IN_MOVED_TO | W::IN_ONLYDIR;
        engine.watch_extra(parent, changes, PARENT_CHANGED)?;
    }
    // A teardown that races with us (`rm -rf`) deletes the manifest before the
    // directory itself can go: that is as good as gone. A re-setup renames a
    // new manifest in.
    engine.watch_extra(
        auth_dir,
        W::IN_DELETE | W::IN_MOVED_FROM | W::IN_MOVED_TO | W::IN_ONLYDIR,
        ENTRY_REMOVED,
    )
}

/// The host sync's own state between wake-ups.
struct HostSync<'a> {
    opts: &'a HostSyncOptions,
    state: SyncState,
    /// The manifest's inode as last loaded.
    current: Option<(u64, u64)>,
    /// Since when no container has been seen.
    idle_since: Instant,
    /// `live/`, held open to test the guards' locks on.
    live: Option<std::fs::File>,
    exit: Option<Exit>,
    #[cfg(feature = "refresh")]
    refresher: Option<crate::refresh::Refresher>,
    /// `live/`'s change time at the last sweep (read through `live`, which
    /// opens nothing).
    live_ctime: Option<(i64, i64)>,
    /// The HTTP client and the provider checks.
    checks: Checks,
    /// The store this machine's logins are joined to.
    #[cfg(feature = "refresh")]
    store: Option<crate::store_link::StoreLink>,
}

/// Open the store and link each host login to its key.
#[cfg(feature = "refresh")]
fn start_store(
    config: &StoreConfig,
    engine: &Engine,
) -> Result<crate::store_link::StoreLink, Error> {
    use crate::store_link::StoreLink;
    let bad = |reason: String| Error::Store { reason };
    let spec: caw_store::StoreSpec = config.url.parse().map_err(bad)?;
    let opts = caw_store::StoreOptions {
        spec,
        key_file: config.key_file.clone(),
        etcd: caw_store::EtcdOptions {
            endpoints: Vec::new(),
            timeout: Duration::from_secs(3),
            ca: config.ca.clone(),
            client_cert: config.client_cert.clone(),
            user: config.user.clone(),
        },
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let me = format!("{host}:{}", std::process::id());
    let store = caw_store::Store::open(&opts, &me).map_err(bad)?;
    let logins = store_logins(engine, |agent, account| store.keys(agent, account));
    log::info!(
        "{} joining this machine's logins to {} (as {me})",
        VOICE.prefix,
        config.url
    );
    StoreLink::start(store, logins).map_err(Error::Io)
}

/// Each host login of `engine`, with its keys in the store.
#[cfg(feature = "refresh")]
fn store_logins(
    engine: &Engine,
    keys: impl Fn(&str, Option<&str>) -> caw_store::LoginKeys,
) -> Vec<crate::store_link::StoreLogin> {
    engine
        .pairs()
        .iter()
        .map(|p| {
            let host = p.end(crate::decide::Side::A).path();
            let account = crate::store_link::account_of(p.agent(), &host);
            crate::store_link::StoreLogin {
                agent: p.agent(),
                keys: keys(p.agent().name, account.as_deref()),
                host,
            }
        })
        .collect()
}

/// What the sync asks providers with: the refresher's client, and the gate
/// a container's login passes before it reaches the host.
struct Checks {
    #[cfg(feature = "refresh")]
    client: Option<caw_refresh::http::Client>,
    #[cfg(feature = "refresh")]
    gate: Option<(Arc<crate::vouch::Gate>, crate::vouch::GateWake)>,
    admission: Option<Arc<dyn Admission>>,
}

impl Checks {
    #[cfg(feature = "refresh")]
    fn new(opts: &HostSyncOptions) -> Checks {
        let timeout = opts
            .refresh
            .as_ref()
            .map_or(RefreshOptions::default().timeout, |r| r.timeout);
        // Loading the system's CA certificates takes a moment: only when needed.
        let needed = opts.verify || opts.refresh.is_some();
        let client = match needed.then(|| caw_refresh::http::Client::new(timeout)) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                log::warn!("{} cannot reach any provider: {e}", VOICE.prefix);
                None
            }
        };
        let gate = match (&client, opts.verify) {
            (_, false) => {
                log::warn!(
                    "{} not asking providers about containers' logins (--no-verify): a \
                     container can put a login of another account on the host",
                    VOICE.prefix
                );
                None
            }
            (Some(c), true) => match crate::vouch::Gate::new(c.clone()) {
                Ok(g) => Some(g),
                Err(e) => {
                    log::warn!("{} cannot start the provider checks: {e}", VOICE.prefix);
                    None
                }
            },
            (None, true) => {
                log::warn!(
                    "{} containers' claude and codex logins will not reach the host: caw \
                     cannot ask their provider (`--no-verify` takes them unchecked)",
                    VOICE.prefix
                );
                None
            }
        };
        let admission = match (&gate, opts.verify) {
            (Some((g, _)), _) => Some(Arc::clone(g) as Arc<dyn Admission>),
            // Verification asked for but impossible: nothing from a
            // container reaches the host of the agents caw can vouch for.
            (None, true) => Some(Arc::new(NoProvider) as Arc<dyn Admission>),
            (None, false) => None,
        };
        Checks {
            client,
            gate,
            admission,
        }
    }

    #[cfg(not(feature = "refresh"))]
    fn new(opts: &HostSyncOptions) -> Checks {
        if opts.verify {
            log::warn!(
                "{} this build of caw cannot ask providers: containers' claude and codex \
                 logins will not reach the host (`--no-verify` takes them unchecked)",
                VOICE.prefix
            );
        }
        Checks {
            admission: opts
                .verify
                .then(|| Arc::new(NoProvider) as Arc<dyn Admission>),
        }
    }

    fn admission(&self) -> Option<&Arc<dyn Admission>> {
        self.admission.as_ref()
    }

    /// Let the gate's answers wake the engine.
    fn register(&self, engine: &mut Engine) {
        #[cfg(feature = "refresh")]
        if let Some((_, wake)) = &self.gate {
            match wake.fd() {
                Ok(fd) => engine.add_source(fd, crate::VOUCH_DONE),
                Err(e) => log::warn!("{} cannot watch the provider checks: {e}", VOICE.prefix),
            }
        }
        #[cfg(not(feature = "refresh"))]
        let _ = engine;
    }

    /// After an answer came: empty the wake-ups.
    fn answered(&self) {
        #[cfg(feature = "refresh")]
        if let Some((_, wake)) = &self.gate {
            wake.drain();
        }
    }
}

/// The admission when no provider can be asked (no client, or a build
/// without one): the logins of agents caw would vouch for stay off the host,
/// and in `live/`, as when the provider does not answer.
#[derive(Debug)]
struct NoProvider;

impl Admission for NoProvider {
    fn admit(
        &self,
        agent: &'static caw_auth::agents::Agent,
        _: &[u8],
        _: &[u8],
        _: &Path,
        _: Instant,
    ) -> crate::Admit {
        if matches!(agent.name, "claude" | "codex") {
            crate::Admit::Wait(None)
        } else {
            crate::Admit::Yes
        }
    }
}

impl HostSync<'_> {
    /// Whether `live/`'s entries changed since the last look.
    fn live_changed(&mut self) -> bool {
        let now = self
            .live
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| (m.ctime(), m.ctime_nsec()));
        let changed = now != self.live_ctime;
        self.live_ctime = now;
        changed
    }

    /// Start refreshing logins, unless told not to.
    fn start_refresher(&mut self, engine: &mut Engine, held: bool) {
        let Some(opts) = self.opts.refresh.clone() else {
            log::info!("{} not refreshing logins (--no-refresh)", VOICE.prefix);
            return;
        };
        #[cfg(feature = "refresh")]
        let Some(client) = self.checks.client.clone() else {
            return;
        };
        #[cfg(feature = "refresh")]
        match crate::refresh::Refresher::new(opts, client, held, engine) {
            Ok(r) => self.refresher = Some(r),
            Err(e) => log::warn!(
                "{} cannot refresh logins ({e}); the agents refresh them themselves",
                VOICE.prefix
            ),
        }
        #[cfg(not(feature = "refresh"))]
        {
            let _ = (opts, engine, held);
            log::warn!(
                "{} this build of caw has no refresher; the agents refresh their logins themselves",
                VOICE.prefix
            );
        }
    }

    /// After any wake: let the refresher plan, and record what it says.
    fn after_wake(&mut self, engine: &Engine) {
        #[cfg(feature = "refresh")]
        if let (Some(link), Some(config)) = (&self.store, &self.opts.store) {
            let status = link.status();
            let state = host_sync::StoreState {
                url: config.url.clone(),
                unreachable_since: status.unreachable_since,
                refresher_of: status.refresher_of,
                outcome_unknown: status.outcome_unknown,
                problem: status.problem,
            };
            if self.state.store.as_ref() != Some(&state) {
                self.state.store = Some(state);
                if let Err(e) = host_sync::write_state(&self.opts.auth_dir, &self.state) {
                    log::warn!("{} cannot record its state: {e}", VOICE.prefix);
                }
            }
        }
        #[cfg(feature = "refresh")]
        if let Some(r) = self.refresher.as_mut() {
            r.poll(engine);
            let records = Some(r.records(engine));
            if records != self.state.refresh {
                self.state.refresh = records;
                if let Err(e) = host_sync::write_state(&self.opts.auth_dir, &self.state) {
                    log::warn!("{} cannot record its state: {e}", VOICE.prefix);
                }
            }
        }
        #[cfg(not(feature = "refresh"))]
        let _ = engine;
    }

    fn on(&mut self, wake: Wake, engine: &mut Engine) -> ControlFlow<()> {
        let auth_dir = &self.opts.auth_dir;
        let exit = match wake {
            Wake::Synced => {
                if host_sync::cap_log(self.opts.log_limit) {
                    log::info!(
                        "{} the log passed {} bytes and was emptied",
                        VOICE.prefix,
                        self.opts.log_limit
                    );
                }
                self.state.last_sync = Some(jiff::Timestamp::now());
                if let Err(e) = host_sync::write_state(auth_dir, &self.state) {
                    log::warn!("{} cannot record its state: {e}", VOICE.prefix);
                }
                None
            }
            // Someone looked for the sync (`docker-flags`, `status`): a container may follow.
            // An open of `live/` (a shell guard's heartbeat, or the sweep's
            // own), or an entry added there: sweep only when `live/` itself
            // changed, so the sweep's own open does not wake it again.
            Wake::Extra(LIVE_OPENED) => {
                self.idle_since = Instant::now();
                if self.live_changed() {
                    sweep_live(auth_dir);
                    watch_live_entries(engine, auth_dir);
                }
                None
            }
            Wake::Extra(LIVE_CHANGED) => {
                self.idle_since = Instant::now();
                sweep_live(auth_dir);
                None
            }
            Wake::Extra(LOCK_OPENED) => {
                self.idle_since = Instant::now();
                None
            }
            Wake::Extra(ENTRY_REMOVED) if manifest_gone(auth_dir) => Some(Exit::AuthDirGone),
            // The store's status changed: `after_wake` records it.
            #[cfg(feature = "refresh")]
            Wake::Extra(crate::STORE_CHANGED) => {
                if let Some(link) = &self.store {
                    link.drain();
                }
                None
            }
            // The refresher's timer or a finished refresh: `after_wake` plans.
            Wake::Extra(crate::REFRESH_TIMER | crate::REFRESH_DONE) => None,
            // A provider answered about a container's login: look again.
            Wake::Extra(crate::VOUCH_DONE) => {
                self.checks.answered();
                engine.sync_all();
                None
            }
            Wake::Extra(_) => self.reload_if_replaced(engine),
            Wake::Tick if self.live.as_ref().is_some_and(attached) => {
                self.idle_since = Instant::now();
                None
            }
            Wake::Tick => self
                .opts
                .idle_exit
                .is_some_and(|d| self.idle_since.elapsed() >= d)
                .then_some(Exit::Idle),
        };
        match exit {
            Some(exit) => {
                self.exit = Some(exit);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }

    /// After a change in or beside the auth dir: when `setup` wrote a new
    /// manifest, sync its credentials instead; when it is gone, exit.
    fn reload_if_replaced(&mut self, engine: &mut Engine) -> Option<Exit> {
        let auth_dir = &self.opts.auth_dir;
        let now = identity(auth_dir);
        if now == self.current {
            return None;
        }
        self.current = now;
        match load_live(auth_dir).and_then(|m| host_pairs(&m, auth_dir, self.checks.admission())) {
            Ok(pairs) => {
                log::info!("{} the auth dir was set up again; reloading", VOICE.prefix);
                engine.set_pairs(pairs);
                #[cfg(feature = "refresh")]
                if let Some(link) = &self.store {
                    link.set_logins(store_logins(engine, |agent, account| {
                        link.keys(agent, account)
                    }));
                }
                // A new `live/` (a bind-mode auth dir set up again in live mode).
                self.live = std::fs::File::open(auth_dir.join(LIVE_DIR)).ok();
                let _ = engine.watch_extra(
                    &auth_dir.join(LIVE_DIR),
                    W::IN_OPEN | LIVE_ENTRY_EVENTS,
                    LIVE_OPENED,
                );
                watch_live_entries(engine, auth_dir);
                engine.sync_all();
                let _ = host_sync::write_state(auth_dir, &self.state);
                None
            }
            // Gone, and still gone a moment later (not a setup's two-rename swap).
            Err(Error::NoManifest { .. }) if now.is_none() && gone(auth_dir) => {
                Some(Exit::AuthDirGone)
            }
            // Half-way through a setup's swap, or set up in bind mode.
            Err(e) => {
                log::warn!("{} {e}", VOICE.prefix);
                None
            }
        }
    }
}
