//! What a refresh protocol is: the request an agent's CLI sends, when it
//! sends it, and how it writes the answer.

use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

/// How long before the agent's own refresh point caw refreshes: long enough
/// that no agent reaches its own trigger while caw's request is under way
/// (caw's requests time out after a minute), short enough to be a small part
/// of every token lifetime caw knows (Gemini's, the shortest, is 1 hour).
pub const MARGIN: SignedDuration = SignedDuration::from_mins(5);

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`, the fields in order.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// Where a body field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Always this value.
    Const(&'static str),
    /// The login's refresh token.
    RefreshToken,
    /// The scopes the credential records (a JSON array of strings at
    /// `pointer`), space-separated; `default` when it records none.
    Scopes {
        /// A JSON pointer into the credential.
        pointer: &'static str,
        /// Sent when the credential has no scopes.
        default: &'static str,
    },
}

/// Where an agent's own refresh lock is, relative to its credential's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAt {
    /// An entry in the credential's directory.
    InDir(&'static str),
    /// The credential's directory's own path plus a suffix (`~/.claude` → `~/.claude.lock`).
    DirSuffix(&'static str),
}

/// The lock an agent takes on the host around its own refresh, so that caw
/// and a host agent never refresh at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLock {
    /// The agent takes none.
    None,
    /// `proper-lockfile` directory locks (Node): `mkdir`, the holder touches
    /// the mtime every `update`, a lock older than `stale` is broken,
    /// `rmdir` releases. Taken in order.
    ProperLockfile {
        /// The lock directories, in the order the agent takes them.
        dirs: &'static [LockAt],
        /// A lock whose mtime is older than this is dead.
        stale: Duration,
    },
    /// A file created exclusively (`O_CREAT|O_EXCL`), stale by mtime,
    /// released by unlinking it.
    ExclusiveFile {
        /// The lock file.
        file: LockAt,
        /// A lock whose mtime is older than this is dead.
        stale: Duration,
    },
}

/// One agent's refresh, pinned as data from the CLI version named in
/// `pinned_from`.
pub struct Protocol {
    /// The agent (a name in `caw_auth::agents::REGISTRY`).
    pub agent: &'static str,
    /// Which CLI version and source this was taken from.
    pub pinned_from: &'static str,
    /// The token endpoint (`POST`).
    pub token_url: &'static str,
    /// The body's encoding.
    pub encoding: Encoding,
    /// The body's fields, in the CLI's order.
    pub fields: &'static [(&'static str, Field)],
    /// When the agent itself would refresh this credential, if it ever would.
    pub agent_refreshes_at: fn(&Value) -> Option<Timestamp>,
    /// That rule in words, with its evidence (for the docs and `--help`).
    pub agent_rule: &'static str,
    /// The refresh token in a credential, if it has one.
    pub refresh_token: fn(&Value) -> Option<&str>,
    /// Put an answer into the credential, the way the CLI does.
    pub write_answer: fn(&mut Value, &Answer<'_>, Timestamp) -> Result<(), AnswerError>,
    /// Whether the CLI writes the file as one line (else indented by 2).
    pub compact: bool,
    /// The agent's own lock around a refresh.
    pub host_lock: HostLock,
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol({})", self.agent)
    }
}

/// A refresh request, ready to send. It holds a refresh token: its `Debug`
/// shows only the content type and the body's length.
pub struct Request {
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Request({}, {} bytes)",
            self.content_type,
            self.body.len()
        )
    }
}

/// Why an answer could not be used. Never holds a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// Not a JSON object.
    NotJson,
    /// A required field is missing, empty or of the wrong type.
    Field(&'static str),
    /// The credential itself is not a JSON object.
    Credential,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NotJson => f.write_str("the answer is not a JSON object"),
            AnswerError::Field(k) => write!(f, "the answer has no usable `{k}`"),
            AnswerError::Credential => f.write_str("the credential is not a JSON object"),
        }
    }
}

/// A token endpoint's answer to a refresh (a JSON object).
#[derive(Clone, Copy)]
pub struct Answer<'a>(&'a Map<String, Value>);

impl<'a> Answer<'a> {
    /// A non-empty string field.
    pub fn string(&self, key: &'static str) -> Option<&'a str> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A non-empty string field that must be there.
    pub fn required(&self, key: &'static str) -> Result<&'a str, AnswerError> {
        self.string(key).ok_or(AnswerError::Field(key))
    }

    /// `expires_in` (seconds), which must be a positive number.
    pub fn expires_in(&self) -> Result<SignedDuration, AnswerError> {
        let v = self.0.get("expires_in");
        let secs = v
            .and_then(Value::as_i64)
            .or_else(|| v.and_then(Value::as_f64).map(|f| f as i64))
            .filter(|&s| s > 0 && s < 10 * 365 * 86_400)
            .ok_or(AnswerError::Field("expires_in"))?;
        Ok(SignedDuration::from_secs(secs))
    }

    /// `now + expires_in`, in milliseconds since the epoch (Node's `Date.now() + expires_in * 1000`).
    pub fn expiry_ms(&self, now: Timestamp) -> Result<i64, AnswerError> {
        let at = now
            .checked_add(self.expires_in()?)
            .map_err(|_| AnswerError::Field("expires_in"))?;
        Ok(at.as_millisecond())
    }
}

impl Protocol {
    /// The environment variable that overrides the token endpoint (tests).
    pub fn url_env(&self) -> String {
        format!("CAW_{}_TOKEN_URL", self.agent.to_ascii_uppercase())
    }

    /// The endpoint to use: the override when set (plain `http` only on a
    /// loopback address), else the agent's own.
    pub fn endpoint(&self) -> Result<String, String> {
        let var = self.url_env();
        match std::env::var(&var) {
            Ok(url) if !url.is_empty() => {
                check_override(&url).map_err(|why| format!("{var}: {why}"))
            }
            _ => Ok(self.token_url.to_string()),
        }
    }

    /// When caw refreshes this credential: [`MARGIN`] before the agent
    /// would. `None` when it holds no refresh token or the agent would never
    /// refresh it.
    pub fn due(&self, cred: &Value) -> Option<Timestamp> {
        (self.refresh_token)(cred)?;
        (self.agent_refreshes_at)(cred)?.checked_sub(MARGIN).ok()
    }

    /// The request that refreshes `cred`, when it holds a refresh token.
    pub fn request(&self, cred: &Value) -> Option<Request> {
        let token = (self.refresh_token)(cred)?;
        let value = |f: &Field| -> String {
            match f {
                Field::Const(v) => (*v).to_string(),
                Field::RefreshToken => token.to_string(),
                Field::Scopes { pointer, default } => {
                    let scopes: Vec<&str> = cred
                        .pointer(pointer)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if scopes.is_empty() {
                        (*default).to_string()
                    } else {
                        scopes.join(" ")
                    }
                }
            }
        };
        let (content_type, body) = match self.encoding {
            Encoding::Json => {
                let map: Map<String, Value> = self
                    .fields
                    .iter()
                    .map(|(k, f)| ((*k).to_string(), Value::String(value(f))))
                    .collect();
                ("application/json", serde_json::to_vec(&map).ok()?)
            }
            Encoding::Form => {
                let pairs: Vec<String> = self
                    .fields
                    .iter()
                    .map(|(k, f)| format!("{}={}", form_encode(k), form_encode(&value(f))))
                    .collect();
                (
                    "application/x-www-form-urlencoded",
                    pairs.join("&").into_bytes(),
                )
            }
        };
        Some(Request { content_type, body })
    }

    /// The agent's credential file after `answer`, written as the CLI writes
    /// it; keys the answer does not concern are kept.
    pub fn apply(
        &self,
        cred: &[u8],
        answer: &[u8],
        now: Timestamp,
    ) -> Result<Vec<u8>, AnswerError> {
        let mut value: Value = serde_json::from_slice(cred).map_err(|_| AnswerError::Credential)?;
        if !value.is_object() {
            return Err(AnswerError::Credential);
        }
        let answer: Value = serde_json::from_slice(answer).map_err(|_| AnswerError::NotJson)?;
        let map = answer.as_object().ok_or(AnswerError::NotJson)?;
        (self.write_answer)(&mut value, &Answer(map), now)?;
        let mut out = if self.compact {
            serde_json::to_vec(&value)
        } else {
            serde_json::to_vec_pretty(&value)
        }
        .map_err(|_| AnswerError::Credential)?;
        if !self.compact {
            out.push(b'\n');
        }
        Ok(out)
    }
}

/// What a token endpoint's reply means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer: its body.
    Answer(Vec<u8>),
    /// The server refused the refresh token (400, 401, 403): the login is
    /// dead, or the token was already used. Holds the `error` code, cleaned.
    Refused(String),
    /// Worth trying again later (429, 5xx, anything else): the HTTP status.
    Retry(u16),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answer(_) => f.write_str("answered"),
            Outcome::Refused(code) => write!(f, "refused ({code})"),
            Outcome::Retry(status) => write!(f, "HTTP {status}"),
        }
    }
}

/// Classify a reply by its status and body.
pub fn classify(status: u16, body: Vec<u8>) -> Outcome {
    match status {
        200..=299 => Outcome::Answer(body),
        400 | 401 | 403 => Outcome::Refused(error_code(&body)),
        _ => Outcome::Retry(status),
    }
}

/// The OAuth `error` code of a refusal (`invalid_grant`), or OpenAI's
/// `error.code` (`refresh_token_reused`), or a top-level `code`; only word
/// characters, so nothing else of the body can reach a log.
fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v
        .get("error")
        .and_then(|e| e.as_str().or_else(|| e.get("code").and_then(Value::as_str)))
        .or_else(|| v.get("code").and_then(Value::as_str))
        .unwrap_or("no error code");
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
        .take(64)
        .collect();
    if clean.is_empty() {
        "no error code".into()
    } else {
        clean
    }
}

/// An endpoint override: `https://…`, or `http://…` on a loopback address.
pub(crate) fn check_override(url: &str) -> Result<String, String> {
    let uri: ureq::http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(url.to_string()),
        Some("http") if is_loopback(host) => Ok(url.to_string()),
        Some("http") => Err(format!(
            "plain http is accepted only on a loopback address, not `{host}`"
        )),
        _ => Err(format!("`{url}` is not an https URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `application/x-www-form-urlencoded` for one key or value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `key` under `object` (or the top level for `""`), as a non-empty string.
pub(crate) fn string_at<'a>(cred: &'a Value, object: &str, key: &str) -> Option<&'a str> {
    let obj = if object.is_empty() {
        cred
    } else {
        cred.get(object)?
    };
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Milliseconds since the epoch at `key` under `object`.
pub(crate) fn millis_at(cred: &Value, object: &str, key: &str) -> Option<Timestamp> {
    let obj = if object.is_empty() {
        cred
    } else {
        cred.get(object)?
    };
    let v = obj.get(key)?;
    let ms = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))?;
    (ms > 0).then(|| Timestamp::from_millisecond(ms).ok())?
}

