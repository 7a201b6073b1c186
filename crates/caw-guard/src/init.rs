//! `caw auth exec`: the container's entrypoint, run as root by the bundled
//! static `M/bin/caw`, typically as PID 1.
//!
//! 1. container setup, as `container-setup` does it, with the agent user's
//!    home `C` read from its `/etc/passwd` entry ([`setup::check`],
//!    [`setup::copy_files`]);
//! 2. the credential guard as a supervised child of the init
//!    ([`supervise`]): restarted with backoff whenever it dies;
//! 3. the command as the agent user: `setgroups` (from `/etc/group` when
//!    the image has one), `setgid`, `setuid`, done by caw itself, so the
//!    image needs no shell, `su` or `setpriv`; environment per
//!    [`command_env`];
//! 4. until the command ends: signals forwarded, every zombie reaped; then
//!    the guard is stopped and the command's status (128+n for signal n)
//!    is the exit status.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use caw_auth::manifest::{Strategy, DEFAULT_MOUNT_POINT};

use crate::setup::{self, GuardCommand, SetupOptions, BEDROCK_ENV};
use crate::supervise::{Credentials, Init, InitError, MainCommand};
use crate::user::{self, User};

/// `PATH` for a command whose environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long the guard's first start may take (watches armed, first sync done).
const GUARD_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// What the guard is called in the init's log lines.
pub const GUARD_NAME: &str = "credential guard";

/// What `caw auth exec` runs.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// `U`, the agent user: an `/etc/passwd` name, or a uid found there.
    pub user: String,
    /// `M`, where the auth dir is mounted.
    pub mount_point: PathBuf,
    /// The command and its arguments; must not be empty.
    pub command: Vec<OsString>,
}

/// Why `caw auth exec` could not run the command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// Container setup failed (no mount, no manifest, unknown user, …).
    #[error(transparent)]
    Setup(#[from] crate::Error),
    /// The init failed: the guard did not start, the command cannot be run, ….
    #[error(transparent)]
    Init(#[from] InitError),
    /// No command after `--`.
    #[error("no command to run: `caw auth exec --user U -- CMD [ARGS…]`")]
    NoCommand,
    /// The agent user's passwd entry has no usable home.
    #[error(
        "user `{user}` has no absolute home directory in `{}` (found `{}`); fix its entry in the image",
        passwd.display(),
        home.display()
    )]
    NoHome {
        /// `U`.
        user: String,
        /// The home field as found.
        home: PathBuf,
        /// The file read.
        passwd: PathBuf,
    },
}

impl ExecError {
    /// 127 / 126 when the command does not exist / cannot be executed (as
    /// a shell and `docker run` say it), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExecError::Init(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// The default `M` for a `caw` started as `<M>/bin/caw` (the bundled
/// binary, where a manifest sits two levels up), else `/tmp/caw_auth`.
pub fn default_mount_point() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let bin = exe.parent()?;
            let dir = bin.parent()?;
            (bin.file_name() == Some(OsStr::new("bin"))
                && dir.join(caw_auth::manifest::MANIFEST_FILE).is_file())
            .then(|| dir.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MOUNT_POINT))
}

/// Run `caw auth exec` and return the command's exit status.
///
/// `guard_command(C)` gives the command line of the guard for home `C`
/// (the CLI owns that syntax); it must accept a ready descriptor at
/// [`READY_FD`](setup::READY_FD).
pub fn exec(
    opts: &ExecOptions,
    guard_command: impl FnOnce(&Path) -> GuardCommand,
) -> Result<i32, ExecError> {
    // First: a `docker stop` that arrives during setup must wait, not vanish.
    let mut init = Init::new()?;
    let (program, args) = opts.command.split_first().ok_or(ExecError::NoCommand)?;
    let user = user::lookup_name_or_uid(&opts.user, Path::new(user::PASSWD))?;
    if !user.home.is_absolute() {
        return Err(ExecError::NoHome {
            user: user.name.clone(),
            home: user.home.clone(),
            passwd: user::PASSWD.into(),
        });
    }
    let setup_opts = SetupOptions::from_env(
        opts.mount_point.clone(),
        user.home.clone(),
        user.name.clone(),
    );
    let guarded = container_setup(&setup_opts)?;
    if !guarded {
        log::info!("[caw-init] no credential to guard");
    } else if !setup_opts.start_guard {
        log::info!("[caw-init] {BEDROCK_ENV}=1: not starting the {GUARD_NAME}");
    } else {
        let guard = guard_command(&user.home);
        let pid = init.supervise(
            setup::guard_spec(&guard, Some(setup_opts.pid_file.clone())),
            GUARD_READY_TIMEOUT,
        )?;
        log::info!("[caw-init] {GUARD_NAME} started (pid {pid})");
    }
    let main = MainCommand {
        program: program.clone(),
        args: args.to_vec(),
        env: command_env(std::env::vars_os(), &user),
        credentials: credentials(&user)?,
    };
    log::info!(
        "[caw-init] running `{}` as {} (uid {})",
        program.to_string_lossy(),
        user.name,
        user.uid
    );
    Ok(init.run(&main)?)
}

