//! `caw auth docker-flags`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use caw_auth::host_sync::SyncCommand;
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
    /// Do not start the host sync, a background process (also `CAW_NO_SYNC=1`)
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
    /// The store the host sync it starts joins (see `caw auth sync --help`)
    #[command(flatten)]
    store: super::sync::StoreArgs,
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
    // A store without its key is an error here, not in a background log.
    args.store.config()?;
    if !args.no_sync {
        start_sync_with(&mounts, args.store.to_args());
    }
    output::stdout(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Make sure the host sync runs (live mode): `caw auth sync --auth-dir A`,
/// with this very executable (see [`caw_auth::host_sync::ensure`]).
pub(crate) fn start_sync(mounts: &caw_auth::DockerMounts) {
    start_sync_with(mounts, Vec::new());
}

/// [`start_sync`], the sync given `extra` arguments (`--store …`).
pub(crate) fn start_sync_with(mounts: &caw_auth::DockerMounts, extra: Vec<OsString>) {
    caw_auth::host_sync::ensure(&mounts.auth_dir, mounts.mode, |auth_dir| {
        sync_command(auth_dir, extra)
    });
}

/// How this CLI runs the host sync for `auth_dir`.
fn sync_command(auth_dir: &Path, extra: Vec<OsString>) -> std::io::Result<SyncCommand> {
    let os = |s: &str| OsString::from(s);
    let mut args = vec![os("auth"), os("sync"), os("--auth-dir"), auth_dir.into()];
    args.extend(extra);
    Ok(SyncCommand {
        program: std::env::current_exe()?,
        args,
    })
}
