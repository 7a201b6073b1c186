//! One module per subcommand: each takes its parsed arguments and returns an exit code.

pub mod container;
pub mod docker_flags;
pub mod exec;
pub mod run;
pub mod setup;
pub mod status;
pub mod sync;
pub mod teardown;

/// `--agents claude codex`, `-a claude -a codex` and `--agents claude,codex` all collect here.
#[derive(clap::Args, Debug, Default)]
pub struct AgentsArg {
    #[arg(short, long = "agents", value_name = "NAME", num_args = 1.., value_delimiter = ',', action = clap::ArgAction::Append, help = agents_help())]
    pub agents: Vec<String>,
}

/// The `--agents` help, from the agent registry.
fn agents_help() -> String {
    format!(
        "Agents to include: {}, or all (default)",
        caw_auth::agents::known_list()
    )
}

/// `--auth-dir`, defaulting to `$CAW_AUTH_DIR`, else `~/.caw/auth`.
#[derive(clap::Args, Debug, Default)]
pub struct AuthDirArg {
    /// The auth dir [default: $CAW_AUTH_DIR, else ~/.caw/auth]
    #[arg(long, value_name = "DIR")]
    pub auth_dir: Option<std::path::PathBuf>,
}
