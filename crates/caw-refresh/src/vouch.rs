//! Whether a login that a container wrote belongs to the host's account,
//! asked of the agent's own provider before the host takes it.
//!
//! A container can write anything into `live/`. The decision rules refuse
//! what is broken, older, logged out, implausibly long-lived, or labelled
//! with another account; but Claude's credential file names no account at
//! all, and a well-formed token of another account (or a made-up one) with
//! a plausible expiry would otherwise pass as the newest login. So before
//! the host sync copies a login it has not seen into a host file:
//!
//! - **Claude**: `GET /api/oauth/profile` with the access token, as Claude
//!   Code does; the answer's `account.uuid` must be the host's
//!   (`oauthAccount.accountUuid` in the host's `.claude.json`).
//! - **Codex**: its `id_token` and `access_token` are JWTs signed by the
//!   provider: both must verify against the provider's published keys
//!   (fetched once, cached, fetched again for an unknown key id), come from
//!   its issuer, and name the host's ChatGPT account.
//!
//! The other agents (opencode, Gemini, Qwen) are judged by the decision
//! rules and the lifetime caps alone.
//!
//! A refresh token cannot be checked without spending it, so a container
//! that pairs the host's own access token with a refresh token of its own
//! is not caught here; the refresher's answer is checked instead.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::http::{Client, Reply};

/// `CAW_NO_VERIFY=1`: the host sync takes containers' logins without asking
/// the provider (`--no-verify`).
pub const NO_VERIFY_ENV: &str = "CAW_NO_VERIFY";
/// Claude Code's profile endpoint (`GET`, bearer access token).
pub const CLAUDE_PROFILE_URL: &str = "https://api.anthropic.com/api/oauth/profile";
/// Overrides [`CLAUDE_PROFILE_URL`] (tests; plain `http` only on loopback).
pub const CLAUDE_PROFILE_ENV: &str = "CAW_CLAUDE_PROFILE_URL";
/// OpenAI's published signing keys for Codex's tokens.
pub const CODEX_JWKS_URL: &str = "https://auth.openai.com/.well-known/jwks.json";
/// Overrides [`CODEX_JWKS_URL`] (tests; plain `http` only on loopback).
pub const CODEX_JWKS_ENV: &str = "CAW_CODEX_JWKS_URL";
/// The issuer of Codex's tokens.
pub const CODEX_ISSUER: &str = "https://auth.openai.com";
/// The JWT claim that holds the ChatGPT account of a Codex token.
const CODEX_AUTH_CLAIM: &str = "https://api.openai.com/auth";
/// How long fetched keys are used before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id fetches the keys again, at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(60);
/// The largest `.claude.json` read for the account (it grows with projects).
const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// What the provider says about a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The provider vouches for it: the host's account.
    Vouched,
    /// The provider does not know it, or it is another account's (why).
    Refused(String),
    /// No answer to go by (offline, a 5xx): take nothing yet (why).
    Unknown(String),
}

/// Whether caw can ask `agent`'s provider about a login.
pub fn can_vouch(agent: &str) -> bool {
    matches!(agent, "claude" | "codex")
}

/// A fingerprint of what vouching looks at in `cred` (its access token, and
/// for Codex its `id_token`): one verdict serves every file that carries
/// the same tokens. `None` when the credential has no access token.
pub fn subject(agent: &str, cred: &Value) -> Option<[u8; 32]> {
    let tokens: Vec<&str> = match agent {
        "claude" => vec![cred.pointer("/claudeAiOauth/accessToken")?.as_str()?],
        "codex" => vec![
            cred.pointer("/tokens/access_token")?.as_str()?,
            cred.pointer("/tokens/id_token")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ],
        _ => return None,
    };
    let mut hash = Sha256::new();
    for t in tokens {
        hash.update((t.len() as u64).to_be_bytes());
        hash.update(t.as_bytes());
    }
    Some(hash.finalize().into())
}

/// Asks providers; holds the fetched signing keys.
pub struct Voucher {
    client: Client,
    keys: Mutex<Option<KeySet>>,
}

impl std::fmt::Debug for Voucher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Voucher")
    }
}

/// Signing keys as fetched.
struct KeySet {
    keys: Vec<Rsa>,
    fetched: Instant,
}

