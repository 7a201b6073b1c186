//! The live channel: the auth dir read-only, `A/live` the only writable
//! path, the host sync on the host and a guard in each container. Every
//! refresh, by rename or in place, made on the host or in any container,
//! reaches everyone whole; nothing logged out or foreign spreads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::container::{poll, text, Container};
use crate::engines::Row;
use crate::prereqs::say;
use crate::session::{Cred, Guard, HostUser, Session, CREDS};

crate::for_both_guards!(
    host_renames_reach_every_container,
    a_container_refresh_reaches_the_host_and_the_other_container,
    logged_out_files_stay_where_they_were_written,
);

fn cred(agent: &str) -> Cred {
    *CREDS.iter().find(|c| c.agent == agent).unwrap()
}

/// Wait until every path holds `want`; how long it took.
fn wait_all(paths: &[PathBuf], want: &[u8], within: Duration, what: &str) -> Duration {
    let found = poll(within, Duration::from_millis(2), || {
        paths
            .iter()
            .all(|p| std::fs::read(p).is_ok_and(|b| b == want))
            .then_some(())
    });
    match found {
        Some((_, took)) => took,
        None => {
            let seen: Vec<String> = paths
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}",
                        p.display(),
                        text(&std::fs::read(p).unwrap_or_default())
                    )
                })
                .collect();
            panic!("{what} within {within:?}; they hold:\n{}", seen.join("\n"))
        }
    }
}

/// The median and the largest of some durations, for the log.
fn summary(mut took: Vec<Duration>) -> String {
    took.sort();
    format!(
        "median {:?}, max {:?} over {}",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    )
}

/// Claude Code and Qwen Code rewrite their credential on the host by temp
/// file + rename: every running container must see each refresh.
fn host_renames_reach_every_container(guard: Guard, test: &str) {
    host_renames_reach_every_container_on(Row::Docker, guard, test)
}

/// [`host_renames_reach_every_container`] on `row`'s engine.
pub(crate) fn host_renames_reach_every_container_on(row: Row, guard: Guard, test: &str) {
    let Some(session) = Session::on(row, guard, test) else {
        return;
    };
    let containers = [session.serve("rename-a"), session.serve("rename-b")];
    let mut took = Vec::new();
    for round in 0..3 {
        for c in [cred("claude"), cred("qwen")] {
            let homes: Vec<PathBuf> = containers
                .iter()
                .map(|k| k.host_view(&c.in_container()))
                .collect();
            let refreshed = c.refreshed(&format!("HOST-RENAME-{round}"), 72 + round);
            let start = Instant::now();
            session.write_on_host_by_rename(&c, &refreshed);
            wait_all(
                &homes,
                &refreshed,
                guard.budget(),
                &format!("a host {} rename did not reach both containers", c.agent),
            );
            took.push(start.elapsed());
        }
    }
    say(&format!(
        "{test}: host rename -> 2 containers: {}",
        summary(took)
    ));
    drop(containers);
    session.teardown();
}

fn a_container_refresh_reaches_the_host_and_the_other_container(guard: Guard, test: &str) {
    a_container_refresh_reaches_the_host_and_the_other_container_on(Row::Docker, guard, test)
}

/// [`a_container_refresh_reaches_the_host_and_the_other_container`] on
/// `row`'s engine: in place (codex, gemini) and by rename (claude, qwen).
pub(crate) fn a_container_refresh_reaches_the_host_and_the_other_container_on(
    row: Row,
    guard: Guard,
    test: &str,
) {
    let Some(session) = Session::on(row, guard, test) else {
        return;
    };
    let (a, b) = (session.serve("share-a"), session.serve("share-b"));
    for (i, c) in CREDS.iter().filter(|c| c.synced_by(guard)).enumerate() {
        let refreshed = c.refreshed("FROM-A", 72 + i as i64);
        c.write_in_container(&a, &refreshed);
        wait_all(
            &[session.host(c.path), b.host_view(&c.in_container())],
            &refreshed,
            guard.budget(),
            &format!(
                "a {} refresh in one container did not reach the host and the other",
                c.agent
            ),
        );
        assert_eq!(session.read_as_host_user(c), refreshed);
    }
    drop((a, b));
    session.teardown();
}

