//! The host sync's refresher, as a process, against the loopback fake token
//! endpoint (`support/oauth.rs`): once per expiry, ahead of the agents,
//! never twice with one refresh token, and nothing written on a failure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::oauth::FakeOAuth;
use crate::util::*;

/// `caw auth sync` for `auth` with the refresher on, pointed at `server`.
fn start_sync(env: &TestEnv, auth: &Path, server: &FakeOAuth, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args(["auth", "sync", "--idle-exit", "0", "--auth-dir"])
        .arg(auth)
        .args(extra)
        .env("HOME", &env.home)
        .env_remove("CAW_AUTH_DIR")
        .env_remove("CAW_NO_REFRESH")
        .envs(server.env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A Claude login whose refresh token the server knows, expiring in `secs`.
fn claude_login(env: &TestEnv, server: &FakeOAuth, secs: i64) -> String {
    let rt = server.grant();
    env.write(
        ".claude/.credentials.json",
        &format!(
            r#"{{"claudeAiOauth":{{"accessToken":"at-first","refreshToken":"{rt}","expiresAt":{},"scopes":["user:inference","user:profile"],"subscriptionType":"max"}}}}"#,
            ms_from_now(secs)
        ),
        0o600,
    );
    rt
}

fn setup_claude(env: &TestEnv, auth: &Path) {
    let out = env.auth_at(auth, &["setup", "--agents", "claude"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Caw refreshes 5 minutes before Claude would (5 minutes before expiry).
const DUE_AT: i64 = 10 * 60;

fn refreshed(path: &Path) -> bool {
    read_text(path).contains("\"accessToken\":\"at-fam")
}

#[test]
fn a_due_login_is_refreshed_once_and_reaches_live() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    let rt = claude_login(&env, &server, DUE_AT - 30);
    setup_claude(&env, &env.auth);
    let sync = start_sync(&env, &env.auth, &server, &[]);
    let host = env.home.join(".claude/.credentials.json");
    let live = env.auth.join("live/claude/credentials.json");
    wait_for("the refresh reaches live/", Duration::from_secs(10), || {
        refreshed(&host) && read_text(&live) == read_text(&host)
    });
    std::thread::sleep(Duration::from_millis(500));
    let log = stop_sync(sync);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{log}");
    assert_eq!(
        (seen[0].outcome.as_str(), seen[0].refresh_token.as_str()),
        ("ok", rt.as_str())
    );
    // In Claude's own format, other keys kept, 0600 like before.
    let cred: serde_json::Value = serde_json::from_str(&read_text(&host)).unwrap();
    let oauth = &cred["claudeAiOauth"];
    assert_eq!(oauth["subscriptionType"], "max");
    assert_eq!(
        oauth["scopes"],
        serde_json::json!(["user:inference", "user:profile"])
    );
    let expires = oauth["expiresAt"].as_i64().unwrap();
    assert!((expires - ms_from_now(28_800)).abs() < 60_000, "{expires}");
    assert_eq!(mode(&host), 0o600);
    // Recorded for status, and no token in the log.
    let state = read_text(&env.auth.join("sync.json"));
    assert!(state.contains("\"ok\":true"), "{state}");
    for token in [rt.as_str(), "at-fam", "rt-fam"] {
        assert!(!log.contains(token), "token in the log:\n{log}");
    }
    assert!(log.contains("refreshed the login"), "{log}");
}

#[test]
fn a_login_not_yet_due_is_left_alone_until_its_time() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    // Due in 4 s (to the second): the timer, not a poll, must bring it.
    let due = Instant::now() + Duration::from_secs(4);
    claude_login(&env, &server, DUE_AT + 4);
    setup_claude(&env, &env.auth);
    let sync = start_sync(&env, &env.auth, &server, &["--check-every", "3600"]);
    let host = env.home.join(".claude/.credentials.json");
    wait_for("the refresh at its time", Duration::from_secs(10), || {
        refreshed(&host)
    });
    stop_sync(sync);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // Expiries are whole seconds: up to one early.
    assert!(
        seen[0].at + Duration::from_millis(1100) >= due,
        "refreshed {:?} before it was due",
        due - seen[0].at
    );
}

#[test]
fn two_syncs_of_one_login_send_one_request() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    server.set_delay(Duration::from_millis(300));
    claude_login(&env, &server, DUE_AT - 30);
    let other = env.dir.path().join("auth2");
    setup_claude(&env, &env.auth);
    setup_claude(&env, &other);
    let a = start_sync(&env, &env.auth, &server, &[]);
    let b = start_sync(&env, &other, &server, &[]);
    let host = env.home.join(".claude/.credentials.json");
    wait_for(
        "both live dirs have the new login",
        Duration::from_secs(10),
        || {
            refreshed(&host)
                && read_text(&env.auth.join("live/claude/credentials.json")) == read_text(&host)
                && read_text(&other.join("live/claude/credentials.json")) == read_text(&host)
        },
    );
    std::thread::sleep(Duration::from_millis(800));
    let logs = stop_sync(a) + &stop_sync(b);
    let _ = caw_auth::host_sync::stop(&other);
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{logs}");
    assert_eq!(seen[0].outcome, "ok");
}

#[test]
fn a_refused_refresh_writes_nothing_and_status_says_to_log_in() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    // A refresh token the server does not know: a dead login.
    env.write(
        ".claude/.credentials.json",
        &claude_credential("dead", ms_from_now(DUE_AT - 30)),
        0o600,
    );
    setup_claude(&env, &env.auth);
    let host = env.home.join(".claude/.credentials.json");
    let before = read_text(&host);
    let sync = start_sync(&env, &env.auth, &server, &["--refresh-backoff", "1"]);
    wait_for("the refusal", Duration::from_secs(10), || {
        !server.seen().is_empty()
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        read_text(&host),
        before,
        "a refused refresh wrote the host file"
    );
    assert_eq!(server.seen().len(), 1, "a refused token was sent again");
    let status = env.auth(&["status"]);
    let text = stdout(&status);
    assert!(text.contains("refresh refused"), "{text}");
    assert!(text.contains("log in again on the host"), "{text}");
    let log = stop_sync(sync);
    assert!(log.contains("refresh refused (invalid_grant)"), "{log}");
}

/// A container paired the host's access token with a refresh token of its
/// own account (the access token alone vouches for the host's account):
/// the answer names the other account, and nothing of it is written.
#[test]
fn a_refresh_answered_for_another_account_writes_nothing() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let mut config: serde_json::Value =
        serde_json::from_str(&read_text(&env.home.join(".claude.json"))).unwrap();
    config["oauthAccount"]["accountUuid"] = crate::oauth::ACCOUNT.into();
    env.write(".claude.json", &config.to_string(), 0o600);
    let server = FakeOAuth::start();
    let planted = server.grant_for("acct-other");
    env.write(
        ".claude/.credentials.json",
        &claude_oauth("at-host", &planted, Some(ms_from_now(DUE_AT - 30))),
        0o600,
    );
    setup_claude(&env, &env.auth);
    let host = env.home.join(".claude/.credentials.json");
    let before = read_text(&host);
    let sync = start_sync(&env, &env.auth, &server, &["--refresh-backoff", "1"]);
    wait_for("the refresh", Duration::from_secs(10), || {
        !server.seen().is_empty()
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        read_text(&host),
        before,
        "another account's login was written"
    );
    assert_eq!(server.seen().len(), 1, "sent again");
    let status = stdout(&env.auth(&["status"]));
    assert!(status.contains("another account"), "{status}");
    let log = stop_sync(sync);
    assert!(log.contains("answered for another account"), "{log}");
    assert!(!log.contains("at-fam") && !log.contains(&planted), "{log}");
}

#[test]
fn a_failing_server_is_tried_again_after_a_backoff() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    server.fail_next(2);
    let rt = claude_login(&env, &server, DUE_AT - 30);
    setup_claude(&env, &env.auth);
    let host = env.home.join(".claude/.credentials.json");
    let sync = start_sync(&env, &env.auth, &server, &["--refresh-backoff", "1"]);
    wait_for("the third try succeeds", Duration::from_secs(15), || {
        refreshed(&host)
    });
    let log = stop_sync(sync);
    let seen = server.seen();
    let outcomes: Vec<&str> = seen.iter().map(|s| s.outcome.as_str()).collect();
    assert_eq!(outcomes, ["503", "503", "ok"], "{log}");
    // Backed off: 1 s, then 2 s.
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(900));
    assert!(seen[2].at - seen[1].at >= Duration::from_millis(1900));
    assert!(seen.iter().all(|s| s.refresh_token == rt));
}

