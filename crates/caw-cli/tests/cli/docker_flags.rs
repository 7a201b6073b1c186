//! `caw auth docker-flags`.

use crate::util::*;

#[test]
fn v_json_and_mount_forms() {
    let env = TestEnv::full();
    env.setup();
    for format in ["v", "json", "mount"] {
        let out = env.auth(&["docker-flags", "--format", format]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{}", stderr(&out));
        let mut settings = env.settings();
        settings.set_snapshot_suffix(format);
        settings.bind(|| insta::assert_snapshot!(stdout(&out)));
    }
}

#[test]
fn default_form_is_the_documented_line() {
    let env = TestEnv::full();
    env.setup();
    let out = env.auth(&["docker-flags"]);
    let h = env.home.display();
    let expected = format!(
        "-v {a}:/tmp/caw_auth:ro \
         -v {h}/.claude/.credentials.json:/tmp/caw_auth/claude/credentials.json:rw \
         -v {h}/.codex/auth.json:/tmp/caw_auth/codex/auth.json:rw \
         -v {h}/.local/share/opencode/auth.json:/tmp/caw_auth/opencode/auth.json:rw \
         -v {h}/.gemini/oauth_creds.json:/tmp/caw_auth/gemini/oauth_creds.json:rw \
         -v {h}/.qwen/oauth_creds.json:/tmp/caw_auth/qwen/oauth_creds.json:rw\n",
        a = env.auth.display()
    );
    assert_eq!(stdout(&out), expected);
}

#[test]
fn relative_auth_dir_is_made_absolute() {
    let env = TestEnv::full();
    env.setup();
    let out = env
        .caw()
        .args(["auth", "docker-flags", "--auth-dir", "auth"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("-v {}:/tmp/caw_auth:ro ", env.auth.display())));
}

/// docker would create a root-owned directory where the credential was.
#[test]
fn refuses_a_missing_bind_source() {
    let env = TestEnv::full();
    env.setup();
    std::fs::remove_file(env.home.join(".codex/auth.json")).unwrap();
    let out = env.auth(&["docker-flags"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
}

#[test]
fn refuses_paths_with_white_space_or_colons() {
    for name in ["my auth", "auth:dir", "tab\tdir"] {
        let env = TestEnv::full();
        let auth = env.dir.path().join(name);
        let out = env
            .caw()
            .args(["auth", "setup", "-a", "gemini", "--auth-dir"])
            .arg(&auth)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = env
            .caw()
            .args(["auth", "docker-flags", "--auth-dir"])
            .arg(&auth)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name:?}");
        assert!(stdout(&out).is_empty());
        let err = stderr(&out);
        assert!(
            err.contains("cannot be used in a docker mount flag"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }
}

#[test]
fn without_a_manifest_it_fails_with_nothing_on_stdout() {
    let env = TestEnv::empty();
    let out = env.auth(&["docker-flags"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("run `caw auth setup` first"));
}
