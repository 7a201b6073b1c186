//! The container side on real bind mounts, without Docker: a private mount
//! namespace (`unshare -m`) lays out an auth dir exactly as `docker run $(caw
//! auth docker-flags)` does — `A` mounted at `M`, each host credential file
//! bind-mounted over its snapshot at `M/<src>` — and runs `setup-container.sh`
//! as root for a real non-root user. The tests then refresh credentials from
//! both sides, in both write styles, and check what reaches the other side
//! and what must not: half-written files, older tokens, a planted symlink.
//!
//! Each scenario runs twice: with `A/bin/caw` (the Rust guard, inotify) and
//! without it (the shell fallback, run by `busybox sh` with nothing but
//! busybox applets on `PATH`).
//!
//! Needs root, util-linux `unshare` and `mount`, a user `sync` or `nobody`
//! in /etc/passwd, and /bin/busybox for the shell tests; otherwise each test
//! says why it is skipped and passes.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// Owner of the host files: neither root nor the agent user, so a guard
/// that replaces or chowns the host file is caught.
const HOST_UID: u32 = 4242;
const HOST_GID: u32 = 4343;
const CLAUDE: &str = ".claude/.credentials.json";
const CODEX: &str = ".codex/auth.json";
/// Written in place, and synced by both guards: the barrier's agent.
const QWEN: &str = ".qwen/oauth_creds.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    Rust,
    Shell,
}

impl Guard {
    /// How long one sync may take: the shell guard polls once a second.
    fn budget(self) -> Duration {
        match self {
            Guard::Rust => Duration::from_secs(3),
            Guard::Shell => Duration::from_secs(6),
        }
    }
}

/// Why this machine cannot run the tests, if it cannot.
fn skip_reason(guard: Guard) -> Option<String> {
    // /proc/self belongs to the effective user.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        return Some("not running as root (needs mount namespaces and chown)".into());
    }
    for tool in ["unshare", "mount"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!("util-linux `{tool}` is not available"));
        }
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Some("cannot create a mount namespace here".into());
    }
    if agent_user().is_none() {
        return Some("no `sync` or `nobody` user in /etc/passwd".into());
    }
    if guard == Guard::Shell && !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox is missing (apt-get install busybox-static)".into());
    }
    None
}

/// A non-root user whose primary group differs from its name where
/// possible (Debian's `sync` is uid 4, group `nogroup`).
fn agent_user() -> Option<(String, u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    ["sync", "nobody"].iter().find_map(|name| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == *name)
                .then(|| Some((name.to_string(), f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    })
}

fn ms_from_now(hours: i64) -> i64 {
    (jiff::Timestamp::now().as_second() + hours * 3600) * 1000
}

/// A Claude login marked `tag`, expiring `hours` from now.
fn claude(tag: &str, hours: i64) -> Vec<u8> {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-SECRET-{tag}","refreshToken":"sk-ant-ort01-SECRET-{tag}","expiresAt":{},"scopes":["user:inference"]}}}}"#,
        ms_from_now(hours)
    )
    .into_bytes()
}