#[test]
fn a_dead_endpoint_changes_nothing_and_the_sync_goes_on() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    claude_login(&env, &server, DUE_AT - 30);
    setup_claude(&env, &env.auth);
    let host = env.home.join(".claude/.credentials.json");
    let before = read_text(&host);
    // Nothing listens on the discard port of loopback.
    let mut sync = Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args([
            "auth",
            "sync",
            "--idle-exit",
            "0",
            "--refresh-backoff",
            "1",
            "--auth-dir",
        ])
        .arg(&env.auth)
        .env("HOME", &env.home)
        .env_remove("CAW_NO_REFRESH")
        .env("CAW_CLAUDE_TOKEN_URL", "http://127.0.0.1:9/token")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // A container's refresh still reaches the host meanwhile.
    let live = env.auth.join("live/claude/credentials.json");
    let newer = claude_credential("container", ms_from_now(8 * 3600));
    std::fs::write(live.with_extension("tmp"), &newer).unwrap();
    std::fs::rename(live.with_extension("tmp"), &live).unwrap();
    wait_for(
        "the container's login reaches the host",
        Duration::from_secs(5),
        || read_text(&host) == newer,
    );
    assert_ne!(before, newer);
    assert!(sync.try_wait().unwrap().is_none(), "the sync died");
    let log = stop_sync(sync);
    assert!(log.contains("not sent"), "{log}");
}

