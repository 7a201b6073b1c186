//! The init (`caw_guard::supervise`) with real processes: exit statuses,
//! signal forwarding, orphan reaping, supervision after SIGKILL, stopping
//! the supervised children, the main command's environment and user.
//!
//! The init blocks signals and reads them from a signalfd, which only works
//! in a process whose every thread blocks them; the test harness has
//! several threads. So each test runs this very binary again as the init
//! (`CAW_INIT_TEST_CHILD=1`, arguments below), and drives it from outside
//! with real signals, the way Docker does.
//!
//! The user-switching test needs root; without it it is reported as
//! ignored, or fails when `CI` is set.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use caw_guard::supervise::{Backoff, ChildSpec, Credentials, Init, MainCommand};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CHILD_ENV: &str = "CAW_INIT_TEST_CHILD";

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        std::process::exit(child_main());
    }
    let args = Arguments::from_args();
    let tests = vec![
        Trial::test("exit_status_is_the_main_commands", exit_status),
        Trial::test(
            "forwards_signals_to_the_main_command_only",
            forwards_signals,
        ),
        Trial::test("orphans_are_reaped", orphans_are_reaped),
        Trial::test(
            "killed_supervised_child_is_restarted",
            restarts_after_sigkill,
        ),
        Trial::test(
            "supervised_child_ignoring_sigterm_is_killed",
            stop_escalates,
        ),
        Trial::test("failed_first_start_is_an_error", failed_first_start),
        Trial::test("missing_main_command_exits_127", missing_main),
        Trial::test(
            "main_command_gets_exactly_its_environment",
            exact_environment,
        ),
        Trial::test(
            "children_start_with_no_signal_blocked",
            signal_mask_is_empty,
        ),
        Trial::ignorable_test("main_command_runs_as_the_user_and_groups", as_user),
    ];
    libtest_mimic::run(&args, tests).exit();
}

// ---- the init process ------------------------------------------------------

/// Log lines to stderr, as the CLI's logger writes them.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let _ = writeln!(std::io::stderr(), "{}: {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

/// `[--supervise SCRIPT] [--ready] [--pid-file P] [--grace-ms N]
/// [--as UID:GID:G,G…] [--env K=V]… -- PROGRAM ARGS…`; the supervised
/// child is `sh -c SCRIPT`.
fn child_main() -> i32 {
    let mut init = match Init::new() {
        Ok(init) => init.with_backoff(Backoff::default()),
        Err(e) => {
            eprintln!("init: {e}");
            return 1;
        }
    };
    log::set_logger(&Stderr).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let mut args = std::env::args_os().skip(1);
    let mut spec: Option<ChildSpec> = None;
    let mut main = MainCommand {
        program: OsString::new(),
        args: Vec::new(),
        env: Vec::new(),
        credentials: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("option value");
        match arg.to_str().expect("utf-8 option") {
            "--supervise" => {
                spec = Some(ChildSpec {
                    name: "test helper".into(),
                    program: "/bin/sh".into(),
                    arg0: "sh".into(),
                    args: vec!["-c".into(), value()],
                    ready_fd: None,
                    pid_file: None,
                })
            }
            "--supervise-argv" => {
                // A program and its arguments, space-separated, run directly.
                let text = value().into_string().unwrap();
                let mut words = text.split(' ').map(OsString::from);
                let program = words.next().unwrap();
                spec = Some(ChildSpec {
                    name: "test helper".into(),
                    program: program.clone().into(),
                    arg0: program,
                    args: words.collect(),
                    ready_fd: None,
                    pid_file: None,
                })
            }
            "--ready" => spec.as_mut().unwrap().ready_fd = Some(3),
            "--pid-file" => spec.as_mut().unwrap().pid_file = Some(value().into()),
            "--grace-ms" => {
                let ms = value().into_string().unwrap().parse().unwrap();
                init = init.with_stop_grace(Duration::from_millis(ms));
            }
            "--as" => {
                let text = value().into_string().unwrap();
                let f: Vec<&str> = text.split(':').collect();
                main.credentials = Some(Credentials {
                    uid: f[0].parse().unwrap(),
                    gid: f[1].parse().unwrap(),
                    groups: f[2].split(',').map(|g| g.parse().unwrap()).collect(),
                });
            }
            "--env" => {
                let text = value().into_string().unwrap();
                let (k, v) = text.split_once('=').unwrap();
                main.env.push((k.into(), v.into()));
            }
            "--" => break,
            other => panic!("unknown option {other}"),
        }
    }
    main.program = args.next().expect("a main command");
    main.args = args.collect();
    if main.env.is_empty() {
        main.env.push(("PATH".into(), "/usr/bin:/bin".into()));
    }
    if let Some(spec) = spec {
        if let Err(e) = init.supervise(spec, Duration::from_secs(5)) {
            eprintln!("error: {e}");
            return 1;
        }
    }
    match init.run(&main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code().into()
        }
    }
}

// ---- helpers ---------------------------------------------------------------

