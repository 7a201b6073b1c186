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

mod container;
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
