//! The logins reach the agent, and refreshes travel both ways.

use std::time::Duration;

use crate::container::{poll, text, Container};
use crate::image::{GID, GROUP, HOME, UID, USER};
use crate::prereqs::say;
use crate::session::{agent_owned, Cred, Guard, Session, CREDS};
use crate::util::tree_state;

crate::for_both_guards!(
    logins_land_in_the_agent_home,
    container_refresh_reaches_the_host,
    host_refresh_reaches_the_container,
    a_deleted_home_copy_is_restored,
    a_host_rename_is_reported,
    half_written_refresh_stays_in_the_container,
    older_expiry_stays_in_the_container,
);

/// Extra time to observe a sync through `docker exec`, which takes a
/// noticeable fraction of a second by itself.
const EXEC_SLACK: Duration = Duration::from_millis(300);

fn logins_land_in_the_agent_home(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let home_before = tree_state(&session.env.home);
    let container = session.serve("land");
    assert_files_in_place(&session, &container);
    // The agent's directories belong to it too.
    let dirs = [".claude", ".codex", ".gemini"].map(|d| format!("{HOME}/{d}"));
    for line in container.stat(&dirs.each_ref().map(String::as_str)) {
        let owner = line.split_once(' ').unwrap().1;
        assert_eq!(owner, format!("{UID} {GID} {USER} {GROUP}"), "{dirs:?}");
    }
    // The entrypoint dropped to the agent user after setup.
    let dropped = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        container
            .logs()
            .contains(&format!("caw-e2e: agent running as {USER}"))
            .then_some(())
    });
    assert!(dropped.is_some(), "{}", container.logs());
    drop(container);
    assert_eq!(
        home_before,
        tree_state(&session.env.home),
        "starting the container changed the host home"
    );
    session.teardown();
}

/// Every manifest file is at its agent's real path, readable by the agent
/// user, with the manifest mode, owned by the agent user; credentials hold
/// the host's bytes, configs the staged (cleaned) ones.
fn assert_files_in_place(session: &Session, container: &Container) {
    let files = session.manifest();
    let srcs: Vec<&str> = files.iter().map(|f| f.src.as_str()).collect();
    for expected in [
        "claude/credentials.json",
        "claude/config.json",
        "codex/auth.json",
        "codex/config.toml",
        "gemini/oauth_creds.json",
        "gemini/settings.json",
        "qwen/oauth_creds.json",
    ] {
        assert!(srcs.contains(&expected), "{expected} not in {srcs:?}");
    }
    let targets: Vec<String> = files
        .iter()
        .map(|f| format!("{HOME}/{}", f.container_target))
        .collect();
    let stats = container.stat(&targets.iter().map(String::as_str).collect::<Vec<_>>());
    for ((file, target), stat) in files.iter().zip(&targets).zip(stats) {
        let expected = if file.bind {
            assert_eq!(file.mode, "0600", "{file:?}");
            std::fs::read(session.host(&file.host_original)).unwrap()
        } else {
            // Configs with account data (the e-mail, organisation, user id) are private.
            let private = matches!(
                file.src.as_str(),
                "claude/config.json" | "gemini/google_accounts.json"
            );
            assert_eq!(file.mode, if private { "0600" } else { "0644" }, "{file:?}");
            std::fs::read(session.env.auth.join(&file.src)).unwrap()
        };
        let seen = container
            .read(target)
            .unwrap_or_else(|| panic!("{USER} cannot read `{target}`"));
        assert!(seen == expected, "`{target}` differs:\n{}", text(&seen));
        assert_eq!(stat, agent_owned(&file.mode), "`{target}`");
    }
    // The real paths, spelled out once.
    for path in [
        ".claude/.credentials.json",
        ".claude.json",
        ".codex/auth.json",
        ".codex/config.toml",
        ".gemini/oauth_creds.json",
    ] {
        let target = format!("{HOME}/{path}");
        assert!(targets.contains(&target), "{target} not in {targets:?}");
    }
}

