//! `caw run [--auth-dir A] [--agents NAMES] [--user U] [DOCKER RUN OPTIONS…] IMAGE [CMD…]`:
//! any image, unchanged, with the host's logins.
//!
//! Sets `A` up when it has no manifest, then replaces this process by
//!
//! ```text
//! docker run OPTIONS… MOUNTS… --user 0 --entrypoint M/bin/caw IMAGE \
//!     auth exec --user U --mount-point M -- COMMAND…
//! ```
//!
//! so docker's output, signals and exit status are the user's directly
//! (and `-d` prints the container id: caw writes nothing to stdout).
//!
//! Which arguments are whose ([`parse`]): everything before `IMAGE` is an
//! option. caw takes `--auth-dir A`, `--agents NAMES` (one value,
//! comma-separated, repeatable; `-a` stays docker's `--attach`), `--user U`
//! / `-u U` (the agent user; docker's own user is always 0) and
//! `--entrypoint E`; each also as `--opt=value`. Every other option goes to
//! docker unchanged, with its value when it takes one (`-e X`, `--name n`,
//! `-v a:b`, `-p 80:80`, `-it`, `-eX=1`, `--env=X`). An option caw does not
//! know to take a value must be written `--opt=value` (or is a flag). A `--`
//! ends the options; the next argument is `IMAGE`. After `IMAGE`,
//! everything is the command, verbatim.
//!
//! The command is docker's: the image's `ENTRYPOINT` (or `--entrypoint E`,
//! empty for none) followed by `CMD…`, or by the image's `CMD` when none is
//! given (with `--entrypoint`, the image's `CMD` is dropped, as docker does).
//! `U` is `--user`, else the image's `USER` (name or uid; a `:group` part is
//! ignored: `U`'s groups come from the image's `/etc/passwd` and
//! `/etc/group`); a root or empty `USER` is an error asking for `--user`.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use caw_auth::bundle::{is_static_linux_executable, BUNDLED_BINARY};
use caw_auth::{FlagFormat, Manifest};

/// `caw run`'s arguments, taken as they come (see the module docs).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// [--auth-dir A] [--agents NAMES] [--user U] [DOCKER RUN OPTIONS…] IMAGE [CMD…]
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    args: Vec<OsString>,
}

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
    /// docker run options, verbatim and in order.
    pub docker: Vec<OsString>,
    /// `IMAGE`.
    pub image: OsString,
    /// `CMD…`.
    pub command: Vec<OsString>,
}

/// A mistake in the command line (exit 2).
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

/// Split `args` (see the module docs for the rule).
pub fn parse(args: &[OsString]) -> Result<RunLine, Usage> {
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
        _ if VALUE_OPTIONS.contains(&name) => {
            line.docker.push(at.current());
            if attached.is_none() {
                line.docker.push(at.value(None, &format!("--{name}"))?);
            }
        }
        _ if FLAG_OPTIONS.contains(&name) || attached.is_some() => line.docker.push(at.current()),
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
            line.docker
                .push(format!("-{}", std::mem::take(&mut flags)).into());
        }
        if c == 'u' {
            line.user = Some(utf8(&at.value(attached, "-u")?)?);
        } else if let Some(v) = attached {
            line.docker.push(format!("-{c}{v}").into());
        } else {
            line.docker.push(format!("-{c}").into());
            line.docker.push(at.value(None, &format!("-{c}"))?);
        }
        return Ok(());
    }
    if !flags.is_empty() {
        line.docker.push(format!("-{flags}").into());
    }
    Ok(())
}

/// What `docker image inspect` says about an image.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `USER`, possibly empty.
    pub user: String,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
}

impl ImageConfig {
    /// From `docker image inspect --format '{{json .Config}}'`.
    pub fn from_json(text: &str) -> Result<ImageConfig, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let list = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(|l| l.as_array())
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(ImageConfig {
            user: v
                .get("User")
                .and_then(|u| u.as_str())
                .unwrap_or("")
                .to_string(),
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
        })
    }
}

/// The agent user: `given`, else the image's `USER` (a name or uid, with
/// its `:group` when it has one), unless that is root or empty.
pub fn agent_user(given: Option<&str>, image: &ImageConfig) -> Result<String, String> {
    if let Some(u) = given {
        return Ok(u.to_string());
    }
    let user = image.user.split(':').next().unwrap_or("");
    if user.is_empty() || user == "root" || user == "0" {
        return Err(if user.is_empty() {
            "the image sets no USER".to_string()
        } else {
            format!("the image's USER is `{}`", image.user)
        });
    }
    Ok(image.user.clone())
}

