//! `caw auth teardown`: carry a newer login from `live/` to the host, then
//! remove an auth dir, and only an auth dir.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use crate::auth_dir::{self, Existing, LIVE_DIR};
use crate::credential::MAX_CREDENTIAL_BYTES;
use crate::manifest::Manifest;
use crate::{fs, fs_at, live, trusted, Error, Result};

/// What to tear down.
#[derive(Debug, Clone, Default)]
pub struct TeardownOptions {
    /// The auth dir; `None` means the default.
    pub auth_dir: Option<PathBuf>,
    /// Remove even when host files are symlinks into the auth dir, or
    /// containers are attached to it.
    pub force: bool,
    /// Only say what would be removed.
    pub dry_run: bool,
}

/// What teardown found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TeardownOutcome {
    /// There was nothing at the path.
    Missing(PathBuf),
    /// The auth dir was removed.
    Removed(PathBuf),
    /// Dry run: the auth dir would be removed.
    WouldRemove(PathBuf),
}

/// Remove the auth dir, after carrying a newer login from `live/` to the host.
///
/// Refuses (with [`Error::WouldOrphanSymlinks`]) when a host file of a
/// managed agent is a symlink resolving into the auth dir, the layout caw's
/// older design left, and (with [`Error::ContainersAttached`], naming them)
/// while containers' guards are attached to `live/`, unless `force`. Never
/// removes a directory that is not a caw auth dir (see
/// [`auth_dir::check_replaceable`]), `force` or not; an empty directory is
/// removed.
///
/// The host sync is stopped first. Then each credential in `live/` that
/// holds a usable login of the host's account, fresher than the host
/// file's (the sync's own judgement, [`crate::live`]), replaces the host
/// file by temp file + rename, keeping its mode and owner (a symlinked
/// host file is written at its target). Nothing older, logged out or of
/// another account is carried, and a host file that is missing is not
/// created. No other host file is touched.
pub fn teardown(opts: &TeardownOptions) -> Result<TeardownOutcome> {
    let auth_dir = auth_dir::resolve(opts.auth_dir.as_deref())?;
    let manifest = match auth_dir::check_replaceable(&auth_dir)? {
        Existing::Missing => return Ok(TeardownOutcome::Missing(auth_dir)),
        Existing::Empty => None,
        Existing::AuthDir(manifest) => Some(manifest),
    };
    if let (false, Some(manifest)) = (opts.force, &manifest) {
        let links = legacy_symlinks(&auth_dir, manifest);
        if !links.is_empty() {
            return Err(Error::WouldOrphanSymlinks { auth_dir, links });
        }
    }
    if let Some(attached) = crate::attached::attached(&auth_dir.join(LIVE_DIR)) {
        if !opts.force {
            return Err(Error::ContainersAttached { auth_dir, attached });
        }
        log::warn!(
            "{} container(s) are attached ({attached}): they keep the login they have, \
             but share no refresh any more",
            attached.count()
        );
    }
    if opts.dry_run {
        if let Some(manifest) = &manifest {
            for carry in newer_in_live(&auth_dir, manifest) {
                log::info!(
                    "would carry the newer {} login in `{}` to `{}`",
                    carry.agent,
                    carry.live.display(),
                    carry.host.display()
                );
            }
        }
        return Ok(TeardownOutcome::WouldRemove(auth_dir));
    }
    // Its sync first: it would otherwise see the auth dir go and exit by
    // itself, and nothing may write the host files while we do.
    if let Some(pid) = crate::host_sync::stop(&auth_dir)? {
        log::info!("stopped the host sync (pid {pid})");
    }
    if let Some(manifest) = &manifest {
        for carry in newer_in_live(&auth_dir, manifest) {
            match carry.write() {
                Ok(true) => log::info!(
                    "carried the newer {} login in `{}` to `{}`",
                    carry.agent,
                    carry.live.display(),
                    carry.host.display()
                ),
                Ok(false) => {}
                Err(e) => {
                    // The login would be lost with the auth dir: keep both.
                    return Err(e.into());
                }
            }
        }
    }
    fs_err::remove_dir_all(&auth_dir)?;
    Ok(TeardownOutcome::Removed(auth_dir))
}

