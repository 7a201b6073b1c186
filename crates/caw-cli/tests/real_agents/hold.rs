//! `caw auth setup --hold-refresh-token` with the real agents: a container
//! that never holds the real refresh token keeps working across an expiry,
//! because the host sync refreshes for it.
//!
//! In that mode the container's copy of each login carries the marker
//! `caw-held-on-the-host` in place of the refresh token, and only the host
//! sync refreshes (5 minutes before the agent's own point). The test:
//!
//! 1. logs the host in with the agent's own refresh point a few seconds away
//!    (caw's point, 5 minutes earlier, already behind), sets up with
//!    `--hold-refresh-token`, and starts one container while the host sync
//!    runs with the refresher off (as `docker-flags` starts it in the other
//!    tests);
//! 2. before: no file in the container (its whole filesystem read from the
//!    host through `/proc/<pid>/root`, but `proc`, `sys` and `dev`) and none
//!    in the auth dir holds the real refresh token; the container's copy and
//!    `live/` hold the marker and the host's access token;
//! 3. restarts the host sync with the refresher on, in the fake network (a
//!    sync started while a login is past its point refreshes it at once):
//!    one refresh, caw's, reaches the server; the new access token reaches
//!    the container, still with the marker;
//! 4. once the old login is past the agent's own refresh point, runs the
//!    agent in the container (`claude -p` / `codex exec`): it answers, every
//!    bearer token it sent is the new access token, and no request but
//!    caw's one was a refresh (none carried the marker);
//! 5. after: still no real refresh token (the old one nor the new one) in
//!    the container or the auth dir, the host file holds the new one, live
//!    on the server, and `live/` is the host's login with it held back.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use caw_auth::credential::HELD_REFRESH_TOKEN;

use crate::net::TokenState;
use crate::prereqs::say;
use crate::session::{
    jwt_tag, now, poll, run, text, Agent, Session, CLAUDE_REFRESH, CODEX_REFRESH, HOME,
};

/// The agent's own refresh point of the login the host starts with is this
/// many seconds after it is written; caw's is 5 minutes earlier, so behind.
const TRIGGER_AFTER: i64 = 3;

#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    /// The credential, relative to a home.
    cred: &'static str,
    /// Its file in `live/`.
    live: &'static str,
    /// The host's refresh token before the refresh.
    first_refresh: &'static str,
    /// The agent's command in the container.
    args: &'static [&'static str],
    /// The path of the model request the command makes.
    model_path: &'static str,
}

const CLAUDE: Kind = Kind {
    name: "claude",
    cred: ".claude/.credentials.json",
    live: "live/claude/credentials.json",
    first_refresh: CLAUDE_REFRESH,
    args: &["-p", "say hi"],
    model_path: "/v1/messages",
};

const CODEX: Kind = Kind {
    name: "codex",
    cred: ".codex/auth.json",
    live: "live/codex/auth.json",
    first_refresh: CODEX_REFRESH,
    args: &["exec", "--skip-git-repo-check", "say hi"],
    model_path: "/backend-api/codex/responses",
};

impl Kind {
    /// Log the host in with the agent's own refresh point `TRIGGER_AFTER`
    /// seconds away (Claude: 5 minutes before `expiresAt`; Codex: the access
    /// token's `exp`, `last_refresh` being now). Returns that point.
    fn login(&self, s: &Session) -> i64 {
        let trigger = now() + TRIGGER_AFTER;
        match self.name {
            "claude" => s.login_claude(5 * 60 + TRIGGER_AFTER),
            _ => s.login_codex(TRIGGER_AFTER, false),
        }
        trigger
    }

