//! Several machines, one login: `caw auth sync --store etcd://…` on three
//! "machines" (three host homes and auth dirs, each with its own host sync)
//! against a real 3-member etcd cluster on loopback ports, started here from
//! Debian's `etcd-server`; the refresh endpoint is the loopback fake
//! (`support/oauth.rs`), which refuses a refresh token used twice. A machine
//! is cut off by a TCP proxy between it and every member.
//!
//! The containers of a machine read its `live/` (the Docker suites show
//! that path): a login that reaches a machine's `live/` reaches them.
//!
//! Needs `etcd` (`scripts/etcd.sh`); without it each test is skipped with a
//! message, except under `CI`, where that is a failure.

#[path = "../support/oauth.rs"]
mod oauth;
#[path = "../support/skip.rs"]
#[allow(dead_code)]
mod skip;
#[path = "../support/tls.rs"]
mod tls;
#[path = "../cli/util.rs"]
#[allow(dead_code)]
mod util;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth::{FakeOAuth, ACCOUNT};
use util::{claude_oauth, ms_from_now, read_text, wait_for, TestEnv};

const SUITE: &str = "store";
/// Caw refreshes a Claude login 10 minutes before it expires.
const DUE_AT: i64 = 10 * 60;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A raw HTTP exchange with an etcd member (GET /health): no client crate.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// A 3-member etcd cluster on loopback ports, removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Option<Child>>,
    ports: Vec<u16>,
}

impl Cluster {
    fn start(test: &str) -> Option<Cluster> {
        if Command::new("etcd").arg("--version").output().is_err() {
            skip::skip(
                SUITE,
                test,
                "etcd is not installed (scripts/etcd.sh installs Debian's etcd-server)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let initial: Vec<String> = (0..3)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", peers[i]))
            .collect();
        let token = format!("caw-test-{}", ports[0]);
        let members = (0..3)
            .map(|i| {
                let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
                Some(
                    Command::new("etcd")
                        .arg("--name")
                        .arg(format!("m{i}"))
                        .arg("--data-dir")
                        .arg(dir.path().join(format!("m{i}")))
                        .arg("--listen-client-urls")
                        .arg(format!("http://127.0.0.1:{}", ports[i]))
                        .arg("--advertise-client-urls")
                        .arg(format!("http://127.0.0.1:{}", ports[i]))
                        .arg("--listen-peer-urls")
                        .arg(format!("http://127.0.0.1:{}", peers[i]))
                        .arg("--initial-advertise-peer-urls")
                        .arg(format!("http://127.0.0.1:{}", peers[i]))
                        .arg("--initial-cluster")
                        .arg(initial.join(","))
                        .arg("--initial-cluster-token")
                        .arg(&token)
                        .arg("--initial-cluster-state")
                        .arg("new")
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        let cluster = Cluster {
            dir,
            members,
            ports,
        };
        wait_for(
            "the etcd cluster is healthy",
            Duration::from_secs(30),
            || cluster.ports.iter().all(|&p| healthy(p)),
        );
        Some(cluster)
    }

    fn hosts(&self, ports: &[u16]) -> String {
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The store URL for all members, under `prefix`.
    fn url(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}", self.hosts(&self.ports))
    }

    /// Member `i` dies.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = &self.dir;
    }
}

/// A TCP proxy in front of one member, which can cut every connection.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut, open }
    }

    /// Cut every connection through it, and refuse new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// One machine: a host home with a Claude login of [`ACCOUNT`], its auth
/// dir, and its host sync joined to the store.
struct Machine {
    name: &'static str,
    env: TestEnv,
    sync: Option<Child>,
    log: PathBuf,
}

impl Machine {
    fn new(name: &'static str, login: &str) -> Machine {
        let env = TestEnv::empty();
        env.claude(ms_from_now(3600));
        let mut config: serde_json::Value =
            serde_json::from_str(&read_text(&env.home.join(".claude.json"))).unwrap();
        config["oauthAccount"]["accountUuid"] = ACCOUNT.into();
        env.write(".claude.json", &config.to_string(), 0o600);
        env.write(".claude/.credentials.json", login, 0o600);
        let out = env.auth_at(&env.auth, &["setup", "--agents", "claude"]);
        assert!(out.status.success(), "{}", util::stderr(&out));
        let log = env.dir.path().join("sync.log");
        Machine {
            name,
            env,
            sync: None,
            log,
        }
    }