/// The command `auth exec` runs (docker's rule, see the module docs).
pub fn main_command(line: &RunLine, image: &ImageConfig) -> Vec<OsString> {
    let entrypoint: Vec<OsString> = match &line.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.into()],
        None => image.entrypoint.iter().map(Into::into).collect(),
    };
    let args: Vec<OsString> = if !line.command.is_empty() || line.entrypoint.is_some() {
        line.command.clone()
    } else {
        image.cmd.iter().map(Into::into).collect()
    };
    entrypoint.into_iter().chain(args).collect()
}

/// `docker run …` after the mounts are known.
pub fn docker_argv(
    line: &RunLine,
    mounts: &[String],
    mount_point: &str,
    user: &str,
    command: &[OsString],
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["run".into()];
    argv.extend(line.docker.iter().cloned());
    argv.extend(mounts.iter().map(Into::into));
    for a in ["--user", "0", "--entrypoint"] {
        argv.push(a.into());
    }
    argv.push(format!("{mount_point}/{BUNDLED_BINARY}").into());
    argv.push(line.image.clone());
    for a in [
        "auth",
        "exec",
        "--user",
        user,
        "--mount-point",
        mount_point,
        "--",
    ] {
        argv.push(a.into());
    }
    argv.extend(command.iter().cloned());
    argv
}