fn container_refresh_reaches_the_host(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let container = session.serve("to-host");
    let mut took = Vec::new();
    for (i, cred) in CREDS.iter().enumerate().filter(|(_, c)| c.synced_by(guard)) {
        let before = session.host_identity(cred);
        let refreshed = cred.refreshed("CONTAINER-REFRESH", 72 + i as i64);
        cred.write_in_container(&container, &refreshed);
        let (_, elapsed) = poll(guard.budget(), Duration::from_millis(10), || {
            (std::fs::read(session.host(cred.path)).ok()? == refreshed).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{} refresh in the container did not reach the host within {:?}; host has:\n{}",
                cred.agent,
                guard.budget(),
                text(&std::fs::read(session.host(cred.path)).unwrap())
            )
        });
        took.push(format!("{} {}ms", cred.agent, elapsed.as_millis()));
        assert_eq!(
            session.host_identity(cred).kept(session.mode),
            before.kept(session.mode),
            "the host {} file lost its owner or mode (or, in bind mode, its inode)",
            cred.agent
        );
        assert_eq!(session.read_as_host_user(cred), refreshed);
        // The agent's own copy is still the refresh it wrote, still private.
        assert_eq!(container.read(&cred.in_container()), Some(refreshed));
        assert_eq!(
            container.stat(&[&cred.in_container()]),
            [agent_owned("600")]
        );
    }
    say(&format!("{test}: container -> host: {}", took.join(", ")));
    let logs = container.logs();
    assert!(
        logs.contains("[credential-guard] synced"),
        "the guard logged no sync:\n{logs}"
    );
    session.finish(container);
}

fn host_refresh_reaches_the_container(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let container = session.serve("to-container");
    let mut took = Vec::new();
    for (i, cred) in CREDS.iter().enumerate().filter(|(_, c)| c.synced_by(guard)) {
        let refreshed = cred.refreshed("HOST-REFRESH", 96 + i as i64);
        // As the host's agent writes it: Claude Code and Qwen Code by rename.
        session.refresh_on_host(cred, &refreshed);
        let before = session.host_identity(cred);
        let target = cred.in_container();
        let (_, elapsed) = poll(
            guard.budget() + EXEC_SLACK,
            Duration::from_millis(10),
            || (container.read(&target)? == refreshed).then_some(()),
        )
        .unwrap_or_else(|| {
            panic!(
                "{} refresh on the host did not reach the container within {:?}; it has:\n{}",
                cred.agent,
                guard.budget() + EXEC_SLACK,
                text(&container.read(&target).unwrap_or_default())
            )
        });
        took.push(format!("{} {}ms", cred.agent, elapsed.as_millis()));
        assert_eq!(container.stat(&[&target]), [agent_owned("600")]);
        // Nothing bounced back onto the host file.
        assert_eq!(session.host_identity(cred), before);
        assert_eq!(std::fs::read(session.host(cred.path)).unwrap(), refreshed);
    }
    say(&format!("{test}: host -> container: {}", took.join(", ")));
    session.finish(container);
}

fn a_deleted_home_copy_is_restored(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let container = session.serve("restore");
    let cred = &CREDS[1];
    let target = cred.in_container();
    container.sh_ok(false, "rm -f \"$1\"", &[&target], None);
    let host = std::fs::read(session.host(cred.path)).unwrap();
    let restored = poll(
        guard.budget() + EXEC_SLACK,
        Duration::from_millis(10),
        || (container.read(&target)? == host).then_some(()),
    );
    assert!(
        restored.is_some(),
        "the deleted {target} was not restored within {:?}",
        guard.budget() + EXEC_SLACK
    );
    assert_eq!(container.stat(&[&target]), [agent_owned("600")]);
    assert_eq!(std::fs::read(session.host(cred.path)).unwrap(), host);
    // And the guard still carries refreshes afterwards.
    refresh_reaches_host(&session, &container, cred, "AFTER-RESTORE", 72);
    session.finish(container);
}