/// A refused refresh leaves Claude Code's credential with empty tokens and
/// `expiresAt` 0; a logout leaves `{}` or nothing. None of it may log the
/// host or another container out.
fn logged_out_files_stay_where_they_were_written(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let (a, b) = (session.serve("out-a"), session.serve("out-b"));
    let claude = cred("claude");
    let good = std::fs::read(session.host(claude.path)).unwrap();
    let live = session.env.auth.join("live/claude/credentials.json");
    for logged_out in [
        &br#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0,"scopes":[],"subscriptionType":null}}"#[..],
        b"{}",
        br#"{"claudeAiOauth":null}"#,
    ] {
        claude.write_in_container(&a, logged_out);
        std::thread::sleep(guard.budget() + guard.budget() / 2);
        for path in [session.host(claude.path), live.clone(), b.host_view(&claude.in_container())] {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                good,
                "{} reached `{}`",
                text(logged_out),
                path.display()
            );
        }
        // It stays where the agent wrote it.
        assert_eq!(std::fs::read(a.host_view(&claude.in_container())).unwrap(), logged_out);
    }
    let logs = a.logs();
    assert!(
        logs.contains("holds no usable login"),
        "no line about the logged-out file:\n{logs}"
    );
    if guard == Guard::Rust {
        // A login of another kind (an API key over a ChatGPT login) stays too.
        let codex = cred("codex");
        let before = std::fs::read(session.host(codex.path)).unwrap();
        codex.write_in_container(&a, br#"{"OPENAI_API_KEY":"sk-other-login","tokens":null}"#);
        std::thread::sleep(guard.budget() + guard.budget() / 2);
        assert_eq!(
            std::fs::read(session.host(codex.path)).unwrap(),
            before,
            "an API-key login replaced the host's"
        );
        assert!(a.logs().contains("another account or kind"), "{}", a.logs());
    }
    // A real login afterwards travels as usual.
    let again = claude.refreshed("LOGGED-IN-AGAIN", 90);
    claude.write_in_container(&a, &again);
    wait_all(
        &[
            session.host(claude.path),
            b.host_view(&claude.in_container()),
        ],
        &again,
        guard.budget(),
        "a new login after the logout did not travel",
    );
    drop((a, b));
    session.teardown();
}

#[test]
fn ten_containers_get_each_host_refresh() {
    let test = concat!(module_path!(), "::ten_containers_get_each_host_refresh");
    let Some(session) = Session::new(Guard::Rust, test) else {
        return;
    };
    let containers: Vec<Container> = (0..10)
        .map(|i| session.serve(&format!("ten-{i}")))
        .collect();
    let claude = cred("claude");
    let homes: Vec<PathBuf> = containers
        .iter()
        .map(|k| k.host_view(&claude.in_container()))
        .collect();
    let mut took = Vec::new();
    for round in 0..5 {
        let refreshed = claude.refreshed(&format!("FAN-OUT-{round}"), 72 + round);
        let start = Instant::now();
        session.write_on_host_by_rename(&claude, &refreshed);
        wait_all(
            &homes,
            &refreshed,
            Duration::from_secs(2),
            "a host refresh did not reach all ten",
        );
        took.push(start.elapsed());
    }
    say(&format!(
        "{test}: host rename -> 10 containers: {}",
        summary(took)
    ));
    drop(containers);
    session.teardown();
}

/// Whether `bytes` is what a reader of a credential may see: a whole JSON object.
fn whole(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.is_object())
}

