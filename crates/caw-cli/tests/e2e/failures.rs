//! Wrong wiring fails loudly and leaves the host alone.

use crate::container::{text, Container};
use crate::image::MOUNT_POINT;
use crate::session::{Guard, Session};
use crate::util::{ms_from_now, stderr, stdout, tree_state, TestEnv};

crate::for_both_guards!(missing_credential_mounts_stop_setup);

/// Only the auth dir is mounted (`-v A:/tmp/caw_auth:ro`), not the
/// credential channel: the container would use the auth dir's snapshots,
/// which never reach the host, so setup must refuse.
fn missing_credential_mounts_stop_setup(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let home = tree_state(&session.env.home);
    let flags = vec![
        "-v".to_string(),
        format!("{}:{MOUNT_POINT}:ro", session.env.auth.display()),
    ];
    assert_eq!(
        flags[..],
        session.flags("v")[..2],
        "the auth dir's own mount"
    );
    let out = Container::once("no-creds", session.image, &flags);
    let output = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "setup-container.sh succeeded without the credential mounts:\n{output}"
    );
    // Live mode (the default): `/tmp/caw_auth/live` is the credential mount.
    assert!(
        output.contains("live credentials are missing") && output.contains("caw auth docker-flags"),
        "no hint about the missing live mount and `caw auth docker-flags`:\n{output}"
    );
    assert_eq!(home, tree_state(&session.env.home));
    session.teardown();
}

/// Bind mode: docker would create a root-owned directory where the
/// credential was: `docker-flags` refuses, so `docker run $(caw auth
/// docker-flags)` never gets a mount for it. Needs no Docker engine.
#[test]
fn a_deleted_host_credential_is_refused_before_docker_runs() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    env.codex(jiff::Timestamp::now().as_second() + 3600);
    env.gemini(ms_from_now(3600));
    let out = env.auth(&["setup", "--mode", "bind"]);
    assert!(out.status.success(), "setup: {}", stderr(&out));
    let gone = env.home.join(".codex/auth.json");
    std::fs::remove_file(&gone).unwrap();
    let home = tree_state(&env.home);
    for format in ["v", "json", "mount"] {
        let out = env.auth(&["docker-flags", "--format", format]);
        assert_eq!(out.status.code(), Some(1), "--format {format}");
        assert!(
            stdout(&out).is_empty(),
            "--format {format} printed flags: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains(&gone.display().to_string()),
            "the error does not name `{}`: {}",
            gone.display(),
            stderr(&out)
        );
    }
    assert!(
        !gone.exists(),
        "something was created at `{}`",
        gone.display()
    );
    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "teardown: {}", stderr(&out));
    assert!(!env.auth.exists());
    assert_eq!(
        home,
        tree_state(&env.home),
        "teardown changed the host home"
    );
}
