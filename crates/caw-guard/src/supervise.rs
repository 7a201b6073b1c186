//! A small init: run one main command, keep helper children alive, and do
//! what PID 1 of a container must.
//!
//! [`Init`] knows two kinds of process and nothing about what they do:
//! - **supervised children** ([`ChildSpec`]): started first, each in a
//!   session of its own (a terminal's Ctrl-C never reaches them), and
//!   restarted with backoff ([`Backoff`]) whenever they die, one log line
//!   per restart; stopped (SIGTERM, then SIGKILL after a grace period)
//!   when the main command ends;
//! - **the main command** ([`MainCommand`]): run with exactly the
//!   environment given, optionally as another user, in a process group of
//!   its own that becomes the terminal's foreground group when stdin is a
//!   terminal (so Ctrl-C reaches it once, from the terminal, and not a
//!   second time through the init).
//!
//! While the main command runs, the init forwards [`FORWARDED`] signals to
//! it, reaps every child that ends (its own and the orphans the kernel hands
//! it as PID 1 or as a child subreaper), and finally returns the main
//! command's exit status, or 128+n when signal n killed it.
//!
//! All signals are blocked from [`Init::new`] on and read from a signalfd,
//! so nothing runs in a signal handler and nothing arrives between a check
//! and a wait. Children get an empty signal mask back before they exec
//! (std keeps the parent's mask).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};

/// Signals passed on to the main command: the ones `docker stop`, `docker
/// kill -s`, a terminal resize and the usual reload/dump conventions send.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// How long a stopped supervised child gets between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);

/// A helper process the init keeps running while the main command runs.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// What to call it in log lines ("credential guard").
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// `argv[0]`.
    pub arg0: OsString,
    /// Arguments after `argv[0]`.
    pub args: Vec<OsString>,
    /// A descriptor number on which the child writes one byte when it is
    /// ready; the first start waits for it.
    pub ready_fd: Option<RawFd>,
    /// Where the child's PID is written at every start (and removed when it
    /// is stopped), so tools in the container can find it.
    pub pid_file: Option<PathBuf>,
}

/// Restart delays: `initial`, doubled after each quick death up to `max`,
/// and back to `initial` once a child had run for `reset_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A child that ran at least this long is restarted after `initial` again.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            reset_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before the next restart of a child that ran for `ran`,
    /// given the delay `previous` used before its last restart (`None` for
    /// its first death).
    pub fn delay(&self, previous: Option<Duration>, ran: Duration) -> Duration {
        match previous {
            Some(d) if ran < self.reset_after => (d * 2).clamp(self.initial, self.max),
            _ => self.initial,
        }
    }
}

/// The user the main command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Every group id, the primary one included.
    pub groups: Vec<u32>,
}

/// The command the init exists for; its end is the init's end.
#[derive(Clone)]
pub struct MainCommand {
    /// The program: a path, or a name looked up in `env`'s `PATH`.
    pub program: OsString,
    /// Arguments after the program.
    pub args: Vec<OsString>,
    /// The complete environment (nothing else is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// Run as this user (the init must be root); `None` keeps the init's.
    pub credentials: Option<Credentials>,
}

