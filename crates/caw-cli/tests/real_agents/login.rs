//! Both sides are logged in, with the same login: the real CLIs say so, and
//! the same bearer token reaches the API from the host and the container.

use std::process::Output;

use crate::net::Request;
use crate::session::{jwt_tag, text, Session, CLAUDE_ACCESS};

fn claude_logged_in(side: &str, out: &Output) {
    assert!(
        out.status.success(),
        "`claude auth status` on the {side} failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`claude auth status` on the {side}: not JSON ({e}): {}",
            text(&out.stdout)
        )
    });
    assert_eq!(status["loggedIn"], true, "{side}: {status}");
    assert_eq!(status["authMethod"], "claude.ai", "{side}: {status}");
    assert_eq!(status["email"], "dev@example.com", "{side}: {status}");
}

fn codex_logged_in(side: &str, out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && all.contains("Logged in using ChatGPT"),
        "`codex login status` on the {side} ({}): {all}",
        out.status
    );
}

/// The distinct bearer tokens of `requests`.
fn bearers(requests: &[Request]) -> Vec<String> {
    let mut seen: Vec<String> = requests.iter().filter_map(|r| r.bearer.clone()).collect();
    seen.sort();
    seen.dedup();
    seen
}

#[test]
fn claude_is_logged_in_with_the_same_token_on_host_and_in_container() {
    let Some(s) = Session::new(module_path!()) else {
        return;
    };
    s.login_claude(3 * 3600);
    s.setup(&["--agents", "claude"]);
    let container = s.start_container("claude");

    // `claude auth status` fetches the profile with the access token.
    let host = s.on_host("claude", &["auth", "status"]);
    claude_logged_in("host", &host);
    let n = s.net.requests().len();
    let inside = container.run("claude", &["auth", "status"]);
    claude_logged_in("container", &inside);

    let (host_reqs, container_reqs) = {
        let all = s.net.requests();
        let (h, c) = all.split_at(n);
        let api = |r: &[Request]| -> Vec<Request> {
            r.iter()
                .filter(|r| r.host == "api.anthropic.com")
                .cloned()
                .collect()
        };
        (api(h), api(c))
    };
    assert!(
        !host_reqs.is_empty(),
        "the host's claude sent nothing to the API"
    );
    assert!(
        !container_reqs.is_empty(),
        "the container's claude sent nothing to the API"
    );
    assert_eq!(bearers(&host_reqs), [CLAUDE_ACCESS], "host bearer tokens");
    assert_eq!(
        bearers(&container_reqs),
        [CLAUDE_ACCESS],
        "container bearer tokens: {container_reqs:#?}"
    );
    // A real model request too, from the container: same token.
    let n = s.net.requests().len();
    let answer = container.run("claude", &["-p", "say hi"]);
    assert!(
        text(&answer.stdout).contains("fake-api-answer"),
        "`claude -p` in the container: {}{}",
        text(&answer.stdout),
        text(&answer.stderr)
    );
    let messages: Vec<Request> = s
        .net
        .requests_to("api.anthropic.com", n)
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/messages"))
        .collect();
    assert!(
        !messages.is_empty(),
        "no /v1/messages request from the container"
    );
    assert_eq!(bearers(&messages), [CLAUDE_ACCESS]);
    assert!(
        s.net.requests().iter().all(|r| r.refresh_token.is_none()),
        "a login valid for 3 hours was refreshed"
    );
    // Claude keeps the mode it finds: caw installs `.claude.json` (e-mail,
    // organisation, user id) private, and it stays so after Claude wrote it.
    let mode = container.run("stat", &["-c", "%a", "/home/playground/.claude.json"]);
    assert_eq!(text(&mode.stdout).trim(), "600", "{}", text(&mode.stderr));
    s.net.assert_loopback_only();
}

#[test]
fn codex_is_logged_in_with_the_same_token_on_host_and_in_container() {
    let Some(s) = Session::new(module_path!()) else {
        return;
    };
    s.login_codex(5 * 86400, false);
    let access = s.host_json(".codex/auth.json")["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    s.setup(&["--agents", "codex"]);
    let container = s.start_container("codex");

    codex_logged_in("host", &s.on_host("codex", &["login", "status"]));
    codex_logged_in("container", &container.run("codex", &["login", "status"]));

    // `login status` reads the file only; `codex exec` calls the API.
    let exec = ["exec", "--skip-git-repo-check", "say hi"];
    let host = s.on_host("codex", &exec);
    assert!(
        text(&host.stdout).contains("fake-api-answer"),
        "`codex exec` on the host: {}{}",
        text(&host.stdout),
        text(&host.stderr)
    );
    let n = s.net.requests().len();
    let inside = container.run("codex", &exec);
    assert!(
        text(&inside.stdout).contains("fake-api-answer"),
        "`codex exec` in the container: {}{}",
        text(&inside.stdout),
        text(&inside.stderr)
    );
    let all = s.net.requests();
    let (h, c) = all.split_at(n);
    for (side, reqs) in [("host", h), ("container", c)] {
        let responses: Vec<&Request> = reqs
            .iter()
            .filter(|r| {
                r.host == "chatgpt.com"
                    && r.method == "POST"
                    && r.path.ends_with("/codex/responses")
            })
            .collect();
        assert!(!responses.is_empty(), "no model request from the {side}");
        let seen = bearers(
            &reqs
                .iter()
                .filter(|r| r.host == "chatgpt.com")
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            seen.iter().map(|t| jwt_tag(t)).collect::<Vec<_>>(),
            ["codex-fake-host-access"],
            "{side} bearer tokens"
        );
        assert_eq!(
            seen,
            std::slice::from_ref(&access),
            "{side}: the host's exact access token"
        );
    }
    assert!(
        all.iter().all(|r| r.refresh_token.is_none()),
        "a login valid for 5 days was refreshed"
    );
    s.net.assert_loopback_only();
}