/// A codex login marked `tag` whose access token expires `hours` from now.
fn codex(tag: &str, hours: i64) -> Vec<u8> {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = ms_from_now(hours) / 1000;
    let jwt = format!(
        "{}.{}.c2ln",
        e(r#"{"alg":"RS256"}"#),
        e(&format!(r#"{{"exp":{exp}}}"#))
    );
    format!(
        r#"{{"OPENAI_API_KEY":null,"tokens":{{"access_token":"{jwt}","refresh_token":"codex-SECRET-{tag}"}},"last_refresh":"{}"}}"#,
        jiff::Timestamp::now()
    )
    .into_bytes()
}

/// A Qwen login marked `tag`, expiring `hours` from now.
fn qwen(tag: &str, hours: i64) -> Vec<u8> {
    format!(
        r#"{{"access_token":"qwen-SECRET-{tag}","refresh_token":"qwen-SECRET-R-{tag}","token_type":"Bearer","expiry_date":{}}}"#,
        ms_from_now(hours)
    )
    .into_bytes()
}

/// Write as codex does: open the existing file, truncate, write.
fn write_in_place(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(bytes).unwrap();
}

/// Write as Claude Code does: a temp file beside the target, renamed over
/// it. The new file belongs to whoever owns the directory, as it would when
/// the agent user writes it.
fn write_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
    std::os::unix::fs::chown(&tmp, Some(dir.uid()), Some(dir.gid())).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The inode, owner and mode of a host file: what the guard must keep.
fn identity(path: &Path) -> (u64, u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.uid(), m.gid(), m.mode() & 0o7777)
}

/// One host home, auth dir, container home and namespace with a guard in it.
struct Session {
    guard: Guard,
    _root: tempfile::TempDir,
    root: PathBuf,
    /// `H`.
    host: PathBuf,
    /// `A`.
    auth: PathBuf,
    /// `M`: an empty directory outside the namespace, `A` inside it.
    mount_point: PathBuf,
    /// `C`.
    home: PathBuf,
    user: (String, u32, u32),
    pid_file: PathBuf,
    log: PathBuf,
    pid: Option<i32>,
    barrier_hours: i64,
}

impl Session {
    /// Set up `H` and `A`; `None` (after saying why) when the machine cannot.
    fn new(guard: Guard) -> Option<Session> {
        if let Some(why) = skip_reason(guard) {
            eprintln!("skipping: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("caw-container-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        // The agent user must be able to reach its home (the shell guard writes as it).
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let host = root.join("host");
        let s = Session {
            guard,
            host: host.clone(),
            auth: root.join("auth"),
            mount_point: root.join("mnt"),
            home: root.join("home/agent"),
            user: agent_user().unwrap(),
            pid_file: root.join("guard.pid"),
            log: root.join("container.log"),
            pid: None,
            barrier_hours: 100,
            root,
            _root: dir,
        };
        for (rel, bytes) in [
            (CLAUDE, claude("host0", 48)),
            (
                ".claude.json",
                br#"{"oauthAccount":{"emailAddress":"dev@example.com"},"projects":{"/host/p":{}}}"#
                    .to_vec(),
            ),
            (CODEX, codex("host0", 48)),
            (QWEN, qwen("host0", 48)),
        ] {
            let path = host.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&path, Some(HOST_UID), Some(HOST_GID)).unwrap();
        }
        std::fs::create_dir(&s.mount_point).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_caw"))
            .args(["auth", "setup", "--agents", "claude,codex,qwen"])
            .arg("--source-home")
            .arg(&s.host)
            .arg("--auth-dir")
            .arg(&s.auth)
            .arg("--container-home")
            .arg(&s.home)
            .arg("--mount-point")
            .arg(&s.mount_point)
            .env_remove("CAW_STATIC_BINARY")
            .env("HOME", &s.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if guard == Guard::Rust {
            // The test build is not static, but it runs here, which is all
            // the script's hand-over check asks.
            let bin = s.auth.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::copy(env!("CARGO_BIN_EXE_caw"), bin.join("caw")).unwrap();
        } else {
            // Every caw bundles a static bin/caw; an auth dir without one
            // (an older caw's) is what makes the script fall back.
            std::fs::remove_file(s.auth.join("bin/caw")).unwrap();
        }
        Some(s)
    }

    fn host_file(&self, rel: &str) -> PathBuf {
        self.host.join(rel)
    }

    fn home_file(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    /// A directory of symlinks to busybox: the shell guard's whole `PATH`.
    fn busybox_path(&self) -> PathBuf {
        let dir = self.root.join("busybox-bin");
        if !dir.exists() {
            std::fs::create_dir(&dir).unwrap();
            let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                std::os::unix::fs::symlink("/bin/busybox", dir.join(applet)).unwrap();
            }
        }
        dir
    }

    /// Run `setup-container.sh M C U` in a fresh namespace laid out like
    /// `docker run $(caw auth docker-flags)`; `bind` false leaves the
    /// credential mounts out. Returns the exit status and the log so far.
    fn run_setup(&mut self, bind: bool, env: &[(&str, &str)]) -> (bool, String) {
        let m = self.mount_point.display().to_string();
        let mut script = format!("set -e\nmount --bind '{}' '{m}'\n", self.auth.display());
        if bind {
            for (rel, src) in [
                (CLAUDE, "claude/credentials.json"),
                (CODEX, "codex/auth.json"),
                (QWEN, "qwen/oauth_creds.json"),
            ] {
                script.push_str(&format!(
                    "mount --bind '{}' '{m}/{src}'\n",
                    self.host_file(rel).display()
                ));
            }
        }
        let user = &self.user.0;
        let c = self.home.display();
        match self.guard {
            Guard::Rust => script.push_str(&format!(
                "exec '{m}/setup-container.sh' '{m}' '{c}' '{user}'\n"
            )),
            Guard::Shell => {
                let bb = self.busybox_path();
                script.push_str(&format!(
                    "PATH='{}' exec /bin/busybox sh '{m}/setup-container.sh' '{m}' '{c}' '{user}'\n",
                    bb.display()
                ))
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("CAW_GUARD_PID_FILE", &self.pid_file)
            .env("NO_COLOR", "1")
            .env_remove("CAW_LOG")
            .env_remove("CLAUDE_CODE_USE_BEDROCK")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let status = cmd.status().unwrap();
        self.pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        (status.success(), self.log_text())
    }

    /// Set up and expect a running guard.
    fn start(guard: Guard) -> Option<Session> {
        let mut s = Session::new(guard)?;
        let (ok, log) = s.run_setup(true, &[]);
        assert!(ok, "setup-container.sh failed:\n{log}");
        assert!(s.pid.is_some_and(alive), "no guard running:\n{log}");
        Some(s)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `cond` holds, or fail with `what` and the log.
    fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + self.guard.budget();
        while !cond() {
            if Instant::now() > deadline {
                panic!(
                    "{:?} guard: timed out waiting until {what}\n--- log ---\n{}",
                    self.guard,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_equal(&self, path: &Path, bytes: &[u8], what: &str) {
        self.wait_until(what, || std::fs::read(path).is_ok_and(|b| b == bytes));
    }

    /// Proof that the guard has looked at the claude pair since now: two
    /// qwen refreshes in a row, each waited for. The shell guard looks at
    /// the pairs in order once a second, so the second refresh is only
    /// synced in a pass that started after the first was, and that pass
    /// looked at claude first.
    fn barrier(&mut self) {
        for _ in 0..2 {
            self.barrier_hours += 1;
            let bytes = qwen("barrier", self.barrier_hours);
            write_in_place(&self.home_file(QWEN), &bytes);
            self.wait_equal(
                &self.host_file(QWEN),
                &bytes,
                "a qwen refresh reached the host (barrier)",
            );
        }
    }

    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Running, not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

fn assert_no_secrets(log: &str) {
    assert!(!log.contains("SECRET"), "a token reached the log:\n{log}");
}

macro_rules! both_guards {
    ($($name:ident),* $(,)?) => {
        mod rust_guard {
            $(#[test] fn $name() { super::$name(super::Guard::Rust) })*
        }
        mod shell_guard {
            $(#[test] fn $name() { super::$name(super::Guard::Shell) })*
        }
    };
}

both_guards!(
    setup_copies_every_file_owned_by_the_agent_user,
    refreshes_reach_the_other_side_in_both_write_styles,
    half_written_and_older_tokens_are_not_propagated,
    a_planted_symlink_is_replaced_and_a_deleted_copy_restored,
    a_burst_of_200_writes_ends_equal,
    a_missing_credential_mount_stops_setup,
    a_second_setup_replaces_the_guard_and_bedrock_skips_it,
);

fn setup_copies_every_file_owned_by_the_agent_user(guard: Guard) {
    let Some(s) = Session::start(guard) else {
        return;
    };
    let (_, uid, gid) = s.user;
    for (rel, mode) in [(CLAUDE, 0o600), (CODEX, 0o600), (".claude.json", 0o600)] {
        let m = std::fs::symlink_metadata(s.home_file(rel)).unwrap();
        assert!(m.is_file(), "{rel}");
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (uid, gid, mode),
            "{rel}"
        );
    }
    for rel in [CLAUDE, CODEX] {
        assert_eq!(
            std::fs::read(s.home_file(rel)).unwrap(),
            std::fs::read(s.host_file(rel)).unwrap()
        );
    }
    for dir in [".claude", ".codex", ""] {
        let m = std::fs::metadata(s.home.join(dir)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (uid, gid),
            "`{dir}` owned by the agent user"
        );
    }
    let config = std::fs::read_to_string(s.home_file(".claude.json")).unwrap();
    assert!(!config.contains("/host/p"), "{config}");
    // Seen from inside the namespace, where `A` is mounted at `M`.
    let expected_exe = match guard {
        Guard::Rust => s.mount_point.join("bin/caw"),
        Guard::Shell => std::fs::canonicalize("/bin/busybox").unwrap(),
    };
    let exe = std::fs::read_link(format!("/proc/{}/exe", s.pid.unwrap())).unwrap();
    assert_eq!(exe, expected_exe, "the guard under test is running");
    assert_no_secrets(&s.log_text());
}

fn refreshes_reach_the_other_side_in_both_write_styles(guard: Guard) {
    let Some(s) = Session::start(guard) else {
        return;
    };
    let host_id = identity(&s.host_file(CLAUDE));
    let codex_id = identity(&s.host_file(CODEX));
    let codex_before = std::fs::read(s.host_file(CODEX)).unwrap();

    // Host refreshes in place (a bind-mounted file can only change that way).
    let v = claude("host1", 50);
    write_in_place(&s.host_file(CLAUDE), &v);
    s.wait_equal(
        &s.home_file(CLAUDE),
        &v,
        "a host in-place refresh reached the home",
    );
    // The agent refreshes by temp file + rename (Claude Code) ...
    let v = claude("home1", 52);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "a home rename refresh reached the host",
    );
    // ... or in place (codex), which only the Rust guard can judge: the
    // shell guard says so once and leaves both sides alone.
    let v = codex("home1", 52);
    write_in_place(&s.home_file(CODEX), &v);
    if guard == Guard::Shell {
        s.wait_until("the shell guard said it does not sync codex", || {
            s.log_text().contains("the shell guard does not sync codex")
        });
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(
            std::fs::read(s.host_file(CODEX)).unwrap(),
            codex_before,
            "the shell guard synced codex"
        );
    } else {
        s.wait_equal(
            &s.host_file(CODEX),
            &v,
            "a home in-place refresh reached the host",
        );
        let v = codex("host2", 54);
        write_in_place(&s.host_file(CODEX), &v);
        s.wait_equal(
            &s.home_file(CODEX),
            &v,
            "a host codex refresh reached the home",
        );
    }
    // And once more each way, so a guard that synced only once is caught.
    let v = claude("home2", 56);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "a second rename refresh reached the host",
    );
    let v = claude("host3", 58);
    write_in_place(&s.host_file(CLAUDE), &v);
    s.wait_equal(
        &s.home_file(CLAUDE),
        &v,
        "a second host refresh reached the home",
    );

    assert_eq!(
        identity(&s.host_file(CLAUDE)),
        host_id,
        "host claude file: inode, owner, mode"
    );
    assert_eq!(
        identity(&s.host_file(CODEX)),
        codex_id,
        "host codex file: inode, owner, mode"
    );
    let (_, uid, gid) = s.user;
    let m = std::fs::symlink_metadata(s.home_file(CLAUDE)).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (uid, gid, 0o600));
    let log = s.log_text();
    assert!(
        log.contains(&format!(
            "[credential-guard] synced {} -> {}",
            s.home_file(CLAUDE).display(),
            s.mount_point.join("claude/credentials.json").display()
        )),
        "{log}"
    );
    assert_no_secrets(&log);
}

fn half_written_and_older_tokens_are_not_propagated(guard: Guard) {
    let Some(mut s) = Session::start(guard) else {
        return;
    };
    let good = std::fs::read(s.host_file(CLAUDE)).unwrap();

    // A refresh cut off half-way, on either side, goes nowhere.
    let full = claude("half", 60);
    write_in_place(&s.home_file(CLAUDE), &full[..full.len() / 2]);
    s.barrier();
    assert_eq!(
        std::fs::read(s.host_file(CLAUDE)).unwrap(),
        good,
        "a half-written home file reached the host"
    );
    // Missing only the closing brace: balanced-looking to a naive check.
    write_in_place(&s.home_file(CLAUDE), &full[..full.len() - 1]);
    s.barrier();
    assert_eq!(
        std::fs::read(s.host_file(CLAUDE)).unwrap(),
        good,
        "a truncated home file reached the host"
    );
    // When the agent finishes the write, it goes through.
    write_in_place(&s.home_file(CLAUDE), &full);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &full,
        "the completed write reached the host",
    );

    let host_half = claude("hosthalf", 62);
    write_in_place(&s.host_file(CLAUDE), &host_half[..40]);
    s.barrier();
    assert_eq!(
        std::fs::read(s.home_file(CLAUDE)).unwrap(),
        full,
        "a half-written host file reached the home"
    );
    write_in_place(&s.host_file(CLAUDE), &full);
    s.barrier();

    // An older token never replaces a newer one, from either side.
    let older = claude("older-home", 1);
    write_by_rename(&s.home_file(CLAUDE), &older);
    s.barrier();
    assert_eq!(
        std::fs::read(s.host_file(CLAUDE)).unwrap(),
        full,
        "an older home token reached the host"
    );
    let newest = claude("newest", 70);
    write_by_rename(&s.home_file(CLAUDE), &newest);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &newest,
        "a newer home token reached the host",
    );
    let older = claude("older-host", 2);
    write_in_place(&s.host_file(CLAUDE), &older);
    s.barrier();
    assert_eq!(
        std::fs::read(s.home_file(CLAUDE)).unwrap(),
        newest,
        "an older host token reached the home"
    );
    assert_no_secrets(&s.log_text());
}

fn a_planted_symlink_is_replaced_and_a_deleted_copy_restored(guard: Guard) {
    let Some(s) = Session::start(guard) else {
        return;
    };
    let host = std::fs::read(s.host_file(CLAUDE)).unwrap();
    // The agent user points its credential at a file it should not reach.
    let decoy = s.root.join("decoy.json");
    let decoy_bytes = claude("decoy", 500);
    std::fs::write(&decoy, &decoy_bytes).unwrap();
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(s.home_file(CLAUDE)).unwrap();
    std::os::unix::fs::symlink(&decoy, s.home_file(CLAUDE)).unwrap();
    s.wait_until("the symlink was replaced by a regular file", || {
        std::fs::symlink_metadata(s.home_file(CLAUDE)).is_ok_and(|m| m.is_file())
    });
    assert_eq!(std::fs::read(s.home_file(CLAUDE)).unwrap(), host);
    assert_eq!(
        std::fs::read(&decoy).unwrap(),
        decoy_bytes,
        "the link's target was written"
    );
    assert_eq!(
        std::fs::read(s.host_file(CLAUDE)).unwrap(),
        host,
        "the link's target reached the host"
    );

    // Deleted: restored, owned by the agent user.
    std::fs::remove_file(s.home_file(CLAUDE)).unwrap();
    s.wait_equal(&s.home_file(CLAUDE), &host, "the deleted copy was restored");
    let (_, uid, gid) = s.user;
    let m = std::fs::symlink_metadata(s.home_file(CLAUDE)).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (uid, gid, 0o600));
    // The whole directory too.
    std::fs::remove_dir_all(s.home.join(".claude")).unwrap();
    s.wait_equal(
        &s.home_file(CLAUDE),
        &host,
        "the deleted directory was restored",
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.home.join(".claude"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
    assert_no_secrets(&s.log_text());
}

fn a_burst_of_200_writes_ends_equal(guard: Guard) {
    let Some(s) = Session::start(guard) else {
        return;
    };
    let host_id = identity(&s.host_file(CLAUDE));
    let mut last = Vec::new();
    for i in 0..200 {
        last = claude(&format!("burst{i}"), 60 + i);
        if i % 2 == 0 {
            write_in_place(&s.home_file(CLAUDE), &last);
        } else {
            write_by_rename(&s.home_file(CLAUDE), &last);
        }
    }
    s.wait_equal(
        &s.host_file(CLAUDE),
        &last,
        "the last of 200 home writes reached the host",
    );
    for i in 0..200 {
        last = claude(&format!("hostburst{i}"), 300 + i);
        write_in_place(&s.host_file(CLAUDE), &last);
    }
    s.wait_equal(
        &s.home_file(CLAUDE),
        &last,
        "the last of 200 host writes reached the home",
    );
    assert_eq!(identity(&s.host_file(CLAUDE)), host_id);
    let log = s.log_text();
    let syncs = log.matches("[credential-guard] synced").count();
    assert!(
        syncs < 200,
        "{syncs} syncs for 400 writes: bursts are not coalesced"
    );
    assert_no_secrets(&log);
}

fn a_missing_credential_mount_stops_setup(guard: Guard) {
    let Some(mut s) = Session::new(guard) else {
        return;
    };
    // Only `-v A:M`: each M/<src> is the auth dir's snapshot, which a guard
    // would keep in sync instead of the host file.
    let (ok, log) = s.run_setup(false, &[]);
    assert!(!ok, "setup succeeded without the credential mounts:\n{log}");
    assert!(log.contains("not bind-mounted from the host"), "{log}");
    // Emptied, as a bind source that vanished leaves it.
    std::fs::write(s.auth.join("claude/credentials.json"), b"").unwrap();
    std::fs::write(&s.log, b"").unwrap();
    let (ok, log) = s.run_setup(false, &[]);
    assert!(!ok, "setup succeeded with an empty credential:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    for part in [
        "claude/credentials.json",
        "is empty",
        "the credential mount for claude is missing",
        "caw auth docker-flags",
    ] {
        assert!(errors[0].contains(part), "`{part}` not in: {}", errors[0]);
    }
    assert!(s.pid.is_none(), "a guard was started:\n{log}");
    assert!(
        !s.home.exists(),
        "the home was written before the check:\n{log}"
    );
}

fn a_second_setup_replaces_the_guard_and_bedrock_skips_it(guard: Guard) {
    let Some(mut s) = Session::start(guard) else {
        return;
    };
    let first = s.pid.unwrap();
    let (ok, log) = s.run_setup(true, &[]);
    assert!(ok, "{log}");
    let second = s.pid.expect("a second guard");
    assert_ne!(first, second);
    s.wait_until("the first guard stopped", || !alive(first));
    assert!(alive(second));
    // The new guard works.
    let v = claude("after-restart", 80);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "a refresh reached the host through the second guard",
    );

    let (ok, log) = s.run_setup(true, &[("CLAUDE_CODE_USE_BEDROCK", "1")]);
    assert!(ok, "{log}");
    s.wait_until("the guard stopped for Bedrock", || !alive(second));
    assert!(
        s.pid.is_none() || s.pid == Some(second),
        "a guard was started with Bedrock:\n{log}"
    );
    assert!(log.contains("CLAUDE_CODE_USE_BEDROCK=1"), "{log}");
    if guard == Guard::Rust {
        assert!(
            log.contains("[credential-guard] stopped (SIGTERM)"),
            "{log}"
        );
    } else {
        assert!(log.contains("[credential-guard] stopped"), "{log}");
    }
    s.pid = None;
}

/// What only the Rust guard promises: it walks the home without following
/// any symlink (the shell guard writes as the agent user instead, so a
/// symlinked directory can lead it no further than that user could go).
mod rust_only {
    use super::*;

    #[test]
    fn a_symlinked_directory_in_the_home_is_not_followed() {
        let Some(mut s) = Session::start(Guard::Rust) else {
            return;
        };
        let outside = s.root.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let decoy = codex("decoy", 500);
        std::fs::write(outside.join("auth.json"), &decoy).unwrap();
        std::fs::remove_dir_all(s.home.join(".codex")).unwrap();
        std::os::unix::fs::symlink(&outside, s.home.join(".codex")).unwrap();
        let refresh = codex("host-while-linked", 60);
        write_in_place(&s.host_file(CODEX), &refresh);
        // Barrier on the other pair: the claude refresh is synced in the
        // same pass or a later one than the codex change.
        let v = claude("barrier", 90);
        write_by_rename(&s.home_file(CLAUDE), &v);
        s.wait_equal(
            &s.host_file(CLAUDE),
            &v,
            "a claude refresh reached the host",
        );
        s.wait_until("the guard said it leaves the link alone", || {
            s.log_text().contains("leaving it alone")
        });
        assert_eq!(std::fs::read(outside.join("auth.json")).unwrap(), decoy);
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            1,
            "wrote through the link"
        );
        assert_eq!(
            std::fs::read(s.host_file(CODEX)).unwrap(),
            refresh,
            "the decoy reached the host"
        );

        // Once the link is gone the login comes back, in a real directory.
        std::fs::remove_file(s.home.join(".codex")).unwrap();
        s.wait_equal(
            &s.home_file(CODEX),
            &refresh,
            "the codex login was restored",
        );
        let m = std::fs::symlink_metadata(s.home.join(".codex")).unwrap();
        assert!(m.is_dir());
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (s.user.1, s.user.2, 0o700)
        );
        s.stop();
        assert!(s
            .log_text()
            .contains("[credential-guard] stopped (SIGTERM)"));
    }

    #[test]
    fn a_host_side_rename_is_reported() {
        let Some(s) = Session::start(Guard::Rust) else {
            return;
        };
        // The new host file is a new inode the container cannot see; the
        // mount keeps showing the old one. Nothing to sync, but say so.
        write_by_rename(&s.host_file(CLAUDE), &claude("host-renamed", 60));
        s.wait_until("the guard reported the orphaned mount", || {
            s.log_text()
                .contains("the host replaced the file mounted at")
        });
    }
}
