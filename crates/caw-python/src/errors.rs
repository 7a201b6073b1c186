//! The one place where a [`caw_auth::Error`] becomes a Python exception.
//!
//! The classes live in Python (`caw/auth/_errors.py`) so that each can derive
//! from both `CawAuthError` and the built-in that callers of the documented
//! API already catch (`FileNotFoundError`, `ValueError`, `RuntimeError`),
//! which PyO3 cannot declare. Here we pick the class, render the library's
//! message and hint in Python's words ([`PySpelling`] spells each option as the
//! keyword argument it is; messages name the path or name involved and never
//! hold file contents), and attach the fields a caller may want to inspect.
//!
//! Operating-system failures stay the built-in `OSError` subclass for their
//! kind (`PermissionError`, ...), as from any Python file function; their
//! message names the path.

use caw_auth::{Error, OptionName, Spelling, Step};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::IntoPyObjectExt;

/// The Python module that defines the exception classes.
const ERRORS_MODULE: &str = "caw.auth._errors";

/// What to raise: a class from [`ERRORS_MODULE`], its message and its fields.
struct Raise<'py> {
    class: &'static str,
    message: String,
    hint: Option<String>,
    fields: Vec<(&'static str, Bound<'py, PyAny>)>,
}

/// How the Python API names the library's options and steps. The auth dir
/// is `dest_dir` in `setup` and `auth_dir` everywhere else.
pub(crate) struct PySpelling {
    pub auth_dir: &'static str,
}

/// The spelling for `setup`.
pub(crate) const SETUP: PySpelling = PySpelling {
    auth_dir: "dest_dir",
};
/// The spelling for every other function.
pub(crate) const OTHER: PySpelling = PySpelling {
    auth_dir: "auth_dir",
};

impl Spelling for PySpelling {
    fn option(&self, option: OptionName) -> Option<String> {
        Some(
            match option {
                OptionName::Agents => "agents",
                OptionName::SourceHome => "source_home",
                OptionName::AuthDir => self.auth_dir,
                OptionName::ContainerHome => "container_home",
                OptionName::MountPoint => "mount_point",
                OptionName::Mode => "mode",
                OptionName::Trust => "trust",
                OptionName::Force => "force",
                OptionName::Home => "$HOME",
                OptionName::HoldRefreshToken => "hold_refresh_token",
                // `get_docker_flags` has one form; other options are the CLI's.
                _ => return None,
            }
            .to_string(),
        )
    }

    fn option_value(&self, option: OptionName, value: &str) -> Option<String> {
        let name = self.option(option)?;
        Some(match (option, value) {
            (OptionName::Force, "") => format!("{name}=True"),
            (_, "") => name,
            _ => format!("{name}={value:?}"),
        })
    }

    fn step(&self, step: Step) -> String {
        match step {
            Step::Setup => "run `caw.auth.setup()` (or `caw auth setup`)".into(),
            Step::Teardown => "call `caw.auth.teardown()`".into(),
            _ => "call `caw.auth`".into(),
        }
    }
}

/// The Python exception documented for `err`, in `spelling`'s words.
pub(crate) fn to_py_err(py: Python<'_>, err: Error, spelling: &PySpelling) -> PyErr {
    if let Error::Io(io) = err {
        return PyErr::from(io);
    }
    let fallback = err.to_string();
    match describe(py, err, spelling).and_then(|r| instantiate(py, r)) {
        Ok(e) => e,
        Err(cause) => {
            // Only reachable if `caw.auth._errors` cannot be imported; still
            // raise something with the library's message.
            let e = PyRuntimeError::new_err(fallback);
            e.set_cause(py, Some(cause));
            e
        }
    }
}

fn describe<'py>(py: Python<'py>, err: Error, spelling: &PySpelling) -> PyResult<Raise<'py>> {
    let message = err.message(spelling);
    let hint = err.hint().map(|h| h.render(spelling));
    let (class, fields) = match err {
        Error::NoManifest { path } => (
            "NoManifestError",
            vec![("path", path.into_bound_py_any(py)?)],
        ),
        Error::UnknownAgent { name, known } => (
            "UnknownAgentError",
            vec![
                ("agent", name.into_bound_py_any(py)?),
                ("known", known.into_bound_py_any(py)?),
            ],
        ),
        Error::NoUsableAgent { home, missing } => {
            let by_agent = PyDict::new(py);
            for (agent, files) in missing {
                by_agent.set_item(agent, files)?;
            }
            (
                "NoUsableAgentError",
                vec![
                    ("path", home.into_bound_py_any(py)?),
                    ("missing", by_agent.into_any()),
                ],
            )
        }
        Error::WouldOrphanSymlinks { auth_dir, links } => (
            "TeardownWouldOrphanSymlinksError",
            vec![
                ("path", auth_dir.into_bound_py_any(py)?),
                ("links", links.into_bound_py_any(py)?),
            ],
        ),
        Error::ContainersAttached { auth_dir, attached } => (
            "TeardownContainersAttachedError",
            vec![
                ("path", auth_dir.into_bound_py_any(py)?),
                ("containers", attached.containers.into_bound_py_any(py)?),
                ("pids", attached.pids.into_bound_py_any(py)?),
            ],
        ),
        Error::InvalidManifest { path, field, .. }
        | Error::UntrustedManifestEntry { path, field, .. } => (
            "InvalidManifestError",
            vec![
                ("path", path.into_bound_py_any(py)?),
                ("field", field.into_bound_py_any(py)?),
            ],
        ),
        Error::InvalidInput { path, .. } => (
            "InvalidInputError",
            vec![("path", path.into_bound_py_any(py)?)],
        ),
        Error::NotAnAuthDir { path, .. } => (
            "NotAnAuthDirError",
            vec![("path", path.into_bound_py_any(py)?)],
        ),
        Error::MissingBindSource { agent, path } => (
            "MissingBindSourceError",
            vec![
                ("path", path.into_bound_py_any(py)?),
                ("agent", agent.into_bound_py_any(py)?),
            ],
        ),
        Error::UnsafeMountPath { path, .. } => (
            "UnsafeMountPathError",
            vec![("path", path.into_bound_py_any(py)?)],
        ),
        Error::InvalidOption { option, value, .. } => (
            "InvalidOptionError",
            vec![
                ("option", spelling.option(option).into_bound_py_any(py)?),
                ("value", value.into_bound_py_any(py)?),
            ],
        ),
        // `Io` is handled by the caller; a variant added later still gets the base class.
        _ => ("CawAuthError", Vec::new()),
    };
    Ok(Raise {
        class,
        message,
        hint,
        fields,
    })
}

/// Build the exception object. The hint becomes a note (PEP 678) where
/// tracebacks show notes, and a second line of the message before 3.11.
fn instantiate<'py>(py: Python<'py>, r: Raise<'py>) -> PyResult<PyErr> {
    let notes = py.version_info() >= (3, 11);
    let message = match (&r.hint, notes) {
        (Some(hint), false) => format!("{}\nhint: {hint}", r.message),
        _ => r.message,
    };
    let exc = py
        .import(ERRORS_MODULE)?
        .getattr(r.class)?
        .call1((message,))?;
    exc.setattr("hint", r.hint.as_deref())?;
    for (name, value) in r.fields {
        exc.setattr(name, value)?;
    }
    if let (Some(hint), true) = (&r.hint, notes) {
        exc.call_method1("add_note", (format!("hint: {hint}"),))?;
    }
    Ok(PyErr::from_value(exc))
}
