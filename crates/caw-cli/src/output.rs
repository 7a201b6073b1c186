//! Everything the CLI writes to stderr: log lines, errors and hints.

use std::io::{IsTerminal as _, Write as _};

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

/// `error: …`, each cause as `Caused by: …`, then `hint: …` when the library has one.
pub fn print_error(err: &anyhow::Error) {
    let color = stderr_color();
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{} {err}", paint("error:", "1;31", color));
    for cause in err.chain().skip(1) {
        let _ = writeln!(out, "  {} {cause}", paint("Caused by:", "1", color));
    }
    let hint = err
        .chain()
        .find_map(|e| e.downcast_ref::<caw_auth::Error>())
        .and_then(caw_auth::Error::hint);
    if let Some(hint) = hint {
        let _ = writeln!(out, "{} {hint}", paint("hint:", "1;36", color));
    }
}
