//! Which containers are attached to an auth dir's `live/`.
//!
//! A container's guard holds `flock(LOCK_SH)` on `A/live` for as long as it
//! runs (the caw guard, and the shell guard where the image has `flock`).
//! Whoever can take `LOCK_EX` on it knows that no guard is attached; the
//! holders are then named from `/proc/locks` (their pids, as this process's
//! pid namespace sees them) and, from each pid's cgroup, the Docker
//! container it runs in.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

/// The processes holding their lock on `live/`, by the container they run in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attached {
    /// Holders whose container is known: the container's short id (12 hex
    /// digits) and the pids in it.
    pub containers: BTreeMap<String, Vec<u32>>,
    /// Holders whose container cannot be told (not Docker's, or gone).
    pub pids: Vec<u32>,
    /// Whether the lock is held although no holder could be named (a pid
    /// namespace that hides them).
    pub unnamed: bool,
}

impl Attached {
    /// How many containers (or, for holders of no known container, processes).
    pub fn count(&self) -> usize {
        let named = self.containers.len() + self.pids.len();
        if named == 0 && self.unnamed {
            1
        } else {
            named
        }
    }
}

impl fmt::Display for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids = |pids: &[u32]| {
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts: Vec<String> = self
            .containers
            .iter()
            .map(|(id, p)| format!("container `{id}` (pid {})", pids(p)))
            .collect();
        parts.extend(self.pids.iter().map(|p| format!("pid {p}")));
        if parts.is_empty() {
            f.write_str("a process this pid namespace cannot see")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Who holds a lock on the directory `live`, or `None` when nobody does (or
/// `live` is missing).
///
/// The host sync takes `LOCK_EX` on `live/` for an instant each time it
/// checks, so a busy lock is tried again for a while before it counts.
pub fn attached(live: &Path) -> Option<Attached> {
    let dir = File::open(live).ok()?;
    let meta = dir.metadata().ok()?;
    if !meta.is_dir() {
        return None;
    }
    let mut dir = dir;
    for _ in 0..50 {
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            // Released on drop.
            Ok(_free) => return None,
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => dir = back,
            Err(_) => return None,
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let holders = holders(&locks, meta.dev(), meta.ino());
    let mut out = Attached::default();
    for pid in holders {
        match container_of(pid) {
            Some(id) => out.containers.entry(id).or_default().push(pid),
            None => out.pids.push(pid),
        }
    }
    out.unnamed = out.containers.is_empty() && out.pids.is_empty();
    Some(out)
}

/// The pids holding `flock`s on the inode `(dev, ino)`, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  READ  1234 fd:01:5678 0 EOF`; lines of waiters,
/// `1: -> FLOCK …`, are not holders).
fn holders(locks: &str, dev: u64, ino: u64) -> Vec<u32> {
    let want = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev), ino);
    let mut pids: Vec<u32> = locks
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, "FLOCK", _, _, pid, file, ..] = fields.as_slice() else {
                return None;
            };
            let mut parts = file.split(':');
            let major = u64::from_str_radix(parts.next()?, 16).ok()?;
            let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
            let inode = parts.next()?.parse::<u64>().ok()?;
            let pid = pid.parse::<u32>().ok().filter(|&p| p > 0)?;
            ((major, minor, inode) == want).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The Docker container `pid` runs in, as its short id, from its cgroup
/// (`0::/system.slice/docker-<id>.scope`, or `…:/docker/<id>` with cgroup v1).
fn container_of(pid: u32) -> Option<String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_in_cgroup(&cgroup)
}

fn container_in_cgroup(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.split('/').find_map(|part| {
            let id = part
                .strip_prefix("docker-")
                .and_then(|p| p.strip_suffix(".scope"))
                .unwrap_or(part);
            (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| id[..12].to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_read_from_proc_locks() {
        let locks = "\
1: FLOCK  ADVISORY  READ  4242 fd:01:1234 0 EOF
1: -> FLOCK  ADVISORY  WRITE 99 fd:01:1234 0 EOF
2: FLOCK  ADVISORY  READ  4243 fd:01:1234 0 EOF
3: FLOCK  ADVISORY  READ  777 fd:02:1234 0 EOF
4: POSIX  ADVISORY  READ  888 fd:01:1234 0 EOF
5: FLOCK  ADVISORY  READ  4242 fd:01:1234 0 EOF
6: FLOCK  ADVISORY  WRITE 5 00:2e:1234 0 EOF
";
        let dev = nix::sys::stat::makedev(0xfd, 1);
        assert_eq!(holders(locks, dev, 1234), [4242, 4243]);
        assert_eq!(holders(locks, nix::sys::stat::makedev(0, 0x2e), 1234), [5]);
        assert!(holders(locks, dev, 1).is_empty());
    }

    #[test]
    fn the_container_comes_from_the_cgroup() {
        let id = "3f2a1b4c5d6e".to_string() + &"0".repeat(52);
        for cgroup in [
            format!("0::/system.slice/docker-{id}.scope\n"),
            format!("12:pids:/docker/{id}\n11:cpu:/docker/{id}\n"),
            format!("0::/docker/{id}\n"),
        ] {
            assert_eq!(
                container_in_cgroup(&cgroup).as_deref(),
                Some("3f2a1b4c5d6e"),
                "{cgroup}"
            );
        }
        assert_eq!(
            container_in_cgroup("0::/user.slice/session-2.scope\n"),
            None
        );
        assert_eq!(container_in_cgroup("0::/docker/short\n"), None);
    }

    #[test]
    fn a_shared_lock_is_seen_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        std::fs::create_dir(&live).unwrap();
        assert_eq!(attached(&live), None);
        assert_eq!(attached(&dir.path().join("missing")), None);
        let held = Flock::lock(File::open(&live).unwrap(), FlockArg::LockSharedNonblock).unwrap();
        let found = attached(&live).expect("the shared lock is not seen");
        let me = std::process::id();
        let named =
            found.pids.contains(&me) || found.containers.values().flatten().any(|&p| p == me);
        assert!(named || found.unnamed, "{found:?}");
        assert_eq!(found.count(), 1);
        drop(held);
        assert_eq!(attached(&live), None);
    }
}