#[test]
fn a_slow_endpoint_holds_up_no_sync() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    server.set_delay(Duration::from_secs(3));
    claude_login(&env, &server, DUE_AT - 30);
    env.codex(jiff::Timestamp::now().as_second() + 86_400);
    let out = env.auth(&["setup", "--agents", "claude,codex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sync = start_sync(&env, &env.auth, &server, &[]);
    wait_for("the request is under way", Duration::from_secs(5), || {
        !server.seen().is_empty()
    });
    // While Claude's answer is pending, Codex's container refresh syncs at once.
    let started = Instant::now();
    let live = env.auth.join("live/codex/auth.json");
    let codex_host = env.home.join(".codex/auth.json");
    let mut text = read_text(&live);
    text = text.replace("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    std::fs::write(live.with_extension("tmp"), &text).unwrap();
    std::fs::rename(live.with_extension("tmp"), &live).unwrap();
    wait_for("codex syncs", Duration::from_secs(2), || {
        read_text(&codex_host) == text
    });
    assert!(started.elapsed() < Duration::from_secs(2));
    let host = env.home.join(".claude/.credentials.json");
    wait_for("the slow answer lands", Duration::from_secs(10), || {
        refreshed(&host)
    });
    stop_sync(sync);
    let claude: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.agent == "claude")
        .collect();
    assert_eq!(claude.len(), 1, "{claude:?}");
}

#[test]
fn no_refresh_sends_nothing() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    claude_login(&env, &server, DUE_AT - 30);
    setup_claude(&env, &env.auth);
    for off in [&["--no-refresh"][..], &[]] {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("caw"));
        cmd.args(["auth", "sync", "--idle-exit", "0", "--auth-dir"])
            .arg(&env.auth)
            .args(off)
            .env("HOME", &env.home)
            .envs(server.env())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if off.is_empty() {
            cmd.env("CAW_NO_REFRESH", "1");
        } else {
            cmd.env_remove("CAW_NO_REFRESH");
        }
        let sync = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        let log = stop_sync(sync);
        assert!(log.contains("not refreshing logins"), "{log}");
    }
    assert!(server.seen().is_empty());
}