/// A host agent that rewrites its credential by rename leaves the container
/// with the old inode mounted: nothing can sync it any more, so the guard
/// must say so (and restarting the container is the way out).
fn a_host_rename_is_reported(guard: Guard, test: &str) {
    let Some(session) = Session::bind(guard, test) else {
        return;
    };
    let container = session.serve("host-rename");
    let cred = &CREDS[0];
    let path = session.host(cred.path);
    let tmp = path.with_extension("json.tmp");
    std::fs::copy(&path, &tmp).unwrap();
    std::fs::write(&tmp, cred.refreshed("HOST-RENAME", 72)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let warned = poll(
        guard.budget() + EXEC_SLACK,
        Duration::from_millis(50),
        || {
            container
                .logs()
                .contains("restart the container")
                .then_some(())
        },
    );
    assert!(
        warned.is_some(),
        "no warning about the replaced host file within {:?}:\n{}",
        guard.budget() + EXEC_SLACK,
        container.logs()
    );
    session.finish(container);
}

/// Refreshes that must be refused: after the guard's budget (and a margin)
/// the host files are unchanged; then good refreshes still get through.
fn assert_refused(session: &Session, container: &Container, bad: &[(Cred, Vec<u8>)], what: &str) {
    let before: Vec<_> = bad
        .iter()
        .map(|(cred, _)| {
            let bytes = std::fs::read(session.host(cred.path)).unwrap();
            (bytes, session.host_identity(cred).kept(session.mode))
        })
        .collect();
    for (cred, bytes) in bad {
        cred.write_in_container(container, bytes);
    }
    std::thread::sleep(session.guard.budget() + session.guard.budget() / 2);
    for ((cred, _), (bytes, identity)) in bad.iter().zip(before) {
        let now = std::fs::read(session.host(cred.path)).unwrap();
        assert!(
            now == bytes,
            "{what} for {} in the container reached the host:\n{}",
            cred.agent,
            text(&now)
        );
        assert_eq!(session.host_identity(cred).kept(session.mode), identity);
    }
    for (cred, _) in bad {
        refresh_reaches_host(session, container, cred, "GOOD-AFTER-BAD", 72);
    }
}

fn refresh_reaches_host(
    session: &Session,
    container: &Container,
    cred: &Cred,
    tag: &str,
    hours: i64,
) {
    let good = cred.refreshed(tag, hours);
    cred.write_in_container(container, &good);
    let synced = poll(session.guard.budget(), Duration::from_millis(10), || {
        (std::fs::read(session.host(cred.path)).ok()? == good).then_some(())
    });
    assert!(
        synced.is_some(),
        "a valid {} refresh did not reach the host within {:?}",
        cred.agent,
        session.guard.budget()
    );
}

fn half_written_refresh_stays_in_the_container(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let container = session.serve("half");
    // codex and gemini write in place, so a reader can catch the file
    // mid-write; any writer can leave a cut-off file when it dies.
    let bad: Vec<(Cred, Vec<u8>)> = CREDS
        .iter()
        .filter(|c| c.synced_by(guard))
        .map(|c| {
            let full = c.refreshed("HALF-WRITTEN", 72);
            (*c, full[..full.len() / 2].to_vec())
        })
        .collect();
    assert_refused(&session, &container, &bad, "a half-written file");
    session.finish(container);
}

fn older_expiry_stays_in_the_container(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let container = session.serve("older");
    // The logins expire in 17 minutes to two days; these expired an hour ago.
    let bad: Vec<(Cred, Vec<u8>)> = CREDS
        .iter()
        .filter(|c| c.synced_by(guard))
        .map(|c| (*c, c.refreshed("OLDER", -1)))
        .collect();
    assert_refused(&session, &container, &bad, "an older token");
    session.finish(container);
}

/// `--format mount` and `--format json` start the same container as the
/// default form.
#[test]
fn mount_and_json_flag_forms_work() {
    let test = concat!(module_path!(), "::mount_and_json_flag_forms_work");
    let Some(session) = Session::new(Guard::Shell, test) else {
        return;
    };
    for format in ["mount", "json"] {
        let container = session.serve_with(format, &session.flags(format));
        assert_files_in_place(&session, &container);
        drop(container);
    }
    session.teardown();
}