// By hand: environment values may hold API keys, so only names are shown.
impl fmt::Debug for MainCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MainCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A failure of the init itself (never of the main command, whose status
/// is a result).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// Blocking signals or opening the signalfd failed.
    #[error("cannot take over signal handling: {0}")]
    Signals(#[source] Errno),
    /// `waitpid` or `poll` failed in a way that cannot be retried.
    #[error("cannot wait for child processes: {0}")]
    Wait(#[source] Errno),
    /// A supervised child could not be started at all.
    #[error("cannot start the {name} (`{}`): {source}", program.display())]
    Start {
        /// [`ChildSpec::name`].
        name: String,
        /// [`ChildSpec::program`].
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A supervised child did not report ready on its first start.
    #[error("the {name} did not start: {reason}")]
    NotReady {
        /// [`ChildSpec::name`].
        name: String,
        /// What happened to it.
        reason: String,
    },
    /// The main command could not be executed.
    #[error("cannot run `{}`: {source}", program.to_string_lossy())]
    Main {
        /// [`MainCommand::program`].
        program: OsString,
        /// Why (not found, not executable, …).
        #[source]
        source: io::Error,
    },
}

impl InitError {
    /// The exit status a shell (and `docker run`) gives for this failure:
    /// 127 when the main command does not exist, 126 when it cannot be
    /// executed, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            InitError::Main { source, .. } if source.kind() == io::ErrorKind::NotFound => 127,
            InitError::Main { .. } => 126,
            _ => 1,
        }
    }
}

#[derive(Debug)]
struct Supervised {
    spec: ChildSpec,
    pid: Option<Pid>,
    started: Instant,
    /// The delay used for the last restart, for [`Backoff::delay`].
    delay: Option<Duration>,
    /// Set while the child is down and waiting to be restarted.
    restart_at: Option<Instant>,
    /// How the last one ended, for the restart's log line.
    last_exit: Option<(Pid, String, Duration)>,
    /// The read end of a restarted child's ready pipe.
    ready: Option<OwnedFd>,
}

/// The init: signals, supervised children, the main command.
#[derive(Debug)]
pub struct Init {
    signals: SignalFd,
    children: Vec<Supervised>,
    backoff: Backoff,
    stop_grace: Duration,
    /// What its log lines start with.
    voice: &'static str,
}

/// The signals the init reads from its signalfd.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

impl Init {
    /// Block the handled signals and open the signalfd; when this process
    /// is not PID 1, become a child subreaper so orphans are still reaped
    /// here.
    ///
    /// Call it first, before any thread is started and before anything is
    /// spawned: a signal blocked in one thread can still be delivered to
    /// another, and a `docker stop` that came earlier would be lost (PID 1
    /// ignores signals it has no handler for).
    pub fn new() -> Result<Init, InitError> {
        let set = handled();
        set.thread_block().map_err(InitError::Signals)?;
        let signals = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(InitError::Signals)?;
        if std::process::id() != 1 {
            if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
                log::debug!("[caw-init] cannot become a child subreaper: {e}");
            }
        }
        Ok(Init {
            signals,
            children: Vec::new(),
            backoff: Backoff::default(),
            stop_grace: DEFAULT_STOP_GRACE,
            voice: "[caw-init]",
        })
    }

    /// Use `backoff` for restarts.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Start log lines with `voice` (default `[caw-init]`).
    pub fn with_voice(mut self, voice: &'static str) -> Self {
        self.voice = voice;
        self
    }

    /// Give stopped children `grace` between SIGTERM and SIGKILL.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Start `spec` and wait (at most `ready_timeout`) until it reports
    /// ready; from then on it is restarted whenever it dies. Returns its PID.
    ///
    /// A child that cannot be started, exits, or stays silent is an error
    /// (and is not kept): a helper that never worked is a setup problem to
    /// report, not one to retry forever.
    pub fn supervise(
        &mut self,
        spec: ChildSpec,
        ready_timeout: Duration,
    ) -> Result<u32, InitError> {
        let (pid, ready) = spawn_child(&spec)?;
        if let Some(read) = ready {
            if let Err(reason) = wait_ready(&read, pid, ready_timeout) {
                let _ = kill(pid, Signal::SIGKILL);
                let status = waitpid(pid, None).map(describe).unwrap_or_default();
                return Err(InitError::NotReady {
                    name: spec.name,
                    reason: format!("{reason}{}", status_suffix(&status)),
                });
            }
        }
        self.children.push(Supervised {
            spec,
            pid: Some(pid),
            started: Instant::now(),
            delay: None,
            restart_at: None,
            last_exit: None,
            ready: None,
        });
        Ok(pid.as_raw() as u32)
    }

    /// Run `main` until it ends, then stop the supervised children; returns
    /// the main command's exit status (128+n when signal n killed it).
    pub fn run(mut self, main: &MainCommand) -> Result<i32, InitError> {
        let main_pid = match spawn_main(main) {
            Ok(pid) => pid,
            Err(e) => {
                self.stop_children();
                return Err(e);
            }
        };
        let result = self.main_loop(main_pid);
        self.stop_children();
        result
    }

    /// With no main command: keep the supervised children running until
    /// SIGTERM, SIGINT, SIGHUP or SIGQUIT arrives, then stop them. Other
    /// signals are ignored. Returns 0: a stop that was asked for.
    pub fn keep(mut self) -> Result<i32, InitError> {
        let result = self.keep_loop();
        self.stop_children();
        result
    }

    fn keep_loop(&mut self) -> Result<i32, InitError> {
        loop {
            self.reap(None)?;
            self.restart_due();
            let readable = self.wait_for_events()?;
            while let Ok(Some(info)) = self.signals.read_signal() {
                let stop = matches!(
                    Signal::try_from(info.ssi_signo as i32),
                    Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT)
                );
                if stop {
                    return Ok(0);
                }
            }
            for i in readable {
                self.read_ready(i);
            }
        }
    }

    fn main_loop(&mut self, main_pid: Pid) -> Result<i32, InitError> {
        loop {
            if let Some(code) = self.reap(Some(main_pid))? {
                return Ok(code);
            }
            self.restart_due();
            let readable = self.wait_for_events()?;
            self.forward_signals(main_pid);
            for i in readable {
                self.read_ready(i);
            }
        }
    }

    /// Block until a signal arrives, a restarted child's ready pipe is
    /// readable, or a restart is due; returns the children whose ready pipe
    /// is readable.
    fn wait_for_events(&self) -> Result<Vec<usize>, InitError> {
        let now = Instant::now();
        let timeout = self
            .children
            .iter()
            .filter_map(|c| c.restart_at)
            .min()
            .map(|at| at.saturating_duration_since(now));
        let owners: Vec<usize> = (0..self.children.len())
            .filter(|&i| self.children[i].ready.is_some())
            .collect();
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        fds.extend(owners.iter().map(|&i| {
            let fd = self.children[i]
                .ready
                .as_ref()
                .expect("filtered on is_some");
            PollFd::new(fd.as_fd(), PollFlags::POLLIN)
        }));
        match poll(&mut fds, poll_timeout(timeout)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(InitError::Wait(e)),
        }
        Ok(owners
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| fd.any().unwrap_or(false))
            .map(|(&i, _)| i)
            .collect())
    }

    /// Pass every pending forwarded signal on to the main command; SIGCHLD
    /// only wakes the loop (the next [`Init::reap`] does the work, and
    /// several deaths may share one SIGCHLD).
    fn forward_signals(&mut self, main_pid: Pid) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if signal == Signal::SIGCHLD {
                continue;
            }
            log::debug!("{} forwarding {signal} to pid {main_pid}", self.voice);
            match kill(main_pid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => log::warn!(
                    "{} cannot forward {signal} to pid {main_pid}: {e}",
                    self.voice
                ),
            }
        }
    }

    /// Reap every child that has ended; returns the exit code when one of
    /// them is `main`. A supervised child that ended is scheduled for a
    /// restart; anything else is an orphan and only reaped.
    fn reap(&mut self, main: Option<Pid>) -> Result<Option<i32>, InitError> {
        let mut main_code = None;
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(status) => status,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(InitError::Wait(e)),
            };
            let Some(pid) = status.pid() else { continue };
            if Some(pid) == main {
                if let Some(code) = exit_code(status) {
                    main_code = Some(code);
                }
            } else if let Some(child) = self.children.iter_mut().find(|c| c.pid == Some(pid)) {
                let ran = child.started.elapsed();
                let delay = self.backoff.delay(child.delay, ran);
                child.pid = None;
                child.ready = None;
                child.delay = Some(delay);
                child.restart_at = Some(Instant::now() + delay);
                child.last_exit = Some((pid, describe(status), ran));
                if let Some(path) = &child.spec.pid_file {
                    let _ = std::fs::remove_file(path);
                }
            } else {
                log::debug!("{} reaped pid {pid} ({})", self.voice, describe(status));
            }
        }
        Ok(main_code)
    }

    /// Restart each child whose backoff has passed, one log line each.
    fn restart_due(&mut self) {
        let now = Instant::now();
        for child in &mut self.children {
            if child.restart_at.is_none_or(|at| at > now) {
                continue;
            }
            let (old, how, ran) = child.last_exit.take().unwrap_or((
                Pid::from_raw(0),
                String::from("ended"),
                Duration::ZERO,
            ));
            let waited = child.delay.unwrap_or_default();
            let what = format!(
                "{} the {} (pid {old}) {how} after {}; ",
                self.voice,
                child.spec.name,
                human(ran)
            );
            match spawn_child(&child.spec) {
                Ok((pid, ready)) => {
                    log::warn!("{what}restarted it as pid {pid} (after {})", human(waited));
                    child.pid = Some(pid);
                    child.ready = ready;
                    child.started = Instant::now();
                    child.restart_at = None;
                }
                Err(e) => {
                    let delay = self.backoff.delay(child.delay, Duration::ZERO);
                    log::error!("{what}{e}; trying again in {}", human(delay));
                    child.delay = Some(delay);
                    child.restart_at = Some(now + delay);
                    child.last_exit = Some((old, how, ran));
                }
            }
        }
    }

    /// A restarted child's ready pipe became readable: it is ready (one
    /// byte) or gone (EOF, and its death is handled by [`Init::reap`]).
    fn read_ready(&mut self, i: usize) {
        let child = &mut self.children[i];
        let Some(fd) = child.ready.take() else { return };
        let mut byte = [0u8; 1];
        if nix::unistd::read(fd.as_fd(), &mut byte) == Ok(1) {
            if let Some(pid) = child.pid {
                log::debug!(
                    "{} the {} (pid {pid}) is ready",
                    self.voice,
                    child.spec.name
                );
            }
        }
    }

    /// SIGTERM every running supervised child, wait up to the grace period
    /// (reaping whatever ends meanwhile), then SIGKILL what is left.
    fn stop_children(&mut self) {
        let running: Vec<Pid> = self.children.iter().filter_map(|c| c.pid).collect();
        for &pid in &running {
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + self.stop_grace;
        loop {
            // Reaped children are marked down; stop restarting them too.
            let _ = self.reap(None);
            for c in &mut self.children {
                c.restart_at = None;
            }
            if self.children.iter().all(|c| c.pid.is_none()) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                for c in &mut self.children {
                    if let Some(pid) = c.pid.take() {
                        log::warn!(
                            "{} the {} (pid {pid}) ignored SIGTERM; killing it",
                            self.voice,
                            c.spec.name
                        );
                        let _ = kill(pid, Signal::SIGKILL);
                        let _ = waitpid(pid, None);
                    }
                }
                break;
            }
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, poll_timeout(Some(left)));
            // Only SIGCHLD matters now; the main command is gone.
            while let Ok(Some(_)) = self.signals.read_signal() {}
        }
        for c in &self.children {
            if let Some(path) = &c.spec.pid_file {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn poll_timeout(timeout: Option<Duration>) -> PollTimeout {
    match timeout {
        None => PollTimeout::NONE,
        // Round up: a poll that returns a little early would spin.
        Some(d) => {
            PollTimeout::try_from(d + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Wait until one byte arrives on `read` (ready), EOF (the child is gone),
/// or `timeout` passes.
pub(crate) fn wait_ready(read: &OwnedFd, pid: Pid, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("pid {pid} was not ready after {}", human(timeout)));
        }
        let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, poll_timeout(Some(left))) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
        let mut byte = [0u8; 1];
        return match nix::unistd::read(read.as_fd(), &mut byte) {
            Ok(1) => Ok(()),
            Ok(_) => Err(format!("pid {pid} exited before it was ready")),
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => Err(format!("cannot read its ready pipe: {e}")),
        };
    }
}

/// Start a supervised child: its own session, stdin from /dev/null,
/// stdout and stderr shared with the init (so `docker logs` shows it), an
/// empty signal mask, and the write end of a fresh ready pipe at
/// `spec.ready_fd`. Returns its PID and the pipe's read end.
pub(crate) fn spawn_child(spec: &ChildSpec) -> Result<(Pid, Option<OwnedFd>), InitError> {
    let start_error = |source: io::Error| InitError::Start {
        name: spec.name.clone(),
        program: spec.program.clone(),
        source,
    };
    let pipe = match spec.ready_fd {
        Some(_) => Some(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| start_error(e.into()))?),
        None => None,
    };
    let target = spec.ready_fd;
    let write_raw = pipe.as_ref().map(|(_, w)| w.as_raw_fd());
    let mut cmd = Command::new(&spec.program);
    cmd.arg0(&spec.arg0).args(&spec.args).stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec. It only
    // makes async-signal-safe system calls (setsid, dup2, fcntl,
    // sigprocmask) and allocates nothing. The descriptor it duplicates is
    // the pipe's write end, open in the parent until spawn returns; the
    // OwnedFd that dup2_raw returns is forgotten, so the new descriptor
    // stays open (without close-on-exec) for the program.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if let (Some(write), Some(target)) = (write_raw, target) {
                let write = std::os::fd::BorrowedFd::borrow_raw(write);
                if write.as_raw_fd() == target {
                    fcntl(write, FcntlArg::F_SETFD(FdFlag::empty()))?;
                } else {
                    std::mem::forget(nix::unistd::dup2_raw(write, target)?);
                }
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(start_error)?;
    // Not waited on through std: the init reaps with waitpid(-1).
    let pid = Pid::from_raw(child.id() as i32);
    drop(child);
    if let Some(path) = &spec.pid_file {
        let text = format!("{pid}\n");
        if let Err(e) = caw_auth::fs::write_atomic(path, text.as_bytes(), 0o644, None) {
            log::warn!("[caw-init] cannot record the {}'s pid: {e}", spec.name);
        }
    }
    // The child holds the write end now: EOF on the read end means it is gone.
    Ok((pid, pipe.map(|(read, _write)| read)))
}

/// Start the main command (see the module docs for what it gets).
fn spawn_main(main: &MainCommand) -> Result<Pid, InitError> {
    let mut cmd = Command::new(&main.program);
    cmd.args(&main.args)
        .env_clear()
        .envs(main.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    let ids = main.credentials.as_ref().map(|c| {
        let groups: Vec<Gid> = c.groups.iter().copied().map(Gid::from_raw).collect();
        (Uid::from_raw(c.uid), Gid::from_raw(c.gid), groups)
    });
    let stdin = io::stdin();
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (isatty, sigprocmask, tcsetpgrp,
    // getpid, setgroups, setgid, setuid) on data prepared before the fork;
    // it allocates nothing (`io::Stdin::as_fd` takes no lock).
    unsafe {
        cmd.pre_exec(move || {
            // std put the child in its own process group; make that the
            // terminal's foreground group. SIGTTOU is blocked meanwhile: a
            // background group may not take the terminal otherwise.
            if nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
                let mut ttou = SigSet::empty();
                ttou.add(Signal::SIGTTOU);
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&ttou), None)?;
                let _ = nix::unistd::tcsetpgrp(stdin.as_fd(), nix::unistd::getpid());
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            if let Some((uid, gid, groups)) = &ids {
                nix::unistd::setgroups(groups)?;
                nix::unistd::setgid(*gid)?;
                nix::unistd::setuid(*uid)?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| InitError::Main {
        program: main.program.clone(),
        source,
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    drop(child);
    Ok(pid)
}

/// The shell's exit status for a process that ended: its code, or 128+n
/// for signal n. `None` for a stop or continue report.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
        other => format!("{other:?}"),
    }
}

fn status_suffix(status: &str) -> String {
    if status.is_empty() {
        String::new()
    } else {
        format!(" (it {status})")
    }
}

/// `100ms`, `1.5s`, `2m 5s`: how long a child ran or a restart waited.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let b = Backoff::default();
        let quick = Duration::from_millis(50);
        let mut delays = Vec::new();
        let mut previous = None;
        for _ in 0..8 {
            let d = b.delay(previous, quick);
            delays.push(d.as_millis());
            previous = Some(d);
        }
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.delay(previous, b.reset_after).as_millis(), 100);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let pid = Pid::from_raw(7);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            Some(143)
        );
        assert_eq!(exit_code(WaitStatus::Continued(pid)), None);
    }

    #[test]
    fn main_command_debug_shows_no_environment_value() {
        let main = MainCommand {
            program: "agent".into(),
            args: vec![],
            env: vec![("ANTHROPIC_API_KEY".into(), "sk-ant-SECRET".into())],
            credentials: None,
        };
        let text = format!("{main:?}");
        assert!(
            text.contains("ANTHROPIC_API_KEY") && !text.contains("SECRET"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_program_exits_127_and_an_unrunnable_one_126() {
        let e = |kind| InitError::Main {
            program: "x".into(),
            source: io::Error::from(kind),
        };
        assert_eq!(e(io::ErrorKind::NotFound).exit_code(), 127);
        assert_eq!(e(io::ErrorKind::PermissionDenied).exit_code(), 126);
    }
}
