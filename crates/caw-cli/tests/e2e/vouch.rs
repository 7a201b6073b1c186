//! The host sync's provider checks with real containers: what one container
//! plants in its home (another account's real token, a made-up one, an
//! expiry no token has) reaches neither the host nor the other container;
//! when the provider refuses it, the planting container's guard takes the
//! host's login back without a fight; and a real refresh and a later host
//! refresh still reach everyone.
//! The provider is the loopback fake (`support/oauth.rs`).

use crate::oauth::{FakeOAuth, ACCOUNT};
use crate::session::{Guard, Session, CREDS};
use crate::util::{claude_oauth, ms_from_now, read_text, wait_for};

crate::for_both_guards!(a_planted_login_reaches_neither_the_host_nor_the_other_containers);

fn a_planted_login_reaches_neither_the_host_nor_the_other_containers(guard: Guard, test: &str) {
    let Some(session) = Session::new(guard, test) else {
        return;
    };
    let server = FakeOAuth::start();
    let config_path = session.host(".claude.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["oauthAccount"]["accountUuid"] = ACCOUNT.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let claude = CREDS[0];
    let flags = session.flags_with("v", &server.verify_env(), &["CAW_NO_VERIFY"]);
    let (a, b) = (
        session.serve_with("a", &flags),
        session.serve_with("b", &flags),
    );
    let host = session.host(claude.path);
    let live = session
        .env
        .auth
        .join("live")
        .join(caw_auth::agents::by_name("claude").unwrap().credential_src);
    let (home_a, home_b) = (
        a.host_view(&claude.in_container()),
        b.host_view(&claude.in_container()),
    );
    let original = read_text(&host);
    wait_for("both homes hold the host's login", guard.budget(), || {
        read_text(&home_a) == original && read_text(&home_b) == original
    });

    let foreign = server.access_token_for("acct-other");
    let attacks = [
        (
            "another account",
            claude_oauth(&foreign, "rt-x", Some(ms_from_now(7 * 3600))),
        ),
        (
            "made up",
            claude_oauth("at-made-up", "rt-y", Some(ms_from_now(7 * 3600))),
        ),
        (
            "+300 days",
            claude_oauth("at-far", "rt-z", Some(ms_from_now(300 * 86_400))),
        ),
        ("no expiry", claude_oauth("at-none", "rt-z", None)),
    ];
    for (i, (name, planted)) in attacks.iter().enumerate() {
        claude.write_in_container(&a, planted.as_bytes());
        if i < 2 {
            // Refused by the provider: the planting container's home goes
            // back to the host's login and stays there.
            wait_for(
                &format!("{name}: container a holds the host's login again"),
                guard.budget() * 3,
                || read_text(&home_a) == original,
            );
        }
        // (An implausible expiry the guard itself may keep from live/: it
        // then stays in the home it was written to, and goes nowhere.)
        std::thread::sleep(guard.budget());
        assert_eq!(read_text(&host), original, "{name} reached the host");
        assert_eq!(read_text(&live), original, "{name} stayed in live/");
        assert_eq!(read_text(&home_b), original, "{name} reached container b");
        if i < 2 {
            assert_eq!(
                read_text(&home_a),
                original,
                "{name}: container a fought back"
            );
        }
    }

    // A real refresh of the host's account, in container a, reaches all.
    let fresh = claude_oauth(
        &server.access_token_for(ACCOUNT),
        "rt-fresh",
        Some(ms_from_now(80 * 60)),
    );
    claude.write_in_container(&a, fresh.as_bytes());
    wait_for(
        "a vouched refresh reaches the host and b",
        guard.budget() * 3,
        || read_text(&host) == fresh && read_text(&home_b) == fresh,
    );
    // And a later host refresh reaches both containers.
    let later = String::from_utf8(claude.refreshed("VOUCH-HOST-LATER", 90)).unwrap();
    session.write_on_host_by_rename(&claude, later.as_bytes());
    wait_for("the host refresh reaches both", guard.budget() * 3, || {
        read_text(&home_a) == later && read_text(&home_b) == later
    });
    drop((a, b));
    session.teardown();
}
