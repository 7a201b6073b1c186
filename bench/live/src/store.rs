//! `live-bench store`: several machines on one login through etcd
//! (`caw auth sync --store`). A 3-member etcd cluster on loopback ports,
//! M "machines" (a host home, its auth dir, its host sync joined to the
//! store) with C containers each. Measured:
//!
//! - the time from a refresh written on one machine's host file (by rename,
//!   as Claude Code writes it; the machines take turns) to the new token in
//!   the home of every container of every machine, read through
//!   `/proc/<pid>/root` (median, p90, max);
//! - etcd requests per refresh: the members' `grpc_server_started_total`
//!   over the refreshes, less what the machines ask while idle (lease
//!   renewals, elections) over as long;
//! - the memory (VmRSS) of each host sync with the store on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    claude, claude_home, cost, die, ms_from_now, run, wait_all, write_by_rename, Container, Env,
    Report, Stats, CREDENTIAL,
};

pub struct Plan {
    pub machines: usize,
    pub containers: usize,
    pub rounds: usize,
    pub host_caw: PathBuf,
}

struct Etcd {
    members: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial: Vec<String> = (0..3)
        .map(|i| format!("b{i}=http://127.0.0.1:{}", peers[i]))
        .collect();
    let members = (0..3)
        .map(|i| {
            Command::new("etcd")
                .arg(format!("--name=b{i}"))
                .arg(format!(
                    "--data-dir={}",
                    dir.path().join(format!("b{i}")).display()
                ))
                .arg(format!(
                    "--listen-client-urls=http://127.0.0.1:{}",
                    ports[i]
                ))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{}",
                    ports[i]
                ))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", peers[i]))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                    peers[i]
                ))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg("--initial-cluster-state=new")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| die(&format!("cannot start etcd ({e}): scripts/etcd.sh")))
        })
        .collect();
    let etcd = Etcd {
        members,
        ports,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcd
        .ports
        .iter()
        .all(|&p| http_get(p, "/health").contains("\"health\":\"true\""))
    {
        if Instant::now() > deadline {
            die("the etcd cluster did not become healthy");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    etcd
}

/// Requests every member has started so far.
fn requests(etcd: &Etcd) -> u64 {
    etcd.ports
        .iter()
        .map(|&p| {
            http_get(p, "/metrics")
                .lines()
                .filter(|l| l.starts_with("grpc_server_started_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .sum()
}

/// One machine: its home and auth dir, its host sync, its containers.
struct Machine {
    env: Env,
    sync: Child,
    containers: Vec<Container>,
}

fn machine(
    caw: &Path,
    host_caw: &Path,
    url: &str,
    key: &Path,
    m: usize,
    containers: usize,
) -> Machine {
    let env = claude_home(
        caw,
        r#"{"hasCompletedOnboarding":true,"oauthAccount":{"accountUuid":"bench-account"}}"#,
    );
    let sync = Command::new(host_caw)
        .args([
            "auth",
            "sync",
            "--idle-exit",
            "0",
            "--no-refresh",
            "--no-verify",
        ])
        .arg("--auth-dir")
        .arg(&env.auth)
        .arg("--store")
        .arg(url)
        .arg("--store-key")
        .arg(key)
        .env("HOME", &env.home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.sync_pid().is_none() {
        if Instant::now() > deadline {
            die("a host sync did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let containers = (0..containers)
        .map(|c| Container::start(&env, 1000 * (m + 1) + c))
        .collect();
    Machine {
        env,
        sync,
        containers,
    }
}

pub fn bench(caw: &Path, plan: &Plan, report: &mut Report) {
    let etcd = start_etcd();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("store.key");
    run(Command::new(&plan.host_caw)
        .args(["auth", "store-key"])
        .arg(&key));
    let url = format!(
        "etcd://{}/bench",
        etcd.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut machines: Vec<Machine> = (0..plan.machines)
        .map(|m| machine(caw, &plan.host_caw, &url, &key, m, plan.containers))
        .collect();
    let homes: Vec<PathBuf> = machines
        .iter()
        .flat_map(|m| m.containers.iter().map(|c| c.file(CREDENTIAL)))
        .collect();
    // Settle: the first login everywhere.
    let first = claude("settle", ms_from_now(7200));
    write_by_rename(&machines[0].env.home.join(CREDENTIAL), &first);
    if wait_all(&homes, &first, Duration::from_secs(30)).is_none() {
        die("the first login did not reach every container");
    }
    // What the machines ask while nothing happens (leases, elections).
    let idle_from = (requests(&etcd), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let idle_rate = (requests(&etcd) - idle_from.0) as f64 / idle_from.1.elapsed().as_secs_f64();
    let start = (requests(&etcd), Instant::now());
    let (hosts_samples, samples): (Vec<Duration>, Vec<Duration>) = (0..plan.rounds)
        .map(|r| {
            let from_machine = r % machines.len();
            let from = machines[from_machine].env.home.join(CREDENTIAL);
            let others: Vec<PathBuf> = machines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != from_machine)
                .map(|(_, m)| m.env.home.join(CREDENTIAL))
                .collect();
            let bytes = claude(&format!("round{r}"), ms_from_now(7200) + r as i64 + 1);
            let t = Instant::now();
            write_by_rename(&from, &bytes);
            // The other machines' host files first (the store's own hop),
            // then every container.
            if wait_all(&others, &bytes, Duration::from_secs(10)).is_none() {
                die(&format!(
                    "round {r}: the refresh did not reach the other machines"
                ));
            }
            let hosts = t.elapsed();
            if wait_all(&homes, &bytes, Duration::from_secs(10)).is_none() {
                die(&format!(
                    "round {r}: the refresh did not reach every container"
                ));
            }
            let took = t.elapsed();
            // Let the round's echo (each machine's own store check) finish.
            std::thread::sleep(Duration::from_millis(200));
            (hosts, took)
        })
        .unzip();
    let spent = start.1.elapsed().as_secs_f64();
    let total = requests(&etcd) - start.0;
    let per_refresh = (total as f64 - idle_rate * spent) / plan.rounds as f64;
    let rss: Vec<u64> = machines
        .iter()
        .filter_map(|m| m.env.sync_pid())
        .map(|pid| cost(pid).1)
        .collect();
    let stats = Stats::new(samples);
    report.table(&format!(
        "{} machines × {} containers, etcd ×3",
        plan.machines, plan.containers
    ));
    report.add(
        "store_refresh_to_other_hosts",
        "a refresh on one machine → the other machines' host files",
        &Stats::new(hosts_samples),
    );
    report.add(
        "store_refresh_to_every_container",
        "a refresh on one machine → every container of every machine",
        &stats,
    );
    report.note(format!(
        "etcd requests per refresh: {per_refresh:.1} ({total} in {spent:.1} s over {} refreshes, less {idle_rate:.2}/s asked while idle: lease renewals and elections)",
        plan.rounds
    ));
    report.note(format!(
        "host sync RSS with the store on: {} kB (goal <= 8192 kB)",
        rss.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.results.insert(
        "store_etcd",
        json!({"requests_per_refresh": per_refresh, "idle_requests_per_s": idle_rate,
               "sync_rss_kb": rss, "machines": plan.machines, "containers": plan.containers}),
    );
    for m in &mut machines {
        m.containers.clear();
        let _ = m.sync.kill();
        let _ = m.sync.wait();
    }
    drop(etcd);
}
