//! Everything the CLI writes: data to stdout (through [`stdout`] only), log
//! lines, errors and hints to stderr, and how library errors are spelt.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use caw_auth::{OptionName, Spelling, Step};

/// Write `text` to stdout and flush it: every byte of data the CLI prints
/// goes through here.
///
/// A full disk, a closed pipe (`caw auth status | true`) or any other write
/// error becomes an error (exit 1 with an `error:` line) instead of a panic
/// or a silent exit 0. Rust ignores `SIGPIPE`, so a closed pipe is `EPIPE`.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// clap's help or version text, with colour only where stdout is a
/// terminal and `NO_COLOR` is unset.
pub fn styled(text: clap::builder::StyledStr) -> String {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal();
    if color {
        text.ansi().to_string()
    } else {
        text.to_string()
    }
}

/// The command line's names for the library's options and steps.
pub struct Cli;

impl Spelling for Cli {
    fn option(&self, option: OptionName) -> Option<String> {
        Some(
            match option {
                OptionName::Agents => "--agents",
                OptionName::SourceHome => "--source-home",
                OptionName::AuthDir => "--auth-dir",
                OptionName::ContainerHome => "--container-home",
                OptionName::MountPoint => "--mount-point",
                OptionName::Mode => "--mode",
                OptionName::Trust => "--trust",
                OptionName::Force => "--force",
                OptionName::Format => "--format",
                OptionName::Home => "HOME",
                OptionName::HoldRefreshToken => "--hold-refresh-token",
                OptionName::SelinuxLabel => "--selinux-label",
                _ => return None,
            }
            .to_string(),
        )
    }

    fn option_value(&self, option: OptionName, value: &str) -> Option<String> {
        let name = self.option(option)?;
        Some(if value.is_empty() {
            name
        } else {
            format!("{name} {value}")
        })
    }

    fn step(&self, step: Step) -> String {
        match step {
            Step::Setup => "run `caw auth setup`".into(),
            Step::Teardown => "run `caw auth teardown`".into(),
            _ => "run `caw auth`".into(),
        }
    }
}

/// Whether stderr may carry colour: a terminal, and `NO_COLOR` unset or empty.
pub fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

struct StderrLogger {
    color: bool,
    verbose: bool,
}

impl log::Log for StderrLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level()
            <= if self.verbose {
                log::Level::Debug
            } else {
                log::Level::Info
            }
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match record.level() {
            log::Level::Error => {
                format!("{} {}", paint("error:", "1;31", self.color), record.args())
            }
            log::Level::Warn => format!(
                "{} {}",
                paint("warning:", "1;33", self.color),
                record.args()
            ),
            _ => record.args().to_string(),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {}
}

/// Send the libraries' `log` records to stderr (`CAW_LOG=debug` for more).
pub fn init_logger() {
    let verbose = std::env::var("CAW_LOG").is_ok_and(|v| v == "debug");
    let logger = StderrLogger {
        color: stderr_color(),
        verbose,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(if verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}

/// `error: …`, each cause as `Caused by: …`, then `hint: …` when the library
/// has one; library errors in the command line's words.
pub fn print_error(err: &anyhow::Error) {
    let color = stderr_color();
    let mut out = std::io::stderr().lock();
    let message = match err.downcast_ref::<caw_auth::Error>() {
        Some(e) => e.message(&Cli),
        None => err.to_string(),
    };
    let _ = writeln!(out, "{} {message}", paint("error:", "1;31", color));
    for cause in err.chain().skip(1) {
        let _ = writeln!(out, "  {} {cause}", paint("Caused by:", "1", color));
    }
    let hint = err
        .chain()
        .find_map(|e| e.downcast_ref::<caw_auth::Error>())
        .and_then(caw_auth::Error::hint);
    if let Some(hint) = hint {
        let _ = writeln!(
            out,
            "{} {}",
            paint("hint:", "1;36", color),
            hint.render(&Cli)
        );
    }
}
