//! The container side on real bind mounts, without Docker.
//!
//! A host home `H` and its auth dir `A = H/.caw/auth` belong to a host user
//! (uid 4242: neither root nor the agent), who runs `caw auth setup` and, in
//! live mode, the host sync `caw auth sync`. A private mount namespace
//! (`unshare -m`) stands in for a container and lays the auth dir out as
//! `docker run $(caw auth docker-flags)` does:
//!
//! - live mode (the default): `A` read-only at `M`, `A/live` read-write at
//!   `M/live`;
//! - bind mode: `A` read-only at `M`, each host credential file
//!   bind-mounted over its snapshot at `M/<src>`.
//!
//! `setup-container.sh` then runs as root for a real non-root user, and the
//! tests refresh credentials from every side, in both write styles, and
//! check what reaches the other sides and what must not: half-written files,
//! older tokens, logged-out files, and whatever a container plants.
//!
//! Every scenario runs with both guards, `A/bin/caw` (the Rust guard,
//! inotify) and without it (the shell fallback, run by `busybox sh` with
//! nothing but busybox applets on `PATH`), in both modes unless it is about
//! one mode only (see `scenarios!`). What must not happen is checked after a
//! barrier that proves every hop has looked (`Session::barrier`); only the
//! host sync's idle exit is given a fixed window. A session leaves no
//! process or temp file behind, and checks that on drop.
//!
//! Needs root, util-linux `unshare`, `mount` and `flock`, a user `sync` or
//! `nobody` in /etc/passwd, and /bin/busybox for the shell tests. A test
//! that cannot run fails when `CI` is set, and otherwise says why it skips.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[path = "support/skip.rs"]
#[allow(dead_code)]
mod skip;

/// The host user: owner of `H` and `A`, and who runs setup and the sync.
const HOST_UID: u32 = 4242;
const HOST_GID: u32 = 4343;
const CLAUDE: &str = ".claude/.credentials.json";
const CODEX: &str = ".codex/auth.json";
/// Written in place, and synced by both guards: the barrier's agent.
const QWEN: &str = ".qwen/oauth_creds.json";
/// Each credential's path in the home and its `src` below `A` and `A/live`.
const CREDS: [(&str, &str); 3] = [
    (CLAUDE, "claude/credentials.json"),
    (CODEX, "codex/auth.json"),
    (QWEN, "qwen/oauth_creds.json"),
];
/// What the harness's namespace script exits with when `M` is writable.
const RW_MOUNT_POINT: i32 = 97;

fn src_of(rel: &str) -> &'static str {
    CREDS.iter().find(|(r, _)| *r == rel).unwrap().1
}

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

/// Where a change is made: the agent's home in the container, or the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Home,
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `-v A:M:ro -v A/live:M/live:rw`, and the host sync.
    Live,
    /// `-v A:M:ro` and `-v H/<file>:M/<src>:rw` per credential.
    Bind,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Bind => "bind",
        }
    }
}

/// Why this machine cannot run the tests with `guard`, if it cannot.
fn unavailable(guard: Guard) -> Option<String> {
    static COMMON: OnceLock<Option<String>> = OnceLock::new();
    let common = COMMON.get_or_init(|| {
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
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return Some("cannot create a mount namespace here (`unshare -m` failed)".into());
        }
        if agent_user().is_none() {
            return Some("no `sync` or `nobody` user in /etc/passwd".into());
        }
        None
    });
    if let Some(why) = common {
        return Some(why.clone());
    }
    if guard == Guard::Shell && !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox is missing (apt-get install busybox-static)".into());
    }
    None
}

/// Whether this test can run with `guard` here (else see [`skip`]).
fn can_run(guard: Guard) -> bool {
    match unavailable(guard) {
        None => true,
        Some(why) => skip(&why),
    }
}

/// Say why this test is skipped, on stderr itself (past the test harness's
/// capture, so it shows in a passing run), and return false; with `CI` set,
/// a test that cannot run fails instead.
fn skip(why: &str) -> bool {
    skip::skip("caw container tests", &skip::current_test(), why);
    false
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

/// Milliseconds since the epoch, `minutes` from now. Test logins expire
/// minutes apart: within every agent's token lifetime (Claude's is 8 hours),
/// beyond which a login is implausible and never synced.
fn ms_from_now(minutes: i64) -> i64 {
    (jiff::Timestamp::now().as_second() + minutes * 60) * 1000
}

/// A Claude login marked `tag`, expiring `minutes` from now.
fn claude(tag: &str, minutes: i64) -> Vec<u8> {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-SECRET-{tag}","refreshToken":"sk-ant-ort01-SECRET-{tag}","expiresAt":{},"scopes":["user:inference"]}}}}"#,
        ms_from_now(minutes)
    )
    .into_bytes()
}

/// Claude Code's file after a logout or a refused refresh.
const CLAUDE_LOGGED_OUT: &[u8] =
    br#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#;

