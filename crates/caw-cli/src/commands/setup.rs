//! `caw auth setup`.

use std::path::PathBuf;
use std::process::ExitCode;

use caw_auth::AuthMode;

use super::{AgentsArg, AuthDirArg};
use crate::output;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    agents: AgentsArg,
    /// Home to read credentials from [default: $HOME]
    #[arg(long, value_name = "DIR")]
    source_home: Option<PathBuf>,
    #[command(flatten)]
    auth_dir: AuthDirArg,
    /// The agent user's home in the container
    #[arg(long, value_name = "PATH", default_value = caw_auth::manifest::DEFAULT_CONTAINER_HOME)]
    container_home: String,
    /// Where the auth dir is mounted in the container
    #[arg(long, value_name = "PATH", default_value = caw_auth::manifest::DEFAULT_MOUNT_POINT)]
    mount_point: String,
    /// How credentials reach containers: `live` (a shared live directory) or
    /// `bind` (each host credential file bind-mounted)
    #[arg(long, value_enum, default_value_t = ModeArg::from(caw_auth::manifest::DEFAULT_MODE))]
    mode: ModeArg,
    /// Also mark this container directory trusted for Claude and Codex
    /// (repeatable; the container home always is)
    #[arg(long, value_name = "DIR")]
    trust: Vec<String>,
    /// Keep refresh tokens on the host: containers get each login with a
    /// marker in place of its refresh token, and only the host sync
    /// refreshes (live mode)
    #[arg(long)]
    hold_refresh_token: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModeArg {
    Live,
    Bind,
}

impl From<AuthMode> for ModeArg {
    fn from(mode: AuthMode) -> Self {
        match mode {
            AuthMode::Live => ModeArg::Live,
            AuthMode::Bind => ModeArg::Bind,
        }
    }
}

impl From<ModeArg> for AuthMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Live => AuthMode::Live,
            ModeArg::Bind => AuthMode::Bind,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = caw_auth::setup(&caw_auth::SetupOptions {
        agents: args.agents.agents,
        source_home: args.source_home,
        auth_dir: args.auth_dir.auth_dir,
        container_home: Some(args.container_home),
        mount_point: Some(args.mount_point),
        mode: Some(args.mode.into()),
        trust: args.trust,
        bundle_binary: None,
        embedded_binary: caw_bundle::binary(),
        hold_refresh_token: args.hold_refresh_token,
    })?;
    if !report.bundled_binary {
        log::warn!(
            "no static caw bundled ({}): containers will use the slower shell guard, and \
             `caw run` cannot run (see README, \"The container binary\")",
            caw_bundle::missing_reason()
                .unwrap_or("the embedded one is not a static Linux executable")
        );
    }
    log::info!("next: docker run $(caw auth docker-flags) …");
    output::stdout(&format!("{}\n", report.auth_dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
