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
    /// Do not start the host sync (also `CAW_NO_SYNC=1`)
    #[arg(long)]
    no_sync: bool,
    /// SELinux label on the mounts: `none` or `z` [default: `z` where
    /// SELinux enforces]
    #[arg(long, value_name = "LABEL")]
    selinux_label: Option<String>,
    /// Refuse unless the auth dir keeps refresh tokens on the host
    /// (`caw auth setup --hold-refresh-token`)
    #[arg(long)]
    hold_refresh_token: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mounts = caw_auth::docker_mounts(args.auth_dir.auth_dir.as_deref())?;
    if args.hold_refresh_token {
        caw_auth::manifest::require_held_refresh_tokens(&mounts.auth_dir)?;
    }
    let format = match args.format {
        Format::V => FlagFormat::V,
        Format::Json => FlagFormat::Json,
        Format::Mount => FlagFormat::Mount,
    };
    let label = caw_auth::selinux::Label::choose(
        args.selinux_label.as_deref(),
        std::path::Path::new(caw_auth::selinux::ENFORCE_FILE),
    )?;
    if label != caw_auth::selinux::Label::None && format == FlagFormat::Mount {
        log::warn!(
            "the `mount` form carries no SELinux label; add `--security-opt label=disable` \
             or use `--format v`"
        );
    }
    let line = caw_auth::format_labeled_mounts(&mounts.mounts, format, label)?;
    if !args.no_sync {
        start_sync(&mounts);
    }
    output::stdout(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Make sure the host sync runs (live mode), with this very executable; a
/// failure is a warning: the containers still share logins through the
/// live directory.
pub(crate) fn start_sync(mounts: &caw_auth::DockerMounts) {
    let started = std::env::current_exe()
        .map_err(caw_auth::Error::Io)
        .and_then(|exe| caw_auth::ensure_host_sync(mounts, &[exe.into_os_string()]));
    match started {
        Ok(Some(caw_auth::host_sync::Started::Now(pid))) => {
            log::info!("started the host sync (pid {pid})")
        }
        Ok(_) => {}
        Err(e) => log::warn!("{}", caw_auth::docker_flags::sync_start_warning(&e)),
    }
}
