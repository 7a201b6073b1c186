//! The stampede of issue 15: ten containers and the host share one login set
//! up by caw, and all run the real agent at the same moment, past the point
//! where the agents themselves refresh that login (the login crosses it
//! while the containers start).
//!
//! With the host sync's refresher on, caw refreshes the login 5 minutes
//! before the agents' own point (here as soon as the sync starts, that
//! moment being behind already), so exactly one refresh reaches the server,
//! from caw, in the agent's own format, and every agent runs with the fresh
//! login: nothing refused, no run failed, the same usable login in every
//! home, `live/` and the host file. The control is the same scenario with
//! the refresher off (`CAW_NO_REFRESH=1` on the sync): the agents refresh
//! by themselves with the one refresh token, and the fake server, like the
//! real ones, accepts it once and revokes the whole family on a reuse.
//!
//! The host sync runs where the host's agents run (`Session::start_host_sync`:
//! the fake network, this test's /etc/hosts and CA). The files are read
//! from the host (the containers' through `/proc/<pid>/root`), so measuring
//! starts nothing in the containers. One stampede runs at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::net::{Request, TokenState};
use crate::prereqs::say;
use crate::session::{now, poll, run, text, Agent, Session, HOME, WORKSPACE};

/// Containers sharing the login, besides the host.
const CONTAINERS: usize = 10;
/// The token endpoint answers this long after a request arrives (the
/// refresh token is spent on arrival). On loopback this stands for what a
/// real refresh costs a client: DNS, TCP and TLS to a distant endpoint, and
/// the server's own time; about a second on a new connection.
const SERVER_DELAY: Duration = Duration::from_secs(1);
/// The agents' own refresh point is this many seconds after the login is
/// written: the login crosses it while the containers start, and every
/// agent is let go past it.
const TRIGGER_AFTER: i64 = 3;
/// How long one agent run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// The copies are settled once none changed for this long.
const QUIET: Duration = Duration::from_secs(2);
/// Where each run waits for the start signal: in each container's /tmp,
/// and in a temp dir on the host.
const READY: &str = "caw-stampede-ready";
const GO: &str = "caw-stampede-go";

/// One stampede at a time: ten containers and eleven agents fill two cores,
/// and two stampedes at once would measure each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    /// The credential, relative to a home.
    cred: &'static str,
    /// Its file in `live/`.
    live: &'static str,
    /// The command every side runs.
    args: &'static [&'static str],
    /// Whether the control reliably shows the race here (more than one
    /// refresh request); else it only checks that the agents refresh.
    race_shows: bool,
}

const CLAUDE: Kind = Kind {
    name: "claude",
    cred: ".claude/.credentials.json",
    live: "live/claude/credentials.json",
    args: &["-p", "say hi"],
    // On two cores the host's Claude (beside the containers' cgroups, not
    // among them) refreshes seconds before the containers' Claudes have
    // started, and they find the fresh login in their homes.
    race_shows: false,
};

const CODEX: Kind = Kind {
    name: "codex",
    cred: ".codex/auth.json",
    live: "live/codex/auth.json",
    args: &["exec", "--skip-git-repo-check", "say hi"],
    // Codex has no lock across processes: one or more containers refresh
    // with the old token while the first refresh is under way.
    race_shows: true,
};

impl Kind {
    /// Log the host in with the agents' own refresh point `TRIGGER_AFTER`
    /// seconds away (Claude: 5 minutes before `expiresAt`; Codex: the access
    /// token's `exp`, `last_refresh` being now). Returns that point.
    fn login(&self, s: &Session) -> i64 {
        let trigger = now() + TRIGGER_AFTER;
        match self.name {
            "claude" => s.login_claude(5 * 60 + TRIGGER_AFTER),
            _ => s.login_codex(TRIGGER_AFTER, false),
        }
        trigger
    }

    /// The refresh token in a credential file's text; `None` when it has
    /// none (a logged-out file) or is not one.
    fn refresh_token(&self, bytes: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let token = match self.name {
            "claude" => &v["claudeAiOauth"]["refreshToken"],
            _ => &v["tokens"]["refresh_token"],
        };
        token.as_str().filter(|t| !t.is_empty()).map(str::to_string)
    }

