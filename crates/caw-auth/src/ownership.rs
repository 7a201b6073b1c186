//! Who owns what across the mount, for each engine and mode: the one place
//! these rules are decided (`docs/docker.md` has them as a table).
//!
//! caw's guarantees rest on two facts in the container: container root (the
//! guard) can read the read-only auth dir and write `live/` so that what it
//! writes stays the host user's, and the agent user cannot write either.
//! Who container root *is* on the host depends on the engine:
//!
//! | engine, mode | container root is, on the host | live files written by the guard are owned by |
//! | --- | --- | --- |
//! | Docker or Podman, rootful | root | `live/`'s owner (the guard chowns to it) |
//! | Podman or Docker, rootless (default) | the host user | the host user (container root *is* the user) |
//! | Podman rootless, `--userns=keep-id` | a subordinate uid that holds root's capabilities over the user's (mapped) uid | `live/`'s owner (the guard chowns to it) |
//! | Docker with `userns-remap` | a subordinate uid; the host user is not mapped | refused: the guard could not read the auth dir (0700) or keep the owner |
//! | Podman `--userns=auto`, `nomap`, `--uidmap`/`--gidmap`/`--subuidname` | a uid caw cannot know | refused |
//!
//! Whoever writes in `live/` (guard or host sync) gives what it writes
//! `live/`'s owner ([`live_owner`]).
//!
//! The host side is learned from the engine (`docker info`'s security
//! options, `podman info`'s `rootless`); the container side from
//! `/proc/self/uid_map` ([`UidMap`]).

use crate::run::RunLine;
use crate::{Engine, Error, Result};

/// How the engine's daemon (or podman itself) runs containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostMode {
    /// Containers' root is the host's root.
    Rootful,
    /// The engine runs as an unprivileged user; container root is that user.
    Rootless,
    /// Docker's daemon remaps every container's root to a subordinate uid.
    UsernsRemap,
}

/// The user namespace a `run` asks for, from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Userns {
    /// The engine's default.
    Default,
    /// `--userns=host`: no remapping (turns Docker's `userns-remap` off).
    Host,
    /// Podman's `--userns=keep-id[:…]`: the host user keeps its uid.
    KeepId,
    /// Any mapping caw cannot account for (the option as given).
    Other(String),
}

impl Userns {
    /// The namespace `line`'s engine options ask for.
    pub fn of(line: &RunLine) -> Userns {
        for explicit in ["uidmap", "gidmap", "subuidname", "subgidname"] {
            if line.engine_option(explicit).is_some() {
                return Userns::Other(format!("--{explicit}"));
            }
        }
        match line.engine_option("userns").as_deref() {
            None | Some("") => Userns::Default,
            Some("host") => Userns::Host,
            Some(v) if v == "keep-id" || v.starts_with("keep-id:") => Userns::KeepId,
            Some(v) => Userns::Other(format!("--userns={v}")),
        }
    }
}

/// Who container root is on the host, for a combination caw supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rules {
    /// Container root is host root: the guard writes `live/` files and
    /// chowns them to `live/`'s owner.
    RootIsRoot,
    /// Container root is the host user: whatever the guard writes is the
    /// user's already.
    RootIsUser,
    /// Podman keep-id: container root is a subordinate uid with root's
    /// capabilities over the user's uid (mapped to itself), so the guard
    /// can read the auth dir and chowns what it writes to `live/`'s owner.
    KeepId,
}

