//! Running containers from the test image, always removed afterwards, and
//! waiting for a condition with a deadline instead of sleeping.

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::engines::Row;
use crate::image::USER;

/// Run `cmd` to completion, feeding it `stdin`; kill it after `timeout`.
pub fn run_with_timeout(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(bytes)?;
    }
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// `docker <args>`; panics when docker cannot be run or hangs.
pub fn docker(args: &[String], stdin: Option<&[u8]>, timeout: Duration) -> Output {
    Row::Docker.run(args, stdin, timeout)
}

/// Call `check` every `interval` until it returns `Some` or `timeout` has
/// passed; on success, also how long it took.
pub fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some((value, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(interval);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A container with a unique name, removed (`docker rm -f`) when dropped,
/// after printing its logs if the test is failing.
pub struct Container {
    pub name: String,
    /// The engine (and mode) it runs on.
    pub row: Row,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Container {
    fn named(label: &str, row: Row) -> Container {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Container {
            name: format!("caw-e2e-{}-{n}-{label}", std::process::id()),
            row,
        }
    }

    /// `<engine> <args>` on this container's engine.
    fn engine(&self, args: &[String], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        self.row.run(args, stdin, timeout)
    }

    fn run_args(&self, detach: bool) -> Vec<String> {
        let mut args = vec!["run".to_string(), "--rm".into()];
        if detach {
            args.push("--detach".into());
        }
        args.extend([
            "--name".into(),
            self.name.clone(),
            "--label".into(),
            "caw-e2e=1".into(),
            "--network".into(),
            "none".into(),
        ]);
        args.extend(self.row.run_options());
        args
    }

    /// Start `image` detached on `row`'s engine with `flags` (the output of
    /// `caw auth docker-flags`), and wait for its entrypoint to report that
    /// `setup-container.sh` exited 0.
    pub fn serve_on(row: Row, label: &str, image: &str, flags: &[String]) -> Container {
        let container = Container::named(label, row);
        let mut args = container.run_args(true);
        args.extend(flags.iter().cloned());
        args.extend([image.to_string(), "serve".into()]);
        let out = container.engine(&args, None, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{row} {} failed: {}",
            args.join(" "),
            text(&out.stderr)
        );
        let marker = "caw-e2e: setup-container.sh exited ";
        let exit = poll(Duration::from_secs(30), Duration::from_millis(50), || {
            let logs = container.logs();
            let line = logs.lines().find(|l| l.starts_with(marker))?;
            Some(line[marker.len()..].trim().to_string())
        });
        match exit {
            Some((code, _)) => assert_eq!(
                code,
                "0",
                "setup-container.sh failed in `{}`:\n{}",
                container.name,
                container.logs()
            ),
            None => panic!(
                "setup-container.sh did not finish within 30s in `{}`:\n{}",
                container.name,
                container.logs()
            ),
        }
        container
    }

    /// Run `image` in the foreground with `flags` and the entrypoint's `once`
    /// mode; the container's output and exit status.
    pub fn once(label: &str, image: &str, flags: &[String]) -> Output {
        let container = Container::named(label, Row::Docker);
        let mut args = container.run_args(false);
        args.extend(flags.iter().cloned());
        args.extend([image.to_string(), "once".into()]);
        docker(&args, None, Duration::from_secs(60))
    }

    /// Everything the container printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        let out = self.engine(
            &["logs".into(), self.name.clone()],
            None,
            Duration::from_secs(30),
        );
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// `sh -c script` in the container, as the agent user unless `root`;
    /// `args` become `$1`…
    pub fn sh(&self, root: bool, script: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = vec!["exec".to_string()];
        if stdin.is_some() {
            cmd.push("--interactive".into());
        }
        if !root {
            cmd.extend(["--user".into(), USER.into()]);
        }
        cmd.extend([
            self.name.clone(),
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
        ]);
        cmd.extend(args.iter().map(|a| a.to_string()));
        self.engine(&cmd, stdin, Duration::from_secs(30))
    }

    /// Like [`Container::sh`], but the command must succeed; its stdout.
    pub fn sh_ok(&self, root: bool, script: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.sh(root, script, args, stdin);
        assert!(
            out.status.success(),
            "`{script}` {args:?} failed in `{}` ({}): {}{}",
            self.name,
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The agent user's view of `path`: its bytes, or `None` when it cannot
    /// read it.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let out = self.sh(false, "cat \"$1\"", &[path], None);
        out.status.success().then_some(out.stdout)
    }

    /// The container's init process, as the host sees it.
    pub fn pid(&self) -> u32 {
        let out = self.engine(
            &[
                "inspect".into(),
                "--format".into(),
                "{{.State.Pid}}".into(),
                self.name.clone(),
            ],
            None,
            Duration::from_secs(30),
        );
        text(&out.stdout)
            .trim()
            .parse()
            .expect("a running container has a pid")
    }

    /// `path` in the container, read from the host through
    /// `/proc/<pid>/root`: no `docker exec` round trip in the way of timing.
    pub fn host_view(&self, path: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/{}/root{path}", self.pid()))
    }

    /// `mode uid gid user group` of each path, as `stat` in the container sees it.
    pub fn stat(&self, paths: &[&str]) -> Vec<String> {
        self.sh_ok(true, "stat -c '%a %u %g %U %G' \"$@\"", paths, None)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = self.row.command().args(["logs", &self.name]).output();
            if let Ok(out) = out {
                eprintln!(
                    "--- logs of `{}` ---\n{}{}--- end of logs ---",
                    self.name,
                    text(&out.stdout),
                    text(&out.stderr)
                );
            }
        }
        let _ = self
            .row
            .command()
            .args(["rm", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
