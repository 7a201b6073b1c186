//! `caw auth container-setup`: put the logins into the agent's home, then
//! replace any running guard by a new one in the background.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caw_auth::auth_dir::LIVE_DIR;
use caw_auth::manifest::{AuthMode, Manifest, Strategy};
use caw_sync::side::DirFile;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::guard;
use crate::init::GUARD_NAME;
use crate::mounts::is_mount_point;
use crate::supervise::{self, ChildSpec};
use crate::user::{self, User};
use crate::{Error, Result};

/// Where the guard's PID goes unless [`PID_FILE_ENV`] says otherwise.
pub const DEFAULT_PID_FILE: &str = "/tmp/caw_credential_guard.pid";
/// Environment variable overriding [`DEFAULT_PID_FILE`].
pub const PID_FILE_ENV: &str = "CAW_GUARD_PID_FILE";
/// `CLAUDE_CODE_USE_BEDROCK=1`: no OAuth login to guard, so no guard.
pub const BEDROCK_ENV: &str = "CLAUDE_CODE_USE_BEDROCK";
/// The descriptor number on which a starting guard reports that it is ready.
pub const READY_FD: RawFd = 3;
/// How long a new guard may take to arm its watches and do its first sync.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an earlier guard gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// What `container-setup` works on.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// `M`, where the auth dir is mounted.
    pub mount_point: PathBuf,
    /// `C`, the agent user's home.
    pub container_home: PathBuf,
    /// `U`, the agent user.
    pub user: String,
    /// Where the guard's PID is written.
    pub pid_file: PathBuf,
    /// Whether to start a guard at all.
    pub start_guard: bool,
}

impl SetupOptions {
    /// The options for `M C U`, with the PID file and Bedrock switch read
    /// from the environment.
    pub fn from_env(mount_point: PathBuf, container_home: PathBuf, user: String) -> Self {
        let pid_file = std::env::var_os(PID_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_PID_FILE), PathBuf::from);
        SetupOptions {
            mount_point,
            container_home,
            user,
            pid_file,
            start_guard: std::env::var(BEDROCK_ENV).as_deref() != Ok("1"),
        }
    }
}

/// The command line that runs `caw auth guard` for these options.
///
/// The caller (the CLI) owns the argument syntax; [`READY_FD`] is open in
/// the child and must be passed to it.
#[derive(Debug, Clone)]
pub struct GuardCommand {
    /// The executable (`/proc/self/exe`: the very binary running setup).
    pub program: PathBuf,
    /// What the process is called in `ps` and `/proc/PID/cmdline`.
    pub arg0: OsString,
    /// Arguments after `arg0`.
    pub args: Vec<OsString>,
}

/// What a checked setup will copy: the manifest and the agent user.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The manifest at the mount point.
    pub manifest: Manifest,
    /// The agent user.
    pub user: User,
}

/// Check everything `container-setup` needs before anything is written:
/// root (or the agent user itself), the user, the manifest, and the
/// credential mounts (`M/live` in live mode, one non-empty file bind per
/// credential in bind mode).
pub fn check(opts: &SetupOptions) -> Result<Checked> {
    let user = user::lookup_name_or_uid(&opts.user, Path::new(user::PASSWD))?;
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 && euid != user.uid {
        return Err(Error::NotRoot {
            user: user.name.clone(),
        });
    }
    if !opts.mount_point.is_dir() {
        return Err(Error::NotMounted {
            path: opts.mount_point.clone(),
        });
    }
    let manifest = Manifest::load(&opts.mount_point)?;
    if manifest.mode == AuthMode::Live {
        let live = opts.mount_point.join(LIVE_DIR);
        if !live.is_dir() || mounted(&live) == Some(false) {
            return Err(Error::MissingLiveMount { path: live });
        }
    }
    for (agent, f) in manifest.files() {
        let from = opts.mount_point.join(&f.src);
        let meta = std::fs::symlink_metadata(&from);
        match (f.strategy, manifest.mode) {
            (Strategy::Bind, AuthMode::Bind) => {
                let what = match &meta {
                    Err(_) => Some("missing"),
                    Ok(m) if !m.is_file() => Some("not a regular file"),
                    Ok(m) if m.len() == 0 => Some("empty"),
                    // Without its own mount, `M/<src>` is the auth dir's snapshot:
                    // refreshes would go there instead of the host file, and the
                    // first one in the container would log the host out.
                    Ok(_) if mounted(&from) == Some(false) => {
                        Some("not bind-mounted from the host")
                    }
                    Ok(_) => None,
                };
                if let Some(what) = what {
                    return Err(Error::MissingBindSource {
                        agent: agent.to_string(),
                        path: from,
                        what,
                    });
                }
            }
            (Strategy::Bind, AuthMode::Live) => {}
            (Strategy::Copy, _) => {
                if !meta.is_ok_and(|m| m.is_file()) {
                    return Err(Error::MissingStaged { path: from });
                }
            }
        }
    }
    Ok(Checked { manifest, user })
}

