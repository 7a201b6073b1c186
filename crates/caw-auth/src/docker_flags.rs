//! `caw auth docker-flags`: the `docker run` mounts for an auth dir.

use std::path::{Path, PathBuf};

use crate::manifest::{Manifest, Strategy};
use crate::{paths, Error, Result};

/// One bind mount: a host path and where it appears in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute host path.
    pub src: PathBuf,
    /// Absolute container path.
    pub dst: String,
}

/// How to print mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlagFormat {
    /// `-v SRC:DST:rw …` on one line (for `$(…)`).
    #[default]
    V,
    /// A JSON array of argument strings.
    Json,
    /// `--mount type=bind,src=…,dst=… …` on one line.
    Mount,
}

/// The mounts for `auth_dir`: the auth dir itself, then each bind file in manifest order.
///
/// Refuses a bind source missing on the host (docker would create a
/// root-owned directory there) and any path with white space or `:`, which
/// cannot survive `$(…)` word splitting or `-v` parsing.
pub fn docker_mounts(auth_dir: Option<&Path>) -> Result<Vec<Mount>> {
    let auth_dir = paths::absolute(&paths::resolve_auth_dir(auth_dir)?)?;
    let manifest = Manifest::load(&auth_dir)?;
    let mut mounts = vec![Mount {
        src: auth_dir.clone(),
        dst: manifest.mount_point.clone(),
    }];
    for (agent, file) in manifest.files() {
        if file.strategy != Strategy::Bind {
            continue;
        }
        let src = manifest.host_home.join(&file.host_original);
        match std::fs::metadata(&src) {
            Ok(m) if m.is_file() => {}
            _ => {
                return Err(Error::MissingBindSource {
                    agent: agent.to_string(),
                    path: src,
                })
            }
        }
        mounts.push(Mount {
            src,
            dst: format!("{}/{}", manifest.mount_point, file.src),
        });
    }
    for m in &mounts {
        check_mount_path(&m.src)?;
        check_mount_path(Path::new(&m.dst))?;
    }
    Ok(mounts)
}

/// Mounts printed in `format`, as one line without a trailing newline.
pub fn format_mounts(mounts: &[Mount], format: FlagFormat) -> String {
    match format {
        FlagFormat::V => mounts
            .iter()
            .map(|m| format!("-v {}:{}:rw", m.src.display(), m.dst))
            .collect::<Vec<_>>()
            .join(" "),
        FlagFormat::Mount => mounts
            .iter()
            .map(|m| format!("--mount type=bind,src={},dst={}", m.src.display(), m.dst))
            .collect::<Vec<_>>()
            .join(" "),
        FlagFormat::Json => {
            let args: Vec<String> = mounts
                .iter()
                .flat_map(|m| {
                    [
                        "-v".to_string(),
                        format!("{}:{}:rw", m.src.display(), m.dst),
                    ]
                })
                .collect();
            serde_json::to_string(&args).expect("strings serialise")
        }
    }
}

/// The documented one-line `-v` form.
pub fn get_docker_flags(auth_dir: Option<&Path>) -> Result<String> {
    Ok(format_mounts(&docker_mounts(auth_dir)?, FlagFormat::V))
}

fn check_mount_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let reason = if text.chars().any(char::is_whitespace) {
        "it contains white space"
    } else if text.contains(':') {
        "it contains `:`"
    } else if text.contains(',') {
        "it contains `,`"
    } else {
        return Ok(());
    };
    Err(Error::UnsafeMountPath {
        path: path.to_path_buf(),
        reason: reason.into(),
    })
}