/// The object under `key`, created when missing or not an object.
pub(crate) fn object_mut<'a>(cred: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = cred.as_object_mut().expect("checked to be an object");
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_take_https_anywhere_and_http_only_on_loopback() {
        assert!(check_override("https://example.test/token").is_ok());
        assert!(check_override("http://127.0.0.1:8080/token").is_ok());
        assert!(check_override("http://[::1]:8080/token").is_ok());
        assert!(check_override("http://localhost/token").is_ok());
        let err = check_override("http://10.0.0.1/token").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(check_override("ftp://127.0.0.1/").is_err());
        assert!(check_override("not a url").is_err());
    }

    #[test]
    fn refusals_keep_only_the_error_code() {
        assert_eq!(
            classify(
                400,
                br#"{"error":"invalid_grant","error_description":"tok-123"}"#.to_vec()
            ),
            Outcome::Refused("invalid_grant".into())
        );
        assert_eq!(
            classify(
                401,
                br#"{"error":{"code":"refresh_token_reused","message":"x"}}"#.to_vec()
            ),
            Outcome::Refused("refresh_token_reused".into())
        );
        assert_eq!(
            classify(401, b"<html>secret\"token</html>".to_vec()),
            Outcome::Refused("no error code".into())
        );
        assert_eq!(
            classify(400, br#"{"error":"a\"b<c>{}"}"#.to_vec()),
            Outcome::Refused("abc".into())
        );
        assert_eq!(classify(503, vec![]), Outcome::Retry(503));
        assert_eq!(classify(429, vec![]), Outcome::Retry(429));
        assert_eq!(
            classify(200, b"{}".to_vec()),
            Outcome::Answer(b"{}".to_vec())
        );
    }

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn request_debug_shows_no_token() {
        let r = Request {
            content_type: "application/json",
            body: b"{\"refresh_token\":\"sk-secret\"}".to_vec(),
        };
        let text = format!("{r:?}");
        assert!(!text.contains("secret"), "{text}");
    }
}
