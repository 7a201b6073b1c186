//! Nothing a container can write is trusted by root or by the host.
//!
//! The agent is an attacker here: it shares the host user's uid (1000, the
//! usual desktop), or it is root in the container. It tries to change what
//! root runs next (`setup-container.sh`, `bin/caw`) and what the host reads
//! (`manifest.json`, which once decided what `docker-flags` mounts). The auth
//! dir reaches it read-only, so every attempt fails with EROFS, and
//! afterwards the auth dir and the host home are exactly as they were and
//! `caw auth docker-flags` still names only the registry's paths.

use std::path::Path;
use std::time::Duration;

use crate::container::{docker, text};
use crate::engines::Row;
use crate::image::{MOUNT_POINT, USER};
use crate::prereqs::image_or_skip;
use crate::session::{Guard, HostUser, Session};
use crate::util::{
    edit_manifest, stderr, stdout, tree_state, write_browser_extension, TestEnv, CREDENTIALS,
};

crate::for_both_guards!(
    the_agent_sharing_the_host_uid_cannot_change_the_auth_dir,
    root_in_the_container_cannot_change_the_auth_dir,
);

/// A manifest that would have the host mount its SSH key into the container.
const EVIL_MANIFEST: &str = r#"{"version":1,"host_home":"/","container_home":"/home/playground",
"mount_point":"/tmp/caw_auth","agents":{"claude":{"files":[{"src":"claude/credentials.json",
"container_target":".claude/.credentials.json","host_original":"root/.ssh/id_ed25519",
"type":"credential","strategy":"bind","mode":"0600"}]}}}"#;

/// Each attack, as `(what, sh script)`; `$1` is the mount point, `$2` the
/// evil manifest. Every one must fail because the file system is read-only.
const ATTACKS: &[(&str, &str)] = &[
    (
        "rewrite manifest.json",
        "printf '%s' \"$2\" > \"$1/manifest.json\"",
    ),
    (
        "append to manifest.json",
        "echo '{}' >> \"$1/manifest.json\"",
    ),
    (
        "rename manifest.json",
        "mv -f \"$1/manifest.json\" \"$1/manifest.old\"",
    ),
    (
        "rewrite setup-container.sh",
        "printf '#!/bin/sh\\nid > /tmp/pwned\\n' > \"$1/setup-container.sh\"",
    ),
    (
        "replace setup-container.sh",
        "rm -f \"$1/setup-container.sh\"",
    ),
    (
        "chmod setup-container.sh",
        "chmod 777 \"$1/setup-container.sh\"",
    ),
    ("add a file", "touch \"$1/evil\""),
    ("add a directory", "mkdir \"$1/evil\""),
    ("add a symlink", "ln -s /etc/passwd \"$1/evil\""),
    (
        "remove a config snapshot",
        "rm -f \"$1/claude/config.json\"",
    ),
    ("add a file to an agent dir", "touch \"$1/claude/evil\""),
];

/// The Rust-guard sessions bundle `bin/caw`, which root runs as the guard.
const BIN_ATTACKS: &[(&str, &str)] = &[
    ("overwrite bin/caw", "cat /bin/busybox > \"$1/bin/caw\""),
    (
        "replace bin/caw",
        "cp -f /bin/busybox \"$1/bin/caw.new\" && mv -f \"$1/bin/caw.new\" \"$1/bin/caw\"",
    ),
    ("remove bin/caw", "rm -f \"$1/bin/caw\""),
];

/// The shell-guard sessions have no `bin/`: creating one would let root run it.
const NO_BIN_ATTACKS: &[(&str, &str)] = &[(
    "create bin/caw",
    "mkdir -p \"$1/bin\" && cp /bin/busybox \"$1/bin/caw\"",
)];

fn the_agent_sharing_the_host_uid_cannot_change_the_auth_dir(guard: Guard, test: &str) {
    let Some(session) = Session::new_owned_by(guard, test, HostUser::Agent) else {
        return;
    };
    attack(session, guard, false, true);
}

fn root_in_the_container_cannot_change_the_auth_dir(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    attack(session, guard, true, false);
}

/// Every attack on the auth dir, by container root (`as_root`) or the
/// agent, on `row`'s engine, with the bundled guard.
pub(crate) fn attack_on(row: Row, as_root: bool, test: &str) {
    let Some(session) = Session::on(row, Guard::Rust, test) else {
        return;
    };
    attack(session, Guard::Rust, as_root, false);
}

