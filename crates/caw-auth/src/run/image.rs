//! What the engine says about an image: `USER`, `ENTRYPOINT` and `CMD`.

use std::ffi::OsStr;
use std::os::fd::AsFd as _;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// What `<engine> image inspect` says about an image.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `USER`, possibly empty.
    pub user: String,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
}

impl ImageConfig {
    /// From `<engine> image inspect --format '{{json .Config}}'`.
    pub fn from_json(text: &str) -> Result<ImageConfig, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let list = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(|l| l.as_array())
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(ImageConfig {
            user: v
                .get("User")
                .and_then(|u| u.as_str())
                .unwrap_or("")
                .to_string(),
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
        })
    }
}

/// `<program> image inspect`, pulling the image once when it is not there
/// (as `run` would; the pull's progress goes to stderr only).
pub fn inspect(program: &str, image: &OsStr) -> Result<ImageConfig> {
    let query = || {
        Command::new(program)
            .args(["image", "inspect", "--format", "{{json .Config}}"])
            .arg(image)
            .stdin(Stdio::null())
            .output()
    };
    let cannot = |e: std::io::Error| Error::EngineUnavailable {
        engine: program.to_string(),
        reason: e.to_string(),
    };
    let mut out = query().map_err(cannot)?;
    if !out.status.success() {
        let pulled = Command::new(program)
            .arg("pull")
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(cannot)?,
            ))
            .status()
            .map_err(cannot)?;
        if pulled.success() {
            out = query().map_err(cannot)?;
        }
    }
    let image_name = image.to_string_lossy().into_owned();
    if !out.status.success() {
        return Err(Error::ImageInspect {
            engine: program.to_string(),
            image: image_name,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    ImageConfig::from_json(&String::from_utf8_lossy(&out.stdout)).map_err(|reason| {
        Error::ImageInspect {
            engine: program.to_string(),
            image: image_name,
            reason: format!("cannot read its answer: {reason}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_reads_null_lists_as_empty() {
        let c =
            ImageConfig::from_json(r#"{"User":"node","Entrypoint":null,"Cmd":["a","b"]}"#).unwrap();
        assert_eq!(
            c,
            ImageConfig {
                user: "node".into(),
                entrypoint: vec![],
                cmd: vec!["a".into(), "b".into()]
            }
        );
    }
}
