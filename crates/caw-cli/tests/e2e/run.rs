//! `caw run` on images that know nothing of caw, with `caw auth exec` as the
//! container's init:
//! - an image with no shell at all (`FROM scratch`: a static busybox at
//!   /bin/busybox without applet links, /etc/passwd with `node`, uid 1000,
//!   no /etc/group, no home directory, `USER node`, `CMD
//!   ["/bin/busybox", "id"]`), repository `caw-e2e-noshell`;
//! - a Debian image built with debootstrap, with a user added, running as
//!   its `USER`.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::container::{docker, poll, run_with_timeout, text, Container};
use crate::prereqs::say;
use crate::session::{Cred, Guard, Session, CREDS};
use crate::util::stderr;

const NOSHELL: &str = "caw-e2e-noshell";
const DEBIAN: &str = "caw-e2e-debian-agent";
const CLAUDE: Cred = CREDS[0];
const BUSYBOX: &str = "/bin/busybox";

static NOSHELL_TAG: OnceLock<Result<String, String>> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Build `context` (path → bytes, mode) as `repository:<hash>` unless it exists.
fn ensure_image(
    repository: &str,
    context: &BTreeMap<PathBuf, (Vec<u8>, u32)>,
) -> Result<String, String> {
    let mut h = std::hash::DefaultHasher::new();
    context.hash(&mut h);
    let tag = format!("{repository}:{:016x}", h.finish());
    let exists = docker(
        &["image".into(), "inspect".into(), tag.clone()],
        None,
        Duration::from_secs(60),
    );
    if exists.status.success() {
        return Ok(tag);
    }
    say(&format!("building the test image `{tag}`"));
    let dir = tempfile::Builder::new()
        .prefix("caw-e2e-run-image-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| e.to_string())?;
    for (rel, (bytes, mode)) in context {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| e.to_string())?;
    }
    let mut build = Command::new("docker");
    build
        .args(["build", "--quiet", "--label", "caw-e2e=1", "--tag", &tag])
        .arg(dir.path());
    let out = run_with_timeout(&mut build, None, Duration::from_secs(600))
        .map_err(|e| format!("docker build: {e}"))?;
    if !out.status.success() {
        return Err(format!("docker build {tag} failed:\n{}", text(&out.stderr)));
    }
    // Earlier contexts' images of this repository.
    let listed = docker(
        &[
            "images".into(),
            repository.into(),
            "--format".into(),
            "{{.Repository}}:{{.Tag}}".into(),
        ],
        None,
        Duration::from_secs(60),
    );
    for old in text(&listed.stdout).lines().filter(|t| *t != tag) {
        let _ = Command::new("docker").args(["rmi", old]).output();
    }
    Ok(tag)
}

fn noshell_image() -> &'static str {
    noshell_image_as(&NOSHELL_TAG, NOSHELL, "node")
}

/// The same image with `USER 1000`, a uid with no name in it.
fn noshell_image_uid() -> &'static str {
    static TAG: OnceLock<Result<String, String>> = OnceLock::new();
    noshell_image_as(&TAG, "caw-e2e-noshell-uid", "1000")
}

fn noshell_image_as(
    cell: &'static OnceLock<Result<String, String>>,
    repository: &str,
    user: &str,
) -> &'static str {
    let result = cell.get_or_init(|| {
        let busybox = std::env::var_os("CAW_E2E_BUSYBOX")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(BUSYBOX));
        let bytes = std::fs::read(&busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
        let mut c = BTreeMap::new();
        c.insert(
            PathBuf::from("Dockerfile"),
            (
                format!(
                    "FROM scratch\nCOPY rootfs/ /\nUSER {user}\nCMD [\"/bin/busybox\", \"id\"]\n"
                )
                .into_bytes(),
                0o644,
            ),
        );
        c.insert(PathBuf::from("rootfs/bin/busybox"), (bytes, 0o755));
        c.insert(
            PathBuf::from("rootfs/etc/passwd"),
            (
                b"root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:agent:/home/node:/bin/sh\n"
                    .to_vec(),
                0o644,
            ),
        );
        ensure_image(repository, &c)
    });
    match result {
        Ok(tag) => tag,
        Err(e) => panic!("cannot build the no-shell image: {e}"),
    }
}

