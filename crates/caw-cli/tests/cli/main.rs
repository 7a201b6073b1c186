//! The `caw` binary, run on temp homes built like real ones.

mod compat;
mod docker_flags;
mod robustness;
mod setup;
mod status;
mod sync;
mod teardown;
mod util;
