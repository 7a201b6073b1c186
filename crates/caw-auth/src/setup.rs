//! `caw auth setup`: collect, clean and write a new auth dir, all or nothing.

use std::path::{Path, PathBuf};

use crate::agents::{self, Agent, CleanContext};
use crate::bundle::{self, BUNDLED_BINARY, SETUP_SCRIPT, STATIC_BINARY_ENV};
use crate::manifest::{
    check_absolute, AgentEntry, FileType, Manifest, ManifestFile, Mode, Strategy,
    DEFAULT_CONTAINER_HOME, DEFAULT_MOUNT_POINT, MANIFEST_FILE,
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
    /// A static Linux `caw` built into the running program (the CLI and
    /// the Python extension embed one), bundled when neither
    /// `bundle_binary`, `$CAW_STATIC_BINARY` nor a static running
    /// executable gives one.
    pub embedded_binary: Option<&'static [u8]>,
    /// A static Linux `caw` to bundle as `bin/caw`; `None` means
    /// `$CAW_STATIC_BINARY`, else the running executable when it is static.
    pub bundle_binary: Option<PathBuf>,
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
    src: String,
    bytes: Vec<u8>,
    mode: Mode,
}

/// Snapshot credentials and cleaned configs into an auth dir.
///
/// Host files are only read. Everything is read, parsed and cleaned before
/// anything is written; the new auth dir is then built beside the old one and
/// swapped in when complete, so any failure leaves an existing auth dir exactly
/// as it was. Progress and warnings go to the `log` facade.
pub fn setup(opts: &SetupOptions) -> Result<SetupReport> {
    let host_home = match &opts.source_home {
        Some(h) => paths::absolute(&paths::expand_tilde(h)?)?,
        None => paths::home_dir()?,
    };
    let auth_dir = paths::absolute(&paths::resolve_auth_dir(opts.auth_dir.as_deref())?)?;
    let container_home = option_path(
        "--container-home",
        &opts.container_home,
        DEFAULT_CONTAINER_HOME,
    )?;
    let mount_point = option_path("--mount-point", &opts.mount_point, DEFAULT_MOUNT_POINT)?;
    if !host_home.is_dir() {
        return Err(Error::InvalidOption {
            option: "--source-home",
            value: host_home.display().to_string(),
            reason: "is not a directory".into(),
        });
    }

    let selected = agents::select(&opts.agents)?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for agent in selected {
        let missing: Vec<String> = agent
            .required()
            .iter()
            .filter(|rel| !host_home.join(rel).is_file())
            .map(|rel| rel.to_string())
            .collect();
        if missing.is_empty() {
            usable.push(agent);
        } else {
            skipped.push((agent.name().to_string(), missing));
        }
    }
    if usable.is_empty() {
        return Err(Error::NoUsableAgent {
            home: host_home,
            missing: skipped,
        });
    }
    for (agent, missing) in &skipped {
        log::warn!(
            "skipping {agent}: missing {}",
            missing
                .iter()
                .map(|m| format!("`{}`", host_home.join(m).display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let ctx = CleanContext {
        container_home: &container_home,
    };
    let mut staged = Vec::new();
    let mut entries = Vec::new();
    for agent in usable {
        let (entry, files) = collect_agent(agent, &host_home, &ctx)?;
        log::info!(
            "{}: {}",
            agent.name(),
            entry
                .files
                .iter()
                .map(|f| format!("{} ({})", f.host_original, f.file_type))
                .collect::<Vec<_>>()
                .join(", ")
        );
        staged.extend(files);
        entries.push((agent.name().to_string(), entry));
    }

    let manifest = Manifest {
        created_at: jiff::Timestamp::now().to_string(),
        host_home: host_home.clone(),
        container_home,
        mount_point,
        agents: entries,
    };
    let binary = bundle_source(opts);
    write_auth_dir(&auth_dir, &manifest, &staged, binary.as_ref())?;
    log::info!("auth dir written to `{}`", auth_dir.display());
    Ok(SetupReport {
        auth_dir,
        manifest,
        skipped,
        bundled_binary: binary.is_some(),
    })
}

fn option_path(option: &'static str, given: &Option<String>, default: &str) -> Result<String> {
    let value = given.as_deref().unwrap_or(default);
    let value = if value.len() > 1 {
        value.trim_end_matches('/')
    } else {
        value
    };
    check_absolute(value).map_err(|reason| Error::InvalidOption {
        option,
        value: value.to_string(),
        reason,
    })?;
    Ok(value.to_string())
}

/// Read, validate and clean one agent's files.
fn collect_agent(
    agent: &dyn Agent,
    home: &Path,
    ctx: &CleanContext<'_>,
) -> Result<(AgentEntry, Vec<Staged>)> {
    let mut entry = AgentEntry::default();
    let mut staged = Vec::new();

    let cred_path = home.join(agent.credential_host());
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
        src: agent.credential_src().to_string(),
        container_target: agent.credential_host().to_string(),
        host_original: agent.credential_host().to_string(),
        file_type: FileType::Credential,
        strategy: Strategy::Bind,
        mode: Mode::Private,
    });
    staged.push(Staged {
        src: agent.credential_src().to_string(),
        bytes,
        mode: Mode::Private,
    });

    for config in agent.configs() {
        let Some(candidate) = config
            .candidates
            .iter()
            .find(|c| home.join(c.host).is_file())
        else {
            continue;
        };
        let path = home.join(candidate.host);
        let raw = fs_err::read(&path)?;
        let cleaned = agent
            .clean_config(candidate, &raw, ctx)
            .map_err(|reason| Error::InvalidInput { path, reason })?;
        entry.files.push(ManifestFile {
            src: candidate.src.to_string(),
            container_target: candidate.target.to_string(),
            host_original: candidate.host.to_string(),
            file_type: FileType::Config,
            strategy: Strategy::Copy,
            mode: Mode::Public,
        });
        staged.push(Staged {
            src: candidate.src.to_string(),
            bytes: cleaned,
            mode: Mode::Public,
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

/// Refuse to replace a directory that holds anything but a caw auth dir.
pub(crate) fn check_replaceable(auth_dir: &Path) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(auth_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fs::with_path(e, auth_dir).into()),
    };
    let not = |reason: &str| Error::NotAnAuthDir {
        path: auth_dir.to_path_buf(),
        reason: reason.to_string(),
    };
    if meta.file_type().is_symlink() {
        return Err(not("it is a symlink"));
    }
    if !meta.is_dir() {
        return Err(not("it is not a directory"));
    }
    if auth_dir.join(MANIFEST_FILE).is_file() {
        return Ok(true);
    }
    let mut entries = fs_err::read_dir(auth_dir)?;
    if entries.next().is_some() {
        return Err(not("it is not empty and has no manifest.json"));
    }
    Ok(true)
}

/// Put the complete tree `new` at `auth_dir`, leaving any previous auth dir at `new`.
///
/// A second `setup` may create `auth_dir` between our check and the rename;
/// the check and swap are then repeated against what it left.
fn swap_in(new: &Path, auth_dir: &Path, name: &str, mut exists: bool) -> Result<()> {
    let parent = auth_dir.parent().unwrap_or(Path::new("."));
    for _ in 0..3 {
        if exists {
            if fs::exchange(new, auth_dir)? {
                return Ok(());
            }
            // No RENAME_EXCHANGE here: move the old tree aside, then rename.
            let old = tempfile::Builder::new()
                .prefix(&format!(".{name}.old-"))
                .tempdir_in(parent)
                .map_err(|e| fs::with_path(e, parent))?;
            let old_path = old.path().join("auth");
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
                exists = check_replaceable(auth_dir)?;
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

fn write_auth_dir(
    auth_dir: &Path,
    manifest: &Manifest,
    staged: &[Staged],
    binary: Option<&bundle::Binary<'_>>,
) -> Result<()> {
    let exists = check_replaceable(auth_dir)?;
    let parent = auth_dir.parent().ok_or_else(|| Error::InvalidOption {
        option: "--auth-dir",
        value: auth_dir.display().to_string(),
        reason: "has no parent directory".into(),
    })?;
    if !parent.exists() {
        fs::create_dir_all(parent, 0o700)?;
    }
    let name = auth_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(parent)
        .map_err(|e| fs::with_path(e, parent))?;
    let new = tmp.path();
    fs::set_mode(new, 0o700)?;

    for file in staged {
        let path = new.join(&file.src);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir, 0o700)?;
        }
        fs::write_new(&path, &file.bytes, file.mode.bits())?;
    }
    fs::write_new(
        &new.join(SETUP_SCRIPT),
        bundle::setup_script(manifest).as_bytes(),
        0o755,
    )?;
    if let Some(bin) = binary {
        fs::create_dir_all(&new.join("bin"), 0o755)?;
        let bytes = bin.read()?;
        fs::write_new(&new.join(BUNDLED_BINARY), &bytes, 0o755)?;
    }
    // The manifest goes last: a directory with one is complete.
    fs::write_new(
        &new.join(MANIFEST_FILE),
        manifest.to_json().as_bytes(),
        0o600,
    )?;
    fs_err::File::open(new)?.sync_all()?;

    swap_in(new, auth_dir, &name, exists)?;
    // The new tree now lives at `auth_dir`; whatever is left at `tmp` (the
    // previous auth dir after an exchange) is removed on drop.
    drop(tmp);
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}
