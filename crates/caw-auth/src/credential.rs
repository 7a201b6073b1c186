//! What a credential file holds, judged once: whether it is a complete login,
//! how fresh it is, and whose it is.
//!
//! Both sync directions (the container guard and the host sync) read every
//! file through [`Credential::parse`] and decide on the result; nothing else
//! interprets credential bytes. The bytes themselves are never kept here:
//! only a [`Digest`], so that no token can reach a log through `Debug`.

use std::fmt;

use jiff::Timestamp;
use sha2::Digest as _;

use crate::agents::Agent;
pub use crate::identity::Identity;

/// The largest credential caw reads; anything bigger is not one.
pub const MAX_CREDENTIAL_BYTES: u64 = 1 << 20;

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

/// How fresh a credential is, as far as its file tells.
///
/// Ordered so that a greater value is the newer credential: first by
/// `expires_at`, then by `tiebreak` (codex's `last_refresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    /// When the access token expires, if known (and plausible).
    pub expires_at: Option<Timestamp>,
    /// A second clock that orders credentials with the same expiry.
    pub tiebreak: Option<Timestamp>,
}

impl Freshness {
    /// Whether `self` is known to be strictly newer than `other`.
    ///
    /// Only known expiries are compared; equal expiries are ordered by the
    /// tie-breaker when both sides have one. Unknown never orders anything.
    pub fn is_fresher_than(&self, other: &Freshness) -> bool {
        match (self.expires_at, other.expires_at) {
            (Some(a), Some(b)) if a != b => a > b,
            (Some(_), Some(_)) => {
                matches!((self.tiebreak, other.tiebreak), (Some(a), Some(b)) if a > b)
            }
            _ => false,
        }
    }
}

/// The freshness of raw credential bytes for the agent called `agent`
/// (expiry as stated, without the plausibility rule of [`Credential::parse`]).
///
/// `None` when the bytes are not a JSON object or the agent is unknown.
pub fn freshness_of(agent: &str, bytes: &[u8]) -> Option<Freshness> {
    let agent = crate::agents::by_name(agent)?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !value.is_object() {
        return None;
    }
    let facts = (agent.read_credential)(&value);
    Some(Freshness {
        expires_at: facts.expires_at,
        tiebreak: facts.tiebreak,
    })
}

/// A complete credential file: a JSON object within the size cap, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Fingerprint of the exact bytes.
    pub digest: Digest,
    /// Whether it holds a usable login (see [`crate::agents::CredentialFacts::has_token`]).
    pub usable: bool,
    /// How fresh it is; an expiry implausibly far ahead is left out.
    pub freshness: Freshness,
    /// Whose login it is, where the file tells.
    pub identity: Identity,
    /// Its expiry is further ahead than the agent's tokens ever live
    /// ([`Agent::max_lifetime`]): a planted login, never copied over one.
    pub implausible: bool,
}

impl Credential {
    /// Judge `bytes` as `agent`'s credential, as of `now`.
    ///
    /// `None` when the bytes are not one complete JSON object within
    /// [`MAX_CREDENTIAL_BYTES`]: a write in progress, or not a credential.
    pub fn parse(agent: &Agent, bytes: &[u8], now: Timestamp) -> Option<Credential> {
        if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        if !value.is_object() {
            return None;
        }
        let facts = (agent.read_credential)(&value);
        let beyond = |t: &Timestamp| t.duration_since(now) > agent.max_lifetime;
        let implausible = facts.expires_at.as_ref().is_some_and(beyond);
        Some(Credential {
            digest: Digest::of(bytes),
            usable: facts.has_token,
            freshness: Freshness {
                expires_at: facts.expires_at.filter(|t| !beyond(t)),
                tiebreak: facts.tiebreak.filter(|t| !beyond(t)),
            },
            identity: facts.identity,
            implausible,
        })
    }
}

/// What stands in a container's copy in place of each refresh token when
/// the host keeps them (`--hold-refresh-token`): not a secret, and refused
/// by every token endpoint.
pub const HELD_REFRESH_TOKEN: &str = "caw-held-on-the-host";

/// `bytes` with every refresh token replaced by [`HELD_REFRESH_TOKEN`], as
/// the agent's own JSON (`None` when the bytes are not a JSON object).
/// Everything else, access tokens included, is kept.
pub fn hold(agent: &Agent, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !value.is_object() {
        return None;
    }
    for token in (agent.refresh_tokens)(&mut value) {
        *token = HELD_REFRESH_TOKEN.into();
    }
    serde_json::to_vec_pretty(&value).ok()
}

/// Whether `bytes` hold a container's copy made by [`hold`]: never a login
/// the host may take.
pub fn is_held(bytes: &[u8]) -> bool {
    bytes
        .windows(HELD_REFRESH_TOKEN.len())
        .any(|w| w == HELD_REFRESH_TOKEN.as_bytes())
}

