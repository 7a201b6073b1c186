//! Benchmark of the running guard: sync latency per direction and write
//! style, idle CPU, and memory.
//!
//! ```sh
//! bin=$(scripts/build-static.sh)
//! cargo run --release -p caw-guard --example guard_latency -- --caw "$bin"
//! ```
//!
//! Starts `caw auth guard` on a temp auth dir and home (for the current
//! user, so no root is needed; the mount side is a plain file, which inotify
//! treats exactly like a bind-mounted one), then:
//! - writes a fresher credential N times per case and spins until the other
//!   side holds it: host in place → home, home in place → host, home temp
//!   file + rename → host;
//! - reads the guard's utime+stime from `/proc/PID/stat` across an idle spell;
//! - reads VmRSS and VmHWM from `/proc/PID/status`.
//!
//! Options: `--caw PATH` (default `$CAW_BIN`, else the static build under
//! `$CARGO_TARGET_DIR` or `target/`), `--iterations N` (default 200),
//! `--idle-secs S` (default 5).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CRED_SRC: &str = "claude/credentials.json";
const CRED_TARGET: &str = ".claude/.credentials.json";

/// How a side is written: in place, or temp file + rename.
type WriteFn = fn(&Path, &[u8]);

fn main() {
    let mut args = std::env::args().skip(1);
    let mut caw = std::env::var_os("CAW_BIN").map(PathBuf::from);
    let mut iterations = 200usize;
    let mut idle_secs = 5u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--caw" => caw = args.next().map(PathBuf::from),
            "--iterations" => iterations = args.next().and_then(|v| v.parse().ok()).expect("N"),
            "--idle-secs" => idle_secs = args.next().and_then(|v| v.parse().ok()).expect("S"),
            other => panic!("unknown argument `{other}` (see the file's doc comment)"),
        }
    }
    let caw = caw.unwrap_or_else(|| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        PathBuf::from(target).join("x86_64-unknown-linux-gnu/release/caw")
    });
    assert!(
        caw.exists(),
        "no caw at `{}`: build one with scripts/build-static.sh",
        caw.display()
    );

    let dir = tempfile::Builder::new()
        .prefix("caw-bench-")
        .tempdir()
        .unwrap();
    let (mount_point, home) = (dir.path().join("auth"), dir.path().join("home"));
    let user = current_user();
    write_auth_dir(&mount_point, &home);
    let mut guard = start_guard(
        &caw,
        &mount_point,
        &home,
        &user,
        &dir.path().join("guard.log"),
    );
    let pid = guard.id() as i32;

    let host = mount_point.join(CRED_SRC);
    let copy = home.join(CRED_TARGET);
    let mut expiry = 2_000_000_000_000i64;
    let mut next = || {
        expiry += 1000;
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"bench-access-{expiry}","refreshToken":"bench-refresh-{expiry}","expiresAt":{expiry}}}}}"#
        )
        .into_bytes()
    };

    println!("caw: {}", caw.display());
    println!("guard pid {pid}; {iterations} syncs per case\n");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "case", "median", "p90", "p99", "max"
    );
    let cases: [(&str, &Path, &Path, WriteFn); 3] = [
        ("host in place -> home", &host, &copy, write_in_place),
        ("home in place -> host", &copy, &host, write_in_place),
        ("home temp+rename -> host", &copy, &host, write_by_rename),
    ];
    for (name, from, to, write) in cases {
        let mut samples = Vec::with_capacity(iterations);
        // Woken by inotify on the target's directory rather than spinning, so
        // the bench does not take the CPU the guard needs (2 cores here).
        let waiter = Waiter::new(to.parent().unwrap());
        for _ in 0..iterations {
            let bytes = next();
            write(from, &bytes);
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs(5);
            while std::fs::read(to).map_or(true, |b| b != bytes) {
                assert!(Instant::now() < deadline, "{name}: no sync within 5 s");
                waiter.wait(deadline - Instant::now());
            }
            samples.push(t0.elapsed());
            // Let the guard see its own write come back before the next one.
            std::thread::sleep(Duration::from_millis(5));
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<34} {:>9} {:>9} {:>9} {:>9}",
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(0.99)),
            ms(*samples.last().unwrap())
        );
    }

    std::thread::sleep(Duration::from_millis(200));
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle = cpu_ticks(pid) - ticks_before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    println!(
        "\nidle CPU over {idle_secs} s: {idle} ticks ({} ms of utime+stime)",
        idle * 1000 / hz
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for key in ["VmRSS", "VmHWM"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or(key);
        println!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
    }

    // SAFETY: plain syscall on the guard we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = guard.wait().unwrap();
    println!("guard exited on SIGTERM: {status}");
}

/// Run `caw auth guard` the way `container-setup` does (which itself
/// refuses a mount side that is not a bind mount) and wait until it is ready.
fn start_guard(
    caw: &Path,
    mount_point: &Path,
    home: &Path,
    user: &str,
    log: &Path,
) -> std::process::Child {
    use std::io::Read as _;
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    use std::os::unix::process::CommandExt as _;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for both ends.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w = write_end.as_raw_fd();
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(caw);
    cmd.args(["auth", "guard", "--ready-fd", "3", "--user", user])
        .arg("--mount-point")
        .arg(mount_point)
        .arg("--container-home")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: only dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(write_end);
    let mut byte = [0u8; 1];
    let n = std::fs::File::from(read_end).read(&mut byte).unwrap();
    assert_eq!(n, 1, "the guard exited before it was ready");
    child
}

/// Blocks until something in a directory changes (or a timeout).
struct Waiter(i32);

impl Waiter {
    fn new(dir: &Path) -> Waiter {
        use std::os::unix::ffi::OsStrExt as _;
        // SAFETY: plain syscall.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        assert!(fd >= 0);
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let mask = libc::IN_MODIFY | libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE;
        // SAFETY: `fd` is an inotify fd and `path` is NUL-terminated.
        assert!(unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } >= 0);
        Waiter(fd)
    }

    fn wait(&self, timeout: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } > 0 {
            let mut buf = [0u8; 4096];
            // SAFETY: `buf` is writable for its length.
            unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // SAFETY: closing the fd this struct owns.
        unsafe { libc::close(self.0) };
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn write_in_place(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn write_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("bench-tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The login name of the effective user, from /etc/passwd.
fn current_user() -> String {
    // SAFETY: plain syscall.
    let uid = unsafe { libc::geteuid() }.to_string();
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[2] == uid).then(|| f[0].to_string())
        })
        .expect("the current user is in /etc/passwd")
}

/// A v1 auth dir with one Claude credential, as `caw auth setup` writes it.
fn write_auth_dir(mount_point: &Path, home: &Path) {
    std::fs::create_dir_all(mount_point.join("claude")).unwrap();
    let manifest = format!(
        r#"{{"version":1,"created_at":"2026-01-01T00:00:00Z","host_home":"/host",
            "container_home":"{}","mount_point":"{}","agents":{{"claude":{{"files":[
            {{"src":"{CRED_SRC}","container_target":"{CRED_TARGET}",
              "host_original":".claude/.credentials.json","type":"credential",
              "strategy":"bind","mode":"0600"}}]}}}}}}"#,
        home.display(),
        mount_point.display()
    );
    std::fs::write(mount_point.join("manifest.json"), manifest).unwrap();
    let cred = mount_point.join(CRED_SRC);
    std::fs::write(
        &cred,
        br#"{"claudeAiOauth":{"accessToken":"bench","expiresAt":1999999999000}}"#,
    )
    .unwrap();
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    let copy = home.join(CRED_TARGET);
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&cred, &copy).unwrap();
}
