//! A temp host home built like a real one, a temp auth dir, and a way to run `caw` on them.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// Token strings planted in every credential; none may ever be printed.
pub const SECRETS: &[&str] = &[
    "sk-ant-oat01-SECRET-ACCESS",
    "sk-ant-ort01-SECRET-REFRESH",
    "codex-SECRET-REFRESH",
    "ya29.SECRET-GEMINI",
    "qwen-SECRET-ACCESS",
    "opencode-SECRET-REFRESH",
    "sk-SECRET-API-KEY",
];

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub auth: PathBuf,
}

/// Milliseconds since the epoch, `offset_secs` from now.
pub fn ms_from_now(offset_secs: i64) -> i64 {
    (jiff::Timestamp::now().as_second() + offset_secs) * 1000
}

pub fn jwt(exp: i64) -> String {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        e(r#"{"alg":"RS256","typ":"JWT"}"#),
        e(&format!(
            r#"{{"exp":{exp},"sub":"user-123","email":"dev@example.com"}}"#
        ))
    )
}

/// A host sync that a test started (`docker-flags` without `CAW_NO_SYNC`)
/// is stopped before the temp dir goes, whatever happened in the test: a
/// sync that saw its auth dir removed under it would otherwise restore files
/// into it while it is being removed.
impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = caw_auth::host_sync::stop(&self.auth);
    }
}

