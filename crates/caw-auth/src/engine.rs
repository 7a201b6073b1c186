//! The container engine `caw run` drives: `docker` or `podman`.
//!
//! Chosen once, by the front end ([`Engine::choose`]): `--engine`, else
//! `$CAW_ENGINE`, else the first of `docker` and `podman` that answers
//! `<engine> version`. Every request caw makes of an engine (`image
//! inspect`, `pull`, `run`, `info`) goes through [`Engine::program`].

use std::process::{Command, Stdio};

use crate::{Error, Result};

/// `CAW_ENGINE`: the engine when `--engine` is not given.
pub const ENGINE_ENV: &str = "CAW_ENGINE";

/// A container engine with docker's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// Docker (rootful, rootless or with `userns-remap`).
    Docker,
    /// Podman (rootful or rootless).
    Podman,
}

impl Engine {
    /// Every engine, in the order [`Engine::choose`] tries them.
    pub const ALL: [Engine; 2] = [Engine::Docker, Engine::Podman];

    /// The program and the name (`docker`, `podman`).
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    /// The engine called `name`; anything else is [`Error::UnknownEngine`].
    pub fn from_name(name: &str) -> Result<Engine> {
        Engine::ALL
            .into_iter()
            .find(|e| e.program() == name)
            .ok_or_else(|| Error::UnknownEngine {
                name: name.to_string(),
            })
    }

    /// `given` (`--engine`), else `$CAW_ENGINE`, else the first engine whose
    /// `version` answers; [`Error::NoEngine`] when none does.
    pub fn choose(given: Option<&str>) -> Result<Engine> {
        if let Some(name) = given {
            return Engine::from_name(name);
        }
        if let Some(name) = std::env::var(ENGINE_ENV).ok().filter(|v| !v.is_empty()) {
            return Engine::from_name(&name);
        }
        Engine::ALL
            .into_iter()
            .find(|e| e.answers())
            .ok_or(Error::NoEngine)
    }

    /// Whether `<engine> version` runs and succeeds (docker's fails when
    /// its daemon cannot be reached).
    pub fn answers(self) -> bool {
        Command::new(self.program())
            .arg("version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A command for this engine's program.
    pub fn command(self) -> Command {
        Command::new(self.program())
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_named_by_their_program() {
        assert_eq!(Engine::from_name("podman").unwrap(), Engine::Podman);
        assert_eq!(Engine::from_name("docker").unwrap(), Engine::Docker);
        let err = Engine::from_name("nerdctl").unwrap_err().to_string();
        assert!(
            err.contains("`nerdctl`") && err.contains("docker, podman"),
            "{err}"
        );
    }

    #[test]
    fn a_given_engine_is_taken_without_asking_it() {
        // `choose` must not run anything for an explicit choice.
        assert_eq!(Engine::choose(Some("podman")).unwrap(), Engine::Podman);
    }
}
