//! Interchangeability with caw 0.1.x, the earlier Python implementation
//! (PyPI `coding-agent-wrapper` 0.1.9): each reads the other's auth dir.
//!
//! Runs when `CAW_REFERENCE_BIN` names its `caw` (`scripts/reference-caw.sh`
//! installs it; `scripts/test.sh` sets the variable). Without it the tests
//! say they skipped, and fail when `CI` is set.

use std::path::PathBuf;
use std::process::Output;

use crate::util::*;

fn reference() -> Option<PathBuf> {
    match std::env::var_os("CAW_REFERENCE_BIN") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            let why = "set CAW_REFERENCE_BIN to coding-agent-wrapper 0.1.9's `caw` \
                       (scripts/reference-caw.sh prints it)";
            crate::skip::skip("caw cli", &crate::skip::current_test(), why);
            None
        }
    }
}

/// Run the reference with the temp home as HOME and the auth dir as CAW_AUTH_DIR.
fn run_reference(bin: &PathBuf, env: &TestEnv, args: &[&str]) -> Output {
    let out = std::process::Command::new(bin)
        .args(args)
        .env("HOME", &env.home)
        .env("CAW_AUTH_DIR", &env.auth)
        .env("COLUMNS", "400")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Our flags are 0.1.9's with one change: the auth dir itself is mounted
/// read-only (`:ro`, where 0.1.9 says `:rw`); every credential mount is the same.
fn assert_same_mounts_but_read_only(env: &TestEnv, ours: &Output, theirs: &Output) {
    let auth_rw = format!("-v {}:/tmp/caw_auth:rw", env.auth.display());
    let auth_ro = format!("-v {}:/tmp/caw_auth:ro", env.auth.display());
    let theirs = stdout(theirs);
    assert!(theirs.starts_with(&auth_rw), "0.1.9: {theirs}");
    assert_eq!(
        stdout(ours).trim(),
        theirs.trim().replacen(&auth_rw, &auth_ro, 1)
    );
}

#[test]
fn reference_reads_an_auth_dir_we_wrote() {
    let Some(bin) = reference() else { return };
    let env = TestEnv::full();
    // 0.1.9 knows only the bind layout.
    assert!(env.auth(&["setup", "--mode", "bind"]).status.success());
    let ours = env.auth(&["docker-flags"]);
    let theirs = run_reference(&bin, &env, &["auth", "docker-flags"]);
    assert_same_mounts_but_read_only(&env, &ours, &theirs);

    // A re-setup writes a new manifest inside the same auth dir: 0.1.9 still reads it.
    let out = env.auth(&["setup", "--mode", "bind", "--trust", "/workspace"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = env.auth(&["docker-flags"]);
    let theirs = run_reference(&bin, &env, &["auth", "docker-flags"]);
    assert_same_mounts_but_read_only(&env, &ours, &theirs);

    let status = run_reference(&bin, &env, &["auth", "status"]);
    let text = stdout(&status);
    for agent in ["claude", "codex", "opencode", "gemini", "qwen"] {
        assert!(
            text.contains(agent),
            "reference status lacks {agent}: {text}"
        );
    }
}

#[test]
fn we_read_an_auth_dir_the_reference_wrote() {
    let Some(bin) = reference() else { return };
    let env = TestEnv::full();
    run_reference(&bin, &env, &["auth", "setup"]);
    assert!(env.auth.join("manifest.json").exists());

    let theirs = run_reference(&bin, &env, &["auth", "docker-flags"]);
    let ours = env.auth(&["docker-flags"]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    assert_same_mounts_but_read_only(&env, &ours, &theirs);

    let ours = env.auth(&["status", "--json"]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let rows: serde_json::Value = serde_json::from_slice(&ours.stdout).unwrap();
    let agents: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["agent"].as_str().unwrap())
        .collect();
    assert!(
        agents.contains(&"claude") && agents.contains(&"codex"),
        "{agents:?}"
    );
    let claude = &rows[0];
    assert_eq!(claude["token_expiry"], "valid (3h 5m remaining)");

    // Our strict "is a caw auth dir" check accepts it: setup updates it in
    // place (the directory stays, for containers that mount it)…
    run_reference(&bin, &env, &["auth", "setup"]);
    let auth_ino = inode(&env.auth);
    let out = env.auth(&["setup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(inode(&env.auth), auth_ino);
    assert!(env.auth(&["docker-flags"]).status.success());
    // …and teardown removes one 0.1.9 wrote.
    run_reference(&bin, &env, &["auth", "setup"]);
    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.auth.exists());
}
