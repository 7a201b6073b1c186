//! SELinux labels on caw's mounts.
//!
//! On an SELinux-enforcing host a container may not read a bind mount
//! unless it carries a label the container's policy allows. caw adds `z`
//! (the shared label: every container of the auth dir reads it) to its
//! `-v` mounts when `/sys/fs/selinux/enforce` is `1`; `--selinux-label
//! none|z` overrides the guess. Untested on a real SELinux host (see
//! `docs/docker.md`).

use std::path::Path;

use crate::{Error, OptionName, Result};

/// Where the kernel says whether SELinux enforces.
pub const ENFORCE_FILE: &str = "/sys/fs/selinux/enforce";

/// The label caw puts on its mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// No label option.
    None,
    /// `z`: the shared label.
    Shared,
}

impl Label {
    /// `given` (`none` or `z`), else [`Label::Shared`] when SELinux enforces
    /// (as `enforce_file` says), else [`Label::None`].
    pub fn choose(given: Option<&str>, enforce_file: &Path) -> Result<Label> {
        match given {
            Some("none") => Ok(Label::None),
            Some("z") => Ok(Label::Shared),
            Some(other) => Err(Error::InvalidOption {
                option: OptionName::SelinuxLabel,
                value: other.to_string(),
                reason: "expected `none` or `z`".into(),
            }),
            None => Ok(
                match std::fs::read_to_string(enforce_file).map(|t| t.trim() == "1") {
                    Ok(true) => Label::Shared,
                    _ => Label::None,
                },
            ),
        }
    }

    /// Add the label to the `-v` values of `args` (as [`crate::mount_args`]
    /// gives them): `SRC:DST:ro` becomes `SRC:DST:ro,z`. `--mount` values
    /// are left alone (Docker has no label option there).
    pub fn apply(self, args: &mut [String]) {
        if self == Label::None {
            return;
        }
        let mut after_v = false;
        for arg in args.iter_mut() {
            if after_v {
                arg.push_str(",z");
            }
            after_v = arg == "-v";
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforcing_hosts_get_the_shared_label_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let enforce = dir.path().join("enforce");
        let missing = dir.path().join("missing");
        assert_eq!(Label::choose(None, &missing).unwrap(), Label::None);
        std::fs::write(&enforce, "0").unwrap();
        assert_eq!(Label::choose(None, &enforce).unwrap(), Label::None);
        std::fs::write(&enforce, "1").unwrap();
        assert_eq!(Label::choose(None, &enforce).unwrap(), Label::Shared);
        assert_eq!(Label::choose(Some("none"), &enforce).unwrap(), Label::None);
        assert_eq!(Label::choose(Some("z"), &missing).unwrap(), Label::Shared);
        assert!(Label::choose(Some("Z"), &missing).is_err());
    }

    #[test]
    fn the_label_goes_on_every_v_mount() {
        let mut args: Vec<String> = ["-v", "/a:/m:ro", "-v", "/a/live:/m/live:rw"]
            .map(String::from)
            .to_vec();
        Label::None.apply(&mut args);
        assert_eq!(args[1], "/a:/m:ro");
        Label::Shared.apply(&mut args);
        assert_eq!(args, ["-v", "/a:/m:ro,z", "-v", "/a/live:/m/live:rw,z"]);
    }
}
