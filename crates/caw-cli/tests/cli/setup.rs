//! `caw auth setup`.

use crate::util::*;

#[test]
fn writes_the_manifest_and_modes_for_all_agents() {
    let env = TestEnv::full();
    let out = env.setup();
    assert_eq!(stdout(&out).trim(), env.auth.display().to_string());

    let manifest = std::fs::read_to_string(env.auth.join("manifest.json")).unwrap();
    env.settings().bind(|| insta::assert_snapshot!(manifest));

    assert_eq!(mode(&env.auth), 0o700);
    assert_eq!(mode(&env.auth.join("setup-container.sh")), 0o755);
    // Credentials, and configs holding account data.
    for cred in [
        "claude/config.json",
        "gemini/google_accounts.json",
        "claude/credentials.json",
        "codex/auth.json",
        "opencode/auth.json",
        "gemini/oauth_creds.json",
        "qwen/oauth_creds.json",
    ] {
        assert_eq!(mode(&env.auth.join(cred)), 0o600, "{cred}");
    }
    for cfg in [
        "codex/config.toml",
        "opencode/opencode.json",
        "gemini/settings.json",
    ] {
        assert_eq!(mode(&env.auth.join(cfg)), 0o644, "{cfg}");
    }
    // Credential snapshots are byte copies of the host files.
    assert_eq!(
        std::fs::read(env.auth.join("codex/auth.json")).unwrap(),
        std::fs::read(env.home.join(".codex/auth.json")).unwrap()
    );
}

#[test]
fn progress_goes_to_stderr_and_names_each_agent() {
    let env = TestEnv::full();
    let out = env.setup();
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
}

#[test]
fn host_files_keep_bytes_mode_mtime_and_inode() {
    let env = TestEnv::full();
    let before = tree_state(&env.home);
    env.setup();
    env.setup();
    assert_eq!(before, tree_state(&env.home));
}

#[test]
fn no_host_project_path_survives_cleaning() {
    let env = TestEnv::full();
    env.setup();
    for (path, (bytes, ..)) in tree_state(&env.auth) {
        if path.ends_with("manifest.json") || path.ends_with("setup-container.sh") {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("/home/dev"),
            "{} keeps a host path",
            path.display()
        );
        assert!(
            !text.contains("hunter2"),
            "{} keeps an MCP secret",
            path.display()
        );
    }
    let claude: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("claude/config.json")).unwrap())
            .unwrap();
    insta::assert_json_snapshot!(claude);
    let codex = std::fs::read_to_string(env.auth.join("codex/config.toml")).unwrap();
    insta::assert_snapshot!(codex);
    codex
        .parse::<toml_edit::DocumentMut>()
        .expect("cleaned config.toml parses");
}