/// A unique container name, removed (with its logs shown on failure) on drop.
fn container(label: &str) -> Container {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Container {
        name: format!("caw-exec-e2e-{}-{n}-{label}", std::process::id()),
        row: crate::engines::Row::Docker,
    }
}

/// `caw run --auth-dir A --name N --label caw-e2e=1 --network none ARGS…`,
/// which starts the host sync as for a user (the session's teardown stops it).
fn caw_run(session: &Session, c: &Container, args: &[&str]) -> Output {
    let mut cmd = session.env.caw();
    cmd.env_remove("CAW_NO_SYNC")
        .args(["run", "--auth-dir"])
        .arg(&session.env.auth)
        .args([
            "--name",
            &c.name,
            "--label",
            "caw-e2e=1",
            "--network",
            "none",
        ])
        .args(args)
        .timeout(Duration::from_secs(120));
    cmd.output().unwrap()
}

fn exec_in(c: &Container, args: &[&str]) -> Output {
    let mut cmd = vec!["exec".to_string(), c.name.clone()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    docker(&cmd, None, Duration::from_secs(30))
}

/// A logged-in host home and its auth dir (with the static caw), or `None`
/// when Docker tests are skipped here.
fn session(test: &str) -> Option<Session> {
    Session::new(Guard::Rust, test)
}

#[test]
fn prints_the_host_credential_in_an_image_without_a_shell() {
    let Some(s) = session("run::prints_the_host_credential_in_an_image_without_a_shell") else {
        return;
    };
    let image = noshell_image();
    let c = container("cat");
    let path = format!("/home/node/{}", CLAUDE.path);
    let out = caw_run(&s, &c, &["--rm", image, BUSYBOX, "cat", &path]);
    assert!(out.status.success(), "caw run: {}", stderr(&out));
    assert_eq!(
        text(&out.stdout),
        text(&std::fs::read(s.host(CLAUDE.path)).unwrap()),
        "stdout is the credential and nothing else"
    );
    drop(c);
    s.teardown();
}

#[test]
fn without_a_command_the_images_cmd_runs_as_its_user() {
    let Some(s) = session("run::without_a_command_the_images_cmd_runs_as_its_user") else {
        return;
    };
    let c = container("cmd");
    let out = caw_run(&s, &c, &["--rm", noshell_image()]);
    assert!(out.status.success(), "caw run: {}", stderr(&out));
    assert_eq!(
        text(&out.stdout).trim(),
        "uid=1000(node) gid=1000 groups=1000"
    );
    // The init said what it ran, on stderr.
    assert!(
        stderr(&out).contains("running `/bin/busybox` as node (uid 1000)"),
        "{}",
        stderr(&out)
    );
    drop(c);
    s.teardown();
}

#[test]
fn a_user_is_a_name_or_a_uid_as_docker_run_takes_it() {
    let Some(s) = session("run::a_user_is_a_name_or_a_uid_as_docker_run_takes_it") else {
        return;
    };
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--user", "1000"],
            noshell_image(),
            "uid=1000(node) gid=1000 groups=1000",
        ),
        (
            &["--user", "1000:1000"],
            noshell_image(),
            "uid=1000(node) gid=1000 groups=1000",
        ),
        (
            &["--user", "0"],
            noshell_image(),
            "uid=0(root) gid=0 groups=0",
        ),
        (
            &[],
            noshell_image_uid(),
            "uid=1000(node) gid=1000 groups=1000",
        ),
    ];
    for (i, (user, image, want)) in cases.into_iter().enumerate() {
        let c = container(&format!("user{i}"));
        let mut args = vec!["--rm"];
        args.extend(user);
        args.push(image);
        let out = caw_run(&s, &c, &args);
        assert!(out.status.success(), "caw run {args:?}: {}", stderr(&out));
        assert_eq!(text(&out.stdout).trim(), want, "{args:?}");
        drop(c);
    }
    s.teardown();
}

