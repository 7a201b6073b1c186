//! `manifest.json`, version 1: what an auth dir holds and where each file goes.
//!
//! The format is shared with caw 0.1.x (the Python implementation), which
//! builds each file entry from exactly the six keys below: writing any other
//! key into a file entry would break it, so none is written.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fs::ReadError;
use crate::{Error, Result};

/// The `field` of an [`Error::InvalidManifest`] about the file as a whole.
pub const ROOT: &str = "(root)";

/// The file name of the manifest inside an auth dir.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Default container mount point of the auth dir (`M`).
pub const DEFAULT_MOUNT_POINT: &str = "/tmp/caw_auth";
/// Default home of the agent user in the container (`C`).
pub const DEFAULT_CONTAINER_HOME: &str = "/home/playground";
/// Default agent user in the container (`U`).
pub const DEFAULT_CONTAINER_USER: &str = "playground";
/// The largest `manifest.json` caw reads (a real one is a few KiB).
pub const MANIFEST_MAX_BYTES: u64 = 1 << 20;

/// How credentials reach containers, recorded in the manifest as `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// `A/live/` holds the current credentials; containers mount it
    /// read-write beside the read-only auth dir, and a host sync keeps it
    /// equal to the host files.
    Live,
    /// Each host credential file is bind-mounted over its snapshot (the
    /// layout of caw 0.1.x, whose manifests have no `mode`).
    Bind,
}

/// The mode `setup` writes when none is asked for.
pub const DEFAULT_MODE: AuthMode = AuthMode::Live;

impl AuthMode {
    /// `"live"` or `"bind"`, as in the manifest and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Live => "live",
            AuthMode::Bind => "bind",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "live" => Ok(AuthMode::Live),
            "bind" => Ok(AuthMode::Bind),
            _ => Err("must be `live` or `bind`".into()),
        }
    }
}

/// Whether a file is a login or a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// An OAuth login, kept in sync with the host.
    Credential,
    /// A cleaned config, copied once.
    Config,
}

/// How a file reaches the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Bind-mounted from the host file at `docker run` time.
    Bind,
    /// Copied from the staged file in the auth dir.
    Copy,
}

/// The file mode a staged or container file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// `0600`: credentials.
    #[serde(rename = "0600")]
    Private,
    /// `0644`: configs.
    #[serde(rename = "0644")]
    Public,
}

impl Mode {
    /// The permission bits.
    pub fn bits(self) -> u32 {
        match self {
            Mode::Private => 0o600,
            Mode::Public => 0o644,
        }
    }

    /// The octal text used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Private => "0600",
            Mode::Public => "0644",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileType::Credential => "credential",
            FileType::Config => "config",
        })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Bind => "bind",
            Strategy::Copy => "copy",
        })
    }
}

/// One managed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the auth dir (and under the mount point).
    pub src: String,
    /// Path under the container home.
    pub container_target: String,
    /// Path under the host home.
    pub host_original: String,
    /// Credential or config.
    #[serde(rename = "type")]
    pub file_type: FileType,
    /// Bind or copy.
    pub strategy: Strategy,
    /// Mode of the staged and container copies.
    pub mode: Mode,
}

/// The files of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentEntry {
    /// In the order they are set up.
    pub files: Vec<ManifestFile>,
}

/// A validated v1 manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// How credentials reach containers (absent in the file: `Bind`).
    pub mode: AuthMode,
    /// When `setup` wrote it (ISO-8601, UTC).
    pub created_at: String,
    /// The host home the files were read from (`H`).
    pub host_home: PathBuf,
    /// Agents whose files live outside `H` on the host (Claude Code's
    /// `CLAUDE_CONFIG_DIR` at setup time): the directory, absolute.
    pub config_dirs: std::collections::BTreeMap<String, PathBuf>,
    /// The agent user's home in the container (`C`).
    pub container_home: String,
    /// Where the auth dir is mounted in the container (`M`).
    pub mount_point: String,
    /// Agents in manifest order.
    pub agents: Vec<(String, AgentEntry)>,
    /// Containers get each login without its refresh token (`setup
    /// --hold-refresh-token`); the host sync refreshes for them. Written
    /// only when set (caw 0.1.x ignores it).
    pub hold_refresh_token: bool,
}

