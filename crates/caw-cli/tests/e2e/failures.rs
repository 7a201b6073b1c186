//! Wrong wiring fails loudly and leaves the host alone.

use crate::container::{text, Container};
use crate::image::MOUNT_POINT;
use crate::session::{Guard, Session};
use crate::util::{ms_from_now, stderr, stdout, tree_state, TestEnv};

crate::for_both_guards!(
    missing_credential_mounts_stop_setup,
    a_guard_killed_by_root_in_the_container_comes_back,
);

/// The guard's process under its keeper (the PID in the pid file), by root
/// in the container: the first child of the keeper that is not a keeper.
const GUARD_PID: &str = "k=$(cat /tmp/caw_credential_guard.pid) || exit 1
for p in $(cat /proc/$k/task/$k/children); do
    tr '\\0' ' ' < /proc/$p/cmdline | grep -q -e guard && \\
        ! tr '\\0' ' ' < /proc/$p/cmdline | grep -q -e --keep && { echo $p; exit 0; }
done
exit 1";

/// Root in the container kills the guard (`kill -9`): its keeper starts it
/// again, and a refresh in the container still reaches the host.
fn a_guard_killed_by_root_in_the_container_comes_back(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let c = session.serve("a");
    let first = c.sh_ok(true, GUARD_PID, &[], None).trim().to_string();
    c.sh_ok(true, "kill -9 \"$1\"", &[&first], None);
    let deadline = std::time::Instant::now() + guard.budget() * 3;
    loop {
        let out = c.sh(true, GUARD_PID, &[], None);
        let now = text(&out.stdout).trim().to_string();
        if out.status.success() && !now.is_empty() && now != first {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guard was not started again:\n{}",
            c.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let claude = crate::session::CREDS[0];
    let fresh = claude.refreshed("AFTER-KILL", 95);
    claude.write_in_container(&c, &fresh);
    let host = session.host(claude.path);
    let deadline = std::time::Instant::now() + guard.budget() * 3;
    while std::fs::read(&host).unwrap_or_default() != fresh {
        assert!(
            std::time::Instant::now() < deadline,
            "a refresh after the restart did not reach the host:\n{}",
            c.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let logs = c.logs();
    assert!(logs.contains(&format!("(pid {first})")), "{logs}");
    session.finish(c);
}

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
