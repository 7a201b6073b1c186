//! One test's world: the fake network, a temp host home logged in to Claude
//! Code and Codex with fake tokens, `caw auth setup` on it, and agent
//! containers set up by caw. The real CLIs run on either side.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::net::FakeNet;
use crate::prereqs::{get_or_skip, Prereqs};

/// The agent user, its home and the project directory of the image
/// (`image/Dockerfile`).
pub const USER: &str = "playground";
pub const HOME: &str = "/home/playground";
pub const WORKSPACE: &str = "/workspace";
/// Where the image finds the agent binaries (mounted read-only).
const AGENTS_BIN: &str = "/opt/real-agents/bin";
const CA_IN_CONTAINER: &str = "/etc/caw-real-agents/ca.pem";

/// The tokens every test's host home starts with. Fake, and only ever seen
/// by the fake server.
pub const CLAUDE_ACCESS: &str = "sk-ant-oat01-fake-host-access";
pub const CLAUDE_REFRESH: &str = "sk-ant-ort01-fake-host-refresh";
pub const CODEX_REFRESH: &str = "codex-fake-host-refresh";

pub struct Session {
    pub net: FakeNet,
    pub prereqs: &'static Prereqs,
    /// Holds the home and the auth dir; removed on drop.
    dir: tempfile::TempDir,
    pub home: PathBuf,
    pub auth: PathBuf,
    label: String,
    /// The host sync [`Session::start_host_sync`] started, if any.
    sync: Mutex<Option<Child>>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The host sync (started by `docker-flags` or by
/// [`Session::start_host_sync`]) stops before the temp dir goes.
impl Drop for Session {
    fn drop(&mut self) {
        let _ = caw_auth::host_sync::stop(&self.auth);
        if let Some(mut child) = self.sync.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- host sync log ---\n{}--- end ---", self.sync_log());
            }
        }
    }
}

impl Session {
    /// An empty host home and the fake network, or `None` when the test is
    /// skipped on this machine.
    /// `module` is the calling test's `module_path!()`; the test's name
    /// comes from its thread, which the test harness names after it.
    pub fn new(module: &str) -> Option<Session> {
        let thread = std::thread::current();
        let test = match thread.name() {
            Some(name) if name.contains("::") => name.to_string(),
            _ => module.to_string(),
        };
        let test = test.as_str();
        let prereqs = get_or_skip(test)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label = format!(
            "{}-{n}",
            test.rsplit("::").next().unwrap_or("t").replace('_', "-")
        );
        let net = FakeNet::start(&prereqs.image, &label);
        let dir = tempfile::Builder::new()
            .prefix("caw-real-")
            .tempdir()
            .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let auth = dir.path().join("auth");
        Some(Session {
            net,
            prereqs,
            dir,
            home,
            auth,
            label,
            sync: Mutex::new(None),
        })
    }

    fn write(&self, rel: &str, text: &str, mode: u32) {
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }

    /// Log the host in to Claude Code: `.claude.json` (onboarding done, the
    /// account) and `.claude/.credentials.json` expiring `expires_in` seconds
    /// from now (negative: already expired).
    pub fn login_claude(&self, expires_in: i64) {
        let config = serde_json::json!({
            "numStartups": 3,
            "hasCompletedOnboarding": true,
            "lastOnboardingVersion": "2.1.332",
            "userID": "f00dfeed-real-agents",
            "oauthAccount": {
                "accountUuid": "acct-uuid-real-agents",
                "emailAddress": "dev@example.com",
                "organizationUuid": "org-uuid-real-agents",
                "organizationName": "Dev's Organization",
                "displayName": "Dev",
                "organizationRole": "admin",
                "billingType": "stripe_subscription"
            },
            "projects": {"/home/dev/src/app": {"hasTrustDialogAccepted": true, "allowedTools": []}}
        });
        self.write(
            ".claude.json",
            &serde_json::to_string_pretty(&config).unwrap(),
            0o600,
        );
        let expires_at = (now() + expires_in) * 1000;
        self.write(
            ".claude/.credentials.json",
            &format!(
                r#"{{"claudeAiOauth":{{"accessToken":"{CLAUDE_ACCESS}","refreshToken":"{CLAUDE_REFRESH}","expiresAt":{expires_at},"scopes":["user:inference","user:profile","user:sessions:claude_code"],"subscriptionType":"max","rateLimitTier":"default_claude_max_20x"}}}}"#
            ),
            0o600,
        );
        self.net
            .declare_login("claude-host", &[CLAUDE_ACCESS, CLAUDE_REFRESH]);
    }

