//! The `caw` binary, run on temp homes built like real ones.

mod compat;
mod docker_flags;
#[path = "../support/oauth.rs"]
mod oauth;
mod refresh;
mod robustness;
mod setup;
mod shell_decide;
#[path = "../support/skip.rs"]
#[allow(dead_code)]
mod skip;
mod status;
mod sync;
mod teardown;
mod util;
mod vouch;
