//! The few Linux calls the guard needs that std does not wrap: inotify,
//! signalfd, poll and `*at` directory walking. Each wrapper owns its fd and
//! turns `-1` into an `io::Error`; nothing else here has a policy.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL"))
}

/// `/proc/self/fd/N`: a path that names exactly the open file or directory.
///
/// Used to hand a directory that was opened without following symlinks to
/// APIs that only take paths (`write_atomic`, `inotify_add_watch`): the kernel
/// resolves this magic link to the open inode, not by walking names again.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Open a directory by path (following symlinks: only for paths root chose).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `name` inside `dir` with `flags` (always `O_CLOEXEC | O_NOFOLLOW`).
pub fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: `dir` is an open fd and `c` a valid NUL-terminated string.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    })?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: `dir` is an open fd and `c` a valid NUL-terminated string.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) })?;
    Ok(())
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never a link's target.
pub fn lstatat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: an all-zero `stat` is a valid value that fstatat overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open, `c` is NUL-terminated, `st` is a valid out pointer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// `fstat(fd)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value that fstat overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a valid out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `fchown(fd, uid, gid)` and `fchmod(fd, mode)`: set both through the handle.
pub fn fchown_fchmod(fd: BorrowedFd<'_>, owner: (u32, u32), mode: u32) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor for the duration of both calls.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), owner.0, owner.1) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(())
}

/// The file-type bits of a `stat`.
pub fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// One inotify event: the watch it came from, its mask and the child name (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The watch descriptor (`-1` for a queue overflow).
    pub wd: i32,
    /// `IN_*` bits.
    pub mask: u32,
    /// The entry's name, for events on a directory's children.
    pub name: Option<OsString>,
}

/// An inotify instance, non-blocking: readiness comes from [`poll`].
#[derive(Debug)]
pub struct Inotify {
    fd: OwnedFd,
    buf: Vec<u64>,
}

impl Inotify {
    /// `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall with constant flags.
        let fd = cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        Ok(Inotify {
            // SAFETY: `fd` was just returned and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            // u64 elements keep the buffer aligned for `inotify_event` headers.
            buf: vec![0u64; 1024],
        })
    }

    /// Watch `path` for `mask`; the same inode always yields the same descriptor.
    pub fn add_watch(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: the inotify fd is open and `c` is NUL-terminated.
        cvt(unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) })
    }

    /// Stop watching `wd`; a watch the kernel already dropped is not an error.
    pub fn rm_watch(&self, wd: i32) {
        // SAFETY: plain syscall; EINVAL for a stale wd is expected and ignored.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Append every queued event to `out`; returns when the queue is empty.
    pub fn read_into(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        loop {
            let bytes = self.buf.len() * 8;
            // SAFETY: the buffer is `bytes` long and writable; the fd is open.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast::<libc::c_void>(),
                    bytes,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(err),
                };
            }
            // SAFETY: the kernel initialised the first `n` bytes of the buffer.
            let data =
                unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), n as usize) };
            let mut off = 0;
            while off + HEADER <= data.len() {
                // SAFETY: a whole header lies at `off`; read_unaligned copes with any alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(data[off..].as_ptr().cast()) };
                let name_start = off + HEADER;
                let name_end = (name_start + ev.len as usize).min(data.len());
                let raw = &data[name_start..name_end];
                let name = match raw.iter().position(|&b| b == 0).unwrap_or(raw.len()) {
                    0 => None,
                    end => Some(OsString::from_vec(raw[..end].to_vec())),
                };
                out.push(Event {
                    wd: ev.wd,
                    mask: ev.mask,
                    name,
                });
                off = name_end;
            }
        }
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// SIGTERM and SIGINT delivered through a file descriptor.
///
/// The signals are blocked for the calling thread, so they wait in the fd
/// until the loop reads them: no handler runs in the middle of a write.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

impl StopSignals {
    /// Block SIGTERM, SIGINT and SIGHUP and route them to a signalfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t for all four calls; the signal numbers are valid.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
        }
        // SAFETY: `set` is initialised; the old mask is not needed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: `set` is initialised; -1 asks for a new signalfd.
        let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        Ok(StopSignals {
            // SAFETY: `fd` was just returned and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The name of the pending signal, if one arrived.
    pub fn pending(&self) -> Option<&'static str> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is `size` bytes and writable; the fd is open.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n as usize != size {
            return None;
        }
        Some(match info.ssi_signo as i32 {
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            libc::SIGHUP => "SIGHUP",
            _ => "a signal",
        })
    }
}

impl AsFd for StopSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Which of two fds became readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The first fd (the inotify instance).
    pub first: bool,
    /// The second fd (the stop signal).
    pub second: bool,
}

/// Block until `a` or `b` is readable, or `timeout` passes (`None`: forever).
pub fn poll2(a: BorrowedFd<'_>, b: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    loop {
        // SAFETY: `fds` holds two valid pollfd entries; `ts_ptr` is null or points to `ts`.
        let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, ts_ptr, std::ptr::null()) };
        if rc >= 0 {
            let hit =
                |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0;
            return Ok(Ready {
                first: hit(&fds[0]),
                second: hit(&fds[1]),
            });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: plain syscall that cannot fail.
    unsafe { libc::geteuid() }
}

/// Take ownership of an inherited descriptor if it is open.
pub fn inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // SAFETY: the descriptor is open and was handed to this process to own.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both were just returned by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
