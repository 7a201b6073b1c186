//! Compare before commit: a temp file takes a name's place only while the
//! name still holds what the decision was based on.

use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;

use caw_auth::fs_at::{self as fsx, TempAt};

use super::{Commit, Fingerprint, Look};

/// How many times a commit hands back a file it displaced, when writers
/// keep replacing the destination, before it leaves the pair for the next event.
const MAX_GIVE_BACKS: usize = 4;

/// Put `tmp` at `name` in `dir` only while `name` still holds `expect`.
///
/// A plain compare-then-rename leaves a window in which a writer that
/// renames its own file into place just before ours is silently replaced:
/// a lost refresh. Here nothing is lost. A missing destination is created
/// with `RENAME_NOREPLACE`; an existing one is swapped in one step
/// (`RENAME_EXCHANGE`), and what it held an instant before is then checked:
/// when it was not what the decision was based on, it is swapped back, and
/// the caller decides again. Where the file system has neither (`EINVAL`),
/// it falls back to compare-then-rename.
pub(super) fn commit(
    mut tmp: TempAt<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    expect: Fingerprint,
) -> io::Result<Commit> {
    let now_at = |n: &OsStr| -> io::Result<Fingerprint> {
        let (kind, bytes) = fsx::read_at(dir, n)?;
        Ok(Look::from_kind(kind, bytes).fingerprint())
    };
    if expect == Fingerprint::Missing {
        return match tmp.commit_new(name) {
            Ok(()) => Ok(Commit::Done),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Commit::Changed),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                plain_commit(tmp, name, expect, now_at)
            }
            Err(e) => Err(e),
        };
    }
    // Cheap first look.
    if now_at(name)? != expect {
        return Ok(Commit::Changed);
    }
    // Nothing replaces a directory (a rename could not either).
    if fsx::is_dir_at(dir, name) {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is in the way",
        ));
    }
    let ours = now_at(tmp.name())?;
    match tmp.exchange(name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            return plain_commit(tmp, name, expect, now_at)
        }
        Err(e) => return Err(e),
    }
    for _ in 0..MAX_GIVE_BACKS {
        // The temp name now holds what `name` held when we swapped.
        if now_at(tmp.name())? == expect {
            return Ok(Commit::Done);
        }
        // Someone wrote `name` after we looked: give their file back.
        tmp.exchange(name)?;
        if now_at(tmp.name())? == ours {
            return Ok(Commit::Changed);
        }
        // And someone else wrote it again meanwhile: theirs is the one out now.
    }
    log::warn!(
        "`{}` keeps changing under caw; looking again at the next change",
        name.to_string_lossy()
    );
    Ok(Commit::Changed)
}

/// Compare, then rename: for file systems without `renameat2` flags.
fn plain_commit(
    tmp: TempAt<'_>,
    name: &OsStr,
    expect: Fingerprint,
    now_at: impl Fn(&OsStr) -> io::Result<Fingerprint>,
) -> io::Result<Commit> {
    if now_at(name)? != expect {
        return Ok(Commit::Changed);
    }
    tmp.commit(name)?;
    Ok(Commit::Done)
}