/// Every file below `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && std::fs::read(&path)
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                hits.push(path);
            }
        }
    }
    hits
}

#[test]
fn held_refresh_tokens_never_reach_the_auth_dir_and_the_host_still_refreshes() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let server = FakeOAuth::start();
    let rt = claude_login(&env, &server, DUE_AT - 30);
    let out = env.auth(&["setup", "--agents", "claude", "--hold-refresh-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        files_containing(&env.auth, &rt).is_empty(),
        "the refresh token is in the auth dir"
    );
    let live = env.auth.join("live/claude/credentials.json");
    assert!(read_text(&live).contains(caw_auth::credential::HELD_REFRESH_TOKEN));
    assert!(
        read_text(&live).contains("at-first"),
        "the access token reaches containers"
    );

    let sync = start_sync(&env, &env.auth, &server, &[]);
    let host = env.home.join(".claude/.credentials.json");
    wait_for(
        "the host refreshes and live/ follows, held",
        Duration::from_secs(10),
        || refreshed(&host) && read_text(&live).contains("at-fam"),
    );
    let new_rt: String = {
        let v: serde_json::Value = serde_json::from_str(&read_text(&host)).unwrap();
        v["claudeAiOauth"]["refreshToken"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        files_containing(&env.auth, &new_rt).is_empty(),
        "the new refresh token reached live/"
    );
    assert!(read_text(&live).contains(caw_auth::credential::HELD_REFRESH_TOKEN));

    // A container writes live/: a planted login, a changed copy. Neither
    // reaches the host; live/ is put back to the held host login.
    let held = read_text(&live);
    let planted = claude_credential("planted", ms_from_now(300 * 86_400));
    for text in [planted.as_str(), &held.replace("at-fam", "at-changed")] {
        std::fs::write(live.with_extension("tmp"), text).unwrap();
        std::fs::rename(live.with_extension("tmp"), &live).unwrap();
        wait_for("live/ is put back", Duration::from_secs(5), || {
            read_text(&live) == held
        });
        assert!(
            read_text(&host).contains(&new_rt),
            "a container's write reached the host"
        );
    }
    let log = stop_sync(sync);
    assert!(!log.contains(&new_rt) && !log.contains(&rt), "{log}");
    assert_eq!(server.seen().len(), 1);
    let state = read_text(&env.auth.join("sync.json"));
    assert!(state.contains("\"held\":true"), "{state}");
}

#[test]
fn hold_refresh_token_needs_live_mode_and_docker_flags_checks_it() {
    let env = TestEnv::full();
    let out = env.auth(&["setup", "--mode", "bind", "--hold-refresh-token"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--hold-refresh-token") && err.contains("live mode"),
        "{err}"
    );
    assert!(!env.auth.exists());
    env.setup();
    let out = env.auth(&["docker-flags", "--hold-refresh-token"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("caw auth setup --hold-refresh-token"), "{err}");
    assert!(stdout(&out).is_empty());
    let out = env.auth(&["setup", "--hold-refresh-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.auth(&["docker-flags", "--hold-refresh-token"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for secret in [
        "sk-ant-ort01-SECRET-REFRESH",
        "codex-SECRET-REFRESH",
        "opencode-SECRET-REFRESH",
    ] {
        assert!(
            files_containing(&env.auth, secret).is_empty(),
            "{secret} in the auth dir"
        );
    }
}