impl Manifest {
    /// Every file with its agent, in manifest order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &ManifestFile)> {
        self.agents
            .iter()
            .flat_map(|(name, a)| a.files.iter().map(move |f| (name.as_str(), f)))
    }

    /// Where the file the registry names `rel` is on the host for `agent`:
    /// below the agent's recorded config dir when it moves there, else below
    /// the host home. Every host path caw uses is built here, from the
    /// registry's names, never from a path the manifest spells out.
    pub fn host_path(&self, agent: &crate::agents::Agent, rel: &str) -> PathBuf {
        let dir = self.config_dirs.get(agent.name).map(PathBuf::as_path);
        agent.host_path(&self.host_home, dir, rel)
    }

    /// The manifest as pretty JSON, in the v1 layout.
    pub fn to_json(&self) -> String {
        let mut agents = Map::new();
        for (name, entry) in &self.agents {
            agents.insert(
                name.clone(),
                serde_json::to_value(entry).expect("plain data"),
            );
        }
        let mut root = Map::new();
        root.insert("version".into(), 1.into());
        root.insert("mode".into(), self.mode.as_str().into());
        root.insert("created_at".into(), self.created_at.clone().into());
        root.insert(
            "host_home".into(),
            self.host_home.to_string_lossy().into_owned().into(),
        );
        if !self.config_dirs.is_empty() {
            let dirs: Map<String, Value> = self
                .config_dirs
                .iter()
                .map(|(agent, dir)| (agent.clone(), dir.to_string_lossy().into_owned().into()))
                .collect();
            root.insert("config_dirs".into(), Value::Object(dirs));
        }
        if self.hold_refresh_token {
            root.insert("hold_refresh_token".into(), true.into());
        }
        root.insert("container_home".into(), self.container_home.clone().into());
        root.insert("mount_point".into(), self.mount_point.clone().into());
        root.insert("agents".into(), Value::Object(agents));
        let mut text = serde_json::to_string_pretty(&Value::Object(root)).expect("plain data");
        text.push('\n');
        text
    }

    /// Load and validate `<auth_dir>/manifest.json`.
    ///
    /// Never blocks: a FIFO, device, symlink or directory in its place, or a
    /// file over [`MANIFEST_MAX_BYTES`], is an [`Error::InvalidManifest`].
    pub fn load(auth_dir: &Path) -> Result<Manifest> {
        let path = auth_dir.join(MANIFEST_FILE);
        let bad = |reason: String| Error::InvalidManifest {
            path: path.clone(),
            field: ROOT.into(),
            reason,
        };
        let bytes = match crate::fs::read_regular(&path, MANIFEST_MAX_BYTES) {
            Ok(b) => b,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoManifest { path })
            }
            Err(ReadError::Io(e)) => return Err(e.into()),
            Err(e) => return Err(bad(e.to_string())),
        };
        Self::parse(&bytes, &path)
    }

    /// Validate manifest bytes; `path` is only used in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let bad = |field: &str, reason: &str| Error::InvalidManifest {
            path: path.to_path_buf(),
            field: field.to_string(),
            reason: reason.to_string(),
        };
        let root: Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(ROOT, &format!("it is not valid JSON ({e})")))?;
        let root = root
            .as_object()
            .ok_or_else(|| bad(ROOT, "it is not a JSON object"))?;

        match root.get("version") {
            Some(v) if v.as_u64() == Some(1) => {}
            Some(_) => return Err(bad("version", "must be 1")),
            None => return Err(bad("version", "is missing")),
        }
        let string = |key: &str, default: Option<&str>| -> Result<String> {
            match root.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                None => default
                    .map(str::to_string)
                    .ok_or_else(|| bad(key, "is missing")),
                Some(_) => Err(bad(key, "must be a string")),
            }
        };
        let mode = match root.get("mode") {
            None => AuthMode::Bind,
            Some(Value::String(m)) => m.parse().map_err(|reason: String| bad("mode", &reason))?,
            Some(_) => return Err(bad("mode", "must be a string")),
        };
        let created_at = string("created_at", Some(""))?;
        let host_home = string("host_home", None)?;
        let container_home = string("container_home", Some(DEFAULT_CONTAINER_HOME))?;
        let mount_point = string("mount_point", Some(DEFAULT_MOUNT_POINT))?;
        for (key, value) in [
            ("host_home", &host_home),
            ("container_home", &container_home),
            ("mount_point", &mount_point),
        ] {
            check_absolute(value).map_err(|reason| bad(key, &reason))?;
        }

        let config_dirs = parse_config_dirs(root, &bad)?;
        let agents = parse_agents(root, &bad)?;
        let hold_refresh_token = match root.get("hold_refresh_token") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("hold_refresh_token", "must be true or false")),
        };
        if hold_refresh_token && mode != AuthMode::Live {
            return Err(bad("hold_refresh_token", "needs mode `live`"));
        }
        Ok(Manifest {
            hold_refresh_token,
            mode,
            created_at,
            host_home: PathBuf::from(host_home),
            config_dirs,
            container_home,
            mount_point,
            agents,
        })
    }
}

