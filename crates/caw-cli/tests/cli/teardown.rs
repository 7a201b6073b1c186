//! `caw auth teardown`.

use crate::util::*;

#[test]
fn removes_the_auth_dir_and_leaves_the_home_alone() {
    let env = TestEnv::full();
    env.setup();
    let home = tree_state(&env.home);
    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.auth.exists());
    assert_eq!(home, tree_state(&env.home));
    assert!(stderr(&out).contains("removed"));
}

#[test]
fn missing_auth_dir_is_success() {
    let env = TestEnv::empty();
    let out = env.auth(&["teardown"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn dry_run_removes_nothing() {
    let env = TestEnv::full();
    env.setup();
    let before = tree_state(&env.auth);
    for flag in ["--dry-run", "-n"] {
        let out = env.auth(&["teardown", flag]);
        assert!(out.status.success());
        assert!(stderr(&out).contains("would remove"), "{}", stderr(&out));
    }
    assert_eq!(before, tree_state(&env.auth));
}

#[test]
fn never_removes_a_directory_that_is_not_an_auth_dir() {
    let env = TestEnv::empty();
    std::fs::create_dir(&env.auth).unwrap();
    std::fs::write(env.auth.join("notes.txt"), "mine").unwrap();
    for args in [
        &["teardown"][..],
        &["teardown", "--force"],
        &["teardown", "-f", "-n"],
    ] {
        let out = env.auth(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("is not a caw auth dir"));
    }
    assert!(env.auth.join("notes.txt").exists());
}

/// caw's old design replaced host files by symlinks into the auth dir.
#[test]
fn legacy_symlinks_are_refused_then_forced() {
    let env = TestEnv::full();
    env.setup();
    for rel in [".claude/.credentials.json", ".codex/auth.json"] {
        let host = env.home.join(rel);
        std::fs::remove_file(&host).unwrap();
        let src = if rel.starts_with(".claude") {
            "claude/credentials.json"
        } else {
            "codex/auth.json"
        };
        std::os::unix::fs::symlink(env.auth.join(src), &host).unwrap();
    }
    let out = env.auth(&["teardown"]);
    assert_eq!(out.status.code(), Some(1));
    env.settings()
        .bind(|| insta::assert_snapshot!(stderr(&out)));
    assert!(env.auth.exists());

    let out = env.auth(&["teardown", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.auth.exists());
    // The links are the user's to mend; teardown never touches host files.
    assert!(std::fs::symlink_metadata(env.home.join(".codex/auth.json"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A browser extension's directory: its `manifest.json` is not caw's.
#[test]
fn never_removes_a_directory_with_a_plain_manifest_json() {
    let env = TestEnv::empty();
    write_browser_extension(&env.auth);
    let before = tree_state(&env.auth);
    for args in [
        &["teardown"][..],
        &["teardown", "--force"],
        &["teardown", "-f", "-n"],
    ] {
        let out = env.auth(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("`background.js` is not something caw writes"),
            "{}",
            stderr(&out)
        );
        assert_eq!(before, tree_state(&env.auth), "{args:?}");
    }
    std::fs::remove_file(env.auth.join("background.js")).unwrap();
    std::fs::remove_dir_all(env.auth.join("icons")).unwrap();
    let out = env.auth(&["teardown", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("its `manifest.json` is not a caw manifest"),
        "{}",
        stderr(&out)
    );
    assert!(env.auth.join("manifest.json").exists());
}

#[test]
fn never_removes_an_auth_dir_someone_added_files_to() {
    let env = TestEnv::full();
    env.setup();
    std::fs::write(env.auth.join("notes.md"), "mine").unwrap();
    let out = env.auth(&["teardown", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`notes.md` is not something caw writes"));
    assert!(env.auth.join("notes.md").exists());
}

#[test]
fn removes_a_live_mode_auth_dir_and_an_empty_one() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.auth.exists());
    std::fs::create_dir(&env.auth).unwrap();
    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.auth.exists());
}

/// Only the registry's host paths are looked at: a manifest that names
/// another host file does not make teardown inspect (or name) it, and the
/// registry's own path is checked whatever the manifest says.
#[test]
fn the_symlink_check_looks_only_at_registry_paths() {
    let env = TestEnv::full();
    env.setup();
    edit_manifest(&env.auth, |m| {
        m["agents"]["claude"]["files"][1]["host_original"] = ".bashrc".into();
    });
    std::os::unix::fs::symlink(
        env.auth.join("claude/config.json"),
        env.home.join(".bashrc"),
    )
    .unwrap();
    let claude_json = env.home.join(".claude.json");
    std::fs::remove_file(&claude_json).unwrap();
    std::os::unix::fs::symlink(env.auth.join("claude/config.json"), &claude_json).unwrap();
    let out = env.auth(&["teardown"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{} ->", claude_json.display())),
        "{err}"
    );
    assert!(!err.contains(".bashrc"), "{err}");
}

/// Issue 18, item 3: with the host sync down, a container refreshed into
/// `live/` and teardown deleted that login, leaving the host the older one.
#[test]
fn a_newer_login_in_live_is_carried_to_the_host_first() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let host = env.home.join(".claude/.credentials.json");
    let newer = claude_credential("CONTAINER", ms_from_now(8 * 3600));
    std::fs::write(env.auth.join("live/claude/credentials.json"), &newer).unwrap();
    // An older gemini login stays where it is.
    let gemini = std::fs::read(env.home.join(".gemini/oauth_creds.json")).unwrap();
    std::fs::write(
        env.auth.join("live/gemini/oauth_creds.json"),
        format!(
            r#"{{"access_token":"a","refresh_token":"r","expiry_date":{}}}"#,
            ms_from_now(-3600)
        ),
    )
    .unwrap();

    let out = env.auth(&["teardown", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "would carry the newer claude login in `{}` to `{}`",
            env.auth.join("live/claude/credentials.json").display(),
            host.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_ne!(std::fs::read_to_string(&host).unwrap(), newer);

    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("carried the newer claude login in"),
        "{}",
        stderr(&out)
    );
    assert!(!env.auth.exists());
    assert_eq!(std::fs::read_to_string(&host).unwrap(), newer);
    assert_eq!(mode(&host), 0o600);
    assert_eq!(
        std::fs::read(env.home.join(".gemini/oauth_creds.json")).unwrap(),
        gemini
    );
}

/// A container's guard holds `flock(LOCK_SH)` on `live/` (here, this test
/// process does): teardown refuses, names the holder and says how to go
/// on; `--force` removes the auth dir anyway.
#[test]
fn refuses_while_a_container_is_attached_unless_forced() {
    use nix::fcntl::{Flock, FlockArg};
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "live"]).status.success());
    let live = std::fs::File::open(env.auth.join("live")).unwrap();
    let guard = Flock::lock(live, FlockArg::LockShared).unwrap();
    for args in [&["teardown"][..], &["teardown", "--dry-run"]] {
        let out = env.auth(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        let first = err.lines().next().unwrap();
        // `pid N`, or `container `…` (pid N)` where the tests run in one.
        let pid = format!("pid {}", std::process::id());
        let prefix = format!(
            "error: refusing to remove `{}`: 1 container(s) are attached to it: ",
            env.auth.display()
        );
        assert!(
            first.starts_with(&prefix)
                && (first.ends_with(&pid) || first.ends_with(&format!("{pid})"))),
            "{err}"
        );
        assert!(
            err.contains("hint: stop them first")
                && err.contains("or pass `--force` to remove it anyway"),
            "{err}"
        );
        assert!(env.auth.exists());
    }
    let out = env.auth(&["teardown", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 container(s) are attached"),
        "{}",
        stderr(&out)
    );
    assert!(!env.auth.exists());
    drop(guard);
}
