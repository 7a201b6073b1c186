//! `caw auth docker-flags`.

use crate::util::*;

#[test]
fn v_json_and_mount_forms() {
    for mode in ["live", "bind"] {
        let env = TestEnv::full();
        assert!(env.auth(&["setup", "--mode", mode]).status.success());
        for format in ["v", "json", "mount"] {
            let out = env.auth(&["docker-flags", "--format", format]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(stderr(&out).is_empty(), "{}", stderr(&out));
            let mut settings = env.settings();
            settings.set_snapshot_suffix(format!("{mode}-{format}"));
            settings.bind(|| insta::assert_snapshot!(stdout(&out)));
        }
    }
}

#[test]
fn default_form_is_the_documented_line() {
    let env = TestEnv::full();
    env.setup();
    let out = env.auth(&["docker-flags"]);
    let a = env.auth.display();
    assert_eq!(
        stdout(&out),
        format!("-v {a}:/tmp/caw_auth:ro -v {a}/live:/tmp/caw_auth/live:rw\n")
    );
}

#[test]
fn bind_mode_mounts_each_host_credential() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "bind"]).status.success());
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
    assert!(env.auth(&["setup", "--mode", "bind"]).status.success());
    std::fs::remove_file(env.home.join(".codex/auth.json")).unwrap();
    let out = env.auth(&["docker-flags"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
}

#[test]
fn without_a_manifest_it_fails_with_nothing_on_stdout() {
    let env = TestEnv::empty();
    let out = env.auth(&["docker-flags"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("run `caw auth setup` first"));
}

#[test]
fn live_mode_mounts_the_auth_dir_read_only_and_live_read_write() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let a = env.auth.display();
    for (format, expected) in [
        (
            "v",
            format!("-v {a}:/tmp/caw_auth:ro -v {a}/live:/tmp/caw_auth/live:rw\n"),
        ),
        (
            "json",
            format!(
                "[\"-v\",\"{a}:/tmp/caw_auth:ro\",\"-v\",\"{a}/live:/tmp/caw_auth/live:rw\"]\n"
            ),
        ),
        (
            "mount",
            format!(
                "--mount type=bind,src={a},dst=/tmp/caw_auth,readonly \
                 --mount type=bind,src={a}/live,dst=/tmp/caw_auth/live\n"
            ),
        ),
    ] {
        let out = env.auth(&["docker-flags", "--format", format]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), expected, "--format {format}");
    }
    // docker would create a root-owned `live` in the auth dir.
    std::fs::remove_dir_all(env.auth.join("live")).unwrap();
    let out = env.auth(&["docker-flags"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("the live directory")
            && stderr(&out).contains("hint: run `caw auth setup` again"),
        "{}",
        stderr(&out)
    );
}

/// Each form refuses exactly what it cannot carry: `v` white space and `:`;
/// `json` only `:`; `mount` white space and `,`.
#[test]
fn each_form_refuses_what_it_cannot_carry() {
    for (name, ok) in [
        ("my auth", [false, true, false]),
        ("tab\tdir", [false, true, false]),
        ("auth:dir", [false, false, true]),
        ("auth,dir", [true, true, false]),
    ] {
        let env = TestEnv::full();
        let auth = env.dir.path().join(name);
        let out = env.auth_at(&auth, &["setup", "-a", "gemini"]);
        assert!(out.status.success(), "{}", stderr(&out));
        for (format, ok) in ["v", "json", "mount"].into_iter().zip(ok) {
            let out = env.auth_at(&auth, &["docker-flags", "--format", format]);
            let err = stderr(&out);
            assert_eq!(
                out.status.success(),
                ok,
                "{name:?} --format {format}: {err}"
            );
            if ok {
                continue;
            }
            assert_eq!(out.status.code(), Some(1));
            assert!(stdout(&out).is_empty());
            let refused = format!("cannot be used in a docker mount flag ({format})");
            assert!(err.contains(&refused) && err.contains("hint:"), "{err}");
        }
    }
    // JSON carries white space intact.
    let env = TestEnv::full();
    let auth = env.dir.path().join("my auth");
    assert!(env
        .auth_at(&auth, &["setup", "-a", "gemini"])
        .status
        .success());
    let out = env.auth_at(&auth, &["docker-flags", "--format", "json"]);
    let args: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(args[1], format!("{}:/tmp/caw_auth:ro", auth.display()));
}

/// The hint offers `--format json` where JSON could carry the path (white
/// space) and not where it could not (`:`).
#[test]
fn refusal_hints_offer_json_only_where_it_helps() {
    for (label, name, formats) in [
        ("colon", "a:b", ["v", "json"]),
        ("space", "my auth", ["v", "mount"]),
    ] {
        let env = TestEnv::full();
        let auth = env.dir.path().join(name);
        assert!(env
            .auth_at(&auth, &["setup", "-a", "gemini"])
            .status
            .success());
        for format in formats {
            let out = env.auth_at(&auth, &["docker-flags", "--format", format]);
            let mut settings = env.settings();
            settings.set_snapshot_suffix(format!("{label}-{format}"));
            settings.bind(|| insta::assert_snapshot!(stderr(&out)));
        }
    }
}

/// Defense in depth for a manifest changed on the host: whatever it says,
/// only the registry's credential files are mounted.
#[test]
fn a_manifest_naming_another_host_file_is_refused() {
    let env = TestEnv::full();
    env.setup();
    env.write(
        ".ssh/id_ed25519",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        0o600,
    );
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 3] = [
        ("agents.claude.files[0].host_original", |m| {
            m["agents"]["claude"]["files"][0]["host_original"] = ".ssh/id_ed25519".into();
        }),
        ("agents.codex.files[0].src", |m| {
            m["agents"]["codex"]["files"][0]["src"] = "codex/config.toml".into();
        }),
        ("agents.evil.files[0]", |m| {
            m["agents"]["evil"] = serde_json::json!({"files": [{
                "src": "evil/key", "container_target": ".ssh/id_ed25519",
                "host_original": ".ssh/id_ed25519", "type": "config",
                "strategy": "bind", "mode": "0600"}]});
        }),
    ];
    let pristine = std::fs::read(env.auth.join("manifest.json")).unwrap();
    for (field, edit) in cases {
        std::fs::write(env.auth.join("manifest.json"), &pristine).unwrap();
        edit_manifest(&env.auth, edit);
        for args in [
            &["docker-flags"][..],
            &["docker-flags", "--format", "json"],
            &["docker-flags", "--format", "mount"],
            &["status"],
        ] {
            let out = env.auth(args);
            assert_eq!(out.status.code(), Some(1), "{field} {args:?}");
            assert!(
                stdout(&out).is_empty(),
                "{field} {args:?}: {}",
                stdout(&out)
            );
            assert!(
                stderr(&out).contains(&format!("`{field}`")),
                "{field} {args:?}: {}",
                stderr(&out)
            );
        }
    }
    std::fs::write(env.auth.join("manifest.json"), &pristine).unwrap();
    edit_manifest(&env.auth, cases[0].1);
    let out = env.auth(&["docker-flags"]);
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
}
