//! A fake OAuth token endpoint on loopback that behaves like the real ones
//! at their worst: a refresh token works once; a reuse is refused
//! (`invalid_grant`, or Codex's `refresh_token_reused`) and revokes the
//! whole token family; answers can be slowed down or replaced by 503s. It
//! counts every request and checks its body against what each agent's CLI
//! sends (content type, fields, client id).
//!
//! It is also the providers' identity endpoints the host sync asks before a
//! container's login reaches the host: Claude's profile (`GET
//! /claude/profile` with a bearer access token: the account it was issued
//! to, or 401) and OpenAI's signing keys (`GET /codex/jwks`: the public half
//! of a throw-away RSA key that signs every Codex token issued here).
//!
//! Plain HTTP on 127.0.0.1 (caw accepts `http` overrides only on loopback).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The agent (the path's first segment).
    pub agent: String,
    /// The refresh token sent.
    pub refresh_token: String,
    /// `ok`, `reused`, `revoked`, `unknown`, `bad format: …`, `503`.
    pub outcome: String,
    /// When it arrived.
    pub at: Instant,
    /// When its answer was written (wall clock, to compare with file mtimes).
    pub answered: Option<std::time::SystemTime>,
}

#[derive(Default)]
struct State {
    /// refresh token → (family, used)
    tokens: HashMap<String, (u64, bool)>,
    revoked: HashSet<u64>,
    next: u64,
    seen: Vec<Seen>,
    delay: Duration,
    fail_next: u32,
    /// `expires_in` of Claude-style answers, when not Claude's 8 hours.
    expires_in: Option<u64>,
    /// family → the account its tokens belong to.
    accounts: HashMap<u64, String>,
    /// Access tokens issued (or registered) → their account.
    access: HashMap<String, String>,
}

/// The account of a family granted without one.
pub const ACCOUNT: &str = "acct-1";

/// The server; stops when dropped.
pub struct FakeOAuth {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl FakeOAuth {
    /// Listen on an ephemeral loopback port.
    pub fn start() -> FakeOAuth {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeOAuth { port, state }
    }

    /// The token endpoint for `agent`.
    pub fn url(&self, agent: &str) -> String {
        format!("http://127.0.0.1:{}/{agent}/token", self.port)
    }

    /// `CAW_<AGENT>_TOKEN_URL` for every agent, pointing here.
    pub fn env(&self) -> Vec<(String, String)> {
        ["claude", "codex", "opencode", "gemini", "qwen"]
            .iter()
            .map(|a| (format!("CAW_{}_TOKEN_URL", a.to_uppercase()), self.url(a)))
            .collect()
    }

    /// A refresh token the server knows, the first of a new family of [`ACCOUNT`].
    pub fn grant(&self) -> String {
        self.grant_for(ACCOUNT)
    }

    /// A refresh token the server knows, the first of a new family of `account`.
    pub fn grant_for(&self, account: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        let (family, n) = (s.next, s.next);
        let token = format!("rt-fam{family}-{n}");
        s.tokens.insert(token.clone(), (family, false));
        s.accounts.insert(family, account.to_string());
        token
    }

    /// A Claude access token the profile endpoint knows as `account`'s (as
    /// if a real login or refresh had issued it).
    pub fn access_token_for(&self, account: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        let token = format!("at-issued-{}", s.next);
        s.access.insert(token.clone(), account.to_string());
        token
    }

    /// Claude's profile endpoint here (`CAW_CLAUDE_PROFILE_URL`).
    pub fn profile_url(&self) -> String {
        format!("http://127.0.0.1:{}/claude/profile", self.port)
    }

    /// OpenAI's signing keys here (`CAW_CODEX_JWKS_URL`).
    pub fn jwks_url(&self) -> String {
        format!("http://127.0.0.1:{}/codex/jwks", self.port)
    }

    /// The provider checks pointed here, switched on.
    pub fn verify_env(&self) -> Vec<(String, String)> {
        vec![
            ("CAW_CLAUDE_PROFILE_URL".into(), self.profile_url()),
            ("CAW_CODEX_JWKS_URL".into(), self.jwks_url()),
        ]
    }

    /// Answer every request this much later.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Answer Claude (and opencode) refreshes with this `expires_in`.
    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().unwrap().expires_in = Some(secs);
    }

