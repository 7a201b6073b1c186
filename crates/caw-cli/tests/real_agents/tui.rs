//! Reading a TUI's screen: the program runs in a detached tmux session on a
//! private tmux server (`tmux -L <name>`, so no other tmux is touched), and
//! `capture-pane` returns what a person would see.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Screen {
    socket: String,
    /// The server's socket file, removed on drop (tmux leaves it behind).
    socket_path: Option<std::path::PathBuf>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Screen {
    /// Start `program args…` (with its environment) in a 160x45 terminal.
    pub fn start(cmd: &Command) -> Screen {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut screen = Screen {
            socket: format!("caw-real-agents-{}-{n}", std::process::id()),
            socket_path: None,
        };
        let mut tmux = Command::new("tmux");
        tmux.args(["-L", &screen.socket, "-f", "/dev/null"]).args([
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "45",
            "-s",
            "main",
        ]);
        // tmux starts the command through a shell with the server's
        // environment: pass the command's own environment explicitly.
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                tmux.arg("-e")
                    .arg(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
            }
        }
        if let Some(dir) = cmd.get_current_dir() {
            tmux.arg("-c").arg(dir);
        }
        tmux.arg("--").arg(cmd.get_program());
        tmux.args(cmd.get_args());
        let out = tmux.output().unwrap();
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = Command::new("tmux")
            .args([
                "-L",
                &screen.socket,
                "display-message",
                "-p",
                "#{socket_path}",
            ])
            .output()
            .unwrap();
        let path = String::from_utf8_lossy(&path.stdout).trim().to_string();
        screen.socket_path = (!path.is_empty()).then(|| path.into());
        screen
    }

    /// The visible screen as text.
    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "main"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until one of `texts` is on the screen and return its index and
    /// the screen; panics with the screen after `timeout`.
    pub fn wait_for_any(&self, texts: &[&str], timeout: Duration) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture();
            if let Some(i) = texts.iter().position(|t| screen.contains(t)) {
                return (i, screen);
            }
            assert!(
                Instant::now() < deadline,
                "none of {texts:?} on the screen after {timeout:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}