    fn start(&mut self, url: &str, key: &Path, server: &FakeOAuth, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(assert_cmd::cargo::cargo_bin("caw"))
            .args(["auth", "sync", "--idle-exit", "0", "--check-every", "1"])
            .arg("--auth-dir")
            .arg(&self.env.auth)
            .arg("--store")
            .arg(url)
            .arg("--store-key")
            .arg(key)
            .args(extra)
            .env("HOME", &self.env.home)
            .env_remove("CAW_AUTH_DIR")
            .env_remove("CAW_NO_REFRESH")
            .envs(server.env())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sync = Some(child);
    }

    fn host(&self) -> PathBuf {
        self.env.home.join(".claude/.credentials.json")
    }

    fn live(&self) -> PathBuf {
        self.env.auth.join("live/claude/credentials.json")
    }

    fn log(&self) -> String {
        read_text(&self.log)
    }

    /// What its sync says about the store (`sync.json`).
    fn store_state(&self) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&read_text(&self.env.auth.join("sync.json")))
            .map(|v| v["store"].clone())
            .unwrap_or_default()
    }

    fn refreshes(&self) -> bool {
        self.store_state()["refresher_of"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "claude"))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.sync.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A login written on this machine as Claude Code writes it (rename).
    fn write_login(&self, text: &str) {
        let host = self.host();
        let tmp = host.with_extension("tmp-test");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &host).unwrap();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(child) = &self.sync {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if let Some(mut child) = self.sync.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn store_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(assert_cmd::cargo::cargo_bin("caw"))
        .args(["auth", "store-key"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", util::stderr(&out));
    path
}

/// Three machines on one login (a refresh token the server knows), due
/// `due_in` seconds from now.
fn three(server: &FakeOAuth, due_in: i64) -> ([Machine; 3], String) {
    let rt = server.grant_for(ACCOUNT);
    let login = claude_oauth("at-first", &rt, Some(ms_from_now(DUE_AT + due_in)));
    (
        [
            Machine::new("m1", &login),
            Machine::new("m2", &login),
            Machine::new("m3", &login),
        ],
        rt,
    )
}

fn refreshed(path: &Path) -> bool {
    read_text(path).contains("\"accessToken\":\"at-fam")
}

fn all_logs(machines: &[Machine]) -> String {
    machines
        .iter()
        .map(|m| format!("--- {} ---\n{}", m.name, m.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What most cases start from: a cluster, the fake endpoint, three
/// machines on one login due `due_in` seconds from now, a store key, and
/// the store's URL under `prefix`.
struct World {
    machines: [Machine; 3],
    server: FakeOAuth,
    key: PathBuf,
    url: String,
    rt: String,
    cluster: Cluster,
}

fn world(test: &str, prefix: &str, due_in: i64) -> Option<World> {
    let cluster = Cluster::start(test)?;
    let server = FakeOAuth::start();
    let (machines, rt) = three(&server, due_in);
    let key = store_key(machines[0].env.dir.path(), "store.key");
    let url = cluster.url(prefix);
    Some(World {
        machines,
        server,
        key,
        url,
        rt,
        cluster,
    })
}

/// Start every machine's sync with `extra`, and wait until each runs.
fn start_all(machines: &mut [Machine], url: &str, key: &Path, server: &FakeOAuth, extra: &[&str]) {
    for m in machines.iter_mut() {
        m.start(url, key, server, extra);
    }
    wait_for("every machine joined", Duration::from_secs(15), || {
        machines
            .iter()
            .all(|m| m.log().contains("watching 1 credential"))
    });
}

#[test]
fn a_refresh_on_one_machine_reaches_the_others_and_their_containers() {
    let Some(w) = world(
        "a_refresh_on_one_machine_reaches_the_others",
        "t-reach",
        3600,
    ) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        cluster: _cluster,
    } = w;
    let _ = &rt;
    start_all(&mut machines, &url, &key, &server, &["--no-refresh"]);
    let newer = claude_oauth("at-m1-new", "rt-m1-new", Some(ms_from_now(8 * 3600)));
    machines[0].write_login(&newer);
    wait_for(
        "the refresh reaches machines 2 and 3, host files and live/",
        Duration::from_secs(10),
        || {
            machines[1..]
                .iter()
                .all(|m| read_text(&m.host()) == newer && read_text(&m.live()) == newer)
        },
    );
    // And back: a refresh on machine 3 reaches machine 1.
    let later = claude_oauth("at-m3-new", "rt-m3-new", Some(ms_from_now(8 * 3600 + 60)));
    machines[2].write_login(&later);
    wait_for("it reaches machine 1", Duration::from_secs(10), || {
        read_text(&machines[0].live()) == later
    });
    // etcd holds no token in clear.
    let logs = all_logs(&machines);
    for token in ["at-m1-new", "rt-m1-new", "rt-m3-new"] {
        assert!(!logs.contains(token), "a token in a log:\n{logs}");
    }
}

#[test]
fn one_machine_refreshes_a_due_login_for_all() {
    let Some(w) = world("one_machine_refreshes_a_due_login_for_all", "t-one", 4) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        cluster: _cluster,
    } = w;
    for m in &mut machines {
        m.start(&url, &key, &server, &[]);
    }
    wait_for(
        "every machine has the new login",
        Duration::from_secs(20),
        || {
            machines
                .iter()
                .all(|m| refreshed(&m.host()) && refreshed(&m.live()))
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{}", all_logs(&machines));
    assert_eq!(
        (seen[0].outcome.as_str(), seen[0].refresh_token.as_str()),
        ("ok", rt.as_str())
    );
    let refreshers = machines
        .iter()
        .filter(|m| m.log().contains("refreshing the claude login"))
        .count();
    assert_eq!(refreshers, 1, "{}", all_logs(&machines));
}

#[test]
fn when_the_refresher_is_killed_another_machine_takes_over() {
    let Some(w) = world("when_the_refresher_is_killed", "t-takeover", 25) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        cluster: _cluster,
    } = w;
    let _ = &rt;
    for m in &mut machines {
        m.start(&url, &key, &server, &[]);
    }
    wait_for("one machine refreshes", Duration::from_secs(15), || {
        machines.iter().any(Machine::refreshes)
    });
    let holder = machines.iter().position(Machine::refreshes).unwrap();
    machines[holder].kill();
    let killed_at = Instant::now();
    let others: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    wait_for(
        "another machine takes over",
        Duration::from_secs(30),
        || others.iter().any(|&i| machines[i].refreshes()),
    );
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(45), "took over after {took:?}");
    wait_for(
        "the due login is refreshed by the new holder",
        Duration::from_secs(40),
        || others.iter().all(|&i| refreshed(&machines[i].live())),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.seen().len(), 1, "{}", all_logs(&machines));
    assert!(!machines[holder]
        .log()
        .contains("refreshing the claude login"));
}

#[test]
fn a_machine_cut_off_across_an_expiry_never_refreshes_and_catches_up() {
    let Some(cluster) = Cluster::start("a_machine_cut_off_across_an_expiry") else {
        return;
    };
    let server = FakeOAuth::start();
    let (mut machines, rt) = three(&server, 20);
    let key = store_key(machines[0].env.dir.path(), "store.key");
    // Machine 3 reaches every member through a proxy; it starts first, so
    // it is the refresher when it is cut off.
    let proxies: Vec<Proxy> = cluster.ports.iter().map(|&p| Proxy::start(p)).collect();
    let cut_url = format!(
        "etcd://{}/t-cut",
        cluster.hosts(&proxies.iter().map(|p| p.port).collect::<Vec<_>>())
    );
    machines[2].start(&cut_url, &key, &server, &[]);
    wait_for("machine 3 refreshes", Duration::from_secs(15), || {
        machines[2].refreshes()
    });
    let url = cluster.url("t-cut");
    machines[0].start(&url, &key, &server, &[]);
    machines[1].start(&url, &key, &server, &[]);
    wait_for("machines 1 and 2 joined", Duration::from_secs(15), || {
        machines[..2]
            .iter()
            .all(|m| m.log().contains("watching 1 credential"))
    });
    for p in &proxies {
        p.cut();
    }
    wait_for(
        "machine 3 says the store is unreachable",
        Duration::from_secs(15),
        || machines[2].store_state()["unreachable_since"].is_string(),
    );
    let status = util::stdout(&machines[2].env.auth_at(&machines[2].env.auth, &["status"]));
    assert!(status.contains("store unreachable since"), "{status}");
    wait_for(
        "machines 1 and 2 refresh across the expiry",
        Duration::from_secs(45),
        || machines[..2].iter().all(|m| refreshed(&m.live())),
    );
    std::thread::sleep(Duration::from_secs(3));
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{}", all_logs(&machines));
    assert_eq!(seen[0].refresh_token, rt);
    assert!(
        !machines[2].log().contains("refreshing the claude login"),
        "the cut-off machine refreshed:\n{}",
        machines[2].log()
    );
    // It kept serving the login it had.
    assert!(read_text(&machines[2].live()).contains("at-first"));
    for p in &proxies {
        p.heal();
    }
    wait_for("machine 3 catches up", Duration::from_secs(20), || {
        refreshed(&machines[2].host()) && refreshed(&machines[2].live())
    });
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_refresher_killed_mid_request_is_never_followed_by_a_second_send() {
    let Some(w) = world("a_refresher_killed_mid_request", "t-mid", 6) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        cluster: _cluster,
    } = w;
    // The answer takes 4 s: the refresher dies while it waits.
    server.set_delay(Duration::from_secs(4));
    for m in &mut machines {
        m.start(&url, &key, &server, &[]);
    }
    wait_for("the refresh is sent", Duration::from_secs(20), || {
        !server.seen().is_empty()
    });
    let holder = machines
        .iter()
        .position(|m| m.log().contains("refreshing the claude login"))
        .expect("the sender logged it");
    machines[holder].kill();
    let others: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    wait_for(
        "a successor says the outcome is unknown",
        Duration::from_secs(40),
        || {
            others.iter().any(|&i| {
                machines[i].store_state()["outcome_unknown"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            })
        },
    );
    // However long they wait, the spent token is not sent again.
    std::thread::sleep(Duration::from_secs(5));
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}\n{}", all_logs(&machines));
    assert_eq!(seen[0].refresh_token, rt);
    let successor = others
        .iter()
        .copied()
        .find(|&i| machines[i].refreshes())
        .unwrap_or(others[0]);
    let status = util::stdout(
        &machines[successor]
            .env
            .auth_at(&machines[successor].env.auth, &["status"]),
    );
    assert!(status.contains("refresh outcome unknown"), "{status}");
    // A login from any side ends the wait: the user logs in again on one machine.
    let fresh_rt = server.grant_for(ACCOUNT);
    let fresh = claude_oauth("at-relogin", &fresh_rt, Some(ms_from_now(8 * 3600)));
    machines[others[0]].write_login(&fresh);
    wait_for(
        "the new login reaches the others",
        Duration::from_secs(10),
        || {
            others
                .iter()
                .all(|&i| read_text(&machines[i].live()) == fresh)
        },
    );
}

#[test]
fn a_machine_with_another_store_key_gets_a_clear_error_and_keeps_its_login() {
    let Some(cluster) = Cluster::start("a_machine_with_another_store_key") else {
        return;
    };
    let server = FakeOAuth::start();
    let (mut machines, _) = three(&server, 3600);
    let key = store_key(machines[0].env.dir.path(), "store.key");
    let wrong = store_key(machines[1].env.dir.path(), "other.key");
    let url = cluster.url("t-key");
    machines[0].start(&url, &key, &server, &["--no-refresh"]);
    wait_for(
        "machine 1 stored its login",
        Duration::from_secs(15),
        || machines[0].log().contains("went to the store"),
    );
    let before = read_text(&machines[1].host());
    machines[1].start(&url, &wrong, &server, &["--no-refresh"]);
    wait_for("machine 2 says why", Duration::from_secs(15), || {
        machines[1].log().contains("sealed with another store key")
    });
    let newer = claude_oauth("at-m1-new", "rt-m1-new", Some(ms_from_now(8 * 3600)));
    machines[0].write_login(&newer);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        read_text(&machines[1].host()),
        before,
        "machine 2's login changed"
    );
    let status = util::stdout(&machines[1].env.auth_at(&machines[1].env.auth, &["status"]));
    assert!(status.contains("store: error:"), "{status}");
    assert!(status.contains("--store-key"), "{status}");
    let _ = &machines[2];
}

#[test]
fn losing_one_etcd_member_changes_nothing() {
    let Some(w) = world("losing_one_etcd_member", "t-member", 3600) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        mut cluster,
    } = w;
    let _ = &rt;
    start_all(&mut machines, &url, &key, &server, &["--no-refresh"]);
    cluster.kill(0);
    let newer = claude_oauth(
        "at-after-loss",
        "rt-after-loss",
        Some(ms_from_now(8 * 3600)),
    );
    machines[0].write_login(&newer);
    wait_for(
        "the refresh reaches the others with a member down",
        Duration::from_secs(20),
        || machines.iter().all(|m| read_text(&m.live()) == newer),
    );
}

#[test]
fn a_thousand_concurrent_updates_from_three_machines_end_with_the_newest_everywhere() {
    let Some(w) = world("a_thousand_concurrent_updates", "t-thousand", 3600) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        cluster: _cluster,
    } = w;
    let _ = &rt;
    start_all(&mut machines, &url, &key, &server, &["--no-refresh"]);
    let base = ms_from_now(2 * 3600);
    let newest = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let m = &machines[w];
                scope.spawn(move || {
                    let mut last = String::new();
                    for k in 0..334i64 {
                        // Expiries interleave: machine w writes base + 3k + w seconds.
                        let exp = base + (3 * k + w as i64) * 1000;
                        last =
                            claude_oauth(&format!("at-{w}-{k}"), &format!("rt-{w}-{k}"), Some(exp));
                        m.write_login(&last);
                    }
                    last
                })
            })
            .collect();
        let last: Vec<String> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        // Machine 3's last write (k = 333, w = 2) has the latest expiry.
        last[2].clone()
    });
    wait_for(
        "the newest login everywhere",
        Duration::from_secs(30),
        || {
            machines
                .iter()
                .all(|m| read_text(&m.host()) == newest && read_text(&m.live()) == newest)
        },
    );
}

