//! What the real-agent tests need from the machine, checked once per test
//! binary: a missing prerequisite skips each test with a message (a failure
//! under `CI`); a prerequisite that is there but broken always fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use crate::static_caw::workspace_root;

pub struct Prereqs {
    /// Holds `claude` and `codex`.
    pub bin: PathBuf,
    /// `caw-real-agents:<hash>`.
    pub image: String,
    /// The static caw `caw auth setup` bundles (so the container runs the
    /// inotify guard, as every install of caw does).
    pub static_caw: PathBuf,
}

type State = crate::skip::Found<Prereqs>;

static STATE: OnceLock<State> = OnceLock::new();

/// Say `message` on the real stderr (see [`crate::skip::say`]).
pub fn say(message: &str) {
    crate::skip::say("caw real-agents", message);
}

/// The prerequisites, or `None` when the test must be skipped (after saying
/// why). Panics when they are broken, or under `CI` when one is missing.
pub fn get_or_skip(test: &str) -> Option<&'static Prereqs> {
    static SAID: AtomicBool = AtomicBool::new(false);
    STATE.get_or_init(check).get("caw real-agents", &SAID, test)
}

fn check() -> State {
    // /proc/self belongs to the process's effective uid.
    let euid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if euid.ok() != Some(0) {
        return State::Missing(
            "not root: the host runs need private mount and network namespaces \
             (unshare, nsenter) and debootstrap needs root"
                .into(),
        );
    }
    for (tool, args) in [
        ("docker", &["info", "--format", "{{.ServerVersion}}"][..]),
        ("nsenter", &["--version"][..]),
        ("unshare", &["--version"][..]),
        ("openssl", &["version"][..]),
        ("python3", &["--version"][..]),
        ("tmux", &["-V"][..]),
    ] {
        match Command::new(tool).args(args).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return State::Missing(format!(
                    "`{tool} {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => return State::Missing(format!("cannot run `{tool}`: {e}")),
        }
    }
    let (bin, image) = match agents_and_image() {
        Ok(found) => found,
        Err(reason) => return State::Broken(reason),
    };
    let static_caw = match crate::static_caw::find_or_build(say) {
        Ok(path) => path,
        Err(reason) => return State::Broken(reason),
    };
    State::Ready(Prereqs {
        bin,
        image,
        static_caw,
    })
}

/// `$CAW_REAL_AGENTS_BIN` and `$CAW_REAL_AGENTS_IMAGE`, else what
/// `scripts/real-agents.sh` prints (it fetches and caches them).
fn agents_and_image() -> Result<(PathBuf, String), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (bin, image) = match (env("CAW_REAL_AGENTS_BIN"), env("CAW_REAL_AGENTS_IMAGE")) {
        (Some(bin), Some(image)) => (PathBuf::from(bin), image),
        _ => {
            let script = workspace_root().join("scripts/real-agents.sh");
            say(&format!(
                "running `{}` (set CAW_REAL_AGENTS_BIN and CAW_REAL_AGENTS_IMAGE to skip it)",
                script.display()
            ));
            let out = Command::new(&script)
                .current_dir(workspace_root())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run `{}`: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!("`{}` failed ({})", script.display(), out.status));
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let get = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")))
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{}` printed no {key}=", script.display()))
            };
            (
                PathBuf::from(get("CAW_REAL_AGENTS_BIN")?),
                get("CAW_REAL_AGENTS_IMAGE")?,
            )
        }
    };
    for name in ["claude", "codex"] {
        if !bin.join(name).is_file() {
            return Err(format!("no `{name}` in `{}`", bin.display()));
        }
    }
    Ok((bin, image))
}
