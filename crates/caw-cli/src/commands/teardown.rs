//! `caw auth teardown`.

use std::process::ExitCode;

use caw_auth::{TeardownOptions, TeardownOutcome};

use super::AuthDirArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    auth_dir: AuthDirArg,
    /// Say what would be removed, remove nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Remove even when host files are symlinks into the auth dir, or
    /// containers are attached to it
    #[arg(short, long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let outcome = caw_auth::teardown(&TeardownOptions {
        auth_dir: args.auth_dir.auth_dir,
        force: args.force,
        dry_run: args.dry_run,
    })?;
    match outcome {
        TeardownOutcome::Missing(p) => {
            log::info!("nothing to remove: `{}` does not exist", p.display())
        }
        TeardownOutcome::Removed(p) => log::info!("removed `{}`", p.display()),
        TeardownOutcome::WouldRemove(p) => log::info!("would remove `{}` (dry run)", p.display()),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}
