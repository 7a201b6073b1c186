//! The agents caw knows: where each keeps its login, which configs travel
//! with it, how those are cleaned, and how to read the login's expiry.
//!
//! Each agent is one file implementing [`Agent`]; [`REGISTRY`] lists them.
//! Adding an agent means adding a file and a line there.

mod claude;
mod codex;
mod gemini;
mod opencode;
mod qwen;

use crate::expiry::Freshness;

/// Everything the cleaning step may need to know about the container.
#[derive(Debug, Clone, Copy)]
pub struct CleanContext<'a> {
    /// The agent user's home in the container (`C`).
    pub container_home: &'a str,
}

/// A config file that travels with an agent (strategy `copy`).
#[derive(Debug, Clone, Copy)]
pub struct ConfigFile {
    /// Host paths relative to `H`, in order of preference; the first present one is used.
    pub candidates: &'static [ConfigCandidate],
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

/// A coding agent whose login caw can carry into a container.
pub trait Agent: Sync {
    /// The name used on the command line and in the manifest.
    fn name(&self) -> &'static str;

    /// The credential file, relative to the host home (also its target in the container).
    fn credential_host(&self) -> &'static str;

    /// Where the credential snapshot lives in the auth dir.
    fn credential_src(&self) -> &'static str;

    /// Files (relative to the host home) that must exist for the agent to be set up.
    fn required(&self) -> &'static [&'static str] {
        &[]
    }

    /// Config files copied along with the credential, when present.
    fn configs(&self) -> &'static [ConfigFile] {
        &[]
    }

    /// Turn a host config into what the container gets.
    ///
    /// `Err` carries a parse message (line and column, no file text). The
    /// default checks that `.json` files parse and leaves every file unchanged.
    fn clean_config(
        &self,
        candidate: &ConfigCandidate,
        bytes: &[u8],
        _ctx: &CleanContext<'_>,
    ) -> Result<Vec<u8>, String> {
        if candidate.host.ends_with(".json") {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| e.to_string())?;
        }
        Ok(bytes.to_vec())
    }

    /// How fresh a parsed credential is.
    fn freshness(&self, credential: &serde_json::Value) -> Freshness;
}

impl std::fmt::Debug for dyn Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({})", self.name())
    }
}

/// Every known agent, in the order `all` sets them up.
pub static REGISTRY: &[&dyn Agent] = &[
    &claude::Claude,
    &codex::Codex,
    &opencode::Opencode,
    &gemini::Gemini,
    &qwen::Qwen,
];

/// The agent called `name`, if caw knows it.
pub fn by_name(name: &str) -> Option<&'static dyn Agent> {
    REGISTRY.iter().copied().find(|a| a.name() == name)
}

/// Names of every known agent.
pub fn known_names() -> Vec<String> {
    REGISTRY.iter().map(|a| a.name().to_string()).collect()
}

/// Resolve names as given by a user: empty or containing `all` means every
/// agent; names may be comma-separated; duplicates are dropped; order follows
/// the registry. Every name is checked, `all` or not: `all,bogus` names `bogus`.
pub fn select(names: &[String]) -> crate::Result<Vec<&'static dyn Agent>> {
    let mut wanted = Vec::new();
    let mut all = false;
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        if name == "all" {
            all = true;
            continue;
        }
        match by_name(name) {
            Some(agent) => wanted.push(agent.name()),
            None => {
                return Err(crate::Error::UnknownAgent {
                    name: name.to_string(),
                    known: known_names(),
                })
            }
        }
    }
    if all || wanted.is_empty() {
        return Ok(REGISTRY.to_vec());
    }
    Ok(REGISTRY
        .iter()
        .copied()
        .filter(|a| wanted.contains(&a.name()))
        .collect())
}

/// The freshness of raw credential bytes for the agent called `agent`.
///
/// `None` when the bytes are not a JSON object; an unknown agent yields the
/// default (unknown) freshness.
pub fn freshness_of(agent: &str, bytes: &[u8]) -> Option<Freshness> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !value.is_object() {
        return None;
    }
    Some(
        by_name(agent)
            .map(|a| a.freshness(&value))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&dyn Agent]) -> Vec<&'static str> {
        v.iter().map(|a| a.name()).collect()
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
    fn select_checks_every_name_even_with_all() {
        for names in [
            vec!["all,bogus".to_string()],
            vec!["all".into(), "bogus".into()],
            vec!["bogus".into(), "all".into()],
        ] {
            let msg = select(&names).unwrap_err().to_string();
            assert!(msg.starts_with("Unknown agent `bogus`"), "{names:?}: {msg}");
        }
        assert_eq!(names(&select(&["all,qwen".into()]).unwrap()).len(), 5);
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
    fn registry_paths_are_unique_and_relative() {
        let mut srcs = std::collections::HashSet::new();
        for agent in REGISTRY {
            assert!(srcs.insert(agent.credential_src()));
            assert!(!agent.credential_host().starts_with('/'));
            for cfg in agent.configs() {
                for c in cfg.candidates {
                    assert!(srcs.insert(c.src), "{}", c.src);
                    assert!(c.src.starts_with(agent.name()));
                }
            }
        }
    }
}
