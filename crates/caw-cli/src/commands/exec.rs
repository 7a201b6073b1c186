//! `caw auth exec [--user U] [--mount-point M] -- CMD [ARGS…]`: the
//! container's entrypoint (see `caw_guard::init`). Glue only: the guard's
//! command line comes from `container::guard_command`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use caw_auth::manifest::DEFAULT_CONTAINER_USER;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The agent user (its home comes from /etc/passwd)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONTAINER_USER)]
    user: String,
    /// Where the auth dir is mounted [default: the auth dir this caw is
    /// bundled in (M/bin/caw), else /tmp/caw_auth]
    #[arg(long, value_name = "PATH")]
    mount_point: Option<PathBuf>,
    /// The command to run as the agent user, and its arguments
    #[arg(
        value_name = "CMD",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mount_point = args
        .mount_point
        .unwrap_or_else(caw_guard::init::default_mount_point);
    let opts = caw_guard::init::ExecOptions {
        user: args.user,
        mount_point,
        command: args.command,
    };
    let result = caw_guard::init::exec(&opts, |home| {
        super::container::guard_command(&opts.mount_point, home, &opts.user)
    });
    match result {
        // 0..=255, or 128+n for a signal: always a byte.
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Err(e) => {
            let code = e.exit_code();
            crate::output::print_error(&anyhow::Error::new(e));
            Ok(ExitCode::from(code))
        }
    }
}
