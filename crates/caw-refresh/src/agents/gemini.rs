//! Gemini CLI ("Login with Google", google-auth-library's
//! `refreshTokenNoCache`): `POST https://oauth2.googleapis.com/token`,
//! form-encoded `refresh_token, client_id, client_secret, grant_type`, with
//! the CLI's installed-app client (public in its source,
//! `packages/core/src/code_assist/oauth2.ts`). The answer's fields are
//! written with `expiry_date = now + expires_in` (ms); Google sends no new
//! refresh token, so the old one is kept.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::protocol::{string_at, Answer, AnswerError, Encoding, Field, HostLock, Protocol};

/// google-auth-library's `DEFAULT_EAGER_REFRESH_THRESHOLD_MILLIS`.
const AGENT_BUFFER: SignedDuration = SignedDuration::from_mins(5);

pub(crate) static PROTOCOL: Protocol = Protocol {
    agent: "gemini",
    pinned_from: "Gemini CLI (google-auth-library 10.x), google-gemini/gemini-cli main",
    token_url: "https://oauth2.googleapis.com/token",
    encoding: Encoding::Form,
    fields: &[
        ("refresh_token", Field::RefreshToken),
        (
            "client_id",
            Field::Const(
                "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
            ),
        ),
        (
            "client_secret",
            Field::Const("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"),
        ),
        ("grant_type", Field::Const("refresh_token")),
    ],
    agent_refreshes_at,
    agent_rule: "5 minutes before `expiry_date` (google-auth-library: \
                 `DEFAULT_EAGER_REFRESH_THRESHOLD_MILLIS`)",
    refresh_token: |c| string_at(c, "", "refresh_token"),
    write_answer,
    compact: false,
    host_lock: HostLock::None,
};

fn agent_refreshes_at(cred: &Value) -> Option<Timestamp> {
    super::facts("gemini", cred)
        .0?
        .checked_sub(AGENT_BUFFER)
        .ok()
}

fn write_answer(cred: &mut Value, answer: &Answer<'_>, now: Timestamp) -> Result<(), AnswerError> {
    let access = answer.required("access_token")?;
    let expiry = answer.expiry_ms(now)?;
    let map = cred.as_object_mut().expect("checked to be an object");
    map.insert("access_token".into(), access.into());
    for key in ["refresh_token", "scope", "token_type", "id_token"] {
        if let Some(v) = answer.string(key) {
            map.insert(key.into(), v.into());
        }
    }
    map.insert("expiry_date".into(), expiry.into());
    Ok(())
}