#[test]
fn exit_codes_come_back() {
    let Some(s) = session("run::exit_codes_come_back") else {
        return;
    };
    let image = noshell_image();
    for (cmd, code) in [
        (vec![BUSYBOX, "false"], 1),
        (vec![BUSYBOX, "sh", "-c", "exit 7"], 7),
        (vec![BUSYBOX, "sh", "-c", "kill -USR1 $$"], 138),
        (vec![BUSYBOX, "sh", "-c", "kill -KILL $$"], 137),
        (vec!["/no/such/agent"], 127),
    ] {
        let c = container("code");
        let mut args = vec!["--rm", image];
        args.extend(&cmd);
        let out = caw_run(&s, &c, &args);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", stderr(&out));
    }
    s.teardown();
}

#[test]
fn the_guard_is_supervised_and_docker_stop_is_quick() {
    let Some(s) = session("run::the_guard_is_supervised_and_docker_stop_is_quick") else {
        return;
    };
    let c = container("supervised");
    let out = caw_run(&s, &c, &["-d", noshell_image(), BUSYBOX, "sleep", "600"]);
    assert!(out.status.success(), "caw run -d: {}", stderr(&out));
    // -d: docker's container id is all that reaches stdout.
    let id = text(&out.stdout);
    assert!(
        id.trim().len() == 64 && id.trim().chars().all(|c| c.is_ascii_hexdigit()),
        "stdout: {id:?}"
    );
    let pid_file = "/tmp/caw_credential_guard.pid";
    let guard_pid = || -> Option<String> {
        let out = exec_in(&c, &[BUSYBOX, "cat", pid_file]);
        let pid = text(&out.stdout).trim().to_string();
        let cmdline = exec_in(&c, &[BUSYBOX, "cat", &format!("/proc/{pid}/cmdline")]);
        (out.status.success() && cmdline.stdout.split(|&b| b == 0).any(|a| a == b"guard"))
            .then_some(pid)
    };
    let (first, _) = poll(
        Duration::from_secs(30),
        Duration::from_millis(50),
        guard_pid,
    )
    .unwrap_or_else(|| panic!("no guard in the container:\n{}", c.logs()));

    // SIGKILL the guard: the init starts another within a second or two.
    let killed = exec_in(&c, &[BUSYBOX, "kill", "-9", &first]);
    assert!(killed.status.success(), "{}", text(&killed.stderr));
    let (second, took) = poll(Duration::from_secs(2), Duration::from_millis(20), || {
        guard_pid().filter(|p| *p != first)
    })
    .unwrap_or_else(|| panic!("the guard was not restarted:\n{}", c.logs()));
    say(&format!("guard {first} killed; {second} up after {took:?}"));
    let logs = c.logs();
    assert!(
        logs.contains(&format!(
            "the credential guard (pid {first}) was killed by SIGKILL"
        )) && logs.contains(&format!("restarted it as pid {second}")),
        "{logs}"
    );

    // A host refresh reaches the container through the new guard.
    let refreshed = CLAUDE.refreshed("after-restart", 96);
    s.write_on_host(&CLAUDE, &refreshed);
    let home_copy = format!("/home/node/{}", CLAUDE.path);
    let arrived = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        let out = exec_in(&c, &[BUSYBOX, "cat", &home_copy]);
        (out.stdout == refreshed).then_some(())
    });
    assert!(
        arrived.is_some(),
        "the refresh did not arrive:\n{}",
        c.logs()
    );

    // Orphans handed to PID 1 are reaped: no zombie anywhere.
    let orphan = exec_in(
        &c,
        &[BUSYBOX, "sh", "-c", "/bin/busybox sleep 0.2 & exit 0"],
    );
    assert!(orphan.status.success());
    std::thread::sleep(Duration::from_millis(800));
    let states = exec_in(
        &c,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "for f in /proc/[0-9]*/stat; do /bin/busybox cat $f; echo; done",
        ],
    );
    let zombies: Vec<String> = text(&states.stdout)
        .lines()
        .filter(|l| {
            l.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .map(str::to_string)
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");

    // `docker stop`: SIGTERM to the init, forwarded; well within the 10 s grace.
    let started = Instant::now();
    let stop = docker(
        &["stop".into(), c.name.clone()],
        None,
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    say(&format!("docker stop took {took:?}"));
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
    let code = docker(
        &[
            "inspect".into(),
            "--format".into(),
            "{{.State.ExitCode}}".into(),
            c.name.clone(),
        ],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(
        text(&code.stdout).trim(),
        "143",
        "SIGTERM ends the command: 128+15"
    );
    assert!(
        c.logs().contains("[credential-guard] stopped (SIGTERM)"),
        "{}",
        c.logs()
    );
    drop(c);
    s.teardown();
}

/// A Debian image with a user `agent` (uid 1000, bash, a home made by
/// useradd) and `USER agent`, on top of the debootstrapped image
/// `$CAW_E2E_DEBIAN_IMAGE`, else the one `scripts/debian-image.sh` builds.
fn debian_image() -> Result<String, String> {
    let base = match std::env::var("CAW_E2E_DEBIAN_IMAGE") {
        Ok(tag) if !tag.is_empty() => tag,
        _ => {
            let script = crate::static_caw::workspace_root().join("scripts/debian-image.sh");
            if !script.exists() {
                return Err(format!(
                    "no Debian image: set CAW_E2E_DEBIAN_IMAGE, or add `{}`",
                    script.display()
                ));
            }
            let mut cmd = Command::new(&script);
            cmd.args(["--repository", "caw-e2e-debian"]);
            let out = run_with_timeout(&mut cmd, None, Duration::from_secs(1200))
                .map_err(|e| format!("{}: {e}", script.display()))?;
            if !out.status.success() {
                panic!("{} failed:\n{}", script.display(), text(&out.stderr));
            }
            text(&out.stdout).trim().to_string()
        }
    };
    let mut c = BTreeMap::new();
    let dockerfile = format!(
        "FROM {base}\n\
         RUN useradd --create-home --uid 1000 --shell /bin/bash agent\n\
         USER agent\n\
         WORKDIR /home/agent\n\
         CMD [\"bash\", \"-c\", \"echo \\\"$(id -un) $HOME $PWD\\\"; cat ~/.claude/.credentials.json\"]\n"
    );
    c.insert(
        PathBuf::from("Dockerfile"),
        (dockerfile.into_bytes(), 0o644),
    );
    match ensure_image(DEBIAN, &c) {
        Ok(tag) => Ok(tag),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_debian_image_runs_as_its_user() {
    let test = "run::a_debian_image_runs_as_its_user";
    let Some(s) = session(test) else {
        return;
    };
    let image = match debian_image() {
        Ok(tag) => tag,
        Err(why) => {
            crate::skip::skip("caw e2e", test, &why);
            return;
        }
    };
    let c = container("debian");
    let out = caw_run(&s, &c, &["--rm", &image]);
    assert!(out.status.success(), "caw run: {}", stderr(&out));
    let stdout = text(&out.stdout);
    let (first, cred) = stdout.split_once('\n').unwrap_or((&stdout, ""));
    assert_eq!(first, "agent /home/agent /home/agent");
    assert_eq!(cred, text(&std::fs::read(s.host(CLAUDE.path)).unwrap()));
    drop(c);
    s.teardown();
}
