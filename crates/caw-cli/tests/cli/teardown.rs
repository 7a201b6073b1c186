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
