//! The rows of the engine matrix (issue 16) and the core cases on each.
//!
//! Row 0 is rootful Docker, which the rest of the suite runs on. The others:
//! 1. rootful Podman;
//! 2. rootless Podman (as `caw-rootless`, uid 4242: the suite's host user),
//!    default user namespace (container root is the host user);
//! 3. rootless Podman with `--userns=keep-id` (the host user keeps its uid,
//!    container root is a subordinate uid).
//!
//! Row 5, Docker with `userns-remap`, is a daemon of the test's own
//! ([`RemapDaemon`]): caw refuses it (see `caw_auth::ownership`) unless
//! the run passes `--userns=host`. Row 4, rootless Docker, runs as
//! `caw-rootless` on the daemon `scripts/engines.sh` starts
//! (`dockerd-rootless.sh`, rootlesskit with the host network: slirp4netns
//! needs `/dev/net/tun`; the containers run with `--network none` anyway).
//!
//! `scripts/engines.sh` installs Podman and creates `caw-rootless`; the
//! engine configuration it writes (under `target/engines`) reaches Podman
//! through `CONTAINERS_CONF` / `CONTAINERS_STORAGE_CONF`, never `/etc`.
//! A row that cannot run here is skipped with a message, and fails under
//! `CI`. The test image is the suite's own, copied from Docker with
//! `docker save` | `podman load` (no registry).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use std::os::unix::fs::MetadataExt as _;

use caw_auth::AuthMode;

use crate::container::{poll, run_with_timeout, text};
use crate::image::MOUNT_POINT;
use crate::session::{Guard, Session, CREDS, HOST_GID, HOST_UID};

/// The unprivileged user of the rootless rows (`scripts/engines.sh`).
pub const ROOTLESS_USER: &str = "caw-rootless";
const ROOTLESS_UID: u32 = 4242;

/// An engine and the mode it runs containers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    /// Rootful Docker: the rest of the suite.
    Docker,
    /// Rootful Podman.
    PodmanRootful,
    /// Rootless Podman, default user namespace.
    PodmanRootless,
    /// Rootless Podman, `--userns=keep-id`.
    PodmanKeepId,
    /// Rootless Docker (rootlesskit, `dockerd-rootless.sh`), as `caw-rootless`.
    DockerRootless,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Row::Docker => "docker",
            Row::PodmanRootful => "podman (rootful)",
            Row::PodmanRootless => "podman (rootless)",
            Row::PodmanKeepId => "podman (rootless, keep-id)",
            Row::DockerRootless => "docker (rootless)",
        })
    }
}