/// The expiry `bytes` state for `agent` (as written, plausible or not), for
/// showing to people; `None` when the file is not a credential or says nothing.
pub fn stated_expiry(agent: &Agent, bytes: &[u8]) -> Option<Timestamp> {
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value
        .is_object()
        .then(|| (agent.read_credential)(&value).expires_at)
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn fresh(exp: Option<i64>, tie: Option<i64>) -> Freshness {
        Freshness {
            expires_at: exp.map(ts),
            tiebreak: tie.map(ts),
        }
    }

    #[test]
    fn only_known_expiries_order() {
        let (old, new, unknown) = (
            fresh(Some(100), None),
            fresh(Some(200), None),
            fresh(None, None),
        );
        assert!(new.is_fresher_than(&old));
        assert!(!old.is_fresher_than(&new));
        assert!(!new.is_fresher_than(&new));
        assert!(!new.is_fresher_than(&unknown));
        assert!(!unknown.is_fresher_than(&old));
    }

    #[test]
    fn the_tiebreak_orders_equal_expiries_only() {
        assert!(fresh(Some(100), Some(6)).is_fresher_than(&fresh(Some(100), Some(5))));
        assert!(!fresh(Some(100), Some(5)).is_fresher_than(&fresh(Some(100), Some(6))));
        assert!(!fresh(Some(100), Some(9)).is_fresher_than(&fresh(Some(200), Some(1))));
        assert!(!fresh(Some(100), None).is_fresher_than(&fresh(Some(100), Some(1))));
    }

    #[test]
    fn debug_shows_no_bytes() {
        let text = format!("{:?}", Digest::of(b"secret-refresh-token"));
        assert!(text.starts_with("Digest(") && text.len() < 20, "{text}");
    }

    #[test]
    fn parse_needs_one_complete_object_within_the_cap() {
        let agent = crate::agents::by_name("qwen").unwrap();
        let now = ts(1_000_000);
        for bytes in [&b""[..], b"{\"access_token\": ", b"[1]", b"null", b"{} x"] {
            assert_eq!(Credential::parse(agent, bytes, now), None, "{bytes:?}");
        }
        let mut big = b"{\"x\":\"".to_vec();
        big.resize(MAX_CREDENTIAL_BYTES as usize, b'a');
        big.extend_from_slice(b"\"}");
        assert_eq!(Credential::parse(agent, &big, now), None);
        assert!(Credential::parse(agent, b"{}", now).is_some_and(|c| !c.usable));
    }

    #[test]
    fn an_expiry_beyond_the_agent_s_token_lifetime_is_implausible() {
        let qwen = crate::agents::by_name("qwen").unwrap();
        let claude = crate::agents::by_name("claude").unwrap();
        let now = ts(1_700_000_000);
        let hour = 3600;
        let qwen_cred = |secs: i64| {
            let text = format!(
                r#"{{"access_token":"a","refresh_token":"r","expiry_date":{}}}"#,
                secs * 1000
            );
            Credential::parse(qwen, text.as_bytes(), now).unwrap()
        };
        let ok = qwen_cred(1_700_000_000 + 6 * hour);
        assert!(!ok.implausible);
        assert_eq!(ok.freshness.expires_at, Some(ts(1_700_000_000 + 6 * hour)));
        let planted = qwen_cred(1_700_000_000 + 300 * 24 * hour);
        assert!(planted.implausible && planted.freshness.expires_at.is_none());
        // Claude's 8-hour tokens: 10 hours ahead is already a plant.
        let claude_cred = |secs: i64| {
            let text = format!(
                r#"{{"claudeAiOauth":{{"accessToken":"a","refreshToken":"r","expiresAt":{}}}}}"#,
                secs * 1000
            );
            Credential::parse(claude, text.as_bytes(), now).unwrap()
        };
        assert!(!claude_cred(1_700_000_000 + 8 * hour).implausible);
        assert!(claude_cred(1_700_000_000 + 10 * hour).implausible);
        assert!(claude_cred(9_999_999_999).implausible);
        // Shown to people as written.
        let poisoned = format!(
            r#"{{"access_token":"a","refresh_token":"r","expiry_date":{}}}"#,
            (1_700_000_000 + 9999 * 24 * hour) * 1000
        );
        assert_eq!(
            stated_expiry(qwen, poisoned.as_bytes()),
            Some(ts(1_700_000_000 + 9999 * 24 * hour))
        );
    }

    #[test]
    fn hold_replaces_every_refresh_token_and_nothing_else() {
        use serde_json::json;
        let cases = [
            (
                "claude",
                json!({"claudeAiOauth": {"accessToken": "a", "refreshToken": "r", "expiresAt": 5}}),
            ),
            (
                "codex",
                json!({"tokens": {"access_token": "a", "refresh_token": "r", "id_token": "i"}, "last_refresh": "x"}),
            ),
            (
                "gemini",
                json!({"access_token": "a", "refresh_token": "r", "expiry_date": 5}),
            ),
            (
                "qwen",
                json!({"access_token": "a", "refresh_token": "r", "expiry_date": 5}),
            ),
            (
                "opencode",
                json!({"anthropic": {"type": "oauth", "refresh": "r", "access": "a", "expires": 5},
                                "copilot": {"type": "oauth", "refresh": "r2", "access": "b", "expires": 5},
                                "openai": {"type": "api", "key": "sk"}}),
            ),
        ];
        for (name, cred) in cases {
            let agent = crate::agents::by_name(name).unwrap();
            let held = hold(agent, &serde_json::to_vec(&cred).unwrap()).unwrap();
            let text = String::from_utf8(held.clone()).unwrap();
            assert!(is_held(&held), "{name}");
            assert!(
                !text.contains("\"r\"") && !text.contains("\"r2\""),
                "{name}: {text}"
            );
            assert!(text.contains("\"a\""), "{name}: access token kept: {text}");
            let parsed = Credential::parse(agent, &held, ts(1)).unwrap();
            assert!(
                parsed.usable,
                "{name}: a held copy is a usable login in the container"
            );
        }
        assert!(!is_held(b"{\"refresh_token\":\"r\"}"));
    }
}