/// `agent_owns`: the agent user owns the auth dir (checked first).
fn attack(session: Session, guard: Guard, as_root: bool, agent_owns: bool) {
    let auth_before = tree_state(&session.env.auth);
    let home_before = tree_state(&session.env.home);
    let container = session.serve(if as_root {
        "attack-root"
    } else {
        "attack-agent"
    });
    if agent_owns {
        // The agent owns the auth dir: only the read-only mount stops it.
        let owner = container.sh_ok(false, "stat -c '%u' \"$1\"; id -u", &[MOUNT_POINT], None);
        let ids: Vec<&str> = owner.lines().collect();
        assert_eq!(ids, ["1000", "1000"], "auth dir owner and agent uid");
    }
    let bin = match guard {
        Guard::Rust => BIN_ATTACKS,
        Guard::Shell => NO_BIN_ATTACKS,
    };
    for (what, script) in ATTACKS.iter().chain(bin) {
        let out = container.sh(as_root, script, &[MOUNT_POINT, EVIL_MANIFEST], None);
        assert!(
            !out.status.success(),
            "{} could {what}:\n{}",
            if as_root { "root" } else { USER },
            text(&out.stdout)
        );
        // An agent that does not own the 0700 auth dir cannot even look in.
        let refused = text(&out.stderr).contains("Read-only file system")
            || !as_root && !agent_owns && text(&out.stderr).contains("Permission denied");
        assert!(
            refused,
            "{what} failed for another reason than the read-only mount: {}",
            text(&out.stderr)
        );
    }
    if as_root {
        // Root without CAP_SYS_ADMIN cannot make the mount writable again.
        let out = container.sh(true, "mount -o remount,rw \"$1\"", &[MOUNT_POINT], None);
        assert!(!out.status.success(), "root remounted the auth dir rw");
        let out = container.sh(true, "touch \"$1/evil\"", &[MOUNT_POINT], None);
        assert!(!out.status.success(), "the auth dir became writable");
    }
    drop(container);
    // The host sync (started by docker-flags) records its state and log in
    // the auth dir; everything the container could reach stays as it was.
    let host_written = |mut tree: Tree| {
        tree.retain(|p, _| !p.ends_with("sync.json") && !p.ends_with("sync.log"));
        tree
    };
    assert_same_tree(
        &host_written(auth_before),
        &host_written(tree_state(&session.env.auth)),
        "the auth dir",
    );
    assert_same_tree(
        &home_before,
        &tree_state(&session.env.home),
        "the host home",
    );
    assert_only_registry_paths(&session);
    session.teardown();
}

/// Every mount `docker-flags` prints is the auth dir (or its live
/// directory) or a registry credential under the host home.
fn assert_only_registry_paths(session: &Session) {
    let auth = session.env.auth.display().to_string();
    let home = session.env.home.display();
    let mut allowed: Vec<(String, String)> = vec![
        (auth.clone(), MOUNT_POINT.to_string()),
        (format!("{auth}/live"), format!("{MOUNT_POINT}/live")),
    ];
    for (_, host, src) in CREDENTIALS {
        allowed.push((format!("{home}/{host}"), format!("{MOUNT_POINT}/{src}")));
    }
    let flags = session.flags("v");
    assert_eq!(flags[0], "-v");
    assert_eq!(flags[1], format!("{auth}:{MOUNT_POINT}:ro"));
    for pair in flags.chunks(2) {
        assert_eq!(pair[0], "-v", "{flags:?}");
        let parts: Vec<&str> = pair[1].split(':').collect();
        let [src, dst, access] = parts[..] else {
            panic!("not SRC:DST:MODE: {}", pair[1]);
        };
        assert!(
            allowed.contains(&(src.to_string(), dst.to_string())),
            "docker-flags mounts {src} at {dst}"
        );
        assert_eq!(access == "ro", src == auth, "{}", pair[1]);
    }
}

