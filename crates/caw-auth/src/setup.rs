//! `caw auth setup`: collect, clean and write a new auth dir, all or nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::agents::{self, Agent, CleanContext};
use crate::auth_dir::{self, Existing, LIVE_DIR, OLD_TREE};
use crate::bundle::{self, BUNDLED_BINARY, SETUP_SCRIPT, STATIC_BINARY_ENV};
use crate::hint::OptionName;
use crate::live::{self, LiveCredential};
use crate::manifest::{
    check_absolute, AgentEntry, AuthMode, FileType, Manifest, ManifestFile, Mode, Strategy,
    DEFAULT_CONTAINER_HOME, DEFAULT_MODE, DEFAULT_MOUNT_POINT, MANIFEST_FILE,
};
use crate::{fs, paths, Error, Result};

/// What to set up, and where. `Default` gives the documented defaults.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    /// Agent names; empty or containing `all` means every agent. Entries may be comma-separated.
    pub agents: Vec<String>,
    /// Home to read credentials from; `None` means `$HOME`.
    pub source_home: Option<PathBuf>,
    /// Auth dir to write; `None` means `$CAW_AUTH_DIR`, else `~/.caw/auth`.
    pub auth_dir: Option<PathBuf>,
    /// Agent user's home in the container; `None` means `/home/playground`.
    pub container_home: Option<String>,
    /// Where the auth dir is mounted in the container; `None` means `/tmp/caw_auth`.
    pub mount_point: Option<String>,
    /// How credentials reach containers; `None` means [`DEFAULT_MODE`].
    pub mode: Option<AuthMode>,
    /// Container directories to mark trusted for Claude and Codex, besides
    /// the container home (absolute, like the container home).
    pub trust: Vec<String>,
    /// A static Linux `caw` built into the running program (the CLI and
    /// the Python extension embed one), bundled when neither
    /// `bundle_binary`, `$CAW_STATIC_BINARY` nor a static running
    /// executable gives one.
    pub embedded_binary: Option<&'static [u8]>,
    /// A static Linux `caw` to bundle as `bin/caw`; `None` means
    /// `$CAW_STATIC_BINARY`, else the running executable when it is static.
    pub bundle_binary: Option<PathBuf>,
    /// Containers get each login with its refresh token replaced by a
    /// marker; only the host (its sync) refreshes. Live mode only.
    pub hold_refresh_token: bool,
}

/// What `setup` did.
#[derive(Debug, Clone)]
pub struct SetupReport {
    /// The auth dir, absolute.
    pub auth_dir: PathBuf,
    /// The manifest written.
    pub manifest: Manifest,
    /// Agents left out because required files were missing, with those files.
    pub skipped: Vec<(String, Vec<String>)>,
    /// Whether `bin/caw` was bundled.
    pub bundled_binary: bool,
}

/// A file to write into the new auth dir.
struct Staged {
    agent: &'static str,
    src: String,
    bytes: Vec<u8>,
    mode: Mode,
    credential: bool,
}

/// The options, checked and with their defaults filled in.
struct Target {
    host_home: PathBuf,
    auth_dir: PathBuf,
    container_home: String,
    mount_point: String,
    mode: AuthMode,
    trust: Vec<String>,
}

impl Target {
    fn resolve(opts: &SetupOptions) -> Result<Target> {
        let host_home = match &opts.source_home {
            Some(h) => paths::absolute(&paths::expand_tilde(h)?)?,
            None => paths::home_dir()?,
        };
        let target = Target {
            auth_dir: auth_dir::resolve(opts.auth_dir.as_deref())?,
            container_home: container_path(
                OptionName::ContainerHome,
                &opts.container_home,
                DEFAULT_CONTAINER_HOME,
            )?,
            mount_point: container_path(
                OptionName::MountPoint,
                &opts.mount_point,
                DEFAULT_MOUNT_POINT,
            )?,
            mode: opts.mode.unwrap_or(DEFAULT_MODE),
            trust: opts
                .trust
                .iter()
                .map(|dir| container_path(OptionName::Trust, &Some(dir.clone()), ""))
                .collect::<Result<_>>()?,
            host_home,
        };
        if !target.host_home.is_dir() {
            return Err(Error::InvalidOption {
                option: OptionName::SourceHome,
                value: target.host_home.display().to_string(),
                reason: "is not a directory".into(),
            });
        }
        Ok(target)
    }
}

