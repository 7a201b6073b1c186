//! The fake network of one test: a network namespace with nothing but
//! loopback, the service host names mapped to 127.0.0.1 in it, a throw-away
//! CA, and `fake_server.py` listening on 127.0.0.1:443 inside it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Every host name the CLIs call for an API request, `auth status` / `login
/// status` and an OAuth refresh or revocation (see docs/real-agents.md). All
/// point at the fake server; any other name does not resolve (no DNS server
/// is reachable), and no address outside loopback is routable.
pub const HOSTS: &[&str] = &[
    // Claude Code: API, profile, telemetry; OAuth token, refresh and revoke.
    "api.anthropic.com",
    "platform.claude.com",
    "console.anthropic.com",
    "claude.ai",
    "claude.com",
    // Codex: OAuth token, refresh and revoke; ChatGPT backend; API-key API.
    "auth.openai.com",
    "chatgpt.com",
    "api.openai.com",
];

/// One request as the fake server recorded it.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub method: String,
    pub path: String,
    pub bearer: Option<String>,
    /// For `grant_type=refresh_token` requests: the refresh token sent.
    pub refresh_token: Option<String>,
    /// For token requests: whether the server refused it.
    pub refused: bool,
    /// For a refused token request: `reused` (which revoked the family),
    /// `family_revoked`, `refuse` (the test's switch) or `unknown`.
    pub refusal: Option<String>,
    /// For revocations: the token revoked.
    pub revoked: Option<String>,
    /// The request carried an access token of a revoked family: 401.
    pub unauthorized: bool,
    /// Sent by caw (its User-Agent starts with `caw/`).
    pub caw: bool,
    /// The User-Agent header, if any.
    pub user_agent: Option<String>,
    /// For token requests: the body's field names, in order.
    pub fields: Vec<String>,
    /// For token requests: how the request differs from the agent's
    /// refresh as caw pins it (empty: it matches).
    pub format_problems: Vec<String>,
    /// When it arrived (seconds since the epoch).
    pub time: f64,
}

impl Request {
    /// A refresh (a `grant_type=refresh_token` request).
    pub fn is_refresh(&self) -> bool {
        self.refresh_token.is_some()
    }
}

/// What the server thinks of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Not yet used (a refresh token), in a family that is not revoked.
    Live,
    /// A refresh token already spent.
    Used,
    /// Its family was revoked (a reuse or a logout).
    Revoked,
}

