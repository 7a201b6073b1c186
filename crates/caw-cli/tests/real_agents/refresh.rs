//! Refreshes by the real CLIs: one made in the container reaches the host
//! file whole (and the host then uses it without refreshing again); a
//! refused one leaves the host's login alone.

use std::time::Duration;

use crate::net::Request;
use crate::session::{
    jwt_tag, poll, text, Agent, Session, CLAUDE_ACCESS, CLAUDE_REFRESH, CODEX_REFRESH, HOME,
};

const CLAUDE_CRED: &str = ".claude/.credentials.json";
const CODEX_CRED: &str = ".codex/auth.json";

/// How long the guard may take to carry a write across. It reacts within a
/// second (inotify); the rest is slack for a loaded machine.
const SYNC: Duration = Duration::from_secs(10);

/// A session whose host holds an expired login of `agent` (set up for it),
/// and a container running with it.
fn with_expired_login(agent: &str) -> Option<(Session, Agent)> {
    let s = Session::new(module_path!())?;
    match agent {
        "claude" => s.login_claude(-60),
        _ => s.login_codex(-3600, false),
    }
    s.setup(&["--agents", agent]);
    let container = s.start_container(agent);
    Some((s, container))
}

/// The refresh requests so far: exactly one.
fn one_refresh(s: &Session) -> Vec<Request> {
    let tokens: Vec<_> = s
        .net
        .requests()
        .into_iter()
        .filter(|r| r.refresh_token.is_some())
        .collect();
    assert_eq!(tokens.len(), 1, "one refresh in the container: {tokens:#?}");
    tokens
}

/// The bearer tokens sent since request `n`; none of those requests was a
/// refresh, and at least one carried a bearer token.
fn bearers_without_refresh(s: &Session, n: usize) -> Vec<String> {
    let after = &s.net.requests()[n..];
    assert!(
        after.iter().all(|r| r.refresh_token.is_none()),
        "refreshed again: {after:#?}"
    );
    let bearers: Vec<String> = after.iter().filter_map(|r| r.bearer.clone()).collect();
    assert!(!bearers.is_empty(), "no bearer token sent: {after:#?}");
    bearers
}

#[test]
fn claude_refresh_in_container_reaches_host_file() {
    let Some((s, container)) = with_expired_login("claude") else {
        return;
    };

    // An expired access token: `auth status` refreshes it first.
    let out = container.run("claude", &["auth", "status"]);
    assert!(
        out.status.success(),
        "claude auth status: {}",
        text(&out.stderr)
    );
    let tokens = one_refresh(&s);
    assert_eq!(tokens[0].refresh_token.as_deref(), Some(CLAUDE_REFRESH));
    assert!(!tokens[0].refused);

    let host = poll(SYNC, || {
        let v = s.host_json(CLAUDE_CRED);
        (v["claudeAiOauth"]["refreshToken"] == "sk-ant-ort01-fake-refreshed-1").then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "the container's refresh did not reach the host file within {SYNC:?}: {}",
            s.host_json(CLAUDE_CRED)
        )
    });
    let oauth = &host["claudeAiOauth"];
    assert_eq!(oauth["accessToken"], "sk-ant-oat01-fake-refreshed-1");
    let expires_at = oauth["expiresAt"].as_i64().unwrap();
    assert!(
        expires_at > crate::session::now() * 1000,
        "expiresAt {expires_at} is not in the future"
    );
    let home = container.json(&format!("{HOME}/{CLAUDE_CRED}"));
    assert_eq!(home, host, "host file and container home copy differ");

    // The host's claude now uses the refreshed login as it is: no second
    // refresh (the old refresh token is dead on the server).
    let n = s.net.requests().len();
    let out = s.on_host("claude", &["auth", "status"]);
    assert!(
        out.status.success(),
        "host claude auth status: {}",
        text(&out.stderr)
    );
    let bearers = bearers_without_refresh(&s, n);
    assert!(
        bearers
            .iter()
            .all(|b| *b == "sk-ant-oat01-fake-refreshed-1"),
        "host bearer tokens after the container's refresh: {bearers:?}"
    );
    s.net.assert_loopback_only();
}

