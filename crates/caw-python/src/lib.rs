//! `caw._caw`: the native half of the `caw` Python package.
//!
//! Thin on purpose. Each function converts its arguments, calls [`caw_auth`]
//! with the GIL released and converts the result back; nothing else. The
//! public API, its defaults and docstrings are in `python/caw/auth/__init__.py`,
//! the exception classes in `python/caw/auth/_errors.py`. Library errors
//! become those exceptions in one place, `errors::to_py_err`, and the
//! library's `log` records go to Python's `logging` under `caw` (`logging.rs`).
//!
//! Every option is keyword-only here; the Python layer owns positional order.

mod errors;
mod logging;

use pyo3::prelude::*;

/// Native functions behind `caw.auth`; use `caw.auth` instead.
#[pymodule]
mod _caw {
    use std::path::PathBuf;

    use pyo3::prelude::*;

    use crate::errors::{to_py_err, OTHER, SETUP};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        crate::logging::install();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }

    /// Write a new auth dir; returns its absolute path.
    // One argument per Python keyword: the signature is the API.
    #[allow(clippy::too_many_arguments)]
    #[pyfunction]
    #[pyo3(signature = (*, agents, source_home=None, auth_dir=None, container_home=None, mount_point=None, mode=None, trust=Vec::new(), hold_refresh_token=false))]
    fn setup(
        py: Python<'_>,
        agents: Vec<String>,
        source_home: Option<PathBuf>,
        auth_dir: Option<PathBuf>,
        container_home: Option<String>,
        mount_point: Option<String>,
        mode: Option<String>,
        trust: Vec<String>,
        hold_refresh_token: bool,
    ) -> PyResult<PathBuf> {
        let mode = match mode {
            None => None,
            Some(m) => Some(m.parse::<caw_auth::AuthMode>().map_err(|reason| {
                let err = caw_auth::Error::InvalidOption {
                    option: caw_auth::OptionName::Mode,
                    value: m,
                    reason,
                };
                to_py_err(py, err, &SETUP)
            })?),
        };
        let opts = caw_auth::SetupOptions {
            agents,
            source_home,
            auth_dir,
            container_home,
            mount_point,
            mode,
            trust,
            embedded_binary: caw_bundle::binary(),
            hold_refresh_token,
            ..caw_auth::SetupOptions::default()
        };
        let report = py
            .detach(|| caw_auth::setup(&opts))
            .map_err(|e| to_py_err(py, e, &SETUP))?;
        Ok(report.auth_dir)
    }

    /// One tuple per managed file: the six documented fields, then the
    /// source, modified, expiry, newest side and the refresher's record.
    #[pyfunction]
    #[pyo3(signature = (*, agents, auth_dir=None))]
    fn get_status(
        py: Python<'_>,
        agents: Vec<String>,
        auth_dir: Option<PathBuf>,
    ) -> PyResult<Vec<super::StatusRow>> {
        let rows = py
            .detach(|| caw_auth::get_status(&agents, auth_dir.as_deref()))
            .map_err(|e| to_py_err(py, e, &OTHER))?;
        let ms = |t: Option<jiff::Timestamp>| t.map(|t| t.as_millisecond());
        Ok(rows
            .into_iter()
            .map(|r| {
                let refresh = r.refresh.clone().unwrap_or_default();
                (
                    (
                        r.agent,
                        r.file,
                        r.file_type.to_string(),
                        r.strategy.to_string(),
                        r.exists,
                        r.token_expiry,
                    ),
                    (
                        r.source.to_string(),
                        ms(r.modified),
                        ms(r.expires_at),
                        r.newest.map(|n| n.to_string()),
                        ms(refresh.next_at),
                        ms(refresh.last_at),
                        refresh.last,
                        refresh.held,
                    ),
                )
            })
            .collect())
    }

    /// The `docker run` `-v` flags for an auth dir, on one line; starts the
    /// host sync (a background process) when none runs: `sync_command… auth
    /// sync --auth-dir A` (`python -m caw`, see `caw/__main__.py`), else the
    /// auth dir's own `bin/caw` (a static build runs on the host as well,
    /// but has no refresher).
    #[pyfunction]
    #[pyo3(signature = (*, auth_dir=None, sync_command=Vec::new(), store=None, store_key=None))]
    fn get_docker_flags(
        py: Python<'_>,
        auth_dir: Option<PathBuf>,
        sync_command: Vec<std::ffi::OsString>,
        store: Option<String>,
        store_key: Option<PathBuf>,
    ) -> PyResult<String> {
        // The store the sync it starts joins (`--store`, see host_sync).
        let mut store_args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(url) = store {
            let Some(key) = store_key else {
                let e = caw_auth::Error::Store {
                    reason: format!(
                        "store={url} needs store_key (create one with `caw auth store-key FILE`)"
                    ),
                };
                return Err(to_py_err(py, e, &OTHER));
            };
            store_args.extend([
                "--store".into(),
                url.into(),
                "--store-key".into(),
                key.into(),
            ]);
        }
        let command = |auth_dir: &std::path::Path| {
            let (program, leading) = match sync_command.split_first() {
                Some((program, leading)) => (PathBuf::from(program), leading),
                None => (auth_dir.join(caw_auth::bundle::BUNDLED_BINARY), &[][..]),
            };
            let mut args = leading.to_vec();
            args.extend(["auth", "sync", "--auth-dir"].map(std::ffi::OsString::from));
            args.push(auth_dir.into());
            args.extend(store_args);
            Ok(caw_auth::host_sync::SyncCommand { program, args })
        };
        py.detach(|| caw_auth::get_docker_flags(auth_dir.as_deref(), command))
            .map_err(|e| to_py_err(py, e, &OTHER))
    }

    /// The host sync in the foreground (`python -m caw auth sync`), until a
    /// stop signal, the auth dir's removal, or `idle_exit` seconds without a
    /// container (0: never). Returns why it ended. With `store` (and
    /// `store_key`), this machine's logins join the store shared by the
    /// user's machines.
    #[pyfunction]
    #[pyo3(signature = (*, auth_dir=None, idle_exit=600, refresh=true, verify=true, store=None, store_key=None, store_ca=None))]
    #[allow(clippy::too_many_arguments)]
    fn host_sync(
        py: Python<'_>,
        auth_dir: Option<PathBuf>,
        idle_exit: u64,
        refresh: bool,
        verify: bool,
        store: Option<String>,
        store_key: Option<PathBuf>,
        store_ca: Option<PathBuf>,
    ) -> PyResult<String> {
        let store = match (store, store_key) {
            (None, _) => None,
            (Some(url), Some(key_file)) => Some(caw_sync::host::StoreConfig {
                url,
                key_file,
                ca: store_ca,
                client_cert: None,
                user: None,
            }),
            (Some(url), None) => {
                let e = caw_auth::Error::Store {
                    reason: format!(
                        "store={url} needs store_key (create one with `caw auth store-key FILE`)"
                    ),
                };
                return Err(to_py_err(py, e, &OTHER));
            }
        };
        let auth_dir = caw_auth::auth_dir::resolve(auth_dir.as_deref())
            .map_err(|e| to_py_err(py, e, &OTHER))?;
        let opts = caw_sync::host::HostSyncOptions {
            auth_dir,
            idle_exit: (idle_exit > 0).then(|| std::time::Duration::from_secs(idle_exit)),
            check_every: std::time::Duration::from_secs(30),
            refresh: refresh.then(caw_sync::host::RefreshOptions::default),
            log_limit: caw_auth::host_sync::LOG_LIMIT,
            verify,
            store,
        };
        let exit = py
            .detach(|| caw_sync::host::run(&opts))
            .map_err(|e| to_py_err(py, e, &OTHER))?;
        Ok(format!("{exit:?}"))
    }

    /// Remove an auth dir; returns `("removed" | "missing", path)`.
    #[pyfunction]
    #[pyo3(signature = (*, auth_dir=None, force=false))]
    fn teardown(
        py: Python<'_>,
        auth_dir: Option<PathBuf>,
        force: bool,
    ) -> PyResult<(&'static str, Option<PathBuf>)> {
        let opts = caw_auth::TeardownOptions {
            auth_dir,
            force,
            dry_run: false,
        };
        let outcome = py
            .detach(|| caw_auth::teardown(&opts))
            .map_err(|e| to_py_err(py, e, &OTHER))?;
        Ok(match outcome {
            caw_auth::TeardownOutcome::Removed(p) => ("removed", Some(p)),
            caw_auth::TeardownOutcome::Missing(p) => ("missing", Some(p)),
            caw_auth::TeardownOutcome::WouldRemove(p) => ("would_remove", Some(p)),
            _ => ("done", None),
        })
    }
}

/// A status row as Python receives it (two tuples, flattened by `caw.auth`
/// into `AuthFileStatus`): the documented six fields, then the rest.
type StatusRow = (
    (String, String, String, String, bool, Option<String>),
    (
        String,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        bool,
    ),
);
