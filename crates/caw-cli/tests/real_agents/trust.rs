//! Trust prompts, read from the real TUIs' screens (tmux): none in the
//! folders caw marks trusted, one elsewhere.

use std::process::Command;
use std::time::Duration;

use crate::session::{Agent, Session, HOME, WORKSPACE};
use crate::tui::Screen;

/// What each TUI shows when it asks to trust the folder, and once it is
/// ready for input without asking (Claude Code 2.1.332, Codex 0.147.0).
const CLAUDE_PROMPT: &str = "Is this a project you created or one you trust?";
const CLAUDE_READY: &str = "Claude Code v";
const CODEX_PROMPT: &str = "Do you trust the contents of this directory?";
const CODEX_READY: &str = "OpenAI Codex";

/// Start `program`'s TUI as the agent user in `dir` of the container and
/// say whether it asks to trust the folder (with the screen, for messages).
fn asks_for_trust(container: &Agent, dir: &str, program: &str) -> (bool, String) {
    let (prompt, ready) = match program {
        "claude" => (CLAUDE_PROMPT, CLAUDE_READY),
        "codex" => (CODEX_PROMPT, CODEX_READY),
        other => unreachable!("no TUI markers for {other}"),
    };
    let mut cmd = Command::new("docker");
    cmd.args(container.exec_args(dir, true)).arg(program);
    let screen = Screen::start(&cmd);
    let (seen, text) = screen.wait_for_any(&[prompt, ready], Duration::from_secs(30));
    if seen == 0 {
        return (true, text);
    }
    // Ready: make sure no prompt follows the first frame.
    std::thread::sleep(Duration::from_secs(1));
    let text = screen.capture();
    if std::env::var_os("CAW_REAL_AGENTS_SHOW_SCREENS").is_some() {
        crate::prereqs::say(&format!("{program} in {dir}:\n{text}"));
    }
    (text.contains(prompt), text)
}

/// Both agents logged in on the host, set up with `setup_args`, and a
/// container running with them.
fn logged_in_container(setup_args: &[&str]) -> Option<(Session, Agent)> {
    let s = Session::new(module_path!())?;
    s.login_claude(3 * 3600);
    s.login_codex(5 * 86400, false);
    s.setup(setup_args);
    let container = s.start_container("tui");
    Some((s, container))
}

#[test]
fn trust_prompt_shows_in_workspace_without_trust_flag() {
    // The control for the tests below: the screen reader sees the prompt
    // when there is one. Without `--trust`, only the container home is
    // trusted, and /workspace (where projects are usually mounted) is not.
    let Some((_s, container)) = logged_in_container(&[]) else {
        return;
    };
    for program in ["claude", "codex"] {
        let (asked, screen) = asks_for_trust(&container, WORKSPACE, program);
        assert!(
            asked,
            "{program} did not ask to trust {WORKSPACE}:\n{screen}"
        );
    }
}

#[test]
fn no_trust_prompt_in_container_home() {
    let Some((_s, container)) = logged_in_container(&[]) else {
        return;
    };
    for program in ["claude", "codex"] {
        let (asked, screen) = asks_for_trust(&container, HOME, program);
        assert!(!asked, "{program} asks to trust {HOME}:\n{screen}");
    }
}

#[test]
fn no_trust_prompt_in_workspace_with_trust_flag() {
    let Some((_s, container)) = logged_in_container(&["--trust", WORKSPACE]) else {
        return;
    };
    for program in ["claude", "codex"] {
        let (asked, screen) = asks_for_trust(&container, WORKSPACE, program);
        assert!(
            !asked,
            "{program} asks to trust {WORKSPACE} despite --trust:\n{screen}"
        );
    }
}