/// A codex login marked `tag` whose access token expires `minutes` from now.
fn codex(tag: &str, minutes: i64) -> Vec<u8> {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = ms_from_now(minutes) / 1000;
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

/// A Qwen login marked `tag`, expiring `minutes` from now.
fn qwen(tag: &str, minutes: i64) -> Vec<u8> {
    format!(
        r#"{{"access_token":"qwen-SECRET-{tag}","refresh_token":"qwen-SECRET-R-{tag}","token_type":"Bearer","expiry_date":{}}}"#,
        ms_from_now(minutes)
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

/// Write as Claude Code does: `<name>.tmp.<hex>` beside the target, renamed
/// over it. The new file belongs to whoever owns the directory, as it would
/// when that user's agent writes it.
fn write_by_rename(path: &Path, bytes: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let hex = format!(
        "{:x}{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(format!(".tmp.{hex}"));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
    std::os::unix::fs::chown(&tmp, Some(dir.uid()), Some(dir.gid())).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Replace the file at `at` by a symlink to `target` owned by `owner`
/// (default: root), in one rename: a deleted file would be restored
/// meanwhile.
fn plant_symlink(target: &Path, at: &Path, owner: Option<(u32, u32)>) {
    plant(at, |tmp| {
        std::os::unix::fs::symlink(target, tmp).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(tmp, Some(uid), Some(gid)).unwrap();
        }
    });
}

/// Make an entry with `make` two directories above `at` (the host sync
/// sweeps links and FIFOs out of `live/` as soon as they appear there) and
/// rename it over `at` in one step.
fn plant(at: &Path, make: impl Fn(&Path)) {
    let above = at.ancestors().nth(3).expect("a path three levels deep");
    let tmp = above.join(format!(".planted-{}", std::process::id()));
    make(&tmp);
    std::fs::rename(&tmp, at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
}

/// Replace the file at `at` by a FIFO, in one rename.
fn plant_fifo(at: &Path) {
    plant(at, |tmp| {
        nix::unistd::mkfifo(tmp, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
    });
}

/// The inode, owner and mode of a file.
fn identity(path: &Path) -> (u64, u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.ino(), m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Owner and mode of a file, not following a link.
fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(m.is_file(), "{} is not a regular file", path.display());
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Bytes for a failure message: the start of the text, and the length.
fn show(bytes: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
    let more = if bytes.len() > SHOWN { "…" } else { "" };
    format!("{} bytes `{text}{more}`", bytes.len())
}

/// Assert that the file at `path` holds `expected`, showing both briefly.
macro_rules! assert_holds {
    ($path:expr, $expected:expr $(,)?) => {
        assert_holds!($path, $expected, "")
    };
    ($path:expr, $expected:expr, $($what:tt)+) => {{
        let path: &Path = $path;
        let expected = &$expected;
        let expected: &[u8] = expected.as_ref();
        let actual = read(path);
        if actual != expected {
            panic!(
                "{}\n{} holds {}\n        expected {}",
                format!($($what)+),
                path.display(),
                show(&actual),
                show(expected)
            );
        }
    }};
}

/// The names in a directory.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mkdir_owned(path: &Path, (uid, gid): (u32, u32), mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Running, not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

/// Live processes whose command line names `needle` (other than this one).
fn processes_naming(needle: &Path) -> Vec<(i32, String)> {
    let needle = needle.as_os_str().as_bytes();
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) && alive(pid) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, text));
        }
    }
    found
}

/// The children of `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Send `signal` to `pid` and wait up to `within` for it to be gone,
/// waking it from its poll meanwhile (see [`wake_from_sleep`]).
fn signal_and_wait(pid: i32, signal: Signal, within: Duration) -> bool {
    let _ = kill(Pid::from_raw(pid), signal);
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        wake_from_sleep(pid);
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// End the `sleep` that `pid` waits for, if it is waiting for one: the
/// shell guard then starts its next pass (or runs its stop trap) now
/// instead of at the end of the second. A pass run early is the same pass;
/// only the idle time between passes is cut. SIGPIPE, because a shell
/// reports a child ended by any other signal (except SIGINT) in the log.
fn wake_from_sleep(pid: i32) {
    // `pid` is the guard's keeper: the guard's `sleep` is a grandchild.
    for child in children_of(pid) {
        for process in std::iter::once(child).chain(children_of(child)) {
            let comm = std::fs::read_to_string(format!("/proc/{process}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                let _ = kill(Pid::from_raw(process), Signal::SIGPIPE);
            }
        }
    }
}

fn assert_no_secrets(log: &str) {
    assert!(!log.contains("SECRET"), "a token reached the log:\n{log}");
}

/// One "container": a home, a guard's PID file and its log.
struct Container {
    /// `C`.
    home: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    pid: Option<i32>,
}

/// A host home and auth dir, the host sync (live mode), and one or more
/// namespaces with a guard in each.
struct Session {
    guard: Guard,
    mode: Mode,
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// `H`, owned by the host user.
    host: PathBuf,
    /// `A = H/.caw/auth`, owned by the host user.
    auth: PathBuf,
    /// `M`: an empty directory outside the namespaces, `A` inside them.
    mount_point: PathBuf,
    /// The agent user `U`: name, uid, gid.
    user: (String, u32, u32),
    /// The host user's uid and gid.
    host_ids: (u32, u32),
    containers: Vec<Container>,
    /// `caw auth sync`, run as the host user (live mode).
    sync: Option<Child>,
    sync_log: PathBuf,
    barrier_minutes: i64,
}

impl Session {
    /// Set up `H` and `A` (as the host user) and, in live mode, start the
    /// host sync; `None` (after saying why) when the machine cannot.
    fn new(guard: Guard, mode: Mode) -> Option<Session> {
        Session::owned_by(guard, mode, None)
    }

    /// [`Session::new`] with the host user's ids (default: 4242:4343).
    fn owned_by(guard: Guard, mode: Mode, host_ids: Option<(u32, u32)>) -> Option<Session> {
        if !can_run(guard) {
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
        let user = agent_user().unwrap();
        let mut s = Session {
            guard,
            mode,
            auth: host.join(".caw/auth"),
            host,
            mount_point: root.join("mnt"),
            user,
            host_ids: host_ids.unwrap_or((HOST_UID, HOST_GID)),
            containers: Vec::new(),
            sync: None,
            sync_log: root.join("sync.log"),
            barrier_minutes: 100,
            root,
            _dir: dir,
        };
        s.add_container();
        mkdir_owned(&s.host, s.host_ids, 0o755);
        // Like ~/.caw: the sync's lock goes beside the auth dir, so the host
        // user must be able to write here.
        mkdir_owned(&s.host.join(".caw"), s.host_ids, 0o700);
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
            let path = s.host.join(rel);
            mkdir_owned(path.parent().unwrap(), s.host_ids, 0o700);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&path, Some(s.host_ids.0), Some(s.host_ids.1)).unwrap();
        }
        std::fs::create_dir(&s.mount_point).unwrap();
        mkdir_owned(&s.tmp(), (0, 0), 0o700);
        let out = s
            .as_host_user()
            .args(["auth", "setup", "--agents", "claude,codex,qwen"])
            .arg("--source-home")
            .arg(&s.host)
            .arg("--auth-dir")
            .arg(&s.auth)
            .arg("--container-home")
            .arg(&s.containers[0].home)
            .arg("--mount-point")
            .arg(&s.mount_point)
            .args(["--mode", mode.as_str()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "caw auth setup as uid {}: {}",
            s.host_ids.0,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            s.auth.join("live").is_dir(),
            mode == Mode::Live,
            "live/ in {mode:?} mode"
        );
        if guard == Guard::Rust {
            // The test build is not static, but it runs here, which is all
            // the script's hand-over check asks.
            let bin = s.auth.join("bin");
            mkdir_owned(&bin, s.host_ids, 0o755);
            std::fs::copy(env!("CARGO_BIN_EXE_caw"), bin.join("caw")).unwrap();
            std::os::unix::fs::chown(bin.join("caw"), Some(s.host_ids.0), Some(s.host_ids.1))
                .unwrap();
        } else {
            // Every caw bundles a static bin/caw; an auth dir without one
            // (an older caw's) is what makes the script fall back.
            std::fs::remove_file(s.auth.join("bin/caw")).unwrap();
        }
        if mode == Mode::Live {
            s.start_sync();
        }
        Some(s)
    }

    /// Set up and expect a running guard in the first container.
    fn start(guard: Guard, mode: Mode) -> Option<Session> {
        let mut s = Session::new(guard, mode)?;
        s.setup_ok(0);
        Some(s)
    }

    /// `caw` run as the host user, in `H`, with nothing of this process's
    /// caw environment.
    fn as_host_user(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caw"));
        cmd.uid(self.host_ids.0)
            .gid(self.host_ids.1)
            .current_dir(&self.host)
            .env("HOME", &self.host)
            .env("NO_COLOR", "1")
            .env_remove("CAW_AUTH_DIR")
            .env_remove("CAW_STATIC_BINARY")
            .env_remove("CAW_LOG")
            .env_remove("CAW_NO_SYNC")
            .stdin(Stdio::null());
        cmd
    }

    /// Start `caw auth sync` as the host user and wait until it has done its
    /// first look at every credential.
    fn start_sync(&mut self) {
        self.start_sync_with(&["--idle-exit", "0"]);
    }

    /// [`Session::start_sync`] with these options.
    fn start_sync_with(&mut self, options: &[&str]) {
        assert!(self.sync.is_none(), "a sync is already running");
        let before = self.sync_text().matches("[caw sync] watching").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.sync_log)
            .unwrap();
        let mut child = self
            .as_host_user()
            .args(["auth", "sync"])
            .args(options)
            .arg("--auth-dir")
            .arg(&self.auth)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sync_text().matches("[caw sync] watching").count() == before {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("caw auth sync exited ({status}):\n{}", self.sync_text());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("caw auth sync did not start:\n{}", self.sync_text());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.sync = Some(child);
    }

    /// Stop the sync with `signal` and reap it; its exit status.
    fn stop_sync(&mut self, signal: Signal) -> Option<ExitStatus> {
        let mut child = self.sync.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().unwrap();
                if !std::thread::panicking() {
                    panic!(
                        "caw auth sync ignored {signal:?} for 5 s:\n{}",
                        self.sync_text()
                    );
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn sync_pid(&self) -> Option<i32> {
        self.sync.as_ref().map(|c| c.id() as i32)
    }

    /// Restart the sync to exit after 1 s without an attached container
    /// (checked every second), and see it stay through two checks while
    /// `attached` says how a container is attached.
    fn sync_stays_while(&mut self, attached: &str) {
        self.stop_sync(Signal::SIGTERM);
        self.start_sync_with(&["--idle-exit", "1", "--check-every", "1"]);
        // A must-not-happen window of two checks.
        std::thread::sleep(Duration::from_millis(2200));
        assert!(
            self.sync_pid().is_some_and(alive),
            "the sync exited though {attached}:\n{}",
            self.all_logs()
        );
    }

    /// Wait (5 s at most) for the sync to exit by itself `when`; it must
    /// exit successfully.
    fn sync_exits(&mut self, when: &str) {
        let mut child = self.sync.take().expect("a sync runs");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the sync did not exit {when}:\n{}", self.sync_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
    }

    /// Another container (a home, PID file and log); returns its index.
    fn add_container(&mut self) -> usize {
        let i = self.containers.len();
        let n = if i == 0 { String::new() } else { i.to_string() };
        self.containers.push(Container {
            home: self.root.join(format!("home/agent{n}")),
            pid_file: self.root.join(format!("guard{n}.pid")),
            log: self.root.join(format!("container{n}.log")),
            pid: None,
        });
        i
    }

    /// Another container set up with a running guard; returns its index.
    fn start_container(&mut self) -> usize {
        let i = self.add_container();
        self.setup_ok(i);
        i
    }

    fn setup_ok(&mut self, i: usize) {
        let (ok, log) = self.run_setup(i, true, &[]);
        assert!(ok, "setup-container.sh failed:\n{log}");
        assert!(
            self.containers[i].pid.is_some_and(alive),
            "no guard running:\n{log}"
        );
    }

    /// `$TMPDIR` in the containers: what the guards leave there is seen.
    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn host_file(&self, rel: &str) -> PathBuf {
        self.host.join(rel)
    }

    /// `C/<rel>` of the first container.
    fn home_file(&self, rel: &str) -> PathBuf {
        self.home_of(0, rel)
    }

    fn home_of(&self, i: usize, rel: &str) -> PathBuf {
        self.containers[i].home.join(rel)
    }

    /// `A/live/<src>` of a home path.
    fn live_file(&self, rel: &str) -> PathBuf {
        self.auth.join("live").join(src_of(rel))
    }

    /// What the guard keeps the home copy equal to, as the guard names it:
    /// `M/live/<src>` or `M/<src>`.
    fn shared_in_container(&self, rel: &str) -> PathBuf {
        match self.mode {
            Mode::Live => self.mount_point.join("live").join(src_of(rel)),
            Mode::Bind => self.mount_point.join(src_of(rel)),
        }
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

    /// Put `tool` (not a busybox applet) on the shell guard's `PATH` too.
    fn add_to_shell_path(&self, tool: &Path) {
        let dir = self.busybox_path();
        let link = dir.join(tool.file_name().unwrap());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(tool, link).unwrap();
    }

    /// Run `setup-container.sh M C U` for container `i` in a fresh
    /// namespace laid out like `docker run $(caw auth docker-flags)`;
    /// `mounts` false leaves the credential mounts out (`M/live`, or the
    /// file binds). Returns the exit status and the container's log so far.
    fn run_setup(&mut self, i: usize, mounts: bool, env: &[(&str, &str)]) -> (bool, String) {
        let m = self.mount_point.display().to_string();
        let mut script = format!(
            "set -e\nmount --bind '{a}' '{m}'\nmount -o remount,bind,ro '{m}'\n\
             if (: >> '{m}/manifest.json') 2>/dev/null; then\n\
             \x20   echo 'test harness: the auth dir is writable in the container' >&2\n\
             \x20   exit {RW_MOUNT_POINT}\nfi\n",
            a = self.auth.display()
        );
        if mounts {
            match self.mode {
                Mode::Live => script.push_str(&format!(
                    "mount --bind '{}' '{m}/live'\n",
                    self.auth.join("live").display()
                )),
                Mode::Bind => {
                    for (rel, src) in CREDS {
                        script.push_str(&format!(
                            "mount --bind '{}' '{m}/{src}'\n",
                            self.host_file(rel).display()
                        ));
                    }
                }
            }
        }
        let user = &self.user.0;
        let c = self.containers[i].home.display();
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
        let container = &self.containers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&container.log)
            .unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("CAW_GUARD_PID_FILE", &container.pid_file)
            .env("TMPDIR", self.tmp())
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
        assert_ne!(status.code(), Some(RW_MOUNT_POINT), "{}", self.log_of(i));
        let pid = std::fs::read_to_string(&container.pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        self.containers[i].pid = pid;
        (status.success(), self.log_of(i))
    }

    /// The first container's log.
    fn log_text(&self) -> String {
        self.log_of(0)
    }

    fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(&self.containers[i].log).unwrap_or_default()
    }

    fn sync_text(&self) -> String {
        std::fs::read_to_string(&self.sync_log).unwrap_or_default()
    }

    /// Every log, for failure messages.
    fn all_logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.containers.len() {
            out.push_str(&format!("--- container {i} ---\n{}", self.log_of(i)));
        }
        if self.mode == Mode::Live {
            out.push_str(&format!("--- caw auth sync ---\n{}", self.sync_text()));
        }
        out
    }

    /// Wait until `cond` holds, or fail with `what` and the logs.
    fn wait_until(&self, what: &str, cond: impl FnMut() -> bool) {
        self.wait_for(what, self.guard.budget(), cond);
    }

    fn wait_for(&self, what: &str, budget: Duration, cond: impl FnMut() -> bool) {
        self.wait_for_with(what, budget, false, cond);
    }

    /// Wait until `cond` holds; with `wake`, the shell guards' polls are
    /// cut short meanwhile ([`wake_from_sleep`]).
    fn wait_for_with(
        &self,
        what: &str,
        budget: Duration,
        wake: bool,
        mut cond: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + budget;
        let mut next_wake = Instant::now() + Duration::from_millis(20);
        while !cond() {
            if wake && self.guard == Guard::Shell && Instant::now() >= next_wake {
                next_wake = Instant::now() + Duration::from_millis(20);
                for pid in self.containers.iter().filter_map(|c| c.pid) {
                    wake_from_sleep(pid);
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} guard, {:?} mode: timed out after {budget:?} waiting until {what}\n{}",
                    self.guard,
                    self.mode,
                    self.all_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_equal(&self, path: &Path, bytes: &[u8], what: &str) {
        self.wait_until(what, || std::fs::read(path).is_ok_and(|b| b == bytes));
    }

    /// Long enough for the engine to repair a side left incomplete or
    /// unusable, plus one sync.
    fn repair_budget(&self) -> Duration {
        caw_sync::REPAIR_AFTER + self.guard.budget()
    }

    /// Proof that every hop from `from` to the other side has looked at
    /// the claude and codex pairs since a change made there: two qwen
    /// refreshes in a row written on `from`, each waited for on the other
    /// side.
    ///
    /// Every hop takes the pairs in manifest order (claude, codex, qwen). A
    /// Rust engine reads its events in order, so it looks at the change in
    /// the same look as the first refresh or an earlier one, and passes any
    /// copy it makes on before that refresh. The shell guard polls: the
    /// first refresh is synced in a pass that may have looked at claude
    /// just before the change; the second is written after the first
    /// arrived, so it is synced in a later pass, which looked at claude
    /// after the change and after whatever an earlier hop passed on. (So
    /// the shell guard's polls are cut short here: only their order counts.)
    fn barrier(&mut self, from: Side) {
        for _ in 0..2 {
            self.barrier_minutes += 1;
            let bytes = qwen("barrier", self.barrier_minutes);
            let (src, dst) = match from {
                Side::Home => (self.home_file(QWEN), self.host_file(QWEN)),
                Side::Host => (self.host_file(QWEN), self.home_file(QWEN)),
            };
            write_in_place(&src, &bytes);
            // Only the order of passes matters here, not their pace.
            self.wait_for_with(
                &format!("a qwen refresh from the {from:?} side arrived (barrier)"),
                self.guard.budget(),
                true,
                || std::fs::read(&dst).is_ok_and(|b| b == bytes),
            );
        }
    }

    /// Stop every guard (SIGTERM), failing if one does not stop.
    fn stop_guards(&mut self) {
        let mut stuck = Vec::new();
        for c in &mut self.containers {
            if let Some(pid) = c.pid.take() {
                if !signal_and_wait(pid, Signal::SIGTERM, Duration::from_secs(5)) {
                    signal_and_wait(pid, Signal::SIGKILL, Duration::from_secs(5));
                    stuck.push(pid);
                }
            }
        }
        if !stuck.is_empty() && !std::thread::panicking() {
            panic!(
                "guards {stuck:?} ignored SIGTERM for 5 s\n{}",
                self.all_logs()
            );
        }
    }

    /// The live copy is owned by `live/`'s owner (the host user) with mode 0600.
    fn assert_live_owned(&self, rel: &str) {
        let live = self.auth.join("live");
        let dir = std::fs::metadata(&live).unwrap();
        assert_eq!((dir.uid(), dir.gid()), self.host_ids, "owner of live/");
        assert_eq!(
            owner_and_mode(&self.live_file(rel)),
            (self.host_ids.0, self.host_ids.1, 0o600),
            "{}: owned by live/'s owner",
            self.live_file(rel).display()
        );
    }

    /// The host file has the host user's owner and mode 0600, and its
    /// directory holds no temp file.
    fn assert_host_file_kept(&self, rel: &str) {
        let path = self.host_file(rel);
        assert_eq!(
            owner_and_mode(&path),
            (self.host_ids.0, self.host_ids.1, 0o600),
            "{}: owner and mode",
            path.display()
        );
        let dir = path.parent().unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let left: Vec<String> = entries(dir)
            .into_iter()
            .filter(|n| n.contains(&name) && *n != name)
            .collect();
        assert!(
            left.is_empty(),
            "temp files left in {}: {left:?}",
            dir.display()
        );
    }

    /// Within `budget`, every live file is a plain file holding `logins`
    /// (in `CREDS` order) again, and the host files and the home copies
    /// hold them too: what was planted in live/ went nowhere.
    fn assert_repaired(&self, what: &str, logins: &[Vec<u8>], budget: Duration) {
        self.wait_for(
            &format!("the host sync repaired live/ after {what}"),
            budget,
            || {
                CREDS.iter().zip(logins).all(|((rel, _), bytes)| {
                    let live = self.live_file(rel);
                    std::fs::symlink_metadata(&live).is_ok_and(|m| m.is_file())
                        && std::fs::read(&live).is_ok_and(|b| b == *bytes)
                })
            },
        );
        for ((rel, _), bytes) in CREDS.iter().zip(logins) {
            assert_holds!(&self.host_file(rel), bytes, "{what} reached the host");
            assert_holds!(&self.home_file(rel), bytes, "{what} reached the home");
            self.assert_host_file_kept(rel);
            self.assert_live_owned(rel);
        }
        assert!(
            self.sync_pid().is_some_and(alive),
            "the sync died:\n{}",
            self.all_logs()
        );
    }

    /// Whether an exclusive lock on `A/live` is refused: a guard holds its
    /// shared lock there (how the host sync tells a container is attached).
    fn live_is_locked(&self) -> bool {
        let dir = std::fs::File::open(self.auth.join("live")).unwrap();
        matches!(dir.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_guards();
        if self.sync.is_some() {
            let status = self.stop_sync(Signal::SIGTERM);
            if !std::thread::panicking() {
                assert!(
                    status.is_some_and(|s| s.success()),
                    "caw auth sync on SIGTERM: {status:?}\n{}",
                    self.sync_text()
                );
            }
        }
        let mut problems = Vec::new();
        // Stopped guards clean up after themselves.
        let tmp = entries(&self.tmp());
        if !tmp.is_empty() {
            problems.push(format!("left in the containers' $TMPDIR: {tmp:?}"));
        }
        // Nothing this session started may outlive it.
        let left = processes_naming(&self.root);
        for (pid, _) in &left {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        if !left.is_empty() {
            problems.push(format!("processes left behind: {left:?}"));
        }
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("{}\n{}", problems.join("\n"), self.all_logs());
        }
    }
}

/// `#[test]` wrappers: one per scenario for the given guard and mode.
macro_rules! tests {
    ($guard:ident, $mode:ident: $($name:ident),* $(,)?) => {
        $(#[test] fn $name() { crate::$name(crate::Guard::$guard, crate::Mode::$mode) })*
    };
}

/// Every scenario in `every` runs with both guards in both modes; `live`
/// and `bind` ones with both guards in that mode; `rust` ones with the Rust
/// guard in both modes; `shell_live` ones with the shell guard in live mode.
macro_rules! scenarios {
    (
        every: [$($e:ident),* $(,)?],
        live: [$($l:ident),* $(,)?],
        bind: [$($b:ident),* $(,)?],
        rust: [$($r:ident),* $(,)?],
        shell_live: [$($sl:ident),* $(,)?] $(,)?
    ) => {
        mod rust_guard {
            mod live { tests!(Rust, Live: $($e,)* $($l,)* $($r,)*); }
            mod bind { tests!(Rust, Bind: $($e,)* $($b,)* $($r,)*); }
        }
        mod shell_guard {
            mod live { tests!(Shell, Live: $($e,)* $($l,)* $($sl,)*); }
            mod bind { tests!(Shell, Bind: $($e,)* $($b,)*); }
        }
    };
}

scenarios! {
    every: [
        setup_copies_every_file_owned_by_the_agent_user,
        refreshes_reach_the_other_side_in_both_write_styles,
        half_written_and_older_tokens_are_not_propagated,
        a_logged_out_file_never_replaces_a_login,
        a_planted_symlink_is_replaced_and_a_deleted_copy_restored,
        a_burst_of_200_writes_ends_equal,
        a_missing_credential_mount_stops_setup,
        a_second_setup_replaces_the_guard_and_bedrock_skips_it,
        a_killed_guard_is_restarted,
        concurrent_writes_end_with_the_newest_everywhere,
        a_fifo_flapping_in_the_home_does_not_hang_the_guard,
    ],
    live: [
        a_host_rename_refresh_reaches_the_home,
        a_container_refresh_reaches_the_host_and_a_second_container,
        what_a_container_plants_in_live_never_reaches_the_host,
        containers_share_while_the_sync_is_down_and_it_catches_up,
        the_sync_stays_while_a_guard_is_attached,
        a_live_dir_owned_by_the_agent_user,
    ],
    bind: [a_host_side_rename_is_reported],
    rust: [a_symlinked_directory_in_the_home_is_not_followed],
    shell_live: [a_shell_guard_without_flock_keeps_the_sync_by_heartbeat],
}

fn setup_copies_every_file_owned_by_the_agent_user(guard: Guard, mode: Mode) {
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let (_, uid, gid) = s.user;
    for rel in [CLAUDE, CODEX, QWEN, ".claude.json"] {
        assert_eq!(
            owner_and_mode(&s.home_file(rel)),
            (uid, gid, 0o600),
            "{rel}"
        );
    }
    for (rel, _) in CREDS {
        assert_holds!(&s.home_file(rel), read(&s.host_file(rel)), "{rel}");
        if mode == Mode::Live {
            assert_holds!(&s.live_file(rel), read(&s.host_file(rel)), "{rel}");
            s.assert_live_owned(rel);
        }
    }
    for dir in [".claude", ".codex", ".qwen", ""] {
        let m = std::fs::metadata(s.containers[0].home.join(dir)).unwrap();
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
    let guard_pid = s.containers[0].pid.unwrap();
    let exe = std::fs::read_link(format!("/proc/{guard_pid}/exe")).unwrap();
    assert_eq!(exe, expected_exe, "the guard under test is running");
    assert!(
        s.log_text().contains(&format!("{} mode", mode.as_str())),
        "the guard names its mode:\n{}",
        s.log_text()
    );
    if mode == Mode::Live {
        // The host sync runs as the host user, its lock beside the auth dir.
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", s.sync_pid().unwrap())).unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("4242")),
            "{status}"
        );
        let lock = s.host.join(".caw/.auth.sync.lock");
        let m = std::fs::metadata(&lock).unwrap();
        assert_eq!((m.uid(), m.gid()), s.host_ids, "{}", lock.display());
        assert!(
            s.sync_text().contains("watching 3 credential(s)"),
            "{}",
            s.sync_text()
        );
        // The guard attaches; busybox here has no flock(1) for the shell
        // guard (see the_sync_stays_while_a_guard_is_attached).
        assert_eq!(
            s.live_is_locked(),
            guard == Guard::Rust,
            "a guard holds its shared lock on live/"
        );
        // It stops cleanly on SIGTERM.
        let status = s.stop_sync(Signal::SIGTERM).unwrap();
        assert!(status.success(), "{status}\n{}", s.sync_text());
        assert!(
            s.sync_text().contains("[caw sync] stopped (SIGTERM)"),
            "{}",
            s.sync_text()
        );
    }
    assert_no_secrets(&s.all_logs());
}

fn refreshes_reach_the_other_side_in_both_write_styles(guard: Guard, mode: Mode) {
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let claude_id = identity(&s.host_file(CLAUDE));
    let codex_id = identity(&s.host_file(CODEX));

    // The host refreshes in place (codex, gemini) ...
    let v = claude("host1", 50);
    write_in_place(&s.host_file(CLAUDE), &v);
    s.wait_equal(
        &s.home_file(CLAUDE),
        &v,
        "a host in-place refresh reached the home",
    );
    if mode == Mode::Live {
        // ... or by temp file + rename (Claude Code, Qwen Code, opencode),
        // which only the live channel carries.
        let v = claude("host1r", 51);
        write_by_rename(&s.host_file(CLAUDE), &v);
        s.wait_equal(
            &s.home_file(CLAUDE),
            &v,
            "a host rename refresh reached the home",
        );
    }
    // The agent refreshes by temp file + rename (Claude Code) ...
    let ino_before = identity(&s.host_file(CLAUDE)).0;
    let v = claude("home1", 52);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "a home rename refresh reached the host",
    );
    if mode == Mode::Live {
        // The guard wrote the live copy as live/'s owner; the host sync
        // replaced the host file by a rename, as the agent would, keeping
        // its owner and mode.
        assert_holds!(&s.live_file(CLAUDE), v);
        s.assert_live_owned(CLAUDE);
        assert_ne!(
            identity(&s.host_file(CLAUDE)).0,
            ino_before,
            "the host sync writes by rename"
        );
        s.assert_host_file_kept(CLAUDE);
    }
    // ... or in place (codex), which only the Rust guard can judge: the
    // shell guard says so once and leaves both sides alone.
    let v = codex("home1", 52);
    write_in_place(&s.home_file(CODEX), &v);
    if guard == Guard::Shell {
        let said = "the shell guard does not sync codex";
        s.wait_until("the shell guard said it does not sync codex", || {
            s.log_text().contains(said)
        });
        let host = codex("host2", 54);
        write_in_place(&s.host_file(CODEX), &host);
        if mode == Mode::Live {
            s.wait_equal(
                &s.live_file(CODEX),
                &host,
                "the host sync put the codex refresh in live/",
            );
        }
        s.barrier(Side::Home);
        assert_holds!(&s.host_file(CODEX), host, "the shell guard synced codex");
        assert_holds!(&s.home_file(CODEX), v, "the shell guard synced codex");
        assert_eq!(s.log_text().matches(said).count(), 1, "{}", s.log_text());
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

    match mode {
        Mode::Bind => {
            // A bind-mounted file is written in place: same inode, owner, mode.
            assert_eq!(
                identity(&s.host_file(CLAUDE)),
                claude_id,
                "host claude file"
            );
            assert_eq!(identity(&s.host_file(CODEX)), codex_id, "host codex file");
        }
        Mode::Live => {
            for (rel, _) in CREDS {
                s.assert_host_file_kept(rel);
                s.assert_live_owned(rel);
            }
        }
    }
    let (_, uid, gid) = s.user;
    assert_eq!(owner_and_mode(&s.home_file(CLAUDE)), (uid, gid, 0o600));
    let log = s.log_text();
    assert!(
        log.contains(&format!(
            "[credential-guard] synced {} -> {}",
            s.home_file(CLAUDE).display(),
            s.shared_in_container(CLAUDE).display()
        )),
        "{log}"
    );
    if mode == Mode::Live {
        let sync = s.sync_text();
        assert!(
            sync.contains(&format!(
                "[caw sync] synced {} -> {}",
                s.live_file(CLAUDE).display(),
                s.host_file(CLAUDE).display()
            )),
            "{sync}"
        );
    }
    assert_no_secrets(&s.all_logs());
}

fn half_written_and_older_tokens_are_not_propagated(guard: Guard, mode: Mode) {
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let good = read(&s.host_file(CLAUDE));

    // A refresh cut off half-way, on either side, goes nowhere.
    let full = claude("half", 60);
    write_in_place(&s.home_file(CLAUDE), &full[..full.len() / 2]);
    s.barrier(Side::Home);
    assert_holds!(
        &s.host_file(CLAUDE),
        good,
        "a half-written home file reached the host"
    );
    // Missing only the closing brace: balanced-looking to a naive check.
    write_in_place(&s.home_file(CLAUDE), &full[..full.len() - 1]);
    s.barrier(Side::Home);
    assert_holds!(
        &s.host_file(CLAUDE),
        good,
        "a truncated home file reached the host"
    );
    if mode == Mode::Live {
        assert_holds!(&s.live_file(CLAUDE), good, "it reached live/");
    }
    // When the agent finishes the write, it goes through.
    write_in_place(&s.home_file(CLAUDE), &full);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &full,
        "the completed write reached the host",
    );

    let host_half = claude("hosthalf", 62);
    write_in_place(&s.host_file(CLAUDE), &host_half[..40]);
    s.barrier(Side::Host);
    assert_holds!(
        &s.home_file(CLAUDE),
        full,
        "a half-written host file reached the home"
    );
    if mode == Mode::Live {
        assert_holds!(&s.live_file(CLAUDE), full, "it reached live/");
    }
    // Finished, with the bytes everyone already has.
    write_in_place(&s.host_file(CLAUDE), &full);

    // An older token never replaces a newer one, from either side. The
    // engine carries the newer one back; the shell guard only holds.
    let older = claude("older-home", 1);
    write_by_rename(&s.home_file(CLAUDE), &older);
    if guard == Guard::Rust {
        s.wait_equal(
            &s.home_file(CLAUDE),
            &full,
            "the newer login was carried back over an older home token",
        );
    } else {
        s.barrier(Side::Home);
    }
    assert_holds!(
        &s.host_file(CLAUDE),
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
    // The guard (bind) or the host sync (live) carries the newer one back,
    // without touching the other side.
    s.wait_equal(
        &s.host_file(CLAUDE),
        &newest,
        "the newer login was carried back over an older host token",
    );
    if mode == Mode::Live {
        assert_holds!(&s.live_file(CLAUDE), newest);
    }
    assert_holds!(
        &s.home_file(CLAUDE),
        newest,
        "an older host token reached the home"
    );

    if guard == Guard::Rust {
        // A home copy left incomplete by a writer that is gone is repaired
        // after a few seconds of quiet.
        write_in_place(&s.home_file(CLAUDE), &newest[..30]);
        let start = Instant::now();
        s.wait_for(
            "the incomplete home copy was repaired",
            s.repair_budget(),
            || std::fs::read(s.home_file(CLAUDE)).is_ok_and(|b| b == newest),
        );
        assert!(
            start.elapsed() >= caw_sync::REPAIR_AFTER - Duration::from_millis(200),
            "repaired after {:?}: a write in progress would be cut off",
            start.elapsed()
        );
        // Said after the rename: it may come a moment after the file.
        s.wait_until("the guard said it repaired the home copy", || {
            s.log_text().contains("(repaired")
        });
        assert_holds!(&s.host_file(CLAUDE), newest);
    }
    assert_no_secrets(&s.all_logs());
}

fn a_logged_out_file_never_replaces_a_login(guard: Guard, mode: Mode) {
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let good = read(&s.host_file(CLAUDE));
    let rule = "holds no usable login";
    // A logout in the container, as Claude Code writes it, then `{}`.
    write_by_rename(&s.home_file(CLAUDE), CLAUDE_LOGGED_OUT);
    s.barrier(Side::Home);
    write_by_rename(&s.home_file(CLAUDE), b"{}");
    s.barrier(Side::Home);
    assert_holds!(&s.host_file(CLAUDE), good, "a logout reached the host");
    if mode == Mode::Live {
        assert_holds!(&s.live_file(CLAUDE), good, "a logout reached live/");
    }
    assert_holds!(&s.home_file(CLAUDE), b"{}", "the logout stays in the home");
    let log = s.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(rule)).collect();
    assert_eq!(lines.len(), 1, "one line naming the rule:\n{log}");
    assert!(
        lines[0].contains(&s.home_file(CLAUDE).display().to_string()),
        "{}",
        lines[0]
    );
    if guard == Guard::Rust {
        // Once quiet, the container's logged-out copy heals from the shared
        // login (a lost refresh race must not leave it logged out).
        s.wait_for(
            "the logged-out home copy healed from live/",
            s.repair_budget(),
            || std::fs::read(s.home_file(CLAUDE)).is_ok_and(|b| b == good),
        );
        assert_holds!(&s.host_file(CLAUDE), good, "the heal wrote the host");
        // Logged out again with the same shared login (the agent's refresh
        // with it was refused): healed once only, so the agent is not handed
        // a dead token over and over.
        write_by_rename(&s.home_file(CLAUDE), CLAUDE_LOGGED_OUT);
        std::thread::sleep(s.repair_budget());
        assert_holds!(
            &s.home_file(CLAUDE),
            CLAUDE_LOGGED_OUT,
            "healed twice from one login"
        );
    }

    // Logging in again, in the container, reaches everyone.
    let v = claude("login-again", 60);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(&s.host_file(CLAUDE), &v, "a new login reached the host");

    // A logout on the host stays there too: the container keeps its login.
    write_in_place(&s.host_file(CLAUDE), CLAUDE_LOGGED_OUT);
    s.barrier(Side::Host);
    assert_holds!(&s.home_file(CLAUDE), v, "a host logout reached the home");
    if mode == Mode::Live {
        assert_holds!(&s.live_file(CLAUDE), v, "a host logout reached live/");
        let sync = s.sync_text();
        let lines: Vec<&str> = sync.lines().filter(|l| l.contains(rule)).collect();
        assert_eq!(lines.len(), 1, "one line naming the rule:\n{sync}");
        assert!(
            lines[0].contains(&s.host_file(CLAUDE).display().to_string()),
            "{}",
            lines[0]
        );
    }

    // Logging in again on the host reaches the container.
    let v = claude("host-login-again", 62);
    match mode {
        Mode::Live => write_by_rename(&s.host_file(CLAUDE), &v),
        // A bind mount only shows in-place writes.
        Mode::Bind => write_in_place(&s.host_file(CLAUDE), &v),
    }
    s.wait_equal(
        &s.home_file(CLAUDE),
        &v,
        "a new host login reached the home",
    );
    if mode == Mode::Live {
        s.assert_host_file_kept(CLAUDE);
    }
    assert_no_secrets(&s.all_logs());
}

fn a_planted_symlink_is_replaced_and_a_deleted_copy_restored(guard: Guard, mode: Mode) {
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    let host = read(&s.host_file(CLAUDE));
    // The agent user points its credential at a file it should not reach.
    let decoy = s.root.join("decoy.json");
    let decoy_bytes = claude("decoy", 500);
    std::fs::write(&decoy, &decoy_bytes).unwrap();
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o600)).unwrap();
    plant_symlink(&decoy, &s.home_file(CLAUDE), Some((s.user.1, s.user.2)));
    s.wait_until("the symlink was replaced by a regular file", || {
        std::fs::symlink_metadata(s.home_file(CLAUDE)).is_ok_and(|m| m.is_file())
    });
    assert_holds!(&s.home_file(CLAUDE), host);
    assert_holds!(&decoy, decoy_bytes, "the link's target was written");
    assert_holds!(
        &s.host_file(CLAUDE),
        host,
        "the link's target reached the host"
    );
    if mode == Mode::Live {
        assert_holds!(&s.live_file(CLAUDE), host, "it reached live/");
    }

    // Deleted: restored, owned by the agent user.
    std::fs::remove_file(s.home_file(CLAUDE)).unwrap();
    s.wait_equal(&s.home_file(CLAUDE), &host, "the deleted copy was restored");
    let (_, uid, gid) = s.user;
    assert_eq!(owner_and_mode(&s.home_file(CLAUDE)), (uid, gid, 0o600));
    // The whole directory too (moved away first: an `rm -rf` races the
    // guard, which restores the file while the directory is emptied).
    let gone = s.root.join("claude-gone");
    std::fs::rename(s.containers[0].home.join(".claude"), &gone).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();
    s.wait_equal(
        &s.home_file(CLAUDE),
        &host,
        "the deleted directory was restored",
    );
    let leftovers = entries(&s.containers[0].home.join(".claude"));
    assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
    assert_holds!(&s.host_file(CLAUDE), host);
    assert_no_secrets(&s.all_logs());
}

fn a_burst_of_200_writes_ends_equal(guard: Guard, mode: Mode) {
    let Some(s) = Session::start(guard, mode) else {
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
        // A bind-mounted host file only sees in-place writes; live mode
        // sees both.
        if mode == Mode::Live && i % 2 == 1 {
            write_by_rename(&s.host_file(CLAUDE), &last);
        } else {
            write_in_place(&s.host_file(CLAUDE), &last);
        }
    }
    s.wait_equal(
        &s.home_file(CLAUDE),
        &last,
        "the last of 200 host writes reached the home",
    );
    match mode {
        Mode::Bind => assert_eq!(identity(&s.host_file(CLAUDE)), host_id),
        Mode::Live => {
            assert_holds!(&s.live_file(CLAUDE), last);
            s.assert_host_file_kept(CLAUDE);
            s.assert_live_owned(CLAUDE);
        }
    }
    let log = s.log_text();
    let syncs = log.matches("[credential-guard] synced").count();
    assert!(
        syncs < 200,
        "{syncs} syncs for 400 writes: bursts are not coalesced"
    );
    assert_no_secrets(&s.all_logs());
}

fn a_missing_credential_mount_stops_setup(guard: Guard, mode: Mode) {
    let Some(mut s) = Session::new(guard, mode) else {
        return;
    };
    // Only `-v A:M:ro`: in bind mode each M/<src> is then the auth dir's
    // snapshot, which a guard would keep in sync instead of the host file;
    // in live mode M/live is the auth dir's read-only copy.
    let (ok, log) = s.run_setup(0, false, &[]);
    assert!(!ok, "setup succeeded without the credential mounts:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    let expected: &[&str] = match mode {
        Mode::Bind => &["not bind-mounted from the host", "caw auth docker-flags"],
        Mode::Live => &[
            "live",
            "is not mounted from the host",
            "the live credentials are missing",
            "caw auth docker-flags",
        ],
    };
    for part in expected {
        assert!(errors[0].contains(part), "`{part}` not in: {}", errors[0]);
    }
    assert!(s.containers[0].pid.is_none(), "a guard was started:\n{log}");
    assert!(
        !s.containers[0].home.exists(),
        "the home was written before the check:\n{log}"
    );
    if mode == Mode::Bind {
        // Emptied, as a bind source that vanished leaves it.
        std::fs::write(s.auth.join("claude/credentials.json"), b"").unwrap();
        std::fs::write(&s.containers[0].log, b"").unwrap();
        let (ok, log) = s.run_setup(0, false, &[]);
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
        assert!(s.containers[0].pid.is_none(), "a guard was started:\n{log}");
        assert!(!s.containers[0].home.exists());
    }
}

fn a_second_setup_replaces_the_guard_and_bedrock_skips_it(guard: Guard, mode: Mode) {
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let first = s.containers[0].pid.unwrap();
    let (ok, log) = s.run_setup(0, true, &[]);
    assert!(ok, "{log}");
    let second = s.containers[0].pid.expect("a second guard");
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

    let (ok, log) = s.run_setup(0, true, &[("CLAUDE_CODE_USE_BEDROCK", "1")]);
    assert!(ok, "{log}");
    s.wait_until("the guard stopped for Bedrock", || !alive(second));
    let pid = s.containers[0].pid.take();
    assert!(
        pid.is_none() || pid == Some(second),
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
}

/// The agent and the host refresh at the same moments, 5 rounds of 15
/// writes each: whatever the interleaving, each round ends with the newest
/// login (the latest expiry) everywhere. A guard that renames what it read
/// over a file someone has just rewritten loses that login.
fn concurrent_writes_end_with_the_newest_everywhere(guard: Guard, mode: Mode) {
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    let (home, host) = (s.home_file(CLAUDE), s.host_file(CLAUDE));
    for round in 0..5i64 {
        let base = 100 + round * 100;
        let writer = |path: &Path, side: i64, in_place: bool| {
            let mut mine = Vec::new();
            for k in 0..15i64 {
                mine = claude(&format!("r{round}s{side}k{k}"), base + 2 * k + side);
                if in_place {
                    write_in_place(path, &mine);
                } else {
                    write_by_rename(path, &mine);
                }
                let pause = (k * 37 + side * 11) % 120;
                std::thread::sleep(Duration::from_millis(pause as u64));
            }
            mine
        };
        let host_in_place = mode == Mode::Bind || round % 2 == 1;
        // The last write of one side (the agent's in even rounds) is the
        // latest expiry of the round.
        let (agent_side, host_side) = if round % 2 == 0 { (1, 0) } else { (0, 1) };
        let newest = std::thread::scope(|scope| {
            let agent = scope.spawn(|| writer(&home, agent_side, round % 2 == 0));
            let host = scope.spawn(|| writer(&host, host_side, host_in_place));
            let (agent, host) = (agent.join().unwrap(), host.join().unwrap());
            if agent_side == 1 {
                agent
            } else {
                host
            }
        });
        s.wait_equal(
            &home,
            &newest,
            &format!("round {round}: the newest reached the home"),
        );
        s.wait_equal(
            &host,
            &newest,
            &format!("round {round}: the newest stayed on the host"),
        );
    }
    assert_no_secrets(&s.all_logs());
}

/// A guard that dies (killed by root in the container, say) is started
/// again by its keeper, the process `container-setup` records, and says so.
fn a_killed_guard_is_restarted(guard: Guard, mode: Mode) {
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    let keeper = s.containers[0].pid.unwrap();
    let guard_of = |keeper: i32| {
        children_of(keeper).into_iter().find(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.iter().any(|a| *a == b"guard" || *a == b"--guard")
                && !args.iter().any(|a| *a == b"--keep")
        })
    };
    let first = guard_of(keeper).expect("the recorded process runs the guard");
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    s.wait_for(
        "the guard was started again",
        Duration::from_secs(15),
        || guard_of(keeper).is_some_and(|pid| pid != first),
    );
    assert!(alive(keeper));
    let v = claude("after-kill", 80);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "a refresh reached the host through the restarted guard",
    );
    let log = s.log_text();
    assert!(log.contains(&format!("(pid {first})")), "{log}");
    assert!(
        log.contains("SIGKILL") || log.contains("status 137"),
        "{log}"
    );
}

/// The bug the live mode fixes: Claude Code, Qwen Code and opencode
/// rewrite their credential by temp file + rename, which a single-file bind
/// mount never shows the container.
fn a_host_rename_refresh_reaches_the_home(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Live);
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    for i in 0..3 {
        let v = claude(&format!("renamed{i}"), 50 + i);
        write_by_rename(&s.host_file(CLAUDE), &v);
        s.wait_equal(
            &s.home_file(CLAUDE),
            &v,
            &format!("host rename refresh {} of 3 reached the home", i + 1),
        );
    }
    let v = qwen("renamed", 60);
    write_by_rename(&s.host_file(QWEN), &v);
    s.wait_equal(
        &s.home_file(QWEN),
        &v,
        "a Qwen-style rename reached the home",
    );
    // The container is still connected: its refresh reaches the renamed file.
    let v = claude("after-renames", 70);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "a home refresh reached the renamed host file",
    );
    s.assert_host_file_kept(CLAUDE);
    assert!(
        !s.log_text().contains("the host replaced the file"),
        "{}",
        s.log_text()
    );
    assert_no_secrets(&s.all_logs());
}

fn a_container_refresh_reaches_the_host_and_a_second_container(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Live);
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let second = s.start_container();
    assert_holds!(
        &s.home_of(second, CLAUDE),
        read(&s.host_file(CLAUDE)),
        "the second container got the login at setup"
    );
    if guard == Guard::Rust {
        assert!(s.live_is_locked(), "the guards hold their lock on live/");
    }
    let v = claude("first", 60);
    write_by_rename(&s.home_of(0, CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "the first container's refresh reached the host",
    );
    s.wait_equal(
        &s.home_of(second, CLAUDE),
        &v,
        "the first container's refresh reached the second",
    );
    let v = claude("second", 62);
    write_in_place(&s.home_of(second, CLAUDE), &v);
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v,
        "the second container's refresh reached the host",
    );
    s.wait_equal(
        &s.home_of(0, CLAUDE),
        &v,
        "the second container's refresh reached the first",
    );
    s.assert_host_file_kept(CLAUDE);
    s.assert_live_owned(CLAUDE);
    let (_, uid, gid) = s.user;
    for i in [0, second] {
        assert_eq!(owner_and_mode(&s.home_of(i, CLAUDE)), (uid, gid, 0o600));
    }
    assert_no_secrets(&s.all_logs());
}

/// `live/` is the one place a container writes: whatever it plants there
/// is never followed, never blocks a reader, never reaches the host or a
/// home, and the host sync puts the login back.
fn what_a_container_plants_in_live_never_reaches_the_host(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Live);
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    let mut logins: Vec<Vec<u8>> = CREDS
        .iter()
        .map(|(rel, _)| read(&s.host_file(rel)))
        .collect();

    // live/ belongs to the host user, so the container's root plants here:
    // a symlink to a fresher login the host user can read.
    let live = s.live_file(CLAUDE);
    let decoy = s.root.join("decoy.json");
    let decoy_bytes = claude("decoy", 500);
    std::fs::write(&decoy, &decoy_bytes).unwrap();
    std::os::unix::fs::chown(&decoy, Some(s.host_ids.0), Some(s.host_ids.1)).unwrap();
    plant_symlink(&decoy, &live, None);
    s.assert_repaired("a symlink", &logins, s.guard.budget());
    assert_holds!(&decoy, decoy_bytes, "the link's target was written");

    // A FIFO, which a reader that opened it would block on, and a
    // complete, fresher login padded past the size cap (2 MiB).
    plant_fifo(&live);
    let mut big = qwen("oversized", 500);
    big.pop();
    big.extend_from_slice(br#","pad":""#);
    big.extend(std::iter::repeat_n(b'x', 2 << 20));
    big.extend_from_slice(br#""}"#);
    write_by_rename(&s.live_file(QWEN), &big);
    if guard == Guard::Rust {
        // Nobody is stuck meanwhile: codex goes all the way.
        let v = codex("past-the-fifo", 70);
        write_in_place(&s.host_file(CODEX), &v);
        s.wait_equal(
            &s.home_file(CODEX),
            &v,
            "a codex refresh went through while a FIFO sat in live/",
        );
        logins[1] = v;
    }
    s.assert_repaired("a FIFO and a 2 MiB file", &logins, s.repair_budget());
    if guard == Guard::Shell {
        assert!(
            s.log_text().contains(&format!(
                "{} is larger than a credential can be",
                s.mount_point.join("live").join(src_of(QWEN)).display()
            )),
            "{}",
            s.log_text()
        );
    }
    // Nobody is stuck: refreshes still go all the way.
    let v = claude("after", 70);
    write_by_rename(&s.host_file(CLAUDE), &v);
    s.wait_equal(
        &s.home_file(CLAUDE),
        &v,
        "a refresh went through afterwards",
    );
    assert_no_secrets(&s.all_logs());
}

fn containers_share_while_the_sync_is_down_and_it_catches_up(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Live);
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let second = s.start_container();
    let status = s.stop_sync(Signal::SIGKILL).unwrap();
    assert!(!status.success(), "{status}");

    // The containers keep sharing through live/, both ways at once.
    let host_claude = read(&s.host_file(CLAUDE));
    let v1 = claude("down1", 60);
    write_by_rename(&s.home_of(0, CLAUDE), &v1);
    let cq = qwen("container-down", 80);
    write_in_place(&s.home_of(second, QWEN), &cq);
    s.wait_equal(
        &s.home_of(second, CLAUDE),
        &v1,
        "a refresh reached the other container",
    );
    s.wait_equal(
        &s.home_of(0, QWEN),
        &cq,
        "a qwen refresh reached the other container",
    );
    let v2 = claude("down2", 64);
    write_in_place(&s.home_of(second, CLAUDE), &v2);
    s.wait_equal(&s.home_of(0, CLAUDE), &v2, "a refresh came back");
    assert_holds!(
        &s.host_file(CLAUDE),
        host_claude,
        "a refresh reached the host without the sync"
    );
    // The host refreshes too, meanwhile: an older claude, a newer qwen.
    let hc = claude("host-down", 62);
    write_by_rename(&s.host_file(CLAUDE), &hc);
    let hq = qwen("host-down", 90);
    write_by_rename(&s.host_file(QWEN), &hq);
    assert_holds!(
        &s.live_file(CLAUDE),
        v2,
        "nothing reaches live/ without the sync"
    );

    // Back: the newest token wins on every side.
    s.start_sync();
    s.wait_equal(
        &s.host_file(CLAUDE),
        &v2,
        "the containers' newer claude login reached the host",
    );
    for i in [0, second] {
        s.wait_equal(
            &s.home_of(i, QWEN),
            &hq,
            "the host's newer qwen login reached the containers",
        );
        assert_holds!(&s.home_of(i, CLAUDE), v2);
    }
    assert_holds!(&s.live_file(CLAUDE), v2);
    assert_holds!(&s.live_file(QWEN), hq);
    s.assert_host_file_kept(CLAUDE);
    s.assert_host_file_kept(QWEN);
    assert_no_secrets(&s.all_logs());
}

/// Each guard holds a shared lock on `live/`; the host sync exits by itself
/// only once no container holds it. The shell guard needs flock(1) for
/// that, which Debian's busybox lacks: util-linux's is added to its `PATH`.
fn the_sync_stays_while_a_guard_is_attached(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Live);
    let Some(mut s) = Session::new(guard, mode) else {
        return;
    };
    if guard == Guard::Shell {
        let flock = Path::new("/usr/bin/flock");
        if !flock.exists() {
            skip("util-linux `flock` (/usr/bin/flock) is missing");
            return;
        }
        s.add_to_shell_path(flock);
    }
    s.setup_ok(0);
    assert!(
        s.live_is_locked(),
        "the guard holds its shared lock on live/"
    );
    assert!(!s.log_text().contains("flock"), "{}", s.log_text());
    s.sync_stays_while("a guard holds its lock on live/");
    s.stop_guards();
    assert!(!s.live_is_locked(), "the lock outlived the guard");
    s.sync_exits("once no container was attached");
    assert!(
        s.sync_text().contains("no container attached"),
        "{}",
        s.sync_text()
    );
}

/// A shell guard without flock(1) (Debian's busybox has none) opens `live/`
/// on every pass instead, and the host sync counts that as attached.
/// A guard looks before it reads; a FIFO put in place of the home file
/// between the two would block the read's open for good (the shell guard's
/// `head`). The agent user swaps its file for a FIFO and back every few
/// milliseconds for 3 s: the guard goes on, and the next refresh reaches
/// the host.
fn a_fifo_flapping_in_the_home_does_not_hang_the_guard(guard: Guard, mode: Mode) {
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    let home = s.home_file(CLAUDE);
    let (uid, gid) = {
        let dir = std::fs::metadata(home.parent().unwrap()).unwrap();
        (dir.uid(), dir.gid())
    };
    let fifo = home.with_extension("fifo");
    let regular = home.with_extension("regular");
    let until = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while Instant::now() < until {
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::chown(&fifo, Some(uid), Some(gid)).unwrap();
        std::fs::rename(&fifo, &home).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        std::fs::write(&regular, claude(&format!("flap{n}"), 70)).unwrap();
        std::os::unix::fs::chown(&regular, Some(uid), Some(gid)).unwrap();
        std::fs::rename(&regular, &home).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        n += 1;
    }
    let v = claude("after-fifo", 80);
    write_by_rename(&home, &v);
    s.wait_for(
        "a refresh after the FIFOs reached the host",
        s.guard.budget() * 2 + Duration::from_secs(3),
        || read(&s.host_file(CLAUDE)) == v,
    );
    let log = s.log_text();
    assert!(!log.contains("ended (status"), "the guard died:\n{log}");
}

fn a_shell_guard_without_flock_keeps_the_sync_by_heartbeat(guard: Guard, mode: Mode) {
    assert_eq!((guard, mode), (Guard::Shell, Mode::Live));
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    assert!(!s.live_is_locked());
    let log = s.log_text();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no flock here"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("by opening"), "{}", said[0]);
    s.sync_stays_while("a shell guard heartbeats");
    s.stop_guards();
    s.sync_exits("once the heartbeat stopped");
}

/// The usual desktop: the host user and the image's user have the same
/// uid, so the agent owns `live/` and could plant anything there itself.
fn a_live_dir_owned_by_the_agent_user(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Live);
    if !can_run(guard) {
        return;
    }
    let user = agent_user().unwrap();
    let Some(mut s) = Session::owned_by(guard, mode, Some((user.1, user.2))) else {
        return;
    };
    s.setup_ok(0);
    let v = claude("home1", 60);
    write_by_rename(&s.home_file(CLAUDE), &v);
    s.wait_equal(&s.host_file(CLAUDE), &v, "a home refresh reached the host");
    s.assert_live_owned(CLAUDE);
    s.assert_host_file_kept(CLAUDE);
    let v = claude("host1", 62);
    write_by_rename(&s.host_file(CLAUDE), &v);
    s.wait_equal(&s.home_file(CLAUDE), &v, "a host refresh reached the home");

    // The agent replaces the live copy by a link to a file only root reads.
    let decoy = s.root.join("decoy.json");
    let decoy_bytes = claude("decoy", 500);
    std::fs::write(&decoy, &decoy_bytes).unwrap();
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o600)).unwrap();
    let live = s.live_file(CLAUDE);
    plant_symlink(&decoy, &live, Some((s.user.1, s.user.2)));
    s.wait_until("the host sync replaced the link", || {
        std::fs::symlink_metadata(&live).is_ok_and(|m| m.is_file())
            && std::fs::read(&live).is_ok_and(|b| b == v)
    });
    s.barrier(Side::Host);
    assert_holds!(&decoy, decoy_bytes);
    assert_holds!(&s.host_file(CLAUDE), v, "the link was followed to the host");
    assert_holds!(&s.home_file(CLAUDE), v, "the link was followed to the home");
    s.assert_live_owned(CLAUDE);
    assert_no_secrets(&s.all_logs());
}