type Bad<'a> = dyn Fn(&str, &str) -> Error + 'a;

/// An error unless `auth_dir` was set up with `--hold-refresh-token` (for
/// front ends asked to run containers that way).
pub fn require_held_refresh_tokens(auth_dir: &Path) -> Result<()> {
    if Manifest::load(auth_dir)?.hold_refresh_token {
        return Ok(());
    }
    Err(Error::InvalidOption {
        option: crate::OptionName::HoldRefreshToken,
        value: String::new(),
        reason: format!(
            "`{}` gives containers the refresh tokens; set it up again with \
             `caw auth setup --hold-refresh-token`",
            auth_dir.display()
        ),
    })
}

/// `config_dirs`: where an agent that can move its files keeps them.
fn parse_config_dirs(
    root: &serde_json::Map<String, Value>,
    bad: &Bad<'_>,
) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    let mut config_dirs = std::collections::BTreeMap::new();
    match root.get("config_dirs") {
        None => {}
        Some(Value::Object(dirs)) => {
            for (agent, dir) in dirs {
                let at = format!("config_dirs.{agent}");
                let Some(dir) = dir.as_str() else {
                    return Err(bad(&at, "must be a string"));
                };
                if crate::agents::by_name(agent)
                    .and_then(|a| a.relocation)
                    .is_none()
                {
                    return Err(bad(&at, "names no agent whose files can move"));
                }
                check_absolute(dir).map_err(|reason| bad(&at, &reason))?;
                config_dirs.insert(agent.clone(), PathBuf::from(dir));
            }
        }
        Some(_) => return Err(bad("config_dirs", "must be an object")),
    }
    Ok(config_dirs)
}

/// `agents`: each agent's files, by name.
fn parse_agents(
    root: &serde_json::Map<String, Value>,
    bad: &Bad<'_>,
) -> Result<Vec<(String, AgentEntry)>> {
    let agents_obj = match root.get("agents") {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad("agents", "must be an object")),
        None => return Err(bad("agents", "is missing")),
    };
    let mut agents = Vec::with_capacity(agents_obj.len());
    for (name, entry) in agents_obj {
        let at = format!("agents.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(&at, "is not a valid agent name"));
        }
        let files = entry
            .get("files")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(&format!("{at}.files"), "must be an array"))?;
        let mut out = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            out.push(parse_file(file, &format!("{at}.files[{i}]"), bad)?);
        }
        agents.push((name.clone(), AgentEntry { files: out }));
    }
    Ok(agents)
}