/// What `scripts/engines.sh` printed: `KEY=value`.
fn engine_env() -> &'static Result<BTreeMap<String, String>, String> {
    static ENV: OnceLock<Result<BTreeMap<String, String>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/engines.sh");
        let out = Command::new(&script)
            .env("CAW_ENGINES_NO_INSTALL", "1")
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` failed: {}",
                script.display(),
                text(&out.stderr)
            ));
        }
        Ok(text(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    })
}

fn conf(key: &str) -> String {
    match engine_env() {
        Ok(env) => env.get(key).cloned().unwrap_or_default(),
        Err(e) => panic!("{e}"),
    }
}

impl Row {
    /// Whether the engine runs as the unprivileged `caw-rootless`.
    pub fn rootless(self) -> bool {
        matches!(
            self,
            Row::PodmanRootless | Row::PodmanKeepId | Row::DockerRootless
        )
    }

    /// The engine's name, as `caw run --engine` takes it.
    pub fn engine(self) -> &'static str {
        match self {
            Row::Docker | Row::DockerRootless => "docker",
            _ => "podman",
        }
    }

    /// The environment the engine needs here (see the module docs).
    pub fn env(self) -> Vec<(&'static str, String)> {
        match self {
            Row::Docker => vec![],
            Row::PodmanRootful => vec![("CONTAINERS_CONF", conf("CAW_ENGINES_ROOTFUL_CONF"))],
            Row::PodmanRootless | Row::PodmanKeepId => vec![
                ("CONTAINERS_CONF", conf("CAW_ENGINES_ROOTLESS_CONF")),
                (
                    "CONTAINERS_STORAGE_CONF",
                    conf("CAW_ENGINES_ROOTLESS_STORAGE_CONF"),
                ),
                ("XDG_RUNTIME_DIR", format!("/run/user/{ROOTLESS_UID}")),
                ("HOME", format!("/home/{ROOTLESS_USER}")),
            ],
            Row::DockerRootless => vec![
                ("DOCKER_HOST", conf("CAW_ENGINES_ROOTLESS_DOCKER_HOST")),
                ("XDG_RUNTIME_DIR", format!("/run/user/{ROOTLESS_UID}")),
                ("HOME", format!("/home/{ROOTLESS_USER}")),
            ],
        }
    }

    /// `program` run for this row: as `caw-rootless` (with its own
    /// runtime dir) for the rootless rows, with the row's environment.
    pub fn command_of(self, program: impl Into<OsString>) -> Command {
        let program = program.into();
        if self.rootless() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", ROOTLESS_USER, "--", "env"]);
            for (k, v) in self.env() {
                cmd.arg(format!("{k}={v}"));
            }
            cmd.arg(program);
            cmd
        } else {
            let mut cmd = Command::new(program);
            cmd.envs(self.env());
            cmd
        }
    }

    /// The engine's command line.
    pub fn command(self) -> Command {
        self.command_of(self.engine())
    }

    /// `<engine> <args>`; panics when the engine cannot be run or hangs.
    pub fn run(self, args: &[String], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_timeout(&mut cmd, stdin, timeout)
            .unwrap_or_else(|e| panic!("{self} {}: {e}", args.join(" ")))
    }

    /// Options every `run` of this row gets.
    pub fn run_options(self) -> Vec<String> {
        match self {
            Row::PodmanKeepId => vec!["--userns=keep-id".into(), "--user".into(), "0".into()],
            _ => vec![],
        }
    }

    /// The suite's image (`docker_tag`) on this row's engine, or `None`
    /// when the row cannot run here (after saying why; a failure under CI).
    pub fn image_or_skip(self, docker_tag: &str, test: &str) -> Option<String> {
        if self == Row::Docker {
            return Some(docker_tag.to_string());
        }
        static READY: Mutex<BTreeMap<Row, crate::skip::Found<String>>> =
            Mutex::new(BTreeMap::new());
        static SAID: [AtomicBool; 5] = [
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        ];
        let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
        let found = ready
            .entry(self)
            .or_insert_with(|| self.prepare(docker_tag));
        found
            .get(&format!("caw e2e {self}"), &SAID[self as usize], test)
            .cloned()
    }

    /// Check the engine answers and load the image into it.
    fn prepare(self, docker_tag: &str) -> crate::skip::Found<String> {
        use crate::skip::Found;
        if let Err(e) = engine_env() {
            return Found::Missing(e.clone());
        }
        if self.rootless() && !nix_user_exists(ROOTLESS_USER) {
            return Found::Missing(format!(
                "no user `{ROOTLESS_USER}`: run `scripts/engines.sh` as root"
            ));
        }
        let mut version = self.command();
        version.arg("version");
        match run_with_timeout(&mut version, None, Duration::from_secs(60)) {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Found::Missing(format!(
                    "`{} version` fails for {self}: {} (run `scripts/engines.sh` as root)",
                    self.engine(),
                    text(&out.stderr).trim()
                ))
            }
            Err(e) => {
                return Found::Missing(format!(
                    "cannot run {} for {self}: {e} (run `scripts/engines.sh` as root)",
                    self.engine()
                ))
            }
        }
        let exists = self.run(
            &["image".into(), "inspect".into(), docker_tag.into()],
            None,
            Duration::from_secs(60),
        );
        if exists.status.success() {
            return Found::Ready(docker_tag.to_string());
        }
        crate::prereqs::say(&format!("loading `{docker_tag}` into {self}"));
        let saved = crate::container::docker(
            &["save".into(), docker_tag.into()],
            None,
            Duration::from_secs(120),
        );
        if !saved.status.success() {
            return Found::Broken(format!("docker save: {}", text(&saved.stderr)));
        }
        let loaded = self.run(
            &["load".into()],
            Some(&saved.stdout),
            Duration::from_secs(300),
        );
        if !loaded.status.success() {
            return Found::Broken(format!("{self}: load: {}", text(&loaded.stderr)));
        }
        Found::Ready(docker_tag.to_string())
    }
}

fn nix_user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .is_ok_and(|t| t.lines().any(|l| l.split(':').next() == Some(name)))
}

crate::on_other_engines!(
    the_container_sees_the_host_login,
    a_container_refresh_reaches_the_host_and_the_other_container,
    host_renames_reach_every_container,
    root_in_the_container_cannot_change_the_auth_dir,
    the_agent_cannot_change_the_auth_dir,
    nothing_of_caws_outside_live_is_writable_by_the_agent,
    host_files_keep_their_owner_and_mode,
    caw_run_on_the_engine_prints_the_host_login,
);

fn the_container_sees_the_host_login(row: Row, test: &str) {
    let Some(session) = Session::on(row, Guard::Rust, test) else {
        return;
    };
    let c = session.serve("sees");
    // The row is what it says: who container root and the host user are.
    let map =
        caw_auth::ownership::UidMap::parse(&c.sh_ok(true, "cat /proc/self/uid_map", &[], None));
    match row {
        Row::Docker | Row::PodmanRootful => assert!(map.is_identity(), "{row}: {map:?}"),
        // Relative to caw-rootless's namespace, where 0 is the host user.
        Row::PodmanRootless | Row::DockerRootless => {
            assert_eq!(map.outside(0), Some(HOST_UID), "{row}: {map:?}")
        }
        Row::PodmanKeepId => {
            assert_eq!(map.outside(HOST_UID), Some(0), "{row}: {map:?}");
            assert_ne!(map.outside(0), Some(0), "{row}: {map:?}");
        }
    }
    for cred in CREDS {
        let host = std::fs::read(session.host(cred.path)).unwrap();
        assert_eq!(
            c.read(&cred.in_container()).map(|b| text(&b)),
            Some(text(&host)),
            "{row}: the agent's {} login",
            cred.agent
        );
    }
    session.finish(c);
}

fn a_container_refresh_reaches_the_host_and_the_other_container(row: Row, test: &str) {
    crate::live::a_container_refresh_reaches_the_host_and_the_other_container_on(
        row,
        Guard::Rust,
        test,
    );
}

fn host_renames_reach_every_container(row: Row, test: &str) {
    crate::live::host_renames_reach_every_container_on(row, Guard::Rust, test);
}

fn root_in_the_container_cannot_change_the_auth_dir(row: Row, test: &str) {
    crate::security::attack_on(row, true, test);
}

fn the_agent_cannot_change_the_auth_dir(row: Row, test: &str) {
    crate::security::attack_on(row, false, test);
}

/// Every path of the auth dir outside `live/`, as the agent user: none can
/// be written, created over, or removed.
fn nothing_of_caws_outside_live_is_writable_by_the_agent(row: Row, test: &str) {
    let Some(session) = Session::on(row, Guard::Rust, test) else {
        return;
    };
    let c = session.serve("agent-writes");
    let script = "cd \"$1\" 2>/dev/null || exit 0; \
        for f in $(find . -path ./live -prune -o -print); do \
            if [ -d \"$f\" ]; then touch \"$f/caw-e2e-probe\" 2>/dev/null && echo \"$f/\"; \
            else (echo x >> \"$f\") 2>/dev/null && echo \"$f\"; fi; \
        done; \
        for f in /tmp/caw_credential_guard.pid; do \
            [ -e \"$f\" ] && (echo x >> \"$f\") 2>/dev/null && echo \"$f\"; \
        done; true";
    let written = c.sh_ok(false, script, &[MOUNT_POINT], None);
    assert_eq!(written.trim(), "", "{row}: the agent could write these");
    session.finish(c);
}

/// After refreshes from a container, by rename and in place, the host files
/// and `live/` are still the host user's, with their modes, none
/// world-readable (never a subordinate uid: container root is one under
/// keep-id).
fn host_files_keep_their_owner_and_mode(row: Row, test: &str) {
    let Some(session) = Session::on(row, Guard::Rust, test) else {
        return;
    };
    let before: Vec<_> = CREDS
        .iter()
        .map(|c| session.host_identity(c).kept(AuthMode::Live))
        .collect();
    let c = session.serve("owners");
    for (i, cred) in CREDS.iter().enumerate() {
        let refreshed = cred.refreshed("OWNERS", 80 + i as i64);
        cred.write_in_container(&c, &refreshed);
        let reached = poll(Duration::from_secs(5), Duration::from_millis(10), || {
            std::fs::read(session.host(cred.path))
                .is_ok_and(|b| b == refreshed)
                .then_some(())
        });
        assert!(
            reached.is_some(),
            "{row}: {} did not reach the host",
            cred.agent
        );
    }
    // A host refresh by rename, which the host sync (root here) carries
    // into live/: it must not leave a root-owned file there, which a
    // rootless container's root could not read.
    let claude = CREDS[0];
    let refreshed = claude.refreshed("OWNERS-HOST", 95);
    session.write_on_host_by_rename(&claude, &refreshed);
    let reached = poll(Duration::from_secs(5), Duration::from_millis(10), || {
        std::fs::read(c.host_view(&claude.in_container()))
            .is_ok_and(|b| b == refreshed)
            .then_some(())
    });
    assert!(
        reached.is_some(),
        "{row}: a host rename did not reach the container"
    );
    let after: Vec<_> = CREDS
        .iter()
        .map(|c| session.host_identity(c).kept(AuthMode::Live))
        .collect();
    assert_eq!(
        before, after,
        "{row}: the host files' owner or mode changed"
    );
    let live = session.env.auth.join("live");
    for entry in walk(&live) {
        let m = std::fs::symlink_metadata(&entry).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (HOST_UID, HOST_GID),
            "{row}: `{}` is not the host user's",
            entry.display()
        );
        assert_eq!(
            m.mode() & 0o077,
            0,
            "{row}: `{}` is open to others: {:o}",
            entry.display(),
            m.mode()
        );
    }
    session.finish(c);
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for entry in std::fs::read_dir(dir).unwrap() {
            out.extend(walk(&entry.unwrap().path()));
        }
    }
    out
}

/// `caw run --engine podman` (and `CAW_ENGINE=podman`), run by the host
/// user of the row (`caw-rootless` for the rootless ones): the agent user's
/// home holds the host login, and caw's stdout is the command's.
fn caw_run_on_the_engine_prints_the_host_login(row: Row, test: &str) {
    let Some(session) = Session::on(row, Guard::Rust, test) else {
        return;
    };
    let claude = CREDS[0];
    let host = std::fs::read(session.host(claude.path)).unwrap();
    for by_env in [false, true] {
        let mut cmd = row.command_of(assert_cmd::cargo::cargo_bin("caw"));
        // runuser keeps the environment it is given (HOME and the like
        // aside, which `env` sets).
        cmd.env("NO_COLOR", "1")
            .env_remove("CAW_NO_SYNC")
            .arg("run");
        if by_env {
            cmd.env("CAW_ENGINE", row.engine());
        } else {
            cmd.env_remove("CAW_ENGINE")
                .args(["--engine", row.engine()]);
        }
        let mut args: Vec<String> =
            vec!["--auth-dir".into(), session.env.auth.display().to_string()];
        args.extend(
            [
                "--rm",
                "--network",
                "none",
                "--label",
                "caw-e2e=1",
                "--user",
                "playground",
            ]
            .map(String::from),
        );
        args.extend(
            row.run_options()
                .into_iter()
                .filter(|o| o.starts_with("--userns")),
        );
        args.extend([
            session.image.to_string(),
            "cat".into(),
            claude.in_container(),
        ]);
        cmd.args(&args);
        let out = run_with_timeout(&mut cmd, None, Duration::from_secs(120)).unwrap();
        assert!(
            out.status.success(),
            "{row}: caw run {args:?} (CAW_ENGINE: {by_env}): {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), text(&host), "{row}: stdout is the login");
    }
    session.teardown();
}

/// Modes that cannot keep caw's guarantees are refused before anything
/// runs, naming the engine, the mode and what to do.
#[test]
fn podman_modes_caw_cannot_account_for_are_refused() {
    let test = concat!(
        module_path!(),
        "::podman_modes_caw_cannot_account_for_are_refused"
    );
    let row = Row::PodmanRootless;
    let Some(session) = Session::on(row, Guard::Rust, test) else {
        return;
    };
    for option in [
        &["--userns=auto"][..],
        &["--userns", "nomap"],
        &["--uidmap", "0:1:4242"],
    ] {
        let mut cmd = row.command_of(assert_cmd::cargo::cargo_bin("caw"));
        cmd.env("NO_COLOR", "1")
            .args(["run", "--engine", "podman", "--auth-dir"])
            .arg(&session.env.auth)
            .args(option)
            .args([session.image, "true"]);
        let out = run_with_timeout(&mut cmd, None, Duration::from_secs(60)).unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{option:?}: {err}");
        assert!(
            err.starts_with("error: caw cannot keep its guarantees with `podman`")
                && err.contains(option[0].split('=').next().unwrap())
                && err.contains("hint: "),
            "{option:?}: {err}"
        );
    }
    session.teardown();
}

/// Row 5: a Docker daemon with `userns-remap`, started by this test on its
/// own socket, data root and exec root (the machine's daemon is untouched).
/// caw refuses it before setting anything up, naming the engine, the mode
/// and what to do; with `--userns=host` (no remapping for that container)
/// the run works and the agent's home holds the host login.
#[test]
fn docker_userns_remap_is_refused_unless_the_run_opts_out() {
    let test = concat!(
        module_path!(),
        "::docker_userns_remap_is_refused_unless_the_run_opts_out"
    );
    let Some(session) = Session::on(Row::Docker, Guard::Rust, test) else {
        return;
    };
    let Some(daemon) = RemapDaemon::start(test) else {
        return;
    };
    let caw_run = |args: &[&str]| {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("caw"));
        cmd.env("DOCKER_HOST", daemon.host())
            .env("NO_COLOR", "1")
            .env_remove("CAW_ENGINE")
            .env_remove("CAW_NO_SYNC")
            .args(["run", "--engine", "docker", "--auth-dir"])
            .arg(&session.env.auth)
            .args(["--rm", "--network", "none", "--user", "playground"])
            .args(args);
        run_with_timeout(&mut cmd, None, Duration::from_secs(120)).unwrap()
    };
    let claude = CREDS[0];
    let path = claude.in_container();
    let out = caw_run(&[session.image, "cat", &path]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: caw cannot keep its guarantees with `docker` in userns-remap")
            && err.contains("hint: pass `--userns=host`"),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty());
    // The image, into the remapping daemon.
    let saved = crate::container::docker(
        &["save".into(), session.image.into()],
        None,
        Duration::from_secs(120),
    );
    let mut load = Command::new("docker");
    load.env("DOCKER_HOST", daemon.host()).arg("load");
    let loaded =
        run_with_timeout(&mut load, Some(&saved.stdout), Duration::from_secs(120)).unwrap();
    assert!(loaded.status.success(), "{}", text(&loaded.stderr));
    let out = caw_run(&["--userns=host", session.image, "cat", &path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        text(&std::fs::read(session.host(claude.path)).unwrap())
    );
    drop(daemon);
    session.teardown();
}

/// A `dockerd --userns-remap=default` of this test's own, stopped on drop.
struct RemapDaemon {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl RemapDaemon {
    /// Started and answering, or `None` (after saying why; a failure under
    /// CI) when there is no `dockerd` or no root.
    fn start(test: &str) -> Option<RemapDaemon> {
        let skip = |why: &str| crate::skip::skip("caw e2e", test, why);
        if !nix::unistd::geteuid().is_root() {
            skip("starting a userns-remap dockerd needs root");
            return None;
        }
        if Command::new("dockerd").arg("--version").output().is_err() {
            skip("no `dockerd` on PATH (Debian's docker.io has it)");
            return None;
        }
        // Short paths: dockerd's sockets live under the exec root.
        let dir = tempfile::Builder::new()
            .prefix("caw-remap-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--userns-remap=default")
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--ip-masq=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = RemapDaemon { dir, child };
        let up = poll(Duration::from_secs(60), Duration::from_millis(200), || {
            let mut info = Command::new("docker");
            info.env("DOCKER_HOST", daemon.host()).args([
                "info",
                "--format",
                "{{json .SecurityOptions}}",
            ]);
            run_with_timeout(&mut info, None, Duration::from_secs(10))
                .ok()
                .filter(|o| o.status.success())
                .map(|o| text(&o.stdout))
        });
        match up {
            Some((options, _)) => {
                assert!(options.contains("name=userns"), "not remapping: {options}")
            }
            None => panic!(
                "the userns-remap dockerd did not answer within 60s:\n{}",
                std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default()
            ),
        }
        Some(daemon)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }
}

impl Drop for RemapDaemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let stopped = poll(Duration::from_secs(30), Duration::from_millis(100), || {
            self.child.try_wait().ok().flatten()
        });
        if stopped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Its data root holds root-owned layers: remove what can be.
        let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
    }
}
