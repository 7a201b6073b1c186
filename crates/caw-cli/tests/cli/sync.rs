//! `caw auth sync`, the host sync, as a process: one per auth dir, started
//! by `docker-flags`, stopped by SIGTERM, by teardown, or by its idle timer.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// `caw auth sync --auth-dir <auth> <extra…>` in the background.
fn start(env: &TestEnv, extra: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args(["auth", "sync", "--auth-dir"])
        .arg(&env.auth)
        .args(extra)
        .env("HOME", &env.home)
        .env_remove("CAW_AUTH_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn running(env: &TestEnv) -> bool {
    matches!(
        caw_auth::host_sync::status(&env.auth),
        caw_auth::host_sync::SyncStatus::Running(_)
    )
}

fn exit_of(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the sync did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn claude_login(tag: &str, hours: i64) -> String {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"a-{tag}","refreshToken":"r-{tag}","expiresAt":{}}}}}"#,
        ms_from_now(hours * 3600)
    )
}

#[test]
fn one_sync_per_auth_dir_and_sigterm_ends_it_cleanly() {
    let env = TestEnv::full();
    env.setup();
    let mut first = start(&env, &["--idle-exit", "0"]);
    wait_for("the sync holds its lock", Duration::from_secs(5), || {
        running(&env)
    });
    let second = start(&env, &[]).wait_with_output().unwrap();
    assert!(second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains(&format!(
            "a sync already runs for `{}` (pid {})",
            env.auth.display(),
            first.id()
        )),
        "{said}"
    );
    terminate(&first);
    assert!(exit_of(&mut first, Duration::from_secs(5)).success());
    assert!(!running(&env));
}

#[test]
fn a_container_refresh_in_live_reaches_the_host_file_by_rename() {
    let env = TestEnv::full();
    env.setup();
    let host = env.home.join(".claude/.credentials.json");
    let before = std::fs::metadata(&host).unwrap();
    let mut sync = start(&env, &["--idle-exit", "0"]);
    wait_for("the sync holds its lock", Duration::from_secs(5), || {
        running(&env)
    });
    let refreshed = claude_login("from-a-container", 9);
    let live = env.auth.join("live/claude/credentials.json");
    std::fs::write(live.with_extension("tmp"), &refreshed).unwrap();
    std::fs::rename(live.with_extension("tmp"), &live).unwrap();
    wait_for(
        "the refresh reached the host",
        Duration::from_secs(5),
        || std::fs::read_to_string(&host).unwrap() == refreshed,
    );
    use std::os::unix::fs::MetadataExt as _;
    let after = std::fs::metadata(&host).unwrap();
    assert_eq!(
        (after.mode(), after.uid(), after.gid()),
        (before.mode(), before.uid(), before.gid())
    );
    assert_ne!(after.ino(), before.ino(), "written in place, not by rename");
    let _ = sync.kill();
    let _ = sync.wait();
}

#[test]
fn the_sync_follows_claude_config_dir_from_the_manifest() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let cfg = env.dir.path().join("cfg");
    env.move_claude_to(&cfg);
    let out = env
        .caw()
        .env("CLAUDE_CONFIG_DIR", &cfg)
        .args(["auth", "setup", "--auth-dir"])
        .arg(&env.auth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The sync runs without the variable: the manifest recorded the directory.
    let mut sync = start(&env, &["--idle-exit", "0"]);
    wait_for("the sync holds its lock", Duration::from_secs(5), || {
        running(&env)
    });
    let refreshed = claude_login("cfg", 9);
    std::fs::write(env.auth.join("live/claude/credentials.json"), &refreshed).unwrap();
    wait_for(
        "the refresh reached $CLAUDE_CONFIG_DIR",
        Duration::from_secs(5),
        || std::fs::read_to_string(cfg.join(".credentials.json")).unwrap() == refreshed,
    );
    assert!(
        !env.home.join(".claude/.credentials.json").exists(),
        "wrote the default path"
    );
    let _ = sync.kill();
    let _ = sync.wait();
}

