//! `caw auth exec` as PID 1, without Docker: a new PID and mount namespace
//! (`unshare --pid --fork --mount-proc --mount`) with the auth dir
//! bind-mounted at `M` and each host credential over its snapshot, as
//! `docker run $(caw auth docker-flags)` lays them out, and `/etc/passwd`
//! and `/etc/group` replaced by the test's own (user `agent`, uid 4321,
//! primary group 4322, member of group 4400, home in a temp dir).
//!
//! Needs root and util-linux `unshare`/`mount`; otherwise each test says
//! why it is skipped, or fails when `CI` is set.

#[path = "support/skip.rs"]
#[allow(dead_code)]
mod skip;
#[path = "cli/util.rs"]
#[allow(dead_code)]
mod util;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::{ms_from_now, stderr, TestEnv};

const UID: u32 = 4321;
const GID: u32 = 4322;
const EXTRA_GID: u32 = 4400;
const CLAUDE: &str = ".claude/.credentials.json";

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root (needs PID and mount namespaces)".into());
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Some("`unshare --mount --pid --fork --mount-proc` does not work here".into());
    }
    None
}

/// False (after saying why) when the test cannot run; panics under `CI`.
fn can_run() -> bool {
    let Some(why) = skip_reason() else {
        return true;
    };
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{why}, and `CI` is set");
    }
    eprintln!("skipping: {why}");
    false
}

struct Box {
    env: TestEnv,
    /// Holds `M`, the agent's home, passwd, group, the pid file and the log.
    side: tempfile::TempDir,
}

impl Box {
    fn new() -> Box {
        let env = TestEnv::empty();
        env.claude(ms_from_now(3 * 3600));
        let side = tempfile::Builder::new()
            .prefix("caw-exec-")
            .tempdir()
            .unwrap();
        // The agent must be able to reach its home below it.
        std::fs::set_permissions(side.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = Box { env, side };
        std::fs::create_dir(b.path("mnt")).unwrap();
        std::fs::create_dir_all(b.home()).unwrap();
        std::os::unix::fs::chown(b.home(), Some(UID), Some(GID)).unwrap();
        std::fs::write(
            b.path("passwd"),
            format!(
                "root:x:0:0:root:/root:/bin/sh\nagent:x:{UID}:{GID}:agent:{}:/bin/sh\n",
                b.home().display()
            ),
        )
        .unwrap();
        std::fs::write(
            b.path("group"),
            format!("root:x:0:\nagents:x:{GID}:\nextra:x:{EXTRA_GID}:root,agent\n"),
        )
        .unwrap();
        let out = b
            .env
            .caw()
            .args(["auth", "setup", "--mode", "bind", "--auth-dir"])
            .arg(&b.env.auth)
            .args(["--container-home", b.home().to_str().unwrap()])
            .args(["--mount-point", b.path("mnt").to_str().unwrap()])
            .output()
            .unwrap();
        // Auth dirs before live mode have no --mode; retry without it.
        let out = if !out.status.success() && stderr(&out).contains("--mode") {
            b.env
                .caw()
                .args(["auth", "setup", "--auth-dir"])
                .arg(&b.env.auth)
                .args(["--container-home", b.home().to_str().unwrap()])
                .args(["--mount-point", b.path("mnt").to_str().unwrap()])
                .output()
                .unwrap()
        } else {
            out
        };
        assert!(out.status.success(), "setup: {}", stderr(&out));
        b
    }

    fn path(&self, name: &str) -> PathBuf {
        self.side.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home/agent")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// `caw auth exec --user agent -- CMD…` as PID 1 of a new namespace,
    /// with `FROM_DOCKER_E=yes` and root's `HOME` in its environment, as
    /// `docker run --user 0 -e FROM_DOCKER_E=yes` would give it.
    fn start(&self, cmd: &[&str]) -> Child {
        let m = self.path("mnt");
        let mut script = String::from("set -e\n");
        script += &format!(
            "mount --bind '{}' /etc/passwd\n",
            self.path("passwd").display()
        );
        script += &format!(
            "mount --bind '{}' /etc/group\n",
            self.path("group").display()
        );
        script += &format!(
            "mount --bind '{}' '{}'\n",
            self.env.auth.display(),
            m.display()
        );
        script += &format!(
            "mount --bind '{}' '{}/claude/credentials.json'\n",
            self.env.home.join(CLAUDE).display(),
            m.display()
        );
        script += &format!(
            "exec '{}' auth exec --user agent --mount-point '{}' -- \"$@\"\n",
            env!("CARGO_BIN_EXE_caw"),
            m.display()
        );
        let log = std::fs::File::create(self.path("log")).unwrap();
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--mount-proc", "sh", "-c", &script, "sh"])
            .args(cmd)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("FROM_DOCKER_E", "yes")
            .env("CAW_GUARD_PID_FILE", self.path("guard.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finish(mut child: Child, timeout: Duration, log: impl Fn() -> String) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the container did not end within {timeout:?}; log:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Host PIDs of `pid`'s children.
fn children(pid: i32) -> Vec<i32> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The host PID of the process that is `ns_pid` in the namespace whose
/// PID 1 is `init` (host PID).
fn host_pid(init: i32, ns_pid: i32) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let ids: Vec<i32> = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse::<i32>().ok());
        if ids.len() >= 2 && ids.last() == Some(&ns_pid) && (pid == init || ppid == Some(init)) {
            return Some(pid);
        }
    }
    None
}

fn state(pid: i32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn is_guard(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"guard"))
}

#[test]
fn runs_the_command_as_the_user_with_its_logins_and_environment() {
    if !can_run() {
        return;
    }
    let b = Box::new();
    let script = r#"echo "ids $(id -u) $(id -g) $(id -G)"
echo "env $HOME $USER $LOGNAME $FROM_DOCKER_E $SHELL"
echo "ppid $PPID"
printf 'cred '; cat "$HOME/.claude/.credentials.json"; echo
exit 3"#;
    let child = b.start(&["/bin/sh", "-c", script]);
    let code = finish(child, Duration::from_secs(30), || b.log());
    let log = b.log();
    assert_eq!(code, Some(3), "{log}");
    let line = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{log}"))
            .to_string()
    };
    assert_eq!(line("ids"), format!("{UID} {GID} {GID} {EXTRA_GID}"));
    assert_eq!(
        line("env"),
        format!("{} agent agent yes /bin/sh", b.home().display())
    );
    assert_eq!(line("ppid"), "1", "the command's parent is the init, PID 1");
    let host = std::fs::read_to_string(b.env.home.join(CLAUDE)).unwrap();
    assert_eq!(line("cred"), host);
    for secret in util::SECRETS {
        let printed = log
            .lines()
            .filter(|l| !l.starts_with("cred "))
            .any(|l| l.contains(secret));
        assert!(!printed, "a token reached the log:\n{log}");
    }
}

#[test]
fn guard_comes_back_after_sigkill_and_docker_stop_ends_it() {
    if !can_run() {
        return;
    }
    let b = Box::new();
    // An orphan for the init to reap, then a long sleep that dies of SIGTERM.
    let child = b.start(&["/bin/sh", "-c", "(sleep 0.2 &); exec sleep 1000"]);
    let init = wait_for("the init", Duration::from_secs(10), || {
        children(child.id() as i32).first().copied()
    });
    let pid_file = b.path("guard.pid");
    let read_pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
    };
    let first = wait_for("the guard", Duration::from_secs(20), || {
        read_pid().and_then(|p| host_pid(init, p))
    });
    assert!(is_guard(first), "pid file names a non-guard");
    // The orphan has come and gone without a zombie left.
    std::thread::sleep(Duration::from_millis(500));
    let zombies: Vec<i32> = children(init)
        .into_iter()
        .filter(|&p| state(p) == Some('Z'))
        .collect();
    assert_eq!(
        zombies,
        Vec::<i32>::new(),
        "zombies under the init:\n{}",
        b.log()
    );