    /// Answer the next `n` requests with a 503, spending nothing.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Whether `token`'s family has been revoked.
    pub fn revoked(&self, token: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.tokens
            .get(token)
            .is_some_and(|(f, _)| s.revoked.contains(f))
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut len, mut ctype, mut bearer) = (0usize, String::new(), String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "content-type" => ctype = v.trim().to_string(),
            "authorization" => bearer = v.trim().strip_prefix("Bearer ").unwrap_or("").to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let agent = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let (status, answer, delay, index) = {
        let mut s = state.lock().unwrap();
        let (status, answer) = if path.ends_with("/profile") {
            profile(&mut s, &bearer)
        } else if path.ends_with("/jwks") {
            note(&mut s, "codex-jwks", String::new(), "ok");
            (200, jwks())
        } else {
            decide(&mut s, &agent, &ctype, &body)
        };
        (status, answer, s.delay, s.seen.len().checked_sub(1))
    };
    std::thread::sleep(delay);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.flush();
    if let Some(i) = index {
        state.lock().unwrap().seen[i].answered = Some(std::time::SystemTime::now());
    }
}

/// The fields each agent's CLI sends, and its content type.
fn expected(agent: &str) -> Option<(&'static str, &'static [&'static str], &'static str)> {
    const CLAUDE_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
    Some(match agent {
        "claude" => (
            "application/json",
            &["grant_type", "refresh_token", "client_id", "scope"],
            CLAUDE_ID,
        ),
        "opencode" => (
            "application/json",
            &["grant_type", "refresh_token", "client_id"],
            CLAUDE_ID,
        ),
        "codex" => (
            "application/json",
            &["client_id", "grant_type", "refresh_token"],
            "app_EMoamEEZ73f0CkXaXp7hrann",
        ),
        "gemini" => (
            "application/x-www-form-urlencoded",
            &["refresh_token", "client_id", "client_secret", "grant_type"],
            "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
        ),
        "qwen" => (
            "application/x-www-form-urlencoded",
            &["grant_type", "refresh_token", "client_id"],
            "f0304373b74a44d2b584a3fb70ca9e56",
        ),
        _ => return None,
    })
}

fn fields(ctype: &str, body: &[u8]) -> Option<Vec<(String, String)>> {
    if ctype.starts_with("application/json") {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        Some(
            v.as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
        )
    } else {
        let text = std::str::from_utf8(body).ok()?;
        Some(
            text.split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (unform(k), unform(v)))
                .collect(),
        )
    }
}

fn unform(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Record a request and what became of it.
fn note(s: &mut State, agent: &str, refresh_token: String, outcome: &str) {
    s.seen.push(Seen {
        agent: agent.to_string(),
        refresh_token,
        outcome: outcome.to_string(),
        at: Instant::now(),
        answered: None,
    });
}

fn decide(s: &mut State, agent: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let Some((want_type, want_fields, client_id)) = expected(agent) else {
        note(s, agent, String::new(), "bad format: unknown agent");
        return (404, "{}".into());
    };
    let got = fields(ctype, body).unwrap_or_default();
    let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let token = get("refresh_token").unwrap_or("").to_string();
    let problem = if !ctype.starts_with(want_type) {
        Some(format!("content type {ctype}"))
    } else if names != want_fields {
        Some(format!("fields {names:?}"))
    } else if get("client_id") != Some(client_id) || get("grant_type") != Some("refresh_token") {
        Some("client_id or grant_type".to_string())
    } else if agent == "claude" && get("scope").is_none_or(str::is_empty) {
        Some("no scope".to_string())
    } else {
        None
    };
    if let Some(p) = problem {
        note(s, agent, token, &format!("bad format: {p}"));
        return (400, r#"{"error":"invalid_request"}"#.into());
    }
    if s.fail_next > 0 {
        s.fail_next -= 1;
        note(s, agent, token, "503");
        return (503, r#"{"error":"temporarily_unavailable"}"#.into());
    }
    let refused = |code: &str| -> (u16, String) {
        if agent == "codex" {
            (
                401,
                format!(r#"{{"error":{{"code":"{code}","message":"refused"}}}}"#),
            )
        } else {
            (
                400,
                r#"{"error":"invalid_grant","error_description":"refused"}"#.into(),
            )
        }
    };
    let (family, used) = match s.tokens.get(&token) {
        Some(&(f, u)) => (f, u),
        None => {
            note(s, agent, token, "unknown");
            return refused("refresh_token_invalidated");
        }
    };
    if s.revoked.contains(&family) {
        note(s, agent, token, "revoked");
        return refused("refresh_token_invalidated");
    }
    if used {
        // Reuse is theft: the whole family goes.
        s.revoked.insert(family);
        note(s, agent, token, "reused");
        return refused("refresh_token_reused");
    }
    s.tokens.insert(token.clone(), (family, true));
    s.next += 1;
    let n = s.next;
    let new_rt = format!("rt-fam{family}-{n}");
    s.tokens.insert(new_rt.clone(), (family, false));
    note(s, agent, token, "ok");
    let access = format!("at-fam{family}-{n}");
    let account = s
        .accounts
        .get(&family)
        .cloned()
        .unwrap_or_else(|| ACCOUNT.into());
    s.access.insert(access.clone(), account.clone());
    let answer = match agent {
        "codex" => {
            let exp = jiff::Timestamp::now().as_second() + 10 * 86_400;
            serde_json::json!({
                "id_token": signed_jwt(&codex_claims(&account, exp, "id")),
                "access_token": signed_jwt(&codex_claims(&account, exp, &access)),
                "refresh_token": new_rt,
            })
        }
        "gemini" => serde_json::json!({"access_token": access, "expires_in": 3599,
            "scope": "openid", "token_type": "Bearer"}),
        "qwen" => serde_json::json!({"access_token": access, "refresh_token": new_rt,
            "token_type": "Bearer", "expires_in": 21600, "resource_url": "portal.qwen.ai"}),
        _ => serde_json::json!({"token_type": "Bearer", "access_token": access,
            "refresh_token": new_rt, "expires_in": s.expires_in.unwrap_or(28800),
            "scope": "user:inference user:profile",
            "account": {"uuid": account, "email_address": "dev@example.com"},
            "organization": {"uuid": "org-1", "name": "Dev's Organization"}}),
    };
    (200, answer.to_string())
}

/// Claude's profile: the account of a known access token, else 401.
fn profile(s: &mut State, bearer: &str) -> (u16, String) {
    if s.fail_next > 0 {
        s.fail_next -= 1;
        note(s, "claude-profile", String::new(), "503");
        return (503, r#"{"type":"error"}"#.into());
    }
    match s.access.get(bearer).cloned() {
        Some(account) => {
            note(s, "claude-profile", String::new(), "ok");
            (
                200,
                serde_json::json!({"account": {"uuid": account, "email": "dev@example.com"},
                    "organization": {"uuid": "org-1"}})
                .to_string(),
            )
        }
        None => {
            note(s, "claude-profile", String::new(), "401");
            (
                401,
                r#"{"type":"error","error":{"type":"authentication_error"}}"#.into(),
            )
        }
    }
}

/// The claims of a Codex token of `account`.
pub fn codex_claims(account: &str, exp: i64, jti: &str) -> String {
    serde_json::json!({"iss": "https://auth.openai.com", "exp": exp, "jti": jti,
        "email": "dev@example.com",
        "https://api.openai.com/auth": {"chatgpt_account_id": account, "chatgpt_plan_type": "pro"}})
    .to_string()
}

/// A throw-away 2048-bit RSA key (PKCS#8, base64), made for these tests
/// with `openssl genpkey` and `openssl pkcs8 -topk8` (ring's recipe): it signs the Codex tokens the fake issues, and
/// its public half is what `/codex/jwks` publishes. It guards nothing.
const TEST_SIGNING_KEY: &str = "MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDjhMas2k+Hvqh92rmHs3DGa8RPuMHQQ9E112J5Ysp+Tja1EsjiWwhazAs9hjE8xB5ocxwGv1M/4KehkfckQb6wX79DbEYDh1NOCNiY+m9Bk6L8qsbxiuUyztrxl/LmV86PlcWu9k0jQG11nPfxBHKprVn7+Qs15vEz5iIfzphOwd/xuko69j1wP/UoHg9Je2sqV6dl0ycj/WXONCSp73DOnZl7h4QdOQlwnsuLzwNXudJz5xopnjrPoM5i0FrtZJ8MLdwtcMtCQqmMn+JSHx5TG/YdRrMReNoPvZF3oNo/rFxGjjjEFYY8XPNsI5TjHE4pzjkCTpf6NmZjxiRdHuRtAgMBAAECggEAbnE0lBHBS26kkbtMFnBnjRohCGXyRyu0ccNk/PGUxC0pZ0qAE0kHTDQCPNJYMlwtOpyt/SSAv+BI3yhg5Mu5ShqgWJVFg078hEPNCK2Atj95fddUjUnUKo65P094TJJRJegZNu4+0Z7jw5T30ppLIsyQgr0I0RiS+5N5+yCpVIjjjRChbCk/Y32m5hehBmrxFzDG3RG5xJJvWnKPai1PSwrpA/z3tMGdpiW0QRRwH/vxOedUGB7PmMDe2H2HsaLEC1GVDUbHFWuh74UbgWbz3nCMbdH08AS2nVdhlSuoLs0X4cTil09DER/SpcH9yFjY6YjY9gQ17AwqmgRiWEZP7QKBgQD+oPCnSa7S0hC9srlNd3E+Wy2Wh1MYmbDAXXOfbIFmarBE4IcYRTUeLjbqtuRE/ZJ+t1O4sT1/TtYXj2J23igFSZnQIWDRUqfvtn5L/76/ff+Zc5mnrLJXAjqkjo0q7R5TdINA1rj1BlkV5ay+Yr68liHZqUlv2HB4YTElGskmJwKBgQDkvnWGat9Gh3OGUkvXszAObC/eC516YEKWi9z3wmCAb/a6nEHSZ8XXSeDtKVc9bWjcQXGXX6ZuFAAX4t5UmIgHKKAps5hEEEUBkw8ULmLvbSG/GV2VA5o1PNP1pzO3m3NaYuAEwri6DflXdxbZQDOV0pY/SAwurA1ySyyh4ErxSwKBgQDTwjbBeTbKH2dKy+LteOMV77AXGs3RjKeBI3bv48YtzZZwgaX4Wj4Vrmt/gcCPW67EcWRQGh7BzGeiSl2h65mu5AnmHIwvKSV+5u9b9wHEsV2rWYc0+huK3tC0X9UpGO/6idBKUQiaxb+6xTqHTwm/PsBCC1aGjKLkijfb2s3kSwKBgQC0BA+JkWHVp5OLCgkV37baItoo7Qsp28eLotZrRVWcvoB1q7NBWtmf7ExPWFGHzirP69DxSB06VBMeuTQvbzreJ2KkbupN5l/oNUuQnlDODByav+Od+g/KBezpToSs4nGNmHKkTHoEMisgYmBg6N2v8uK7OoAb2ttaLz8YxeM0sQKBgQC1BKVGYnBG37v0vqMEbjK2rux9RLY/If7mB5meQMaK6XsamYp4h5oo/73YCTos4u/5nrXtJ4psOXaiieXxIBLnXX2l+aWpAgZfBcBFgHCafJLsuq1F3/ZiTpZ7GFBqq28SzpgMNNyFrH/IihvdxjiBGif80OM/aM1tbWRZT5J50w==";
const KID: &str = "caw-test-key";

fn key_pair() -> ring::rsa::KeyPair {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(TEST_SIGNING_KEY)
        .unwrap();
    ring::rsa::KeyPair::from_pkcs8(&der).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with these claims, signed RS256 by the fake's key.
pub fn signed_jwt(claims: &str) -> String {
    let head = b64url(format!(r#"{{"alg":"RS256","kid":"{KID}","typ":"JWT"}}"#).as_bytes());
    let input = format!("{head}.{}", b64url(claims.as_bytes()));
    let key = key_pair();
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64url(&sig))
}

/// The fake's signing keys as a JWKS.
fn jwks() -> String {
    let key = key_pair();
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
    serde_json::json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
        "n": b64url(&public.n), "e": b64url(&public.e)}]})
    .to_string()
}

/// An unsigned JWT with these claims.
pub fn fake_jwt(claims: &str) -> String {
    use base64::Engine as _;
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.sig", e(r#"{"alg":"RS256"}"#), e(claims))
}