/// A login in `live/` that should replace a host file's.
struct Carry {
    agent: &'static str,
    /// The live copy (for messages).
    live: PathBuf,
    /// The host file as the registry names it.
    host: PathBuf,
    /// Where a write lands: the host file, or its symlink's target.
    target: PathBuf,
    /// The live login's bytes.
    bytes: Vec<u8>,
    /// The host file's bytes it was judged against.
    judged: Vec<u8>,
}

/// The credentials in `auth_dir/live` fresher than their host files, by
/// the decision rules ([`live::live_is_fresher`]). `live/` is read as
/// hostile input: relative to its open directory, never through a link,
/// regular files of at most the credential cap only.
fn newer_in_live(auth_dir: &Path, manifest: &Manifest) -> Vec<Carry> {
    let live_dir = auth_dir.join(LIVE_DIR);
    let Ok(live) = fs_at::open_dir(&live_dir) else {
        return Vec::new();
    };
    let credentials = match trusted::credentials(manifest, auth_dir) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("not carrying any login from `{}`: {e}", live_dir.display());
            return Vec::new();
        }
    };
    let root = std::fs::canonicalize(auth_dir).unwrap_or_else(|_| auth_dir.to_path_buf());
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for c in credentials {
        let Some(bytes) = live::read(live.as_fd(), c.src) else {
            continue;
        };
        let target = host_target(&c.host);
        if target.starts_with(&root) || target.starts_with(auth_dir) {
            continue;
        }
        let Ok(judged) = fs::read_regular_following(&target, MAX_CREDENTIAL_BYTES) else {
            continue;
        };
        if live::live_is_fresher(c.agent.name, &bytes, &judged, now) {
            out.push(Carry {
                agent: c.agent.name,
                live: live_dir.join(c.src),
                host: c.host,
                target,
                bytes,
                judged,
            });
        }
    }
    out
}

impl Carry {
    /// Replace the host file by the live login, keeping its mode and owner;
    /// `false` when the host file changed since it was judged and is now no
    /// older (an agent on the host refreshed meanwhile).
    fn write(&self) -> std::io::Result<bool> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&self.target).map_err(|e| fs::with_path(e, &self.target))?;
        let still_older = match fs::read_regular_following(&self.target, MAX_CREDENTIAL_BYTES) {
            Ok(current) if current == self.judged => true,
            Ok(current) => {
                live::live_is_fresher(self.agent, &self.bytes, &current, jiff::Timestamp::now())
            }
            // Gone or replaced by something else meanwhile: not created.
            Err(_) => false,
        };
        if !still_older {
            return Ok(false);
        }
        // Only root can give a file away; anyone else writes as the owner.
        let owner = nix::unistd::geteuid()
            .is_root()
            .then(|| (meta.uid(), meta.gid()));
        fs::write_atomic(&self.target, &self.bytes, meta.mode() & 0o7777, owner)?;
        Ok(true)
    }
}

/// The file a write of the host credential `path` lands in: the path, or a
/// symlink's final target (a dotfile manager's link stays a link).
fn host_target(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => resolve_link(path).unwrap_or_else(|| path.into()),
        _ => path.to_path_buf(),
    }
}

