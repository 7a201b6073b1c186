//! One end-to-end session: a temp host home logged in to claude, codex and
//! gemini, `caw auth setup` on it (with or without the bundled static caw),
//! the `docker run` flags, and the checks every session ends with.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use caw_auth::AuthMode;

use crate::container::{text, Container};
use crate::engines::Row;
use crate::image::{HOME, MOUNT_POINT};
use crate::prereqs::{image_or_skip, static_caw};
use crate::util::{jwt, ms_from_now, stderr, stdout, tree_state, TestEnv};

/// Which guard the container runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// The bundled static caw (`A/bin/caw`): inotify.
    Rust,
    /// `setup-container.sh`'s POSIX-shell fallback: polls about once a second.
    Shell,
}

impl Guard {
    /// How long a sync may take. The shell guard polls once a second and
    /// each poll runs a few processes, so it gets three.
    pub fn budget(self) -> Duration {
        match self {
            Guard::Rust => Duration::from_secs(1),
            Guard::Shell => Duration::from_secs(3),
        }
    }
}

/// Owner of the host home when the tests run as root: neither root nor the
/// container's agent user, so a guard that replaces the host file instead of
/// writing it in place (or chowns it) is caught.
pub const HOST_UID: u32 = 4242;
pub const HOST_GID: u32 = 4343;

/// Who owns the host home and the auth dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostUser {
    /// `HOST_UID`: neither root nor the container's agent user.
    Other,
    /// The agent user's uid (1000), as on the usual Linux desktop where the
    /// host user and the image's user are both the first user: the agent
    /// then owns the host home and the auth dir, and only the read-only
    /// mount keeps it from changing the auth dir.
    Agent,
}

impl HostUser {
    /// The owner's `(uid, gid)`.
    fn ids(self) -> (u32, u32) {
        match self {
            HostUser::Other => (HOST_UID, HOST_GID),
            HostUser::Agent => (crate::image::UID, crate::image::UID),
        }
    }
}

/// The credentials under test and how each agent rewrites its own.
#[derive(Clone, Copy, Debug)]
pub struct Cred {
    pub agent: &'static str,
    /// Relative to the host home and to the container home alike.
    pub path: &'static str,
    /// Temp file + rename (claude) rather than in place (codex, gemini).
    pub rename: bool,
}

pub const CREDS: [Cred; 4] = [
    Cred {
        agent: "claude",
        path: ".claude/.credentials.json",
        rename: true,
    },
    Cred {
        agent: "qwen",
        path: ".qwen/oauth_creds.json",
        rename: true,
    },
    Cred {
        agent: "codex",
        path: ".codex/auth.json",
        rename: false,
    },
    Cred {
        agent: "gemini",
        path: ".gemini/oauth_creds.json",
        rename: false,
    },
];

impl Cred {
    /// A refreshed credential: new tokens marked with `tag`, expiring
    /// `minutes` from now. The session's logins expire within an hour, so 72
    /// minutes or more is a refresh the guard must accept, a negative number
    /// one it must refuse (and every agent's tokens live longer than 100
    /// minutes, past which a login would be implausible).
    pub fn refreshed(&self, tag: &str, minutes: i64) -> Vec<u8> {
        let ms = ms_from_now(minutes * 60);
        let text = match self.agent {
            "claude" => format!(
                r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-{tag}","refreshToken":"sk-ant-ort01-{tag}","expiresAt":{ms},"scopes":["user:inference"],"subscriptionType":"max"}}}}"#
            ),
            "codex" => {
                let token = jwt(ms / 1000);
                format!(
                    r#"{{"OPENAI_API_KEY":null,"tokens":{{"id_token":"{token}","access_token":"{token}","refresh_token":"codex-{tag}","account_id":"acct"}},"last_refresh":"{}"}}"#,
                    jiff::Timestamp::now()
                )
            }
            "gemini" => format!(
                r#"{{"access_token":"ya29.{tag}","refresh_token":"1//{tag}","token_type":"Bearer","expiry_date":{ms}}}"#
            ),
            "qwen" => format!(
                r#"{{"access_token":"qwen-{tag}","refresh_token":"qwen-r-{tag}","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":{ms}}}"#
            ),
            other => unreachable!("no refresh for {other}"),
        };
        text.into_bytes()
    }

