//! A fake OAuth token endpoint on loopback that behaves like the real ones
//! at their worst: a refresh token works once; a reuse is refused
//! (`invalid_grant`, or Codex's `refresh_token_reused`) and revokes the
//! whole token family; answers can be slowed down or replaced by 503s. It
//! counts every request and checks its body against what each agent's CLI
//! sends (content type, fields, client id).
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
}

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

    /// A refresh token the server knows, the first of a new family.
    pub fn grant(&self) -> String {
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        let (family, n) = (s.next, s.next);
        let token = format!("rt-fam{family}-{n}");
        s.tokens.insert(token.clone(), (family, false));
        token
    }

    /// Answer every request this much later.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
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
    let (mut len, mut ctype) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "content-type" => ctype = v.trim().to_string(),
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
        let (status, answer) = decide(&mut s, &agent, &ctype, &body);
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
    let answer = match agent {
        "codex" => {
            let exp = jiff::Timestamp::now().as_second() + 10 * 86_400;
            serde_json::json!({
                "id_token": fake_jwt(&format!(r#"{{"exp":{exp},"email":"dev@example.com","https://api.openai.com/auth":{{"chatgpt_account_id":"acct-1"}}}}"#)),
                "access_token": fake_jwt(&format!(r#"{{"exp":{exp},"jti":"{access}"}}"#)),
                "refresh_token": new_rt,
            })
        }
        "gemini" => serde_json::json!({"access_token": access, "expires_in": 3599,
            "scope": "openid", "token_type": "Bearer"}),
        "qwen" => serde_json::json!({"access_token": access, "refresh_token": new_rt,
            "token_type": "Bearer", "expires_in": 21600, "resource_url": "portal.qwen.ai"}),
        _ => serde_json::json!({"token_type": "Bearer", "access_token": access,
            "refresh_token": new_rt, "expires_in": 28800,
            "scope": "user:inference user:profile"}),
    };
    (200, answer.to_string())
}

/// An unsigned JWT with these claims.
pub fn fake_jwt(claims: &str) -> String {
    use base64::Engine as _;
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.sig", e(r#"{"alg":"RS256"}"#), e(claims))
}
