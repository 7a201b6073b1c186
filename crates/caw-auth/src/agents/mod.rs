//! The agents caw knows: where each keeps its login, which configs travel
//! with it, how those are cleaned, and what its credential file says.
//!
//! An agent is one [`Agent`] value: data, plus the two functions that differ
//! between agents (reading the credential, cleaning a config). Each lives in
//! its own file; [`REGISTRY`] lists them. Adding an agent means adding a file
//! and a line there: the CLI's help, the container script and every table
//! are built from the registry.

mod claude;
mod codex;
mod gemini;
mod jwt;
mod oauth_creds;
mod opencode;
mod qwen;

use jiff::Timestamp;
use serde_json::Value;

use crate::identity::Identity;

/// Everything the cleaning step may need to know about the container.
#[derive(Debug, Clone, Copy)]
pub struct CleanContext<'a> {
    /// The agent user's home in the container (`C`).
    pub container_home: &'a str,
    /// More container directories to mark trusted (`caw auth setup --trust`).
    pub trusted: &'a [String],
}

impl CleanContext<'_> {
    /// The container directories the agents trust: the home, then each
    /// `--trust` directory, without repeats.
    pub fn trusted_dirs(&self) -> Vec<&str> {
        let mut dirs = vec![self.container_home];
        for dir in self.trusted {
            if !dirs.contains(&dir.as_str()) {
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// A config file that travels with an agent (strategy `copy`).
#[derive(Debug, Clone, Copy)]
pub struct ConfigFile {
    /// Spellings in order of preference; the first present on the host is used.
    pub candidates: &'static [ConfigCandidate],
    /// Whether the agent cannot be set up without one of them.
    pub required: bool,
    /// Whether it holds account data (email, organisation, user id), so that
    /// the container copy is private (`0600`) instead of `0644`.
    pub private: bool,
}

/// One spelling of a config file.
#[derive(Debug, Clone, Copy)]
pub struct ConfigCandidate {
    /// Path relative to the host home.
    pub host: &'static str,
    /// Path relative to the auth dir.
    pub src: &'static str,
    /// Path relative to the container home.
    pub target: &'static str,
}

/// Turns a host config into what the container gets; `Err` carries a parse
/// message with a line and column, never the file's text.
pub type CleanFn = fn(&ConfigCandidate, &[u8], &CleanContext<'_>) -> Result<Vec<u8>, String>;

/// What an agent's credential file says, as far as syncing it needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialFacts {
    /// When the access token expires, if the file says.
    pub expires_at: Option<Timestamp>,
    /// A second clock that orders credentials with the same expiry.
    pub tiebreak: Option<Timestamp>,
    /// Whether the file holds a login at all: a token (or key) that is not
    /// empty, with whatever else the agent needs to use it. A file left by
    /// a logout or a refused refresh has none.
    pub has_token: bool,
    /// Whose login it is (account, kind), where the file tells.
    pub identity: Identity,
}

/// How the POSIX-shell fallback guard may sync an agent's credential.
///
/// The shell cannot decode JWTs or compare entries, so it syncs only agents
/// whose rules it can check with `sed`; for the others it copies the login
/// once and says that it does not sync it.
#[derive(Debug, Clone, Copy)]
pub enum ShellRules {
    /// Synced: the file's top level, or the object under `object`, holds
    /// `expiry` (ms since the epoch) and every key in `tokens` as a
    /// non-empty string.
    Sync {
        /// The key of the object holding the fields, or `""` for the top level.
        object: &'static str,
        /// The expiry key (milliseconds since the epoch).
        expiry: &'static str,
        /// Keys that must be non-empty strings for the login to be usable.
        tokens: &'static [&'static str],
    },
    /// Not synced by the shell guard, and why.
    NoSync(&'static str),
}

/// A coding agent whose login caw can carry into a container.
#[derive(Clone, Copy)]
pub struct Agent {
    /// The name used on the command line and in the manifest.
    pub name: &'static str,
    /// The credential file, relative to the host home (also its target in the container).
    pub credential: &'static str,
    /// Where the credential lives in the auth dir, and in `live/`.
    pub credential_src: &'static str,
    /// An environment variable that moves the agent's files on the host.
    pub relocation: Option<Relocation>,
    /// Config files copied along with the credential, when present.
    pub configs: &'static [ConfigFile],
    /// Read a parsed credential (a JSON object).
    pub read_credential: fn(&Value) -> CredentialFacts,
    /// Clean a config; `None` copies it unchanged (a `.json` one must parse).
    pub clean_config: Option<CleanFn>,
    /// What the shell fallback guard can do with the credential.
    pub shell: ShellRules,
    /// How far ahead of now an expiry can plausibly be: the agent's longest
    /// access-token lifetime plus a margin. A credential stating a later one
    /// (or none, against one that states it) is not newer but implausible:
    /// a planted token, never copied over a login.
    pub max_lifetime: jiff::SignedDuration,
    /// Every refresh token in a parsed credential, for
    /// `--hold-refresh-token` to replace (see [`crate::credential::hold`]).
    pub refresh_tokens: fn(&mut Value) -> Vec<&mut Value>,
}

/// An environment variable that moves an agent's files out of the home on
/// the host (Claude Code's `CLAUDE_CONFIG_DIR`). The container keeps the
/// default paths.
#[derive(Debug, Clone, Copy)]
pub struct Relocation {
    /// The variable, naming a directory.
    pub env: &'static str,
    /// `(path relative to the home, name in that directory)` for each file that moves.
    pub files: &'static [(&'static str, &'static str)],
}

impl Agent {
    /// The directory `self.relocation`'s variable names now, if it is set.
    pub fn config_dir_from_env(&self) -> Option<std::path::PathBuf> {
        let relocation = self.relocation?;
        std::env::var_os(relocation.env)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    }

    /// Where a file the registry names `rel` (relative to the home) is on
    /// the host: below `config_dir` when it is one of the files that moves
    /// there, else below `home`.
    pub fn host_path(
        &self,
        home: &std::path::Path,
        config_dir: Option<&std::path::Path>,
        rel: &str,
    ) -> std::path::PathBuf {
        let moved = config_dir.zip(self.relocation).and_then(|(dir, r)| {
            r.files
                .iter()
                .find(|(from, _)| *from == rel)
                .map(|(_, name)| dir.join(name))
        });
        moved.unwrap_or_else(|| home.join(rel))
    }

    /// What the host lacks for this agent to be set up: the credential, and
    /// one of the spellings of each required config; each requirement as
    /// its alternatives' host paths.
    pub fn missing(
        &self,
        home: &std::path::Path,
        config_dir: Option<&std::path::Path>,
    ) -> Vec<Vec<std::path::PathBuf>> {
        let locate = |rel: &str| self.host_path(home, config_dir, rel);
        let mut missing = Vec::new();
        if !locate(self.credential).is_file() {
            missing.push(vec![locate(self.credential)]);
        }
        for config in self.configs.iter().filter(|c| c.required) {
            let paths: Vec<_> = config.candidates.iter().map(|c| locate(c.host)).collect();
            if !paths.iter().any(|p| p.is_file()) {
                missing.push(paths);
            }
        }
        missing
    }

    /// Turn a host config into what the container gets.
    pub fn clean(
        &self,
        candidate: &ConfigCandidate,
        bytes: &[u8],
        ctx: &CleanContext<'_>,
    ) -> Result<Vec<u8>, String> {
        match self.clean_config {
            Some(clean) => clean(candidate, bytes, ctx),
            None => {
                if candidate.host.ends_with(".json") {
                    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
                        .map_err(|e| e.to_string())?;
                }
                Ok(bytes.to_vec())
            }
        }
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({})", self.name)
    }
}

impl PartialEq for Agent {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Agent {}

/// Every known agent, in the order `all` sets them up.
pub static REGISTRY: &[&Agent] = &[
    &claude::CLAUDE,
    &codex::CODEX,
    &opencode::OPENCODE,
    &gemini::GEMINI,
    &qwen::QWEN,
];

/// The agent called `name`, if caw knows it.
pub fn by_name(name: &str) -> Option<&'static Agent> {
    REGISTRY.iter().copied().find(|a| a.name == name)
}

/// Names of every known agent.
pub fn known_names() -> Vec<String> {
    REGISTRY.iter().map(|a| a.name.to_string()).collect()
}

/// The known names as one human-readable list: `claude, codex, …`.
pub fn known_list() -> String {
    known_names().join(", ")
}

/// Resolve names as given by a user: empty or containing `all` means every
/// agent; names may be comma-separated; duplicates are dropped; order
/// follows the registry. Every name must be known, `all` or not.
pub fn select(names: &[String]) -> crate::Result<Vec<&'static Agent>> {
    let mut all = false;
    let mut wanted = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        match name {
            "" => {}
            "all" => all = true,
            _ => match by_name(name) {
                Some(agent) => wanted.push(agent.name),
                None => {
                    return Err(crate::Error::UnknownAgent {
                        name: name.to_string(),
                        known: known_names(),
                    })
                }
            },
        }
    }
    Ok(REGISTRY
        .iter()
        .copied()
        .filter(|a| all || wanted.is_empty() || wanted.contains(&a.name))
        .collect())
}

/// Milliseconds since the Unix epoch, as Claude, opencode, Gemini and Qwen
/// store expiries; zero, negative and non-numbers are no expiry.
pub(crate) fn millis(value: Option<&Value>) -> Option<Timestamp> {
    let value = value?;
    let ms = value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f as i64))?;
    if ms <= 0 {
        return None;
    }
    Timestamp::from_millisecond(ms).ok()
}

