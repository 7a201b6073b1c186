//! The one place where a [`caw_auth::Error`] becomes a Python exception.
//!
//! The classes live in Python (`caw/auth/_errors.py`) so that each can derive
//! from both `CawAuthError` and the built-in that callers of the documented
//! API already catch (`FileNotFoundError`, `ValueError`, `RuntimeError`),
//! which PyO3 cannot declare. Here we pick the class, keep the library's
//! message (it names the path or name involved and never holds file
//! contents), phrase the hint for Python callers, and attach the fields a
//! caller may want to inspect.
//!
//! Operating-system failures stay the built-in `OSError` subclass for their
//! kind (`PermissionError`, ...), as from any Python file function; their
//! message names the path.

use caw_auth::Error;
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

/// The Python exception documented for `err`.
pub(crate) fn to_py_err(py: Python<'_>, err: Error) -> PyErr {
    if let Error::Io(io) = err {
        return PyErr::from(io);
    }
    let fallback = err.to_string();
    match describe(py, err).and_then(|r| instantiate(py, r)) {
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

fn describe(py: Python<'_>, err: Error) -> PyResult<Raise<'_>> {
    let mut message = err.to_string();
    let hint = python_hint(&err);
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
        Error::InvalidManifest { path, field, .. } => (
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
        Error::InvalidOption {
            option,
            value,
            reason,
        } => {
            // The library names options as the CLI spells them.
            let option = python_option(option);
            message = format!("invalid {option} `{value}`: {reason}");
            (
                "InvalidOptionError",
                vec![
                    ("option", option.into_bound_py_any(py)?),
                    ("value", value.into_bound_py_any(py)?),
                ],
            )
        }
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

/// The library's hint, reworded where it names a CLI flag.
fn python_hint(err: &Error) -> Option<String> {
    let text = match err {
        Error::NoManifest { .. } => "run `caw.auth.setup()` (or `caw auth setup`) first",
        Error::NoUsableAgent { .. } => {
            "log in to the agent on this machine first, or pass `source_home` to read another home"
        }
        Error::InvalidManifest { .. } => "run `caw.auth.setup()` again to rewrite the auth dir",
        Error::InvalidInput { .. } => {
            "fix or remove the file (caw never edits it), then run `caw.auth.setup()` again"
        }
        Error::NotAnAuthDir { .. } => {
            "pass `dest_dir` / `auth_dir` (or set `CAW_AUTH_DIR`) to a new or empty directory"
        }
        Error::WouldOrphanSymlinks { .. } => {
            "either replace each link with a copy of its target \
             (`cp --remove-destination \"$(readlink -f LINK)\" LINK`) and call teardown again, \
             or pass `force=True` to remove the auth dir anyway and log in again afterwards"
        }
        Error::MissingBindSource { .. } => {
            "log in to the agent on this machine (or leave it out with `agents=`) and run \
             `caw.auth.setup()` again; docker would otherwise create a root-owned directory \
             at that path"
        }
        Error::UnsafeMountPath { .. } => {
            "use an auth dir and home whose paths have no white space, `:` or `,`"
        }
        _ => return err.hint(),
    };
    Some(text.to_string())
}

/// The Python spelling of an option the library names as the CLI does.
fn python_option(option: &str) -> String {
    match option {
        "--source-home" => "source_home".into(),
        "--auth-dir" => "auth_dir".into(),
        "--container-home" => "container_home".into(),
        "--mount-point" => "mount_point".into(),
        "HOME" => "$HOME".into(),
        other => other.to_string(),
    }
}