    /// Log the host in to Codex with ChatGPT: `.codex/auth.json` whose access
    /// token expires `expires_in` seconds from now, and a `config.toml`,
    /// with a host MCP server when `mcp_server`.
    pub fn login_codex(&self, expires_in: i64, mcp_server: bool) {
        let exp = now() + expires_in;
        // A login older than Codex's refresh interval when it is expired.
        let last_refresh = if expires_in < 0 {
            "2026-01-01T00:00:00.000000Z".to_string()
        } else {
            jiff::Timestamp::now().to_string()
        };
        let access = codex_host_access(exp);
        self.net
            .declare_login("codex-host", &[&access, CODEX_REFRESH]);
        let auth = serde_json::json!({
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": codex_jwt("id-host", exp),
                "access_token": access,
                "refresh_token": CODEX_REFRESH,
                "account_id": "acct-real-agents"
            },
            "last_refresh": last_refresh
        });
        self.write(
            ".codex/auth.json",
            &serde_json::to_string_pretty(&auth).unwrap(),
            0o600,
        );
        let mut config = String::from(
            "# host settings\nmodel = \"gpt-5-codex\"\n\n\
             [projects.\"/home/dev/src/app\"]\ntrust_level = \"trusted\"\n",
        );
        if mcp_server {
            config.push_str(
                "\n[mcp_servers.docs]\ncommand = \"docs-mcp-server\"\nargs = [\"--stdio\"]\n\
                 env = { DOCS_TOKEN = \"fake-host-mcp-secret\" }\n",
            );
        }
        self.write(".codex/config.toml", &config, 0o644);
    }

    pub fn host_file(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    /// The host's credential as JSON.
    pub fn host_json(&self, rel: &str) -> serde_json::Value {
        let path = self.host_file(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
    }

    /// `caw auth setup --auth-dir A <extra>` on the host home, bundling the
    /// static caw; panics when it fails.
    pub fn setup(&self, extra: &[&str]) {
        let out = Command::new(env!("CARGO_BIN_EXE_caw"))
            .args(["auth", "setup", "--auth-dir"])
            .arg(&self.auth)
            .args(extra)
            .env("HOME", &self.home)
            .env("CAW_STATIC_BINARY", &self.prereqs.static_caw)
            .env_remove("CAW_AUTH_DIR")
            .env_remove("CLAUDE_CONFIG_DIR")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "caw auth setup {extra:?} failed: {}",
            text(&out.stderr)
        );
        assert!(
            self.auth.join("bin/caw").is_file(),
            "setup did not bundle the static caw: {}",
            text(&out.stderr)
        );
    }

    /// Start the host sync, `caw auth sync --idle-exit 0`, where the host's
    /// agents run: in the fake network, with this test's /etc/hosts and CA
    /// bundle (also as `SSL_CERT_FILE`), so that its refresher reaches the
    /// fake server at the agents' real token endpoints. `refresher`: without
    /// `CAW_NO_REFRESH`; else with it, like the sync `docker-flags` starts
    /// in every other test (cargo sets it for the test process). Returns
    /// once it runs: `docker-flags` then finds it and starts no other.
    pub fn start_host_sync(&self, refresher: bool) {
        let auth = self.auth.to_str().unwrap();
        let caw = Path::new(env!("CARGO_BIN_EXE_caw"));
        let mut cmd = self.net.host_command(
            caw,
            &["auth", "sync", "--idle-exit", "0", "--auth-dir", auth],
        );
        cmd.env("HOME", &self.home)
            .env("SSL_CERT_FILE", self.net.bundle())
            .env("NO_COLOR", "1")
            .env("CAW_LOG", "debug")
            .current_dir(&self.home);
        if !refresher {
            cmd.env("CAW_NO_REFRESH", "1");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.sync_log_path())
            .unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !matches!(
            caw_auth::host_sync::status(&self.auth),
            caw_auth::host_sync::SyncStatus::Running(Some(_))
        ) {
            if let Some(exit) = child.try_wait().unwrap() {
                panic!("the host sync exited ({exit}):\n{}", self.sync_log());
            }
            assert!(
                Instant::now() < deadline,
                "the host sync did not start:\n{}",
                self.sync_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        *self.sync.lock().unwrap() = Some(child);
    }

    /// Stop the host sync [`Session::start_host_sync`] started (SIGTERM,
    /// as `caw auth teardown` stops it) and wait for it to exit; its log is
    /// kept (a later start appends to it).
    pub fn stop_host_sync(&self) {
        caw_auth::host_sync::stop(&self.auth).unwrap();
        let Some(mut child) = self.sync.lock().unwrap().take() else {
            panic!("no host sync started by the test to stop");
        };
        let exited = poll(Duration::from_secs(15), || child.try_wait().unwrap());
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the host sync did not stop:\n{}", self.sync_log());
        }
        assert!(
            matches!(
                caw_auth::host_sync::status(&self.auth),
                caw_auth::host_sync::SyncStatus::Stopped
            ),
            "the host sync still runs after stopping it"
        );
    }

    fn sync_log_path(&self) -> PathBuf {
        self.dir.path().join("sync.log")
    }

    /// What the host sync [`Session::start_host_sync`] started has logged.
    pub fn sync_log(&self) -> String {
        std::fs::read_to_string(self.sync_log_path()).unwrap_or_default()
    }

    /// `caw auth docker-flags` (the `v` form), split as `$(…)` splits it.
    fn docker_flags(&self) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_caw"))
            .args(["auth", "docker-flags", "--auth-dir"])
            .arg(&self.auth)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "docker-flags: {}", text(&out.stderr));
        text(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Start an agent container set up by caw: THE one place that says how.
    ///
    /// `docker run $(caw auth docker-flags) IMAGE` in live mode (the
    /// default; docker-flags starts the host sync), whose entrypoint runs
    /// `setup-container.sh` as root, starts the guard and drops to the agent
    /// user (docs/docker.md). To test `caw run` / live
    /// mode instead, change this function: the container must join
    /// `self.net` (`self.net.docker_args()`), see the agent binaries at
    /// `/opt/real-agents/bin` and trust the test CA (the two `-v` and the
    /// `-e` below), and be named `caw-real-agents-…` so it is removed.
    pub fn start_container(&self, label: &str) -> Agent {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "caw-real-agents-{}-{n}-{}-{label}",
            std::process::id(),
            self.label
        );
        let mut args: Vec<String> = ["run", "--detach", "--rm", "--name", &name]
            .into_iter()
            .map(str::to_string)
            .collect();
        args.extend(["--label".into(), "caw-real-agents=1".into()]);
        args.extend(self.net.docker_args());
        args.extend([
            "-v".into(),
            format!("{}:{AGENTS_BIN}:ro", self.prereqs.bin.display()),
            "-v".into(),
            format!(
                "{}:/etc/ssl/certs/ca-certificates.crt:ro",
                self.net.bundle().display()
            ),
            "-v".into(),
            format!("{}:{CA_IN_CONTAINER}:ro", self.net.ca().display()),
            "-e".into(),
            format!("NODE_EXTRA_CA_CERTS={CA_IN_CONTAINER}"),
        ]);
        args.extend(self.docker_flags());
        args.extend([self.prereqs.image.clone(), "serve".into()]);
        let agent = Agent {
            name,
            pid: OnceLock::new(),
        };
        let out = run(Command::new("docker").args(&args), Duration::from_secs(60));
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            text(&out.stderr)
        );
        let marker = "caw-real-agents: setup-container.sh exited ";
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = agent.logs();
            if let Some(line) = logs.lines().find(|l| l.starts_with(marker)) {
                assert_eq!(
                    &line[marker.len()..],
                    "0",
                    "setup-container.sh failed:\n{logs}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "setup-container.sh did not finish:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    /// `program args…` (a real agent binary) on the host as the host user
    /// would run it, in the fake network, from the host home.
    pub fn on_host(&self, program: &str, args: &[&str]) -> Output {
        let mut cmd = self.host_command(program, args);
        run(&mut cmd, Duration::from_secs(90))
    }

    /// The host command for `program args…` without running it.
    pub fn host_command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.net.host_command(&self.prereqs.bin.join(program), args);
        cmd.env("HOME", &self.home)
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin",
                    self.prereqs.bin.display()
                ),
            )
            .env("NODE_EXTRA_CA_CERTS", self.net.ca())
            .env("TERM", "xterm-256color")
            .env("LANG", "C.UTF-8")
            .current_dir(&self.home);
        cmd
    }
}