struct Failure {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Failure {
        Failure {
            message: message.into(),
            hint: hint.map(str::to_string),
            code: 1,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        let hint = e
            .chain()
            .find_map(|c| c.downcast_ref::<caw_auth::Error>())
            .and_then(caw_auth::Error::hint)
            .map(|h| h.render(&crate::output::Cli));
        let mut message = e.to_string();
        for cause in e.chain().skip(1) {
            message.push_str(&format!(": {cause}"));
        }
        Failure {
            message,
            hint,
            code: 1,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if matches!(
        args.args.first().and_then(|a| a.to_str()),
        Some("--help" | "-h")
    ) {
        print!("{}", HELP);
        return Ok(ExitCode::SUCCESS);
    }
    match prepare(&args.args) {
        Ok(mut docker) => {
            // Replaces this process: docker's exit status is ours.
            let err = docker.exec();
            fail(Failure::new(
                format!("cannot run `docker`: {err}"),
                Some("install Docker, or put the `docker` client on PATH"),
            ))
        }
        Err(f) => fail(f),
    }
}

fn fail(f: Failure) -> anyhow::Result<ExitCode> {
    crate::output::print_error(&anyhow::anyhow!(f.message));
    if let Some(hint) = f.hint {
        let _ = writeln!(std::io::stderr(), "hint: {hint}");
    }
    Ok(ExitCode::from(f.code))
}

/// Everything before the exec: parse, set up, inspect, build the command.
fn prepare(args: &[OsString]) -> Result<Command, Failure> {
    let line = parse(args).map_err(|Usage(message)| Failure {
        message,
        hint: Some(
            "caw run [--auth-dir A] [--agents NAMES] [--user U] [DOCKER RUN OPTIONS…] IMAGE [CMD…]"
                .into(),
        ),
        code: 2,
    })?;
    let auth_dir = ready_auth_dir(&line)?;
    let manifest = Manifest::load(&auth_dir).map_err(anyhow::Error::from)?;
    let mounts = caw_auth::docker_mounts(Some(&auth_dir)).map_err(anyhow::Error::from)?;
    // The host sync (live mode) runs before the container starts.
    super::docker_flags::start_sync(&mounts);
    let json =
        caw_auth::format_mounts(&mounts.mounts, FlagFormat::Json).map_err(anyhow::Error::from)?;
    let mounts: Vec<String> =
        serde_json::from_str(&json).expect("format_mounts gives a JSON array of strings");
    let needs_image = line.user.is_none() || (line.command.is_empty() && line.entrypoint.is_none());
    let image = if needs_image {
        inspect(&line.image)?
    } else {
        ImageConfig::default()
    };
    let user = agent_user(line.user.as_deref(), &image).map_err(|why| {
        Failure::new(
            format!(
                "{why}: caw run needs the agent user of `{}`",
                line.image.to_string_lossy()
            ),
            Some("pass `--user NAME` (a user in the image's /etc/passwd)"),
        )
    })?;
    let command = main_command(&line, &image);
    if command.is_empty() {
        return Err(Failure::new(
            format!(
                "`{}` has no ENTRYPOINT or CMD, and no command was given",
                line.image.to_string_lossy()
            ),
            Some("give the command after the image: caw run … IMAGE CMD [ARGS…]"),
        ));
    }
    let mut docker = Command::new("docker");
    docker.args(docker_argv(
        &line,
        &mounts,
        &manifest.mount_point,
        &user,
        &command,
    ));
    Ok(docker)
}

/// The auth dir, set up first when it has no manifest, with the bundled
/// container `caw` checked.
fn ready_auth_dir(line: &RunLine) -> Result<PathBuf, Failure> {
    let auth_dir =
        caw_auth::auth_dir::resolve(line.auth_dir.as_deref()).map_err(anyhow::Error::from)?;
    if !auth_dir.join(caw_auth::manifest::MANIFEST_FILE).exists() {
        caw_auth::setup(&caw_auth::SetupOptions {
            agents: line.agents.clone(),
            auth_dir: Some(auth_dir.clone()),
            embedded_binary: caw_bundle::binary(),
            hold_refresh_token: line.hold_refresh_token,
            ..Default::default()
        })
        .map_err(anyhow::Error::from)?;
    } else if line.hold_refresh_token {
        caw_auth::manifest::require_held_refresh_tokens(&auth_dir).map_err(anyhow::Error::from)?;
    } else if !line.agents.is_empty() {
        log::info!(
            "`{}` is already set up; --agents applies only to a new auth dir \
             (run `caw auth setup --agents …` to change it)",
            auth_dir.display()
        );
    }
    let bundled = auth_dir.join(BUNDLED_BINARY);
    if !is_static_linux_executable(&bundled) {
        return Err(Failure::new(
            format!(
                "`{}` is missing or not a static Linux build; caw run needs it as the container's entrypoint",
                bundled.display()
            ),
            Some(
                "run `caw auth setup` again with a caw that bundles it (`cargo install --path \
                 crates/caw-cli` or `pip install .` do), or point CAW_STATIC_BINARY at one \
                 (scripts/build-static.sh builds it)",
            ),
        ));
    }
    Ok(auth_dir)
}

/// `docker image inspect`, pulling the image once when it is not there.
fn inspect(image: &OsStr) -> Result<ImageConfig, Failure> {
    let query = || {
        Command::new("docker")
            .args(["image", "inspect", "--format", "{{json .Config}}"])
            .arg(image)
            .stdin(Stdio::null())
            .output()
    };
    let cannot = |e: std::io::Error| {
        Failure::new(
            format!("cannot run `docker`: {e}"),
            Some("install Docker, or put the `docker` client on PATH"),
        )
    };
    let mut out = query().map_err(cannot)?;
    if !out.status.success() {
        // Like docker run: fetch a missing image (progress to stderr only).
        let pulled = Command::new("docker")
            .arg("pull")
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(cannot)?,
            ))
            .status()
            .map_err(cannot)?;
        if pulled.success() {
            out = query().map_err(cannot)?;
        }
    }
    if !out.status.success() {
        return Err(Failure::new(
            format!(
                "cannot inspect image `{}`: {}",
                image.to_string_lossy(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Some("check the image name (`docker images`), or pass both `--user` and a command"),
        ));
    }
    ImageConfig::from_json(&String::from_utf8_lossy(&out.stdout)).map_err(|e| {
        Failure::new(
            format!(
                "cannot read `docker image inspect` for `{}`: {e}",
                image.to_string_lossy()
            ),
            None,
        )
    })
}

const HELP: &str = "\
Run an image, unchanged, with the host's logins

Usage: caw run [--auth-dir A] [--agents NAMES] [--user U] [--hold-refresh-token] [DOCKER RUN OPTIONS…] IMAGE [CMD…]

Sets up the auth dir when it has none, then runs
  docker run OPTIONS… MOUNTS… --user 0 --entrypoint M/bin/caw IMAGE auth exec --user U -- COMMAND…
so the container's init puts the logins into U's home, keeps them in sync
with the host, and runs the command as U. caw prints nothing on stdout and
exits with docker's status.

caw's options (before IMAGE, mixed with docker's):
  --auth-dir A      the auth dir [default: $CAW_AUTH_DIR, else ~/.caw/auth]
  --agents NAMES    agents for a new auth dir: one comma-separated value, repeatable
  --user U, -u U    the agent user [default: the image's USER, when not root]
  --entrypoint E    the command's first word instead of the image's ENTRYPOINT
  --hold-refresh-token
                    containers get no refresh token; only the host sync refreshes
                    (for a new auth dir; an existing one must have been set up so)

Every other option before IMAGE goes to docker run unchanged (with its value
when it takes one); write options caw does not know as --opt=value. `--`
ends the options. After IMAGE everything is the command. Without a command,
the image's ENTRYPOINT and CMD run.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_before_the_image_are_split_between_caw_and_docker() {
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
            line.docker,
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
        assert_eq!(line.docker, os(&["-it", "-v", "a:b", "-d", "-e", "X=1"]));
        assert_eq!(line.user.as_deref(), Some("root"));
        let line = parse(&os(&["-tvx:y", "img"])).unwrap();
        assert_eq!(line.docker, os(&["-t", "-vx:y"]));
    }

