//! Claude Code 2.1.332 (read from the bundled CLI and seen by the fake
//! server): `POST https://platform.claude.com/v1/oauth/token`, JSON
//! `{grant_type, refresh_token, client_id, scope}` with the scopes the
//! credential records; the answer's `access_token`, `refresh_token` (the old
//! one kept when absent), `expires_in` and `scope` become `claudeAiOauth`'s
//! `accessToken`, `refreshToken`, `expiresAt` (ms) and `scopes`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::protocol::{
    object_mut, string_at, Answer, AnswerError, Encoding, Field, HostLock, LockAt, Protocol,
};

/// Claude counts a token as expired 5 minutes before `expiresAt`
/// (`Date.now() + 300000 >= expiresAt`) and refreshes then.
const AGENT_BUFFER: SignedDuration = SignedDuration::from_mins(5);

pub(crate) static PROTOCOL: Protocol = Protocol {
    agent: "claude",
    pinned_from: "Claude Code 2.1.332 (claude-agent-sdk 0.2.189)",
    token_url: "https://platform.claude.com/v1/oauth/token",
    encoding: Encoding::Json,
    fields: &[
        ("grant_type", Field::Const("refresh_token")),
        ("refresh_token", Field::RefreshToken),
        (
            "client_id",
            Field::Const("9d1c250a-e61b-44d9-88ed-5944d1962f5e"),
        ),
        (
            "scope",
            Field::Scopes {
                pointer: "/claudeAiOauth/scopes",
                default: "user:profile user:inference user:sessions:claude_code \
                          user:mcp_servers user:file_upload user:plugins",
            },
        ),
    ],
    agent_refreshes_at,
    agent_rule:
        "5 minutes before `expiresAt` (Claude Code 2.1.332: `Date.now() + 300000 >= expiresAt`)",
    refresh_token: |c| string_at(c, "claudeAiOauth", "refreshToken"),
    write_answer,
    compact: true,
    host_lock: HostLock::ProperLockfile {
        // `~/.claude/.oauth_refresh.lock`, then the older `~/.claude.lock`.
        dirs: &[
            LockAt::InDir(".oauth_refresh.lock"),
            LockAt::DirSuffix(".lock"),
        ],
        stale: Duration::from_secs(60),
    },
};

fn agent_refreshes_at(cred: &Value) -> Option<Timestamp> {
    super::facts("claude", cred)
        .0?
        .checked_sub(AGENT_BUFFER)
        .ok()
}

fn write_answer(cred: &mut Value, answer: &Answer<'_>, now: Timestamp) -> Result<(), AnswerError> {
    let access = answer.required("access_token")?;
    let expires = answer.expiry_ms(now)?;
    let oauth = object_mut(cred, "claudeAiOauth");
    oauth.insert("accessToken".into(), access.into());
    if let Some(refresh) = answer.string("refresh_token") {
        oauth.insert("refreshToken".into(), refresh.into());
    }
    oauth.insert("expiresAt".into(), expires.into());
    if let Some(scope) = answer.string("scope") {
        let scopes: Vec<Value> = scope.split_whitespace().map(Value::from).collect();
        oauth.insert("scopes".into(), Value::Array(scopes));
    }
    Ok(())
}