fn init_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, "1").args(args).stdin(Stdio::null());
    cmd
}

/// Run the init to completion (at most 20 s).
fn run_init(args: &[&str]) -> Output {
    let child = init_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, Duration::from_secs(20))
}

fn finish(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the init did not exit within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Wait until `check` holds (at most `timeout`).
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `(ppid, state)` from /proc/PID/stat, or `None` when the PID is gone.
fn stat(pid: i32) -> Option<(i32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((ppid, state))
}

/// The zombie children of `pid`.
fn zombies_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if stat(p) == Some((pid, 'Z')) {
            out.push(p);
        }
    }
    out
}

fn pids_in(path: &Path) -> Vec<i32> {
    read(path)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("caw-init-")
        .tempdir()
        .unwrap()
}

fn path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

// ---- the tests -------------------------------------------------------------

fn exit_status() -> Result<(), Failed> {
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("kill -KILL $$", 137),
        ("kill -USR1 $$", 138),
    ] {
        let out = run_init(&["--", "/bin/sh", "-c", script]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "`{script}`: {}",
            stderr(&out)
        );
    }
    Ok(())
}

fn forwards_signals() -> Result<(), Failed> {
    let dir = temp();
    let got = path(&dir, "got");
    let helper = path(&dir, "helper");
    let mut script = String::new();
    for name in ["INT", "HUP", "QUIT", "USR1", "USR2", "WINCH"] {
        script.push_str(&format!("trap 'echo {name} >> \"$1\"' {name}; "));
    }
    script.push_str("trap 'echo TERM >> \"$1\"; exit 42' TERM; ");
    script.push_str("echo started >> \"$1\"; while :; do sleep 0.02; done");
    let helper_script = format!(
        "echo $$ >> {}; echo R >&3; exec sleep 1000",
        helper.display()
    );
    let child = init_command(&[
        "--supervise",
        &helper_script,
        "--ready",
        "--",
        "/bin/sh",
        "-c",
        &script,
        "sh",
        got.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let init = Pid::from_raw(child.id() as i32);
    wait_for("the main command", Duration::from_secs(10), || {
        read(&got).contains("started").then_some(())
    });
    let helper_pid = pids_in(&helper);
    assert_eq!(helper_pid.len(), 1);
    let mut expected = vec!["started".to_string()];
    for (signal, name) in [
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
    ] {
        kill(init, signal).unwrap();
        expected.push(name.to_string());
        wait_for(name, Duration::from_secs(5), || {
            (read(&got).lines().collect::<Vec<_>>() == expected).then_some(())
        });
    }
    // The supervised child is in its own session and got none of them.
    assert_eq!(pids_in(&helper), helper_pid, "the helper was restarted");
    kill(init, Signal::SIGTERM).unwrap();
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(read(&got).ends_with("TERM\n"));
    // Stopped with the main command.
    assert_eq!(stat(helper_pid[0]), None, "the helper outlived the init");
    Ok(())
}

fn orphans_are_reaped() -> Result<(), Failed> {
    let dir = temp();
    let orphan = path(&dir, "orphan");
    let stop = path(&dir, "stop");
    // The inner shell exits at once: its `sleep` is orphaned and handed to
    // the init (a child subreaper here, PID 1 in a container).
    let script = format!(
        "sh -c 'sleep 0.3 & echo $! > {o}'; while [ ! -e {s} ]; do sleep 0.02; done",
        o = orphan.display(),
        s = stop.display()
    );
    let child = init_command(&["--", "/bin/sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let init = child.id() as i32;
    let pid = wait_for("the orphan's pid", Duration::from_secs(10), || {
        pids_in(&orphan).first().copied()
    });
    // It is the init's now (unless it already ended and was reaped).
    if let Some((ppid, state)) = stat(pid) {
        assert_eq!(
            ppid, init,
            "the orphan was not handed to the init ({state})"
        );
    }
    wait_for("the orphan to be reaped", Duration::from_secs(5), || {
        stat(pid).is_none().then_some(())
    });
    assert_eq!(zombies_of(init), Vec::<i32>::new());
    std::fs::write(&stop, "").unwrap();
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("reaped pid {pid}")),
        "{}",
        stderr(&out)
    );
    Ok(())
}

fn restarts_after_sigkill() -> Result<(), Failed> {
    let dir = temp();
    let helper = path(&dir, "helper");
    let pid_file = path(&dir, "helper.pid");
    let stop = path(&dir, "stop");
    let helper_script = format!(
        "echo $$ >> {}; echo R >&3; exec sleep 1000",
        helper.display()
    );
    let main_script = format!("while [ ! -e {} ]; do sleep 0.02; done", stop.display());
    let child = init_command(&[
        "--supervise",
        &helper_script,
        "--ready",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &main_script,
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let init = child.id() as i32;
    let first = wait_for("the helper", Duration::from_secs(10), || {
        pids_in(&helper).first().copied()
    });
    // The init records the pid once the child runs; the helper may have
    // written its own line first.
    wait_for("the pid file", Duration::from_secs(2), || {
        (pids_in(&pid_file) == [first]).then_some(())
    });
    let mut pids = vec![first];
    for round in 1..=2 {
        let victim = *pids.last().unwrap();
        let killed = Instant::now();
        kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
        let next = wait_for("a restarted helper", Duration::from_secs(2), || {
            pids_in(&helper).get(round).copied()
        });
        let took = killed.elapsed();
        assert_ne!(next, victim);
        assert_eq!(stat(next).map(|(ppid, _)| ppid), Some(init));
        wait_for("the new pid file", Duration::from_secs(2), || {
            (pids_in(&pid_file) == [next]).then_some(())
        });
        // The backoff doubles after a quick death: 100 ms, then 200 ms.
        let floor = Duration::from_millis(100 * round as u64 - 20);
        assert!(took >= floor, "round {round}: restarted after {took:?}");
        pids.push(next);
    }
    std::fs::write(&stop, "").unwrap();
    let out = finish(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    let restarts: Vec<&str> = log.lines().filter(|l| l.contains("restarted it")).collect();
    assert_eq!(restarts.len(), 2, "{log}");
    assert!(
        restarts[0].contains(&format!("(pid {first}) was killed by SIGKILL"))
            && restarts[0].contains(&format!("as pid {}", pids[1])),
        "{}",
        restarts[0]
    );
    assert_eq!(stat(pids[2]), None, "the last helper outlived the init");
    assert!(!pid_file.exists(), "the pid file was left behind");
    Ok(())
}

fn stop_escalates() -> Result<(), Failed> {
    let dir = temp();
    let helper = path(&dir, "helper");
    let script = format!(
        "trap '' TERM; echo $$ > {}; echo R >&3; while :; do sleep 0.05; done",
        helper.display()
    );
    let started = Instant::now();
    let out = run_init(&[
        "--supervise",
        &script,
        "--ready",
        "--grace-ms",
        "300",
        "--",
        "/bin/sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ignored SIGTERM; killing it"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = pids_in(&helper)[0];
    assert_eq!(stat(pid), None, "the helper survived");
    Ok(())
}

fn failed_first_start() -> Result<(), Failed> {
    let dir = temp();
    let ran = path(&dir, "ran");
    let out = run_init(&[
        "--supervise",
        "exit 3",
        "--ready",
        "--",
        "/bin/sh",
        "-c",
        &format!("touch {}", ran.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("the test helper did not start")
            && err.contains("exited before it was ready (it exited with status 3)"),
        "{err}"
    );
    assert!(!ran.exists(), "the main command ran without its helper");
    Ok(())
}

fn missing_main() -> Result<(), Failed> {
    let dir = temp();
    let helper = path(&dir, "helper");
    let script = format!(
        "echo $$ > {}; echo R >&3; exec sleep 1000",
        helper.display()
    );
    let out = run_init(&[
        "--supervise",
        &script,
        "--ready",
        "--",
        "/nonexistent/agent",
    ]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot run `/nonexistent/agent`"));
    assert_eq!(stat(pids_in(&helper)[0]), None, "the helper survived");
    let out = run_init(&["--", "/dev/null"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    Ok(())
}

fn signal_mask_is_empty() -> Result<(), Failed> {
    // std keeps the parent's signal mask, and the init blocks everything it
    // handles. grep, run directly (a shell may reset the mask it inherits),
    // prints the mask it got.
    let zero = ["SigBlk:", "0000000000000000"];
    let out = run_init(&["--", "grep", "SigBlk", "/proc/self/status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let main = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        main.split_whitespace().collect::<Vec<_>>(),
        zero,
        "the main command starts with signals blocked"
    );
    // The supervised grep prints to the init's stdout, exits, and is
    // restarted while the main command sleeps.
    let out = run_init(&[
        "--supervise-argv",
        "grep SigBlk /proc/self/status",
        "--",
        "sleep",
        "0.5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert!(!lines.is_empty(), "the supervised grep printed nothing");
    for line in lines {
        assert_eq!(line, zero, "a supervised child starts with signals blocked");
    }
    Ok(())
}

fn exact_environment() -> Result<(), Failed> {
    let out = init_command(&[
        "--env",
        "PATH=/usr/bin:/bin",
        "--env",
        "ANSWER=42 with spaces",
        "--",
        "env",
    ])
    .env("LEAKED_FROM_PARENT", "1")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, ["ANSWER=42 with spaces", "PATH=/usr/bin:/bin"]);
    Ok(())
}

fn as_user() -> Result<Completion, Failed> {
    if !nix::unistd::geteuid().is_root() {
        let why = "needs root to change the user";
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            return Err(format!("{why}, and `CI` is set").into());
        }
        return Ok(Completion::ignored_with(why));
    }
    let out = init_command(&[
        "--as",
        "4321:4322:4322,4400",
        "--",
        "/bin/sh",
        "-c",
        "id -u; id -g; id -G",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "4321\n4322\n4322 4400\n"
    );
    Ok(Completion::Completed)
}