/// The rules for `engine` in `host` mode running a container in `userns`,
/// or the refusal of a combination that cannot keep caw's guarantees.
pub fn rules(engine: Engine, host: HostMode, userns: &Userns) -> Result<Rules> {
    let refuse = |mode: String, what: &str| Error::UnsupportedEngineMode {
        engine: engine.to_string(),
        mode,
        what_to_do: what.to_string(),
    };
    match (host, userns) {
        (_, Userns::Other(option)) => Err(refuse(
            format!("a user namespace set by `{option}`"),
            "leave the user namespace to the engine's default, or use `--userns=keep-id` \
             (rootless Podman)",
        )),
        (HostMode::UsernsRemap, Userns::Host) => Ok(Rules::RootIsRoot),
        (HostMode::UsernsRemap, _) => Err(refuse(
            "userns-remap (container root is a subordinate uid that cannot read the 0700 \
             auth dir or keep the host user's ownership of live/)"
                .into(),
            "pass `--userns=host` to run this container without remapping, or use rootless \
             Docker or Podman",
        )),
        (HostMode::Rootful, Userns::KeepId) => Err(refuse(
            "rootful with --userns=keep-id".into(),
            "use keep-id with rootless Podman, or leave `--userns` out",
        )),
        (HostMode::Rootful, _) => Ok(Rules::RootIsRoot),
        (HostMode::Rootless, Userns::KeepId) => Ok(Rules::KeepId),
        (HostMode::Rootless, _) => Ok(Rules::RootIsUser),
    }
}