/// An agent container; removed (`docker rm -f`) when dropped, after printing
/// its logs if the test is failing.
pub struct Agent {
    pub name: String,
    pid: OnceLock<u32>,
}

impl Agent {
    /// The pid of the container's init on the host.
    pub fn pid(&self) -> u32 {
        *self.pid.get_or_init(|| {
            let out = run(
                Command::new("docker").args(["inspect", "--format", "{{.State.Pid}}", &self.name]),
                Duration::from_secs(30),
            );
            text(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("no pid for `{}`: {}", self.name, text(&out.stderr)))
        })
    }

    /// `path` in the container, as the host sees it: through
    /// `/proc/<pid>/root`, without starting anything in the container.
    pub fn host_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }

    pub fn logs(&self) -> String {
        let out = run(
            Command::new("docker").args(["logs", &self.name]),
            Duration::from_secs(30),
        );
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// `program args…` as the agent user in `dir`.
    pub fn run_in(&self, dir: &str, program: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.args(self.exec_args(dir, false)).arg(program).args(args);
        run(&mut cmd, Duration::from_secs(90))
    }

    /// `program args…` as the agent user in the project directory.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.run_in(WORKSPACE, program, args)
    }

    /// `docker exec` options for the agent user in `dir` (`tty`: with a
    /// terminal, for a TUI).
    pub fn exec_args(&self, dir: &str, tty: bool) -> Vec<String> {
        let mut args = vec!["exec".to_string()];
        if tty {
            args.extend(["--interactive".into(), "--tty".into()]);
        }
        args.extend([
            "--user".into(),
            USER.into(),
            "--workdir".into(),
            dir.into(),
            "-e".into(),
            format!("HOME={HOME}"),
            "-e".into(),
            format!("USER={USER}"),
            "-e".into(),
            "TERM=xterm-256color".into(),
            "-e".into(),
            "LANG=C.UTF-8".into(),
            self.name.clone(),
        ]);
        args
    }

    /// The agent user's file, `None` when it cannot be read.
    pub fn read(&self, path: &str) -> Option<String> {
        let out = self.run("cat", &[path]);
        out.status.success().then(|| text(&out.stdout))
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let text = self
            .read(path)
            .unwrap_or_else(|| panic!("cannot read {path} in the container"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- logs of `{}` ---\n{}--- end ---",
                self.name,
                self.logs()
            );
        }
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Run `cmd` with no stdin; kill it after `timeout` (then panic).
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Call `check` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A JWT with the claims Codex reads (the fake server makes the same).
pub fn codex_jwt(tag: &str, exp: i64) -> String {
    let e = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = serde_json::json!({
        "iss": "https://auth.openai.com",
        "sub": "user-real-agents",
        "email": "dev@example.com",
        "exp": exp,
        "iat": now(),
        "jti": tag,
        "https://api.openai.com/profile": {"email": "dev@example.com", "email_verified": true},
        "https://api.openai.com/auth": {
            "chatgpt_account_id": "acct-real-agents",
            "chatgpt_plan_type": "pro",
            "chatgpt_user_id": "user-real-agents",
            "user_id": "user-real-agents"
        }
    });
    format!(
        "{}.{}.ZmFrZS1zaWduYXR1cmU",
        e(&serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        e(&claims)
    )
}

/// The host's Codex access token (a JWT marked `codex-fake-host-access`).
pub fn codex_host_access(exp: i64) -> String {
    codex_jwt("codex-fake-host-access", exp)
}

/// The `jti` marker of a Codex JWT, to name it in assertions without
/// printing the whole token.
pub fn jwt_tag(token: &str) -> String {
    let Some(payload) = token.split('.').nth(1) else {
        return format!("<not a JWT: {token}>");
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return "<bad JWT>".into();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["jti"].as_str().unwrap_or("<no jti>").to_string()
}