/// One RSA public key of a JWKS.
struct Rsa {
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Voucher {
    /// A voucher that asks through `client`.
    pub fn new(client: Client) -> Self {
        Voucher {
            client,
            keys: Mutex::new(None),
        }
    }

    /// Whether `candidate` (a login from a container) is the account of
    /// `host`, the host's credential at `host_path`.
    pub fn check(&self, agent: &str, candidate: &Value, host: &Value, host_path: &Path) -> Verdict {
        match agent {
            "claude" => self.claude(candidate, host, host_path),
            "codex" => self.codex(candidate, host),
            other => Verdict::Refused(format!("caw cannot ask {other}'s provider")),
        }
    }

    fn claude(&self, candidate: &Value, host: &Value, host_path: &Path) -> Verdict {
        let url = match endpoint(CLAUDE_PROFILE_ENV, CLAUDE_PROFILE_URL) {
            Ok(url) => url,
            Err(why) => return Verdict::Unknown(why),
        };
        let Some(token) = candidate
            .pointer("/claudeAiOauth/accessToken")
            .and_then(Value::as_str)
        else {
            return Verdict::Refused("it holds no access token".into());
        };
        let theirs = match self.claude_account(&url, token) {
            Ok(uuid) => uuid,
            Err(verdict) => return verdict,
        };
        let ours = claude_host_account(host_path).or_else(|| {
            let token = host.pointer("/claudeAiOauth/accessToken")?.as_str()?;
            self.claude_account(&url, token).ok()
        });
        match ours {
            Some(ours) if ours == theirs => Verdict::Vouched,
            Some(_) => Verdict::Refused("the provider says it is another account's login".into()),
            // Nothing names the host's account: a token the provider knows
            // is all that can be checked.
            None => Verdict::Vouched,
        }
    }

    /// The account a Claude access token belongs to, by the profile endpoint.
    fn claude_account(&self, url: &str, token: &str) -> Result<String, Verdict> {
        // A token from a container is hostile input: one the HTTP client
        // would refuse to put in a header would never get an answer, and
        // would wait in live/ for good. No real token has such bytes.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Verdict::Refused(
                "its access token is not a token a header can carry".into(),
            ));
        }
        let bearer = format!("Bearer {token}");
        let reply = self.client.get(
            url,
            &[
                ("Authorization", &bearer),
                ("anthropic-beta", "oauth-2025-04-20"),
            ],
        );
        let body = match reply {
            Reply::Status(200, body) => body,
            Reply::Status(s @ (401 | 403), _) => {
                return Err(Verdict::Refused(format!(
                    "the provider does not accept its access token (HTTP {s})"
                )))
            }
            Reply::Status(s, _) => {
                return Err(Verdict::Unknown(format!(
                    "the profile endpoint said HTTP {s}"
                )))
            }
            Reply::NotSent(why) | Reply::Unanswered(why) => {
                return Err(Verdict::Unknown(format!("no answer from {url}: {why}")))
            }
        };
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| Some(v.pointer("/account/uuid")?.as_str()?.to_string()))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Verdict::Unknown("the profile answer names no account".into()))
    }

    fn codex(&self, candidate: &Value, host: &Value) -> Verdict {
        let token = |v: &Value, key: &str| -> Option<String> {
            Some(v.pointer(&format!("/tokens/{key}"))?.as_str()?.to_string())
        };
        let (Some(id_token), Some(access_token)) = (
            token(candidate, "id_token"),
            token(candidate, "access_token"),
        ) else {
            return Verdict::Refused("it lacks an id_token or access_token".into());
        };
        let mut accounts = Vec::new();
        for (name, jwt) in [("id_token", &id_token), ("access_token", &access_token)] {
            match self.verify(jwt) {
                Ok(claims) => {
                    if name == "id_token"
                        && claims.get("iss").and_then(Value::as_str) != Some(CODEX_ISSUER)
                    {
                        return Verdict::Refused(format!("its {name} is not from {CODEX_ISSUER}"));
                    }
                    match codex_account(&claims) {
                        Some(a) => accounts.push(a),
                        None => {
                            return Verdict::Refused(format!("its {name} names no account"));
                        }
                    }
                }
                Err(Verdict::Refused(why)) => return Verdict::Refused(format!("its {name} {why}")),
                Err(other) => return other,
            }
        }
        if accounts.iter().any(|a| *a != accounts[0]) {
            return Verdict::Refused("its tokens name different accounts".into());
        }
        let ours = token(host, "id_token")
            .and_then(|t| claims_unverified(&t))
            .and_then(|c| codex_account(&c))
            .or_else(|| token(host, "account_id"));
        match ours {
            Some(ours) if ours != accounts[0] => {
                Verdict::Refused("the provider says it is another account's login".into())
            }
            _ => Verdict::Vouched,
        }
    }

    /// The claims of `jwt` once its RS256 signature checks out against the
    /// provider's keys.
    fn verify(&self, jwt: &str) -> Result<Value, Verdict> {
        let refused = |why: &str| Verdict::Refused(why.to_string());
        let mut parts = jwt.split('.');
        let (Some(head), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused("is not a signed token (JWT)"));
        };
        let header: Value = decode_json(head).ok_or_else(|| refused("has no JWT header"))?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(refused("is not signed with RS256"));
        }
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
        let signature = b64(sig).ok_or_else(|| refused("has no readable signature"))?;
        let message = &jwt.as_bytes()[..head.len() + 1 + body.len()];
        let key = self.key(kid)?;
        ring::signature::RsaPublicKeyComponents {
            n: &key.0,
            e: &key.1,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            &signature,
        )
        .map_err(|_| refused("has a signature the provider's keys do not verify"))?;
        decode_json(body).ok_or_else(|| refused("has unreadable claims"))
    }

    /// The key `kid` (modulus, exponent): from the cache, else fetched.
    fn key(&self, kid: &str) -> Result<(Vec<u8>, Vec<u8>), Verdict> {
        let mut cache = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let find = |set: &KeySet| {
            set.keys
                .iter()
                .find(|k| k.kid == kid)
                .map(|k| (k.n.clone(), k.e.clone()))
        };
        if let Some(set) = cache.as_ref() {
            let age = set.fetched.elapsed();
            match find(set) {
                Some(key) if age < JWKS_TTL => return Ok(key),
                None if age < JWKS_REFETCH => {
                    return Err(Verdict::Refused(
                        "is signed with a key the provider does not publish".into(),
                    ))
                }
                _ => {}
            }
        }
        let set = self.fetch_keys()?;
        let key = find(&set);
        *cache = Some(set);
        key.ok_or_else(|| {
            Verdict::Refused("is signed with a key the provider does not publish".into())
        })
    }

    fn fetch_keys(&self) -> Result<KeySet, Verdict> {
        let url = endpoint(CODEX_JWKS_ENV, CODEX_JWKS_URL).map_err(Verdict::Unknown)?;
        let body = match self.client.get(&url, &[]) {
            Reply::Status(200, body) => body,
            Reply::Status(s, _) => {
                return Err(Verdict::Unknown(format!("{url} said HTTP {s}")));
            }
            Reply::NotSent(why) | Reply::Unanswered(why) => {
                return Err(Verdict::Unknown(format!("no answer from {url}: {why}")));
            }
        };
        let jwks: Value = serde_json::from_slice(&body)
            .map_err(|_| Verdict::Unknown(format!("{url} answered no JSON")))?;
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|k| k.get("kty").and_then(Value::as_str) == Some("RSA"))
            .filter_map(|k| {
                Some(Rsa {
                    kid: k.get("kid").and_then(Value::as_str).unwrap_or("").into(),
                    n: b64(k.get("n")?.as_str()?)?,
                    e: b64(k.get("e")?.as_str()?)?,
                })
            })
            .collect();
        Ok(KeySet {
            keys,
            fetched: Instant::now(),
        })
    }
}

