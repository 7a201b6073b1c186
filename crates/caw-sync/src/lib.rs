//! The sync engine of caw: keep one credential equal on two ends.
//!
//! One pipeline, two instances. Events from inotify mark a [`Pair`] dirty;
//! after a short debounce the pair is looked at: both ends are read and
//! classified once ([`side::Look::classify`]), the pure [`decide()`] says which
//! way the credential moves (or why it does not), and the one apply step
//! writes it by temp file and rename, comparing before it commits. The
//! container guard runs it on `home ⇄ live` (or `home ⇄ a bind-mounted host
//! file`), the host sync on `host file ⇄ live`.
//!
//! ```
//! use caw_sync::decide::{decide, Action, Observed, Side, Why};
//! use caw_auth::{agents, credential::Credential};
//!
//! let claude = agents::by_name("claude").unwrap();
//! let bytes = br#"{"claudeAiOauth":{"accessToken":"a","refreshToken":"r","expiresAt":1}}"#;
//! let live = Observed::Valid(Credential::parse(claude, bytes, jiff::Timestamp::now()).unwrap());
//! assert_eq!(
//!     decide(&live, &Observed::Missing, Default::default()),
//!     Action::Copy { from: Side::A, why: Why::Restore },
//! );
//! ```

pub mod decide;
mod engine;
pub mod host;
mod pair;
#[cfg(feature = "refresh")]
pub mod refresh;
pub mod side;
mod signals;
#[cfg(feature = "refresh")]
pub mod store_link;
#[cfg(feature = "refresh")]
pub use caw_store;
#[cfg(feature = "refresh")]
pub mod vouch;

pub use decide::decide;
pub use engine::{Engine, Wake, MAX_DELAY, QUIET};
pub use pair::{observe, Admission, Admit, Now, Outcome, Pair, Voice, REPAIR_AFTER};
pub use signals::StopSignals;

/// The host sync's hook ids for the refresher's timer and its finished
/// refreshes (see `refresh`).
pub const REFRESH_TIMER: u32 = 100;
/// See [`REFRESH_TIMER`].
pub const REFRESH_DONE: u32 = 101;
/// The host sync's hook id for a provider's answer about a container's login.
pub const VOUCH_DONE: u32 = 102;
/// The host sync's hook id for the store link's news (reachable or not,
/// who refreshes): `sync.json` is written again.
pub const STORE_CHANGED: u32 = 103;