impl TestEnv {
    /// An empty home and no auth dir yet.
    pub fn empty() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("caw-test-")
            .tempdir()
            .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let auth = dir.path().join("auth");
        TestEnv { dir, home, auth }
    }

    /// A home with all five agents logged in, expiries relative to now.
    pub fn full() -> TestEnv {
        let env = TestEnv::empty();
        env.claude(ms_from_now(3 * 3600 + 5 * 60 + 30));
        env.codex(jiff::Timestamp::now().as_second() + 2 * 86400 + 4 * 3600 + 1800);
        env.opencode();
        env.gemini(ms_from_now(17 * 60 + 30));
        env.qwen(ms_from_now(-(2 * 86400 + 4 * 3600 + 1800)));
        env
    }

    pub fn write(&self, rel: &str, text: &str, mode: u32) {
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }

    /// `.claude.json` with 50 host projects and MCP servers, plus the credential.
    pub fn claude(&self, expires_ms: i64) {
        let mut projects = serde_json::Map::new();
        for i in 0..50 {
            projects.insert(
                format!("/home/dev/src/project-{i}"),
                serde_json::json!({
                    "allowedTools": ["Bash(git:*)", "Edit"],
                    "mcpServers": {"db": {"command": "pg-mcp", "env": {"PGPASSWORD": "hunter2"}}},
                    "hasTrustDialogAccepted": true,
                    "history": [{"display": "fix the bug in /home/dev/src/project-{i}"}]
                }),
            );
        }
        let config = serde_json::json!({
            "numStartups": 312,
            "installMethod": "native",
            "autoUpdates": true,
            "tipsHistory": {"shift-enter": 3},
            "userID": "f00dfeed",
            "hasCompletedOnboarding": true,
            "oauthAccount": {"emailAddress": "dev@example.com", "organizationUuid": "org-1"},
            "mcpServers": {"fs": {"command": "npx", "args": ["fs-mcp", "/home/dev"]}},
            "projects": projects,
            "cachedChangelog": "# Changelog\n..."
        });
        self.write(
            ".claude.json",
            &serde_json::to_string_pretty(&config).unwrap(),
            0o644,
        );
        self.write(
            ".claude/.credentials.json",
            &format!(
                r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-SECRET-ACCESS","refreshToken":"sk-ant-ort01-SECRET-REFRESH","expiresAt":{expires_ms},"scopes":["user:inference"],"subscriptionType":"max"}}}}"#
            ),
            0o600,
        );
    }

    pub fn codex(&self, exp_secs: i64) {
        let token = jwt(exp_secs);
        self.write(
            ".codex/auth.json",
            &format!(
                r#"{{"OPENAI_API_KEY":null,"tokens":{{"id_token":"{token}","access_token":"{token}","refresh_token":"codex-SECRET-REFRESH","account_id":"acct"}},"last_refresh":"2026-01-01T00:00:00Z"}}"#
            ),
            0o600,
        );
        self.write(
            ".codex/config.toml",
            "# codex settings\nmodel = \"gpt-5-codex\" # the default\n\n\
             [projects.\"/home/dev/src/project-1\"]\ntrust_level = \"trusted\"\n\n\
             # servers\n[mcp_servers.docs]\ncommand = \"npx\"\nargs = [\"docs-mcp\"]\n\n\
             [projects.\"/home/dev/src/project-2\"]\ntrust_level = \"untrusted\"\n\n\
             [project_trust.\"/home/dev/old\"]\ntrust_mode = \"full\"\n",
            0o644,
        );
    }

    pub fn opencode(&self) {
        self.write(
            ".local/share/opencode/auth.json",
            &format!(
                r#"{{"anthropic":{{"type":"oauth","refresh":"opencode-SECRET-REFRESH","access":"x","expires":{}}},"openai":{{"type":"api","key":"sk-SECRET-API-KEY"}}}}"#,
                ms_from_now(40 * 86400 + 2 * 3600 + 1800)
            ),
            0o600,
        );
        self.write(
            ".config/opencode/opencode.json",
            r#"{"$schema":"https://opencode.ai/config.json","theme":"dark"}"#,
            0o644,
        );
    }

    pub fn gemini(&self, expiry_ms: i64) {
        self.write(
            ".gemini/oauth_creds.json",
            &format!(r#"{{"access_token":"ya29.SECRET-GEMINI","refresh_token":"1//x","token_type":"Bearer","expiry_date":{expiry_ms}}}"#),
            0o600,
        );
        self.write(
            ".gemini/settings.json",
            r#"{"security":{"auth":{"selectedType":"oauth-personal"}}}"#,
            0o644,
        );
        self.write(
            ".gemini/google_accounts.json",
            r#"{"active":"dev@example.com","old":[]}"#,
            0o644,
        );
    }

    /// Move Claude's credential and config into `dir`, as a host with
    /// `CLAUDE_CONFIG_DIR=dir` keeps them.
    pub fn move_claude_to(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::rename(
            self.home.join(".claude/.credentials.json"),
            dir.join(".credentials.json"),
        )
        .unwrap();
        std::fs::rename(self.home.join(".claude.json"), dir.join(".claude.json")).unwrap();
    }

    pub fn qwen(&self, expiry_ms: i64) {
        self.write(
            ".qwen/oauth_creds.json",
            &format!(r#"{{"access_token":"qwen-SECRET-ACCESS","refresh_token":"r","token_type":"Bearer","expiry_date":{expiry_ms}}}"#),
            0o600,
        );
    }

    /// `caw` with HOME pointing at the temp home and no ambient configuration.
    pub fn caw(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("caw").unwrap();
        cmd.env("HOME", &self.home)
            .env_remove("CAW_AUTH_DIR")
            .env_remove("CAW_STATIC_BINARY")
            .env_remove("CAW_LOG")
            .env("NO_COLOR", "1")
            // docker-flags starts no host sync unless a test asks for one.
            .env("CAW_NO_SYNC", "1")
            .current_dir(self.dir.path());
        cmd
    }

    /// `caw auth <args> --auth-dir <auth>`.
    pub fn auth(&self, args: &[&str]) -> Output {
        let mut cmd = self.caw();
        cmd.arg("auth").args(args).arg("--auth-dir").arg(&self.auth);
        let out = cmd.output().unwrap();
        assert_no_secrets(&out);
        out
    }

    /// `caw auth <args> --auth-dir <auth>` for an auth dir other than `self.auth`.
    pub fn auth_at(&self, auth: &Path, args: &[&str]) -> Output {
        let mut cmd = self.caw();
        cmd.arg("auth").args(args).arg("--auth-dir").arg(auth);
        let out = cmd.output().unwrap();
        assert_no_secrets(&out);
        out
    }

    /// `n` concurrent `caw auth setup <args> --auth-dir <auth>`; each must succeed.
    pub fn concurrent_setups(&self, n: usize, args: &[&str]) {
        let children: Vec<_> = (0..n)
            .map(|_| {
                std::process::Command::new(assert_cmd::cargo::cargo_bin("caw"))
                    .env("HOME", &self.home)
                    .env_remove("CAW_AUTH_DIR")
                    .args(["auth", "setup"])
                    .args(args)
                    .arg("--auth-dir")
                    .arg(&self.auth)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }

    /// Names starting with `.` beside the auth dir (temp dirs, lock files).
    pub fn hidden_siblings(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    pub fn setup(&self) -> Output {
        let out = self.auth(&["setup"]);
        assert!(out.status.success(), "setup failed: {}", stderr(&out));
        out
    }

    /// Snapshot settings that replace temp paths and times by stable placeholders.
    pub fn settings(&self) -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        for (pattern, replacement) in self.filters() {
            settings.add_filter(&pattern, replacement);
        }
        settings
    }

    fn filters(&self) -> Vec<(String, String)> {
        vec![
            (
                regex_escape(&self.auth.display().to_string()),
                "[AUTH]".into(),
            ),
            (
                regex_escape(&self.home.display().to_string()),
                "[HOME]".into(),
            ),
            (
                regex_escape(&self.dir.path().display().to_string()),
                "[TMP]".into(),
            ),
            (
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z".into(),
                "[TIMESTAMP]".into(),
            ),
            (r"\b\d+s ago\b".into(), "[AGE]".into()),
        ]
    }
}

pub fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_no_secrets(out: &Output) {
    for secret in SECRETS {
        for (name, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
            assert!(!text.contains(secret), "{name} leaks a secret: {text}");
        }
    }
}

/// Everything observable about a tree: per path, its bytes, mode, mtime and inode.
pub fn tree_state(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let bytes = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path,
                (
                    bytes,
                    meta.mode(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.ino(),
                ),
            );
        }
    }
    out
}

pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The credentials of every agent: `(agent, host path, src)`.
pub const CREDENTIALS: [(&str, &str, &str); 5] = [
    (
        "claude",
        ".claude/.credentials.json",
        "claude/credentials.json",
    ),
    ("codex", ".codex/auth.json", "codex/auth.json"),
    (
        "opencode",
        ".local/share/opencode/auth.json",
        "opencode/auth.json",
    ),
    (
        "gemini",
        ".gemini/oauth_creds.json",
        "gemini/oauth_creds.json",
    ),
    ("qwen", ".qwen/oauth_creds.json", "qwen/oauth_creds.json"),
];

pub fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// A Claude credential expiring `expires_ms`, marked with `tag`.
pub fn claude_credential(tag: &str, expires_ms: i64) -> String {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-{tag}","refreshToken":"sk-ant-ort01-{tag}","expiresAt":{expires_ms}}}}}"#
    )
}

