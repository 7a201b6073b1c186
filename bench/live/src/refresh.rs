//! `live-bench refresh`: what one login's expiry costs with N busy
//! containers, with caw's refresher on and off.
//!
//! Each container runs, as its agent user, a small agent that refreshes the
//! way Claude Code does: when its credential is less than 5 minutes from
//! expiry it POSTs Claude's refresh request with the refresh token it has,
//! and writes the answer (or, refused, the logged-out file Claude writes) by
//! temp file + rename. The token endpoint is the tests' loopback fake (a
//! refresh token works once; a reuse is refused and revokes the family),
//! reached over the host network, and it answers with logins whose next
//! refresh point (caw's with the refresher on, the agents' with it off)
//! is 3 seconds away, so expiries follow each other. Each round starts a
//! new login (a new token family) and watches 8 seconds. Measured per N:
//!
//! - refresh requests per expiry (how many requests sent each refresh
//!   token), refresher on and off;
//! - with it on, the time from the endpoint's answer to the new access
//!   token in every container's home (read through `/proc/<pid>/root`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::oauth::FakeOAuth;
use crate::{
    die, ms_from_now, run, wait_all, write_by_rename, Container, Env, Report, Stats, CREDENTIAL,
};

/// The in-container agent: Claude Code's refresh rule and request, in sh.
const AGENT: &str = r#"
H=/home/playground/.claude/.credentials.json
while :; do
  t=$(cat "$H" 2>/dev/null)
  exp=$(echo "$t" | sed -n 's/.*"expiresAt":\([0-9]*\).*/\1/p')
  rt=$(echo "$t" | sed -n 's/.*"refreshToken":"\([^"]*\)".*/\1/p')
  now=$(($(date +%s) * 1000))
  if [ -n "$exp" ] && [ -n "$rt" ] && [ $((exp - now)) -lt 300000 ]; then
    body="{\"grant_type\":\"refresh_token\",\"refresh_token\":\"$rt\",\"client_id\":\"9d1c250a-e61b-44d9-88ed-5944d1962f5e\",\"scope\":\"user:inference\"}"
    if ans=$(wget -q -O - --header 'Content-Type: application/json' --post-data "$body" "$URL"); then
      at=$(echo "$ans" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
      nrt=$(echo "$ans" | sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p')
      ei=$(echo "$ans" | sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p')
      new="{\"claudeAiOauth\":{\"accessToken\":\"$at\",\"refreshToken\":\"$nrt\",\"expiresAt\":$((now + ei * 1000)),\"scopes\":[\"user:inference\"]}}"
    else
      new='{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0,"scopes":["user:inference"]}}'
    fi
    printf '%s' "$new" > "$H.tmp.agent" && mv "$H.tmp.agent" "$H"
  fi
  sleep 0.2
done
"#;

/// Containers per size, expiries per size and mode.
pub struct Plan {
    pub sizes: Vec<usize>,
    pub rounds: usize,
    pub host_caw: PathBuf,
}

/// A new login (a new token family) expiring `secs` from now.
fn fresh_login(server: &FakeOAuth, secs: u64) -> Vec<u8> {
    let rt = server.grant();
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"at-start-{rt}","refreshToken":"{rt}","expiresAt":{},"scopes":["user:inference"]}}}}"#,
        ms_from_now(secs as i64)
    )
    .into_bytes()
}