/// An agent added by `caw auth setup` while the syncs run joins the store
/// without a restart.
#[test]
fn an_agent_added_by_a_re_setup_joins_the_store() {
    let Some(w) = world(
        "an_agent_added_by_a_re_setup_joins_the_store",
        "t-resetup",
        3600,
    ) else {
        return;
    };
    let World {
        mut machines,
        server,
        key,
        url,
        rt,
        cluster: _cluster,
    } = w;
    let _ = &rt;
    for m in &mut machines[..2] {
        m.start(&url, &key, &server, &["--no-refresh"]);
    }
    wait_for("both joined", Duration::from_secs(15), || {
        machines[..2]
            .iter()
            .all(|m| m.log().contains("watching 1 credential"))
    });
    let qwen = |tag: &str, secs: i64| {
        format!(
            r#"{{"access_token":"qwen-at-{tag}","refresh_token":"qwen-rt-{tag}","token_type":"Bearer","resource_url":"portal.qwen.ai","expiry_date":{}}}"#,
            ms_from_now(secs)
        )
    };
    for (m, (tag, secs)) in machines[..2].iter().zip([("m1", 7200), ("m2", 3600)]) {
        m.env
            .write(".qwen/oauth_creds.json", &qwen(tag, secs), 0o600);
        let out = m
            .env
            .auth_at(&m.env.auth, &["setup", "--agents", "claude,qwen"]);
        assert!(out.status.success(), "{}", util::stderr(&out));
    }
    let live = |m: &Machine| read_text(&m.env.auth.join("live/qwen/oauth_creds.json"));
    wait_for(
        "machine 1's newer qwen login reaches machine 2",
        Duration::from_secs(15),
        || live(&machines[1]).contains("qwen-at-m1"),
    );
    let newer = qwen("m2-new", 3 * 3600);
    let host = machines[1].env.home.join(".qwen/oauth_creds.json");
    std::fs::write(host.with_extension("tmp"), &newer).unwrap();
    std::fs::rename(host.with_extension("tmp"), &host).unwrap();
    wait_for("and back", Duration::from_secs(10), || {
        live(&machines[0]) == newer
    });
}