/// The string at the JSON `pointer`, when present and not empty.
pub(crate) fn string_at_mut<'a>(cred: &'a mut Value, pointer: &str) -> Vec<&'a mut Value> {
    cred.pointer_mut(pointer)
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .into_iter()
        .collect()
}

/// A string field that is present and not empty.
pub(crate) fn non_empty<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relocated_file_is_found_in_its_directory() {
        let claude = by_name("claude").unwrap();
        let home = std::path::Path::new("/home/me");
        let dir = std::path::Path::new("/cfg");
        assert_eq!(
            claude.host_path(home, None, ".claude/.credentials.json"),
            home.join(".claude/.credentials.json")
        );
        assert_eq!(
            claude.host_path(home, Some(dir), ".claude/.credentials.json"),
            dir.join(".credentials.json")
        );
        assert_eq!(
            claude.host_path(home, Some(dir), ".claude.json"),
            dir.join(".claude.json")
        );
        let codex = by_name("codex").unwrap();
        assert_eq!(
            codex.host_path(home, Some(dir), ".codex/auth.json"),
            home.join(".codex/auth.json")
        );
    }

    #[test]
    fn claude_needs_its_credential_and_one_of_its_configs() {
        let claude = by_name("claude").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert_eq!(
            claude.missing(home, None),
            [
                vec![home.join(".claude/.credentials.json")],
                vec![home.join(".claude.json"), home.join(".claude/.config.json")]
            ]
        );
        std::fs::create_dir(home.join(".claude")).unwrap();
        std::fs::write(home.join(".claude/.credentials.json"), "{}").unwrap();
        std::fs::write(home.join(".claude/.config.json"), "{}").unwrap();
        assert!(claude.missing(home, None).is_empty());
        // With CLAUDE_CONFIG_DIR, both are looked for there, and named so.
        let cfg = home.join("cfg");
        assert_eq!(
            claude.missing(home, Some(&cfg)),
            [
                vec![cfg.join(".credentials.json")],
                vec![cfg.join(".claude.json"), cfg.join(".config.json")]
            ]
        );
    }

    fn names(v: &[&Agent]) -> Vec<&'static str> {
        v.iter().map(|a| a.name).collect()
    }

    #[test]
    fn select_all_empty_and_lists() {
        assert_eq!(names(&select(&[]).unwrap()).len(), 5);
        assert_eq!(names(&select(&["all".into()]).unwrap()).len(), 5);
        assert_eq!(
            names(&select(&["qwen,claude".into(), "claude".into()]).unwrap()),
            ["claude", "qwen"]
        );
    }

    #[test]
    fn select_unknown_lists_known_names() {
        let err = select(&["claude".into(), "cursor".into()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("Unknown agent `cursor`"), "{msg}");
        assert!(
            msg.contains("claude, codex, opencode, gemini, qwen"),
            "{msg}"
        );
    }

    #[test]
    fn all_does_not_hide_an_unknown_name() {
        for given in ["all,bogus", "bogus,all"] {
            let err = select(&[given.into()]).unwrap_err().to_string();
            assert!(err.starts_with("Unknown agent `bogus`"), "{given}: {err}");
        }
    }

    #[test]
    fn registry_paths_are_unique_relative_and_named_after_the_agent() {
        let mut srcs = std::collections::HashSet::new();
        for agent in REGISTRY {
            assert!(srcs.insert(agent.credential_src));
            assert!(agent
                .credential_src
                .starts_with(&format!("{}/", agent.name)));
            assert!(crate::manifest::check_relative(agent.credential).is_ok());
            for cfg in agent.configs {
                // Spellings of one config are alternatives: they may share a src.
                let own: std::collections::HashSet<_> =
                    cfg.candidates.iter().map(|c| c.src).collect();
                for src in own {
                    assert!(srcs.insert(src), "{src}");
                    assert!(src.starts_with(&format!("{}/", agent.name)));
                }
            }
        }
    }

    #[test]
    fn millis_reject_zero_negative_and_non_numbers() {
        use serde_json::json;
        assert_eq!(millis(Some(&json!(0))), None);
        assert_eq!(millis(Some(&json!(-5))), None);
        assert_eq!(millis(Some(&json!("soon"))), None);
        assert_eq!(millis(None), None);
        assert_eq!(
            millis(Some(&json!(1_700_000_000_000_i64))),
            Some(Timestamp::from_second(1_700_000_000).unwrap())
        );
    }
}