fn parse_file(file: &Value, at: &str, bad: &Bad<'_>) -> Result<ManifestFile> {
    let obj = file
        .as_object()
        .ok_or_else(|| bad(at, "must be an object"))?;
    let field = |key: &str| -> Result<&str> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(bad(&format!("{at}.{key}"), "must be a string")),
            None => Err(bad(&format!("{at}.{key}"), "is missing")),
        }
    };
    let rel = |key: &str| -> Result<String> {
        let value = field(key)?;
        check_relative(value).map_err(|reason| bad(&format!("{at}.{key}"), &reason))?;
        Ok(value.to_string())
    };
    let src = rel("src")?;
    let container_target = rel("container_target")?;
    let host_original = rel("host_original")?;
    let file_type = match field("type")? {
        "credential" => FileType::Credential,
        "config" => FileType::Config,
        _ => {
            return Err(bad(
                &format!("{at}.type"),
                "must be `credential` or `config`",
            ))
        }
    };
    let strategy = match field("strategy")? {
        "bind" => Strategy::Bind,
        "copy" => Strategy::Copy,
        _ => return Err(bad(&format!("{at}.strategy"), "must be `bind` or `copy`")),
    };
    let mode = match field("mode")? {
        "0600" => Mode::Private,
        "0644" => Mode::Public,
        _ => return Err(bad(&format!("{at}.mode"), "must be `0600` or `0644`")),
    };
    Ok(ManifestFile {
        src,
        container_target,
        host_original,
        file_type,
        strategy,
        mode,
    })
}

/// A relative, normalised path with no `..`, `.` or empty components.
pub fn check_relative(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.starts_with('/') {
        return Err(format!("must be relative, got `{value}`"));
    }
    if value.contains('\0') || value.contains('\n') {
        return Err("contains a NUL or newline".into());
    }
    if value.ends_with('/') || value.contains("//") {
        return Err(format!("is not normalised: `{value}`"));
    }
    for comp in Path::new(value).components() {
        match comp {
            Component::Normal(_) => {}
            Component::ParentDir => return Err(format!("must not contain `..`: `{value}`")),
            _ => return Err(format!("is not normalised: `{value}`")),
        }
    }
    if value.split('/').any(|c| c == "." || c == "..") {
        return Err(format!("is not normalised: `{value}`"));
    }
    Ok(())
}