    /// Whether `guard` keeps this credential in sync: the shell guard only
    /// syncs what it can judge (claude, qwen) and leaves the others alone.
    pub fn synced_by(&self, guard: Guard) -> bool {
        guard == Guard::Rust || matches!(self.agent, "claude" | "qwen")
    }

    /// The agent's copy inside the container.
    pub fn in_container(&self) -> String {
        format!("{HOME}/{}", self.path)
    }

    /// Write `bytes` as the agent does, as the agent user.
    pub fn write_in_container(&self, container: &Container, bytes: &[u8]) {
        let script = if self.rename {
            // Like claude: a private temp file beside the target, renamed over it.
            "umask 077; tmp=\"$1.tmp.$$\"; cat > \"$tmp\" && mv -f \"$tmp\" \"$1\""
        } else {
            "cat > \"$1\""
        };
        container.sh_ok(false, script, &[&self.in_container()], Some(bytes));
    }
}

/// What must not change about a host credential file when the guard writes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Identity {
    ino: u64,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Identity {
    /// What a write must keep in `mode`: the owner and mode always, and in
    /// bind mode the inode too (a bind-mounted file is written in place;
    /// in live mode the host sync replaces it by rename).
    pub fn kept(&self, mode: AuthMode) -> (u32, u32, u32, Option<u64>) {
        let ino = (mode == AuthMode::Bind).then_some(self.ino);
        (self.uid, self.gid, self.mode, ino)
    }

    pub fn of(path: &Path) -> Identity {
        let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Identity {
            ino: m.ino(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        }
    }
}

/// A manifest entry, as far as the tests need it.
#[derive(Debug)]
pub struct ManagedFile {
    pub src: String,
    pub container_target: String,
    pub host_original: String,
    pub bind: bool,
    pub mode: String,
}

pub struct Session {
    pub env: TestEnv,
    pub guard: Guard,
    /// The engine the containers run on.
    pub row: Row,
    /// How credentials reach the containers.
    pub mode: AuthMode,
    pub image: &'static str,
    /// The auth dir's paths right after setup: the container must add none.
    auth_paths: Vec<PathBuf>,
    /// The tests run as root, and the host home belongs to `host_user`.
    as_root: bool,
    host_user: HostUser,
}

impl Session {
    /// A logged-in host home and its auth dir, or `None` when Docker tests
    /// are skipped on this machine.
    pub fn new(guard: Guard, test: &str) -> Option<Session> {
        Session::new_owned_by(guard, test, HostUser::Other)
    }

    /// [`Session::new`] with the containers on `row`'s engine.
    pub fn on(row: Row, guard: Guard, test: &str) -> Option<Session> {
        Session::with(row, guard, test, HostUser::Other, AuthMode::Live)
    }

    /// [`Session::new`] in bind mode (`caw auth setup --mode bind`).
    pub fn bind(guard: Guard, test: &str) -> Option<Session> {
        Session::with(Row::Docker, guard, test, HostUser::Other, AuthMode::Bind)
    }

    /// [`Session::new`] with the host home and the auth dir owned by `host_user`.
    pub fn new_owned_by(guard: Guard, test: &str, host_user: HostUser) -> Option<Session> {
        Session::with(Row::Docker, guard, test, host_user, AuthMode::Live)
    }

    fn with(
        row: Row,
        guard: Guard,
        test: &str,
        host_user: HostUser,
        mode: AuthMode,
    ) -> Option<Session> {
        let image = image_or_skip(test)?;
        row.image_or_skip(image, test)?;
        if row.rootless() && host_user != HostUser::Other {
            panic!("{test}: the rootless rows run as uid {HOST_UID}, the host user");
        }
        let env = TestEnv::empty();
        env.claude(ms_from_now(55 * 60));
        env.codex(jiff::Timestamp::now().as_second() + 50 * 60);
        env.gemini(ms_from_now(17 * 60));
        env.qwen(ms_from_now(45 * 60));
        // The temp dir was made by this process, so it has our uid.
        let own_uid = std::fs::metadata(env.dir.path()).unwrap().uid();
        let as_root = own_uid == 0;
        let (uid, gid) = host_user.ids();
        if as_root {
            // The whole temp dir, so the host user can reach its files.
            chown_tree(env.dir.path(), uid, gid);
        } else if host_user == HostUser::Agent && own_uid != uid {
            let why =
                format!("{test} needs root (or uid {uid}) to give the host home to uid {uid}");
            crate::skip::skip("caw e2e", &crate::skip::current_test(), &why);
            return None;
        }
        let session = Session {
            env,
            guard,
            row,
            mode,
            image,
            auth_paths: Vec::new(),
            as_root,
            host_user,
        };
        Some(session.setup())
    }

    fn setup(mut self) -> Session {
        let out = self.setup_command(&[]).output().unwrap();
        assert!(out.status.success(), "setup failed: {}", stderr(&out));
        self.after_setup(&stderr(&out));
        self
    }

    /// `caw auth setup` of this session's auth dir in its mode, plus `args`
    /// (with the static caw to bundle for the Rust guard).
    pub fn setup_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("caw"));
        cmd.env("HOME", &self.env.home)
            .env_remove("CAW_AUTH_DIR")
            .env_remove("CAW_STATIC_BINARY")
            .env_remove("CAW_LOG")
            .env("NO_COLOR", "1")
            .current_dir(self.env.dir.path())
            .args(["auth", "setup", "--mode", self.mode.as_str(), "--auth-dir"])
            .arg(&self.env.auth)
            .args(args);
        if self.guard == Guard::Rust {
            cmd.env("CAW_STATIC_BINARY", static_caw());
        }
        cmd
    }

    /// `caw auth setup` again, with `args`, while containers may run; the
    /// auth dir prepared as after the first.
    pub fn resetup(&mut self, args: &[&str]) {
        let out = self.setup_command(args).output().unwrap();
        assert!(out.status.success(), "re-setup failed: {}", stderr(&out));
        self.after_setup(&stderr(&out));
    }

    /// After setups (`said`: what they printed): the bundled caw removed for
    /// the shell guard, the auth dir given to the host user, its paths noted.
    pub fn after_setup(&mut self, said: &str) {
        let bin = self.env.auth.join("bin/caw");
        assert!(
            caw_auth::bundle::is_static_linux_executable(&bin),
            "no static bin/caw bundled; setup said: {said}"
        );
        if self.guard == Guard::Shell {
            // Every caw bundles one; the script falls back without it (an
            // auth dir from an older caw, or another architecture's).
            std::fs::remove_file(&bin).unwrap();
        }
        if self.as_root {
            // As if the host user had run setup: the auth dir is theirs.
            let (uid, gid) = self.host_user.ids();
            chown_tree(&self.env.auth, uid, gid);
        }
        self.auth_paths = auth_paths(&self.env.auth);
    }

    pub fn host(&self, rel: &str) -> PathBuf {
        self.env.home.join(rel)
    }

    /// `caw auth docker-flags --format <format>` as `docker run` arguments:
    /// the `v` and `mount` forms split on white space, as `$(…)` does.
    ///
    /// In live mode this also starts the host sync, as for a user; teardown
    /// (or the auth dir going away) stops it.
    pub fn flags(&self, format: &str) -> Vec<String> {
        self.flags_with(format, &[], &[])
    }

    /// [`Session::flags`], the host sync it starts given `env` and without `unset`.
    pub fn flags_with(
        &self,
        format: &str,
        env: &[(String, String)],
        unset: &[&str],
    ) -> Vec<String> {
        let mut cmd = self.env.caw();
        for var in unset {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.env_remove("CAW_NO_SYNC")
            .args(["auth", "docker-flags", "--format", format, "--auth-dir"])
            .arg(&self.env.auth);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "docker-flags: {}", stderr(&out));
        let text = stdout(&out);
        if format == "json" {
            serde_json::from_str(&text).unwrap()
        } else {
            text.split_whitespace().map(str::to_string).collect()
        }
    }

    /// A container started with `$(caw auth docker-flags)`, set up and guarded.
    pub fn serve(&self, label: &str) -> Container {
        self.serve_with(label, &self.flags("v"))
    }

    pub fn serve_with(&self, label: &str, flags: &[String]) -> Container {
        let container = Container::serve_on(self.row, label, self.image, flags);
        self.assert_guard_runs(&container);
        container
    }

    /// The guard from the pid file is alive, and it is the one under test.
    fn assert_guard_runs(&self, container: &Container) {
        let exe = container.sh_ok(
            true,
            "pid=$(cat /tmp/caw_credential_guard.pid) && kill -0 \"$pid\" \
             && readlink /proc/$pid/exe",
            &[],
            None,
        );
        let expected = match self.guard {
            Guard::Rust => format!("{MOUNT_POINT}/bin/caw"),
            Guard::Shell => "/bin/busybox".to_string(),
        };
        assert_eq!(exe.trim(), expected, "the guard's executable");
    }

    pub fn manifest(&self) -> Vec<ManagedFile> {
        let text = std::fs::read_to_string(self.env.auth.join("manifest.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut files = Vec::new();
        for agent in manifest["agents"].as_object().unwrap().values() {
            for f in agent["files"].as_array().unwrap() {
                let s = |key: &str| f[key].as_str().unwrap().to_string();
                files.push(ManagedFile {
                    src: s("src"),
                    container_target: s("container_target"),
                    host_original: s("host_original"),
                    bind: s("strategy") == "bind",
                    mode: s("mode"),
                });
            }
        }
        files
    }

    /// Write a host credential as the host's agent does: Claude Code and
    /// Qwen Code by a temp file renamed over it (in bind mode that cuts a
    /// running container off, see `a_host_rename_is_reported`), the others
    /// in place.
    pub fn refresh_on_host(&self, cred: &Cred, bytes: &[u8]) {
        if cred.rename {
            self.write_on_host_by_rename(cred, bytes)
        } else {
            self.write_on_host(cred, bytes)
        }
    }

    /// Replace a host credential like Claude Code: `<file>.tmp.<hex>`, then
    /// a rename over it, owned by the host user with mode 0600.
    pub fn write_on_host_by_rename(&self, cred: &Cred, bytes: &[u8]) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.host(cred.path);
        let tmp = path.with_extension(format!("json.tmp.{:x}", std::process::id()));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.as_root {
            let (uid, gid) = self.host_user.ids();
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).unwrap();
        }
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Write a host credential in place (codex and gemini do; in bind mode
    /// the only kind of host write a container sees).
    pub fn write_on_host(&self, cred: &Cred, bytes: &[u8]) {
        use std::io::Write as _;
        let path = self.host(cred.path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(bytes).unwrap();
        file.sync_all().unwrap();
    }

    /// The host file's bytes as its owner reads them (`cat` run as the host
    /// user when the tests run as root).
    pub fn read_as_host_user(&self, cred: &Cred) -> Vec<u8> {
        let path = self.host(cred.path);
        let mut cat = Command::new("cat");
        cat.arg(&path);
        if self.as_root {
            // std drops root's supplementary groups when it changes the uid.
            let (uid, gid) = self.host_user.ids();
            cat.uid(uid).gid(gid);
        }
        let out = cat.output().unwrap();
        assert!(
            out.status.success(),
            "the host user cannot read `{}`: {}",
            path.display(),
            text(&out.stderr)
        );
        out.stdout
    }

    /// How the host file looks when the guard has left it alone.
    pub fn host_identity(&self, cred: &Cred) -> Identity {
        Identity::of(&self.host(cred.path))
    }

    /// Remove the container, then [`Session::teardown`].
    pub fn finish(self, container: Container) {
        drop(container);
        self.teardown();
    }

    /// With no container left: check that the containers left nothing in the
    /// auth dir and that `caw auth teardown` removes the auth dir and nothing
    /// else.
    pub fn teardown(self) {
        let after = auth_paths(&self.env.auth);
        assert_eq!(
            after, self.auth_paths,
            "the container left files in (or removed files from) the auth dir"
        );
        let home = tree_state(&self.env.home);
        let out = self.env.auth(&["teardown"]);
        assert!(out.status.success(), "teardown: {}", stderr(&out));
        assert!(!self.env.auth.exists(), "teardown left the auth dir");
        assert_eq!(
            home,
            tree_state(&self.env.home),
            "teardown changed the host home"
        );
    }
}

/// The auth dir's paths, without the host sync's state and log (which it
/// writes there while it runs).
fn auth_paths(auth: &Path) -> Vec<PathBuf> {
    tree_state(auth)
        .into_keys()
        .filter(|p| {
            p.parent() != Some(auth) || !p.ends_with("sync.json") && !p.ends_with("sync.log")
        })
        .collect()
}

fn chown_tree(root: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(root).unwrap().is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// `mode uid gid user group` as `stat` in the container prints it, for a
/// file owned by the agent user.
pub fn agent_owned(mode: &str) -> String {
    use crate::image::{GID, GROUP, UID, USER};
    format!(
        "{} {UID} {GID} {USER} {GROUP}",
        mode.trim_start_matches('0')
    )
}
