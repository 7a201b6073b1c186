//! An etcd v3 client over etcd's own JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`, `/v3/lease/*`, `/v3/watch`, `/v3/auth/authenticate`),
//! which every etcd since 3.4 serves on its client port: the same requests
//! as its gRPC API, with bytes in base64 and 64-bit numbers as strings.
//!
//! One member at a time is asked; a member that does not answer is left for
//! the next. Nothing here retries a request that may have been applied:
//! writes are transactions that compare first, so asking again after a
//! lost answer is decided again by the caller.

use std::fmt;
use std::io::{BufRead as _, Read as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// The largest answer read from etcd (a range of one key, a lease).
const MAX_ANSWER: u64 = 4 * 1024 * 1024;
/// The largest single message read from a watch stream.
const MAX_WATCH_LINE: usize = 4 * 1024 * 1024;

/// How to reach and log in to the store.
#[derive(Clone, Default)]
pub struct EtcdOptions {
    /// `http(s)://host:port` of each member.
    pub endpoints: Vec<String>,
    /// How long one request may take.
    pub timeout: Duration,
    /// A CA certificate (PEM) to check the members with, instead of the system's.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for etcd's `--client-cert-auth`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// An etcd user and the file holding its password (never the password
    /// itself: it would be in the process list).
    pub user: Option<(String, PathBuf)>,
}

impl fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// What went wrong talking to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// No member answered (all down, cut off, refused): nothing was applied.
    Unreachable(String),
    /// A member answered with an error (its message; never a value).
    Failed(String),
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Unreachable(why) => write!(f, "no etcd member answered ({why})"),
            EtcdError::Failed(why) => write!(f, "etcd refused: {why}"),
        }
    }
}

impl std::error::Error for EtcdError {}

/// One key and what etcd knows of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

impl fmt::Debug for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are sealed credentials or ids: their size is enough.
        f.debug_struct("Kv")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("value", &format_args!("{} bytes", self.value.len()))
            .field("mod_revision", &self.mod_revision)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub enum Cmp {
    /// The key was last written at this revision (0: it does not exist).
    ModRevision(String, i64),
    /// The key was created at this revision (0: it does not exist).
    CreateRevision(String, i64),
    /// The key holds exactly this value.
    Value(String, Vec<u8>),
}

/// A step of a transaction.
#[derive(Clone)]
pub enum Op {
    /// Write `value` at `key`, bound to `lease` (0: none).
    Put {
        key: String,
        value: Vec<u8>,
        lease: i64,
    },
    /// Remove `key`.
    Delete(String),
    /// Read `key` (its answer is in [`Txn::kvs`]).
    Get(String),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A value is a sealed credential or a record: its size is enough.
        match self {
            Op::Put { key, value, lease } => {
                write!(f, "Put({key}, {} bytes, lease {lease})", value.len())
            }
            Op::Delete(key) => write!(f, "Delete({key})"),
            Op::Get(key) => write!(f, "Get({key})"),
        }
    }
}

/// What a transaction did.
#[derive(Debug, Clone)]
pub struct Txn {
    /// Whether every comparison held (and the success steps ran).
    pub succeeded: bool,
    /// The keys read by the steps that ran.
    pub kvs: Vec<Kv>,
    /// The store's revision after it.
    pub revision: i64,
}

/// A change seen by [`Etcd::watch`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The key was written.
    Put(Kv),
    /// The key was removed (at this revision).
    Delete(Vec<u8>, i64),
}

/// A client for one etcd cluster.
pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    stream_agent: ureq::Agent,
    /// The member that answered last: asked first.
    current: AtomicUsize,
    user: Option<(String, PathBuf)>,
    token: Mutex<Option<String>>,
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default()
}

/// A 64-bit number the gateway may send as a string or a number (0 when absent).
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kv_of(v: &Value) -> Kv {
    Kv {
        key: unb64(&v["key"]),
        value: unb64(&v["value"]),
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
        lease: int(&v["lease"]),
    }
}

fn read_pem(path: &PathBuf) -> Result<Vec<PemItem<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    ureq::tls::parse_pem(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not PEM: {e}", path.display()))
}