/// Live mode's flags, as the container sees them: the auth dir read-only
/// for the agent and for root, and only `live/` writable.
#[test]
fn live_mode_flags_leave_only_the_live_directory_writable() {
    let Some(image) =
        image_or_skip("security::live_mode_flags_leave_only_the_live_directory_writable")
    else {
        return;
    };
    let env = TestEnv::empty();
    env.claude(crate::util::ms_from_now(3600));
    let out = env.auth(&["setup", "--mode", "live"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The agent user (1000) owns the auth dir, as on a desktop.
    let status = std::process::Command::new("chown")
        .args(["-R", "1000:1000"])
        .arg(&env.auth)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        let why = "cannot chown the auth dir to uid 1000 (not root)";
        crate::skip::skip("caw e2e", &crate::skip::current_test(), why);
        return;
    }
    let before = tree_state(&env.auth);
    let flags: Vec<String> =
        serde_json::from_str(&stdout(&env.auth(&["docker-flags", "--format", "json"]))).unwrap();
    assert_eq!(flags.len(), 4, "{flags:?}");
    let script = "for f in \"$1/manifest.json\" \"$1/setup-container.sh\" \"$1/evil\"; do \
                      if echo x >> \"$f\"; then echo \"wrote $f\"; exit 1; fi; done; \
                  echo refreshed > \"$1/live/claude/probe\" && rm \"$1/live/claude/probe\"";
    for user in ["playground", "root"] {
        let mut args = vec![
            "run".to_string(),
            "--rm".into(),
            "--network".into(),
            "none".into(),
            "--label".into(),
            "caw-e2e=1".into(),
            "--name".into(),
            format!("caw-e2e-{}-live-ro-{user}", std::process::id()),
            "--user".into(),
            user.into(),
            "--entrypoint".into(),
            "/bin/sh".into(),
        ];
        args.extend(flags.iter().cloned());
        args.extend([
            image.to_string(),
            "-c".into(),
            script.into(),
            "sh".into(),
            MOUNT_POINT.into(),
        ]);
        let out = docker(&args, None, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{user}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr).matches("Read-only file system").count(),
            3,
            "{user}: {}",
            text(&out.stderr)
        );
    }
    // Outside `live/`, nothing changed (inside it, `probe` came and went).
    let live = env.auth.join("live");
    let outside = |tree: Tree| -> Tree {
        tree.into_iter()
            .filter(|(path, _)| !path.starts_with(&live) || *path == live)
            .collect()
    };
    assert_same_tree(
        &outside(before),
        &outside(tree_state(&env.auth)),
        "the auth dir",
    );
}

type Tree = std::collections::BTreeMap<std::path::PathBuf, (Vec<u8>, u32, i64, i64, u64)>;

/// Equal trees (bytes, mode, mtime, inode per path), or a panic naming the
/// paths that differ.
fn assert_same_tree(before: &Tree, after: &Tree, what: &str) {
    let mut changed: Vec<String> = before
        .iter()
        .filter(|(path, state)| after.get(*path) != Some(*state))
        .map(|(path, _)| path.display().to_string())
        .collect();
    changed.extend(
        after
            .keys()
            .filter(|path| !before.contains_key(*path))
            .map(|path| format!("{} (new)", path.display())),
    );
    assert!(changed.is_empty(), "{what} changed: {changed:?}");
}

/// Issue 8 item 1, on the host: even a manifest changed on the host cannot
/// make `docker-flags` mount another host file. Needs no Docker engine.
#[test]
fn a_manifest_naming_an_ssh_key_is_refused_by_docker_flags() {
    let env = TestEnv::empty();
    env.claude(crate::util::ms_from_now(3600));
    env.setup();
    env.write(
        ".ssh/id_ed25519",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        0o600,
    );
    edit_manifest(&env.auth, |m| {
        m["agents"]["claude"]["files"][0]["host_original"] = ".ssh/id_ed25519".into();
    });
    for format in ["v", "json", "mount"] {
        let out = env.auth(&["docker-flags", "--format", format]);
        assert_eq!(out.status.code(), Some(1), "--format {format}");
        assert!(
            stdout(&out).is_empty(),
            "--format {format}: {}",
            stdout(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains("`agents.claude.files[0].host_original`") && !err.contains("BEGIN"),
            "{err}"
        );
    }
}

/// Issue 8 item 4: a directory that merely has a `manifest.json` (a browser
/// extension here) is neither replaced by setup nor removed by teardown,
/// `--force` or not. Needs no Docker engine.
#[test]
fn a_browser_extension_dir_is_never_replaced_or_removed() {
    let env = TestEnv::empty();
    env.claude(crate::util::ms_from_now(3600));
    let ext = &env.auth;
    write_browser_extension(ext);
    let before = tree_state(ext);
    let check = |args: &[&str]| {
        assert_same_tree(
            &before,
            &tree_state(ext),
            &format!("{args:?}: the directory"),
        )
    };
    for args in [
        &["setup"][..],
        &["setup", "--mode", "live"],
        &["teardown"],
        &["teardown", "--force"],
        &["teardown", "--force", "--dry-run"],
    ] {
        let out = env.auth(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "error: `{}` is not a caw auth dir: ",
                ext.display()
            )),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("is not something caw writes"),
            "{args:?}: {err}"
        );
        check(args);
    }
    let siblings: Vec<_> = std::fs::read_dir(Path::new(ext).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(siblings.is_empty(), "left beside it: {siblings:?}");
}
