//! The host sync asks the provider before a container's login reaches the
//! host (`caw_refresh::vouch`), against the loopback fake
//! (`support/oauth.rs`: Claude's profile endpoint, OpenAI's signing keys).
//! Each test writes into `live/` what a container (or an attacker in one)
//! would, and watches the host file and `live/`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::oauth::{codex_claims, fake_jwt, signed_jwt, FakeOAuth, ACCOUNT};
use crate::util::*;

/// `caw auth sync` for `env.auth`, the provider checks pointed at `server`
/// (refreshes off: the logins here are not due).
fn start_sync(env: &TestEnv, server: &FakeOAuth, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args(["auth", "sync", "--idle-exit", "0", "--auth-dir"])
        .arg(&env.auth)
        .args(extra)
        .env("HOME", &env.home)
        .env_remove("CAW_AUTH_DIR")
        .env_remove("CAW_NO_VERIFY")
        .envs(server.verify_env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Write `text` into a live file the way a container's guard does (temp file + rename).
fn plant(live: &Path, text: &str) {
    let tmp = live.with_extension("tmp-container");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, live).unwrap();
}

/// A host home with a Claude login of [`ACCOUNT`] (1 h left), set up in live mode.
fn claude_host(env: &TestEnv, server: &FakeOAuth) -> (std::path::PathBuf, std::path::PathBuf) {
    env.claude(ms_from_now(3600));
    let mut config: serde_json::Value =
        serde_json::from_str(&read_text(&env.home.join(".claude.json"))).unwrap();
    config["oauthAccount"]["accountUuid"] = ACCOUNT.into();
    env.write(".claude.json", &config.to_string(), 0o600);
    let host_token = server.access_token_for(ACCOUNT);
    env.write(
        ".claude/.credentials.json",
        &claude_oauth(&host_token, "rt-host", Some(ms_from_now(3600))),
        0o600,
    );
    let out = env.auth_at(&env.auth, &["setup", "--agents", "claude"]);
    assert!(out.status.success(), "{}", stderr(&out));
    (
        env.home.join(".claude/.credentials.json"),
        env.auth.join("live/claude/credentials.json"),
    )
}

fn profile_requests(server: &FakeOAuth) -> Vec<String> {
    server
        .seen()
        .into_iter()
        .filter(|s| s.agent == "claude-profile")
        .map(|s| s.outcome)
        .collect()
}

#[test]
fn a_claude_login_reaches_the_host_only_when_the_provider_vouches_for_it() {
    let env = TestEnv::empty();
    let server = FakeOAuth::start();
    let (host, live) = claude_host(&env, &server);
    let sync = start_sync(&env, &server, &[]);
    wait_for(
        "live/ holds the host's login",
        Duration::from_secs(10),
        || read_text(&live) == read_text(&host),
    );
    let original = read_text(&host);

    // Planted: another account's real token, a token the provider never
    // issued, and expiries no Claude token has. None reaches the host, and
    // live/ gets the host's login back.
    let foreign = server.access_token_for("acct-other");
    let attacks = [
        (
            "another account",
            claude_oauth(&foreign, "rt-x", Some(ms_from_now(7 * 3600))),
        ),
        (
            "made up",
            claude_oauth("at-made-up", "rt-y", Some(ms_from_now(7 * 3600))),
        ),
        (
            "+300 days",
            claude_oauth("at-far", "rt-z", Some(ms_from_now(300 * 86_400))),
        ),
        (
            "+5 years",
            claude_oauth("at-5y", "rt-z", Some(ms_from_now(5 * 365 * 86_400))),
        ),
        (
            "max expiry",
            claude_oauth("at-max", "rt-z", Some(9_999_999_999_999)),
        ),
        ("no expiry", claude_oauth("at-none", "rt-z", None)),
        // A CR LF in the token would split the request's header: refused
        // before any request, never held pending in live/.
        (
            "header-splitting",
            claude_oauth(
                r"at-split\r\nX-Injected: 1",
                "rt-s",
                Some(ms_from_now(7 * 3600)),
            ),
        ),
    ];
    for (name, cred) in &attacks {
        plant(&live, cred);
        wait_for(
            &format!("live/ is repaired after the {name} login"),
            Duration::from_secs(10),
            || read_text(&live) == original,
        );
        assert_eq!(read_text(&host), original, "{name} reached the host");
    }
    // Asked about the first two only (the others fail the lifetime caps or
    // cannot be sent),
    // each once: the other account's token is real (200), the made-up one not.
    assert_eq!(profile_requests(&server), ["ok", "401"]);
    plant(&live, &attacks[0].1);
    wait_for("live/ is repaired again", Duration::from_secs(10), || {
        read_text(&live) == original
    });
    assert_eq!(
        profile_requests(&server).len(),
        2,
        "asked twice about one token"
    );

    // A container's real refresh of the host's account goes through.
    let refreshed = server.access_token_for(ACCOUNT);
    let fresh = claude_oauth(&refreshed, "rt-fresh", Some(ms_from_now(8 * 3600)));
    plant(&live, &fresh);
    wait_for(
        "the vouched login reaches the host",
        Duration::from_secs(10),
        || read_text(&host) == fresh,
    );
    // And a later host refresh still reaches live/.
    let later = claude_oauth(
        "at-host-later",
        "rt-later",
        Some(ms_from_now(8 * 3600 + 60)),
    );
    let tmp = host.with_extension("tmp");
    std::fs::write(&tmp, &later).unwrap();
    std::fs::rename(&tmp, &host).unwrap();
    wait_for(
        "the host refresh reaches live/",
        Duration::from_secs(10),
        || read_text(&live) == later,
    );
    let log = stop_sync(sync);
    assert!(log.contains("another account"), "{log}");
    assert!(log.contains("does not accept its access token"), "{log}");
    assert!(log.contains("not a token a header can carry"), "{log}");
    for secret in [
        foreign.as_str(),
        refreshed.as_str(),
        "at-made-up",
        "rt-fresh",
    ] {
        assert!(!log.contains(secret), "a token in the log:\n{log}");
    }
}

#[test]
fn with_no_answer_a_container_login_waits_in_live_and_goes_once_vouched() {
    let env = TestEnv::empty();
    let server = FakeOAuth::start();
    let (host, live) = claude_host(&env, &server);
    let sync = start_sync(&env, &server, &[]);
    wait_for(
        "live/ holds the host's login",
        Duration::from_secs(10),
        || read_text(&live) == read_text(&host),
    );
    let original = read_text(&host);
    server.fail_next(1);
    let fresh = claude_oauth(
        &server.access_token_for(ACCOUNT),
        "rt-fresh",
        Some(ms_from_now(8 * 3600)),
    );
    plant(&live, &fresh);
    wait_for("the provider is asked", Duration::from_secs(10), || {
        !profile_requests(&server).is_empty()
    });
    // No answer: held, neither taken nor undone.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(read_text(&host), original);
    assert_eq!(read_text(&live), fresh);
    // Asked again after the back-off (5 s), and taken.
    wait_for(
        "the login reaches the host",
        Duration::from_secs(15),
        || read_text(&host) == fresh,
    );
    assert_eq!(profile_requests(&server), ["503", "ok"]);
    let log = stop_sync(sync);
    assert!(log.contains("cannot ask the provider"), "{log}");
}

#[test]
fn no_verify_takes_a_container_login_unchecked() {
    let env = TestEnv::empty();
    let server = FakeOAuth::start();
    let (host, live) = claude_host(&env, &server);
    let sync = start_sync(&env, &server, &["--no-verify"]);
    wait_for(
        "live/ holds the host's login",
        Duration::from_secs(10),
        || read_text(&live) == read_text(&host),
    );
    let foreign = claude_oauth(
        &server.access_token_for("acct-other"),
        "rt-x",
        Some(ms_from_now(7 * 3600)),
    );
    plant(&live, &foreign);
    wait_for(
        "the unchecked login reaches the host",
        Duration::from_secs(10),
        || read_text(&host) == foreign,
    );
    assert!(profile_requests(&server).is_empty());
    let log = stop_sync(sync);
    assert!(log.contains("--no-verify"), "{log}");
}

fn codex_cred(id_token: &str, access_token: &str, refresh: &str) -> String {
    format!(
        r#"{{"OPENAI_API_KEY":null,"tokens":{{"id_token":"{id_token}","access_token":"{access_token}","refresh_token":"{refresh}","account_id":"{ACCOUNT}"}},"last_refresh":"{}"}}"#,
        jiff::Timestamp::now()
    )
}

#[test]
fn a_codex_login_needs_tokens_signed_by_the_provider_for_the_host_s_account() {
    let env = TestEnv::empty();
    let server = FakeOAuth::start();
    let exp = jiff::Timestamp::now().as_second() + 3600;
    let signed = |account: &str, exp: i64, jti: &str| signed_jwt(&codex_claims(account, exp, jti));
    env.codex(exp);
    env.write(
        ".codex/auth.json",
        &codex_cred(
            &signed(ACCOUNT, exp, "id-host"),
            &signed(ACCOUNT, exp, "at-host"),
            "rt-host",
        ),
        0o600,
    );
    let out = env.auth_at(&env.auth, &["setup", "--agents", "codex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = env.home.join(".codex/auth.json");
    let live = env.auth.join("live/codex/auth.json");
    let sync = start_sync(&env, &server, &[]);
    wait_for(
        "live/ holds the host's login",
        Duration::from_secs(10),
        || read_text(&live) == read_text(&host),
    );
    let original = read_text(&host);
    let later = exp + 3600;
    let attacks = [
        (
            "another account",
            codex_cred(
                &signed("acct-other", later, "id-x"),
                &signed("acct-other", later, "at-x"),
                "rt-x",
            ),
        ),
        (
            "unsigned",
            codex_cred(
                &fake_jwt(&codex_claims(ACCOUNT, later, "id-y")),
                &fake_jwt(&codex_claims(ACCOUNT, later, "at-y")),
                "rt-y",
            ),
        ),
        (
            "a real id_token with a made-up access token",
            codex_cred(
                &signed(ACCOUNT, later, "id-z"),
                &fake_jwt(&codex_claims(ACCOUNT, later, "at-z")),
                "rt-z",
            ),
        ),
    ];
    for (name, cred) in &attacks {
        plant(&live, cred);
        wait_for(
            &format!("live/ is repaired after the {name} login"),
            Duration::from_secs(10),
            || read_text(&live) == original,
        );
        assert_eq!(read_text(&host), original, "{name} reached the host");
    }
    // The keys were fetched once and cached.
    let fetched = server
        .seen()
        .iter()
        .filter(|s| s.agent == "codex-jwks")
        .count();
    assert_eq!(fetched, 1);
    let fresh = codex_cred(
        &signed(ACCOUNT, later, "id-fresh"),
        &signed(ACCOUNT, later, "at-fresh"),
        "rt-fresh",
    );
    plant(&live, &fresh);
    wait_for(
        "the vouched login reaches the host",
        Duration::from_secs(10),
        || read_text(&host) == fresh,
    );
    let log = stop_sync(sync);
    assert!(
        log.contains("signed with a key the provider does not publish"),
        "{log}"
    );
    assert!(log.contains("another account"), "{log}");
}
