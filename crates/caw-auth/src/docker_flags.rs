//! `caw auth docker-flags`: the `docker run` mounts for an auth dir.
//!
//! The auth dir reaches the container read-only in every mode and form; the
//! only writable mounts are the credential channel: `A/live` in live mode,
//! each host credential file in bind mode. Host paths come only from the
//! agent registry (see [`crate::trusted`]), never from the manifest's text.

use std::path::{Path, PathBuf};

use crate::auth_dir::{self, LIVE_DIR};
pub use crate::flag_format::FlagFormat;
use crate::host_sync::{self, SyncCommand};
use crate::manifest::{AuthMode, Manifest};
use crate::selinux::Label;
use crate::{trusted, Error, Result};

/// One bind mount: a host path and where it appears in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute host path.
    pub src: PathBuf,
    /// Absolute container path.
    pub dst: String,
    /// Whether the container may only read it.
    pub read_only: bool,
}

/// The mounts of an auth dir, and what they were computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerMounts {
    /// The auth dir, absolute.
    pub auth_dir: PathBuf,
    /// The manifest's mode.
    pub mode: AuthMode,
    /// The auth dir itself (read-only) first, then the credential channel.
    pub mounts: Vec<Mount>,
}

/// The mounts for `auth_dir` (default: see [`auth_dir::resolve`]).
///
/// Live mode: the auth dir read-only and `A/live` read-write. Bind mode: the
/// auth dir read-only, then each credential's host file read-write over its
/// snapshot, in manifest order. Refuses a manifest naming a path the registry
/// does not, a missing `A/live`, and a host credential missing on the host
/// (docker would create a root-owned directory there).
pub fn docker_mounts(auth_dir: Option<&Path>) -> Result<DockerMounts> {
    let auth_dir = auth_dir::resolve(auth_dir)?;
    let manifest = Manifest::load(&auth_dir)?;
    let credentials = trusted::credentials(&manifest, &auth_dir)?;
    let mut mounts = vec![Mount {
        src: auth_dir.clone(),
        dst: manifest.mount_point.clone(),
        read_only: true,
    }];
    match manifest.mode {
        AuthMode::Live => {
            let live = auth_dir.join(LIVE_DIR);
            if !std::fs::symlink_metadata(&live).is_ok_and(|m| m.is_dir()) {
                return Err(Error::MissingLiveDir { path: live });
            }
            mounts.push(Mount {
                src: live,
                dst: format!("{}/{LIVE_DIR}", manifest.mount_point),
                read_only: false,
            });
        }
        AuthMode::Bind => {
            for credential in credentials {
                if !std::fs::metadata(&credential.host).is_ok_and(|m| m.is_file()) {
                    return Err(Error::MissingBindSource {
                        agent: credential.agent.name.to_string(),
                        path: credential.host,
                    });
                }
                mounts.push(Mount {
                    src: credential.host,
                    dst: format!("{}/{}", manifest.mount_point, credential.src),
                    read_only: false,
                });
            }
        }
    }
    Ok(DockerMounts {
        auth_dir,
        mode: manifest.mode,
        mounts,
    })
}

/// Mounts printed in `format`, as one line without a trailing newline.
///
/// Refuses ([`Error::UnsafeMountPath`]) a path that cannot survive the form,
/// and a path that is not UTF-8 (it could not be printed as it is).
pub fn format_mounts(mounts: &[Mount], format: FlagFormat) -> Result<String> {
    format_labeled_mounts(mounts, format, Label::None)
}

/// [`format_mounts`] with the SELinux `label` on each `-v` mount (the `v`
/// and `json` forms; Docker's `--mount` has no label option).
pub fn format_labeled_mounts(mounts: &[Mount], format: FlagFormat, label: Label) -> Result<String> {
    let mut args = mount_args(mounts, format)?;
    label.apply(&mut args);
    Ok(match format {
        FlagFormat::V | FlagFormat::Mount => args.join(" "),
        FlagFormat::Json => serde_json::to_string(&args).expect("strings serialise"),
    })
}

/// Mounts as separate arguments (`-v`, `SRC:DST:ro`, … or `--mount`,
/// `type=bind,…`; `json` gives the `-v` pairs), each path checked against
/// `format`'s rule as in [`format_mounts`].
pub fn mount_args(mounts: &[Mount], format: FlagFormat) -> Result<Vec<String>> {
    let mut args = Vec::with_capacity(2 * mounts.len());
    for m in mounts {
        let src = mount_text(&m.src, format)?;
        let dst = mount_text(Path::new(&m.dst), format)?;
        let (flag, value) = match (format, m.read_only) {
            (FlagFormat::V | FlagFormat::Json, true) => ("-v", format!("{src}:{dst}:ro")),
            (FlagFormat::V | FlagFormat::Json, false) => ("-v", format!("{src}:{dst}:rw")),
            (FlagFormat::Mount, true) => {
                ("--mount", format!("type=bind,src={src},dst={dst},readonly"))
            }
            (FlagFormat::Mount, false) => ("--mount", format!("type=bind,src={src},dst={dst}")),
        };
        args.push(flag.to_string());
        args.push(value);
    }
    Ok(args)
}