/// Whether `path` is a mount point; warns and says `None` when nobody can tell.
fn mounted(path: &Path) -> Option<bool> {
    let found = is_mount_point(path);
    if found.is_none() {
        log::warn!(
            "[setup-container] cannot read /proc/self/mountinfo to check that `{}` is mounted \
             from the host",
            path.display()
        );
    }
    found
}

/// Put every manifest file into the home, owned by the agent user with the
/// manifest's mode (missing directories are created, also the user's):
/// configs copied from the auth dir, credentials by one look of the guard's
/// own rules, so that a home copy left by an earlier run of the container is
/// not replaced by anything older or logged out.
pub fn copy_files(opts: &SetupOptions, checked: &Checked) -> Result<()> {
    let home = &opts.container_home;
    for (_, f) in checked
        .manifest
        .files()
        .filter(|(_, f)| f.strategy == Strategy::Copy)
    {
        let bytes = fs_err::read(opts.mount_point.join(&f.src))?;
        let end = DirFile::new(
            home,
            &f.container_target,
            Some(checked.user.owner()),
            f.mode.bits(),
        )
        .create_root();
        end.put(&bytes)?;
        log::info!(
            "[setup-container] copied {} -> {} (mode {})",
            f.src,
            end.path().display(),
            f.mode.as_str()
        );
    }
    for mut pair in guard::pairs(&checked.manifest, &opts.mount_point, home, &checked.user)? {
        pair.step(caw_sync::Now::read());
    }
    Ok(())
}

/// Everything `container-setup` does: check, stop an earlier guard (so
/// nothing syncs while the files are copied), copy, start a new guard
/// (unless Bedrock is in use) and record its PID.
pub fn container_setup(opts: &SetupOptions, command: &GuardCommand) -> Result<()> {
    let checked = check(opts)?;
    if let Some(pid) = stop_previous_guard(&opts.pid_file)? {
        log::info!("[setup-container] stopped the earlier credential guard (pid {pid})");
    }
    copy_files(opts, &checked)?;
    let credentials = checked
        .manifest
        .files()
        .filter(|(_, f)| f.strategy == Strategy::Bind)
        .count();
    if !opts.start_guard {
        log::info!("[setup-container] {BEDROCK_ENV}=1: not starting the credential guard");
    } else if credentials == 0 {
        log::info!("[setup-container] no credential to guard");
    } else {
        let pid = spawn_guard(command)?;
        write_pid_file(&opts.pid_file, pid)?;
        log::info!("[setup-container] credential guard started (pid {pid})");
    }
    log::info!("[setup-container] auth setup complete");
    Ok(())
}

/// Start the guard detached (own session, stdin from /dev/null, stdout and
/// stderr inherited so `docker logs` shows it), the way the init starts its
/// supervised children, and wait until it is ready.
pub fn spawn_guard(command: &GuardCommand) -> Result<u32> {
    let spec = guard_spec(command, None);
    let start = |reason: String| Error::GuardStart { reason };
    let (pid, ready) = supervise::spawn_child(&spec).map_err(|e| start(e.to_string()))?;
    if let Some(ready) = ready {
        supervise::wait_ready(&ready, pid, READY_TIMEOUT).map_err(|reason| {
            let _ = kill(pid, Signal::SIGKILL);
            start(format!("{reason}; see the messages above"))
        })?;
    }
    Ok(pid.as_raw() as u32)
}

/// `command` as a supervised child that reports ready on [`READY_FD`].
pub(crate) fn guard_spec(command: &GuardCommand, pid_file: Option<PathBuf>) -> ChildSpec {
    ChildSpec {
        name: GUARD_NAME.into(),
        program: command.program.clone(),
        arg0: command.arg0.clone(),
        args: command.args.clone(),
        ready_fd: Some(READY_FD),
        pid_file,
    }
}

