//! `caw run [--auth-dir A] [--agents NAMES] [--user U] [DOCKER RUN OPTIONS…] IMAGE [CMD…]`:
//! any image, unchanged, with the host's logins.
//!
//! The front end of [`caw_auth::run`]: it splits the arguments, lets the
//! library set up and build the engine's command line, and replaces this
//! process by the engine, so the engine's output, signals and exit status
//! are the user's directly (and `-d` prints the container id: caw writes
//! nothing to stdout).

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

use caw_auth::run::{self, RunOptions};

/// `caw run`'s arguments, taken as they come (see [`caw_auth::run::argv`]).
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if matches!(
        args.args.first().and_then(|a| a.to_str()),
        Some("--help" | "-h")
    ) {
        crate::output::stdout(HELP)?;
        return Ok(ExitCode::SUCCESS);
    }
    let line = run::parse(&args.args)?;
    let prepared = run::prepare(
        &line,
        &RunOptions {
            embedded_binary: caw_bundle::binary(),
            ensure_sync: &super::docker_flags::start_sync,
        },
    )?;
    // Replaces this process: the engine's exit status is ours.
    let err = Command::new(&prepared.program).args(&prepared.args).exec();
    Err(caw_auth::Error::EngineUnavailable {
        engine: prepared.program,
        reason: err.to_string(),
    }
    .into())
}

const HELP: &str = "\
Run an image, unchanged, with the host's logins

Usage: caw run [--engine docker|podman] [--auth-dir A] [--agents NAMES] [--user U] [--hold-refresh-token] [DOCKER RUN OPTIONS…] IMAGE [CMD…]

Sets up the auth dir when it has none, then runs
  <engine> run OPTIONS… MOUNTS… --user 0 --entrypoint M/bin/caw IMAGE auth exec --user U -- COMMAND…
so the container's init puts the logins into U's home, keeps them in sync
with the host, and runs the command as U. caw prints nothing on stdout and
exits with the engine's status.

caw's options (before IMAGE, mixed with the engine's):
  --engine E        docker or podman [default: $CAW_ENGINE, else the first that answers]
  --selinux-label L none or z: the label on caw's mounts [default: z where SELinux enforces]
  --auth-dir A      the auth dir [default: $CAW_AUTH_DIR, else ~/.caw/auth]
  --agents NAMES    agents for a new auth dir: one comma-separated value, repeatable
  --user U, -u U    the agent user [default: the image's USER, when not root]
  --entrypoint E    the command's first word instead of the image's ENTRYPOINT
  --hold-refresh-token
                    containers get no refresh token; only the host sync refreshes
                    (for a new auth dir; an existing one must have been set up so)

Every other option before IMAGE goes to the engine's run unchanged (with its value
when it takes one); write options caw does not know as --opt=value. `--`
ends the options. After IMAGE everything is the command. Without a command,
the image's ENTRYPOINT and CMD run.
";
