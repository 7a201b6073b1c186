//! `caw auth setup --hold-refresh-token`: no real refresh token is
//! readable anywhere in a container, read from the host through
//! `/proc/<pid>/root` (its own files, and the auth dir and `live/` as they
//! are mounted there), before and after a host refresh; and nothing the
//! container writes reaches the host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::session::{Guard, Session, CREDS};

crate::for_both_guards!(no_real_refresh_token_is_readable_in_the_container);

/// Every refresh token in the host's credential files that is long enough
/// to search for (the session's Gemini and Qwen fixtures hold `1//x` and
/// `r`, which any file contains).
fn host_refresh_tokens(session: &Session) -> Vec<String> {
    let mut tokens = Vec::new();
    for agent in caw_auth::agents::REGISTRY {
        let Ok(bytes) = std::fs::read(session.host(agent.credential)) else {
            continue;
        };
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        for token in (agent.refresh_tokens)(&mut value) {
            tokens.extend(token.as_str().filter(|t| t.len() >= 12).map(str::to_string));
        }
    }
    assert!(
        tokens.iter().any(|t| t.starts_with("sk-ant-ort01-"))
            && tokens.iter().any(|t| t.starts_with("codex-")),
        "no Claude or Codex refresh token on the host ({} tokens)",
        tokens.len()
    );
    tokens
}

/// Files below `root` (not following links, not into proc, sys or dev)
/// whose bytes contain any of `needles`.
fn files_holding(root: &Path, needles: &[String]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let skip = dir == root
                    && matches!(entry.file_name().to_str(), Some("proc" | "sys" | "dev"));
                if !skip {
                    stack.push(path);
                }
            } else if kind.is_file() {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if needles
                    .iter()
                    .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
                {
                    hits.push(path);
                }
            }
        }
    }
    hits
}

fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn no_real_refresh_token_is_readable_in_the_container(guard: Guard, test: &str) {
    let Some(mut session) = Session::new(guard, test) else {
        return;
    };
    session.resetup(&["--hold-refresh-token"]);
    let container = session.serve("held");
    let root = PathBuf::from(format!("/proc/{}/root", container.pid()));
    let claude = CREDS[0];
    let home_copy = container.host_view(&claude.in_container());
    wait_until("the held login is in the home", guard.budget(), || {
        std::fs::read_to_string(&home_copy)
            .is_ok_and(|t| t.contains(caw_auth::credential::HELD_REFRESH_TOKEN))
    });
    let tokens = host_refresh_tokens(&session);
    let hits = files_holding(&root, &tokens);
    assert!(
        hits.is_empty(),
        "real refresh tokens ({} bytes long) in the container: {hits:?}",
        tokens
            .iter()
            .map(|t| t.len().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // A host refresh reaches the container, held.
    let refreshed = claude.refreshed("HELD-HOST-REFRESH", 80);
    session.write_on_host_by_rename(&claude, &refreshed);
    wait_until("the host refresh reaches the home", guard.budget(), || {
        std::fs::read_to_string(&home_copy).is_ok_and(|t| t.contains("HELD-HOST-REFRESH"))
    });
    let tokens = host_refresh_tokens(&session);
    assert!(tokens.iter().any(|t| t.contains("HELD-HOST-REFRESH")));
    let hits = files_holding(&root, &tokens);
    assert!(
        hits.is_empty(),
        "the new refresh token in the container: {hits:?}"
    );

    // Whatever the container writes stays there: a newer login of its own,
    // or the held copy with a new access token.
    let before = std::fs::read(session.host(claude.path)).unwrap();
    claude.write_in_container(&container, &claude.refreshed("PLANTED-IN-CONTAINER", 90));
    std::thread::sleep(guard.budget());
    assert_eq!(
        std::fs::read(session.host(claude.path)).unwrap(),
        before,
        "a container's login reached the host"
    );
    // The home copy is put back to the shared (held) login, and stays: the
    // guard and the host sync do not fight over `live/`.
    let live = session
        .env
        .auth
        .join("live")
        .join(caw_auth::agents::by_name("claude").unwrap().credential_src);
    wait_until(
        "the home copy is the shared login again",
        guard.budget(),
        || std::fs::read(&home_copy).ok() == std::fs::read(&live).ok(),
    );
    let settled = std::fs::read(&live).unwrap();
    std::thread::sleep(guard.budget());
    assert_eq!(
        std::fs::read(&live).unwrap(),
        settled,
        "live/ kept changing"
    );
    drop(container);
    session.teardown();
}
