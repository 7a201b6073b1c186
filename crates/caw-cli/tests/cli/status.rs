//! `caw auth status`.

use crate::util::*;

#[test]
fn table_shows_each_file_and_token_expiry() {
    let env = TestEnv::full();
    env.setup();
    let out = env.auth(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Column widths follow the temp paths' lengths; compare the cells, not the padding.
    let mut settings = env.settings();
    settings.add_filter(" {2,}", "  ");
    settings.bind(|| insta::assert_snapshot!(stdout(&out)));
}

#[test]
fn json_rows_carry_the_documented_fields() {
    let env = TestEnv::full();
    env.setup();
    let out = env.auth(&["status", "--json", "-a", "claude,qwen"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    env.settings().bind(|| insta::assert_json_snapshot!(rows));
}

#[test]
fn freshness_is_read_from_the_host_file_not_the_snapshot() {
    let env = TestEnv::full();
    env.setup();
    // The host refreshes after setup; the staged snapshot is now stale.
    env.gemini(ms_from_now(5 * 3600 + 600));
    let out = env.auth(&["status", "--json", "--agents", "gemini"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["token_expiry"], "valid (5h 10m remaining)");

    // The host credential disappears: the row says missing, with no expiry.
    std::fs::remove_file(env.home.join(".gemini/oauth_creds.json")).unwrap();
    let out = env.auth(&["status", "--json", "--agents", "gemini"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["exists"], false);
    assert_eq!(rows[0]["token_expiry"], serde_json::Value::Null);
    assert!(rows[0]["source"].as_str().unwrap().starts_with("missing "));
}

#[test]
fn codex_api_key_only_has_no_expiry() {
    let env = TestEnv::empty();
    env.write(
        ".codex/auth.json",
        r#"{"OPENAI_API_KEY":"sk-SECRET-API-KEY","tokens":null}"#,
        0o600,
    );
    env.setup();
    let out = env.auth(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["token_expiry"], serde_json::Value::Null);
}

#[test]
fn without_a_manifest_it_says_to_run_setup() {
    let env = TestEnv::empty();
    let out = env.auth(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
}

#[test]
fn an_invalid_manifest_is_named_by_field() {
    let env = TestEnv::full();
    env.setup();
    let path = env.auth.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "\"src\": \"claude/credentials.json\"",
            "\"src\": \"../../etc/shadow\"",
            1,
        ),
    )
    .unwrap();
    for cmd in ["status", "docker-flags"] {
        let out = env.auth(&[cmd]);
        assert_eq!(out.status.code(), Some(1));
        let mut settings = env.settings();
        settings.set_snapshot_suffix(cmd);
        settings.bind(|| insta::assert_snapshot!(stderr(&out)));
    }
}

#[test]
fn unknown_agent_filter_is_rejected() {
    let env = TestEnv::full();
    env.setup();
    let out = env.auth(&["status", "-a", "cursor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Unknown agent `cursor`"));
}

#[test]
fn unknown_agent_is_reported_before_a_missing_manifest() {
    let env = TestEnv::empty();
    let out = env.auth(&["status", "-a", "cursor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Unknown agent `cursor`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_relative_auth_dir_is_made_absolute() {
    let env = TestEnv::full();
    env.setup();
    let out = env
        .caw()
        .args([
            "auth",
            "status",
            "--json",
            "-a",
            "codex",
            "--auth-dir",
            "auth",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[1]["path"],
        env.auth.join("codex/config.toml").display().to_string()
    );
}

/// Dotfile managers link credentials into place: status follows the link,
/// and a FIFO in its place is reported without an expiry instead of hanging.
#[test]
fn a_symlinked_host_credential_is_read_and_a_fifo_is_not() {
    let env = TestEnv::full();
    env.setup();
    let cred = env.home.join(".gemini/oauth_creds.json");
    let real = env.dir.path().join("dotfiles-gemini.json");
    std::fs::rename(&cred, &real).unwrap();
    std::os::unix::fs::symlink(&real, &cred).unwrap();
    let out = env.auth(&["status", "--json", "-a", "gemini"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["token_expiry"], "valid (17m remaining)");

    std::fs::remove_file(&cred).unwrap();
    mkfifo(&cred);
    let mut cmd = env.caw();
    cmd.args(["auth", "status", "--json", "-a", "gemini", "--auth-dir"])
        .arg(&env.auth);
    let out = cmd
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["token_expiry"], serde_json::Value::Null);
}

/// Live mode: which side of each credential is newer, and the sync's state.
#[test]
fn live_mode_shows_the_newest_side_and_the_sync() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    env.setup();
    let live = env.auth.join("live/claude/credentials.json");
    let newest = |out: &std::process::Output| {
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rows[0]["newest"].as_str().unwrap().to_string()
    };
    assert_eq!(newest(&env.auth(&["status", "--json"])), "same");
    // A container refreshed while no sync ran: live is ahead of the host.
    let refreshed = format!(
        r#"{{"claudeAiOauth":{{"accessToken":"a2","refreshToken":"r2","expiresAt":{}}}}}"#,
        ms_from_now(7200)
    );
    std::fs::write(&live, &refreshed).unwrap();
    assert_eq!(newest(&env.auth(&["status", "--json"])), "live");
    // A logged-out live copy never counts as newer.
    std::fs::write(
        &live,
        r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#,
    )
    .unwrap();
    assert_eq!(newest(&env.auth(&["status", "--json"])), "host");
    let out = env.auth(&["status"]);
    assert!(
        stdout(&out).contains("sync: not running"),
        "{}",
        stdout(&out)
    );

    // With the sync running: its pid, and it has made both sides equal.
    let mut sync = std::process::Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args(["auth", "sync", "--idle-exit", "0", "--auth-dir"])
        .arg(&env.auth)
        .env("HOME", &env.home)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let out = loop {
        let out = env.auth(&["status"]);
        if stdout(&out).contains(&format!("sync: running (pid {}", sync.id()))
            && stdout(&out).contains(" same ")
        {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "{}", stdout(&out));
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(stdout(&out).contains("last sync"), "{}", stdout(&out));
    terminate(&sync);
    assert!(
        sync.wait().unwrap().success(),
        "the sync does not stop cleanly on SIGTERM"
    );
}