/// An absolute, normalised path (the container home or mount point).
pub fn check_absolute(value: &str) -> std::result::Result<(), String> {
    let Some(rest) = value.strip_prefix('/') else {
        return Err(format!("must be an absolute path, got `{value}`"));
    };
    if rest.is_empty() {
        return Err("must not be `/`".into());
    }
    check_relative(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_with_file(file: &str) -> String {
        format!(
            r#"{{"version":1,"created_at":"x","host_home":"/h","container_home":"/home/p",
                "mount_point":"/tmp/caw_auth","agents":{{"claude":{{"files":[{file}]}}}}}}"#
        )
    }

    const GOOD: &str = r#"{"src":"claude/credentials.json","container_target":".claude/.credentials.json",
        "host_original":".claude/.credentials.json","type":"credential","strategy":"bind","mode":"0600"}"#;

    fn err(text: &str) -> String {
        Manifest::parse(text.as_bytes(), Path::new("/a/manifest.json"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn round_trips_in_order_without_extra_keys() {
        let m = Manifest::parse(manifest_with_file(GOOD).as_bytes(), Path::new("m")).unwrap();
        let again = Manifest::parse(m.to_json().as_bytes(), Path::new("m")).unwrap();
        assert_eq!(m, again);
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        let keys: Vec<_> = v["agents"]["claude"]["files"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "src",
                "container_target",
                "host_original",
                "type",
                "strategy",
                "mode"
            ]
        );
    }

    #[test]
    fn unknown_extra_keys_are_ignored() {
        let file = GOOD.replace("\"mode\"", "\"future\":true,\"mode\"");
        let text = manifest_with_file(&file).replace("\"agents\"", "\"extra\":[],\"agents\"");
        assert!(Manifest::parse(text.as_bytes(), Path::new("m")).is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                GOOD.replace("claude/credentials.json", "../etc/passwd"),
                "agents.claude.files[0].src",
            ),
            (
                GOOD.replace("claude/credentials.json", "/etc/passwd"),
                "agents.claude.files[0].src",
            ),
            (
                GOOD.replace("claude/credentials.json", "claude/./c.json"),
                "agents.claude.files[0].src",
            ),
            (
                GOOD.replace(
                    ".claude/.credentials.json\",\n        \"host",
                    "a//b\",\n        \"host",
                ),
                "agents.claude.files[0].container_target",
            ),
            (
                GOOD.replace("\"credential\"", "\"secret\""),
                "agents.claude.files[0].type",
            ),
            (
                GOOD.replace("\"bind\"", "\"link\""),
                "agents.claude.files[0].strategy",
            ),
            (
                GOOD.replace("\"0600\"", "\"0777\""),
                "agents.claude.files[0].mode",
            ),
            (
                GOOD.replace("\"mode\":\"0600\"", "\"x\":1"),
                "agents.claude.files[0].mode",
            ),
        ];
        for (file, field) in cases {
            let msg = err(&manifest_with_file(&file));
            assert!(msg.contains(&format!("field `{field}`")), "{field}: {msg}");
            assert!(msg.contains("/a/manifest.json"), "{msg}");
        }
    }

    #[test]
    fn bad_top_level_fields_are_named() {
        let good = manifest_with_file(GOOD);
        assert!(err(&good.replace("\"version\":1", "\"version\":2")).contains("`version`"));
        assert!(err(&good.replace("\"/home/p\"", "\"home\"")).contains("`container_home`"));
        assert!(err(&good.replace("\"/h\"", "5")).contains("`host_home`"));
        assert!(err("[]").ends_with("/a/manifest.json`: it is not a JSON object"));
        assert!(err("{not json").contains("it is not valid JSON"));
    }

    #[test]
    fn mode_is_read_written_and_absent_means_bind() {
        let text = manifest_with_file(GOOD);
        let m = Manifest::parse(text.as_bytes(), Path::new("m")).unwrap();
        assert_eq!(m.mode, AuthMode::Bind, "a 0.1.x manifest has no mode");
        for mode in [AuthMode::Live, AuthMode::Bind] {
            let json = Manifest { mode, ..m.clone() }.to_json();
            let v: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["mode"], mode.as_str());
            assert_eq!(
                Manifest::parse(json.as_bytes(), Path::new("m"))
                    .unwrap()
                    .mode,
                mode
            );
        }
        let live = text.replace("\"version\":1", "\"version\":1,\"mode\":\"live\"");
        assert_eq!(
            Manifest::parse(live.as_bytes(), Path::new("m"))
                .unwrap()
                .mode,
            AuthMode::Live
        );
        for (bad, reason) in [
            ("\"copy\"", "must be `live` or `bind`"),
            ("1", "must be a string"),
        ] {
            let text = text.replace("\"version\":1", &format!("\"version\":1,\"mode\":{bad}"));
            assert!(
                err(&text).contains(&format!("field `mode` {reason}")),
                "{}",
                err(&text)
            );
        }
    }

    #[test]
    fn load_refuses_a_fifo_a_link_and_a_huge_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let msg = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.ends_with("manifest.json`: it is a FIFO, not a regular file"),
            "{msg}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, vec![b' '; MANIFEST_MAX_BYTES as usize + 1]).unwrap();
        let msg = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
        std::fs::remove_file(&path).unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, manifest_with_file(GOOD)).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let msg = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("it is a symlink"), "{msg}");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(Error::NoManifest { .. })
        ));
    }

    #[test]
    fn relative_path_rules() {
        assert!(check_relative("a/b.json").is_ok());
        assert!(check_relative(".claude.json").is_ok());
        for bad in ["", "/a", "a/../b", "..", "./a", "a/", "a//b", "a/."] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
        assert!(check_absolute("/home/x").is_ok());
        assert!(check_absolute("/").is_err());
        assert!(check_absolute("home").is_err());
    }
}