/// Host files of the agents the manifest lists that are symlinks resolving
/// into `auth_dir`, as `(link, resolved target)` pairs. An empty directory
/// has none. Only the registry's paths are looked at, whatever the manifest
/// names.
pub fn find_legacy_symlinks(auth_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    match Manifest::load(auth_dir) {
        Ok(m) => Ok(legacy_symlinks(auth_dir, &m)),
        Err(Error::NoManifest { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn legacy_symlinks(auth_dir: &Path, manifest: &Manifest) -> Vec<(PathBuf, PathBuf)> {
    let root = std::fs::canonicalize(auth_dir).unwrap_or_else(|_| auth_dir.to_path_buf());
    let mut links = Vec::new();
    for host in trusted::host_files(manifest) {
        let is_link = std::fs::symlink_metadata(&host)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !is_link {
            continue;
        }
        let Some(target) = resolve_link(&host) else {
            continue;
        };
        if target.starts_with(&root) || target.starts_with(auth_dir) {
            links.push((host, target));
        }
    }
    links
}

/// Where a symlink points, resolved as far as the file system allows
/// (a dangling link still yields its lexical target).
fn resolve_link(link: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(link) {
        return Some(p);
    }
    let target = std::fs::read_link(link).ok()?;
    let joined = link.parent()?.join(target);
    let parent = joined.parent()?;
    let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    Some(parent.join(joined.file_name()?))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use nix::fcntl::{Flock, FlockArg};

    use super::*;
    use crate::{setup, AuthMode, SetupOptions};

    fn claude(tag: &str, hours: i64) -> String {
        let ms = (jiff::Timestamp::now().as_second() + hours * 3600) * 1000;
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"a-{tag}","refreshToken":"r-{tag}","expiresAt":{ms}}}}}"#
        )
    }

    fn codex(account: &str, hours: i64) -> String {
        use base64::Engine as _;
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let exp = jiff::Timestamp::now().as_second() + hours * 3600;
        let jwt = format!("{}.{}.sig", e("{}"), e(&format!(r#"{{"exp":{exp}}}"#)));
        format!(
            r#"{{"tokens":{{"access_token":"{jwt}","refresh_token":"r","account_id":"{account}"}}}}"#
        )
    }

    struct Env {
        _root: tempfile::TempDir,
        home: PathBuf,
        auth: PathBuf,
    }

    impl Env {
        /// A home logged in to claude (1 h) and codex (1 h, account `a`), set up in live mode.
        fn new() -> Env {
            let root = tempfile::tempdir().unwrap();
            let home = root.path().join("home");
            let write = |rel: &str, text: &str| {
                let path = home.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, text).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            };
            write(".claude.json", "{}");
            write(".claude/.credentials.json", &claude("host", 1));
            write(".codex/auth.json", &codex("a", 1));
            let auth = root.path().join("auth");
            setup(&SetupOptions {
                source_home: Some(home.clone()),
                auth_dir: Some(auth.clone()),
                mode: Some(AuthMode::Live),
                bundle_binary: Some(home.join("none")),
                ..SetupOptions::default()
            })
            .unwrap();
            Env {
                _root: root,
                home,
                auth,
            }
        }

        fn teardown(&self, force: bool, dry_run: bool) -> Result<TeardownOutcome> {
            teardown(&TeardownOptions {
                auth_dir: Some(self.auth.clone()),
                force,
                dry_run,
            })
        }

        fn live(&self, src: &str, text: &str) {
            std::fs::write(self.auth.join("live").join(src), text).unwrap();
        }

        fn host(&self, rel: &str) -> String {
            std::fs::read_to_string(self.home.join(rel)).unwrap()
        }
    }

    /// Issue 18, item 3: with the sync down, a container's newer login was
    /// only in `live/`, and teardown deleted it. It is carried to the host
    /// by rename, with the host file's mode; nothing older, logged out or of
    /// another account is.
    #[test]
    fn a_newer_login_in_live_is_carried_to_the_host() {
        let env = Env::new();
        let cred = env.home.join(".claude/.credentials.json");
        let before = std::fs::metadata(&cred).unwrap();
        let newer = claude("container", 7);
        env.live("claude/credentials.json", &newer);
        // Another account's codex login, fresher still: not carried.
        env.live("codex/auth.json", &codex("b", 9));
        let codex_before = env.host(".codex/auth.json");

        assert_eq!(
            env.teardown(false, true).unwrap(),
            TeardownOutcome::WouldRemove(env.auth.clone())
        );
        assert_ne!(
            env.host(".claude/.credentials.json"),
            newer,
            "a dry run wrote"
        );

        assert_eq!(
            env.teardown(false, false).unwrap(),
            TeardownOutcome::Removed(env.auth.clone())
        );
        assert_eq!(env.host(".claude/.credentials.json"), newer);
        let after = std::fs::metadata(&cred).unwrap();
        assert_eq!(
            (after.mode(), after.uid(), after.gid()),
            (before.mode(), before.uid(), before.gid())
        );
        assert_ne!(after.ino(), before.ino(), "not written by rename");
        assert_eq!(env.host(".codex/auth.json"), codex_before);
        let leftovers: Vec<_> = std::fs::read_dir(cred.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [".credentials.json"]);
    }

    #[test]
    fn older_logged_out_and_hostile_live_files_are_not_carried() {
        for (name, live) in [
            ("older", claude("older", -1)),
            (
                "logged out",
                r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#.into(),
            ),
            ("empty", "{}".into()),
            ("half written", r#"{"claudeAiOauth":{"#.into()),
            ("too far ahead", claude("far", 24 * 365 * 3)),
            (
                "held refresh token",
                claude("held", 7).replace("r-held", crate::credential::HELD_REFRESH_TOKEN),
            ),
        ] {
            let env = Env::new();
            let host = env.host(".claude/.credentials.json");
            env.live("claude/credentials.json", &live);
            env.teardown(false, false).unwrap();
            assert_eq!(env.host(".claude/.credentials.json"), host, "{name}");
        }
        // A link in live/ is not followed, a FIFO not read; a missing host
        // file is not created.
        let env = Env::new();
        let elsewhere = env.home.join("elsewhere.json");
        std::fs::write(&elsewhere, claude("link", 7)).unwrap();
        let live = env.auth.join("live/claude/credentials.json");
        std::fs::remove_file(&live).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &live).unwrap();
        let fifo = env.auth.join("live/codex/auth.json");
        std::fs::remove_file(&fifo).unwrap();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let host = env.host(".claude/.credentials.json");
        env.teardown(false, false).unwrap();
        assert_eq!(env.host(".claude/.credentials.json"), host);
        let env = Env::new();
        env.live("codex/auth.json", &codex("a", 9));
        std::fs::remove_file(env.home.join(".codex/auth.json")).unwrap();
        env.teardown(false, false).unwrap();
        assert!(!env.home.join(".codex/auth.json").exists());
    }

    /// A dotfile manager's link stays a link: the login lands at its target.
    #[test]
    fn a_symlinked_host_file_is_written_at_its_target() {
        let env = Env::new();
        let link = env.home.join(".claude/.credentials.json");
        let target = env.home.join("dotfiles/claude-credentials.json");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::rename(&link, &target).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let newer = claude("container", 7);
        env.live("claude/credentials.json", &newer);
        env.teardown(false, false).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), newer);
    }

    /// While a guard holds its lock on `live/`, teardown refuses, naming
    /// the holder; `force` removes it anyway, carrying the newer login.
    #[test]
    fn attached_containers_are_refused_unless_forced() {
        let env = Env::new();
        let newer = claude("container", 7);
        env.live("claude/credentials.json", &newer);
        let live = std::fs::File::open(env.auth.join("live")).unwrap();
        let guard = Flock::lock(live, FlockArg::LockShared).unwrap();
        for dry_run in [false, true] {
            match env.teardown(false, dry_run) {
                Err(e @ Error::ContainersAttached { .. }) => {
                    let me = std::process::id().to_string();
                    let text = e.to_string();
                    assert!(text.contains("1 container(s) are attached"), "{text}");
                    assert!(text.contains(&me) || text.contains("cannot see"), "{text}");
                    assert!(e.hint().unwrap().to_string().contains("`force`"));
                }
                other => panic!("not refused: {other:?}"),
            }
        }
        assert!(env.auth.exists());
        assert_ne!(env.host(".claude/.credentials.json"), newer);
        env.teardown(true, false).unwrap();
        assert!(!env.auth.exists());
        assert_eq!(env.host(".claude/.credentials.json"), newer);
        drop(guard);
    }
}