/// Bind mode's known limit: a host rename leaves the container's mount on
/// the old inode. Nothing can be synced, but the guard says so.
fn a_host_side_rename_is_reported(guard: Guard, mode: Mode) {
    assert_eq!(mode, Mode::Bind);
    let Some(s) = Session::start(guard, mode) else {
        return;
    };
    write_by_rename(&s.host_file(CLAUDE), &claude("host-renamed", 60));
    s.wait_until("the guard reported the orphaned mount", || {
        s.log_text()
            .contains("the host replaced the file mounted at")
    });
}

/// What only the Rust guard promises: it walks the home without following
/// any symlink (the shell guard writes as the agent user instead, so a
/// symlinked directory can lead it no further than that user could go).
fn a_symlinked_directory_in_the_home_is_not_followed(guard: Guard, mode: Mode) {
    assert_eq!(guard, Guard::Rust);
    let Some(mut s) = Session::start(guard, mode) else {
        return;
    };
    let home = s.containers[0].home.clone();
    let outside = s.root.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let decoy = codex("decoy", 500);
    std::fs::write(outside.join("auth.json"), &decoy).unwrap();
    // Swapped in at once: a deleted directory would be restored meanwhile.
    std::os::unix::fs::symlink(&outside, home.join(".codex-link")).unwrap();
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &home.join(".codex-link"),
        nix::fcntl::AT_FDCWD,
        &home.join(".codex"),
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .unwrap();
    std::fs::remove_dir_all(home.join(".codex-link")).unwrap();
    let refresh = codex("host-while-linked", 60);
    write_in_place(&s.host_file(CODEX), &refresh);
    s.wait_until("the guard said it leaves the link alone", || {
        s.log_text().contains("leaving it alone")
    });
    s.barrier(Side::Host);
    assert_holds!(&outside.join("auth.json"), decoy);
    assert_eq!(entries(&outside).len(), 1, "wrote through the link");
    assert_holds!(&s.host_file(CODEX), refresh, "the decoy reached the host");

    // Once the link is gone the login comes back, in a real directory.
    std::fs::remove_file(home.join(".codex")).unwrap();
    s.wait_equal(
        &s.home_file(CODEX),
        &refresh,
        "the codex login was restored",
    );
    let m = std::fs::symlink_metadata(home.join(".codex")).unwrap();
    assert!(m.is_dir());
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (s.user.1, s.user.2, 0o700)
    );
    s.stop_guards();
    assert!(s
        .log_text()
        .contains("[credential-guard] stopped (SIGTERM)"));
}
