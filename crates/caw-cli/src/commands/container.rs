//! Container side: `caw auth container-setup` and `caw auth guard`.
//! (placeholder until the container-side work lands; owned by that work)

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Where the auth dir is mounted
    #[arg(default_value = caw_auth::manifest::DEFAULT_MOUNT_POINT)]
    mount_point: std::path::PathBuf,
    /// The agent user's home
    #[arg(default_value = caw_auth::manifest::DEFAULT_CONTAINER_HOME)]
    container_home: std::path::PathBuf,
    /// The agent user
    #[arg(default_value = caw_auth::manifest::DEFAULT_CONTAINER_USER)]
    user: String,
}

#[derive(clap::Args, Debug)]
pub struct GuardArgs {}

pub fn setup(_args: SetupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("container-setup is not implemented yet")
}

pub fn guard(_args: GuardArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("guard is not implemented yet")
}
