//! Container side: `caw auth container-setup` and `caw auth guard`.
//!
//! Both are glue over `caw-guard`; this file only owns the guard's command
//! line, which `container-setup` uses to start the guard from this very
//! executable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use caw_auth::manifest::{DEFAULT_CONTAINER_HOME, DEFAULT_CONTAINER_USER, DEFAULT_MOUNT_POINT};

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Where the auth dir is mounted
    #[arg(default_value = DEFAULT_MOUNT_POINT)]
    mount_point: PathBuf,
    /// The agent user's home
    #[arg(default_value = DEFAULT_CONTAINER_HOME)]
    container_home: PathBuf,
    /// The agent user
    #[arg(default_value = DEFAULT_CONTAINER_USER)]
    user: String,
}

#[derive(clap::Args, Debug)]
pub struct GuardArgs {
    /// Where the auth dir is mounted (its manifest lists the credentials)
    #[arg(long, value_name = "PATH", default_value = DEFAULT_MOUNT_POINT)]
    mount_point: PathBuf,
    /// The agent user's home
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTAINER_HOME)]
    container_home: PathBuf,
    /// The agent user (owner of the home copies)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONTAINER_USER)]
    user: String,
    /// Descriptor to report readiness on (used by container-setup)
    #[arg(long, value_name = "FD", hide = true)]
    ready_fd: Option<i32>,
    /// Run the guard as a child and restart it whenever it dies (what
    /// container-setup starts)
    #[arg(long, hide = true)]
    keep: bool,
}

pub fn setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let opts = caw_guard::SetupOptions::from_env(
        args.mount_point.clone(),
        args.container_home.clone(),
        args.user.clone(),
    );
    // The guard's keeper, so that a guard killed in the container comes back.
    let mut command = guard_command(&args.mount_point, &args.container_home, &args.user);
    command.args.push("--keep".into());
    caw_guard::container_setup(&opts, &command)?;
    Ok(ExitCode::SUCCESS)
}

/// How `container-setup` and `exec` start `caw auth guard` for `M`, `C`, `U`.
pub fn guard_command(
    mount_point: &Path,
    container_home: &Path,
    user: &str,
) -> caw_guard::GuardCommand {
    let os = |s: &str| OsString::from(s);
    caw_guard::GuardCommand {
        // The running binary itself, even when it was started by a path that
        // no longer resolves (e.g. a bind mount replaced since).
        program: PathBuf::from("/proc/self/exe"),
        arg0: os("caw"),
        args: vec![
            os("auth"),
            os("guard"),
            os("--mount-point"),
            mount_point.into(),
            os("--container-home"),
            container_home.into(),
            os("--user"),
            os(user),
            os("--ready-fd"),
            os(&caw_guard::READY_FD.to_string()),
        ],
    }
}

pub fn guard(args: GuardArgs) -> anyhow::Result<ExitCode> {
    if args.keep {
        let ready = args.ready_fd.and_then(caw_guard::inherited_ready_fd);
        let guard = guard_command(&args.mount_point, &args.container_home, &args.user);
        caw_guard::keep_guard(&guard, ready)?;
        return Ok(ExitCode::SUCCESS);
    }
    caw_guard::run_guard(caw_guard::GuardOptions {
        mount_point: args.mount_point,
        container_home: args.container_home,
        user: args.user,
        ready: args.ready_fd.and_then(caw_guard::inherited_ready_fd),
    })?;
    Ok(ExitCode::SUCCESS)
}