/// Snapshot credentials and cleaned configs into an auth dir.
///
/// Host files are only read. Everything is read, parsed and cleaned before
/// anything is written; the new auth dir is then built beside the old one and
/// swapped in when complete, so any failure leaves an existing auth dir exactly
/// as it was. In live mode an existing `live/` directory is carried over
/// (same inode, so running containers keep it); each of its credentials is
/// then kept when fresher than the host's, else replaced by the host's.
/// Progress and warnings go to the `log` facade.
pub fn setup(opts: &SetupOptions) -> Result<SetupReport> {
    let target = Target::resolve(opts)?;
    let selected = agents::select(&opts.agents)?;
    // Before looking at the home: a directory that is not an auth dir is
    // refused at once (and checked again just before it is replaced).
    auth_dir::check_replaceable(&target.auth_dir)?;
    // Where agents whose files an environment variable moves keep them now.
    let config_dirs: BTreeMap<String, PathBuf> = selected
        .iter()
        .filter_map(|a| {
            Some((
                a.name.to_string(),
                paths::absolute(&a.config_dir_from_env()?).ok()?,
            ))
        })
        .collect();
    let (usable, skipped) = usable_agents(selected, &target.host_home, &config_dirs)?;
    let ctx = CleanContext {
        container_home: &target.container_home,
        trusted: &target.trust,
    };
    let mut staged = Vec::new();
    let mut entries = Vec::new();
    for agent in usable {
        let dir = config_dirs.get(agent.name).map(PathBuf::as_path);
        let (entry, files) = collect_agent(
            agent,
            |rel| agent.host_path(&target.host_home, dir, rel),
            &ctx,
        )?;
        log::info!(
            "{}: {}",
            agent.name,
            entry
                .files
                .iter()
                .map(|f| format!("{} ({})", f.host_original, f.file_type))
                .collect::<Vec<_>>()
                .join(", ")
        );
        staged.extend(files);
        entries.push((agent.name.to_string(), entry));
    }
    if opts.hold_refresh_token {
        hold_refresh_tokens(&mut staged, target.mode)?;
    }
    let manifest = Manifest {
        mode: target.mode,
        created_at: jiff::Timestamp::now().to_string(),
        config_dirs: config_dirs
            .into_iter()
            .filter(|(name, _)| entries.iter().any(|(n, _)| n == name))
            .collect(),
        host_home: target.host_home,
        container_home: target.container_home,
        mount_point: target.mount_point,
        agents: entries,
        hold_refresh_token: opts.hold_refresh_token,
    };
    let binary = bundle_source(opts);
    write_auth_dir(&target.auth_dir, &manifest, &staged, binary.as_ref())?;
    log::info!("auth dir written to `{}`", target.auth_dir.display());
    Ok(SetupReport {
        auth_dir: target.auth_dir,
        manifest,
        skipped,
        bundled_binary: binary.is_some(),
    })
}

/// What reaches the auth dir (the snapshot, which containers can read, and
/// `live/`) of each credential: its refresh tokens replaced by a marker.
fn hold_refresh_tokens(staged: &mut [Staged], mode: AuthMode) -> Result<()> {
    if mode != AuthMode::Live {
        return Err(Error::InvalidOption {
            option: OptionName::HoldRefreshToken,
            value: String::new(),
            reason: format!(
                "needs live mode, not `{}`: in bind mode containers get the host's own file",
                mode.as_str()
            ),
        });
    }
    for file in staged.iter_mut().filter(|f| f.credential) {
        let agent = agents::by_name(file.agent).expect("staged from the registry");
        if let Some(held) = crate::credential::hold(agent, &file.bytes) {
            file.bytes = held;
        }
    }
    Ok(())
}

