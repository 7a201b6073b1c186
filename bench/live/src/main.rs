//! The live channel, measured: how long a refresh takes to reach a running
//! container (and ten of them) and to come back, what the host sync and a
//! container's guard cost while idle, and what `caw auth docker-flags` costs
//! with the sync already running and when it has to start it.
//!
//! Everything runs for real: `caw auth setup` on a temp home, containers
//! started with `$(caw auth docker-flags)` from a FROM-scratch busybox image,
//! the host sync that docker-flags starts. Container files are read (and
//! waited for with inotify) through `/proc/<pid>/root`, so no `docker exec`
//! round trip hides the sync's own latency.
//!
//!     cargo run --release -p caw-bench-live -- --caw "$(scripts/build-static.sh)"

use std::collections::BTreeMap;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

#[path = "../../../crates/caw-cli/tests/support/oauth.rs"]
mod oauth;
mod refresh;
mod store;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::json;

const IMAGE: &str = "caw-bench-live:busybox";
const HOME: &str = "/home/playground";
const CREDENTIAL: &str = ".claude/.credentials.json";

struct Args {
    caw: PathBuf,
    rounds: usize,
    busybox: PathBuf,
    out: PathBuf,
    /// `refresh`: the refresh benchmark instead (see `refresh.rs`).
    refresh: Option<refresh::Plan>,
    /// `store`: the several-machines benchmark instead (see `store.rs`).
    store: Option<store::Plan>,
}

fn args() -> Args {
    let mut a = Args {
        caw: PathBuf::new(),
        rounds: 50,
        busybox: "/bin/busybox".into(),
        out: "bench/results/live.json".into(),
        refresh: None,
        store: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--caw" => a.caw = value().into(),
            "--rounds" => {
                a.rounds = value()
                    .parse()
                    .unwrap_or_else(|_| die("--rounds: a number"))
            }
            "--busybox" => a.busybox = value().into(),
            "--out" => a.out = value().into(),
            "refresh" => {
                a.refresh = Some(refresh::Plan {
                    sizes: vec![1, 10, 50],
                    rounds: 3,
                    host_caw: PathBuf::new(),
                })
            }
            "store" => {
                a.store = Some(store::Plan {
                    machines: 3,
                    containers: 10,
                    rounds: 20,
                    host_caw: PathBuf::new(),
                })
            }
            "--machines" | "--containers" => {
                let n: usize = value()
                    .parse()
                    .unwrap_or_else(|_| die(&format!("{flag}: a number")));
                let plan = a
                    .store
                    .as_mut()
                    .unwrap_or_else(|| die("this option belongs to `store`, which comes first"));
                if flag == "--machines" {
                    plan.machines = n;
                } else {
                    plan.containers = n;
                }
            }
            "--host-caw" if a.store.is_some() => {
                if let Some(p) = a.store.as_mut() {
                    p.host_caw = value().into();
                }
            }
            "--host-caw" => plan(&mut a).host_caw = value().into(),
            "--sizes" => {
                plan(&mut a).sizes = value()
                    .split(',')
                    .map(|n| n.parse().unwrap_or_else(|_| die("--sizes: numbers")))
                    .collect()
            }
            "--expiries" => {
                plan(&mut a).rounds = value()
                    .parse()
                    .unwrap_or_else(|_| die("--expiries: a number"))
            }
            "-h" | "--help" => {
                println!(
                    "live-bench --caw STATIC_CAW [--rounds N] [--busybox PATH] [--out JSON]\n\
                     live-bench refresh --caw STATIC_CAW --host-caw CAW [--sizes 1,10,50] \
                     [--expiries N] [--busybox PATH] [--out JSON]\n\
                     live-bench store --caw STATIC_CAW --host-caw CAW [--machines 3] \
                     [--containers 10] [--rounds N] [--busybox PATH] [--out JSON]"
                );
                std::process::exit(0);
            }
            other => die(&format!("unknown argument `{other}`")),
        }
    }
    if a.caw.as_os_str().is_empty() {
        die("--caw: a static caw (scripts/build-static.sh prints one)");
    }
    a
}

/// The refresh plan, for its options (which need `refresh` first).
fn plan(a: &mut Args) -> &mut refresh::Plan {
    a.refresh
        .as_mut()
        .unwrap_or_else(|| die("this option belongs to `refresh`, which comes first"))
}

fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| die(&format!("{cmd:?}: {e}")));
    if !out.status.success() {
        die(&format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    out
}

/// The image: a static busybox and the agent user, nothing else.
fn build_image(busybox: &Path) {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path().join("rootfs");
    for d in ["bin", "etc", "tmp", "home/playground"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = run(Command::new(busybox).arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.contains('/') {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nplayground:x:1000:1000::/home/playground:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nplayground:x:1000:\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\", \"/tmp/caw_auth/setup-container.sh && exec sleep 3600\"]\n",
    )
    .unwrap();
    run(Command::new("docker")
        .args(["build", "--quiet", "--tag", IMAGE])
        .arg(ctx.path()));
}

fn ms_from_now(secs: i64) -> i64 {
    (jiff::Timestamp::now().as_second() + secs) * 1000
}

fn claude(tag: &str, expires_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-{tag}","refreshToken":"sk-ant-ort01-{tag}","expiresAt":{expires_ms},"scopes":["user:inference"]}}}}"#
    )
    .into_bytes()
}

/// Replace `path` as Claude Code does: a temp file beside it, renamed over it.
fn write_by_rename(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("json.tmp.bench");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Block (with inotify on their directories) until every path holds `want`.
fn wait_all(paths: &[PathBuf], want: &[u8], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).unwrap();
    for p in paths {
        let dir = p.parent().unwrap();
        let _ = inotify.add_watch(
            dir,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_CREATE,
        );
    }
    loop {
        if paths
            .iter()
            .all(|p| std::fs::read(p).is_ok_and(|b| b == want))
        {
            return Some(start.elapsed());
        }
        let left = limit.checked_sub(start.elapsed())?;
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        let ms = (left.as_millis() as i32).clamp(1, 1000);
        let _ = nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
        while inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
    }
}

struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    fn new(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats { samples }
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    fn median(&self) -> f64 {
        Self::ms(self.samples[self.samples.len() / 2])
    }

    fn p90(&self) -> f64 {
        Self::ms(self.samples[(self.samples.len() * 9 / 10).min(self.samples.len() - 1)])
    }

    fn max(&self) -> f64 {
        Self::ms(*self.samples.last().unwrap())
    }

    fn json(&self) -> serde_json::Value {
        json!({"median_ms": self.median(), "p90_ms": self.p90(), "max_ms": self.max(),
               "n": self.samples.len(),
               "samples_ms": self.samples.iter().map(|d| Self::ms(*d)).collect::<Vec<_>>()})
    }

    fn line(&self, what: &str) -> String {
        format!(
            "| {what} | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            self.median(),
            self.p90(),
            self.max(),
            self.samples.len()
        )
    }
}

struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    auth: PathBuf,
    caw: PathBuf,
}

impl Env {
    fn caw(&self) -> Command {
        let mut c = Command::new(&self.caw);
        c.env("HOME", &self.home)
            .env_remove("CAW_AUTH_DIR")
            .env_remove("CAW_NO_SYNC")
            .env("CAW_STATIC_BINARY", &self.caw);
        c
    }

    fn flags(&self) -> Vec<String> {
        let out = run(self
            .caw()
            .args(["auth", "docker-flags", "--format", "json", "--auth-dir"])
            .arg(&self.auth));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn sync_pid(&self) -> Option<i32> {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.auth.join("sync.json")).ok()?).ok()?;
        let pid = state["pid"].as_i64()? as i32;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }
}

struct Container {
    name: String,
    pid: u32,
}

impl Container {
    fn start(env: &Env, i: usize) -> Container {
        Container::start_with(env, i, &["--network", "none"], &[])
    }

    /// A container whose agent user runs `script` (sh) with `URL` set, on
    /// the host's network (to reach a loopback token endpoint).
    fn start_agent(env: &Env, i: usize, script: &str, url: &str) -> Container {
        let url = format!("URL={url}");
        let agent = format!("AGENT={script}");
        let before = [
            "--network",
            "host",
            "-e",
            &url,
            "-e",
            &agent,
            "--entrypoint",
            "/bin/sh",
        ];
        let cmd = [
            "-c",
            "/tmp/caw_auth/setup-container.sh && exec su -s /bin/sh playground -c 'eval \"$AGENT\"'",
        ];
        Container::start_with(env, i, &before, &cmd)
    }

