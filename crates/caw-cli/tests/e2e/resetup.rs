//! Re-setup and teardown while containers run (issue 18, item 1 and 3).
//!
//! A re-setup used to rename a new auth dir over the old one: a running
//! container then saw an empty `/tmp/caw_auth` (a deleted directory), lost
//! its `live/` mount, and stopped syncing both ways. Now the auth dir, its
//! `live/` and each agent's directory stay the same inodes under the
//! containers' mounts; these tests show it with both guards and both modes,
//! including four setups at once, and that teardown refuses while a guard is
//! attached and carries a newer login from `live/` to the host.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use caw_auth::AuthMode;

use crate::container::{docker, poll, text, Container};
use crate::image::{HOME, MOUNT_POINT, USER};
use crate::session::{Cred, Guard, Session, CREDS};
use crate::util::stderr;

crate::for_both_guards!(
    a_live_re_setup_keeps_running_containers_syncing,
    a_bind_re_setup_keeps_running_containers_syncing,
    four_live_setups_at_once_while_containers_run,
    four_bind_setups_at_once_while_containers_run,
);

fn claude() -> Cred {
    *CREDS.iter().find(|c| c.agent == "claude").unwrap()
}

fn a_live_re_setup_keeps_running_containers_syncing(guard: Guard, test: &str) {
    if let Some(session) = Session::new(guard, test) {
        re_setup_while_running(session, 1);
    }
}

fn a_bind_re_setup_keeps_running_containers_syncing(guard: Guard, test: &str) {
    if let Some(session) = Session::bind(guard, test) {
        re_setup_while_running(session, 1);
    }
}

fn four_live_setups_at_once_while_containers_run(guard: Guard, test: &str) {
    if let Some(session) = Session::new(guard, test) {
        re_setup_while_running(session, 4);
    }
}

fn four_bind_setups_at_once_while_containers_run(guard: Guard, test: &str) {
    if let Some(session) = Session::bind(guard, test) {
        re_setup_while_running(session, 4);
    }
}

/// Two containers run; `parallel` setups at once (when more than one), then
/// one with `--trust /workspace`. The running containers keep their mounts
/// (they see the new snapshot through them), keep syncing both ways, and
/// can run `setup-container.sh` again; a new container gets the new snapshot.
fn re_setup_while_running(mut session: Session, parallel: usize) {
    let auth = session.env.auth.clone();
    let inode = |p: PathBuf| {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .ino()
    };
    let before = (inode(auth.clone()), inode(auth.join("claude")));
    let live = (session.mode == AuthMode::Live).then(|| inode(auth.join("live")));
    let running = [session.serve("before-a"), session.serve("before-b")];
    let mut round = 0;
    round_trip(&session, &running, &mut round);

    if parallel > 1 {
        setups_at_once(&mut session, parallel);
        round_trip(&session, &running, &mut round);
    }
    session.resetup(&["--trust", "/workspace"]);
    assert_eq!(
        (inode(auth.clone()), inode(auth.join("claude"))),
        before,
        "the auth dir or an agent's directory is a new one"
    );
    if let Some(live) = live {
        assert_eq!(inode(auth.join("live")), live, "live/ is a new directory");
    }
    // Through its old mount, a running container sees the new snapshot (as
    // root: the staged config is the host user's, mode 0600).
    for container in &running {
        let config = container.sh_ok(
            true,
            "cat \"$1\"",
            &[&format!("{MOUNT_POINT}/claude/config.json")],
            None,
        );
        assert!(
            config.contains("/workspace"),
            "`{}` does not see the new snapshot: {config}",
            container.name,
        );
    }
    round_trip(&session, &running, &mut round);

    // The entrypoint's step can run again in a running container (it said
    // "not found" when its auth dir had been replaced). Its output goes to a
    // file: the guard it starts outlives this `docker exec` and its pipes.
    let again = running[0].sh(
        true,
        "\"$1/setup-container.sh\" \"$1\" \"$2\" \"$3\" >/tmp/again.log 2>&1 \
         || { cat /tmp/again.log; exit 1; }",
        &[MOUNT_POINT, HOME, USER],
        None,
    );
    assert!(
        again.status.success(),
        "setup-container.sh again: {}{}",
        text(&again.stdout),
        text(&again.stderr)
    );
    round_trip(&session, &running, &mut round);

    // A new container gets the new snapshot, and the current login.
    let after = session.serve("after");
    let home_config = after
        .read(&format!("{HOME}/.claude.json"))
        .unwrap_or_default();
    assert!(
        text(&home_config).contains("/workspace"),
        "the new container got the old snapshot: {}",
        text(&home_config)
    );
    let mut all: Vec<Container> = running.into_iter().collect();
    all.push(after);
    round_trip(&session, &all, &mut round);
    drop(all);
    session.teardown();
}