/// Keep the guard `command` starts running until SIGTERM: restarted, with
/// backoff and a log line, whenever it dies (killed by root in the
/// container, say). `ready`, once the first guard is ready, gets one byte.
///
/// This is what `container-setup` starts in the background (and records
/// in the PID file), so that a guard outside `caw auth exec` is supervised
/// as one under it is; SIGTERM stops the guard, then this.
pub fn keep_guard(command: &GuardCommand, ready: Option<std::os::fd::OwnedFd>) -> Result<()> {
    let start = |reason: String| Error::GuardStart { reason };
    let mut init = supervise::Init::new()
        .map_err(|e| start(e.to_string()))?
        .with_voice("[credential-guard]");
    init.supervise(guard_spec(command, None), READY_TIMEOUT)
        .map_err(|e| start(e.to_string()))?;
    if let Some(fd) = ready {
        let _ = std::io::Write::write_all(&mut std::fs::File::from(fd), b"R");
    }
    init.keep().map_err(|e| Error::GuardStart {
        reason: format!("the guard's keeper failed: {e}"),
    })?;
    Ok(())
}

/// Record `pid`, replacing whatever is at `path` (a link there is replaced, not followed).
pub fn write_pid_file(path: &Path, pid: u32) -> Result<()> {
    caw_auth::fs::write_atomic(path, format!("{pid}\n").as_bytes(), 0o644, None)?;
    Ok(())
}

/// Stop the guard whose PID is in `pid_file`, if that process is a caw guard.
///
/// A PID that now belongs to some other process (the guard died and the
/// number was reused) is left alone. Returns the PID stopped.
pub fn stop_previous_guard(pid_file: &Path) -> Result<Option<i32>> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            log::warn!(
                "[setup-container] cannot read `{}`: {e}",
                pid_file.display()
            );
            return Ok(None);
        }
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(None);
    };
    if pid <= 1 || pid as u32 == std::process::id() || !is_guard_process(pid) {
        return Ok(None);
    }
    if kill(Pid::from_raw(pid), Signal::SIGTERM).is_err() {
        return Ok(None);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            log::warn!(
                "[setup-container] the earlier guard (pid {pid}) ignored SIGTERM; killing it"
            );
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_file(pid_file);
    Ok(Some(pid))
}

/// Whether `pid` runs `caw auth guard` or the shell guard (`setup-container.sh --guard`).
pub fn is_guard_process(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| is_guard_cmdline(&cmdline))
}

/// Whether a NUL-separated command line is a caw guard's.
pub fn is_guard_cmdline(cmdline: &[u8]) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let rust = args.windows(2).any(|w| w == [&b"auth"[..], &b"guard"[..]]);
    let shell = args.iter().any(|a| a.ends_with(b"setup-container.sh"))
        && args.iter().any(|a| *a == b"--guard");
    rust || shell
}

/// Alive and not a zombie waiting for a parent that does not reap.
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn guard_command_lines_are_recognised() {
        assert!(is_guard_cmdline(
            b"caw\0auth\0guard\0--mount-point\0/tmp/caw_auth\0"
        ));
        assert!(is_guard_cmdline(
            b"sh\0/tmp/caw_auth/setup-container.sh\0--guard\0/tmp/caw_auth\0"
        ));
        assert!(!is_guard_cmdline(b"sleep\0guard\0"));
        assert!(!is_guard_cmdline(b"caw\0auth\0status\0"));
        assert!(!is_guard_cmdline(
            b"sh\0/tmp/caw_auth/setup-container.sh\0/tmp\0"
        ));
        assert!(!is_guard_cmdline(b""));
    }

    #[test]
    fn a_pid_file_naming_another_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("guard.pid");
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&pid_file, format!("{}\n", sleeper.id())).unwrap();
        assert_eq!(stop_previous_guard(&pid_file).unwrap(), None);
        assert!(
            sleeper.try_wait().unwrap().is_none(),
            "an unrelated process was stopped"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        std::fs::write(&pid_file, "not a pid").unwrap();
        assert_eq!(stop_previous_guard(&pid_file).unwrap(), None);
        assert_eq!(stop_previous_guard(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn pid_file_replaces_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let pid_file = dir.path().join("guard.pid");
        std::os::unix::fs::symlink(&victim, &pid_file).unwrap();
        write_pid_file(&pid_file, 42).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), "42\n");
    }
}