#[test]
fn it_exits_when_idle_and_when_the_auth_dir_is_torn_down() {
    let env = TestEnv::full();
    env.setup();
    // No container attached, checked every second: idle after one.
    let mut idle = start(&env, &["--idle-exit", "1", "--check-every", "1"]);
    assert!(exit_of(&mut idle, Duration::from_secs(10)).success());
    let mut sync = start(&env, &["--idle-exit", "0"]);
    wait_for("the sync holds its lock", Duration::from_secs(5), || {
        running(&env)
    });
    let out = env.auth(&["teardown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("stopped the host sync (pid {})", sync.id())),
        "{}",
        stderr(&out)
    );
    assert!(exit_of(&mut sync, Duration::from_secs(5)).success());
    assert!(
        !caw_auth::host_sync::lock_path(&env.auth).exists(),
        "the lock file was left beside the auth dir"
    );
    // Removed by hand instead: the sync notices and goes. (Once it has
    // recorded its state: `sync.json` written while `rm -rf` runs would be a
    // race of this test, not the sync's.)
    env.setup();
    let mut sync = start(&env, &["--idle-exit", "0"]);
    wait_for(
        "the sync recorded its state",
        Duration::from_secs(5),
        || {
            matches!(
                caw_auth::host_sync::status(&env.auth),
                caw_auth::host_sync::SyncStatus::Running(Some(_))
            )
        },
    );
    std::fs::remove_dir_all(&env.auth).unwrap();
    assert!(exit_of(&mut sync, Duration::from_secs(5)).success());
    assert!(
        !Path::new(&env.auth).exists(),
        "the sync wrote into the removed auth dir"
    );
}

#[test]
fn a_bind_mode_auth_dir_has_nothing_to_sync() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--mode", "bind"]).status.success());
    let out = start(&env, &[]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("is set up in bind mode") && said.contains("hint:"),
        "{said}"
    );
    // And docker-flags does not start one there.
    let out = env
        .caw()
        .env_remove("CAW_NO_SYNC")
        .args(["auth", "docker-flags", "--auth-dir"])
        .arg(&env.auth)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!running(&env));
}

#[test]
fn docker_flags_starts_the_sync_once_unless_told_not_to() {
    let env = TestEnv::full();
    env.setup();
    let flags = |no_sync: Option<&str>| {
        let mut cmd = env.caw();
        cmd.env_remove("CAW_NO_SYNC");
        if let Some(v) = no_sync {
            cmd.env("CAW_NO_SYNC", v);
        }
        cmd.args(["auth", "docker-flags", "--auth-dir"])
            .arg(&env.auth)
            .output()
            .unwrap()
    };
    assert!(flags(Some("1")).status.success());
    assert!(!running(&env), "CAW_NO_SYNC=1 started a sync");
    let out = env
        .caw()
        .env_remove("CAW_NO_SYNC")
        .args(["auth", "docker-flags", "--no-sync", "--auth-dir"])
        .arg(&env.auth)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!running(&env), "--no-sync started a sync");
    let out = flags(None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("started the host sync (pid"),
        "{}",
        stderr(&out)
    );
    assert!(running(&env));
    let out = flags(None);
    assert!(
        !stderr(&out).contains("started the host sync"),
        "a second sync: {}",
        stderr(&out)
    );
    // TestEnv stops it when dropped.
}

/// Issue 18: a sync started before a re-setup kept writing to the old
/// `sync.log`, which the re-setup deleted. The auth dir now stays the same
/// directory: the sync goes on (same pid), its log and state survive, and
/// it follows the new manifest (an agent added by the re-setup syncs).
#[test]
fn a_re_setup_keeps_the_sync_its_log_and_its_state() {
    let env = TestEnv::full();
    assert!(env.auth(&["setup", "--agents", "codex"]).status.success());
    let out = env
        .caw()
        .env_remove("CAW_NO_SYNC")
        .args(["auth", "docker-flags", "--auth-dir"])
        .arg(&env.auth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = match caw_auth::host_sync::status(&env.auth) {
        caw_auth::host_sync::SyncStatus::Running(Some(state)) => state.pid,
        other => panic!("no sync: {other:?}"),
    };
    let log = env.auth.join("sync.log");
    let log_ino = inode(&log);
    wait_for("the sync logged its start", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("watching 1 credential"))
    });

    let out = env.auth(&["setup", "--trust", "/workspace"]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(inode(&log), log_ino, "sync.log was replaced");
    wait_for("the sync logged the reload", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("set up again; reloading"))
    });
    match caw_auth::host_sync::status(&env.auth) {
        caw_auth::host_sync::SyncStatus::Running(Some(state)) => assert_eq!(state.pid, pid),
        other => panic!("the sync or its state is gone: {other:?}"),
    }
    // Claude came with the re-setup: a container's refresh reaches the host.
    let refreshed = claude_login("after-re-setup", 8);
    let live = env.auth.join("live/claude/credentials.json");
    std::fs::write(live.with_extension("tmp"), &refreshed).unwrap();
    std::fs::rename(live.with_extension("tmp"), &live).unwrap();
    let host = env.home.join(".claude/.credentials.json");
    wait_for(
        "the refresh reached the host",
        Duration::from_secs(5),
        || std::fs::read_to_string(&host).unwrap() == refreshed,
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("watching 1 credential"), "{text}");
    assert!(text.contains("synced"), "{text}");
    // TestEnv stops it when dropped.
}

