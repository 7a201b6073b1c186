//! caw's logins across machines, kept in etcd.
//!
//! - [`StoreSpec`]: `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]` (`etcds://` for
//!   TLS), the members and the key prefix (default `/caw`).
//! - [`seal::StoreKey`]: every value is sealed with the user's store key;
//!   etcd never sees a token.
//! - [`Store`]: one login per key (`PREFIX/v1/AGENT/ACCOUNT`), written only
//!   by a transaction that compares the key's `mod_revision`; the election
//!   of one refresher per login (a key bound to this machine's lease,
//!   `PREFIX/v1/lease/…`); and the intent a refresher records before it
//!   sends a refresh token (`PREFIX/v1/intent/…`), so that no crash or
//!   partition makes caw send the same refresh token twice.
//!
//! Deciding which login is newer is not done here: the host sync judges a
//! value from the store like any other side (`caw_sync::decide`).

pub mod etcd;
pub mod seal;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::digest::{digest, SHA256};
use serde_json::{json, Value};

pub use etcd::{Etcd, EtcdError, EtcdOptions};
pub use seal::{OpenError, StoreKey};

use etcd::{Cmp, Op};

/// The lease behind each machine's claims: a holder that stops renewing
/// loses them within this many seconds.
pub const LEASE_TTL: u64 = 10;
/// How often the lease is renewed.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(3);

/// Where the store is: `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// `http://host:port` (or `https://`) of each member.
    pub endpoints: Vec<String>,
    /// The key prefix, without a trailing slash (`/caw`).
    pub prefix: String,
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreSpec, String> {
        let usage = || {
            format!("`{s}` is not a store: use etcd://HOST:PORT[,HOST:PORT…][/PREFIX] (etcds:// for TLS)")
        };
        let (scheme, rest) = if let Some(rest) = s.strip_prefix("etcd://") {
            ("http", rest)
        } else if let Some(rest) = s.strip_prefix("etcds://") {
            ("https", rest)
        } else {
            return Err(usage());
        };
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let prefix = if prefix.is_empty() { "/caw" } else { prefix };
        if prefix.contains("//") || prefix.chars().any(|c| c.is_control() || c == ' ') {
            return Err(usage());
        }
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(|h| {
                let ok = h
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                ok.then(|| format!("{scheme}://{h}")).ok_or_else(usage)
            })
            .collect::<Result<_, _>>()?;
        Ok(StoreSpec {
            endpoints,
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = self.endpoints.iter().any(|e| e.starts_with("https://"));
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.split_once("://").map_or(e.as_str(), |(_, h)| h))
            .collect();
        let scheme = if tls { "etcds" } else { "etcd" };
        write!(f, "{scheme}://{}{}", hosts.join(","), self.prefix)
    }
}

/// Everything needed to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub spec: StoreSpec,
    /// The store key file (`caw auth store-key`).
    pub key_file: PathBuf,
    /// TLS and login (see [`EtcdOptions`]); its endpoints come from `spec`.
    pub etcd: EtcdOptions,
}

/// What went wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Not reachable now (partition, members down): try again later.
    Unreachable(String),
    /// A value under this key did not open with our key.
    Sealed(String, OpenError),
    /// etcd refused a request.
    Failed(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unreachable(why) => write!(f, "store unreachable: {why}"),
            StoreError::Sealed(key, why) => write!(f, "`{key}` in the store: {why}"),
            StoreError::Failed(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<EtcdError> for StoreError {
    fn from(e: EtcdError) -> StoreError {
        match e {
            EtcdError::Unreachable(why) => StoreError::Unreachable(why),
            EtcdError::Failed(why) => StoreError::Failed(why),
        }
    }
}

/// One login's keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginKeys {
    /// `PREFIX/v1/AGENT/ACCOUNT`: the sealed credential.
    pub login: String,
    /// `PREFIX/v1/lease/AGENT/ACCOUNT`: the refresher's id, bound to its lease.
    pub lease: String,
    /// `PREFIX/v1/intent/AGENT/ACCOUNT`: a refresh under way.
    pub intent: String,
}

/// A value read from the store, opened.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    pub plain: Vec<u8>,
    pub mod_revision: i64,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Stored({} bytes at revision {})",
            self.plain.len(),
            self.mod_revision
        )
    }
}