/// The override in `var` when set (checked like a token endpoint's), else `default`.
fn endpoint(var: &str, default: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => {
            crate::protocol::check_override(&url).map_err(|why| format!("{var}: {why}"))
        }
        _ => Ok(default.to_string()),
    }
}

/// The host's Claude account: `oauthAccount.accountUuid` in the
/// `.claude.json` that goes with the credential at `host_path`
/// (`~/.claude/.credentials.json` → `~/.claude.json`; with
/// `CLAUDE_CONFIG_DIR`, the one beside it), or `.config.json`.
pub fn claude_host_account(host_path: &Path) -> Option<String> {
    let dir = host_path.parent()?;
    let mut candidates = Vec::new();
    if dir.file_name().is_some_and(|n| n == ".claude") {
        candidates.push(dir.parent()?.join(".claude.json"));
    }
    candidates.push(dir.join(".claude.json"));
    candidates.push(dir.join(".config.json"));
    candidates.into_iter().find_map(|path| {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .ok()?
            .take(MAX_CONFIG_BYTES)
            .read_to_end(&mut bytes)
            .ok()?;
        let config: Value = serde_json::from_slice(&bytes).ok()?;
        let uuid = config.pointer("/oauthAccount/accountUuid")?.as_str()?;
        (!uuid.is_empty()).then(|| uuid.to_string())
    })
}

