//! `caw auth docker-flags`.

use std::process::ExitCode;

use caw_auth::FlagFormat;

use super::AuthDirArg;
use crate::output;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
enum Format {
    /// `-v SRC:DST:ro …`, for `docker run $(caw auth docker-flags) …`
    #[default]
    V,
    /// A JSON array of arguments
    Json,
    /// `--mount type=bind,src=…,dst=…[,readonly]` pairs
    Mount,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    auth_dir: AuthDirArg,
    /// Output form
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mounts = caw_auth::docker_mounts(args.auth_dir.auth_dir.as_deref())?;
    let format = match args.format {
        Format::V => FlagFormat::V,
        Format::Json => FlagFormat::Json,
        Format::Mount => FlagFormat::Mount,
    };
    let line = caw_auth::format_mounts(&mounts.mounts, format)?;
    caw_auth::ensure_host_sync(&mounts)?;
    output::stdout(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}