/// A reader on the host looping over the credential file while the
/// container refreshes it 300 times, alternately longer and shorter: not a
/// single empty or unparsable read.
#[test]
fn host_readers_never_see_a_torn_file() {
    let test = concat!(module_path!(), "::host_readers_never_see_a_torn_file");
    let Some(session) = Session::new(Guard::Rust, test) else {
        return;
    };
    let container = session.serve("torn");
    let claude = cred("claude");
    let host = session.host(claude.path);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, host) = (Arc::clone(&stop), host.clone());
        std::thread::spawn(move || {
            let (mut reads, mut bad) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match std::fs::read(&host) {
                    Ok(bytes) if whole(&bytes) => {}
                    Ok(bytes) => bad.push(bytes),
                    Err(e) => bad.push(format!("read error: {e}").into_bytes()),
                }
                reads += 1;
            }
            (reads, bad)
        })
    };
    let base = (jiff::Timestamp::now().as_second() + 7 * 3600) * 1000;
    // One `docker exec`: 300 refreshes by rename as fast as the shell goes,
    // every other one with a long token.
    let script = r#"f="$1"; base=$2; i=1
        long=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
        while [ $i -le 300 ]; do
            pad=; [ $((i % 2)) = 0 ] && pad=$long
            printf '{"claudeAiOauth":{"accessToken":"at-%s%s","refreshToken":"rt-%s","expiresAt":%s,"scopes":["user:inference"]}}' \
                "$i" "$pad" "$i" $((base + i)) > "$f.tmp.$$" && mv -f "$f.tmp.$$" "$f"
            i=$((i + 1))
        done"#;
    container.sh_ok(
        false,
        script,
        &[&claude.in_container(), &base.to_string()],
        None,
    );
    let last = format!("\"expiresAt\":{}", base + 300);
    let synced = poll(Duration::from_secs(5), Duration::from_millis(5), || {
        String::from_utf8_lossy(&std::fs::read(&host).ok()?)
            .contains(&last)
            .then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let (reads, bad) = reader.join().unwrap();
    assert!(
        synced.is_some(),
        "the last refresh never reached the host: {}",
        text(&std::fs::read(&host).unwrap())
    );
    assert!(
        bad.is_empty(),
        "{} of {reads} host reads were empty or torn, e.g. {:?}",
        bad.len(),
        text(&bad[0])
    );
    say(&format!(
        "{test}: {reads} host reads during 300 container refreshes, none torn"
    ));
    session.finish(container);
}

/// The sync's pid, from the state it records in the auth dir.
fn sync_pid(auth: &Path) -> i32 {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(auth.join("sync.json")).unwrap()).unwrap();
    state["pid"].as_i64().unwrap() as i32
}

