//! caw's one refresher: each agent's OAuth refresh, sent the way its own CLI
//! sends it, and the answer written in the agent's own file format.
//!
//! Several agents sharing one login (the host's and every container's) each
//! refresh it when its access token nears expiry, all with the same refresh
//! token: every request after the first is a reuse, refused, and a provider
//! that treats reuse as theft revokes the whole token family. So the host
//! sync refreshes each login a [`MARGIN`] before the earliest moment its
//! agent would, once, under a lock, and the agents only ever see a fresh
//! token.
//!
//! This crate is the part that knows the protocols; the host sync
//! (`caw_sync::refresh`) decides when and writes the result through its
//! usual compare-before-commit path.
//!
//! - [`Protocol`]: one per agent ([`protocol`]), pure data plus small
//!   functions: endpoint, body fields, when the agent itself refreshes, and
//!   how the answer becomes the agent's file.
//! - [`http::Client`]: HTTPS through rustls with the system's roots
//!   (`SSL_CERT_FILE` honoured), no redirects, bounded answers.
//! - [`lock`]: one refresh per login on the machine (a `flock` on the
//!   credential's directory), plus the agent's own refresh lock on the host.
//!
//! ```
//! let claude = caw_refresh::protocol("claude").unwrap();
//! let cred: serde_json::Value = serde_json::json!({"claudeAiOauth": {
//!     "accessToken": "a", "refreshToken": "r", "expiresAt": 1_800_000_000_000_i64}});
//! // Claude refreshes 5 minutes before expiry; caw a margin before that.
//! let due = claude.due(&cred).unwrap();
//! assert_eq!(due.as_second(), 1_800_000_000 - 5 * 60 - caw_refresh::MARGIN.as_secs());
//! ```

mod agents;
pub mod http;
pub mod lock;
mod protocol;
pub mod vouch;

pub use protocol::{
    classify, AnswerError, Encoding, Field, HostLock, Outcome, Protocol, Request, MARGIN,
};

/// The refresh protocols caw knows, one per agent that has one.
pub static PROTOCOLS: &[&Protocol] = &[
    &agents::claude::PROTOCOL,
    &agents::codex::PROTOCOL,
    &agents::opencode::PROTOCOL,
    &agents::gemini::PROTOCOL,
    &agents::qwen::PROTOCOL,
];

/// The refresh protocol of the agent called `agent`, if caw knows one.
pub fn protocol(agent: &str) -> Option<&'static Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.agent == agent)
}

/// `CAW_NO_REFRESH=1`: the host sync refreshes nothing.
pub const NO_REFRESH_ENV: &str = "CAW_NO_REFRESH";

#[cfg(test)]
mod tests {
    #[test]
    fn every_protocol_is_for_a_known_agent_once() {
        let mut seen = std::collections::HashSet::new();
        for p in super::PROTOCOLS {
            assert!(caw_auth::agents::by_name(p.agent).is_some(), "{}", p.agent);
            assert!(seen.insert(p.agent));
            assert!(p.token_url.starts_with("https://"));
        }
    }
}
