//! The shell guard (`setup-container.sh --guard`, the fallback for an image
//! that cannot run the bundled caw) against `caw_sync::decide`, case by
//! case, unprivileged: no mount, no container, the guard run as the current
//! user on a bind-mode auth dir whose credential snapshot stands in for the
//! mounted host file.
//!
//! Each case starts from both sides equal and synced (`last`), then writes
//! side A (the shared file) and side B (the home file) while the guard is
//! stopped between two passes, so it sees both at once, as `decide` does.
//! What `decide` says for those bytes is what must happen: a copy from one
//! side, or both left as they are. The cases the shell cannot judge as
//! `decide` does are listed in [`SHELL_DIFFERS`] with the reason; the test
//! fails if one of them starts to agree (update the list and the docs) or
//! any other disagrees.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caw_sync::decide::{Action, Context, Side};
use caw_sync::side::Look;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::util::*;

/// Cases where the shell guard does not do what `decide` does, and why.
const SHELL_DIFFERS: &[(&str, &str)] = &[];

/// What a side holds in a case.
#[derive(Clone)]
enum Content {
    Login(String),
    Missing,
    Symlink,
}

fn login(tag: &str, expires_ms: Option<i64>) -> Content {
    Content::Login(claude_oauth(
        &format!("at-{tag}"),
        &format!("rt-{tag}"),
        expires_ms,
    ))
}

fn logged_out(tag: &str) -> Content {
    Content::Login(format!(
        r#"{{"claudeAiOauth":{{"accessToken":"","refreshToken":"","expiresAt":0,"scopes":[],"x":"{tag}"}}}}"#
    ))
}

/// The first half of a login: a write in progress.
fn half(tag: &str) -> Content {
    let Content::Login(text) = login(tag, Some(ms_from_now(3600))) else {
        unreachable!()
    };
    Content::Login(text[..text.len() / 2].to_string())
}

struct ShellGuard {
    child: Child,
    shared: PathBuf,
    home: PathBuf,
    log: PathBuf,
}

