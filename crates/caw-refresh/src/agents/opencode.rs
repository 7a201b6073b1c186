//! opencode's Anthropic login (the `opencode-anthropic-auth` plugin's
//! refresh): `POST https://platform.claude.com/v1/oauth/token` (the
//! maintained plugin's endpoint; the original one's `console.anthropic.com`
//! no longer serves these tokens), JSON `{grant_type, refresh_token,
//! client_id}`, written as `anthropic.{access, refresh, expires = now +
//! expires_in}`. Only the `anthropic` entry is refreshed; other providers'
//! entries are kept as they are.

use jiff::Timestamp;
use serde_json::Value;

use crate::protocol::{
    millis_at, object_mut, string_at, Answer, AnswerError, Encoding, Field, HostLock, Protocol,
};

pub(crate) static PROTOCOL: Protocol = Protocol {
    agent: "opencode",
    pinned_from: "opencode-anthropic-auth (sst 0.0.13; ex-machina 1.8.1 endpoint)",
    token_url: "https://platform.claude.com/v1/oauth/token",
    encoding: Encoding::Json,
    fields: &[
        ("grant_type", Field::Const("refresh_token")),
        ("refresh_token", Field::RefreshToken),
        (
            "client_id",
            Field::Const("9d1c250a-e61b-44d9-88ed-5944d1962f5e"),
        ),
    ],
    agent_refreshes_at,
    agent_rule: "once `anthropic.expires` has passed (the plugin: `auth.expires < Date.now()`)",
    refresh_token: |c| {
        let is_oauth = c.get("anthropic")?.get("type")?.as_str() == Some("oauth");
        is_oauth.then(|| string_at(c, "anthropic", "refresh"))?
    },
    write_answer,
    compact: false,
    host_lock: HostLock::None,
};

fn agent_refreshes_at(cred: &Value) -> Option<Timestamp> {
    millis_at(cred, "anthropic", "expires")
}

fn write_answer(cred: &mut Value, answer: &Answer<'_>, now: Timestamp) -> Result<(), AnswerError> {
    let access = answer.required("access_token")?;
    let expires = answer.expiry_ms(now)?;
    let entry = object_mut(cred, "anthropic");
    entry.insert("type".into(), "oauth".into());
    entry.insert("access".into(), access.into());
    if let Some(refresh) = answer.string("refresh_token") {
        entry.insert("refresh".into(), refresh.into());
    }
    entry.insert("expires".into(), expires.into());
    Ok(())
}
