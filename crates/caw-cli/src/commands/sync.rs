//! `caw auth sync`: the host sync, in the foreground.

use std::process::ExitCode;
use std::time::Duration;

use caw_sync::host::{Exit, HostSyncOptions, RefreshOptions, StoreConfig};

use super::AuthDirArg;

#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    auth_dir: AuthDirArg,
    /// Exit once no container has been attached for this many seconds (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    idle_exit: u64,
    /// How often to check whether a container is attached, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30, hide = true)]
    check_every: u64,
    /// Do not refresh logins ahead of the agents (they refresh themselves)
    #[arg(long, env = "CAW_NO_REFRESH", value_parser = clap::builder::FalseyValueParser::new())]
    no_refresh: bool,
    /// Take containers' Claude and Codex logins without asking the provider
    /// whose they are (a container can then put another account's login,
    /// or a made-up one, on the host)
    #[arg(long, env = "CAW_NO_VERIFY", value_parser = clap::builder::FalseyValueParser::new())]
    no_verify: bool,
    /// After a failed refresh, wait this long before the next try (doubling, up to 600)
    #[arg(long, value_name = "SECS", default_value_t = 30, hide = true)]
    refresh_backoff: u64,
    /// How long one refresh request may take
    #[arg(long, value_name = "SECS", default_value_t = 60, hide = true)]
    refresh_timeout: u64,
    /// Empty the log (stderr, when it is a file) past this many bytes
    #[arg(long, value_name = "BYTES", default_value_t = caw_auth::host_sync::LOG_LIMIT, hide = true)]
    log_limit: u64,
    #[command(flatten)]
    store: StoreArgs,
}

/// Joining this machine's logins to a store shared by the user's machines.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Share this machine's logins with the user's other machines through
    /// etcd: etcd://HOST:PORT[,HOST:PORT…][/PREFIX] (etcds:// for TLS)
    #[arg(long, env = "CAW_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The store key every machine holds (`caw auth store-key FILE` makes one)
    #[arg(long, env = "CAW_STORE_KEY", value_name = "FILE")]
    pub store_key: Option<std::path::PathBuf>,
    /// A CA certificate (PEM) to check the etcd members with
    #[arg(long, env = "CAW_STORE_CA", value_name = "FILE")]
    pub store_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for etcd, with --store-cert-key
    #[arg(
        long,
        env = "CAW_STORE_CERT",
        value_name = "FILE",
        requires = "store_cert_key"
    )]
    pub store_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM)
    #[arg(
        long,
        env = "CAW_STORE_CERT_KEY",
        value_name = "FILE",
        requires = "store_cert"
    )]
    pub store_cert_key: Option<std::path::PathBuf>,
    /// An etcd user, with --store-password-file
    #[arg(
        long,
        env = "CAW_STORE_USER",
        value_name = "NAME",
        requires = "store_password_file"
    )]
    pub store_user: Option<String>,
    /// A file holding the etcd user's password (never on the command line)
    #[arg(
        long,
        env = "CAW_STORE_PASSWORD_FILE",
        value_name = "FILE",
        requires = "store_user"
    )]
    pub store_password_file: Option<std::path::PathBuf>,
}

impl StoreArgs {
    /// The same options, for the `caw auth sync` this process starts.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut push = |flag: &str, value: Option<std::ffi::OsString>| {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v);
            }
        };
        push("--store", self.store.clone().map(Into::into));
        push("--store-key", self.store_key.clone().map(Into::into));
        push("--store-ca", self.store_ca.clone().map(Into::into));
        push("--store-cert", self.store_cert.clone().map(Into::into));
        push(
            "--store-cert-key",
            self.store_cert_key.clone().map(Into::into),
        );
        push("--store-user", self.store_user.clone().map(Into::into));
        push(
            "--store-password-file",
            self.store_password_file.clone().map(Into::into),
        );
        args
    }

    /// The store to join, if one is given; a store without a key is an error.
    pub fn config(&self) -> anyhow::Result<Option<StoreConfig>> {
        let Some(url) = &self.store else {
            return Ok(None);
        };
        let Some(key_file) = &self.store_key else {
            anyhow::bail!(caw_auth::Error::Store {
                reason: format!(
                    "--store {url} needs --store-key FILE (create one with `caw auth store-key FILE` and copy it to each machine)"
                ),
            });
        };
        Ok(Some(StoreConfig {
            url: url.clone(),
            key_file: key_file.clone(),
            ca: self.store_ca.clone(),
            client_cert: self.store_cert.clone().zip(self.store_cert_key.clone()),
            user: self
                .store_user
                .clone()
                .zip(self.store_password_file.clone()),
        }))
    }
}

const AFTER_HELP: &str = "\
Refreshes: the sync refreshes each login 5 minutes before its agent would, \
with the agent's own request to the agent's own token endpoint, so that the \
host and the containers never spend the same refresh token twice.

Provider checks: before a Claude or Codex login that a container wrote \
reaches the host, the sync asks the provider whose it is (Claude: the \
profile endpoint with its access token; Codex: its tokens' signatures \
against OpenAI's published keys). Another account's login, or one the \
provider does not know, is refused and the host's login is put back into \
live/; with no answer, it waits and asks again.

For tests only: CAW_<AGENT>_TOKEN_URL (CAW_CLAUDE_TOKEN_URL, \
CAW_CODEX_TOKEN_URL, CAW_GEMINI_TOKEN_URL, CAW_QWEN_TOKEN_URL, \
CAW_OPENCODE_TOKEN_URL) points an agent's refreshes at another endpoint \
(plain http only on a loopback address), and so do CAW_CLAUDE_PROFILE_URL \
and CAW_CODEX_JWKS_URL for the provider checks; SSL_CERT_FILE names the CA \
certificates to trust.

Several machines: with --store (and the same --store-key on every machine), \
each login is also kept in etcd, sealed with the key; a newer login on any \
machine reaches the others, and only one machine, elected in etcd, \
refreshes each login. A machine cut off from the store keeps its login and \
refreshes nothing until it is back.";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let auth_dir = caw_auth::auth_dir::resolve(args.auth_dir.auth_dir.as_deref())?;
    let opts = HostSyncOptions {
        auth_dir,
        idle_exit: (args.idle_exit > 0).then(|| Duration::from_secs(args.idle_exit)),
        check_every: Duration::from_secs(args.check_every.max(1)),
        refresh: (!args.no_refresh).then(|| RefreshOptions {
            backoff: Duration::from_secs(args.refresh_backoff.max(1)),
            timeout: Duration::from_secs(args.refresh_timeout.max(1)),
        }),
        log_limit: args.log_limit,
        verify: !args.no_verify,
        store: args.store.config()?,
    };
    if let Exit::AlreadyRunning(pid) = caw_sync::host::run(&opts)? {
        let pid = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
        log::info!("a sync already runs for `{}`{pid}", opts.auth_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct StoreKeyArgs {
    /// Where to write the new key (never over an existing file)
    #[arg(value_name = "FILE")]
    file: std::path::PathBuf,
}

/// `caw auth store-key FILE`: 32 random bytes, mode 0600.
pub fn store_key(args: StoreKeyArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "refresh")]
    {
        caw_sync::caw_store::StoreKey::create(&args.file)
            .map_err(|reason| caw_auth::Error::Store { reason })?;
        log::info!(
            "created the store key `{}`: copy it (mode 0600) to each machine that joins the store, and pass it as --store-key",
            args.file.display()
        );
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(feature = "refresh"))]
    {
        let _ = args;
        anyhow::bail!(caw_auth::Error::Store {
            reason: "this build of caw has no store support".into()
        })
    }
}
