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

use crate::credential::Identity;

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
    /// Files (relative to the host home) that must exist for the agent to be set up.
    pub required: &'static [&'static str],
    /// Config files copied along with the credential, when present.
    pub configs: &'static [ConfigFile],
    /// Read a parsed credential (a JSON object).
    pub read_credential: fn(&Value) -> CredentialFacts,
    /// Clean a config; `None` copies it unchanged (a `.json` one must parse).
    pub clean_config: Option<CleanFn>,
    /// What the shell fallback guard can do with the credential.
    pub shell: ShellRules,
}

impl Agent {
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

/// The freshness of raw credential bytes for the agent called `agent`
/// (expiry as stated, without the plausibility rule of [`crate::credential`]).
///
/// `None` when the bytes are not a JSON object or the agent is unknown.
pub fn freshness_of(agent: &str, bytes: &[u8]) -> Option<crate::credential::Freshness> {
    let agent = by_name(agent)?;
    let value: Value = serde_json::from_slice(bytes).ok()?;
    if !value.is_object() {
        return None;
    }
    let facts = (agent.read_credential)(&value);
    Some(crate::credential::Freshness {
        expires_at: facts.expires_at,
        tiebreak: facts.tiebreak,
    })
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
            assert!(agent.required.contains(&agent.credential));
            for cfg in agent.configs {
                for c in cfg.candidates {
                    assert!(srcs.insert(c.src), "{}", c.src);
                    assert!(c.src.starts_with(&format!("{}/", agent.name)));
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