/// What a compare-and-set write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// In, at this revision.
    Done(i64),
    /// The key changed since: what it holds now (decide again).
    Changed(Option<Stored>),
}

/// Why a refresh may not be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotNow {
    /// Another machine holds this login's lease: it refreshes.
    NotHolder,
    /// A refresh with this very refresh token was begun and never
    /// finished (its holder died or was cut off mid-request): its outcome
    /// is unknown, so the token is not sent again.
    OutcomeUnknown,
    /// The store cannot be reached: a machine that cannot hold the lease
    /// never refreshes.
    Unreachable(String),
}

impl fmt::Display for NotNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotNow::NotHolder => f.write_str("another machine refreshes this login"),
            NotNow::OutcomeUnknown => f.write_str(
                "refresh outcome unknown: a refresh with this refresh token was begun and never finished; waiting for a login from any side",
            ),
            NotNow::Unreachable(why) => write!(f, "store unreachable ({why}): not refreshing"),
        }
    }
}

/// The state of this machine's lease.
#[derive(Debug, Clone, Copy)]
struct Lease {
    id: i64,
    /// Renewed at least until then (minus a margin): claims bound to it hold.
    good_until: Instant,
}

/// The store, opened: etcd, the key, and this machine's lease.
pub struct Store {
    etcd: Etcd,
    key: StoreKey,
    prefix: String,
    me: String,
    lease: Mutex<Option<Lease>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("etcd", &self.etcd)
            .field("prefix", &self.prefix)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn short_hash(s: &str) -> String {
    digest(&SHA256, s.as_bytes()).as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Open the store: load the key, make the client (nothing is sent yet).
    /// `me` names this machine in leases and intents.
    pub fn open(opts: &StoreOptions, me: &str) -> Result<Store, String> {
        let key = StoreKey::load(&opts.key_file)?;
        let etcd = Etcd::new(&EtcdOptions {
            endpoints: opts.spec.endpoints.clone(),
            ..opts.etcd.clone()
        })?;
        Ok(Store {
            etcd,
            key,
            prefix: opts.spec.prefix.clone(),
            me: me.to_string(),
            lease: Mutex::new(None),
        })
    }

    /// This machine's name in the store.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Where logins live: everything a watch needs.
    pub fn logins_prefix(&self) -> String {
        format!("{}/v1/", self.prefix)
    }

    /// The keys of `agent`'s login of `account` (an account id caw read
    /// from the login; `None`: the agent's only login). The account is
    /// hashed: the store holds no account name either.
    pub fn keys(&self, agent: &str, account: Option<&str>) -> LoginKeys {
        let who = account.map_or_else(|| "default".to_string(), short_hash);
        let p = &self.prefix;
        LoginKeys {
            login: format!("{p}/v1/{agent}/{who}"),
            lease: format!("{p}/v1/lease/{agent}/{who}"),
            intent: format!("{p}/v1/intent/{agent}/{who}"),
        }
    }

    /// Open a value read under `key`.
    pub fn open_value(&self, key: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.key
            .open(key, sealed)
            .map_err(|e| StoreError::Sealed(key.to_string(), e))
    }

    /// The login at `key`, opened.
    pub fn read(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let (kv, _) = self.etcd.get(key)?;
        kv.map(|kv| {
            Ok(Stored {
                plain: self.open_value(key, &kv.value)?,
                mod_revision: kv.mod_revision,
            })
        })
        .transpose()
    }

    /// Write `plain` at `key` only if the key is still at `expect` (its
    /// `mod_revision`; 0: absent); else what is there now.
    pub fn write_if(&self, key: &str, plain: &[u8], expect: i64) -> Result<Written, StoreError> {
        let txn = self.etcd.txn(
            &[Cmp::ModRevision(key.to_string(), expect)],
            &[Op::Put {
                key: key.to_string(),
                value: self.key.seal(key, plain),
                lease: 0,
            }],
            &[Op::Get(key.to_string())],
        )?;
        if txn.succeeded {
            return Ok(Written::Done(txn.revision));
        }
        let now = txn
            .kvs
            .into_iter()
            .next()
            .map(|kv| {
                Ok::<_, StoreError>(Stored {
                    plain: self.open_value(key, &kv.value)?,
                    mod_revision: kv.mod_revision,
                })
            })
            .transpose()?;
        Ok(Written::Changed(now))
    }

    /// Renew this machine's lease, or take a new one. Call every
    /// [`KEEPALIVE_EVERY`]; an `Err` means the lease may be gone.
    pub fn keep_lease(&self) -> Result<(), StoreError> {
        let current = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        let asked = Instant::now();
        let id = match current {
            Some(l) => match self.etcd.keepalive(l.id) {
                Ok(ttl) if ttl > 0 => l.id,
                Ok(_) => self.etcd.grant(LEASE_TTL)?,
                Err(e) => {
                    self.drop_lease_if_late();
                    return Err(e.into());
                }
            },
            None => self.etcd.grant(LEASE_TTL)?,
        };
        // Counted from before the request: etcd renewed it no earlier.
        // One second of margin for clocks running at different rates.
        let good_until = asked + Duration::from_secs(LEASE_TTL - 1);
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(Lease { id, good_until });
        Ok(())
    }

    fn drop_lease_if_late(&self) {
        let mut lease = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if lease.is_some_and(|l| l.good_until <= Instant::now()) {
            *lease = None;
        }
    }

    /// This machine's lease, while it is surely still alive.
    fn live_lease(&self) -> Option<i64> {
        let lease = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        lease
            .filter(|l| l.good_until > Instant::now())
            .map(|l| l.id)
    }

    /// Stand for `keys`' refresher: take the lease key when it is free.
    /// Whether this machine holds it now.
    pub fn campaign(&self, keys: &LoginKeys) -> Result<bool, StoreError> {
        let Some(lease) = self.live_lease() else {
            return Ok(false);
        };
        let txn = self.etcd.txn(
            &[Cmp::CreateRevision(keys.lease.clone(), 0)],
            &[Op::Put {
                key: keys.lease.clone(),
                value: self.me.as_bytes().to_vec(),
                lease,
            }],
            &[Op::Get(keys.lease.clone())],
        )?;
        Ok(txn.succeeded
            || txn
                .kvs
                .first()
                .is_some_and(|kv| kv.value == self.me.as_bytes() && kv.lease == lease))
    }

    /// Before a refresh token is sent: check that this machine holds the
    /// lease and that no refresh with `token_digest` was begun (by anyone)
    /// and left without an answer, then record the intent. Only then may
    /// the request go out.
    pub fn begin_refresh(&self, keys: &LoginKeys, token_digest: &str) -> Result<(), NotNow> {
        let unreachable = |e: EtcdError| NotNow::Unreachable(e.to_string());
        let Some(_lease) = self.live_lease() else {
            return Err(NotNow::Unreachable(
                "this machine's lease is not renewed".into(),
            ));
        };
        let (intent, _) = self.etcd.get(&keys.intent).map_err(unreachable)?;
        if let Some(kv) = &intent {
            let recorded: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            if recorded["refresh_token_sha256"].as_str() == Some(token_digest) {
                return Err(NotNow::OutcomeUnknown);
            }
        }
        let intent_rev = intent.as_ref().map_or(0, |kv| kv.mod_revision);
        let record = json!({
            "refresh_token_sha256": token_digest,
            "holder": self.me,
            "at": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        let txn = self
            .etcd
            .txn(
                &[
                    Cmp::Value(keys.lease.clone(), self.me.as_bytes().to_vec()),
                    Cmp::ModRevision(keys.intent.clone(), intent_rev),
                ],
                &[Op::Put {
                    key: keys.intent.clone(),
                    value: record.to_string().into_bytes(),
                    lease: 0,
                }],
                &[],
            )
            .map_err(unreachable)?;
        if txn.succeeded {
            Ok(())
        } else {
            Err(NotNow::NotHolder)
        }
    }

    /// The answer of a refresh begun with [`Store::begin_refresh`]: stored
    /// first (with the intent cleared in the same step), before the host
    /// file is written. Unconditional: the provider's answer is the newest
    /// login there is, and its refresh token the only live one.
    pub fn finish_refresh(&self, keys: &LoginKeys, plain: &[u8]) -> Result<i64, StoreError> {
        let txn = self.etcd.txn(
            &[],
            &[
                Op::Put {
                    key: keys.login.clone(),
                    value: self.key.seal(&keys.login, plain),
                    lease: 0,
                },
                Op::Delete(keys.intent.clone()),
            ],
            &[],
        )?;
        Ok(txn.revision)
    }

    /// A refresh that got no usable answer (refused, or the server said to
    /// try later) spent nothing: clear its intent so it may be tried again.
    /// (Not after a lost answer: then the token may have been spent.)
    pub fn abandon_refresh(&self, keys: &LoginKeys) -> Result<(), StoreError> {
        self.etcd
            .txn(&[], &[Op::Delete(keys.intent.clone())], &[])?;
        Ok(())
    }

    /// Whether a refresh with `token_digest` is recorded as begun and not
    /// finished.
    pub fn outcome_unknown(
        &self,
        keys: &LoginKeys,
        token_digest: &str,
    ) -> Result<bool, StoreError> {
        let (intent, _) = self.etcd.get(&keys.intent)?;
        Ok(intent.is_some_and(|kv| {
            serde_json::from_slice::<Value>(&kv.value)
                .ok()
                .and_then(|v| Some(v["refresh_token_sha256"].as_str()? == token_digest))
                .unwrap_or(false)
        }))
    }

    /// Let go of the lease (and with it every claim): on a clean stop, so
    /// another machine takes over at once instead of after the TTL.
    pub fn resign(&self) {
        let lease = self.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(l) = lease {
            let _ = self.etcd.revoke(l.id);
        }
    }
}

/// The digest a refresh token is recorded by in an intent (never the token).
pub fn token_digest(refresh_token: &str) -> String {
    digest(&SHA256, refresh_token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_name_members_and_a_prefix() {
        let s: StoreSpec = "etcd://127.0.0.1:2379".parse().unwrap();
        assert_eq!(s.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(s.prefix, "/caw");
        let s: StoreSpec = "etcds://a:1,b:2/team/x/".parse().unwrap();
        assert_eq!(s.endpoints, ["https://a:1", "https://b:2"]);
        assert_eq!(s.prefix, "/team/x");
        assert_eq!(s.to_string(), "etcds://a:1,b:2/team/x");
        for bad in [
            "http://a:1",
            "etcd://",
            "etcd://a",
            "etcd://a:x",
            "etcd://a:1//x",
            "etcd://:1",
        ] {
            let err = bad.parse::<StoreSpec>().unwrap_err();
            assert!(err.contains("etcd://HOST:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn keys_hash_the_account_and_share_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        StoreKey::create(&key).unwrap();
        let store = Store::open(
            &StoreOptions {
                spec: "etcd://127.0.0.1:1/p".parse().unwrap(),
                key_file: key,
                etcd: EtcdOptions::default(),
            },
            "m1",
        )
        .unwrap();
        let k = store.keys("claude", Some("acct-1"));
        assert!(k.login.starts_with("/p/v1/claude/"));
        assert!(!k.login.contains("acct-1"));
        assert_eq!(k.lease, k.login.replace("/v1/", "/v1/lease/"));
        assert_eq!(k.intent, k.login.replace("/v1/", "/v1/intent/"));
        assert_eq!(store.keys("codex", None).login, "/p/v1/codex/default");
        assert_ne!(store.keys("claude", Some("acct-2")).login, k.login);
    }
}