    let killed = Instant::now();
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let second = wait_for("a restarted guard", Duration::from_secs(2), || {
        read_pid()
            .and_then(|p| host_pid(init, p))
            .filter(|&p| p != first && is_guard(p))
    });
    eprintln!("guard restarted after {:?}", killed.elapsed());
    assert!(
        b.log().contains("was killed by SIGKILL"),
        "no restart line:\n{}",
        b.log()
    );

    // A host refresh reaches the agent's copy through the new guard.
    let refreshed = format!(
        r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-NEW","refreshToken":"sk-ant-ort01-NEW","expiresAt":{},"scopes":["user:inference"]}}}}"#,
        ms_from_now(9 * 3600)
    );
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(b.env.home.join(CLAUDE))
        .and_then(|mut f| std::io::Write::write_all(&mut f, refreshed.as_bytes()))
        .unwrap();
    let home_copy = b.home().join(CLAUDE);
    wait_for("the refresh in the home", Duration::from_secs(5), || {
        (std::fs::read_to_string(&home_copy).ok()? == refreshed).then_some(())
    });
    assert!(is_guard(second));

    // `docker stop`: SIGTERM to PID 1.
    let stopped = Instant::now();
    kill(Pid::from_raw(init), Signal::SIGTERM).unwrap();
    let code = finish(child, Duration::from_secs(10), || b.log());
    let took = stopped.elapsed();
    let log = b.log();
    assert_eq!(code, Some(143), "{log}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(
        log.contains("[credential-guard] stopped (SIGTERM)"),
        "{log}"
    );
    assert!(!pid_file.exists(), "the pid file was left behind");
}

#[test]
fn setup_errors_keep_the_command_from_running() {
    if !can_run() {
        return;
    }
    let b = Box::new();
    let marker = b.path("ran");
    // No such user in the namespace's /etc/passwd.
    std::fs::write(b.path("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let touch = format!("touch {}", marker.display());
    let child = b.start(&["/bin/sh", "-c", &touch]);
    let code = finish(child, Duration::from_secs(30), || b.log());
    assert_eq!(code, Some(1), "{}", b.log());
    assert!(
        b.log()
            .contains("error: user `agent` is not in `/etc/passwd`"),
        "{}",
        b.log()
    );
    assert!(!marker.exists());
}

#[test]
fn a_missing_command_is_127() {
    if !can_run() {
        return;
    }
    let b = Box::new();
    let child = b.start(&["/no/such/agent"]);
    let code = finish(child, Duration::from_secs(30), || b.log());
    assert_eq!(code, Some(127), "{}", b.log());
    assert!(
        b.log().contains("cannot run `/no/such/agent`"),
        "{}",
        b.log()
    );
}
