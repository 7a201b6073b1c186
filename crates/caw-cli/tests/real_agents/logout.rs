//! `claude auth logout` / `codex logout` in a container: the CLI revokes the
//! shared refresh token on the server and deletes its file. The revocation
//! cannot be undone by caw (the login is dead everywhere), but the host's
//! file must not be deleted through the container.

use std::time::Duration;

use crate::session::{poll, text, Session, CLAUDE_REFRESH, CODEX_REFRESH, HOME};

#[test]
fn logout_in_container_revokes_the_shared_login_and_keeps_the_host_file() {
    let Some(s) = Session::new(module_path!()) else {
        return;
    };
    s.login_claude(3 * 3600);
    s.login_codex(5 * 86400, false);
    s.setup(&[]);
    let container = s.start_container("logout");

    for (program, args, host_path, refresh) in [
        (
            "claude",
            &["auth", "logout"][..],
            ".claude/.credentials.json",
            CLAUDE_REFRESH,
        ),
        ("codex", &["logout"][..], ".codex/auth.json", CODEX_REFRESH),
    ] {
        let before = std::fs::read(s.host_file(host_path)).unwrap();
        let out = container.run(program, args);
        assert!(
            out.status.success(),
            "{program} logout: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let revoked: Vec<_> = s
            .net
            .requests()
            .into_iter()
            .filter_map(|r| r.revoked)
            .collect();
        assert!(
            revoked.iter().any(|t| t == refresh),
            "{program} logout did not revoke the shared refresh token: {revoked:?}"
        );
        // The guard must not pass the deletion on to the host.
        std::thread::sleep(Duration::from_secs(2));
        let after = std::fs::read(s.host_file(host_path)).unwrap_or_else(|e| {
            panic!("{program} logout in the container removed the host file: {e}")
        });
        assert_eq!(after, before, "{program} logout changed the host file");
        // Today the guard restores the deleted home copy from the host file:
        // the container looks logged in with a revoked login (issue 10, item 7).
        let home = format!("{HOME}/{host_path}");
        poll(Duration::from_secs(10), || container.read(&home))
            .unwrap_or_else(|| panic!("the home copy {home} was not restored"));
    }
    s.net.assert_loopback_only();
}