    #[test]
    fn unknown_options_and_missing_parts_are_usage_errors() {
        let e = parse(&os(&["--frobnicate", "img"])).unwrap_err();
        assert!(e.0.contains("--frobnicate=VALUE"), "{e:?}");
        assert!(parse(&os(&["--frobnicate=1", "img"])).is_ok());
        assert_eq!(
            parse(&os(&["-it"])).unwrap_err(),
            Usage("no IMAGE given".into())
        );
        assert_eq!(
            parse(&os(&["--name"])).unwrap_err(),
            Usage("`--name` needs a value".into())
        );
        assert!(parse(&os(&["-Z", "img"])).unwrap_err().0.contains("`-Z`"));
    }

    #[test]
    fn the_agent_user_is_given_or_the_images_non_root_user() {
        let img = |u: &str| ImageConfig {
            user: u.into(),
            ..Default::default()
        };
        assert_eq!(agent_user(Some("x"), &img("root")).unwrap(), "x");
        assert_eq!(agent_user(None, &img("node")).unwrap(), "node");
        assert_eq!(agent_user(None, &img("1000:1000")).unwrap(), "1000:1000");
        assert_eq!(agent_user(Some("0"), &img("node")).unwrap(), "0");
        for root in ["", "root", "0", "0:0", "root:staff"] {
            assert!(agent_user(None, &img(root)).is_err(), "{root:?}");
        }
    }

    #[test]
    fn the_command_follows_dockers_entrypoint_and_cmd_rule() {
        let image = ImageConfig {
            user: String::new(),
            entrypoint: vec!["/init.sh".into()],
            cmd: vec!["serve".into(), "--port".into()],
        };
        let line = |cmd: &[&str], ep: Option<&str>| RunLine {
            command: os(cmd),
            entrypoint: ep.map(str::to_string),
            hold_refresh_token: false,
            ..Default::default()
        };
        assert_eq!(
            main_command(&line(&[], None), &image),
            os(&["/init.sh", "serve", "--port"])
        );
        assert_eq!(
            main_command(&line(&["sh"], None), &image),
            os(&["/init.sh", "sh"])
        );
        assert_eq!(
            main_command(&line(&[], Some("/bin/x")), &image),
            os(&["/bin/x"])
        );
        assert_eq!(main_command(&line(&["a"], Some("")), &image), os(&["a"]));
        let bare = ImageConfig::default();
        assert!(main_command(&line(&[], None), &bare).is_empty());
    }

    #[test]
    fn docker_argv_puts_caw_in_front_of_the_command() {
        let line = RunLine {
            docker: os(&["-d", "--name", "n"]),
            image: "img".into(),
            ..Default::default()
        };
        let mounts = vec!["-v".to_string(), "/h/a:/tmp/caw_auth:ro".to_string()];
        let argv = docker_argv(&line, &mounts, "/tmp/caw_auth", "node", &os(&["cat", "f"]));
        assert_eq!(
            argv,
            os(&[
                "run",
                "-d",
                "--name",
                "n",
                "-v",
                "/h/a:/tmp/caw_auth:ro",
                "--user",
                "0",
                "--entrypoint",
                "/tmp/caw_auth/bin/caw",
                "img",
                "auth",
                "exec",
                "--user",
                "node",
                "--mount-point",
                "/tmp/caw_auth",
                "--",
                "cat",
                "f"
            ])
        );
    }

    #[test]
    fn image_config_reads_null_lists_as_empty() {
        let c =
            ImageConfig::from_json(r#"{"User":"node","Entrypoint":null,"Cmd":["a","b"]}"#).unwrap();
        assert_eq!(
            c,
            ImageConfig {
                user: "node".into(),
                entrypoint: vec![],
                cmd: vec!["a".into(), "b".into()]
            }
        );
    }
}
