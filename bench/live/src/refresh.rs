//! `live-bench refresh`: what one login's expiry costs with N busy
//! containers, with caw's refresher on and off.
//!
//! Each container runs, as its agent user, a small agent that refreshes the
//! way Claude Code does: when its credential is less than 5 minutes from
//! expiry it POSTs Claude's refresh request with the refresh token it has,
//! and writes the answer (or, refused, the logged-out file Claude writes) by
//! temp file + rename. The token endpoint is the tests' loopback fake (a
//! refresh token works once; a reuse is refused and revokes the family),
//! reached over the host network. An "expiry" is a new host login whose
//! agents' refresh point is 3 seconds away. Measured per N (1, 10, 50):
//!
//! - refresh requests per expiry, refresher on and off;
//! - with it on, the time from the endpoint's answer to the new access
//!   token in every container's home (read through `/proc/<pid>/root`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::oauth::FakeOAuth;
use crate::{
    die, ms_from_now, wait_all, write_by_rename, Container, Env, Report, Stats, CREDENTIAL,
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

/// A host login whose agents' refresh point is `secs` from now, with a
/// refresh token the endpoint knows.
fn due_login(server: &FakeOAuth, secs: i64) -> Vec<u8> {
    let rt = server.grant();
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"at-start-{rt}","refreshToken":"{rt}","expiresAt":{},"scopes":["user:inference"]}}}}"#,
        ms_from_now(300 + secs)
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
        .stderr(Stdio::null());
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

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// One expiry: returns (requests, refused, answer → all containers).
fn expiry(
    env: &Env,
    server: &FakeOAuth,
    homes: &[PathBuf],
    refresh: bool,
) -> (usize, usize, Option<Duration>) {
    let before = server.seen().len();
    write_by_rename(&env.home.join(CREDENTIAL), &due_login(server, 3));
    // The agents' own refresh point is 3 s away; give them time to race.
    std::thread::sleep(Duration::from_secs(6));
    let seen = server.seen();
    let new = &seen[before..];
    let refused = new.iter().filter(|s| s.outcome != "ok").count();
    let mut spread = None;
    if refresh {
        // Every container ends up with the host's bytes; the last of them
        // to get there is the spread, from the answer's time at the server.
        let host = std::fs::read(env.home.join(CREDENTIAL)).unwrap_or_default();
        let answered = new
            .iter()
            .find(|s| s.outcome == "ok")
            .and_then(|s| s.answered);
        if let (Some(answered), Some(_)) =
            (answered, wait_all(homes, &host, Duration::from_secs(10)))
        {
            spread = homes
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
                .max()
                .and_then(|last| last.duration_since(answered).ok());
        }
    }
    (new.len(), refused, spread)
}

/// Everything for one N.
fn size(env: &Env, plan: &Plan, n: usize, report: &mut Report) -> serde_json::Value {
    let server = FakeOAuth::start();
    write_by_rename(&env.home.join(CREDENTIAL), &due_login(&server, 3600));
    let mut sync = start_sync(env, &plan.host_caw, &server, true);
    let url = server.url("claude");
    let containers: Vec<Container> = (0..n)
        .map(|i| Container::start_agent(env, i, AGENT, &url))
        .collect();
    let homes: Vec<PathBuf> = containers.iter().map(|c| c.file(CREDENTIAL)).collect();
    let mut out = json!({"containers": n});
    for refresh in [true, false] {
        if !refresh {
            stop(sync);
            sync = start_sync(env, &plan.host_caw, &server, false);
        }
        let (mut requests, mut refused, mut spreads) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            let (r, x, s) = expiry(env, &server, &homes, refresh);
            requests.push(r);
            refused.push(x);
            spreads.extend(s);
        }
        let key = if refresh { "on" } else { "off" };
        let mut sorted = requests.clone();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        report.line(format!(
            "| {n} | {key} | {median} | {}–{} | {} |",
            sorted[0],
            sorted[sorted.len() - 1],
            refused.iter().sum::<usize>()
        ));
        out[key] = json!({"requests_per_expiry": requests, "refused": refused});
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
    report
        .line("| containers | refresher | requests per expiry (median) | range | refused |".into());
    report.line("| --- | --- | --- | --- | --- |".into());
    let mut all = Vec::new();
    for &n in &plan.sizes {
        all.push(size(env, plan, n, report));
    }
    report.results.insert("refresh", json!(all));
}
