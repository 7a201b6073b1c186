//! Where things are by default: the host home and the auth dir.

use std::path::{Path, PathBuf};

use crate::hint::OptionName;
use crate::{Error, Result};

/// The environment variable that overrides the default auth dir.
pub const AUTH_DIR_ENV: &str = "CAW_AUTH_DIR";

/// The current user's home: `$HOME`.
pub fn home_dir() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => Err(Error::InvalidOption {
            option: OptionName::Home,
            value: String::new(),
            reason: "is not set; pass the home explicitly".into(),
        }),
    }
}

/// The auth dir to use when none is given: `$CAW_AUTH_DIR` (with `~`
/// expanded), else `~/.caw/auth`. Read at call time. Commands resolve the
/// auth dir with [`crate::auth_dir::resolve`], which also makes it absolute.
pub fn default_auth_dir() -> Result<PathBuf> {
    match std::env::var_os(AUTH_DIR_ENV) {
        Some(v) if !v.is_empty() => expand_tilde(Path::new(&v)),
        _ => Ok(home_dir()?.join(".caw").join("auth")),
    }
}

/// Expand a leading `~` or `~/` to the home directory.
pub fn expand_tilde(path: &Path) -> Result<PathBuf> {
    match path.strip_prefix("~") {
        Ok(rest) => Ok(home_dir()?.join(rest)),
        Err(_) => Ok(path.to_path_buf()),
    }
}

/// `path` made absolute against the current directory, without resolving symlinks.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| crate::fs::with_path(e, path).into())
}
