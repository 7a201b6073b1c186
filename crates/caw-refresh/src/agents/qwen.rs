//! Qwen Code (QwenLM/qwen-code `packages/core/src/qwen/qwenOAuth2.ts`,
//! `sharedTokenManager.ts`): `POST https://chat.qwen.ai/api/v1/oauth2/token`,
//! form-encoded `grant_type, refresh_token, client_id`; written as
//! `{access_token, token_type, refresh_token (the old one when absent),
//! resource_url, expiry_date = now + expires_in}`. On the host it takes
//! Qwen's own `oauth_creds.lock`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::protocol::{
    string_at, Answer, AnswerError, Encoding, Field, HostLock, LockAt, Protocol,
};

/// Qwen's `TOKEN_REFRESH_BUFFER_MS`.
const AGENT_BUFFER: SignedDuration = SignedDuration::from_secs(30);

pub(crate) static PROTOCOL: Protocol = Protocol {
    agent: "qwen",
    pinned_from: "Qwen Code, QwenLM/qwen-code main (qwenOAuth2.ts)",
    token_url: "https://chat.qwen.ai/api/v1/oauth2/token",
    encoding: Encoding::Form,
    fields: &[
        ("grant_type", Field::Const("refresh_token")),
        ("refresh_token", Field::RefreshToken),
        (
            "client_id",
            Field::Const("f0304373b74a44d2b584a3fb70ca9e56"),
        ),
    ],
    agent_refreshes_at,
    agent_rule: "30 seconds before `expiry_date` (qwen-code: `TOKEN_REFRESH_BUFFER_MS`)",
    refresh_token: |c| string_at(c, "", "refresh_token"),
    write_answer,
    compact: false,
    host_lock: HostLock::ExclusiveFile {
        file: LockAt::InDir("oauth_creds.lock"),
        // qwen-code's `LOCK_TIMEOUT_MS`; caw keeps the mtime fresh meanwhile.
        stale: Duration::from_secs(10),
    },
};

fn agent_refreshes_at(cred: &Value) -> Option<Timestamp> {
    super::facts("qwen", cred).0?.checked_sub(AGENT_BUFFER).ok()
}

fn write_answer(cred: &mut Value, answer: &Answer<'_>, now: Timestamp) -> Result<(), AnswerError> {
    let access = answer.required("access_token")?;
    let expiry = answer.expiry_ms(now)?;
    let map = cred.as_object_mut().expect("checked to be an object");
    map.insert("access_token".into(), access.into());
    for key in ["token_type", "refresh_token", "resource_url"] {
        if let Some(v) = answer.string(key) {
            map.insert(key.into(), v.into());
        }
    }
    map.insert("expiry_date".into(), expiry.into());
    Ok(())
}