    /// The refresh token's place in the agent's credential JSON.
    fn refresh_pointer(&self) -> &'static str {
        match self.name {
            "claude" => "/claudeAiOauth/refreshToken",
            _ => "/tokens/refresh_token",
        }
    }

    fn access_pointer(&self) -> &'static str {
        match self.name {
            "claude" => "/claudeAiOauth/accessToken",
            _ => "/tokens/access_token",
        }
    }

    fn refresh_token(&self, v: &serde_json::Value) -> Option<String> {
        v.pointer(self.refresh_pointer())?
            .as_str()
            .map(str::to_string)
    }

    fn access_token(&self, v: &serde_json::Value) -> Option<String> {
        v.pointer(self.access_pointer())?
            .as_str()
            .map(str::to_string)
    }

    /// `v` with its refresh token replaced by the marker, as the container
    /// should see the host's login.
    fn held(&self, v: &serde_json::Value) -> serde_json::Value {
        let mut v = v.clone();
        *v.pointer_mut(self.refresh_pointer())
            .expect("the host's login has a refresh token") = HELD_REFRESH_TOKEN.into();
        v
    }

    /// A token for assertion messages (a Codex JWT by its `jti`).
    fn show(&self, token: &str) -> String {
        match self.name {
            "codex" if token.contains('.') => jwt_tag(token),
            _ => token.to_string(),
        }
    }

    /// A run that got the model's answer.
    fn succeeded(&self, out: &Output) -> bool {
        let answered = text(&out.stdout).contains("fake-api-answer");
        match self.name {
            "claude" => answered && out.status.success(),
            _ => answered,
        }
    }
}

/// A JSON file, `None` when it is missing or not JSON (a write under way).
fn json_at(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Claude Code's OAuth client id: in the `claude` binary the container
/// sees at `/opt/real-agents/bin`, to show that a scan reads it.
const IN_THE_CLAUDE_BINARY: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

/// Each file under `root` with each of `patterns` it contains, read as root
/// from the host with `grep -r` (which follows no symbolic link below the
/// top and skips devices, FIFOs and sockets). At the top, `proc`, `sys`,
/// `dev` and symbolic links are left out (a container's `/bin -> usr/bin`
/// is read through `usr`; an absolute link would lead out of the container).
fn grep_tree(root: &Path, patterns: &[&str]) -> Vec<(String, String)> {
    let mut tops: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap())
        .filter(|entry| !matches!(entry.file_name().to_str(), Some("proc" | "sys" | "dev")))
        .filter(|entry| !entry.file_type().unwrap().is_symlink())
        .map(|entry| entry.path())
        .collect();
    tops.sort();
    let mut grep = Command::new("grep");
    grep.args([
        "--recursive",
        "--with-filename",
        "--only-matching",
        "--text",
    ])
    .args(["--fixed-strings", "--devices=skip"]);
    for pattern in patterns {
        grep.args(["-e", pattern]);
    }
    grep.arg("--").args(&tops);
    let out = run(&mut grep, Duration::from_secs(120));
    // 0: found, 1: none; 2 (a file it could not read) would leave files
    // unread, so it fails the test.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "grep over {} failed ({}): {}",
        root.display(),
        out.status,
        text(&out.stderr)
    );
    let mut found: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (file, pattern) = line.rsplit_once(':')?;
            Some((file.to_string(), pattern.to_string()))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// No file in the container (its whole filesystem but `proc`, `sys` and
/// `dev`) nor in the auth dir holds any of `secrets`.
fn assert_nowhere(s: &Session, c: &Agent, kind: Kind, secrets: &[&str], when: &str) {
    let started = Instant::now();
    let root = c.host_path("/");
    let mut patterns = secrets.to_vec();
    patterns.extend([HELD_REFRESH_TOKEN, IN_THE_CLAUDE_BINARY]);
    let mut found = grep_tree(&root, &patterns);
    found.extend(grep_tree(&s.auth, &patterns));
    let holders: Vec<&(String, String)> = found
        .iter()
        .filter(|(_, p)| secrets.contains(&p.as_str()))
        .collect();
    say(&format!(
        "{when}: read the container's filesystem and the auth dir in {:.1} s: {} file(s) \
         with a real refresh token, {} with the marker",
        started.elapsed().as_secs_f64(),
        holders.len(),
        found
            .iter()
            .filter(|(_, p)| p == HELD_REFRESH_TOKEN)
            .count(),
    ));
    assert!(
        holders.is_empty(),
        "{when}: files readable in the container or the auth dir hold a real refresh \
         token: {holders:#?}"
    );
    // The scan did read the container: its home and the agent binaries.
    let seen = |file: &str, pattern: &str| {
        let path = root.join(file.trim_start_matches('/'));
        found
            .iter()
            .any(|(f, p)| p == pattern && Path::new(f) == path)
    };
    for (file, pattern) in [
        (format!("{HOME}/{}", kind.cred), HELD_REFRESH_TOKEN),
        (
            "/opt/real-agents/bin/claude".to_string(),
            IN_THE_CLAUDE_BINARY,
        ),
    ] {
        assert!(
            seen(&file, pattern),
            "{when}: the scan did not find `{pattern}` in the container's {file}: {found:#?}"
        );
    }
}