/// etcd over TLS with users: the store is reached with `etcds://`, the CA
/// given with `--store-ca`, and a user whose password is read from a file
/// (never on the command line, never in a log); a wrong password is said.
#[test]
fn a_store_over_tls_with_an_etcd_user() {
    if Command::new("etcd").arg("--version").output().is_err() {
        skip::skip(
            SUITE,
            "a_store_over_tls_with_an_etcd_user",
            "etcd is not installed",
        );
        return;
    }
    if Command::new("openssl").arg("version").output().is_err() {
        skip::skip(
            SUITE,
            "a_store_over_tls_with_an_etcd_user",
            "openssl is not installed",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    tls::make_certificates(dir.path(), "caw store", "IP:127.0.0.1");
    let (port, peer) = (free_port(), free_port());
    let mut etcd = Command::new("etcd")
        .args(["--name", "tls"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg(format!("--listen-client-urls=https://127.0.0.1:{port}"))
        .arg(format!("--advertise-client-urls=https://127.0.0.1:{port}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=tls=http://127.0.0.1:{peer}"))
        .arg("--cert-file")
        .arg(dir.path().join("server.pem"))
        .arg("--key-file")
        .arg(dir.path().join("server.key"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap())
        .spawn()
        .unwrap();
    let ctl = |args: &[&str]| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{port}"))
            .arg("--cacert")
            .arg(dir.path().join("ca.pem"))
            .args(args)
            .output()
            .unwrap()
    };
    wait_for("etcd answers over TLS", Duration::from_secs(20), || {
        ctl(&["endpoint", "health"]).status.success()
    });
    for args in [
        &["user", "add", "root:root-pw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "caw:caw-secret-pw"],
        &["role", "add", "caw"],
        &[
            "role",
            "grant-permission",
            "caw",
            "--prefix=true",
            "readwrite",
            "/tls/",
        ],
        &["user", "grant-role", "caw", "caw"],
        &["auth", "enable"],
    ] {
        let out = ctl(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            util::stderr(&out)
        );
    }
    let password = dir.path().join("password");
    std::fs::write(&password, "caw-secret-pw\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let server = FakeOAuth::start();
    let (mut machines, _) = three(&server, 3600);
    let key = store_key(dir.path(), "store.key");
    let url = format!("etcds://127.0.0.1:{port}/tls");
    let ca = dir.path().join("ca.pem");
    for (m, pw) in machines.iter_mut().zip([&password, &password, &wrong]) {
        m.start(
            &url,
            &key,
            &server,
            &[
                "--no-refresh",
                "--store-ca",
                ca.to_str().unwrap(),
                "--store-user",
                "caw",
                "--store-password-file",
                pw.to_str().unwrap(),
            ],
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    // One of them put the (shared) login in the store; the other found it there.
    while !machines[..2]
        .iter()
        .any(|m| m.log().contains("went to the store"))
    {
        assert!(
            Instant::now() < deadline,
            "neither machine 1 nor 2 reached the store:\n{}",
            all_logs(&machines)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let newer = claude_oauth("at-tls-new", "rt-tls-new", Some(ms_from_now(8 * 3600)));
    machines[0].write_login(&newer);
    wait_for(
        "the refresh reaches machine 2",
        Duration::from_secs(10),
        || read_text(&machines[1].live()) == newer,
    );
    // Machine 3's password is wrong: it says so and keeps its own login.
    wait_for(
        "machine 3 says it cannot log in",
        Duration::from_secs(15),
        || machines[2].log().contains("could not log in"),
    );
    assert!(!read_text(&machines[2].live()).contains("at-tls-new"));
    wait_for(
        "machine 3's status names the refusal",
        Duration::from_secs(10),
        || {
            util::stdout(&machines[2].env.auth_at(&machines[2].env.auth, &["status"]))
                .contains("store: error: etcd user `caw` could not log in")
        },
    );
    let logs = all_logs(&machines);
    assert!(
        !logs.contains("caw-secret-pw"),
        "the password in a log:\n{logs}"
    );
    for m in &machines {
        let pid = m.sync.as_ref().unwrap().id();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains("caw-secret-pw"));
    }
    drop(machines);
    let _ = etcd.kill();
    let _ = etcd.wait();
}
