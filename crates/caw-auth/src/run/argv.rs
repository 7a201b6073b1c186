//! Splitting a `caw run` command line between caw and the engine's `run`.
//!
//! Everything before `IMAGE` is an option. caw takes `--auth-dir A`,
//! `--agents NAMES` (one value, comma-separated, repeatable; `-a` stays
//! docker's `--attach`), `--user U` / `-u U` (the agent user; the engine's
//! own user is always 0), `--entrypoint E` and `--hold-refresh-token`; each
//! also as `--opt=value`, and `--engine docker|podman` and
//! `--selinux-label none|z`. Podman's own `run` options are known too
//! ([`RunLine::check_engine`] refuses them for docker). Every other option goes to the engine unchanged,
//! with its value when it takes one (`-e X`, `--name n`, `-v a:b`, `-p
//! 80:80`, `-it`, `-eX=1`, `--env=X`). An option caw does not know to take a
//! value must be written `--opt=value` (or is a flag). A `--` ends the
//! options; the next argument is `IMAGE`. After `IMAGE`, everything is the
//! command, verbatim.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::{Engine, Error, Result};

/// docker run options that take a value (long names, without `--`).
const VALUE_OPTIONS: &[&str] = &[
    "add-host",
    "annotation",
    "attach",
    "blkio-weight",
    "blkio-weight-device",
    "cap-add",
    "cap-drop",
    "cgroup-parent",
    "cgroupns",
    "cidfile",
    "cpu-count",
    "cpu-percent",
    "cpu-period",
    "cpu-quota",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpu-shares",
    "cpus",
    "cpuset-cpus",
    "cpuset-mems",
    "detach-keys",
    "device",
    "device-cgroup-rule",
    "device-read-bps",
    "device-read-iops",
    "device-write-bps",
    "device-write-iops",
    "dns",
    "dns-opt",
    "dns-option",
    "dns-search",
    "domainname",
    "env",
    "env-file",
    "expose",
    "gpus",
    "group-add",
    "health-cmd",
    "health-interval",
    "health-retries",
    "health-start-interval",
    "health-start-period",
    "health-timeout",
    "hostname",
    "io-maxbandwidth",
    "io-maxiops",
    "ip",
    "ip6",
    "ipc",
    "isolation",
    "kernel-memory",
    "label",
    "label-file",
    "link",
    "link-local-ip",
    "log-driver",
    "log-opt",
    "mac-address",
    "memory",
    "memory-reservation",
    "memory-swap",
    "memory-swappiness",
    "mount",
    "name",
    "net",
    "net-alias",
    "network",
    "network-alias",
    "oom-score-adj",
    "pid",
    "pids-limit",
    "platform",
    "publish",
    "pull",
    "restart",
    "runtime",
    "security-opt",
    "shm-size",
    "stop-signal",
    "stop-timeout",
    "storage-opt",
    "sysctl",
    "tmpfs",
    "ulimit",
    "userns",
    "uts",
    "volume",
    "volume-driver",
    "volumes-from",
    "workdir",
];
/// docker run flags (no value; `--flag=false` is still one argument).
const FLAG_OPTIONS: &[&str] = &[
    "detach",
    "disable-content-trust",
    "help",
    "init",
    "interactive",
    "no-healthcheck",
    "oom-kill-disable",
    "privileged",
    "publish-all",
    "quiet",
    "read-only",
    "rm",
    "sig-proxy",
    "tty",
    "use-api-socket",
];
/// podman run options that take a value and docker's `run` does not have.
const PODMAN_VALUE_OPTIONS: &[&str] = &[
    "arch",
    "authfile",
    "cgroup-conf",
    "cgroups",
    "chrootdirs",
    "conmon-pidfile",
    "creds",
    "decryption-key",
    "env-merge",
    "gidmap",
    "group-entry",
    "hostuser",
    "image-volume",
    "init-path",
    "log-level",
    "os",
    "passwd-entry",
    "personality",
    "pidfile",
    "pod",
    "pod-id-file",
    "preserve-fds",
    "requires",
    "retry",
    "retry-delay",
    "sdnotify",
    "seccomp-policy",
    "secret",
    "subgidname",
    "subuidname",
    "systemd",
    "timeout",
    "uidmap",
    "umask",
    "unsetenv",
    "variant",
];
/// podman run flags docker's `run` does not have.
const PODMAN_FLAG_OPTIONS: &[&str] = &[
    "env-host",
    "http-proxy",
    "no-hosts",
    "passwd",
    "read-only-tmpfs",
    "replace",
    "rmi",
    "rootfs",
    "tls-verify",
    "unsetenv-all",
];
/// Short docker run options that take a value.
const VALUE_SHORT: &str = "acehlmpvw";
/// Short docker run flags.
const FLAG_SHORT: &str = "diPqt";