/// `caw auth sync` in the foreground, refresher on or off.
fn start_sync(env: &Env, host_caw: &Path, server: &FakeOAuth, refresh: bool) -> Child {
    let mut cmd = Command::new(host_caw);
    cmd.args(["auth", "sync", "--idle-exit", "0", "--auth-dir"])
        .arg(&env.auth)
        .env("HOME", &env.home)
        .envs(server.env())
        .stdout(Stdio::null())
        .stderr(sync_log());
    if refresh {
        cmd.env_remove("CAW_NO_REFRESH");
    } else {
        cmd.arg("--no-refresh");
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| die(&format!("{}: {e}", host_caw.display())));
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sync_pid() != Some(child.id() as i32) {
        if Instant::now() > deadline {
            die("the host sync did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The syncs' log, kept for a look after the run.
fn sync_log() -> Stdio {
    let path = std::env::temp_dir().join("caw-refresh-bench-sync.log");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_or_else(|_| Stdio::null(), Stdio::from)
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// How long after a refresh the next refresh point comes, in a round.
const CYCLE: u64 = 3;
/// How long one round watches.
const ROUND: Duration = Duration::from_secs(8);

/// Logins' lifetimes that put the next refresh point [`CYCLE`] seconds
/// after each refresh: caw's (10 minutes before expiry) with the refresher
/// on, the agents' (5 minutes before) with it off.
fn lifetime(refresh: bool) -> u64 {
    if refresh {
        600 + CYCLE
    } else {
        300 + CYCLE
    }
}

/// What one round saw.
struct Round {
    /// Requests per expiry: how many requests sent each refresh token.
    per_expiry: Vec<usize>,
    refused: usize,
    /// With the refresher on: from the first answer to the new login in
    /// every container's home.
    spread: Option<Duration>,
}

/// A fresh login whose refresh point is [`CYCLE`] s away, then [`ROUND`]
/// of whatever refreshes follow.
fn round(env: &Env, server: &FakeOAuth, homes: &[PathBuf], refresh: bool) -> Round {
    let before = server.seen().len();
    server.set_expires_in(lifetime(refresh));
    write_by_rename(
        &env.home.join(CREDENTIAL),
        &fresh_login(server, lifetime(refresh)),
    );
    let start = Instant::now();
    let mut spread = None;
    if refresh {
        // The first refresh: its answer, then the new login everywhere.
        while Instant::now() < start + ROUND && spread.is_none() {
            let answered = server.seen()[before..]
                .iter()
                .find(|s| s.outcome == "ok")
                .and_then(|s| s.answered);
            let Some(answered) = answered else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            std::thread::sleep(Duration::from_millis(50));
            let host = std::fs::read(env.home.join(CREDENTIAL)).unwrap_or_default();
            if wait_all(homes, &host, Duration::from_secs(CYCLE - 1)).is_some() {
                spread = homes
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
                    .max()
                    .and_then(|last| last.duration_since(answered).ok());
            }
            break;
        }
    }
    std::thread::sleep((start + ROUND).saturating_duration_since(Instant::now()));
    let seen = server.seen();
    let new = &seen[before..];
    let mut by_token: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in new {
        *by_token.entry(s.refresh_token.as_str()).or_default() += 1;
    }
    let outcomes: Vec<&str> = new.iter().map(|s| s.outcome.as_str()).collect();
    eprintln!(
        "round (refresher {}): {outcomes:?}",
        if refresh { "on" } else { "off" }
    );
    Round {
        per_expiry: by_token.into_values().collect(),
        refused: new.iter().filter(|s| s.outcome != "ok").count(),
        spread,
    }
}

/// Everything for one N.
fn size(env: &Env, plan: &Plan, n: usize, report: &mut Report) -> serde_json::Value {
    let server = FakeOAuth::start();
    // Off first: its logins expire sooner than the refresher's, and a new
    // login is taken only when it is the newest.
    server.set_expires_in(lifetime(false));
    // A new auth dir for this login: a live copy that an earlier size left
    // fresher would win over it.
    run(env
        .caw()
        .args(["auth", "teardown", "--auth-dir"])
        .arg(&env.auth));
    write_by_rename(
        &env.home.join(CREDENTIAL),
        &fresh_login(&server, lifetime(false)),
    );
    run(env
        .caw()
        .args(["auth", "setup", "--agents", "claude", "--auth-dir"])
        .arg(&env.auth));
    let mut sync = start_sync(env, &plan.host_caw, &server, false);
    let url = server.url("claude");
    let containers: Vec<Container> = (0..n)
        .map(|i| Container::start_agent(env, i, AGENT, &url))
        .collect();
    let homes: Vec<PathBuf> = containers.iter().map(|c| c.file(CREDENTIAL)).collect();
    let mut out = json!({"containers": n});
    for refresh in [false, true] {
        if refresh {
            // The off rounds' family is revoked: start the refresher on a
            // new login, and let its first refresh happen before counting.
            stop(sync);
            server.set_expires_in(lifetime(true));
            write_by_rename(
                &env.home.join(CREDENTIAL),
                &fresh_login(&server, lifetime(true)),
            );
            sync = start_sync(env, &plan.host_caw, &server, true);
            std::thread::sleep(ROUND);
        }
        let (mut requests, mut refused, mut spreads) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            let r = round(env, &server, &homes, refresh);
            requests.extend(r.per_expiry);
            refused.push(r.refused);
            spreads.extend(r.spread);
        }
        let key = if refresh { "on" } else { "off" };
        let mut sorted = requests.clone();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        report.line(format!(
            "| {n} | {key} | {} | {median} | {}–{} | {} |",
            sorted.len(),
            sorted[0],
            sorted[sorted.len() - 1],
            refused.iter().sum::<usize>()
        ));
        out[key] = json!({"requests_per_expiry": requests, "refused_per_round": refused});
        if refresh && !spreads.is_empty() {
            let stats = Stats::new(spreads);
            out["answer_to_all_containers"] = stats.json();
            report.note(format!(
                "N={n}: answer → new token in all {n} containers: median {:.2} ms, max {:.2} ms",
                stats.median(),
                stats.max()
            ));
        }
    }
    stop(sync);
    drop(containers);
    out
}

/// The whole refresh benchmark.
pub fn bench(env: &Env, plan: &Plan, report: &mut Report) {
    report.line(
        "| containers | refresher | expiries | requests per expiry (median) | range | refused |"
            .into(),
    );
    report.line("| --- | --- | --- | --- | --- | --- |".into());
    let mut all = Vec::new();
    for &n in &plan.sizes {
        all.push(size(env, plan, n, report));
    }
    report.results.insert("refresh", json!(all));
}