/// Whether a token endpoint's `answer` for the login at `host_path` names
/// an account other than the host's: the refresh token it was sent was
/// planted (a container paired the host's access token with its own
/// account's refresh token), and the answer must not be written. Claude's
/// answer names its `account.uuid`; the others' new tokens carry their
/// identity and are compared as credentials (see `Credential::identity`).
pub fn answer_is_foreign(agent: &str, answer: &[u8], host_path: &Path) -> bool {
    if agent != "claude" {
        return false;
    }
    let theirs = serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|v| Some(v.pointer("/account/uuid")?.as_str()?.to_string()));
    match (theirs, claude_host_account(host_path)) {
        (Some(theirs), Some(ours)) => theirs != ours,
        _ => false,
    }
}

/// The ChatGPT account a Codex token's claims name.
fn codex_account(claims: &Value) -> Option<String> {
    let id = claims
        .get(CODEX_AUTH_CLAIM)?
        .get("chatgpt_account_id")?
        .as_str()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// A JWT's claims, signature unchecked (for the host's own token).
fn claims_unverified(jwt: &str) -> Option<Value> {
    decode_json(jwt.split('.').nth(1)?)
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&b64(part)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_the_access_token_and_for_codex_the_id_token() {
        let a = serde_json::json!({"claudeAiOauth": {"accessToken": "x", "refreshToken": "r1"}});
        let b = serde_json::json!({"claudeAiOauth": {"accessToken": "x", "refreshToken": "r2",
            "expiresAt": 1}});
        let c = serde_json::json!({"claudeAiOauth": {"accessToken": "y"}});
        assert_eq!(subject("claude", &a), subject("claude", &b));
        assert_ne!(subject("claude", &a), subject("claude", &c));
        assert_eq!(subject("claude", &serde_json::json!({})), None);
        let d = serde_json::json!({"tokens": {"access_token": "x", "id_token": "i"}});
        let e = serde_json::json!({"tokens": {"access_token": "x", "id_token": "j"}});
        assert_ne!(subject("codex", &d), subject("codex", &e));
        assert_eq!(subject("gemini", &d), None);
    }

    #[test]
    fn the_host_claude_account_is_read_beside_the_credential() {
        let home = tempfile::tempdir().unwrap();
        let cred = home.path().join(".claude/.credentials.json");
        std::fs::create_dir(home.path().join(".claude")).unwrap();
        assert_eq!(claude_host_account(&cred), None);
        std::fs::write(
            home.path().join(".claude/.config.json"),
            r#"{"oauthAccount":{"accountUuid":"u-2"}}"#,
        )
        .unwrap();
        assert_eq!(claude_host_account(&cred).as_deref(), Some("u-2"));
        std::fs::write(
            home.path().join(".claude.json"),
            r#"{"oauthAccount":{"accountUuid":"u-1"}}"#,
        )
        .unwrap();
        assert_eq!(claude_host_account(&cred).as_deref(), Some("u-1"));
    }

    #[test]
    fn a_token_that_is_not_a_signed_jwt_is_refused_without_asking() {
        // Each is refused before any key is needed.
        let v = Voucher::new(Client::new(Duration::from_secs(1)).unwrap());
        for jwt in ["x", "a.b", "a.b.c.d"] {
            assert!(matches!(v.verify(jwt), Err(Verdict::Refused(_))), "{jwt}");
        }
        let none = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#)
        );
        assert_eq!(
            v.verify(&none),
            Err(Verdict::Refused("is not signed with RS256".into()))
        );
    }
}