/// A `caw run` command line, split.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunLine {
    /// `--auth-dir`.
    pub auth_dir: Option<PathBuf>,
    /// `--agents`, each value as given (comma lists are split by setup).
    pub agents: Vec<String>,
    /// `--user` / `-u`.
    pub user: Option<String>,
    /// `--entrypoint` (`Some("")` resets the image's).
    pub entrypoint: Option<String>,
    /// `--hold-refresh-token`: containers get no refresh token.
    pub hold_refresh_token: bool,
    /// `--engine` (`docker`, `podman`).
    pub engine: Option<String>,
    /// `--selinux-label` (`none`, `z`).
    pub selinux_label: Option<String>,
    /// podman-only options given (long names), refused with docker.
    pub podman_only: Vec<String>,
    /// The engine's `run` options, verbatim and in order.
    pub engine_args: Vec<OsString>,
    /// `IMAGE`.
    pub image: OsString,
    /// `CMD…`.
    pub command: Vec<OsString>,
}

impl RunLine {
    /// Refuse an option `engine` does not have but the other engine does
    /// (its value may have been taken for the image otherwise).
    pub fn check_engine(&self, engine: Engine) -> Result<()> {
        match (engine, self.podman_only.first()) {
            (Engine::Docker, Some(option)) => Err(Error::ForeignEngineOption {
                option: option.clone(),
                owner: Engine::Podman.to_string(),
                engine: engine.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The value of the engine option `--name` as given (last wins, as
    /// with the engines), in either `--name V` or `--name=V` form.
    pub fn engine_option(&self, name: &str) -> Option<String> {
        let long = format!("--{name}");
        let mut found = None;
        let mut args = self.engine_args.iter();
        while let Some(arg) = args.next() {
            let Some(text) = arg.to_str() else { continue };
            if text == long {
                found = args.next().map(|v| v.to_string_lossy().into_owned());
            } else if let Some(v) = text.strip_prefix(&long).and_then(|r| r.strip_prefix('=')) {
                found = Some(v.to_string());
            }
        }
        found
    }
}

/// A mistake in the command line (exit 2).
#[derive(Debug, PartialEq, Eq)]
struct Usage(String);

/// Split `args` (see the module docs for the rule); a mistake is
/// [`Error::RunUsage`].
pub fn parse(args: &[OsString]) -> Result<RunLine> {
    split(args).map_err(|Usage(reason)| Error::RunUsage { reason })
}

fn split(args: &[OsString]) -> Result<RunLine, Usage> {
    let mut line = RunLine::default();
    let mut at = Cursor { args, i: 0 };
    while let Some(arg) = args.get(at.i) {
        let bytes = arg.as_encoded_bytes();
        if bytes == b"--" {
            at.i += 1;
            break;
        }
        if bytes.first() != Some(&b'-') || bytes == b"-" {
            break;
        }
        let text = utf8(arg)?;
        match text.strip_prefix("--") {
            Some(long) => take_long(&mut line, &mut at, long)?,
            None => take_short(&mut line, &mut at, &text[1..])?,
        }
        at.i += 1;
    }
    let Some(image) = args.get(at.i) else {
        return Err(Usage("no IMAGE given".into()));
    };
    line.image = image.clone();
    line.command = args[at.i + 1..].to_vec();
    Ok(line)
}

/// Where [`parse`] is in the arguments.
struct Cursor<'a> {
    args: &'a [OsString],
    i: usize,
}

impl Cursor<'_> {
    /// The option being read, as given.
    fn current(&self) -> OsString {
        self.args[self.i].clone()
    }

    /// The value of the current option: `attached`, else the next argument.
    fn value(&mut self, attached: Option<&str>, name: &str) -> Result<OsString, Usage> {
        if let Some(v) = attached {
            return Ok(v.into());
        }
        self.i += 1;
        self.args
            .get(self.i)
            .cloned()
            .ok_or_else(|| Usage(format!("`{name}` needs a value")))
    }
}

fn utf8(a: &OsStr) -> Result<String, Usage> {
    a.to_str()
        .map(str::to_string)
        .ok_or_else(|| Usage(format!("`{}` is not valid UTF-8", a.to_string_lossy())))
}

/// `--name[=value]` (`long` is without the dashes).
fn take_long(line: &mut RunLine, at: &mut Cursor<'_>, long: &str) -> Result<(), Usage> {
    let (name, attached) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (long, None),
    };
    match name {
        "auth-dir" => line.auth_dir = Some(at.value(attached, "--auth-dir")?.into()),
        "agents" => line.agents.push(utf8(&at.value(attached, "--agents")?)?),
        "user" => line.user = Some(utf8(&at.value(attached, "--user")?)?),
        "entrypoint" => line.entrypoint = Some(utf8(&at.value(attached, "--entrypoint")?)?),
        "hold-refresh-token" if attached.is_none() => line.hold_refresh_token = true,
        "engine" => line.engine = Some(utf8(&at.value(attached, "--engine")?)?),
        "selinux-label" => {
            line.selinux_label = Some(utf8(&at.value(attached, "--selinux-label")?)?)
        }
        _ if VALUE_OPTIONS.contains(&name) || PODMAN_VALUE_OPTIONS.contains(&name) => {
            if PODMAN_VALUE_OPTIONS.contains(&name) {
                line.podman_only.push(format!("--{name}"));
            }
            line.engine_args.push(at.current());
            if attached.is_none() {
                line.engine_args.push(at.value(None, &format!("--{name}"))?);
            }
        }
        _ if PODMAN_FLAG_OPTIONS.contains(&name) => {
            line.podman_only.push(format!("--{name}"));
            line.engine_args.push(at.current());
        }
        _ if FLAG_OPTIONS.contains(&name) || attached.is_some() => {
            line.engine_args.push(at.current())
        }
        _ => {
            return Err(Usage(format!(
                "caw run does not know whether docker's `--{name}` takes a value; \
                 write it as `--{name}=VALUE` (or `--{name}=true` for a flag)"
            )))
        }
    }
    Ok(())
}

/// A cluster of short options (`cluster` is without the dash): flags, then
/// at most one that takes a value (the rest of the cluster, or the next
/// argument).
fn take_short(line: &mut RunLine, at: &mut Cursor<'_>, cluster: &str) -> Result<(), Usage> {
    let mut flags = String::new();
    for (pos, c) in cluster.char_indices() {
        let rest = &cluster[pos + c.len_utf8()..];
        let attached = (!rest.is_empty()).then_some(rest);
        if FLAG_SHORT.contains(c) {
            flags.push(c);
            continue;
        }
        if c != 'u' && !VALUE_SHORT.contains(c) {
            return Err(Usage(format!(
                "caw run does not know docker's `-{c}` (in `-{cluster}`); use its long form"
            )));
        }
        if !flags.is_empty() {
            line.engine_args
                .push(format!("-{}", std::mem::take(&mut flags)).into());
        }
        if c == 'u' {
            line.user = Some(utf8(&at.value(attached, "-u")?)?);
        } else if let Some(v) = attached {
            line.engine_args.push(format!("-{c}{v}").into());
        } else {
            line.engine_args.push(format!("-{c}").into());
            line.engine_args.push(at.value(None, &format!("-{c}"))?);
        }
        return Ok(());
    }
    if !flags.is_empty() {
        line.engine_args.push(format!("-{flags}").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn usage(args: &[&str]) -> String {
        match parse(&os(args)).unwrap_err() {
            Error::RunUsage { reason } => reason,
            e => panic!("not a usage error: {e}"),
        }
    }

    #[test]
    fn options_before_the_image_are_split_between_caw_and_the_engine() {
        let line = parse(&os(&[
            "--auth-dir",
            "/a",
            "-it",
            "--rm",
            "-e",
            "X=1",
            "--name",
            "n",
            "-v",
            "a:b",
            "--agents",
            "claude,codex",
            "-u",
            "node",
            "--env=Y=2",
            "-p8080:80",
            "--init",
            "--network=host",
            "img",
            "cat",
            "-n",
            "--rm",
            "--",
            "x",
        ]))
        .unwrap();
        assert_eq!(line.auth_dir, Some(PathBuf::from("/a")));
        assert_eq!(line.agents, ["claude,codex"]);
        assert_eq!(line.user.as_deref(), Some("node"));
        assert_eq!(
            line.engine_args,
            os(&[
                "-it",
                "--rm",
                "-e",
                "X=1",
                "--name",
                "n",
                "-v",
                "a:b",
                "--env=Y=2",
                "-p8080:80",
                "--init",
                "--network=host"
            ])
        );
        assert_eq!(line.image, "img");
        assert_eq!(line.command, os(&["cat", "-n", "--rm", "--", "x"]));
    }

    #[test]
    fn a_value_looking_like_an_image_is_still_a_value() {
        // `--name img` must not make `img` the image.
        let line = parse(&os(&["--name", "img", "--workdir", "/w", "-w/x", "real"])).unwrap();
        assert_eq!(line.image, "real");
        assert!(line.command.is_empty());
        let line = parse(&os(&[
            "--user=me",
            "--entrypoint",
            "",
            "--",
            "-odd-image",
            "a",
        ]))
        .unwrap();
        assert_eq!(
            (line.user.as_deref(), line.entrypoint.as_deref()),
            (Some("me"), Some(""))
        );
        assert_eq!(line.image, "-odd-image");
        assert_eq!(line.command, os(&["a"]));
    }

    #[test]
    fn short_clusters_end_at_the_option_taking_a_value() {
        let line = parse(&os(&["-itv", "a:b", "-de", "X=1", "-uroot", "img"])).unwrap();
        assert_eq!(
            line.engine_args,
            os(&["-it", "-v", "a:b", "-d", "-e", "X=1"])
        );
        assert_eq!(line.user.as_deref(), Some("root"));
        let line = parse(&os(&["-tvx:y", "img"])).unwrap();
        assert_eq!(line.engine_args, os(&["-t", "-vx:y"]));
    }

    #[test]
    fn unknown_options_and_missing_parts_are_usage_errors() {
        assert!(usage(&["--frobnicate", "img"]).contains("--frobnicate=VALUE"));
        assert!(parse(&os(&["--frobnicate=1", "img"])).is_ok());
        assert_eq!(usage(&["-it"]), "no IMAGE given");
        assert_eq!(usage(&["--name"]), "`--name` needs a value");
        assert!(usage(&["-Z", "img"]).contains("`-Z`"));
    }

    #[test]
    fn podman_options_take_their_values_and_are_refused_for_docker() {
        let line = parse(&os(&[
            "--engine",
            "podman",
            "--userns",
            "keep-id",
            "--uidmap",
            "0:1:1",
            "--pod=p",
            "--replace",
            "img",
        ]))
        .unwrap();
        assert_eq!(line.engine.as_deref(), Some("podman"));
        assert_eq!(line.image, "img");
        assert_eq!(line.engine_option("userns").as_deref(), Some("keep-id"));
        assert_eq!(line.engine_option("pod").as_deref(), Some("p"));
        assert_eq!(line.engine_option("gidmap"), None);
        assert!(line.check_engine(Engine::Podman).is_ok());
        let err = line.check_engine(Engine::Docker).unwrap_err().to_string();
        assert_eq!(err, "`--uidmap` is an option of `podman`, not of `docker`");
        let line = parse(&os(&["--selinux-label=none", "--userns=host", "img"])).unwrap();
        assert_eq!(line.selinux_label.as_deref(), Some("none"));
        assert!(line.check_engine(Engine::Docker).is_ok());
    }
}
