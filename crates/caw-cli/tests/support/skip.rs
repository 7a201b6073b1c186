//! A test whose real part cannot run here (no root, no Docker, no agent
//! binaries…) says so and returns; under `CI` it fails instead, so a CI run
//! never passes on tests that did not run.
//!
//! Shared by the test crates through `#[path]`.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// True under CI (`CI` set and non-empty).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Write to the real stderr: the harness captures `eprintln!` of passing
/// tests, and a skip must show.
pub fn say(suite: &str, message: &str) {
    let _ = writeln!(std::io::stderr(), "{suite}: {message}");
}

/// The running test's name, as the harness gave it to its thread.
pub fn current_test() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// Skip `test` of `suite` because `why`; panics under `CI`.
pub fn skip(suite: &str, test: &str, why: &str) {
    assert!(
        !ci(),
        "{suite}: cannot run `{test}`: {why}\n(`CI` is set, so this is a failure, not a skip)"
    );
    say(
        suite,
        &format!("skipped `{test}`: {why} (set CI=1 to make this a failure)"),
    );
}

/// Skip `test` because the whole suite cannot run (`reason`): the reason
/// once per suite (`said`), then a line per test; panics under `CI`.
pub fn skip_suite(suite: &str, said: &AtomicBool, reason: &str, test: &str) {
    assert!(
        !ci(),
        "{suite}: {reason}\n(`CI` is set, so these tests may not be skipped)"
    );
    if !said.swap(true, Ordering::Relaxed) {
        say(
            suite,
            &format!("skipping: {reason}\n(set CI=1 to make this a failure)"),
        );
    }
    say(suite, &format!("skipped `{test}`"));
}

/// What a suite found on the machine, checked once per test binary.
pub enum Found<T> {
    /// Everything is there.
    Ready(T),
    /// Something is not there: skip (a failure under `CI`).
    Missing(String),
    /// It is there but broken: always a failure.
    Broken(String),
}

impl<T> Found<T> {
    /// What is there, or `None` when `test` of `suite` must be skipped
    /// (after saying why; the reason once per suite, kept in `said`).
    /// Panics when something is broken, or under `CI` when it is missing.
    pub fn get(&self, suite: &str, said: &AtomicBool, test: &str) -> Option<&T> {
        match self {
            Found::Ready(t) => Some(t),
            Found::Missing(reason) => {
                skip_suite(suite, said, reason, test);
                None
            }
            Found::Broken(reason) => panic!("{reason}"),
        }
    }
}