/// Ask `engine` how it runs containers (`docker info`, `podman info`).
pub fn probe(engine: Engine) -> Result<HostMode> {
    let format = match engine {
        Engine::Docker => "{{json .SecurityOptions}}",
        Engine::Podman => "{{.Host.Security.Rootless}}",
    };
    let out = engine
        .command()
        .args(["info", "--format", format])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::EngineUnavailable {
            engine: engine.to_string(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::EngineUnavailable {
            engine: engine.to_string(),
            reason: format!(
                "`{engine} info` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(host_mode(engine, &String::from_utf8_lossy(&out.stdout)))
}

/// [`probe`]'s reading of the engine's answer.
fn host_mode(engine: Engine, info: &str) -> HostMode {
    match engine {
        Engine::Podman if info.trim() == "true" => HostMode::Rootless,
        Engine::Podman => HostMode::Rootful,
        Engine::Docker => {
            let options: Vec<String> = serde_json::from_str(info.trim()).unwrap_or_default();
            let has = |name: &str| {
                options
                    .iter()
                    .any(|o| o.split(',').any(|kv| kv == format!("name={name}")))
            };
            if has("userns") {
                HostMode::UsernsRemap
            } else if has("rootless") {
                HostMode::Rootless
            } else {
                HostMode::Rootful
            }
        }
    }
}

/// The owner every file and directory written under `live` must get: the
/// owner of `live/` itself (the host user), whoever writes (the guard as
/// container root, the host sync as root or as the user). `None` when the
/// writer is not root: it cannot give files away, and writes as itself,
/// which is then `live/`'s owner.
pub fn live_owner(live: &std::path::Path) -> std::io::Result<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt as _;
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let meta = fs_err::metadata(live)?;
    Ok(Some((meta.uid(), meta.gid())))
}

/// `/proc/self/uid_map` (or `gid_map`): ranges `inside outside count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidMap(pub Vec<(u32, u32, u32)>);

impl UidMap {
    /// The map of this process's user namespace.
    pub fn current() -> std::io::Result<UidMap> {
        Ok(UidMap::parse(&fs_err::read_to_string(
            "/proc/self/uid_map",
        )?))
    }

    /// Parse the kernel's text; malformed lines are skipped.
    pub fn parse(text: &str) -> UidMap {
        UidMap(
            text.lines()
                .filter_map(|l| {
                    let mut n = l.split_whitespace().map(|w| w.parse::<u32>().ok());
                    Some((n.next()??, n.next()??, n.next()??))
                })
                .collect(),
        )
    }

    /// The outside (parent namespace) uid of `inside`, if it is mapped.
    pub fn outside(&self, inside: u32) -> Option<u32> {
        self.0
            .iter()
            .find_map(|&(i, o, n)| (inside >= i && inside - i < n).then(|| o + (inside - i)))
    }

    /// Whether this is the initial namespace's identity map.
    pub fn is_identity(&self) -> bool {
        self.0 == [(0, 0, u32::MAX)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn line(args: &[&str]) -> RunLine {
        let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
        args.push("img".into());
        crate::run::parse(&args).unwrap()
    }

    #[test]
    fn the_user_namespace_comes_from_the_run_options() {
        assert_eq!(Userns::of(&line(&[])), Userns::Default);
        assert_eq!(Userns::of(&line(&["--userns=keep-id"])), Userns::KeepId);
        assert_eq!(
            Userns::of(&line(&["--userns", "keep-id:uid=1000"])),
            Userns::KeepId
        );
        assert_eq!(Userns::of(&line(&["--userns", "host"])), Userns::Host);
        assert_eq!(
            Userns::of(&line(&["--userns=auto"])),
            Userns::Other("--userns=auto".into())
        );
        assert_eq!(
            Userns::of(&line(&["--uidmap", "0:1:1"])),
            Userns::Other("--uidmap".into())
        );
    }

    #[test]
    fn each_engine_and_mode_has_its_rules_or_is_refused() {
        use HostMode::*;
        let ok = [
            (Engine::Docker, Rootful, Userns::Default, Rules::RootIsRoot),
            (Engine::Podman, Rootful, Userns::Default, Rules::RootIsRoot),
            (Engine::Podman, Rootless, Userns::Default, Rules::RootIsUser),
            (Engine::Docker, Rootless, Userns::Default, Rules::RootIsUser),
            (Engine::Podman, Rootless, Userns::KeepId, Rules::KeepId),
            (Engine::Docker, UsernsRemap, Userns::Host, Rules::RootIsRoot),
        ];
        for (engine, host, userns, want) in ok {
            assert_eq!(
                rules(engine, host, &userns).unwrap(),
                want,
                "{engine} {host:?}"
            );
        }
        let refused = [
            (Engine::Docker, UsernsRemap, Userns::Default, "userns-remap"),
            (
                Engine::Podman,
                Rootless,
                Userns::Other("--userns=auto".into()),
                "--userns=auto",
            ),
            (
                Engine::Podman,
                Rootless,
                Userns::Other("--uidmap".into()),
                "--uidmap",
            ),
            (Engine::Podman, Rootful, Userns::KeepId, "keep-id"),
        ];
        for (engine, host, userns, mode) in refused {
            let err = rules(engine, host, &userns).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(engine.program()) && text.contains(mode),
                "{text}"
            );
            assert!(err.hint().is_some(), "{text}");
        }
    }

    #[test]
    fn the_host_mode_is_read_from_the_engines_info() {
        assert_eq!(host_mode(Engine::Podman, "true\n"), HostMode::Rootless);
        assert_eq!(host_mode(Engine::Podman, "false\n"), HostMode::Rootful);
        assert_eq!(
            host_mode(
                Engine::Docker,
                r#"["name=seccomp,profile=builtin","name=cgroupns"]"#
            ),
            HostMode::Rootful
        );
        assert_eq!(
            host_mode(
                Engine::Docker,
                r#"["name=seccomp,profile=builtin","name=rootless"]"#
            ),
            HostMode::Rootless
        );
        assert_eq!(
            host_mode(Engine::Docker, r#"["name=apparmor","name=userns"]"#),
            HostMode::UsernsRemap
        );
    }

    #[test]
    fn uid_maps_translate_inside_to_outside() {
        let root = UidMap::parse("         0          0 4294967295\n");
        assert!(root.is_identity());
        let rootless = UidMap::parse("0 4242 1\n1 100000 65536\n");
        assert_eq!(rootless.outside(0), Some(4242));
        assert_eq!(rootless.outside(1000), Some(100999));
        assert_eq!(rootless.outside(70000), None);
        assert!(!rootless.is_identity());
    }
}