#[test]
fn three_spellings_of_agents_select_the_same() {
    let env = TestEnv::full();
    let mut manifests = Vec::new();
    for args in [
        &["setup", "--agents", "claude", "codex"][..],
        &["setup", "-a", "claude", "-a", "codex"],
        &["setup", "--agents", "codex,claude"],
    ] {
        let out = env.auth(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap())
                .unwrap();
        manifests.push(m["agents"].clone());
    }
    assert_eq!(
        manifests[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["claude", "codex"]
    );
    assert!(manifests.iter().all(|m| *m == manifests[0]));
}

#[test]
fn unknown_agent_is_a_usage_error_listing_known_ones() {
    let env = TestEnv::full();
    let out = env.auth(&["setup", "--agents", "claude,cursor"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out));
    assert!(!env.auth.exists());
}

#[test]
fn missing_agents_are_skipped_with_a_warning() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    env.write(".codex/config.toml", "model = \"x\"\n", 0o644);
    let out = env.setup();
    let err = stderr(&out);
    assert!(err.contains("warning: skipping codex: missing"), "{err}");
    assert!(
        err.contains(&format!("`{}/.codex/auth.json`", env.home.display())),
        "{err}"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["agents"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["claude"]
    );
}

#[test]
fn no_usable_agent_names_what_is_missing_and_writes_nothing() {
    let env = TestEnv::empty();
    env.write(".claude.json", "{}", 0o644);
    let out = env.auth(&["setup"]);
    assert_eq!(out.status.code(), Some(1));
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
    assert!(!env.auth.exists());
    assert!(stdout(&out).is_empty());
}

/// Any failure leaves the previous auth dir byte-identical.
#[test]
fn failures_leave_the_previous_auth_dir_untouched() {
    let breakages: &[(&str, &str, &str)] = &[
        (
            ".codex/auth.json",
            "{\"tokens\": {\"refresh_token\": \"codex-SECRET-REFRESH\"",
            "cannot parse",
        ),
        (
            ".codex/config.toml",
            "model = \"gpt-5\"\n[projects.\"/x\"\ntrust_level = 1\n",
            "cannot parse",
        ),
        (".claude.json", "[1, 2, 3]", "cannot parse"),
        (".gemini/oauth_creds.json", "[]", "expected a JSON object"),
        (".gemini/settings.json", "{,}", "cannot parse"),
    ];
    for (rel, text, expected) in breakages {
        let env = TestEnv::full();
        env.setup();
        let before = tree_state(&env.auth);
        let home_before = {
            env.write(rel, text, 0o600);
            tree_state(&env.home)
        };
        let out = env.auth(&["setup"]);
        assert_eq!(out.status.code(), Some(1), "{rel}");
        let err = stderr(&out);
        assert!(err.contains(expected) && err.contains(rel), "{rel}: {err}");
        assert!(err.contains("hint:"), "{err}");
        assert_eq!(before, tree_state(&env.auth), "{rel} changed the auth dir");
        assert_eq!(home_before, tree_state(&env.home), "{rel} changed the home");
        let leftovers = env.hidden_siblings();
        assert!(leftovers.is_empty(), "temp dirs left behind: {leftovers:?}");
    }
}

#[test]
fn refuses_to_replace_a_directory_that_is_not_an_auth_dir() {
    let env = TestEnv::full();
    std::fs::create_dir(&env.auth).unwrap();
    std::fs::write(env.auth.join("thesis.tex"), "precious").unwrap();
    let out = env.auth(&["setup"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not a caw auth dir"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.auth.join("thesis.tex")).unwrap(),
        "precious"
    );
}

#[test]
fn rerun_replaces_the_auth_dir_in_place() {
    let env = TestEnv::full();
    env.setup();
    let auth_ino = inode(&env.auth);
    std::fs::remove_file(env.home.join(".qwen/oauth_creds.json")).unwrap();
    env.setup();
    assert!(!env.auth.join("qwen").exists());
    assert!(env.auth.join("claude/credentials.json").exists());
    assert_eq!(inode(&env.auth), auth_ino);
}

/// Issue 18: running containers mount `A` and `A/live` (and, in bind mode,
/// host files over `A/<agent>/<credential>`). Whatever a re-setup changes
/// (agents, trust, container home, mode), those inodes stay, the new
/// manifest describes what is there, and no temp entry is left in or
/// beside `A`.
#[test]
fn re_setups_of_every_kind_keep_the_mounted_inodes() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let mounted = |env: &TestEnv| {
        ["", "claude", "claude/credentials.json", "codex/auth.json"]
            .map(|p| inode(&env.auth.join(p)))
    };
    let before = mounted(&env);
    let live_ino = inode(&env.auth.join("live"));
    for args in [
        &["--trust", "/workspace"][..],
        &["--agents", "claude,codex"],
        &[
            "--container-home",
            "/home/node",
            "--agents",
            "claude,codex,gemini",
        ],
        &["--mode", "bind"],
        &["--mode", "live", "--agents", "codex,claude"],
    ] {
        let mut full = vec!["setup"];
        full.extend(args);
        let out = env.auth(&full);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(mounted(&env), before, "{args:?}");
        if !args.contains(&"--mode") {
            assert_eq!(inode(&env.auth.join("live")), live_ino, "{args:?}");
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap())
                .unwrap();
        for (agent, entry) in manifest["agents"].as_object().unwrap() {
            for file in entry["files"].as_array().unwrap() {
                let src = file["src"].as_str().unwrap();
                assert!(env.auth.join(src).is_file(), "{args:?}: {agent}: {src}");
            }
        }
        let mut tops: Vec<String> = std::fs::read_dir(&env.auth)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "live" && n != "bin")
            .collect();
        tops.sort();
        let mut expected: Vec<String> = manifest["agents"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .chain(["manifest.json".into(), "setup-container.sh".into()])
            .collect();
        expected.sort();
        assert_eq!(tops, expected, "{args:?}");
        for dir in ["claude", "codex"] {
            let hidden: Vec<_> = std::fs::read_dir(env.auth.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n.to_string_lossy().starts_with('.'))
                .collect();
            assert!(hidden.is_empty(), "{args:?}: {dir}: {hidden:?}");
        }
        assert_eq!(env.hidden_siblings(), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn container_home_and_mount_point_are_recorded_and_used() {
    let env = TestEnv::full();
    let out = env.auth(&[
        "setup",
        "-a",
        "claude,codex",
        "--container-home",
        "/home/agent/",
        "--mount-point",
        "/run/caw",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["container_home"], "/home/agent");
    assert_eq!(m["mount_point"], "/run/caw");
    let claude = std::fs::read_to_string(env.auth.join("claude/config.json")).unwrap();
    assert!(claude.contains("\"/home/agent\""), "{claude}");
    let codex = std::fs::read_to_string(env.auth.join("codex/config.toml")).unwrap();
    assert!(codex.contains("[projects.\"/home/agent\"]"), "{codex}");

    let out = env.auth(&["setup", "--container-home", "home/agent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid --container-home `home/agent`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn defaults_come_from_home_and_caw_auth_dir() {
    let env = TestEnv::full();
    // No --auth-dir: $HOME/.caw/auth, and $HOME is the source home.
    let out = env
        .caw()
        .args(["auth", "setup", "-a", "gemini"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let default_dir = env.home.join(".caw/auth");
    assert_eq!(stdout(&out).trim(), default_dir.display().to_string());
    assert!(default_dir.join("gemini/oauth_creds.json").exists());

    // CAW_AUTH_DIR with a leading `~`.
    let out = env
        .caw()
        .env("CAW_AUTH_DIR", "~/elsewhere")
        .args(["auth", "setup", "-a", "gemini"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.home.join("elsewhere/manifest.json").exists());

    // --source-home reads another home.
    let other = TestEnv::full();
    let out = env
        .caw()
        .args(["auth", "setup", "-a", "qwen", "--auth-dir"])
        .arg(&env.auth)
        .arg("--source-home")
        .arg(&other.home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["host_home"], other.home.display().to_string());
}

#[test]
fn setup_script_lists_every_file_and_is_posix_sh() {
    let env = TestEnv::full();
    env.setup();
    let script = std::fs::read_to_string(env.auth.join("setup-container.sh")).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(
        script.contains("claude\tclaude/credentials.json\t.claude/.credentials.json\tbind\t0600")
    );
    assert!(script.contains("codex\tcodex/config.toml\t.codex/config.toml\tcopy\t0644"));
    assert!(!script.contains("@CAW_FILES@"));
    let check = std::process::Command::new("sh")
        .arg("-n")
        .arg(env.auth.join("setup-container.sh"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Nothing the script holds is a secret.
    for secret in SECRETS {
        assert!(!script.contains(secret));
    }
}

/// Two setups racing to create the same auth dir must both end with a complete one.
#[test]
fn concurrent_setups_into_a_new_auth_dir_all_succeed() {
    let env = TestEnv::full();
    env.concurrent_setups(4, &["-a", "claude,gemini"]);
    assert!(env.auth.join("manifest.json").is_file());
    assert_eq!(env.hidden_siblings(), Vec::<String>::new());
}

#[test]
fn container_paths_docker_cannot_carry_are_usage_errors() {
    let env = TestEnv::full();
    for option in ["--mount-point", "--container-home"] {
        for value in ["/tmp/a b", "/tmp/a:b", "/tmp/a,b"] {
            let out = env.auth(&["setup", option, value]);
            assert_eq!(out.status.code(), Some(2), "{option} {value:?}");
            let err = stderr(&out);
            assert!(
                err.starts_with(&format!(
                    "error: invalid {option} `{value}`: must not contain"
                )),
                "{err}"
            );
            assert!(!env.auth.exists());
        }
    }
}

#[test]
fn all_next_to_an_unknown_agent_still_names_it() {
    let env = TestEnv::full();
    for args in [
        &["setup", "--agents", "all,bogus"][..],
        &["setup", "-a", "all", "-a", "bogus"],
    ] {
        let out = env.auth(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).starts_with("error: Unknown agent `bogus`"),
            "{}",
            stderr(&out)
        );
        assert!(!env.auth.exists());
    }
}

#[test]
fn mode_is_live_or_bind() {
    let env = TestEnv::full();
    let out = env.auth(&["setup", "--mode", "copy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("[possible values: live, bind]"));
    assert!(!env.auth.exists());
}

#[test]
fn live_mode_writes_a_live_directory_with_the_host_logins() {
    let env = TestEnv::full();
    let out = env.auth(&["setup", "--mode", "live"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["mode"], "live");
    let live = env.auth.join("live");
    assert_eq!(mode(&live), 0o700);
    for (agent, host, src) in CREDENTIALS {
        assert_eq!(mode(&live.join(agent)), 0o700, "{agent}");
        assert_eq!(mode(&live.join(src)), 0o600, "{src}");
        assert_eq!(
            std::fs::read(live.join(src)).unwrap(),
            std::fs::read(env.home.join(host)).unwrap(),
            "{src}"
        );
    }
    // Only credentials are live.
    let mut names: Vec<_> = std::fs::read_dir(live.join("claude"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["credentials.json"]);

    let out = env.auth(&["setup", "--mode", "bind"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!live.exists(), "bind mode has no live directory");
}

/// Containers keep `A/live` mounted across a re-setup: it must stay the same
/// directory (inode), and a login a container refreshed must not be rolled
/// back to the host's older one. Anything else is replaced by the host's.
#[test]
fn re_setup_keeps_the_live_directory_and_fresher_logins() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let live = env.auth.join("live");
    let (live_ino, claude_ino) = (inode(&live), inode(&live.join("claude")));

    // As containers left them: claude refreshed (later than the host's 3h,
    // within Claude's 8-hour token lifetime),
    // codex half-written, gemini older than the host's, opencode with an
    // implausible expiry two years ahead, qwen a FIFO.
    let refreshed = claude_credential("CONTAINER", ms_from_now(8 * 3600));
    std::fs::write(live.join("claude/credentials.json"), &refreshed).unwrap();
    std::fs::write(live.join("codex/auth.json"), "{\"tokens\":").unwrap();
    std::fs::write(
        live.join("gemini/oauth_creds.json"),
        format!(
            r#"{{"access_token":"a","refresh_token":"r","expiry_date":{}}}"#,
            ms_from_now(-3600)
        ),
    )
    .unwrap();
    std::fs::write(
        live.join("opencode/auth.json"),
        format!(
            r#"{{"anthropic":{{"type":"oauth","refresh":"r","access":"a","expires":{}}}}}"#,
            ms_from_now(2 * 365 * 86400)
        ),
    )
    .unwrap();
    std::fs::remove_file(live.join("qwen/oauth_creds.json")).unwrap();
    mkfifo(&live.join("qwen/oauth_creds.json"));

    let out = env.auth(&["setup", "--mode", "live"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(inode(&live), live_ino, "live/ is a new directory");
    assert_eq!(inode(&live.join("claude")), claude_ino);
    assert_eq!(
        std::fs::read_to_string(live.join("claude/credentials.json")).unwrap(),
        refreshed
    );
    assert!(
        stderr(&out).contains(&format!(
            "kept `{}`: it holds a fresher login than the host's",
            live.join("claude/credentials.json").display()
        )),
        "{}",
        stderr(&out)
    );
    for (agent, host, src) in &CREDENTIALS[1..] {
        assert_eq!(
            std::fs::read(live.join(src)).unwrap(),
            std::fs::read(env.home.join(host)).unwrap(),
            "{agent}: not replaced by the host's login"
        );
        assert_eq!(mode(&live.join(src)), 0o600, "{src}");
    }
}

#[test]
fn a_failed_re_setup_leaves_the_live_directory_as_it_was() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    std::fs::write(
        env.auth.join("live/claude/credentials.json"),
        claude_credential("CONTAINER", ms_from_now(8 * 3600)),
    )
    .unwrap();
    let before = tree_state(&env.auth);
    env.write(".codex/auth.json", "{\"tokens\": ", 0o600);
    let out = env.auth(&["setup", "--mode", "live"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(before, tree_state(&env.auth));
}

/// A browser extension, a PWA, a JS project: a `manifest.json` of another
/// kind, or files caw never writes.
#[test]
fn a_directory_with_a_plain_manifest_json_is_never_replaced() {
    let env = TestEnv::full();
    write_browser_extension(&env.auth);
    let before = tree_state(&env.auth);
    for args in [&["setup"][..], &["setup", "--mode", "live"]] {
        let out = env.auth(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(": `background.js` is not something caw writes (and 1 more entries)"),
            "{err}"
        );
        assert_eq!(before, tree_state(&env.auth), "{args:?}");
    }
    std::fs::remove_file(env.auth.join("background.js")).unwrap();
    std::fs::remove_dir_all(env.auth.join("icons")).unwrap();
    let out = env.auth(&["setup"]);
    assert_eq!(out.status.code(), Some(1));
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
}

#[test]
fn a_node_project_is_never_replaced() {
    let env = TestEnv::full();
    std::fs::create_dir_all(env.auth.join("node_modules/left-pad")).unwrap();
    let before = tree_state(&env.auth);
    let out = env.auth(&["setup"]);
    assert_eq!(out.status.code(), Some(1));
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
    assert_eq!(before, tree_state(&env.auth));
}

/// A killed setup leaves `.auth.new-*` (and `.auth.old-*`) beside the auth
/// dir with copies of the credentials; the next setup removes them, but
/// never one holding anything caw does not write.
#[test]
fn setup_removes_temp_dirs_killed_setups_left() {
    let env = TestEnv::full();
    env.setup();
    let parent = env.dir.path();
    let new = parent.join(".auth.new-Ab12Cd");
    std::fs::create_dir_all(new.join("claude")).unwrap();
    std::fs::copy(
        env.home.join(".claude/.credentials.json"),
        new.join("claude/credentials.json"),
    )
    .unwrap();
    let old = parent.join(".auth.old-Ef34Gh");
    std::fs::create_dir_all(old.join("auth")).unwrap();
    std::fs::copy(
        env.auth.join("manifest.json"),
        old.join("auth/manifest.json"),
    )
    .unwrap();
    let foreign = parent.join(".auth.new-Ij56Kl");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("thesis.tex"), "mine").unwrap();

    let out = env.setup();
    let err = stderr(&out);
    assert!(
        !new.exists() && !old.exists(),
        "stale temp dirs left: {err}"
    );
    assert!(
        err.contains(&format!("removed `{}`", new.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("thesis.tex")).unwrap(),
        "mine"
    );
    assert!(
        err.contains(&format!(
            "warning: leaving `{}` (left by an interrupted setup?): `thesis.tex` is not something caw writes",
            foreign.display()
        )),
        "{err}"
    );
}

/// Setups of one auth dir take turns: concurrent live re-setups all
/// succeed, and the live directory running containers mount is never lost.
#[test]
fn concurrent_live_re_setups_keep_the_live_directory() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let live_ino = inode(&env.auth.join("live"));
    let auth_ino = inode(&env.auth);
    env.concurrent_setups(6, &["--mode", "live"]);
    assert_eq!(inode(&env.auth.join("live")), live_ino);
    assert_eq!(inode(&env.auth), auth_ino);
    assert_eq!(env.hidden_siblings(), Vec::<String>::new());
}

#[test]
fn trust_marks_each_directory_trusted_for_claude_and_codex() {
    let env = TestEnv::full();
    let out = env.auth(&["setup", "--trust", "/workspace", "--trust", "/srv/app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let claude: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("claude/config.json")).unwrap())
            .unwrap();
    let codex: toml_edit::DocumentMut = std::fs::read_to_string(env.auth.join("codex/config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for dir in ["/home/playground", "/workspace", "/srv/app"] {
        assert_eq!(
            claude["projects"][dir]["hasTrustDialogAccepted"], true,
            "{dir}"
        );
        assert_eq!(
            codex["projects"][dir]["trust_level"].as_str(),
            Some("trusted"),
            "{dir}"
        );
    }
    // A relative directory is a usage error naming the option.
    let out = env.auth(&["setup", "--trust", "workspace"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--trust"), "{}", stderr(&out));
}

/// `CLAUDE_CONFIG_DIR` moves both of Claude's files; setup follows it and
/// records the directory, and every host path caw uses is built from it.
#[test]
fn claude_config_dir_is_followed_and_recorded() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let cfg = env.dir.path().join("claude-cfg");
    env.move_claude_to(&cfg);
    let run = |args: &[&str]| {
        let out = env
            .caw()
            .env("CLAUDE_CONFIG_DIR", &cfg)
            .arg("auth")
            .args(args)
            .arg("--auth-dir")
            .arg(&env.auth)
            .output()
            .unwrap();
        assert_no_secrets(&out);
        out
    };
    let out = run(&["setup", "--agents", "claude", "--mode", "bind"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["config_dirs"]["claude"], cfg.display().to_string());
    assert_eq!(
        std::fs::read(env.auth.join("claude/credentials.json")).unwrap(),
        std::fs::read(cfg.join(".credentials.json")).unwrap()
    );
    // The manifest, not the environment, decides from now on.
    let out = env.auth(&["docker-flags"]);
    let flag = format!(
        "-v {}:/tmp/caw_auth/claude/credentials.json:rw",
        cfg.join(".credentials.json").display()
    );
    assert!(stdout(&out).contains(&flag), "{}", stdout(&out));
    let out = env.auth(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[0]["path"],
        cfg.join(".credentials.json").display().to_string()
    );
    assert!(rows[0]["token_expiry"]
        .as_str()
        .unwrap()
        .starts_with("valid"));
    // Without the directory's files, Claude is not set up, and says where it looked.
    std::fs::remove_file(cfg.join(".claude.json")).unwrap();
    let out = run(&["setup", "--agents", "claude"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("claude-cfg/.claude.json or"),
        "{}",
        stderr(&out)
    );
}

/// Claude reads `~/.claude/.config.json` when `~/.claude.json` is missing.
#[test]
fn claude_dot_config_json_stands_in_for_claude_json() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    std::fs::rename(
        env.home.join(".claude.json"),
        env.home.join(".claude/.config.json"),
    )
    .unwrap();
    let out = env.auth(&["setup", "--agents", "claude"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("manifest.json")).unwrap()).unwrap();
    let config = &manifest["agents"]["claude"]["files"][1];
    assert_eq!(config["host_original"], ".claude/.config.json");
    assert_eq!(config["container_target"], ".claude.json");
    assert_eq!(config["mode"], "0600");
    let cleaned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.auth.join("claude/config.json")).unwrap())
            .unwrap();
    assert_eq!(cleaned["oauthAccount"]["emailAddress"], "dev@example.com");
    assert!(!cleaned.to_string().contains("/home/dev/src"));
}