/// `n` setups of the session's auth dir at once, each with its own trust.
fn setups_at_once(session: &mut Session, n: usize) {
    let children: Vec<_> = (0..n)
        .map(|i| {
            session
                .setup_command(&["--trust", &format!("/parallel-{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut said = String::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a parallel setup: {}", stderr(&out));
        said.push_str(&stderr(&out));
    }
    session.after_setup(&said);
    let left: Vec<String> = std::fs::read_dir(session.env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && !n.ends_with(".sync.lock"))
        .collect();
    assert!(left.is_empty(), "left beside the auth dir: {left:?}");
}

/// A Claude refresh on the host reaches every container; then one made in
/// the first container reaches the host and the others. Each newer than the
/// last (`round`). In bind mode the host writes in place: a rename would
/// give the host file a new inode that running containers do not see.
fn round_trip(session: &Session, containers: &[Container], round: &mut i64) {
    let cred = claude();
    let budget = session.guard.budget() + Duration::from_secs(1);
    let homes: Vec<PathBuf> = containers
        .iter()
        .map(|c| c.host_view(&cred.in_container()))
        .collect();
    *round += 1;
    let from_host = cred.refreshed(&format!("HOST-{round}"), 72 + 2 * *round);
    match session.mode {
        AuthMode::Live => session.write_on_host_by_rename(&cred, &from_host),
        AuthMode::Bind => session.write_on_host(&cred, &from_host),
    }
    wait_all(&homes, &from_host, budget, "a host refresh", containers);

    let from_container = cred.refreshed(&format!("CONTAINER-{round}"), 73 + 2 * *round);
    cred.write_in_container(&containers[0], &from_container);
    let mut everywhere = homes[1..].to_vec();
    everywhere.push(session.host(cred.path));
    wait_all(
        &everywhere,
        &from_container,
        budget,
        "a refresh in a container",
        containers,
    );
}

fn wait_all(paths: &[PathBuf], want: &[u8], within: Duration, what: &str, logs: &[Container]) {
    let found = poll(within, Duration::from_millis(10), || {
        paths
            .iter()
            .all(|p| std::fs::read(p).is_ok_and(|b| b == want))
            .then_some(())
    });
    if found.is_none() {
        let seen: Vec<String> = paths
            .iter()
            .map(|p| {
                let now = std::fs::read(p).map(|b| text(&b)).unwrap_or_default();
                format!("{}: {now}", p.display())
            })
            .collect();
        let logs: Vec<String> = logs
            .iter()
            .map(|c| format!("--- {} ---\n{}", c.name, c.logs()))
            .collect();
        panic!(
            "{what} did not reach everyone within {within:?}:\n{}\n{}",
            seen.join("\n"),
            logs.join("\n")
        );
    }
}

/// The container's id as teardown names it (the first 12 hex digits).
fn short_id(container: &Container) -> String {
    let out = docker(
        &[
            "inspect".into(),
            "--format".into(),
            "{{.Id}}".into(),
            container.name.clone(),
        ],
        None,
        Duration::from_secs(30),
    );
    text(&out.stdout).trim()[..12].to_string()
}

fn teardown(session: &Session, extra: &[&str]) -> Output {
    let mut args = vec!["teardown"];
    args.extend(extra);
    session.env.auth(&args)
}

/// Issue 18, item 3: the host sync is down, a container refreshes, and the
/// newer login is only in `live/`. While the container's guard is attached,
/// teardown refuses and names it; once it is stopped, teardown carries the
/// login to the host before it removes the auth dir. (The caw guard holds
/// its lock on `live/`; the shell guard does where the image has `flock`,
/// which this busybox image does not.)
#[test]
fn teardown_refuses_while_attached_then_carries_the_newer_live_login() {
    let test = concat!(
        module_path!(),
        "::teardown_refuses_while_attached_then_carries_the_newer_live_login"
    );
    let Some(session) = Session::new(Guard::Rust, test) else {
        return;
    };
    let container = session.serve("attached");
    let auth = &session.env.auth;
    caw_auth::host_sync::stop(auth).unwrap();
    let cred = claude();
    let host_before = std::fs::read(session.host(cred.path)).unwrap();
    let newer = cred.refreshed("ONLY-IN-LIVE", 90);
    cred.write_in_container(&container, &newer);
    wait_all(
        &[auth.join("live").join("claude/credentials.json")],
        &newer,
        Duration::from_secs(2),
        "the refresh into live/",
        std::slice::from_ref(&container),
    );
    assert_eq!(std::fs::read(session.host(cred.path)).unwrap(), host_before);

    let out = teardown(&session, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let id = short_id(&container);
    assert!(
        err.contains("1 container(s) are attached") && err.contains(&format!("container `{id}`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("hint: stop them first (`docker stop {id}`)"))
            && err.contains("`--force`"),
        "{err}"
    );
    assert!(auth.join("manifest.json").is_file());
    assert_eq!(std::fs::read(session.host(cred.path)).unwrap(), host_before);

    drop(container);
    let out = teardown(&session, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("carried the newer claude login"),
        "{}",
        stderr(&out)
    );
    assert!(!auth.exists());
    assert_eq!(std::fs::read(session.host(cred.path)).unwrap(), newer);
    assert_eq!(session.read_as_host_user(&cred), newer);
}

/// `--force` goes ahead while a container is attached, and still carries
/// the newer login from `live/`.
#[test]
fn forced_teardown_while_attached_carries_the_newer_live_login() {
    let test = concat!(
        module_path!(),
        "::forced_teardown_while_attached_carries_the_newer_live_login"
    );
    let Some(session) = Session::new(Guard::Rust, test) else {
        return;
    };
    let container = session.serve("forced");
    caw_auth::host_sync::stop(&session.env.auth).unwrap();
    let cred = claude();
    let newer = cred.refreshed("FORCED", 90);
    cred.write_in_container(&container, &newer);
    wait_all(
        &[session.env.auth.join("live/claude/credentials.json")],
        &newer,
        Duration::from_secs(2),
        "the refresh into live/",
        std::slice::from_ref(&container),
    );
    let out = teardown(&session, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("1 container(s) are attached"), "{err}");
    assert!(err.contains("carried the newer claude login"), "{err}");
    assert!(!session.env.auth.exists());
    assert_eq!(std::fs::read(session.host(cred.path)).unwrap(), newer);
}
