//! No hang and no panic: a FIFO in place of the manifest, a full or closed stdout.

use std::process::{Output, Stdio};
use std::time::Duration;

use crate::util::*;

/// Nothing reads a FIFO's other end here: opening it for reading the plain
/// way would block for ever.
#[test]
fn a_fifo_in_place_of_the_manifest_never_hangs() {
    let env = TestEnv::full();
    env.setup();
    let manifest = env.auth.join("manifest.json");
    std::fs::remove_file(&manifest).unwrap();
    mkfifo(&manifest);
    for args in [
        &["status"][..],
        &["docker-flags"],
        &["teardown"],
        &["teardown", "--force"],
        &["setup"],
    ] {
        let mut cmd = env.caw();
        cmd.arg("auth").args(args).arg("--auth-dir").arg(&env.auth);
        let out = cmd.timeout(Duration::from_secs(20)).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(
            err.contains("`manifest.json` is a FIFO") || err.contains("it is a FIFO"),
            "{err}"
        );
        assert!(stdout(&out).is_empty());
    }
    assert!(
        std::fs::symlink_metadata(&manifest).is_ok(),
        "the FIFO was removed"
    );
}

fn run_with_stdout(env: &TestEnv, args: &[&str], stdout: Stdio) -> Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .env("HOME", &env.home)
        .env("NO_COLOR", "1")
        .env_remove("CAW_AUTH_DIR")
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_write_error(out: &Output, what: &str, args: &[&str]) {
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        out.status.signal(),
        None,
        "{args:?} was killed: {:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(out));
    let err = stderr(out);
    assert!(
        err.contains("error: cannot write to stdout") && err.contains(what),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `caw auth status > /dev/full`: exit 1 with an error, not SIGABRT.
#[test]
fn a_full_stdout_is_an_error() {
    let env = TestEnv::full();
    env.setup();
    let auth = env.auth.display().to_string();
    for args in [
        &["auth", "status", "--auth-dir", &auth][..],
        &["auth", "status", "--json", "--auth-dir", &auth],
        &["auth", "docker-flags", "--auth-dir", &auth],
        &["auth", "setup", "-a", "gemini", "--auth-dir", &auth],
        &["--version"],
        &["auth", "--help"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run_with_stdout(&env, args, full.into());
        assert_write_error(&out, "No space left on device", args);
    }
}

/// `caw auth status | true` when `true` has gone: EPIPE is an error (exit 1
/// and an `error:` line), not a silent exit 0 or a signal.
#[test]
fn a_closed_stdout_is_an_error() {
    let env = TestEnv::full();
    env.setup();
    let auth = env.auth.display().to_string();
    for args in [
        &["auth", "status", "--auth-dir", &auth][..],
        &[
            "auth",
            "docker-flags",
            "--format",
            "json",
            "--auth-dir",
            &auth,
        ],
        &["auth", "setup", "-a", "gemini", "--auth-dir", &auth],
        &["--version"],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = run_with_stdout(&env, args, write.into());
        assert_write_error(&out, "Broken pipe", args);
    }
}

#[test]
fn a_missing_subcommand_is_an_error_line_and_usage() {
    let env = TestEnv::empty();
    for args in [&["auth"][..], &[]] {
        let out = env.caw().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: a subcommand is needed\n"),
            "{args:?}: {err}"
        );
        assert!(err.contains("Usage: caw"), "{err}");
        assert!(out.stdout.is_empty());
        assert!(!err.contains("error:error"), "{err}");
    }
}
