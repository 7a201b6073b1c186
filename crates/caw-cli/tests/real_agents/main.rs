//! The real Claude Code and Codex CLIs against caw, offline.
//!
//! Each test gets a temp host home logged in to both agents with fake tokens,
//! `caw auth setup` on it, and a Debian container started with `docker run
//! $(caw auth docker-flags)` whose entrypoint runs `setup-container.sh` (the
//! docs/docker.md wiring). The real binaries run on the host and in the
//! container; every request they make goes to a fake API + OAuth server
//! (`fake_server.py`) that records the bearer tokens it sees and rotates
//! refresh tokens.
//!
//! Network: one network namespace per test that has nothing but loopback,
//! owned by a sleeping "net" container started with `--network none` and an
//! `--add-host` per service name (all 127.0.0.1). The fake server runs in it
//! (`nsenter --net`), the agent container joins it (`--network
//! container:…`, which also shares its /etc/hosts), and host runs enter it
//! too, in a private mount namespace whose /etc/hosts and CA bundle are bind
//! mounts. No route leaves loopback, so nothing can reach a real service.
//!
//! The host sync is the one `docker-flags` starts, with the refresher off
//! (`CAW_NO_REFRESH`, set by `.cargo/config.toml`), except in the stampede
//! and hold tests: they start it themselves where the host's agents run, in
//! the fake network, with the refresher on (and off, for the control, or
//! until the hold tests turn it on).
//!
//! Needs root, Docker, nsenter/unshare, openssl, python3, tmux, and what
//! `scripts/real-agents.sh` fetches and caches (the pinned wheels, the
//! debootstrapped image); the harness runs that script itself unless
//! `CAW_REAL_AGENTS_BIN` and `CAW_REAL_AGENTS_IMAGE` are set. Without a
//! prerequisite each test is skipped with a message, except under `CI`,
//! where that is a failure. Run with `cargo test -p caw-cli --test
//! real_agents`.

mod hold;
mod login;
mod logout;
mod mcp;
mod net;
mod prereqs;
mod refresh;
mod session;
#[path = "../support/skip.rs"]
#[allow(dead_code)]
mod skip;
mod stampede;
#[path = "../support/static_caw.rs"]
mod static_caw;
#[path = "../support/tls.rs"]
mod tls;
mod trust;
mod tui;
