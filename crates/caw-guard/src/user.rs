//! The agent user, read from `/etc/passwd` directly.
//!
//! A static glibc build must not call `getpwnam`: that loads NSS modules at
//! run time, which a static binary cannot do reliably and a minimal image
//! does not have. The file itself is all a container has anyway.

use std::path::Path;

use crate::{Error, Result};

/// The password database the container side reads.
pub const PASSWD: &str = "/etc/passwd";

/// A user from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id (field 4), which is what files are given: the group
    /// called like the user may not exist (Debian's `nobody` is in `nogroup`).
    pub gid: u32,
}

impl User {
    /// `(uid, gid)`, as [`caw_auth::fs::Owner`] wants it.
    pub fn owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }
}

/// Look `name` up in the passwd file at `passwd`.
pub fn lookup(name: &str, passwd: &Path) -> Result<User> {
    let text = fs_err::read_to_string(passwd)?;
    parse(&text, name).ok_or_else(|| Error::UnknownUser {
        user: name.to_string(),
        passwd: passwd.to_path_buf(),
    })
}

/// The first entry called `name` in passwd-format `text`.
pub fn parse(text: &str, name: &str) -> Option<User> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let mut f = line.split(':');
            if f.next()? != name {
                return None;
            }
            let _password = f.next()?;
            let uid = f.next()?.trim().parse().ok()?;
            let gid = f.next()?.trim().parse().ok()?;
            Some(User {
                name: name.to_string(),
                uid,
                gid,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment:x:9:9
sync:x:4:65534:sync:/bin:/bin/sync
playground:x:1000:1000::/home/playground:/bin/sh
broken:x:notanumber:1::/:/bin/sh
play:x:1001:1001::/home/play:/bin/sh
";

    #[test]
    fn primary_group_comes_from_the_passwd_entry() {
        let sync = parse(PASSWD_TEXT, "sync").unwrap();
        assert_eq!((sync.uid, sync.gid), (4, 65534));
    }

    #[test]
    fn names_match_exactly() {
        assert_eq!(parse(PASSWD_TEXT, "play").unwrap().uid, 1001);
        assert_eq!(parse(PASSWD_TEXT, "playground").unwrap().uid, 1000);
        assert_eq!(parse(PASSWD_TEXT, "pla"), None);
        assert_eq!(parse(PASSWD_TEXT, "# a comment"), None);
    }

    #[test]
    fn malformed_entries_are_not_users() {
        assert_eq!(parse(PASSWD_TEXT, "broken"), None);
        assert_eq!(parse("short:x:1\n", "short"), None);
    }

    #[test]
    fn unknown_user_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, PASSWD_TEXT).unwrap();
        let err = lookup("ghost", &path).unwrap_err().to_string();
        assert!(err.contains("ghost") && err.contains("passwd"), "{err}");
    }
}