/// `mkfifo path`.
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Edit the auth dir's manifest as JSON.
pub fn edit_manifest(auth: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = auth.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
}

/// A browser extension's directory at `dir`: a `manifest.json` that is not
/// caw's, `background.js` and `icons/48.png`.
pub fn write_browser_extension(dir: &Path) {
    std::fs::create_dir_all(dir.join("icons")).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"manifest_version": 3, "name": "Tab Tidy", "version": "2.1",
            "background": {"service_worker": "background.js"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("background.js"),
        "chrome.tabs.query({}, () => {});",
    )
    .unwrap();
    std::fs::write(dir.join("icons/48.png"), [0x89, b'P', b'N', b'G']).unwrap();
}

/// Poll `cond` every 20 ms until it holds; fail naming `what` after `within`.
pub fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file's text, or "" when it cannot be read (missing, mid-rename).
pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Send SIGTERM to a child (a host sync): how a user stops one.
pub fn terminate(child: &Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// Stop a host sync started with its stderr piped, and return what it logged.
pub fn stop_sync(child: Child) -> String {
    terminate(&child);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A Claude credential file's text: `expires_ms` left out when `None`.
pub fn claude_oauth(access: &str, refresh: &str, expires_ms: Option<i64>) -> String {
    let expiry = expires_ms.map_or_else(String::new, |e| format!(r#","expiresAt":{e}"#));
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"{access}","refreshToken":"{refresh}"{expiry},"scopes":["user:inference"],"subscriptionType":"max"}}}}"#
    )
}
