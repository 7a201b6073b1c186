//! `caw auth sync`: the host sync, in the foreground.

use std::process::ExitCode;
use std::time::Duration;

use caw_sync::host::{Exit, HostSyncOptions};

use super::AuthDirArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    auth_dir: AuthDirArg,
    /// Exit once no container has been attached for this many seconds (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    idle_exit: u64,
    /// How often to check whether a container is attached, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30, hide = true)]
    check_every: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let auth_dir = caw_auth::auth_dir::resolve(args.auth_dir.auth_dir.as_deref())?;
    let opts = HostSyncOptions {
        auth_dir,
        idle_exit: (args.idle_exit > 0).then(|| Duration::from_secs(args.idle_exit)),
        check_every: Duration::from_secs(args.check_every.max(1)),
    };
    if let Exit::AlreadyRunning(pid) = caw_sync::host::run(&opts)? {
        let pid = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
        log::info!("a sync already runs for `{}`{pid}", opts.auth_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
