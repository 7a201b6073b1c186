//! The whole flow in real Docker containers: `caw auth setup` on a temp host
//! home, `docker run $(caw auth docker-flags) …` on an image built `FROM
//! scratch` with busybox, `setup-container.sh` in its entrypoint, and refreshes
//! on either side reaching the other, with the bundled Rust guard and with the
//! shell fallback.
//!
//! Needs a Docker engine and a static busybox (`scripts/e2e-prereqs.sh`);
//! without them every Docker test is skipped with a message, except under `CI`
//! where that is a failure. The bundled-guard tests use the static caw at
//! `$CAW_E2E_STATIC_BIN`, else build one with `scripts/build-static.sh`.
//! Run with `cargo test -p caw-cli --test e2e` (or `scripts/e2e-test.sh`).
//!
//! The core cases also run on Podman, rootful, rootless and rootless with
//! keep-id (`engines.rs`, `cargo test -p caw-cli --test e2e engines::`);
//! `scripts/engines.sh` prepares the machine for them.

/// One test per guard, `rust_guard::name` and `shell_guard::name`, for each
/// scenario `fn name(guard: Guard, test: &str)` of the calling module.
macro_rules! for_both_guards {
    ($($name:ident),* $(,)?) => {
        mod rust_guard {
            $(
                #[test]
                fn $name() {
                    super::$name(
                        crate::session::Guard::Rust,
                        concat!(module_path!(), "::", stringify!($name)),
                    );
                }
            )*
        }
        mod shell_guard {
            $(
                #[test]
                fn $name() {
                    super::$name(
                        crate::session::Guard::Shell,
                        concat!(module_path!(), "::", stringify!($name)),
                    );
                }
            )*
        }
    };
}
pub(crate) use for_both_guards;

/// One test per engine row other than rootful Docker (see `engines.rs`),
/// `podman_rootful::name`, `podman_rootless::name`, `podman_keep_id::name`
/// and `docker_rootless::name`, for each scenario `fn name(row: Row, test: &str)`
/// of the calling module.
macro_rules! on_other_engines {
    ($($name:ident),* $(,)?) => {
        crate::on_engines!(podman_rootful, PodmanRootful, $($name),*);
        crate::on_engines!(podman_rootless, PodmanRootless, $($name),*);
        crate::on_engines!(podman_keep_id, PodmanKeepId, $($name),*);
        crate::on_engines!(docker_rootless, DockerRootless, $($name),*);
    };
}
pub(crate) use on_other_engines;

/// A module `$module` with one test per scenario on `Row::$row`.
macro_rules! on_engines {
    ($module:ident, $row:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::$name(
                        crate::engines::Row::$row,
                        concat!(module_path!(), "::", stringify!($name)),
                    );
                }
            )*
        }
    };
}
pub(crate) use on_engines;

mod container;
mod engines;
mod failures;
mod held;
mod image;
mod live;
#[path = "../support/oauth.rs"]
mod oauth;
mod prereqs;
mod resetup;
mod run;
mod security;
mod session;
#[path = "../support/skip.rs"]
#[allow(dead_code)]
mod skip;
#[path = "../support/static_caw.rs"]
mod static_caw;
mod sync;
#[path = "../cli/util.rs"]
#[allow(dead_code)]
mod util;
mod vouch;