/// The documented one-line `-v` form. **Starts a process**: makes sure the
/// host sync runs in the background, started with `sync_command` (see
/// [`host_sync::ensure`], which also says why a failure to start it is only
/// a warning).
pub fn get_docker_flags(
    auth_dir: Option<&Path>,
    sync_command: impl FnOnce(&Path) -> std::io::Result<SyncCommand>,
) -> Result<String> {
    let mounts = docker_mounts(auth_dir)?;
    // As `caw auth docker-flags` does: `,z` where SELinux enforces.
    let label = crate::selinux::Label::choose(None, Path::new(crate::selinux::ENFORCE_FILE))?;
    let line = format_labeled_mounts(&mounts.mounts, FlagFormat::V, label)?;
    host_sync::ensure(&mounts.auth_dir, mounts.mode, sync_command);
    Ok(line)
}

fn mount_text(path: &Path, format: FlagFormat) -> Result<&str> {
    let unsafe_path = |reason: String| Error::UnsafeMountPath {
        path: path.to_path_buf(),
        format,
        reason,
    };
    let text = path
        .to_str()
        .ok_or_else(|| unsafe_path("it is not valid UTF-8".into()))?;
    match format.check(text) {
        Some(reason) => Err(unsafe_path(reason)),
        None => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(src: &str) -> Vec<Mount> {
        vec![
            Mount {
                src: src.into(),
                dst: "/tmp/caw_auth".into(),
                read_only: true,
            },
            Mount {
                src: format!("{src}/live").into(),
                dst: "/tmp/caw_auth/live".into(),
                read_only: false,
            },
        ]
    }

    #[test]
    fn the_auth_dir_is_read_only_in_every_form() {
        let m = mounts("/h/.caw/auth");
        assert_eq!(
            format_mounts(&m, FlagFormat::V).unwrap(),
            "-v /h/.caw/auth:/tmp/caw_auth:ro -v /h/.caw/auth/live:/tmp/caw_auth/live:rw"
        );
        assert_eq!(
            format_mounts(&m, FlagFormat::Json).unwrap(),
            r#"["-v","/h/.caw/auth:/tmp/caw_auth:ro","-v","/h/.caw/auth/live:/tmp/caw_auth/live:rw"]"#
        );
        assert_eq!(
            format_mounts(&m, FlagFormat::Mount).unwrap(),
            "--mount type=bind,src=/h/.caw/auth,dst=/tmp/caw_auth,readonly \
             --mount type=bind,src=/h/.caw/auth/live,dst=/tmp/caw_auth/live"
        );
    }

    #[test]
    fn each_form_refuses_what_it_cannot_carry() {
        let cases = [
            ("/a b", [false, true, false]),
            ("/a\tb", [false, true, false]),
            ("/a:b", [false, false, true]),
            ("/a,b", [true, true, false]),
            ("/a\"b", [true, true, false]),
            ("/a=b", [true, true, true]),
        ];
        for (path, ok) in cases {
            for (format, ok) in [FlagFormat::V, FlagFormat::Json, FlagFormat::Mount]
                .into_iter()
                .zip(ok)
            {
                let out = format_mounts(&mounts(path), format);
                assert_eq!(out.is_ok(), ok, "{path:?} in {format:?}: {out:?}");
            }
        }
        let err = format_mounts(&mounts("/a b"), FlagFormat::V).unwrap_err();
        assert_eq!(
            err.to_string(),
            "path `/a b` cannot be used in a docker mount flag (v): it contains white space"
        );
    }

    #[test]
    fn the_selinux_label_goes_on_the_v_and_json_forms() {
        let m = mounts("/h/a");
        assert_eq!(
            format_labeled_mounts(&m, FlagFormat::V, Label::Shared).unwrap(),
            "-v /h/a:/tmp/caw_auth:ro,z -v /h/a/live:/tmp/caw_auth/live:rw,z"
        );
        assert_eq!(
            format_labeled_mounts(&m, FlagFormat::Json, Label::Shared).unwrap(),
            r#"["-v","/h/a:/tmp/caw_auth:ro,z","-v","/h/a/live:/tmp/caw_auth/live:rw,z"]"#
        );
        assert_eq!(
            format_labeled_mounts(&m, FlagFormat::Mount, Label::Shared).unwrap(),
            format_mounts(&m, FlagFormat::Mount).unwrap()
        );
    }

    #[test]
    fn json_keeps_white_space_intact() {
        let out = format_mounts(&mounts("/home/a b/auth"), FlagFormat::Json).unwrap();
        let args: Vec<String> = serde_json::from_str(&out).unwrap();
        assert_eq!(args[1], "/home/a b/auth:/tmp/caw_auth:ro");
    }

    #[test]
    fn a_non_utf8_path_is_refused() {
        use std::os::unix::ffi::OsStrExt as _;
        let src = PathBuf::from(std::ffi::OsStr::from_bytes(b"/a\xffb"));
        let m = vec![Mount {
            src,
            dst: "/m".into(),
            read_only: true,
        }];
        for format in [FlagFormat::V, FlagFormat::Json, FlagFormat::Mount] {
            let err = format_mounts(&m, format).unwrap_err().to_string();
            assert!(err.contains("not valid UTF-8"), "{err}");
        }
    }
}