/// The certificates in a PEM file.
fn certificates(path: &PathBuf) -> Result<Vec<Certificate<'static>>, String> {
    Ok(read_pem(path)?
        .into_iter()
        .filter_map(|i| match i {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect())
}

impl Etcd {
    /// A client for `opts.endpoints`; reads the CA, client certificate and
    /// password files now, so a wrong path is an error at start.
    pub fn new(opts: &EtcdOptions) -> Result<Etcd, String> {
        if opts.endpoints.is_empty() {
            return Err("no etcd endpoint given".into());
        }
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &opts.ca {
            let certs = certificates(ca)?;
            if certs.is_empty() {
                return Err(format!("`{}` holds no certificate", ca.display()));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if let Some((cert, key)) = &opts.client_cert {
            let chain = certificates(cert)?;
            let key: PrivateKey<'static> = read_pem(key)?
                .into_iter()
                .find_map(|i| match i {
                    PemItem::PrivateKey(k) => Some(k),
                    _ => None,
                })
                .ok_or_else(|| format!("`{}` holds no private key", key.display()))?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        if let Some((_, file)) = &opts.user {
            read_password(file)?;
        }
        let tls = tls.build();
        let timeout = if opts.timeout.is_zero() {
            Duration::from_secs(5)
        } else {
            opts.timeout
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.clone())
            .timeout_connect(Some(timeout))
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("caw/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        // A watch answers for as long as it runs: only connecting is bounded.
        let stream_agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_connect(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("caw/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Etcd {
            endpoints: opts.endpoints.clone(),
            agent,
            stream_agent,
            current: AtomicUsize::new(0),
            user: opts.user.clone(),
            token: Mutex::new(None),
        })
    }

    /// The members, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// POST `body` to `path` on one member after another, from the last
    /// that answered; the answer's JSON.
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last_error = String::new();
        for i in 0..n {
            let at = (first + i) % n;
            match self.call_at(at, path, body, true) {
                Ok(v) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(EtcdError::Unreachable(why)) => last_error = why,
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::Unreachable(last_error))
    }

    fn call_at(
        &self,
        at: usize,
        path: &str,
        body: &Value,
        may_login: bool,
    ) -> Result<Value, EtcdError> {
        let token = self.auth_token(at)?;
        let (status, value) = self.post(at, path, body, token.as_deref())?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value["error"]
            .as_str()
            .or(value["message"].as_str())
            .unwrap_or("")
            .to_string();
        if may_login && self.user.is_some() && message.contains("token") {
            // An expired auth token: log in again, once.
            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return self.call_at(at, path, body, false);
        }
        // A member without a leader cannot answer; another may.
        if status == 503 || message.contains("no leader") || message.contains("timed out") {
            return Err(EtcdError::Unreachable(format!(
                "{}: {message}",
                self.endpoints[at]
            )));
        }
        Err(EtcdError::Failed(format!("HTTP {status}: {message}")))
    }

    /// One POST to member `at`: the status and the answer's JSON (`Null`
    /// when it is not JSON), read up to [`MAX_ANSWER`] bytes.
    fn post(
        &self,
        at: usize,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<(u16, Value), EtcdError> {
        let unreachable =
            |e: &dyn fmt::Display| EtcdError::Unreachable(format!("{}: {e}", self.endpoints[at]));
        let url = format!("{}{path}", self.endpoints[at]);
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let mut response = request
            .send(body.to_string().as_bytes())
            .map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| unreachable(&e))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// The auth token, logging in first when there is a user and none yet.
    fn auth_token(&self, at: usize) -> Result<Option<String>, EtcdError> {
        let Some((user, file)) = &self.user else {
            return Ok(None);
        };
        let mut token = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = token.as_ref() {
            return Ok(Some(t.clone()));
        }
        let password = read_password(file).map_err(EtcdError::Failed)?;
        let login = json!({"name": user, "password": password});
        let (status, value) = self.post(at, "/v3/auth/authenticate", &login, None)?;
        match value["token"].as_str() {
            Some(t) if status == 200 => {
                *token = Some(t.to_string());
                Ok(Some(t.to_string()))
            }
            _ => Err(EtcdError::Failed(format!(
                "etcd user `{user}` could not log in (HTTP {status})"
            ))),
        }
    }

    /// The key, and the store's revision when it was read.
    pub fn get(&self, key: &str) -> Result<(Option<Kv>, i64), EtcdError> {
        let answer = self.call("/v3/kv/range", &json!({"key": b64(key.as_bytes())}))?;
        let kv = answer["kvs"].as_array().and_then(|a| a.first()).map(kv_of);
        Ok((kv, int(&answer["header"]["revision"])))
    }

    /// Every key under `prefix`.
    pub fn get_prefix(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let answer = self.call(
            "/v3/kv/range",
            &json!({"key": b64(prefix.as_bytes()), "range_end": b64(&range_end(prefix))}),
        )?;
        let kvs = answer["kvs"]
            .as_array()
            .map(|a| a.iter().map(kv_of).collect())
            .unwrap_or_default();
        Ok((kvs, int(&answer["header"]["revision"])))
    }

    /// If every `compare` holds, run `success`, else `failure`; atomically.
    pub fn txn(&self, compare: &[Cmp], success: &[Op], failure: &[Op]) -> Result<Txn, EtcdError> {
        let cmp: Vec<Value> = compare
            .iter()
            .map(|c| match c {
                Cmp::ModRevision(k, r) => json!({"key": b64(k.as_bytes()), "result": "EQUAL",
                    "target": "MOD", "mod_revision": r.to_string()}),
                Cmp::CreateRevision(k, r) => json!({"key": b64(k.as_bytes()), "result": "EQUAL",
                    "target": "CREATE", "create_revision": r.to_string()}),
                Cmp::Value(k, v) => json!({"key": b64(k.as_bytes()), "result": "EQUAL",
                    "target": "VALUE", "value": b64(v)}),
            })
            .collect();
        let ops = |ops: &[Op]| -> Vec<Value> {
            ops.iter()
                .map(|o| match o {
                    Op::Put { key, value, lease } => json!({"request_put": {
                        "key": b64(key.as_bytes()), "value": b64(value), "lease": lease.to_string()}}),
                    Op::Delete(key) => {
                        json!({"request_delete_range": {"key": b64(key.as_bytes())}})
                    }
                    Op::Get(key) => json!({"request_range": {"key": b64(key.as_bytes())}}),
                })
                .collect()
        };
        let answer = self.call(
            "/v3/kv/txn",
            &json!({"compare": cmp, "success": ops(success), "failure": ops(failure)}),
        )?;
        let kvs = answer["responses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["response_range"]["kvs"].as_array())
            .flatten()
            .map(kv_of)
            .collect();
        Ok(Txn {
            succeeded: answer["succeeded"].as_bool().unwrap_or(false),
            kvs,
            revision: int(&answer["header"]["revision"]),
        })
    }

    /// A new lease of `ttl` seconds: its id.
    pub fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let answer = self.call("/v3/lease/grant", &json!({"TTL": ttl}))?;
        match int(&answer["ID"]) {
            0 => Err(EtcdError::Failed("no lease granted".into())),
            id => Ok(id),
        }
    }

    /// Renew `lease`: the seconds it has left (0: it had expired, and is gone).
    pub fn keepalive(&self, lease: i64) -> Result<i64, EtcdError> {
        let answer = self.call("/v3/lease/keepalive", &json!({"ID": lease.to_string()}))?;
        Ok(int(&answer["result"]["TTL"]))
    }

    /// End `lease` now (its keys go with it).
    pub fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({"ID": lease.to_string()}))
            .map(|_| ())
    }

    /// Watch every key under `prefix` from `start_revision` on, handing
    /// each change to `on_event` until it says stop or the stream ends
    /// (then `Err`: reconnect from the last revision seen + 1).
    pub fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
        mut on_event: impl FnMut(Event) -> std::ops::ControlFlow<()>,
    ) -> Result<(), EtcdError> {
        let n = self.endpoints.len();
        let at = self.current.load(Ordering::Relaxed) % n;
        let url = format!("{}/v3/watch", self.endpoints[at]);
        let body = json!({"create_request": {
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&range_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        let mut request = self
            .stream_agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(token) = self.auth_token(at)? {
            request = request.header("Authorization", &token);
        }
        let unreachable = |e: &dyn fmt::Display| {
            // The next watch tries the next member.
            self.current.store(at + 1, Ordering::Relaxed);
            EtcdError::Unreachable(format!("{}: {e}", self.endpoints[at]))
        };
        let response = request
            .send(body.to_string().as_bytes())
            .map_err(|e| unreachable(&e))?;
        if response.status().as_u16() != 200 {
            return Err(unreachable(&format!("HTTP {}", response.status())));
        }
        let mut reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = std::io::Read::by_ref(&mut reader)
                .take(MAX_WATCH_LINE as u64)
                .read_until(b'\n', &mut line)
                .map_err(|e| unreachable(&e))?;
            if read == 0 {
                return Err(unreachable(&"the watch ended"));
            }
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let result = &message["result"];
            if result["canceled"].as_bool() == Some(true) {
                return Err(EtcdError::Failed(format!(
                    "watch canceled: {}",
                    result["cancel_reason"].as_str().unwrap_or("")
                )));
            }
            for event in result["events"].as_array().into_iter().flatten() {
                let kv = kv_of(&event["kv"]);
                let event = if event["type"].as_str() == Some("DELETE") {
                    Event::Delete(kv.key, kv.mod_revision)
                } else {
                    Event::Put(kv)
                };
                if on_event(event).is_break() {
                    return Ok(());
                }
            }
        }
    }
}

/// The end of the range of keys starting with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn read_password(file: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read the etcd password file `{}`: {e}",
            file.display()
        )
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_its_last_key() {
        assert_eq!(range_end("/caw/v1/"), b"/caw/v10".to_vec());
        assert_eq!(range_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn numbers_come_as_strings_or_numbers() {
        assert_eq!(int(&json!("42")), 42);
        assert_eq!(int(&json!(7)), 7);
        assert_eq!(int(&Value::Null), 0);
    }

    #[test]
    fn debug_shows_no_value_and_no_password() {
        let kv = Kv {
            key: b"/caw/v1/claude/x".to_vec(),
            value: b"SECRET".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            lease: 0,
        };
        assert!(!format!("{kv:?}").contains("SECRET"));
        let put = Op::Put {
            key: "/caw/v1/claude/x".into(),
            value: b"SECRET".to_vec(),
            lease: 0,
        };
        assert!(!format!("{put:?}").contains("SECRET"));
        let opts = EtcdOptions {
            user: Some(("caw".into(), "/run/secrets/pw".into())),
            ..Default::default()
        };
        assert!(format!("{opts:?}").contains("caw"));
    }
}