    /// The access token in a credential file's text, if not empty.
    fn access_token(&self, bytes: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let token = match self.name {
            "claude" => &v["claudeAiOauth"]["accessToken"],
            _ => &v["tokens"]["access_token"],
        };
        token.as_str().filter(|t| !t.is_empty()).map(str::to_string)
    }

    /// A run that got the model's answer.
    fn succeeded(&self, out: &Output) -> bool {
        let answered = text(&out.stdout).contains("fake-api-answer");
        match self.name {
            "claude" => answered && out.status.success(),
            _ => answered,
        }
    }
}

/// One copy of the credential after the stampede.
struct Copy {
    /// `host`, `live/` or the container's name.
    place: String,
    bytes: Option<Vec<u8>>,
}

/// What one stampede did.
struct Figures {
    refreshes: Vec<Request>,
    /// Refresh requests the server refused.
    refused: usize,
    /// API requests refused because their family was revoked.
    unauthorized: usize,
    /// Agent runs without the model's answer, by place.
    failed: Vec<String>,
    /// Copies without a usable login (missing, logged out, or a refresh
    /// token the server no longer takes), by place.
    unusable: Vec<String>,
    /// Distinct credentials among the copies.
    distinct: usize,
    /// When the runs were let go.
    go: Timestamp,
    /// From then to the last run's end.
    run_time: Duration,
    /// The whole test.
    total: Duration,
}

impl Figures {
    fn by_caw(&self) -> usize {
        self.refreshes.iter().filter(|r| r.caw).count()
    }

    fn report(&self, what: &str) {
        let go = self.go.as_millisecond() as f64 / 1000.0;
        let at: Vec<String> = self
            .refreshes
            .iter()
            .map(|r| format!("{:+.0}", (r.time - go) * 1000.0))
            .collect();
        say(&format!(
            "{what}: {} refresh request(s) ({} from caw) at {} ms from the start, {} refused \
             ({}), {} API requests refused; {} of {} runs failed; {} of {} copies without a \
             usable login; {} distinct credential(s); runs {:.1} s, test {:.1} s",
            self.refreshes.len(),
            self.by_caw(),
            at.join(", "),
            self.refused,
            count(self.refreshes.iter().filter_map(|r| r.refusal.clone())),
            self.unauthorized,
            self.failed.len(),
            CONTAINERS + 1,
            self.unusable.len(),
            CONTAINERS + 2,
            self.distinct,
            self.run_time.as_secs_f64(),
            self.total.as_secs_f64(),
        ));
        // The real CLI's requests against caw's pinned format: data, not a
        // verdict (the CLI is what it is; caw's pin is what may be wrong).
        let cli = count(self.refreshes.iter().filter(|r| !r.caw).map(|r| {
            let verdict = if r.format_problems.is_empty() {
                "as caw pins it".to_string()
            } else {
                format!("NOT as caw pins it: {}", r.format_problems.join("; "))
            };
            format!("fields {:?}, {verdict}", r.fields)
        }));
        if !cli.is_empty() {
            say(&format!("{what}: the agents' own refresh requests: {cli}"));
        }
    }
}

