//! Host paths named by a manifest, taken only from the agent registry.
//!
//! `manifest.json` is a file on disk: whatever it says, the host side builds
//! host paths only from the registry's credential (and config) file names
//! under the recorded host home. A manifest entry that names anything else
//! is refused with an error naming the entry.

use std::path::{Path, PathBuf};

use crate::agents::{self, Agent};
use crate::manifest::{FileType, Manifest, ManifestFile, Strategy, MANIFEST_FILE};
use crate::{Error, Result};

/// A credential the manifest lists, with the registry's paths.
#[derive(Debug, Clone)]
pub struct TrustedCredential {
    /// The agent.
    pub agent: &'static Agent,
    /// The host credential file: the recorded host home joined with the
    /// registry's credential path.
    pub host: PathBuf,
    /// The registry's `src` (`<agent>/<file>`): below the auth dir, the
    /// mount point and the live directory.
    pub src: &'static str,
}

/// Every credential (`type: credential` or `strategy: bind`) in `manifest`,
/// in manifest order, with its paths from the registry.
///
/// Refuses ([`Error::UntrustedManifestEntry`], naming the entry) a credential of an
/// unknown agent, one whose `host_original` or `src` differs from the
/// registry's, a credential that is not `bind` (or a `bind` file that is not
/// a credential), and an agent listing its credential twice.
pub fn credentials(manifest: &Manifest, auth_dir: &Path) -> Result<Vec<TrustedCredential>> {
    let bad = |field: String, reason: String| Error::UntrustedManifestEntry {
        path: auth_dir.join(MANIFEST_FILE),
        field,
        reason,
    };
    let mut out: Vec<TrustedCredential> = Vec::new();
    for (name, entry) in &manifest.agents {
        for (i, file) in entry.files.iter().enumerate() {
            if file.file_type != FileType::Credential && file.strategy != Strategy::Bind {
                continue;
            }
            let at = format!("agents.{name}.files[{i}]");
            let agent = agents::by_name(name).ok_or_else(|| {
                bad(
                    at.clone(),
                    format!("is a credential of `{name}`, which is not a known agent"),
                )
            })?;
            if let Some((key, reason)) = mismatch(agent, file) {
                return Err(bad(format!("{at}.{key}"), reason));
            }
            if out.iter().any(|c| c.agent.name == agent.name) {
                return Err(bad(
                    at,
                    format!("lists the {name} credential a second time"),
                ));
            }
            out.push(TrustedCredential {
                agent,
                host: manifest.host_path(agent, agent.credential),
                src: agent.credential_src,
            });
        }
    }
    Ok(out)
}

/// The first key of a credential entry that differs from the registry, and why.
fn mismatch(agent: &Agent, file: &ManifestFile) -> Option<(&'static str, String)> {
    let name = agent.name;
    if file.file_type != FileType::Credential {
        return Some(("type", "must be `credential` for a `bind` file".into()));
    }
    if file.strategy != Strategy::Bind {
        return Some(("strategy", "must be `bind` for a credential".into()));
    }
    for (key, given, expected) in [
        ("host_original", &file.host_original, agent.credential),
        ("src", &file.src, agent.credential_src),
    ] {
        if given != expected {
            return Some((
                key,
                format!("must be `{expected}` (the {name} credential), not `{given}`"),
            ));
        }
    }
    None
}

/// Host files of the agents `manifest` lists that caw's older design may
/// have replaced by symlinks: each known agent's credential and config
/// paths from the registry, under the recorded host home.
pub fn host_files(manifest: &Manifest) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (name, _) in &manifest.agents {
        let Some(agent) = agents::by_name(name) else {
            continue;
        };
        out.push(manifest.host_path(agent, agent.credential));
        for config in agent.configs {
            for candidate in config.candidates {
                out.push(manifest.host_path(agent, candidate.host));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(agent: &str, file: &str) -> Manifest {
        let text = format!(
            r#"{{"version":1,"host_home":"/h","agents":{{"{agent}":{{"files":[{file}]}}}}}}"#
        );
        Manifest::parse(text.as_bytes(), Path::new("/a/manifest.json")).unwrap()
    }

    fn entry(src: &str, host: &str, kind: &str, strategy: &str) -> String {
        format!(
            r#"{{"src":"{src}","container_target":".claude/.credentials.json","host_original":"{host}","type":"{kind}","strategy":"{strategy}","mode":"0600"}}"#
        )
    }

    fn refusal(agent: &str, file: &str) -> String {
        credentials(&manifest(agent, file), Path::new("/a"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn registry_paths_pass() {
        let file = entry(
            "claude/credentials.json",
            ".claude/.credentials.json",
            "credential",
            "bind",
        );
        let creds = credentials(&manifest("claude", &file), Path::new("/a")).unwrap();
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].host, Path::new("/h/.claude/.credentials.json"));
        assert_eq!(creds[0].src, "claude/credentials.json");
    }

    #[test]
    fn anything_else_is_refused_naming_the_entry() {
        let cases = [
            (
                "claude",
                entry("claude/credentials.json", ".ssh/id_ed25519", "credential", "bind"),
                "field `agents.claude.files[0].host_original` must be `.claude/.credentials.json`",
            ),
            (
                "claude",
                entry("codex/auth.json", ".claude/.credentials.json", "credential", "bind"),
                "field `agents.claude.files[0].src` must be `claude/credentials.json`",
            ),
            (
                "evil",
                entry("evil/x.json", ".ssh/id_ed25519", "config", "bind"),
                "field `agents.evil.files[0]` is a credential of `evil`, which is not a known agent",
            ),
            (
                "claude",
                entry("claude/config.json", ".ssh/id_ed25519", "config", "bind"),
                "field `agents.claude.files[0].type` must be `credential`",
            ),
            (
                "claude",
                entry("claude/credentials.json", ".claude/.credentials.json", "credential", "copy"),
                "field `agents.claude.files[0].strategy` must be `bind`",
            ),
        ];
        for (agent, file, expected) in cases {
            let msg = refusal(agent, &file);
            assert!(msg.contains(expected), "{msg}");
            assert!(msg.contains("/a/manifest.json"), "{msg}");
        }
        let good = entry(
            "claude/credentials.json",
            ".claude/.credentials.json",
            "credential",
            "bind",
        );
        let msg = refusal("claude", &format!("{good},{good}"));
        assert!(
            msg.contains("`agents.claude.files[1]` lists the claude credential a second time"),
            "{msg}"
        );
    }

    #[test]
    fn configs_of_unknown_agents_are_left_alone() {
        let file = entry(
            "future/settings.json",
            ".future/settings.json",
            "config",
            "copy",
        );
        assert!(credentials(&manifest("future", &file), Path::new("/a"))
            .unwrap()
            .is_empty());
        assert!(host_files(&manifest("future", &file)).is_empty());
    }
}
