//! The engine on temp dirs, as any user: real files, real renames, real
//! inotify, the loop running in a thread exactly as the guard and the host
//! sync run it.

use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use caw_auth::agents::{self, Agent};
use caw_sync::side::{DirFile, End, HostFile};
use caw_sync::{Engine, Now, Pair, Voice, REPAIR_AFTER};

const VOICE: Voice = Voice {
    prefix: "[test]",
    on_deleted: "test",
};

/// A Claude login with tokens marked `tag`, expiring `secs` seconds from now.
fn claude(tag: &str, secs: i64) -> Vec<u8> {
    let ms = (jiff::Timestamp::now().as_second() + secs) * 1000;
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"at-{tag}","refreshToken":"rt-{tag}","expiresAt":{ms}}}}}"#
    )
    .into_bytes()
}

fn write_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!(
        "tmp.{}",
        std::thread::current().name().unwrap_or("x")
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Wait until `path` holds `want`, or panic after `within`.
fn wait_for(path: &Path, want: &[u8], within: Duration) {
    let start = Instant::now();
    while read(path) != want {
        assert!(
            start.elapsed() < within,
            "`{}` never became {:?}; it is {:?}",
            path.display(),
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(&read(path))
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Check that `path` keeps `want` for a while (a sync that must not happen).
fn stays(path: &Path, want: &[u8]) {
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        assert_eq!(read(path), want, "`{}` changed", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An engine running in a thread until dropped.
struct Running {
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(make: impl FnOnce() -> Vec<Pair> + Send + 'static) -> Running {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut engine = Engine::new(make()).unwrap();
            engine.sync_all();
            ready_tx.send(()).unwrap();
            engine
                .run(read_end.as_fd(), None, |_, _| {
                    std::ops::ControlFlow::Continue(())
                })
                .unwrap();
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Running {
            stop: Some(write_end),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Closing the write end makes the read end readable: the loop stops.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Dirs {
    _tmp: tempfile::TempDir,
    live: PathBuf,
    home: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        std::fs::create_dir_all(live.join("claude")).unwrap();
        Dirs {
            home: tmp.path().join("home"),
            live,
            _tmp: tmp,
        }
    }

    fn a(&self) -> PathBuf {
        self.live.join("claude/credentials.json")
    }

    fn b(&self) -> PathBuf {
        self.home.join(".claude/.credentials.json")
    }

    /// The guard's pair for `agent`: live ⇄ home.
    fn pair(&self, agent: &'static Agent) -> Pair {
        let a = DirFile::new(&self.live, agent.credential_src, None, 0o600);
        let b = DirFile::new(&self.home, agent.credential, None, 0o600).create_root();
        Pair::new(agent, End::Dir(a), End::Dir(b), VOICE)
    }

    fn run(&self, agent: &'static Agent) -> Running {
        let pair = self.pair(agent);
        Running::start(move || vec![pair])
    }
}

fn claude_agent() -> &'static Agent {
    agents::by_name("claude").unwrap()
}

#[test]
fn restores_the_home_copy_and_carries_refreshes_both_ways() {
    let d = Dirs::new();
    let first = claude("first", 3600);
    std::fs::write(d.a(), &first).unwrap();
    let _engine = d.run(claude_agent());
    wait_for(&d.b(), &first, Duration::from_secs(5));

    let by_agent = claude("agent", 7200);
    write_by_rename(&d.b(), &by_agent);
    wait_for(&d.a(), &by_agent, Duration::from_secs(5));

    let by_host = claude("host", 9000);
    std::fs::write(d.a(), &by_host).unwrap();
    wait_for(&d.b(), &by_host, Duration::from_secs(5));

    std::fs::remove_file(d.b()).unwrap();
    wait_for(&d.b(), &by_host, Duration::from_secs(5));
    // Every write is a rename: no temp file is left in either directory.
    for dir in [d.live.join("claude"), d.home.join(".claude")] {
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn a_logged_out_file_stays_where_it_was_written() {
    let d = Dirs::new();
    let good = claude("good", 3600);
    std::fs::write(d.a(), &good).unwrap();
    let _engine = d.run(claude_agent());
    wait_for(&d.b(), &good, Duration::from_secs(5));
    for logged_out in [
        &br#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0,"scopes":[]}}"#[..],
        b"{}",
        br#"{"claudeAiOauth":null}"#,
    ] {
        write_by_rename(&d.b(), logged_out);
        stays(&d.a(), &good);
        assert_eq!(read(&d.b()), logged_out);
    }
    // A new login in the container does travel.
    let again = claude("again", 7200);
    write_by_rename(&d.b(), &again);
    wait_for(&d.a(), &again, Duration::from_secs(5));
}

#[test]
fn a_login_of_another_kind_never_replaces_the_other_sides() {
    let codex = agents::by_name("codex").unwrap();
    let d = Dirs::new();
    std::fs::create_dir_all(d.live.join("codex")).unwrap();
    let a = d.live.join("codex/auth.json");
    let b = d.home.join(".codex/auth.json");
    let chatgpt = br#"{"OPENAI_API_KEY":null,"tokens":{"access_token":"at","refresh_token":"rt","account_id":"acct-1"}}"#;
    std::fs::write(&a, chatgpt).unwrap();
    let _engine = d.run(codex);
    wait_for(&b, chatgpt, Duration::from_secs(5));
    let api_key = br#"{"OPENAI_API_KEY":"sk-other","tokens":null}"#;
    std::fs::write(&b, api_key).unwrap();
    stays(&a, chatgpt);
    let other_account =
        br#"{"tokens":{"access_token":"at2","refresh_token":"rt2","account_id":"acct-2"}}"#;
    std::fs::write(&b, other_account).unwrap();
    stays(&a, chatgpt);
    let same_account =
        br#"{"tokens":{"access_token":"at3","refresh_token":"rt3","account_id":"acct-1"}}"#;
    std::fs::write(&b, same_account).unwrap();
    wait_for(&a, same_account, Duration::from_secs(5));
}

#[test]
fn an_older_login_is_replaced_by_the_newer_one() {
    let d = Dirs::new();
    let newer = claude("newer", 7200);
    std::fs::write(d.a(), &newer).unwrap();
    let _engine = d.run(claude_agent());
    wait_for(&d.b(), &newer, Duration::from_secs(5));
    write_by_rename(&d.b(), &claude("stale", 60));
    wait_for(&d.b(), &newer, Duration::from_secs(5));
    assert_eq!(read(&d.a()), newer);
}

#[test]
fn an_incomplete_home_copy_is_repaired_once_its_writer_is_gone() {
    // Stepped by hand on a clock: the repair waits REPAIR_AFTER, not a sleep.
    let d = Dirs::new();
    let good = claude("good", 3600);
    std::fs::write(d.a(), &good).unwrap();
    let mut pair = d.pair(claude_agent());
    let start = Now::read();
    pair.step(start);
    assert_eq!(read(&d.b()), good);
    std::fs::write(d.b(), &good[..good.len() / 2]).unwrap();
    let written = start.after(Duration::from_secs(1));
    pair.touched(written.at);
    // Left alone while a writer might still be at it...
    let (_, wake) = pair.step(written.after(REPAIR_AFTER / 2));
    assert_eq!(read(&d.b()), &good[..good.len() / 2]);
    assert_eq!(wake, Some(written.at + REPAIR_AFTER));
    // ...and repaired a few seconds after the last change.
    pair.step(written.after(REPAIR_AFTER));
    assert_eq!(read(&d.b()), good);
}

#[test]
fn concurrent_writers_on_both_sides_converge_on_the_newest_login() {
    let d = Dirs::new();
    std::fs::write(d.a(), claude("start", 60)).unwrap();
    let _engine = d.run(claude_agent());
    wait_for(&d.b(), &claude("start", 60), Duration::from_secs(5));
    // One clock for both writers: each write is newer than every earlier one.
    let clock = Arc::new(AtomicI64::new(1000));
    let writer = |path: PathBuf, name: &'static str| {
        let clock = Arc::clone(&clock);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for _ in 0..300 {
                    let secs = clock.fetch_add(1, Ordering::SeqCst);
                    write_by_rename(&path, &claude(&format!("{name}-{secs}"), secs));
                }
            })
            .unwrap()
    };
    let (ta, tb) = (writer(d.a(), "host"), writer(d.b(), "agent"));
    ta.join().unwrap();
    tb.join().unwrap();
    // Whichever write was newest, both sides end up with it.
    let newest_secs = clock.load(Ordering::SeqCst) - 1;
    let start = Instant::now();
    loop {
        let (a, b) = (read(&d.a()), read(&d.b()));
        let tag =
            |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(&format!("-{newest_secs}\""));
        if a == b && tag(&a) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no convergence: {:?} vs {:?}",
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_host_file_is_written_at_a_symlinks_target() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    std::fs::create_dir_all(live.join("claude")).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    std::fs::create_dir_all(home.join("dotfiles")).unwrap();
    let real = home.join("dotfiles/credentials.json");
    std::fs::write(&real, claude("host", 3600)).unwrap();
    let link = home.join(".claude/.credentials.json");
    std::os::unix::fs::symlink("../dotfiles/credentials.json", &link).unwrap();
    let agent = claude_agent();
    let (host_end, live_root) = (HostFile::new(&link), live.clone());
    let _engine = Running::start(move || {
        let b = DirFile::new(&live_root, agent.credential_src, None, 0o600).durable();
        vec![Pair::new(agent, End::Host(host_end), End::Dir(b), VOICE)]
    });
    let live_file = live.join("claude/credentials.json");
    wait_for(&live_file, &claude("host", 3600), Duration::from_secs(5));
    let from_container = claude("container", 7200);
    write_by_rename(&live_file, &from_container);
    wait_for(&real, &from_container, Duration::from_secs(5));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A host refresh by rename at the target reaches live.
    let refreshed = claude("refreshed", 9000);
    write_by_rename(&real, &refreshed);
    wait_for(&live_file, &refreshed, Duration::from_secs(5));
}

#[test]
fn a_patient_pair_restores_only_after_its_wait() {
    // Stepped by hand on a clock: time moves without sleeping.
    let d = Dirs::new();
    let good = claude("good", 3600);
    std::fs::write(d.a(), &good).unwrap();
    let wait = Duration::from_millis(400);
    let mut pair = d.pair(claude_agent()).patient_restores(wait);
    // The first copy is a restore too: it waits as well.
    let start = Now::read();
    pair.step(start);
    pair.step(start.after(wait));
    assert_eq!(read(&d.b()), good);
    std::fs::remove_file(d.b()).unwrap();
    let removed = start.after(Duration::from_secs(1));
    pair.touched(removed.at);
    let (_, wake) = pair.step(removed.after(Duration::from_millis(150)));
    assert!(!d.b().exists(), "restored before its wait");
    assert_eq!(wake, Some(removed.at + wait));
    pair.step(removed.after(wait));
    assert_eq!(read(&d.b()), good);
}

#[test]
fn the_engine_looks_again_when_a_pair_asks_to() {
    // Nothing happens after the removal: only the pair's wake restores B.
    let d = Dirs::new();
    let good = claude("good", 3600);
    std::fs::write(d.a(), &good).unwrap();
    let pair = d
        .pair(claude_agent())
        .patient_restores(Duration::from_millis(400));
    let _engine = Running::start(move || vec![pair]);
    wait_for(&d.b(), &good, Duration::from_secs(5));
    std::fs::remove_file(d.b()).unwrap();
    wait_for(&d.b(), &good, Duration::from_secs(3));
}