/// `a ×2, b` for the items of `items`, in order of first appearance.
fn count(items: impl Iterator<Item = String>) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for item in items {
        match seen.iter_mut().find(|(s, _)| *s == item) {
            Some((_, n)) => *n += 1,
            None => seen.push((item, 1)),
        }
    }
    seen.iter()
        .map(|(s, n)| {
            if *n > 1 {
                format!("{s} ×{n}")
            } else {
                s.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stampede that has run: its world, kept until the test has judged it
/// (a failing test prints the containers' logs as they go).
struct Done {
    /// Dropped first: the containers live in the session's network.
    containers: Vec<Agent>,
    _session: Session,
    figures: Figures,
}

impl Done {
    /// Remove the containers with one `docker rm` (each would, one by one).
    fn end(self) {
        let mut rm = Command::new("docker");
        rm.args(["rm", "--force"])
            .args(self.containers.iter().map(|c| c.name.as_str()));
        let _ = run(&mut rm, Duration::from_secs(60));
    }
}

/// The stampede for `kind`, with the host sync's refresher on or off.
fn stampede(kind: Kind, refresher: bool) -> Option<Done> {
    let s = Session::new(module_path!())?;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let trigger = kind.login(&s);
    s.net.delay_token_answers(SERVER_DELAY);
    s.setup(&["--agents", kind.name]);
    s.start_host_sync(refresher);
    let containers = start_containers(&s, kind.name);
    let runs = run_all_at_once(&s, &containers, kind, trigger);
    let failed: Vec<String> = runs
        .outputs
        .iter()
        .filter(|(_, out)| !kind.succeeded(out))
        .map(|(place, out)| {
            let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
            let tail: String = all.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            format!("{place} ({}): {tail}", out.status)
        })
        .collect();
    let copies = settled_copies(&s, &containers, kind);
    let requests = s.net.requests();
    let figures = Figures {
        refreshes: requests
            .iter()
            .filter(|r| r.is_refresh())
            .cloned()
            .collect(),
        refused: requests.iter().filter(|r| r.refused).count(),
        unauthorized: requests.iter().filter(|r| r.unauthorized).count(),
        failed,
        unusable: copies
            .iter()
            .filter(|c| !usable(&s, kind, c))
            .map(|c| c.place.clone())
            .collect(),
        distinct: {
            let mut all: Vec<&Option<Vec<u8>>> = copies.iter().map(|c| &c.bytes).collect();
            all.sort();
            all.dedup();
            all.len()
        },
        go: runs.go,
        run_time: runs.run_time,
        total: started.elapsed(),
    };
    s.net.assert_loopback_only();
    Some(Done {
        containers,
        _session: s,
        figures,
    })
}

/// `CONTAINERS` agent containers, started side by side.
fn start_containers(s: &Session, label: &str) -> Vec<Agent> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..CONTAINERS)
            .map(|i| scope.spawn(move || s.start_container(&format!("{label}{i}"))))
            .collect();
        starting
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// What the runs did.
struct Runs {
    /// Each run's place and output.
    outputs: Vec<(String, Output)>,
    /// When they were let go.
    go: Timestamp,
    /// From then to the last run's end.
    run_time: Duration,
}

/// The agent in every container and on the host, let go at one moment:
/// each run waits in a shell for a start file, and the start files are
/// created once every run waits and the login is past the agents' own
/// refresh point.
fn run_all_at_once(s: &Session, containers: &[Agent], kind: Kind, trigger: i64) -> Runs {
    let host_dir = tempfile::tempdir().unwrap();
    let wait = |dir: &str| {
        format!(
            "touch {dir}/{READY} && while [ ! -e {dir}/{GO} ]; do sleep 0.01; done && exec \"$@\""
        )
    };
    let mut runs: Vec<(String, Command, PathBuf, PathBuf)> = Vec::new();
    for c in containers {
        let mut cmd = Command::new("docker");
        cmd.args(c.exec_args(WORKSPACE, false))
            .args(["sh", "-c", &wait("/tmp"), "sh", kind.name])
            .args(kind.args);
        runs.push((
            c.name.clone(),
            cmd,
            c.host_path(&format!("/tmp/{READY}")),
            c.host_path(&format!("/tmp/{GO}")),
        ));
    }
    let host_script = wait(host_dir.path().to_str().unwrap());
    let mut host_args = vec!["-c", &host_script, "sh", kind.name];
    host_args.extend(kind.args);
    runs.push((
        "host".into(),
        s.host_command("/bin/sh", &host_args),
        host_dir.path().join(READY),
        host_dir.path().join(GO),
    ));

    std::thread::scope(|scope| {
        let mut waiting = Vec::new();
        let mut signals = Vec::new();
        for (place, mut cmd, ready, go) in runs {
            signals.push((ready, go));
            waiting.push(scope.spawn(move || (place, run(&mut cmd, RUN_TIMEOUT))));
        }
        let all_ready = poll(Duration::from_secs(60), || {
            signals
                .iter()
                .all(|(ready, _)| ready.exists())
                .then_some(())
        });
        assert!(all_ready.is_some(), "not every run got ready to start");
        // Past the agents' own refresh point (whole seconds: one more).
        while now() <= trigger + 1 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let go = Timestamp::now();
        let start = Instant::now();
        for (_, go) in &signals {
            std::fs::write(go, b"").unwrap();
        }
        let outputs = waiting
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        Runs {
            outputs,
            go,
            run_time: start.elapsed(),
        }
    })
}

/// Every copy of the credential (the host file, `live/`, each container's
/// home), once none has changed for `QUIET` (or after 20 s).
fn settled_copies(s: &Session, containers: &[Agent], kind: Kind) -> Vec<Copy> {
    let mut places: Vec<(String, PathBuf)> = vec![
        ("host".into(), s.host_file(kind.cred)),
        ("live/".into(), s.auth.join(kind.live)),
    ];
    for c in containers {
        places.push((
            c.name.clone(),
            c.host_path(&format!("{HOME}/{}", kind.cred)),
        ));
    }
    let read = |path: &Path| std::fs::read(path).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last: Vec<Option<Vec<u8>>> = places.iter().map(|(_, p)| read(p)).collect();
    let mut since = Instant::now();
    while since.elapsed() < QUIET && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now: Vec<Option<Vec<u8>>> = places.iter().map(|(_, p)| read(p)).collect();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    places
        .into_iter()
        .zip(last)
        .map(|((place, _), bytes)| Copy { place, bytes })
        .collect()
}

/// A copy with a login that works: an access token, and a refresh token the
/// server still takes.
fn usable(s: &Session, kind: Kind, copy: &Copy) -> bool {
    let Some(bytes) = &copy.bytes else {
        return false;
    };
    kind.access_token(bytes).is_some()
        && kind
            .refresh_token(bytes)
            .is_some_and(|t| s.net.refresh_token_state(&t) == TokenState::Live)
}

/// With the refresher on: one refresh, by caw, in the agent's own format;
/// nothing refused; every run answered; one usable login everywhere.
fn one_refresh_for_everyone(kind: Kind) {
    let Some(done) = stampede(kind, true) else {
        return;
    };
    let f = &done.figures;
    f.report(&format!("{} refresher on", kind.name));
    assert_eq!(f.refreshes.len(), 1, "refresh requests: {:#?}", f.refreshes);
    let r = &f.refreshes[0];
    assert!(r.caw, "the one refresh is not caw's: {r:#?}");
    assert!(!r.refused, "caw's refresh was refused: {r:#?}");
    assert!(
        r.format_problems.is_empty(),
        "caw's request differs from the pinned format: {:?}",
        r.format_problems
    );
    assert_eq!(f.refused, 0, "refused refreshes");
    assert_eq!(f.unauthorized, 0, "API requests refused");
    assert!(f.failed.is_empty(), "failed runs: {:#?}", f.failed);
    assert!(
        f.unusable.is_empty(),
        "copies without a usable login: {:?}",
        f.unusable
    );
    assert_eq!(f.distinct, 1, "not the same credential everywhere");
    done.end();
}

/// The control, with the refresher off: the agents refresh the login by
/// themselves (so the scenario does cross their refresh point, and the one
/// refresh with the refresher on is caw's doing), and where the race shows
/// reliably (`Kind::race_shows`), more than one of them does.
fn the_agents_refresh_by_themselves(kind: Kind) {
    let Some(done) = stampede(kind, false) else {
        return;
    };
    let f = &done.figures;
    f.report(&format!("{} refresher off (control)", kind.name));
    assert_eq!(f.by_caw(), 0, "caw refreshed with the refresher off");
    assert!(
        !f.refreshes.is_empty(),
        "no agent refreshed: the scenario does not cross the agents' refresh point"
    );
    assert!(
        !kind.race_shows || f.refreshes.len() > 1,
        "the control did not show the race: one refresh request"
    );
    done.end();
}

#[test]
fn claude_stampede_with_the_refresher_sends_one_refresh() {
    one_refresh_for_everyone(CLAUDE);
}

#[test]
fn claude_stampede_without_the_refresher_the_agents_refresh_themselves() {
    the_agents_refresh_by_themselves(CLAUDE);
}

#[test]
fn codex_stampede_with_the_refresher_sends_one_refresh() {
    one_refresh_for_everyone(CODEX);
}

#[test]
fn codex_stampede_without_the_refresher_the_agents_race() {
    the_agents_refresh_by_themselves(CODEX);
}