/// The selected agents whose required files are in `home`, and the others
/// with what they miss (warned about). No usable agent is an error.
#[allow(clippy::type_complexity)]
fn usable_agents(
    selected: Vec<&'static Agent>,
    home: &Path,
    config_dirs: &BTreeMap<String, PathBuf>,
) -> Result<(Vec<&'static Agent>, Vec<(String, Vec<String>)>)> {
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    let mut warnings = Vec::new();
    for agent in selected {
        let missing = agent.missing(home, config_dirs.get(agent.name).map(PathBuf::as_path));
        if missing.is_empty() {
            usable.push(agent);
            continue;
        }
        // Relative to the home for the error, in full for the warning.
        let show = |alternatives: &Vec<PathBuf>, full: bool| {
            alternatives
                .iter()
                .map(|p| match (full, p.strip_prefix(home)) {
                    (false, Ok(rel)) => rel.display().to_string(),
                    (true, _) => format!("`{}`", p.display()),
                    (false, Err(_)) => p.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(" or ")
        };
        warnings.push(format!(
            "skipping {}: missing {}",
            agent.name,
            missing
                .iter()
                .map(|m| show(m, true))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        skipped.push((
            agent.name.to_string(),
            missing.iter().map(|m| show(m, false)).collect(),
        ));
    }
    if usable.is_empty() {
        return Err(Error::NoUsableAgent {
            home: home.to_path_buf(),
            missing: skipped,
        });
    }
    for warning in warnings {
        log::warn!("{warning}");
    }
    Ok((usable, skipped))
}

/// A container path option: absolute, normalised, and without white space,
/// `:` or `,`, which no form of the docker flags (nor the setup script's
/// arguments) can carry.
fn container_path(option: OptionName, given: &Option<String>, default: &str) -> Result<String> {
    let value = given.as_deref().unwrap_or(default);
    let value = if value.len() > 1 {
        value.trim_end_matches('/')
    } else {
        value
    };
    let bad = |reason: String| Error::InvalidOption {
        option,
        value: value.to_string(),
        reason,
    };
    check_absolute(value).map_err(bad)?;
    if value.chars().any(char::is_whitespace) {
        return Err(bad("must not contain white space".into()));
    }
    if let Some(c) = value.chars().find(|c| matches!(c, ':' | ',')) {
        return Err(bad(format!("must not contain `{c}`")));
    }
    Ok(value.to_string())
}

/// Read, validate and clean one agent's files, found on the host by `locate`.
fn collect_agent(
    agent: &Agent,
    locate: impl Fn(&str) -> PathBuf,
    ctx: &CleanContext<'_>,
) -> Result<(AgentEntry, Vec<Staged>)> {
    let mut entry = AgentEntry::default();
    let mut staged = Vec::new();

    let cred_path = locate(agent.credential);
    let bytes = fs_err::read(&cred_path)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidInput {
            path: cred_path.clone(),
            reason: e.to_string(),
        })?;
    if !value.is_object() {
        return Err(Error::InvalidInput {
            path: cred_path,
            reason: "expected a JSON object".into(),
        });
    }
    entry.files.push(ManifestFile {
        src: agent.credential_src.to_string(),
        container_target: agent.credential.to_string(),
        host_original: agent.credential.to_string(),
        file_type: FileType::Credential,
        strategy: Strategy::Bind,
        mode: Mode::Private,
    });
    staged.push(Staged {
        agent: agent.name,
        src: agent.credential_src.to_string(),
        bytes,
        mode: Mode::Private,
        credential: true,
    });

    for config in agent.configs {
        let Some(candidate) = config.candidates.iter().find(|c| locate(c.host).is_file()) else {
            continue;
        };
        let path = locate(candidate.host);
        // Configs holding account data stay private in the container too.
        let mode = if config.private {
            Mode::Private
        } else {
            Mode::Public
        };
        let raw = fs_err::read(&path)?;
        let cleaned = agent
            .clean(candidate, &raw, ctx)
            .map_err(|reason| Error::InvalidInput { path, reason })?;
        entry.files.push(ManifestFile {
            src: candidate.src.to_string(),
            container_target: candidate.target.to_string(),
            host_original: candidate.host.to_string(),
            file_type: FileType::Config,
            strategy: Strategy::Copy,
            mode,
        });
        staged.push(Staged {
            agent: agent.name,
            src: candidate.src.to_string(),
            bytes: cleaned,
            mode,
            credential: false,
        });
    }
    Ok((entry, staged))
}

/// The static binary to bundle, if any: `bundle_binary`, else
/// `$CAW_STATIC_BINARY`, else the running executable when it is static,
/// else the embedded one.
fn bundle_source(opts: &SetupOptions) -> Option<bundle::Binary<'static>> {
    let explicit = opts.bundle_binary.clone().or_else(|| {
        std::env::var_os(STATIC_BINARY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = explicit {
        if bundle::is_static_linux_executable(&path) {
            return Some(bundle::Binary::Path(path));
        }
        log::warn!(
            "`{}` is not a static Linux executable; not bundled (the container will use the shell guard)",
            path.display()
        );
        return None;
    }
    if let Some(exe) = std::env::current_exe()
        .ok()
        .filter(|exe| bundle::is_static_linux_executable(exe))
    {
        return Some(bundle::Binary::Path(exe));
    }
    opts.embedded_binary
        .filter(|b| bundle::is_static_linux_bytes(b))
        .map(bundle::Binary::Bytes)
}

/// Put the complete tree `new` at `auth_dir`, leaving any previous auth dir at `new`.
///
/// A second `setup` may create `auth_dir` between our check and the rename;
/// the check and swap are then repeated against what it left.
fn swap_in(new: &Path, auth_dir: &Path, mut exists: bool) -> Result<()> {
    let parent = auth_dir.parent().unwrap_or(Path::new("."));
    for _ in 0..3 {
        if exists {
            if fs::exchange(new, auth_dir)? {
                return Ok(());
            }
            // No RENAME_EXCHANGE here: move the old tree aside, then rename.
            let [_, old_prefix] = auth_dir::temp_prefixes(auth_dir);
            let old = auth_dir::temp_dir(parent, &old_prefix)?;
            let old_path = old.path().join(OLD_TREE);
            fs_err::rename(auth_dir, &old_path)?;
            if let Err(e) = fs_err::rename(new, auth_dir) {
                let _ = std::fs::rename(&old_path, auth_dir);
                return Err(e.into());
            }
            return Ok(());
        }
        match std::fs::rename(new, auth_dir) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                exists = !matches!(auth_dir::check_replaceable(auth_dir)?, Existing::Missing);
            }
            Err(e) => return Err(fs::with_path(e, auth_dir).into()),
        }
    }
    Err(fs::with_path(
        std::io::Error::other("another `caw auth setup` keeps replacing it"),
        auth_dir,
    )
    .into())
}

/// Carry `auth_dir/live` into `new` (a rename: running containers' mounts
/// and the sync's watches keep the same directory), then `swap`; when the
/// swap fails, move it back, so the old auth dir is exactly as it was.
fn install(
    new: &Path,
    auth_dir: &Path,
    carry_live: bool,
    swap: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let (old_live, new_live) = (auth_dir.join(LIVE_DIR), new.join(LIVE_DIR));
    if carry_live {
        fs_err::rename(&old_live, &new_live)?;
    }
    let result = swap();
    if result.is_err() && carry_live {
        if let Err(e) = fs_err::rename(&new_live, &old_live) {
            log::error!(
                "could not move the live directory back to `{}`: {e}",
                old_live.display()
            );
        }
    }
    result
}

/// True when `existing` is an auth dir with a real `live/` directory to carry over.
fn has_live_dir(existing: &Existing, auth_dir: &Path) -> bool {
    matches!(existing, Existing::AuthDir(_))
        && std::fs::symlink_metadata(auth_dir.join(LIVE_DIR)).is_ok_and(|m| m.is_dir())
}

/// Write the whole new tree at `new`; the manifest last, so a directory
/// with one is complete.
fn build_tree(
    new: &Path,
    manifest: &Manifest,
    staged: &[Staged],
    binary: Option<&bundle::Binary<'_>>,
    fresh_live: bool,
) -> Result<()> {
    for file in staged {
        write_file(&new.join(&file.src), &file.bytes, file.mode.bits())?;
        if fresh_live && file.credential {
            let live = new.join(LIVE_DIR);
            fs::create_dir_all(&live, 0o700)?;
            write_file(&live.join(&file.src), &file.bytes, 0o600)?;
        }
    }
    fs::write_new(
        &new.join(SETUP_SCRIPT),
        bundle::setup_script(manifest).as_bytes(),
        0o755,
    )?;
    if let Some(bin) = binary {
        fs::create_dir_all(&new.join(auth_dir::BIN_DIR), 0o755)?;
        let bytes = bin.read()?;
        fs::write_new(&new.join(BUNDLED_BINARY), &bytes, 0o755)?;
    }
    fs::write_new(
        &new.join(MANIFEST_FILE),
        manifest.to_json().as_bytes(),
        0o600,
    )?;
    fs_err::File::open(new)?.sync_all()?;
    Ok(())
}

/// A new file with its parent directories (0700).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir, 0o700)?;
    }
    fs::write_new(path, bytes, mode)?;
    Ok(())
}

fn write_auth_dir(
    auth_dir: &Path,
    manifest: &Manifest,
    staged: &[Staged],
    binary: Option<&bundle::Binary<'_>>,
) -> Result<()> {
    let parent = auth_dir.parent().ok_or_else(|| Error::InvalidOption {
        option: OptionName::AuthDir,
        value: auth_dir.display().to_string(),
        reason: "has no parent directory".into(),
    })?;
    if !parent.exists() {
        fs::create_dir_all(parent, 0o700)?;
    }
    let lock = auth_dir::lock_setup(auth_dir)?;
    let existing = auth_dir::check_replaceable(auth_dir)?;
    auth_dir::remove_stale_temp_dirs(auth_dir, &lock);
    let [new_prefix, _] = auth_dir::temp_prefixes(auth_dir);
    let tmp = auth_dir::temp_dir(parent, &new_prefix)?;
    let new = tmp.path();
    let live_mode = manifest.mode == AuthMode::Live;
    let carry_live = live_mode && has_live_dir(&existing, auth_dir);
    build_tree(new, manifest, staged, binary, live_mode && !carry_live)?;
    let exists = !matches!(existing, Existing::Missing);
    install(new, auth_dir, carry_live, || swap_in(new, auth_dir, exists))?;
    if carry_live {
        let credentials: Vec<LiveCredential<'_>> = staged
            .iter()
            .filter(|f| f.credential)
            .map(|f| LiveCredential {
                agent: f.agent,
                src: &f.src,
                host: &f.bytes,
            })
            .collect();
        live::refresh(&auth_dir.join(LIVE_DIR), &credentials);
    }
    // The new tree now lives at `auth_dir`; whatever is left at `tmp` (the
    // previous auth dir after an exchange) is removed on drop.
    drop(tmp);
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// Per path below `root`: bytes, mode and inode.
    fn tree(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, u64)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let bytes = if meta.is_file() {
                    std::fs::read(&path).unwrap()
                } else {
                    stack.push(path.clone());
                    Vec::new()
                };
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, (bytes, meta.mode(), meta.ino()));
            }
        }
        out
    }

    fn live_auth_dir(root: &Path) -> (PathBuf, PathBuf) {
        let auth = root.join("auth");
        std::fs::create_dir_all(auth.join("live/claude")).unwrap();
        std::fs::write(auth.join("manifest.json"), "{}").unwrap();
        std::fs::write(auth.join("live/claude/credentials.json"), "live").unwrap();
        let new = root.join(".auth.new-x");
        std::fs::create_dir_all(new.join("claude")).unwrap();
        std::fs::write(new.join("manifest.json"), "{\"new\":1}").unwrap();
        (auth, new)
    }

    /// The swap fails after `live/` was moved into the new tree: it goes
    /// back, and the old auth dir is exactly as it was (same inodes).
    #[test]
    fn a_failed_swap_moves_live_back() {
        let root = tempfile::tempdir().unwrap();
        let (auth, new) = live_auth_dir(root.path());
        let before = tree(&auth);
        let mut swapped = false;
        let err = install(&new, &auth, true, || {
            swapped = true;
            assert!(
                new.join("live/claude/credentials.json").is_file(),
                "not carried"
            );
            assert!(!auth.join("live").exists());
            Err(std::io::Error::other("the swap failed").into())
        })
        .unwrap_err();
        assert!(swapped);
        assert!(err.to_string().contains("the swap failed"));
        assert_eq!(tree(&auth), before);
        assert!(!new.join("live").exists());
    }

    #[test]
    fn a_swap_carries_live_with_its_inode() {
        let root = tempfile::tempdir().unwrap();
        let (auth, new) = live_auth_dir(root.path());
        let live_ino = std::fs::metadata(auth.join("live")).unwrap().ino();
        install(&new, &auth, true, || swap_in(&new, &auth, true)).unwrap();
        assert_eq!(
            std::fs::read(auth.join("manifest.json")).unwrap(),
            b"{\"new\":1}"
        );
        assert_eq!(
            std::fs::metadata(auth.join("live")).unwrap().ino(),
            live_ino
        );
        assert_eq!(
            std::fs::read(auth.join("live/claude/credentials.json")).unwrap(),
            b"live"
        );
        // The previous tree is left at `new`, without its live directory.
        assert_eq!(std::fs::read(new.join("manifest.json")).unwrap(), b"{}");
        assert!(!new.join("live").exists());
    }

    #[test]
    fn container_paths_refuse_what_docker_cannot_carry() {
        for bad in [
            "/tmp/a b",
            "/tmp/a\tb",
            "/tmp/a:b",
            "/tmp/a,b",
            "tmp/x",
            "/",
        ] {
            let err = container_path(OptionName::MountPoint, &Some(bad.into()), "/d").unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidOption {
                        option: OptionName::MountPoint,
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(
            container_path(OptionName::ContainerHome, &Some("/home/a/".into()), "/d").unwrap(),
            "/home/a"
        );
        assert_eq!(
            container_path(OptionName::ContainerHome, &None, "/d").unwrap(),
            "/d"
        );
    }
}