/// The sync is killed: containers keep sharing through `live/`; once it is
/// started again (the next `docker-flags`), the host catches up.
#[test]
fn the_sync_can_die_and_catch_up() {
    let test = concat!(module_path!(), "::the_sync_can_die_and_catch_up");
    let Some(session) = Session::new(Guard::Rust, test) else {
        return;
    };
    let (a, b) = (session.serve("die-a"), session.serve("die-b"));
    let pid = sync_pid(&session.env.auth);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = poll(Duration::from_secs(5), Duration::from_millis(10), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    let claude = cred("claude");
    let host_before = std::fs::read(session.host(claude.path)).unwrap();
    let refreshed = claude.refreshed("WHILE-SYNC-DOWN", 80);
    claude.write_in_container(&a, &refreshed);
    wait_all(
        &[b.host_view(&claude.in_container())],
        &refreshed,
        Guard::Rust.budget(),
        "containers stopped sharing without the sync",
    );
    assert_eq!(
        std::fs::read(session.host(claude.path)).unwrap(),
        host_before,
        "no sync, yet the host changed"
    );
    // The next docker-flags starts it again; it reconciles: the newest wins.
    session.flags("v");
    assert_ne!(sync_pid(&session.env.auth), pid, "no new sync");
    wait_all(
        &[session.host(claude.path)],
        &refreshed,
        Duration::from_secs(3),
        "the restarted sync did not catch up",
    );
    drop((a, b));
    session.teardown();
}

/// 2000 refreshes on the host (by rename) and 2000 in a container, at the
/// same time, each newer than the last: whatever the interleaving, the
/// newest login ends up on the host, in `live/` and in the container.
#[test]
fn concurrent_writes_from_both_sides_lose_nothing() {
    let test = concat!(
        module_path!(),
        "::concurrent_writes_from_both_sides_lose_nothing"
    );
    let Some(session) = Session::new(Guard::Rust, test) else {
        return;
    };
    let container = session.serve("race");
    let claude = cred("claude");
    let base = (jiff::Timestamp::now().as_second() + 8 * 3600) * 1000;
    let written = Arc::new(AtomicU64::new(0));
    let host_writer = {
        let path = session.host(claude.path);
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            for i in 0..2000i64 {
                let text = format!(
                    r#"{{"claudeAiOauth":{{"accessToken":"host-{i}","refreshToken":"host-r-{i}","expiresAt":{}}}}}"#,
                    base + 2 * i
                );
                let tmp = path.with_extension(format!("json.tmp.{i:x}"));
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
                written.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let script = r#"f="$1"; base=$2; i=0
        while [ $i -lt 2000 ]; do
            printf '{"claudeAiOauth":{"accessToken":"cont-%s","refreshToken":"cont-r-%s","expiresAt":%s}}' \
                "$i" "$i" $((base + 2 * i + 1)) > "$f.tmp.$$" && mv -f "$f.tmp.$$" "$f"
            i=$((i + 1))
        done"#;
    container.sh_ok(
        false,
        script,
        &[&claude.in_container(), &base.to_string()],
        None,
    );
    host_writer.join().unwrap();
    assert_eq!(written.load(Ordering::Relaxed), 2000);
    // The newest of all 4000 is the container's last.
    let newest = format!(
        r#"{{"claudeAiOauth":{{"accessToken":"cont-1999","refreshToken":"cont-r-1999","expiresAt":{}}}}}"#,
        base + 2 * 1999 + 1
    );
    wait_all(
        &[
            session.host(claude.path),
            session.env.auth.join("live/claude/credentials.json"),
            container.host_view(&claude.in_container()),
        ],
        newest.as_bytes(),
        Duration::from_secs(5),
        &format!(
            "the newest login did not end up everywhere\n--- container ---\n{}\n--- sync.log ---\n{}",
            container.logs().lines().rev().take(30).collect::<Vec<_>>().join("\n"),
            std::fs::read_to_string(session.env.auth.join("sync.log")).unwrap_or_default().lines().rev().take(30).collect::<Vec<_>>().join("\n")
        ),
    );
    session.finish(container);
}

/// Issue 8, item 3, straight into the channel: the agent shares the host
/// user's uid (so it owns `live/`), or is root in the container, and writes
/// logged-out files into `live/` itself, past its guard. The host file and
/// the other container keep the login, and the host sync repairs `live/`.
#[test]
fn logged_out_files_written_into_live_by_the_host_uid_or_root_are_repaired() {
    let test = concat!(
        module_path!(),
        "::logged_out_files_written_into_live_by_the_host_uid_or_root_are_repaired"
    );
    let Some(session) = Session::new_owned_by(Guard::Rust, test, HostUser::Agent) else {
        return;
    };
    let (a, b) = (session.serve("poison-a"), session.serve("poison-b"));
    let claude = cred("claude");
    let host = session.host(claude.path);
    let good = std::fs::read(&host).unwrap();
    let home_before = crate::util::tree_state(&session.env.home);
    let live = "/tmp/caw_auth/live/claude/credentials.json";
    for (as_root, poison) in [
        (false, &b"{}"[..]),
        (
            true,
            br#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#,
        ),
        (false, br#"{"claudeAiOauth":null}"#),
    ] {
        a.sh_ok(
            as_root,
            "cat > \"$1.x\" && mv -f \"$1.x\" \"$1\"",
            &[live],
            Some(poison),
        );
        wait_all(
            &[session.env.auth.join("live/claude/credentials.json")],
            &good,
            Duration::from_secs(3),
            "the host sync did not repair live/",
        );
        assert_eq!(
            std::fs::read(&host).unwrap(),
            good,
            "{} reached the host",
            text(poison)
        );
        assert_eq!(
            std::fs::read(b.host_view(&claude.in_container())).unwrap(),
            good,
            "{} reached another container",
            text(poison)
        );
    }
    assert_eq!(
        home_before,
        crate::util::tree_state(&session.env.home),
        "the host home changed"
    );
    drop((a, b));
    session.teardown();
}