#[test]
fn codex_refresh_in_container_reaches_host_file() {
    let Some((s, container)) = with_expired_login("codex") else {
        return;
    };

    let out = container.run("codex", &["exec", "--skip-git-repo-check", "say hi"]);
    assert!(
        text(&out.stdout).contains("fake-api-answer"),
        "codex exec in the container: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let tokens = one_refresh(&s);
    assert_eq!(tokens[0].refresh_token.as_deref(), Some(CODEX_REFRESH));

    let host = poll(SYNC, || {
        let v = s.host_json(CODEX_CRED);
        (v["tokens"]["refresh_token"] == "codex-fake-refresh-refreshed-1").then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "the container's refresh did not reach the host file within {SYNC:?}: {}",
            s.host_json(CODEX_CRED)["tokens"]["refresh_token"]
        )
    });
    assert_eq!(
        jwt_tag(host["tokens"]["access_token"].as_str().unwrap()),
        "codex-fake-refreshed-1"
    );
    assert_eq!(container.json(&format!("{HOME}/{CODEX_CRED}")), host);

    let n = s.net.requests().len();
    let out = s.on_host("codex", &["exec", "--skip-git-repo-check", "say hi"]);
    assert!(
        text(&out.stdout).contains("fake-api-answer"),
        "host codex exec: {}",
        text(&out.stderr)
    );
    let tags: Vec<String> = bearers_without_refresh(&s, n)
        .iter()
        .map(|b| jwt_tag(b))
        .collect();
    assert!(
        tags.iter().all(|t| t == "codex-fake-refreshed-1"),
        "host bearer tokens after the container's refresh: {tags:?}"
    );
    s.net.assert_loopback_only();
}

#[test]
fn claude_refused_refresh_logged_out_file_stays_in_container() {
    let Some((s, container)) = with_expired_login("claude") else {
        return;
    };
    s.net.refuse_refreshes();

    // The server refuses: Claude writes its logged-out file (empty tokens,
    // expiresAt 0) into the container home.
    let out = container.run("claude", &["-p", "say hi"]);
    assert!(
        !out.status.success(),
        "claude -p succeeded with a refused refresh"
    );
    let home = format!("{HOME}/{CLAUDE_CRED}");
    poll(SYNC, || {
        let v = container.json(&home);
        (v["claudeAiOauth"]["refreshToken"] == "").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no logged-out file in the container: {}",
            container.json(&home)
        )
    });
    // The guard reacts within a second; give it three.
    std::thread::sleep(Duration::from_secs(3));
    let host = s.host_json(CLAUDE_CRED);
    assert_eq!(
        host["claudeAiOauth"]["refreshToken"], CLAUDE_REFRESH,
        "the container's logged-out file replaced the host's login: {host}"
    );
    assert_eq!(host["claudeAiOauth"]["accessToken"], CLAUDE_ACCESS);
}

#[test]
fn codex_refused_refresh_leaves_both_files_alone() {
    // Codex, unlike Claude, keeps its file when a refresh is refused.
    let Some(s) = Session::new(module_path!()) else {
        return;
    };
    s.login_codex(-3600, false);
    let before = std::fs::read(s.host_file(CODEX_CRED)).unwrap();
    s.setup(&["--agents", "codex"]);
    let container = s.start_container("codex");
    s.net.refuse_refreshes();

    let out = container.run("codex", &["exec", "--skip-git-repo-check", "say hi"]);
    let refused: Vec<_> = s.net.requests().into_iter().filter(|r| r.refused).collect();
    assert!(
        !refused.is_empty(),
        "codex did not try to refresh: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(3));
    let home = container.json(&format!("{HOME}/{CODEX_CRED}"));
    assert_eq!(
        home["tokens"]["refresh_token"], CODEX_REFRESH,
        "container file: {home}"
    );
    assert_eq!(
        std::fs::read(s.host_file(CODEX_CRED)).unwrap(),
        before,
        "the host file changed"
    );
}

#[test]
fn claude_refresh_on_host_reaches_container() {
    let Some((s, container)) = with_expired_login("claude") else {
        return;
    };

    let out = s.on_host("claude", &["auth", "status"]);
    assert!(
        out.status.success(),
        "host claude auth status: {}",
        text(&out.stderr)
    );
    assert_eq!(
        s.host_json(CLAUDE_CRED)["claudeAiOauth"]["refreshToken"],
        "sk-ant-ort01-fake-refreshed-1",
        "the host's claude did not refresh"
    );
    let home = format!("{HOME}/{CLAUDE_CRED}");
    poll(SYNC, || {
        (container.json(&home)["claudeAiOauth"]["refreshToken"] == "sk-ant-ort01-fake-refreshed-1")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the host's refresh did not reach the container: {}",
            container.json(&home)
        )
    });
    // And the container uses it without refreshing again.
    let n = s.net.requests().len();
    let out = container.run("claude", &["auth", "status"]);
    assert!(out.status.success());
    bearers_without_refresh(&s, n);
}
