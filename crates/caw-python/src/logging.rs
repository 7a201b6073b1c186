//! The library's `log` records, forwarded to Python's `logging`.
//!
//! A record from target `caw_auth::setup` goes to the logger `caw.auth.setup`,
//! so everything the library says is under `logging.getLogger("caw")` and
//! follows whatever handlers and levels the application configured. Nothing
//! is printed from Rust.
//!
//! The library functions run with the GIL released (`Python::detach`), so a
//! record is forwarded by attaching to the interpreter again for the call;
//! levels are checked on the Python side for each record, since the
//! application may reconfigure logging at any time.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

struct PythonLogger;

static LOGGER: PythonLogger = PythonLogger;

/// Route `log` records to Python. Called once when `caw._caw` is imported;
/// a second call (or another logger already set) is ignored.
pub(crate) fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

impl log::Log for PythonLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // `try_attach` declines during interpreter shutdown instead of panicking.
        let _ = Python::try_attach(|py| {
            if let Err(e) = forward(py, record) {
                e.write_unraisable(py, None);
            }
        });
    }

    fn flush(&self) {}
}

fn forward(py: Python<'_>, record: &log::Record<'_>) -> PyResult<()> {
    static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let logger = GET_LOGGER
        .import(py, "logging", "getLogger")?
        .call1((logger_name(record.target()),))?;
    let level = python_level(record.level());
    if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        logger.call_method1("log", (level, record.args().to_string()))?;
    }
    Ok(())
}

/// `caw_auth::setup` → `caw.auth.setup`; any other target goes under `caw.`.
fn logger_name(target: &str) -> String {
    let dotted = target.replace("::", ".");
    match dotted.strip_prefix("caw_") {
        Some(rest) => format!("caw.{rest}"),
        None => format!("caw.{dotted}"),
    }
}

fn python_level(level: log::Level) -> u32 {
    match level {
        log::Level::Error => 40,
        log::Level::Warn => 30,
        log::Level::Info => 20,
        log::Level::Debug => 10,
        log::Level::Trace => 5,
    }
}
