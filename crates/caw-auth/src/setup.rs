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

mod in_place;

use in_place::Snapshot;

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
/// anything is written. A new auth dir is built beside its path and renamed
/// into place when complete. An existing one is updated in place, so that
/// running containers keep their mounts: `A`, `A/live` and each agent's
/// directory keep their inodes, each new file replaces its old one whole,
/// `manifest.json` comes last, and what the new manifest no longer lists
/// is removed after it. A failure before the manifest is replaced leaves
/// the previous auth dir working (a failure before anything is renamed
/// leaves it as it was). In live mode each credential in `live/` is kept
/// when fresher than the host's, else replaced by the host's.
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

/// Put the complete tree `new` at `auth_dir`, leaving any previous (empty)
/// directory at `new`.
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
                match auth_dir::check_replaceable(auth_dir)? {
                    Existing::AuthDir(_) => {
                        return Err(fs::with_path(
                            std::io::Error::other("another `caw auth setup` wrote it meanwhile"),
                            auth_dir,
                        )
                        .into())
                    }
                    Existing::Missing => exists = false,
                    Existing::Empty => exists = true,
                }
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

/// Write the whole new tree at `new`; the manifest last, so a directory
/// with one is complete.
fn build_tree(new: &Path, snapshot: &Snapshot<'_>, fresh_live: bool) -> Result<()> {
    for file in snapshot.staged {
        write_file(&new.join(&file.src), &file.bytes, file.mode.bits())?;
        if fresh_live && file.credential {
            let live = new.join(LIVE_DIR);
            fs::create_dir_all(&live, 0o700)?;
            write_file(&live.join(&file.src), &file.bytes, 0o600)?;
        }
    }
    fs::write_new(
        &new.join(SETUP_SCRIPT),
        bundle::setup_script(snapshot.manifest).as_bytes(),
        0o755,
    )?;
    if let Some(bytes) = snapshot.binary {
        fs::create_dir_all(&new.join(auth_dir::BIN_DIR), 0o755)?;
        fs::write_new(&new.join(BUNDLED_BINARY), bytes, 0o755)?;
    }
    fs::write_new(
        &new.join(MANIFEST_FILE),
        snapshot.manifest.to_json().as_bytes(),
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

/// Write `auth_dir`, holding the setup lock: an auth dir that exists is
/// updated in place ([`in_place`]); a missing or empty one, which no
/// container can be using, is built beside it and renamed into place.
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
    let binary = binary.map(bundle::Binary::read).transpose()?;
    let snapshot = Snapshot {
        manifest,
        staged,
        binary: binary.as_deref(),
    };
    match existing {
        Existing::AuthDir(_) => update_in_place(auth_dir, &snapshot)?,
        Existing::Missing => build_beside(auth_dir, parent, &snapshot, false)?,
        Existing::Empty => build_beside(auth_dir, parent, &snapshot, true)?,
    }
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A first setup: the tree built in a temp dir beside `auth_dir`, then renamed.
fn build_beside(
    auth_dir: &Path,
    parent: &Path,
    snapshot: &Snapshot<'_>,
    exists: bool,
) -> Result<()> {
    let [new_prefix, _] = auth_dir::temp_prefixes(auth_dir);
    let tmp = auth_dir::temp_dir(parent, &new_prefix)?;
    build_tree(
        tmp.path(),
        snapshot,
        snapshot.manifest.mode == AuthMode::Live,
    )?;
    swap_in(tmp.path(), auth_dir, exists)?;
    // The new tree now lives at `auth_dir`; whatever is left at `tmp` (the
    // empty directory after an exchange) is removed on drop.
    drop(tmp);
    Ok(())
}

/// A re-setup: see [`in_place`]. In live mode a `live/` that exists is kept
/// (with a fresher login of a container), else one is made.
fn update_in_place(auth_dir: &Path, snapshot: &Snapshot<'_>) -> Result<()> {
    in_place::remove_stale_temps(auth_dir);
    let live_dir = auth_dir.join(LIVE_DIR);
    let live_mode = snapshot.manifest.mode == AuthMode::Live;
    let has_live = std::fs::symlink_metadata(&live_dir).is_ok_and(|m| m.is_dir());
    let mut plan = in_place::stage(auth_dir, snapshot, live_mode && !has_live)?;
    plan.commit_files()?;
    if live_mode && has_live {
        let credentials: Vec<LiveCredential<'_>> = snapshot
            .staged
            .iter()
            .filter(|f| f.credential)
            .map(|f| LiveCredential {
                agent: f.agent,
                src: &f.src,
                host: &f.bytes,
            })
            .collect();
        live::refresh(&live_dir, &credentials);
    }
    plan.commit_manifest(auth_dir)?;
    in_place::prune(auth_dir, snapshot);
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

    /// A home logged in to claude and codex (with a codex config), under `root`.
    fn home(root: &Path) -> PathBuf {
        let home = root.join("home");
        let write = |rel: &str, text: &str| {
            let path = home.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let ms = (jiff::Timestamp::now().as_second() + 3600) * 1000;
        write(".claude.json", r#"{"numStartups":1}"#);
        write(
            ".claude/.credentials.json",
            &format!(
                r#"{{"claudeAiOauth":{{"accessToken":"a","refreshToken":"r","expiresAt":{ms}}}}}"#
            ),
        );
        write(
            ".codex/auth.json",
            r#"{"OPENAI_API_KEY":"sk-x","tokens":null}"#,
        );
        write(".codex/config.toml", "model = \"m\"\n");
        home
    }

    fn run_setup(home: &Path, auth: &Path, mode: AuthMode, agents: &[&str], trust: &[&str]) {
        setup(&SetupOptions {
            agents: agents.iter().map(|a| a.to_string()).collect(),
            source_home: Some(home.to_path_buf()),
            auth_dir: Some(auth.to_path_buf()),
            mode: Some(mode),
            trust: trust.iter().map(|t| t.to_string()).collect(),
            bundle_binary: Some(home.join("no-such-binary")),
            ..SetupOptions::default()
        })
        .unwrap();
    }

    fn ino(path: &Path) -> u64 {
        std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .ino()
    }

    /// Names in `dir` (recursively) that are caw temp names.
    fn temps(dir: &Path) -> Vec<PathBuf> {
        tree(dir)
            .into_keys()
            .filter(|p| auth_dir::temp_target(&p.file_name().unwrap().to_string_lossy()).is_some())
            .collect()
    }

    /// Containers bind-mount `A` and `A/live` (and, in bind mode, host files
    /// over `A/<agent>/<credential>`): a re-setup with other trust keeps
    /// every one of those inodes, replaces the configs whole, and leaves the
    /// host sync's log and state alone.
    #[test]
    fn a_re_setup_keeps_the_mounted_inodes_and_the_sync_s_files() {
        for mode in [AuthMode::Live, AuthMode::Bind] {
            let root = tempfile::tempdir().unwrap();
            let (home, auth) = (home(root.path()), root.path().join("auth"));
            run_setup(&home, &auth, mode, &[], &[]);
            std::fs::write(auth.join("sync.log"), "a line\n").unwrap();
            std::fs::write(auth.join("sync.json"), "{}").unwrap();
            let kept = [
                "",
                "claude",
                "codex",
                "claude/credentials.json",
                "codex/auth.json",
            ];
            let mut kept: Vec<PathBuf> = kept.iter().map(|p| auth.join(p)).collect();
            if mode == AuthMode::Live {
                kept.extend(["live", "live/claude"].map(|p| auth.join(p)));
            }
            let before: Vec<u64> = kept.iter().map(|p| ino(p)).collect();
            let config = auth.join("claude/config.json");
            let (config_ino, config_before) = (ino(&config), std::fs::read(&config).unwrap());
            // The host refreshed meanwhile: the snapshot follows, in place.
            let refreshed = r#"{"OPENAI_API_KEY":"sk-new","tokens":null}"#;
            std::fs::write(home.join(".codex/auth.json"), refreshed).unwrap();

            run_setup(&home, &auth, mode, &[], &["/workspace"]);

            let after: Vec<u64> = kept.iter().map(|p| ino(p)).collect();
            assert_eq!(before, after, "{mode:?}: {kept:?}");
            assert_ne!(ino(&config), config_ino, "{mode:?}: not replaced whole");
            assert_ne!(std::fs::read(&config).unwrap(), config_before);
            assert!(String::from_utf8(std::fs::read(&config).unwrap())
                .unwrap()
                .contains("/workspace"));
            assert_eq!(
                std::fs::read(auth.join("codex/auth.json")).unwrap(),
                refreshed.as_bytes()
            );
            assert_eq!(std::fs::read(auth.join("sync.log")).unwrap(), b"a line\n");
            assert_eq!(std::fs::read(auth.join("sync.json")).unwrap(), b"{}");
            assert_eq!(temps(&auth), Vec::<PathBuf>::new(), "{mode:?}");
            assert_eq!(
                std::fs::read_dir(root.path()).unwrap().count(),
                2,
                "{mode:?}: something left beside the auth dir"
            );
            assert!(matches!(
                auth_dir::check_replaceable(&auth),
                Ok(Existing::AuthDir(_))
            ));
        }
    }

    /// Everything named by the old or the new manifest exists until the new
    /// manifest is in place, which comes after every other file; what only
    /// the old one names goes after it. Seen by inotify, in order.
    #[test]
    fn the_manifest_comes_after_every_file_and_before_every_removal() {
        use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
        let root = tempfile::tempdir().unwrap();
        let (home, auth) = (home(root.path()), root.path().join("auth"));
        run_setup(&home, &auth, AuthMode::Live, &["claude"], &[]);
        let notify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        let mask = W::IN_MOVED_TO | W::IN_DELETE | W::IN_CREATE;
        let top = notify.add_watch(&auth, mask).unwrap();
        let claude = notify.add_watch(&auth.join("claude"), mask).unwrap();

        // codex comes, with a new directory; claude's config changes.
        run_setup(&home, &auth, AuthMode::Live, &["claude", "codex"], &["/w"]);
        let mut events = Vec::new();
        while let Ok(batch) = notify.read_events() {
            for e in batch {
                let name = e.name.unwrap().to_string_lossy().into_owned();
                let dir = if e.wd == top {
                    ""
                } else if e.wd == claude {
                    "claude/"
                } else {
                    "?"
                };
                events.push((e.mask, format!("{dir}{name}")));
            }
        }
        let moved: Vec<&str> = events
            .iter()
            .filter(|(m, _)| m.contains(W::IN_MOVED_TO))
            .map(|(_, n)| n.as_str())
            .collect();
        assert_eq!(
            moved,
            [
                "claude/config.json",
                "codex",
                "setup-container.sh",
                "manifest.json"
            ],
            "{events:?}"
        );
        // The new directory holds codex's files where the manifest says.
        for (_, file) in Manifest::load(&auth).unwrap().files() {
            assert!(auth.join(&file.src).is_file(), "{} is missing", file.src);
        }

        // claude goes: its directory is removed after the manifest.
        let notify2 = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        notify2
            .add_watch(&auth, W::IN_MOVED_TO | W::IN_DELETE)
            .unwrap();
        run_setup(&home, &auth, AuthMode::Live, &["codex"], &[]);
        let mut order = Vec::new();
        while let Ok(batch) = notify2.read_events() {
            for e in batch {
                let name = e.name.unwrap().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    order.push(name);
                }
            }
        }
        assert_eq!(order, ["setup-container.sh", "manifest.json", "claude"]);
        assert!(!auth.join("claude").exists());
        // live/ keeps what containers had (a later setup of claude finds it).
        assert!(auth.join("live/claude/credentials.json").is_file());
    }

    /// A failure while staging leaves `A` exactly as it was; one half-way
    /// through the renames leaves the old manifest, and every file it names,
    /// in place, and no temp file.
    #[test]
    fn a_failure_leaves_the_old_auth_dir_usable() {
        let root = tempfile::tempdir().unwrap();
        let (home, auth) = (home(root.path()), root.path().join("auth"));
        run_setup(&home, &auth, AuthMode::Live, &["claude"], &[]);
        let before = tree(&auth);
        let old_manifest = std::fs::read(auth.join(MANIFEST_FILE)).unwrap();

        // Staged, then dropped (as on an error while staging).
        let manifest = Manifest::load(&auth).unwrap();
        let staged = [Staged {
            agent: "claude",
            src: "claude/config.json".into(),
            bytes: b"{}".to_vec(),
            mode: Mode::Private,
            credential: false,
        }];
        let snapshot = Snapshot {
            manifest: &manifest,
            staged: &staged,
            binary: Some(b"bin"),
        };
        drop(in_place::stage(&auth, &snapshot, false).unwrap());
        assert_eq!(tree(&auth), before);

        // The second rename fails: a directory stands where the new codex
        // config goes.
        std::fs::write(home.join(".claude.json"), r#"{"numStartups":2}"#).unwrap();
        std::fs::create_dir_all(auth.join("codex/config.toml/x")).unwrap();
        let err = setup(&SetupOptions {
            agents: vec!["claude".into(), "codex".into()],
            source_home: Some(home.clone()),
            auth_dir: Some(auth.clone()),
            mode: Some(AuthMode::Live),
            bundle_binary: Some(home.join("no-such-binary")),
            ..SetupOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("config.toml"), "{err}");
        assert_eq!(
            std::fs::read(auth.join(MANIFEST_FILE)).unwrap(),
            old_manifest
        );
        let old = Manifest::load(&auth).unwrap();
        for (_, file) in old.files() {
            assert!(auth.join(&file.src).is_file(), "{} is gone", file.src);
        }
        assert!(auth.join("live/claude/credentials.json").is_file());
        assert_eq!(temps(&auth), Vec::<PathBuf>::new());
        assert!(matches!(
            auth_dir::check_replaceable(&auth),
            Ok(Existing::AuthDir(_))
        ));
    }

    /// Temp entries a killed re-setup left in `A` are caw's (teardown and
    /// setup accept them), and the next setup removes them; the host sync's
    /// temp state file and `live/` are not setup's to clean.
    #[test]
    fn temps_a_killed_re_setup_left_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let (home, auth) = (home(root.path()), root.path().join("auth"));
        run_setup(&home, &auth, AuthMode::Live, &["claude"], &[]);
        let left = [
            ".codex.caw-Ab12Cd.tmp/auth.json",
            ".bin.caw-Ab12Cd.tmp/caw",
            ".live.caw-Ab12Cd.tmp/claude/credentials.json",
            ".manifest.json.caw-Ab12Cd.tmp",
            ".setup-container.sh.caw-Ab12Cd.tmp",
            "claude/.config.json.caw-Ab12Cd.tmp",
        ];
        for rel in left {
            let path = auth.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "{}").unwrap();
        }
        let others = [
            ".sync.json.caw-Ab12Cd.tmp",
            "live/claude/.credentials.json.caw-1.tmp",
        ];
        for rel in others {
            std::fs::write(auth.join(rel), "{}").unwrap();
        }
        assert!(matches!(
            auth_dir::check_replaceable(&auth),
            Ok(Existing::AuthDir(_))
        ));
        run_setup(&home, &auth, AuthMode::Live, &["claude"], &[]);
        for rel in left {
            let top = rel.split('/').next().unwrap();
            let path = if top.ends_with(".tmp") {
                auth.join(top)
            } else {
                auth.join(rel)
            };
            assert!(!path.exists(), "{rel} left");
        }
        for rel in others {
            assert!(auth.join(rel).exists(), "{rel} removed");
        }
    }

    /// Live to bind: `live/` goes unless a container's guard holds its lock
    /// on it. Bind to live: a `live/` with the host's logins appears.
    #[test]
    fn mode_changes_keep_a_live_dir_containers_use() {
        use nix::fcntl::{Flock, FlockArg};
        let root = tempfile::tempdir().unwrap();
        let (home, auth) = (home(root.path()), root.path().join("auth"));
        let live = auth.join("live");
        run_setup(&home, &auth, AuthMode::Live, &[], &[]);
        let guard = Flock::lock(std::fs::File::open(&live).unwrap(), FlockArg::LockShared).unwrap();
        let live_ino = ino(&live);
        run_setup(&home, &auth, AuthMode::Bind, &[], &[]);
        assert_eq!(
            ino(&live),
            live_ino,
            "live/ removed under an attached container"
        );
        drop(guard);
        run_setup(&home, &auth, AuthMode::Bind, &[], &[]);
        assert!(!live.exists());
        run_setup(&home, &auth, AuthMode::Live, &[], &[]);
        assert_eq!(
            std::fs::read(live.join("codex/auth.json")).unwrap(),
            std::fs::read(home.join(".codex/auth.json")).unwrap()
        );
        let mode = std::fs::metadata(&live).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(temps(&auth), Vec::<PathBuf>::new());
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
