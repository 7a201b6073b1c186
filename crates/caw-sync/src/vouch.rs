//! The host sync's [`Admission`]: a container's login reaches a host file
//! only once the agent's provider vouches for it (see
//! [`caw_refresh::vouch`]).
//!
//! The question goes to a worker thread, so a slow provider never holds up
//! a sync; meanwhile the pair holds ([`Hold::Unvouched`]) and `live/` keeps
//! what the container wrote. Verdicts are kept per access token, so a login
//! is asked about once:
//!
//! - vouched: it is copied like any login;
//! - refused (401, another account, a bad signature): the host's login is
//!   put back into `live/`, and the same tokens are never asked about again;
//! - no answer: asked again after a back-off (5 s, doubling to 5 min).
//!
//! A login whose access token the host file already holds needs no
//! question. One question per agent is under way at a time, and after a
//! refusal the next one waits a little (1 s, doubling to a minute): a
//! container writing token after token cannot make caw flood the provider.
//!
//! [`Hold::Unvouched`]: crate::decide::Hold::Unvouched

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use caw_auth::agents::Agent;
use caw_refresh::http::Client;
use caw_refresh::vouch::{self, Verdict, Voucher};
use serde_json::Value;

#[cfg(doc)]
use crate::Engine;
use crate::{Admission, Admit};

/// The first wait after no answer; it doubles up to [`MAX_UNKNOWN_WAIT`].
const UNKNOWN_WAIT: Duration = Duration::from_secs(5);
const MAX_UNKNOWN_WAIT: Duration = Duration::from_secs(300);
/// The wait before the next question after a refusal; it doubles up to a minute.
const REFUSED_WAIT: Duration = Duration::from_secs(1);
const MAX_REFUSED_WAIT: Duration = Duration::from_secs(60);
/// Verdicts kept; the oldest settled ones go first.
const MAX_VERDICTS: usize = 256;

/// What is known of one login's tokens.
#[derive(Debug, Clone)]
enum Known {
    Asking,
    Vouched,
    Refused(String),
    /// No answer; ask again at the instant.
    Unknown(Instant),
}

/// One agent's questions.
#[derive(Debug, Default)]
struct PerAgent {
    asking: bool,
    /// Refusals in a row, and when the next question may go.
    refusals: u32,
    not_before: Option<Instant>,
    unknowns: u32,
}

#[derive(Debug, Default)]
struct State {
    known: HashMap<[u8; 32], (Known, Instant)>,
    agents: HashMap<&'static str, PerAgent>,
}

/// Asks providers about containers' logins before the host takes them.
#[derive(Debug)]
pub struct Gate {
    voucher: Arc<Voucher>,
    state: Arc<Mutex<State>>,
    wake: UnixStream,
}

/// The reading end of a gate's wake-ups, registered with the engine.
#[derive(Debug)]
pub struct GateWake(UnixStream);

impl GateWake {
    /// A descriptor that turns readable on each answer, for [`Engine::add_source`].
    pub fn fd(&self) -> std::io::Result<OwnedFd> {
        Ok(OwnedFd::from(self.0.try_clone()?))
    }

    /// Empty the wake-ups (after the engine reported [`VOUCH_DONE`]).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.0).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Gate {
    /// A gate asking through `client`; its answers make [`GateWake`] readable.
    pub fn new(client: Client) -> std::io::Result<(Arc<Gate>, GateWake)> {
        let (wake, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        let gate = Gate {
            voucher: Arc::new(Voucher::new(client)),
            state: Arc::default(),
            wake,
        };
        Ok((Arc::new(gate), GateWake(wake_rx)))
    }

    fn ask(&self, agent: &'static Agent, key: [u8; 32], b: Value, a: Value, a_path: &Path) {
        let voucher = Arc::clone(&self.voucher);
        let state = Arc::clone(&self.state);
        let wake = self.wake.try_clone();
        let a_path = a_path.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name(format!("caw-vouch-{}", agent.name))
            .spawn(move || {
                let verdict = voucher.check(agent.name, &b, &a, &a_path);
                settle(&state, agent, key, verdict);
                if let Ok(mut w) = wake {
                    let _ = w.write_all(b"!");
                }
            });
        if let Err(e) = spawned {
            settle(
                &self.state,
                agent,
                key,
                Verdict::Unknown(format!("cannot start a thread: {e}")),
            );
        }
    }
}

/// Record a verdict.
fn settle(state: &Mutex<State>, agent: &'static Agent, key: [u8; 32], verdict: Verdict) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let per = state.agents.entry(agent.name).or_default();
    per.asking = false;
    let known = match verdict {
        Verdict::Vouched => {
            per.refusals = 0;
            per.unknowns = 0;
            per.not_before = None;
            log::info!(
                "[caw sync] {}: the provider vouches for the login",
                agent.name
            );
            Known::Vouched
        }
        Verdict::Refused(why) => {
            per.not_before = Some(now + doubling(REFUSED_WAIT, per.refusals, MAX_REFUSED_WAIT));
            per.refusals += 1;
            Known::Refused(why)
        }
        Verdict::Unknown(why) => {
            let wait = doubling(UNKNOWN_WAIT, per.unknowns, MAX_UNKNOWN_WAIT);
            per.unknowns += 1;
            log::warn!(
                "[caw sync] {}: cannot ask the provider about a login from a container ({why}); \
                 not taking it yet, asking again in {} s",
                agent.name,
                wait.as_secs()
            );
            Known::Unknown(now + wait)
        }
    };
    state.known.insert(key, (known, now));
    if state.known.len() > MAX_VERDICTS {
        let oldest = state
            .known
            .iter()
            .filter(|(_, (k, _))| !matches!(k, Known::Asking))
            .min_by_key(|(_, (_, at))| *at)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            state.known.remove(&k);
        }
    }
}

fn doubling(first: Duration, times: u32, max: Duration) -> Duration {
    first.saturating_mul(1 << times.min(16)).min(max)
}

impl Admission for Gate {
    fn admit(
        &self,
        agent: &'static Agent,
        bytes: &[u8],
        a: &[u8],
        a_path: &Path,
        now: Instant,
    ) -> Admit {
        if !vouch::can_vouch(agent.name) {
            return Admit::Yes;
        }
        let (Ok(b), Ok(a)) = (
            serde_json::from_slice::<Value>(bytes),
            serde_json::from_slice::<Value>(a),
        ) else {
            return Admit::Yes;
        };
        let Some(key) = vouch::subject(agent.name, &b) else {
            // No access token: nothing to vouch for, nor to use.
            return Admit::Yes;
        };
        if vouch::subject(agent.name, &a) == Some(key) {
            // The host file holds these very tokens.
            return Admit::Yes;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.known.get(&key) {
            Some((Known::Vouched, _)) => return Admit::Yes,
            Some((Known::Refused(why), _)) => return Admit::No(why.clone()),
            Some((Known::Asking, _)) => return Admit::Wait(None),
            Some((Known::Unknown(at), _)) if *at > now => return Admit::Wait(Some(*at)),
            _ => {}
        }
        let per = state.agents.entry(agent.name).or_default();
        if per.asking {
            return Admit::Wait(None);
        }
        if let Some(at) = per.not_before.filter(|at| *at > now) {
            return Admit::Wait(Some(at));
        }
        per.asking = true;
        state.known.insert(key, (Known::Asking, now));
        drop(state);
        log::info!(
            "[caw sync] {}: asking the provider whose login a container wrote",
            agent.name
        );
        self.ask(agent, key, b, a, a_path);
        Admit::Wait(None)
    }
}
