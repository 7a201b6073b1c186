//! The agent user, read from `/etc/passwd` directly.
//!
//! A static glibc build must not call `getpwnam`: that loads NSS modules at
//! run time, which a static binary cannot do reliably and a minimal image
//! does not have. The file itself is all a container has anyway.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The password database the container side reads.
pub const PASSWD: &str = "/etc/passwd";
/// The group database, read for supplementary groups when the image has one.
pub const GROUP: &str = "/etc/group";

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
    /// Home directory (field 6), where `caw auth exec` puts the logins.
    pub home: PathBuf,
    /// Login shell (field 7); may be empty or name a file the image lacks.
    pub shell: String,
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

/// Look up a user as `docker run --user` takes one: a name or a uid,
/// optionally with `:group` (a gid, or a name from the group file beside
/// `passwd`), which then replaces the entry's primary group. A uid with no
/// name of its own is the first entry with that uid (an image's `USER 1000`).
pub fn lookup_name_or_uid(spec: &str, passwd: &Path) -> Result<User> {
    let (name, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let mut user = lookup_user(name, passwd)?;
    if let Some(group) = group {
        user.gid = match group.parse() {
            Ok(gid) => gid,
            Err(_) => {
                let file = passwd.with_file_name("group");
                let text = fs_err::read_to_string(&file).unwrap_or_default();
                group_id(&text, group).ok_or_else(|| Error::UnknownUser {
                    user: spec.to_string(),
                    passwd: file,
                })?
            }
        };
    }
    Ok(user)
}

/// The gid of the group called `name` in group-format `text`.
fn group_id(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.trim().parse().ok()
    })
}

/// A name, or a uid that has no entry called like it.
fn lookup_user(name: &str, passwd: &Path) -> Result<User> {
    let text = fs_err::read_to_string(passwd)?;
    parse(&text, name)
        .or_else(|| {
            let uid: u32 = name.parse().ok()?;
            text.lines()
                .filter_map(|l| parse(&text, l.split(':').next()?))
                .find(|u| u.uid == uid)
        })
        .ok_or_else(|| Error::UnknownUser {
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
            let _gecos = f.next();
            let home = PathBuf::from(f.next().unwrap_or_default());
            let shell = f.next().unwrap_or_default().to_string();
            Some(User {
                name: name.to_string(),
                uid,
                gid,
                home,
                shell,
            })
        })
}

/// The groups `user` is in: its primary group first, then each group of
/// the group file at `group` that lists it as a member (no duplicates).
///
/// A missing group file means no supplementary groups (a `FROM scratch`
/// image may have only `/etc/passwd`); any other read error is returned.
pub fn groups(user: &User, group: &Path) -> Result<Vec<u32>> {
    let text = match fs_err::read_to_string(group) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(parse_groups(&text, &user.name, user.gid))
}

/// [`groups`] over group-format `text`.
pub fn parse_groups(text: &str, name: &str, primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split(':');
        let (Some(_group), Some(_password), Some(gid), Some(members)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Ok(gid) = gid.trim().parse::<u32>() else {
            continue;
        };
        if members.split(',').any(|m| m.trim() == name) && !out.contains(&gid) {
            out.push(gid);
        }
    }
    out
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
    fn home_and_shell_come_from_fields_six_and_seven() {
        let u = parse(PASSWD_TEXT, "playground").unwrap();
        assert_eq!(u.home, PathBuf::from("/home/playground"));
        assert_eq!(u.shell, "/bin/sh");
        // A short entry (no shell field) is still a user, with no shell.
        let short = parse("x:x:5:6::/h\n", "x").unwrap();
        assert_eq!(
            (short.home, short.shell),
            (PathBuf::from("/h"), String::new())
        );
    }

    #[test]
    fn supplementary_groups_are_the_ones_listing_the_user() {
        let text = "\
root:x:0:
agents:x:1500:
docker:x:999:alice,playground
# comment:x:7:playground
audio:x:29: playground
video:x:44:playgrounder
bad:x:nan:playground
agents2:x:1500:playground
";
        assert_eq!(parse_groups(text, "playground", 1500), vec![1500, 999, 29]);
        assert_eq!(parse_groups("", "playground", 7), vec![7]);
    }

    #[test]
    fn a_missing_group_file_means_only_the_primary_group() {
        let dir = tempfile::tempdir().unwrap();
        let u = parse(PASSWD_TEXT, "sync").unwrap();
        assert_eq!(groups(&u, &dir.path().join("group")).unwrap(), vec![65534]);
    }

    #[test]
    fn a_uid_finds_the_entry_when_no_name_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, PASSWD_TEXT).unwrap();
        assert_eq!(lookup_name_or_uid("1001", &path).unwrap().name, "play");
        assert_eq!(lookup_name_or_uid("play", &path).unwrap().uid, 1001);
        assert!(lookup_name_or_uid("4242", &path).is_err());
    }

    #[test]
    fn unknown_user_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, PASSWD_TEXT).unwrap();
        let err = lookup("ghost", &path).unwrap_err().to_string();
        assert!(err.contains("ghost") && err.contains("passwd"), "{err}");
    }

    #[test]
    fn a_user_as_docker_run_takes_one() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("group"),
            "root:x:0:\nnode:x:1000:\nagents:x:1500:\n",
        )
        .unwrap();
        let passwd = etc.join("passwd");
        let get = |spec: &str| lookup_name_or_uid(spec, &passwd).map(|u| (u.name, u.uid, u.gid));
        assert_eq!(get("node").unwrap(), ("node".into(), 1000, 1000));
        assert_eq!(get("1000").unwrap(), ("node".into(), 1000, 1000));
        assert_eq!(get("0").unwrap(), ("root".into(), 0, 0));
        assert_eq!(get("1000:1500").unwrap(), ("node".into(), 1000, 1500));
        assert_eq!(get("node:agents").unwrap(), ("node".into(), 1000, 1500));
        assert!(get("1234").is_err());
        assert!(get("node:nogroup").is_err());
    }
}