fn holds_across_an_expiry(kind: Kind) {
    let Some(s) = Session::new(module_path!()) else {
        return;
    };
    let started = Instant::now();
    let trigger = kind.login(&s);
    s.setup(&["--agents", kind.name, "--hold-refresh-token"]);
    let manifest = caw_auth::manifest::Manifest::load(&s.auth).unwrap();
    assert!(
        manifest.hold_refresh_token,
        "setup did not record hold mode"
    );

    // 1. One container, the host sync running without its refresher.
    s.start_host_sync(false);
    let c = s.start_container(kind.name);
    let host_before = s.host_json(kind.cred);
    let old_access = kind.access_token(&host_before).unwrap();
    assert_eq!(
        kind.refresh_token(&host_before).as_deref(),
        Some(kind.first_refresh)
    );

    // 2. Before: the container's copy and live/ are the host's login with
    // the marker; no real refresh token anywhere in reach of the container.
    let home_cred = c.host_path(&format!("{HOME}/{}", kind.cred));
    let live = s.auth.join(kind.live);
    for (place, path) in [("the container's home", &home_cred), ("live/", &live)] {
        let copy = json_at(path).unwrap_or_else(|| panic!("{place}: no credential"));
        assert_eq!(
            kind.refresh_token(&copy).as_deref(),
            Some(HELD_REFRESH_TOKEN),
            "{place}: not the marker in place of the refresh token"
        );
        assert_eq!(
            copy,
            kind.held(&host_before),
            "{place}: not the host's login with the refresh token held"
        );
    }
    assert_nowhere(&s, &c, kind, &[kind.first_refresh], "before the refresh");

    // 3. The host sync with its refresher: the login is past caw's point,
    // so it refreshes at once, while the container runs.
    s.stop_host_sync();
    assert!(
        s.net.requests().iter().all(|r| !r.is_refresh()),
        "a refresh before the refresher ran: {:#?}",
        s.net.requests()
    );
    let restarted = Instant::now();
    s.start_host_sync(true);
    let host_after = poll(Duration::from_secs(30), || {
        json_at(&s.host_file(kind.cred)).filter(|v| {
            kind.refresh_token(v)
                .is_some_and(|t| t != kind.first_refresh)
        })
    })
    .expect("the host sync did not refresh the login into the host file");
    let new_access = kind.access_token(&host_after).unwrap();
    let new_refresh = kind.refresh_token(&host_after).unwrap();
    assert_ne!(new_access, old_access, "the refresh kept the access token");
    assert_ne!(
        new_refresh, HELD_REFRESH_TOKEN,
        "the host file holds the marker"
    );
    let reached = poll(Duration::from_secs(30), || {
        json_at(&home_cred).filter(|v| kind.access_token(v).as_deref() == Some(&new_access))
    })
    .expect("the new access token did not reach the container's home");
    let reached_after = restarted.elapsed();
    assert_eq!(
        kind.refresh_token(&reached).as_deref(),
        Some(HELD_REFRESH_TOKEN),
        "the container got the refreshed login without the marker"
    );

    // 4. The agent, past its own refresh point of the old login.
    while now() <= trigger + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let skip = s.net.requests().len();
    let ran = Instant::now();
    let out = c.run(kind.name, kind.args);
    let run_time = ran.elapsed();
    assert!(
        kind.succeeded(&out),
        "`{} {:?}` in the container failed ({}):\n{}{}",
        kind.name,
        kind.args,
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let requests = s.net.requests();
    let during = &requests[skip..];
    let bearers: Vec<String> = during
        .iter()
        .filter_map(|r| r.bearer.as_deref())
        .map(|b| kind.show(b))
        .collect();
    assert!(
        during.iter().any(|r| r.method == "POST"
            && r.path.split('?').next() == Some(kind.model_path)
            && r.bearer.as_ref() == Some(&new_access)),
        "no model request with the new access token {}: bearers {bearers:?}",
        kind.show(&new_access)
    );
    assert!(
        during
            .iter()
            .filter_map(|r| r.bearer.as_ref())
            .all(|b| *b == new_access),
        "the agent sent other bearer tokens than the new access token {}: {bearers:?}",
        kind.show(&new_access)
    );
    let refreshes: Vec<_> = requests.iter().filter(|r| r.is_refresh()).collect();
    assert_eq!(
        refreshes.len(),
        1,
        "refresh requests (only caw's one expected): {refreshes:#?}"
    );
    let r = refreshes[0];
    assert!(
        r.caw
            && r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("caw/")),
        "the one refresh is not caw's: {r:#?}"
    );
    assert_eq!(r.refresh_token.as_deref(), Some(kind.first_refresh));
    assert!(!r.refused, "caw's refresh was refused: {r:#?}");
    assert!(
        r.format_problems.is_empty(),
        "caw's request differs from the pinned format: {:?}",
        r.format_problems
    );
    assert!(
        requests.iter().all(|r| {
            r.refresh_token.as_deref() != Some(HELD_REFRESH_TOKEN)
                && r.bearer.as_deref() != Some(HELD_REFRESH_TOKEN)
        }),
        "a request carried the marker"
    );
    assert!(
        requests.iter().all(|r| !r.refused && !r.unauthorized),
        "a request was refused"
    );

    // 5. After: live/ is the host's login held back (whatever the agent
    // wrote), the host file has the new refresh token, live on the server,
    // and no real refresh token is in reach of the container.
    let host_now = s.host_json(kind.cred);
    assert_eq!(
        kind.refresh_token(&host_now).as_deref(),
        Some(new_refresh.as_str()),
        "the host file lost the new refresh token"
    );
    assert_eq!(
        s.net.refresh_token_state(&new_refresh),
        TokenState::Live,
        "the host's new refresh token is not live on the server"
    );
    let settled = poll(Duration::from_secs(20), || {
        let live_now = json_at(&live)?;
        let home_now = json_at(&home_cred)?;
        (live_now == kind.held(&host_now)
            && kind.access_token(&home_now).as_deref() == Some(&new_access)
            && kind.refresh_token(&home_now).as_deref() == Some(HELD_REFRESH_TOKEN))
        .then_some(())
    });
    assert!(
        settled.is_some(),
        "live/ is not the host's login held back, or the container's copy not the new \
         login with the marker:\nlive/: {:?}\nhome: {:?}",
        json_at(&live).map(|v| (
            kind.access_token(&v).map(|t| kind.show(&t)),
            kind.refresh_token(&v)
        )),
        json_at(&home_cred).map(|v| (
            kind.access_token(&v).map(|t| kind.show(&t)),
            kind.refresh_token(&v)
        )),
    );
    assert_nowhere(
        &s,
        &c,
        kind,
        &[kind.first_refresh, &new_refresh],
        "after the refresh and the run",
    );
    s.net.assert_loopback_only();
    say(&format!(
        "{} hold: 1 refresh (caw's); new access token in the container {:.1} s after the \
         refresher started; {} {:?} ran {:.1} s with {} bearer request(s), all the new \
         token; test {:.1} s",
        kind.name,
        reached_after.as_secs_f64(),
        kind.name,
        kind.args,
        run_time.as_secs_f64(),
        bearers.len(),
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn claude_in_a_hold_container_works_across_an_expiry_without_the_refresh_token() {
    holds_across_an_expiry(CLAUDE);
}

#[test]
fn codex_in_a_hold_container_works_across_an_expiry_without_the_refresh_token() {
    holds_across_an_expiry(CODEX);
}