    fn start_with(env: &Env, i: usize, before: &[&str], after: &[&str]) -> Container {
        let name = format!("caw-bench-live-{}-{i}", std::process::id());
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--rm".into()];
        args.extend(before.iter().map(|s| s.to_string()));
        args.extend(["--name".into(), name.clone()]);
        args.extend(env.flags());
        args.push(IMAGE.into());
        args.extend(after.iter().map(|s| s.to_string()));
        run(Command::new("docker").args(&args));
        let out =
            run(Command::new("docker").args(["inspect", "--format", "{{.State.Pid}}", &name]));
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let c = Container { name, pid };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(c.file(CREDENTIAL).exists() && c.guard_pid().is_some()) {
            if Instant::now() > deadline {
                die(&format!("the guard did not start in `{}`", c.name));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn file(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{HOME}/{rel}", self.pid))
    }

    /// The guard's pid as the host sees it (from the container's pid file).
    fn guard_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(format!(
            "/proc/{}/root/tmp/caw_credential_guard.pid",
            self.pid
        ))
        .ok()?;
        let in_container: i32 = text.trim().parse().ok()?;
        // Map the container pid to the host's through NSpid of the container's tasks.
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(host_pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(format!("/proc/{host_pid}/status")) else {
                continue;
            };
            let nspid = status.lines().find(|l| l.starts_with("NSpid:"));
            if let Some(line) = nspid {
                let ids: Vec<i32> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|s| s.parse().ok())
                    .collect();
                if ids.len() > 1 && ids[ids.len() - 1] == in_container && ids[0] == host_pid {
                    let root = std::fs::read_link(format!("/proc/{host_pid}/root")).ok();
                    let mine = std::fs::read_link(format!("/proc/{}/root", self.pid)).ok();
                    if root == mine {
                        return Some(host_pid);
                    }
                }
            }
        }
        None
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// CPU ticks (user + system) and VmRSS (kB) of a process.
fn cost(pid: i32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let ticks = fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

fn timed(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{cmd:?}");
    start.elapsed()
}

/// What the bench prints (a Markdown table) and saves (JSON).
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    results: BTreeMap<&'static str, serde_json::Value>,
}

impl Report {
    fn table(&mut self, first: &str) {
        if !self.lines.is_empty() {
            self.lines.push(String::new());
        }
        self.lines
            .push(format!("| {first} | median | p90 | max | n |"));
        self.lines.push("| --- | --- | --- | --- | --- |".into());
    }

    fn line(&mut self, text: String) {
        self.lines.push(text);
    }

    fn note(&mut self, text: String) {
        self.lines.push(String::new());
        self.lines.push(text);
    }

    fn add(&mut self, key: &'static str, what: &str, stats: &Stats) {
        self.lines.push(stats.line(what));
        self.results.insert(key, stats.json());
    }
}

/// Fresh credentials, each newer than the last.
struct Clock(i64);

impl Clock {
    fn next(&mut self, tag: &str) -> Vec<u8> {
        self.0 += 1;
        claude(&format!("{tag}-{}", self.0), ms_from_now(7200) + self.0)
    }
}

/// `rounds` refreshes written by rename at `from`, each timed until every
/// one of `to` holds it.
fn hops(rounds: usize, clock: &mut Clock, tag: &str, from: &Path, to: &[PathBuf]) -> Stats {
    let samples = (0..rounds)
        .map(|_| {
            let bytes = clock.next(tag);
            let start = Instant::now();
            write_by_rename(from, &bytes);
            if wait_all(to, &bytes, Duration::from_secs(5)).is_none() {
                die(&format!("{tag}: a refresh did not arrive within 5 s"));
            }
            start.elapsed()
        })
        .collect();
    Stats::new(samples)
}

/// The host's example home and its auth dir, set up for Claude.
fn prepare(a: &Args) -> Env {
    claude_home(&a.caw, r#"{"hasCompletedOnboarding":true}"#)
}

/// A temp home with `.claude.json` = `config` and a Claude login (1 h
/// left), and its auth dir set up for Claude with the static caw `caw`.
fn claude_home(caw: &Path, config: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        home: dir.path().join("home"),
        auth: dir.path().join("home/.caw/auth"),
        caw: std::fs::canonicalize(caw).unwrap(),
        _dir: dir,
    };
    std::fs::create_dir_all(env.home.join(".claude")).unwrap();
    std::fs::write(env.home.join(".claude.json"), config).unwrap();
    std::fs::write(
        env.home.join(CREDENTIAL),
        claude("start", ms_from_now(3600)),
    )
    .unwrap();
    run(env
        .caw()
        .args(["auth", "setup", "--agents", "claude", "--auth-dir"])
        .arg(&env.auth));
    env
}

/// Hop latencies with one container, fan-out with ten, then their idle cost.
fn live_channel(a: &Args, env: &Env, report: &mut Report) {
    let host = env.home.join(CREDENTIAL);
    let mut clock = Clock(0);
    report.table("case");
    // One container first: the latency of one hop each way, nothing else woken.
    let mut containers = vec![Container::start(env, 0)];
    let first = containers[0].file(CREDENTIAL);
    let s = hops(
        a.rounds,
        &mut clock,
        "host",
        &host,
        std::slice::from_ref(&first),
    );
    report.add(
        "host_rename_to_container",
        "host rename -> container home (1 container)",
        &s,
    );
    let s = hops(
        a.rounds,
        &mut clock,
        "container",
        &first,
        std::slice::from_ref(&host),
    );
    report.add(
        "container_to_host",
        "container home (rename) -> host (1 container)",
        &s,
    );

    containers.extend((1..10).map(|i| Container::start(env, i)));
    let all: Vec<PathBuf> = containers.iter().map(|c| c.file(CREDENTIAL)).collect();
    let s = hops(a.rounds, &mut clock, "fan", &host, &all);
    report.add(
        "fan_out_10",
        "host rename -> all 10 container homes (fan-out)",
        &s,
    );
    let s = hops(a.rounds, &mut clock, "spread", &first, &all[1..]);
    report.add(
        "container_to_other_containers",
        "container home -> the other 9 containers",
        &s,
    );

    // Idle cost of the host sync and of one guard.
    let sync = env.sync_pid().expect("the host sync runs");
    let guard = containers[0].guard_pid().expect("a guard runs");
    let (s0, g0) = (cost(sync), cost(guard));
    std::thread::sleep(Duration::from_secs(10));
    let (s1, g1) = (cost(sync), cost(guard));
    report.lines.push(String::new());
    report.lines.push(format!(
        "idle over 10 s: host sync {} CPU ticks, VmRSS {} kB; guard {} ticks, VmRSS {} kB",
        s1.0 - s0.0,
        s1.1,
        g1.0 - g0.0,
        g1.1
    ));
    report.results.insert(
        "idle",
        json!({"seconds": 10, "sync_ticks": s1.0 - s0.0, "sync_rss_kb": s1.1,
               "guard_ticks": g1.0 - g0.0, "guard_rss_kb": g1.1}),
    );
}

/// Stop the host sync and wait until it is gone.
fn stop_sync(env: &Env) {
    let Some(pid) = env.sync_pid() else { return };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// docker-flags: a bare start of the same binary, with the sync running,
/// and when it must start one.
fn docker_flags(a: &Args, env: &Env, report: &mut Report) {
    let version = || {
        let mut c = env.caw();
        c.arg("--version");
        c
    };
    let flags = || {
        let mut c = env.caw();
        c.args(["auth", "docker-flags", "--auth-dir"])
            .arg(&env.auth);
        c
    };
    let bare = Stats::new((0..a.rounds).map(|_| timed(version())).collect());
    let running = Stats::new((0..a.rounds).map(|_| timed(flags())).collect());
    let starting = Stats::new(
        (0..a.rounds.min(20))
            .map(|_| {
                stop_sync(env);
                timed(flags())
            })
            .collect(),
    );
    report.table("command");
    report
        .lines
        .push(bare.line("`caw --version` (a bare start)"));
    report
        .lines
        .push(running.line("`caw auth docker-flags`, sync running"));
    report
        .lines
        .push(starting.line("`caw auth docker-flags`, starting the sync"));
    report.lines.push(format!(
        "docker-flags with the sync running / bare start: {:.2}x (target <= 2x)",
        running.median() / bare.median()
    ));
    report.results.insert(
        "docker_flags",
        json!({"bare_start": bare.json(), "sync_running": running.json(),
               "starting_sync": starting.json()}),
    );
}

fn main() {
    let mut a = args();
    build_image(&a.busybox);
    let env = prepare(&a);
    let mut report = Report::default();
    if let Some(plan) = a.store.as_mut() {
        plan.rounds = a.rounds;
        if plan.host_caw.as_os_str().is_empty() {
            die("store --host-caw: the host's caw, with the store (target/release/caw)");
        }
    }
    match &a.refresh {
        _ if a.store.is_some() => {
            if let Some(plan) = &a.store {
                store::bench(&env.caw, plan, &mut report);
            }
        }
        Some(plan) => {
            if plan.host_caw.as_os_str().is_empty() {
                die("refresh --host-caw: the host's caw, with the refresher (target/release/caw)");
            }
            refresh::bench(&env, plan, &mut report);
        }
        None => {
            live_channel(&a, &env, &mut report);
            docker_flags(&a, &env, &mut report);
        }
    }
    run(env
        .caw()
        .args(["auth", "teardown", "--auth-dir"])
        .arg(&env.auth));

    println!("{}", report.lines.join("\n"));
    if let Some(parent) = a.out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let meta = json!({"caw": a.caw, "rounds": a.rounds, "when": jiff::Timestamp::now().to_string(),
                      "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()});
    std::fs::write(
        &a.out,
        serde_json::to_vec_pretty(&json!({"meta": meta, "results": report.results})).unwrap(),
    )
    .unwrap();
    eprintln!("(all samples in {})", a.out.display());
}