pub struct FakeNet {
    dir: tempfile::TempDir,
    /// The net container that owns the namespace.
    pub container: String,
    /// Its init's pid: `/proc/<pid>/ns/net` is the namespace.
    pid: u32,
    server: Child,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl FakeNet {
    /// Certificates, the namespace and the server; panics when any of it fails.
    pub fn start(image: &str, label: &str) -> FakeNet {
        let dir = tempfile::Builder::new()
            .prefix("caw-real-net-")
            .tempdir()
            .unwrap();
        make_certificates(dir.path());
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for name in HOSTS {
            hosts.push_str(&format!("127.0.0.1 {name}\n"));
        }
        std::fs::write(dir.path().join("hosts"), hosts).unwrap();
        let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        bundle.extend(std::fs::read(dir.path().join("ca.pem")).unwrap());
        std::fs::write(dir.path().join("bundle.pem"), bundle).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();

        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let container = format!("caw-real-agents-{}-{n}-{label}-net", std::process::id());
        let mut run = Command::new("docker");
        run.args(["run", "--detach", "--rm", "--name", &container])
            .args(["--label", "caw-real-agents=1", "--network", "none"]);
        for name in HOSTS {
            run.arg("--add-host").arg(format!("{name}:127.0.0.1"));
        }
        // Stops by itself if the harness dies before removing it.
        run.args(["--entrypoint", "sleep", image, "900"]);
        let out = run.output().unwrap();
        assert!(
            out.status.success(),
            "cannot start the net container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{.State.Pid}}", &container])
            .output()
            .unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid for `{container}`"));

        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_agents/fake_server.py");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let server = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .arg("--")
            .arg("python3")
            .arg(&script)
            .arg("--state-dir")
            .arg(&state)
            .arg("--cert")
            .arg(dir.path().join("server.pem"))
            .arg("--key")
            .arg(dir.path().join("server.key"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let net = FakeNet {
            dir,
            container,
            pid,
            server,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !state.join("ready").exists() {
            assert!(
                Instant::now() < deadline,
                "the fake server did not start: {}",
                net.server_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        net
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The system CA bundle plus the test CA.
    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle.pem")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `docker run` options that put a container in this namespace (and give
    /// it the namespace's /etc/hosts, shared from the net container).
    pub fn docker_args(&self) -> Vec<String> {
        vec!["--network".into(), format!("container:{}", self.container)]
    }

    /// `program args…` on the host, inside the namespace and a private mount
    /// namespace where /etc/hosts and the system CA bundle are this test's.
    /// The caller sets the environment (the command's is cleared).
    pub fn host_command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("--net=/proc/{}/ns/net", self.pid))
            .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/hosts \
                 && mount --bind \"$2\" /etc/ssl/certs/ca-certificates.crt \
                 && shift 2 && exec \"$@\"",
            )
            .arg("sh")
            .arg(self.dir.path().join("hosts"))
            .arg(self.bundle())
            .arg(program)
            .args(args);
        cmd
    }

    /// Every request the server has seen so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        let text = std::fs::read_to_string(self.state().join("requests.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad requests.jsonl line {line:?}: {e}"));
                let s = |k: &str| v[k].as_str().map(str::to_string);
                let strings = |k: &str| -> Vec<String> {
                    v[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|f| f.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Request {
                    host: s("host").unwrap_or_default(),
                    method: s("method").unwrap_or_default(),
                    path: s("path").unwrap_or_default(),
                    bearer: s("bearer"),
                    refresh_token: s("refresh_token"),
                    refused: v["refused"].as_bool().unwrap_or(false),
                    refusal: s("refusal"),
                    revoked: s("revoked"),
                    unauthorized: v["unauthorized"].as_bool().unwrap_or(false),
                    caw: v["caw"].as_bool().unwrap_or(false),
                    user_agent: s("user_agent"),
                    fields: strings("fields"),
                    format_problems: strings("format_problems"),
                    time: v["time"].as_f64().unwrap_or(0.0),
                }
            })
            .collect()
    }

    /// Requests on `host` since the first `skip` requests.
    pub fn requests_to(&self, host: &str, skip: usize) -> Vec<Request> {
        self.requests()
            .into_iter()
            .skip(skip)
            .filter(|r| r.host == host)
            .collect()
    }

    /// From now on refuse every refresh (the login is dead on the server).
    pub fn refuse_refreshes(&self) {
        std::fs::write(self.state().join("refuse"), b"").unwrap();
    }

    /// From now on answer token requests `delay` after they arrive (the
    /// refresh token is spent on arrival).
    pub fn delay_token_answers(&self, delay: Duration) {
        write_replace(
            &self.state().join("delay"),
            delay.as_secs_f64().to_string().as_bytes(),
        );
    }

    /// Tell the server that `tokens` (an access and a refresh token a test
    /// logged in with) are one login, `family`: a reuse of any refresh token
    /// of it revokes them all.
    pub fn declare_login(&self, family: &str, tokens: &[&str]) {
        let path = self.state().join("logins.json");
        let mut logins: serde_json::Map<String, serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        logins.insert(family.into(), serde_json::json!(tokens));
        write_replace(&path, &serde_json::to_vec(&logins).unwrap());
    }

    /// What the server thinks of a refresh token now.
    pub fn refresh_token_state(&self, token: &str) -> TokenState {
        let state: serde_json::Value = std::fs::read(self.state().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let logins: serde_json::Value = std::fs::read(self.state().join("logins.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let declared = logins.as_object().and_then(|m| {
            m.iter()
                .find(|(_, tokens)| {
                    tokens
                        .as_array()
                        .is_some_and(|a| a.iter().any(|t| t == token))
                })
                .map(|(family, _)| family.clone())
        });
        let family = state["family_of"][token]
            .as_str()
            .map(str::to_string)
            .or(declared)
            .unwrap_or_else(|| token.to_string());
        let has = |key: &str, v: &str| {
            state[key]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == v))
        };
        if has("revoked_families", &family) {
            TokenState::Revoked
        } else if has("used_refresh_tokens", token) {
            TokenState::Used
        } else {
            TokenState::Live
        }
    }
    /// The namespace has only `lo`, no IPv4 route and no IPv6 route off
    /// loopback, and every request the server saw was for a name it serves
    /// and passed TLS. Read through /proc/<pid>/net, which shows the net
    /// namespace of that pid.
    pub fn assert_loopback_only(&self) {
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{}/net/{f}", self.pid)).unwrap();
        let ifaces: Vec<String> = read("dev")
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|s| s.trim().to_string())
            .collect();
        assert_eq!(ifaces, ["lo"], "interfaces in the test namespace");
        let routes: Vec<String> = read("route").lines().skip(1).map(str::to_string).collect();
        assert!(
            routes.is_empty(),
            "IPv4 routes in the test namespace: {routes:?}"
        );
        if let Ok(v6) = std::fs::read_to_string(format!("/proc/{}/net/ipv6_route", self.pid)) {
            for line in v6.lines() {
                let dev = line.split_whitespace().last().unwrap_or("");
                assert_eq!(dev, "lo", "IPv6 route off loopback: {line}");
            }
        }
        let text = std::fs::read_to_string(self.state().join("requests.jsonl")).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(e) = v["tls_error"].as_str() {
                // A client that rejects the certificate says so with an
                // alert (Codex) or resets the connection (Claude's Bun). A
                // reset also happens when a CLI exits with a background
                // request mid-handshake, so only alerts fail here; a CA not
                // trusted by Claude shows as the requests the test expects
                // never arriving.
                assert!(
                    !e.contains("ALERT") && !e.to_lowercase().contains("certificate"),
                    "a client rejected the fake server's certificate ({e}): the test CA is not trusted"
                );
                continue;
            }
            let host = v["host"].as_str().unwrap_or("");
            assert!(
                HOSTS.contains(&host),
                "request for a host the test does not serve: {line}"
            );
        }
    }
}

impl Drop for FakeNet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- fake server log ---\n{}", self.server_log());
            let reqs =
                std::fs::read_to_string(self.state().join("requests.jsonl")).unwrap_or_default();
            eprintln!("--- requests ---\n{reqs}--- end ---");
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Write `path` whole (temp file + rename): the server may read it any time.
fn write_replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A CA and a server certificate for every name in [`HOSTS`].
fn make_certificates(dir: &Path) {
    let san: Vec<String> = HOSTS.iter().map(|h| format!("DNS:{h}")).collect();
    crate::tls::make_certificates(dir, "caw real-agents", &san.join(","));
}
