//! `caw`: the command line over `caw-auth` (host side) and `caw-guard` (container side).
//!
//! This file only parses arguments, installs the stderr logger and turns
//! errors into `error:` / `hint:` lines and exit codes; each subcommand lives
//! in `commands/`.

mod commands;
mod output;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "caw",
    version,
    about = "Run coding agents in Docker with the host's logins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Credential snapshots, docker flags and the container-side guard.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Run an image, unchanged, with the host's logins (`caw run --help`).
    #[command(disable_help_flag = true)]
    Run(commands::run::Args),
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Snapshot credentials and cleaned configs into the auth dir.
    Setup(commands::setup::Args),
    /// Show managed files and token expiry.
    Status(commands::status::Args),
    /// Print the `docker run` mount flags; in live mode, start the host sync
    /// (a background process) when none runs.
    DockerFlags(commands::docker_flags::Args),
    /// Keep the host credential files and the auth dir's live copies equal (foreground).
    Sync(Box<commands::sync::Args>),
    /// Remove the auth dir, after handing a newer login in it back to the host.
    Teardown(commands::teardown::Args),
    /// Create a store key for `--store` (0600; copy it to each of your machines).
    StoreKey(commands::sync::StoreKeyArgs),
    /// Container side: copy files into the agent's home and start the guard (run as root).
    ContainerSetup(commands::container::SetupArgs),
    /// Container side: keep credential pairs in sync until stopped.
    Guard(commands::container::GuardArgs),
    /// Container entrypoint (as root): set up the agent's home, supervise the
    /// guard, run CMD as the agent user.
    Exec(commands::exec::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            // `--help` and `--version` are data: through the one stdout writer.
            return match output::stdout(&output::styled(e.render())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    output::print_error(&err);
                    ExitCode::FAILURE
                }
            };
        }
        // `caw auth` alone: say what is missing, as every other mistake does.
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            output::print_error(&anyhow::anyhow!("a subcommand is needed"));
            eprint!("\n{}", e.render());
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    output::init_logger();
    let result = match cli.command {
        Command::Auth(cmd) => match cmd {
            AuthCommand::Setup(args) => commands::setup::run(args),
            AuthCommand::Status(args) => commands::status::run(args),
            AuthCommand::DockerFlags(args) => commands::docker_flags::run(args),
            AuthCommand::Sync(args) => commands::sync::run(*args),
            AuthCommand::Teardown(args) => commands::teardown::run(args),
            AuthCommand::StoreKey(args) => commands::sync::store_key(args),
            AuthCommand::ContainerSetup(args) => commands::container::setup(args),
            AuthCommand::Guard(args) => commands::container::guard(args),
            AuthCommand::Exec(args) => commands::exec::run(args),
        },
        Command::Run(args) => commands::run::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            exit_code(&err)
        }
    }
}

/// 2 for what is a mistake in the command line (an unknown agent, a bad
/// option value), 1 for everything else.
fn exit_code(err: &anyhow::Error) -> ExitCode {
    match err.downcast_ref::<caw_auth::Error>() {
        Some(
            caw_auth::Error::UnknownAgent { .. }
            | caw_auth::Error::InvalidOption { .. }
            | caw_auth::Error::RunUsage { .. }
            | caw_auth::Error::UnknownEngine { .. },
        ) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}