impl ShellGuard {
    fn start(env: &TestEnv) -> ShellGuard {
        let out = env.auth_at(
            &env.auth,
            &["setup", "--agents", "claude", "--mode", "bind"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let home_dir = env.dir.path().join("container-home");
        let tmp = env.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let shared = env.auth.join("claude/credentials.json");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = env.dir.path().join("guard.log");
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .expect("the current user is in /etc/passwd")
            .name;
        let pid_file = tmp.join("guard.pid");
        let child = Command::new("/bin/sh")
            .arg(env.auth.join("setup-container.sh"))
            .arg("--guard")
            .args([&env.auth, &home_dir])
            .arg(&user)
            .env("CAW_GUARD_PID_FILE", &pid_file)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let guard = ShellGuard {
            child,
            shared,
            home: home_dir.join(".claude/.credentials.json"),
            log,
        };
        wait_for(
            "the shell guard's first pass",
            Duration::from_secs(20),
            || pid_file.exists(),
        );
        guard
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The guard's `sleep` between passes, if it is in one.
    fn sleeping(&self) -> Option<i32> {
        children(self.pid()).into_iter().find(|&c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "sleep")
        })
    }

    /// Stop the guard between two passes: run `write`, then let it go on
    /// at once with a new pass, and wait until two more passes are done.
    fn between_passes(&self, write: impl FnOnce()) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let sleep = loop {
            assert!(Instant::now() < deadline, "the guard never sleeps");
            if let Some(sleep) = self.sleeping() {
                kill(Pid::from_raw(self.pid()), Signal::SIGSTOP).unwrap();
                // Still its child (alive or not yet reaped): no pass began.
                if children(self.pid()).contains(&sleep) {
                    break sleep;
                }
                kill(Pid::from_raw(self.pid()), Signal::SIGCONT).unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        write();
        kill(Pid::from_raw(self.pid()), Signal::SIGCONT).unwrap();
        let _ = kill(Pid::from_raw(sleep), Signal::SIGPIPE);
        let mut seen = sleep;
        for pass in 0..2 {
            wait_for(
                &format!("shell guard pass {}", pass + 1),
                Duration::from_secs(20),
                || self.sleeping().is_some_and(|s| s != seen),
            );
            seen = self.sleeping().unwrap_or(seen);
            let _ = kill(Pid::from_raw(seen), Signal::SIGPIPE);
        }
    }
}

impl Drop for ShellGuard {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn put(path: &Path, content: &Content) {
    let _ = std::fs::remove_file(path);
    match content {
        Content::Login(text) => {
            std::fs::write(path, text).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Content::Missing => {}
        Content::Symlink => std::os::unix::fs::symlink("/etc/hostname", path).unwrap(),
    }
}

/// The shared file is a stand-in for a mounted host file, which is never
/// missing or a link: those cases are for the home only.
fn put_shared(path: &Path, content: &Content) {
    let Content::Login(text) = content else {
        unreachable!("A is always a file here")
    };
    std::fs::write(path, text).unwrap();
}

fn look(path: &Path) -> Look {
    match std::fs::symlink_metadata(path) {
        Err(_) => Look::Missing,
        Ok(m) if m.file_type().is_symlink() => Look::Symlink,
        Ok(_) => Look::File(std::fs::read(path).unwrap()),
    }
}

#[test]
fn the_shell_guard_decides_as_decide_does() {
    let env = TestEnv::empty();
    env.claude(ms_from_now(3600));
    let guard = ShellGuard::start(&env);
    let agent = caw_auth::agents::by_name("claude").unwrap();
    let base = ms_from_now(0);
    let at = |min: i64| Some(base + min * 60_000);
    let same = || None;
    let w = Some;
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<Content>, Option<Content>)> = vec![
        // (name, A = shared, B = home; None: left as `last`, both equal
        // and synced, 60 min).
        ("A refreshed", w(login("a1", at(120))), same()),
        ("B refreshed", same(), w(login("b1", at(120)))),
        ("A changed, same expiry", w(login("a2", at(60))), same()),
        ("both changed, A fresher", w(login("a3", at(130))), w(login("b3", at(120)))),
        ("both changed, B fresher", w(login("a4", at(120))), w(login("b4", at(130)))),
        ("both changed, same expiry", w(login("a5", at(120))), w(login("b5", at(120)))),
        ("A wrote an older token", w(login("a6", at(30))), same()),
        ("B wrote an older token", same(), w(login("b6", at(30)))),
        ("B logged out", same(), w(logged_out("b7"))),
        ("A logged out", w(logged_out("a8")), same()),
        ("B logs in again after A logged out", w(logged_out("a12")), w(login("b12", at(90)))),
        ("A changed to an unknown expiry", w(login("a9", None)), same()),
        ("B changed to an unknown expiry", same(), w(login("b9", None))),
        ("B planted a far expiry", same(), w(login("b10", at(5 * 365 * 24 * 60)))),
        ("A planted a far expiry", w(login("a10", at(5 * 365 * 24 * 60))), same()),
        ("A half-written", w(half("a13")), same()),
        ("B half-written", same(), w(half("b13"))),
        ("both logged out, B changed", w(logged_out("a14")), w(logged_out("b14"))),
        ("B deleted", same(), w(Content::Missing)),
        ("B a symlink", w(login("a11", at(90))), w(Content::Symlink)),
    ];
    let look_of = |c: &Content| match c {
        Content::Login(text) => Look::File(text.clone().into_bytes()),
        Content::Missing => Look::Missing,
        Content::Symlink => Look::Symlink,
    };
    let mut disagree = Vec::new();
    let mut agreed_though_listed = Vec::new();
    for (i, (name, a, b)) in cases.into_iter().enumerate() {
        let last = login(&format!("last{i}"), at(60));
        guard.between_passes(|| {
            put_shared(&guard.shared, &last);
            put(&guard.home, &last);
        });
        let a = a.unwrap_or_else(|| last.clone());
        let b = b.unwrap_or_else(|| last.clone());
        let Content::Login(last_text) = &last else {
            unreachable!()
        };
        let now = jiff::Timestamp::now();
        let want = caw_sync::decide(
            &look_of(&a).classify(agent, now),
            &look_of(&b).classify(agent, now),
            Context {
                last: Some(&caw_auth::credential::Digest::of(last_text.as_bytes())),
                b_quiet: false,
                b_shared: false,
                heal_b: true,
                a_judges: false,
            },
        );
        let (before_a, before_b) = (a.clone(), b.clone());
        guard.between_passes(|| {
            put_shared(&guard.shared, &a);
            put(&guard.home, &b);
        });
        let expect_a = match &want {
            Action::Copy { from: Side::B, .. } => before_b.clone(),
            _ => before_a.clone(),
        };
        let expect_b = match &want {
            Action::Copy { from: Side::A, .. } => before_a.clone(),
            Action::InSync => before_a.clone(),
            _ => before_b.clone(),
        };
        let text = |c: &Content| match c {
            Content::Login(t) => Some(t.clone()),
            Content::Symlink => Some("<symlink>".into()),
            Content::Missing => None,
        };
        let as_text = |l: Look| match l {
            Look::File(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Look::Symlink => Some("<symlink>".into()),
            Look::Missing => None,
            Look::Unusable => Some("<unusable>".into()),
        };
        let got = (as_text(look(&guard.shared)), as_text(look(&guard.home)));
        let agrees = got == (text(&expect_a), text(&expect_b));
        let listed = SHELL_DIFFERS.iter().any(|(n, _)| *n == name);
        match (agrees, listed) {
            (true, true) => agreed_though_listed.push(name),
            (false, false) => disagree.push(format!(
                "{name}: decide says {want:?}; the shell left A={} B={}",
                summary(&got.0),
                summary(&got.1)
            )),
            _ => {}
        }
    }
    let log = std::fs::read_to_string(&guard.log).unwrap_or_default();
    assert!(
        disagree.is_empty(),
        "the shell guard disagrees with decide:\n{}\n--- guard log ---\n{log}",
        disagree.join("\n")
    );
    assert!(
        agreed_though_listed.is_empty(),
        "now agree with decide, take them off SHELL_DIFFERS: {agreed_though_listed:?}"
    );
}

/// Which login a side holds, by its tag (never the whole token).
fn summary(text: &Option<String>) -> String {
    match text {
        None => "missing".into(),
        Some(t) => t
            .split("\"accessToken\":\"at-")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map_or_else(|| t.chars().take(40).collect(), str::to_string),
    }
}