#[test]
fn the_log_stays_capped_while_the_sync_runs() {
    let env = TestEnv::full();
    env.setup();
    let log_path = env.dir.path().join("sync.log");
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log_path)
        .unwrap();
    let mut sync = Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args([
            "auth",
            "sync",
            "--idle-exit",
            "0",
            "--log-limit",
            "2000",
            "--auth-dir",
        ])
        .arg(&env.auth)
        .env("HOME", &env.home)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("the sync holds its lock", Duration::from_secs(5), || {
        running(&env)
    });
    // A container writing live/ over and over: one log line per sync.
    let live = env.auth.join("live/claude/credentials.json");
    let mut largest = 0;
    for i in 0..200 {
        // Each newer than the last, and than the host's.
        let text = format!(
            r#"{{"claudeAiOauth":{{"accessToken":"a-{i}","refreshToken":"r-{i}","expiresAt":{}}}}}"#,
            ms_from_now(4 * 3600 + i)
        );
        std::fs::write(live.with_extension("tmp"), &text).unwrap();
        std::fs::rename(live.with_extension("tmp"), &live).unwrap();
        let host = env.home.join(".claude/.credentials.json");
        wait_for("the round reached the host", Duration::from_secs(5), || {
            std::fs::read_to_string(&host).is_ok_and(|t| t == text)
        });
        largest = largest.max(std::fs::metadata(&log_path).unwrap().len());
    }
    terminate(&sync);
    assert!(exit_of(&mut sync, Duration::from_secs(5)).success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(largest < 2000 + 1000, "the log grew to {largest} bytes");
    assert!(
        text.contains("synced") || text.contains("emptied"),
        "{text}"
    );
}

#[test]
fn what_no_caw_writer_makes_is_removed_from_live() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = TestEnv::full();
    env.setup();
    let mut sync = start(&env, &["--idle-exit", "0"]);
    wait_for("the sync holds its lock", Duration::from_secs(5), || {
        running(&env)
    });
    let dir = env.auth.join("live/claude");
    // What root in a container can leave: a setuid binary, an executable,
    // a FIFO, a link, a device node (when this test can make one).
    let suid = dir.join("suid");
    std::fs::write(&suid, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let plain = dir.join("notes");
    std::fs::write(&plain, b"x").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A mode changed afterwards is seen too.
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o2755)).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/shadow", env.auth.join("live/link")).unwrap();
    let device = nix::sys::stat::mknod(
        &dir.join("disk"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .is_ok();
    let gone = |p: &Path| std::fs::symlink_metadata(p).is_err();
    wait_for(
        "the planted entries are removed",
        Duration::from_secs(5),
        || {
            gone(&suid)
                && gone(&plain)
                && gone(&dir.join("fifo"))
                && gone(&env.auth.join("live/link"))
                && gone(&dir.join("disk"))
        },
    );
    assert!(
        dir.join("credentials.json").is_file(),
        "the credential went too"
    );
    terminate(&sync);
    assert!(exit_of(&mut sync, Duration::from_secs(5)).success());
    let out = sync.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("removed `claude/suid`"), "{log}");
    if device {
        assert!(log.contains("removed `claude/disk`"), "{log}");
    }
}

/// `docker-flags --store URL --store-key K` starts the sync joined to that
/// store (here one that does not answer: the sync says so and keeps the
/// login); a store without a key is an error before any flag is printed.
#[test]
fn docker_flags_passes_the_store_to_the_sync_it_starts() {
    let env = TestEnv::full();
    env.setup();
    let url = "etcd://127.0.0.1:1/t";
    let out = env
        .caw()
        .env_remove("CAW_NO_SYNC")
        .args(["auth", "docker-flags", "--store", url, "--auth-dir"])
        .arg(&env.auth)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(stderr(&out).contains("--store-key"), "{}", stderr(&out));
    assert!(!running(&env), "a sync started without a store key");
    let key = env.dir.path().join("store.key");
    let made = env
        .caw()
        .args(["auth", "store-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let out = env
        .caw()
        .env_remove("CAW_NO_SYNC")
        .args(["auth", "docker-flags", "--store", url, "--store-key"])
        .arg(&key)
        .arg("--auth-dir")
        .arg(&env.auth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        "the sync records the store",
        Duration::from_secs(10),
        || {
            let state = read_text(&env.auth.join("sync.json"));
            state.contains(url) && state.contains("unreachable_since\":\"")
        },
    );
    let status = stdout(&env.auth(&["status"]));
    assert!(status.contains("store unreachable since"), "{status}");
}