/// Container setup for `caw auth exec`: check, stop a guard left from an
/// earlier start of this container, copy every manifest file into the
/// home (credentials by the guard's own rules). Returns whether there is a
/// credential to guard; the guard itself is started by `exec`.
fn container_setup(opts: &SetupOptions) -> Result<bool, ExecError> {
    let checked = setup::check(opts)?;
    if checked.manifest.container_home != opts.container_home.to_string_lossy() {
        log::warn!(
            "[caw-init] the auth dir was set up for home `{}`, but {}'s home is `{}`: \
             agent settings naming the home (Claude's trusted project) point at the former; \
             run `caw auth setup --container-home {}` on the host to match",
            checked.manifest.container_home,
            checked.user.name,
            opts.container_home.display(),
            opts.container_home.display(),
        );
    }
    if let Some(pid) = setup::stop_previous_guard(&opts.pid_file)? {
        log::info!("[caw-init] stopped the earlier {GUARD_NAME} (pid {pid})");
    }
    setup::copy_files(opts, &checked)?;
    let guarded = checked
        .manifest
        .files()
        .any(|(_, f)| f.strategy == Strategy::Bind);
    Ok(guarded)
}

/// Who the command runs as: `U` with its groups when the init is root;
/// `None` (stay as is) when the init already runs as `U` (`docker run
/// --user U`, where [`setup::check`] has allowed that).
fn credentials(user: &User) -> Result<Option<Credentials>, ExecError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        uid: user.uid,
        gid: user.gid,
        groups: user::groups(user, Path::new(user::GROUP))?,
    }))
}

/// The command's environment, from the init's own (`inherited`).
///
/// Under Docker, PID 1's environment is exactly the container's configured
/// one: the image's `ENV`, then `docker run -e`/`--env-file` (both end up
/// in the container's `Config.Env` and cannot be told apart inside it),
/// plus what Docker adds itself: `HOSTNAME`, `PATH` when the image sets
/// none, `TERM` with `-t`, and `HOME` for the user it starts (root, since
/// `caw run` starts it as `--user 0`). The rule:
/// - `HOME`, `USER` and `LOGNAME` are `U`'s (home from `/etc/passwd`),
///   whatever came in: Docker's `HOME` is root's, and the logins were put
///   in `U`'s home;
/// - `PATH` is kept, or Docker's default when absent or empty;
/// - `SHELL` is kept, or `U`'s login shell when absent and the entry has one;
/// - everything else (`HOSTNAME`, `TERM`, the image's `ENV`, `-e`) passes
///   unchanged, in order. Nothing else is added.
pub fn command_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    user: &User,
) -> Vec<(OsString, OsString)> {
    let replaced = ["HOME", "USER", "LOGNAME"];
    let mut env: Vec<(OsString, OsString)> = inherited
        .into_iter()
        .filter(|(k, _)| !replaced.iter().any(|r| k == r))
        .collect();
    let has = |env: &[(OsString, OsString)], key: &str| {
        env.iter().any(|(k, v)| k == key && !v.is_empty())
    };
    if !has(&env, "PATH") {
        env.retain(|(k, _)| k != "PATH");
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !has(&env, "SHELL") && !user.shell.is_empty() {
        env.retain(|(k, _)| k != "SHELL");
        env.push(("SHELL".into(), user.shell.clone().into()));
    }
    env.push(("HOME".into(), user.home.clone().into_os_string()));
    env.push(("USER".into(), user.name.clone().into()));
    env.push(("LOGNAME".into(), user.name.clone().into()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> User {
        User {
            name: "node".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/node".into(),
            shell: "/bin/bash".into(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn docker_env_passes_with_home_and_user_replaced() {
        // What PID 1 gets from `docker run --user 0 -t -e ANTHROPIC_MODEL=x
        // -e HOME=/elsewhere` on an image with ENV LANG and PATH.
        let inherited = env(&[
            ("PATH", "/usr/local/node/bin:/usr/bin:/bin"),
            ("HOSTNAME", "abc123"),
            ("TERM", "xterm"),
            ("LANG", "C.UTF-8"),
            ("ANTHROPIC_MODEL", "x"),
            ("HOME", "/root"),
            ("USER", "root"),
        ]);
        assert_eq!(
            command_env(inherited, &node()),
            env(&[
                ("PATH", "/usr/local/node/bin:/usr/bin:/bin"),
                ("HOSTNAME", "abc123"),
                ("TERM", "xterm"),
                ("LANG", "C.UTF-8"),
                ("ANTHROPIC_MODEL", "x"),
                ("SHELL", "/bin/bash"),
                ("HOME", "/home/node"),
                ("USER", "node"),
                ("LOGNAME", "node"),
            ])
        );
    }

    #[test]
    fn path_defaults_and_a_given_shell_is_kept() {
        let got = command_env(env(&[("PATH", ""), ("SHELL", "/bin/zsh")]), &node());
        assert_eq!(
            got,
            env(&[
                ("SHELL", "/bin/zsh"),
                ("PATH", DEFAULT_PATH),
                ("HOME", "/home/node"),
                ("USER", "node"),
                ("LOGNAME", "node"),
            ])
        );
        let no_shell = User {
            shell: String::new(),
            ..node()
        };
        let got = command_env(Vec::new(), &no_shell);
        assert!(!got.iter().any(|(k, _)| k == "SHELL"), "{got:?}");
    }
}
