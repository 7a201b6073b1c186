//! `oauth_creds.json`, the format Gemini CLI and Qwen Code share (Google's
//! OAuth2 client library): `access_token`, `refresh_token`, `expiry_date`
//! in milliseconds and, for Google accounts, an `id_token`.

use serde_json::Value;

use super::{jwt, millis, non_empty, CredentialFacts, ShellRules};
use crate::identity::Identity;

/// What the shell guard checks in this format.
pub(super) const SHELL: ShellRules = ShellRules::Sync {
    object: "",
    expiry: "expiry_date",
    tokens: &["access_token", "refresh_token"],
};

/// Expiry from `expiry_date`; a login needs a token and no `expiry_date` of
/// zero (what a failed refresh leaves); the account is the `id_token`'s e-mail.
pub(super) fn read(cred: &Value) -> CredentialFacts {
    let expires_at = millis(cred.get("expiry_date"));
    let zeroed = cred.get("expiry_date").is_some() && expires_at.is_none();
    let has_token = !zeroed
        && (non_empty(cred, "access_token").is_some()
            || non_empty(cred, "refresh_token").is_some());
    let email = non_empty(cred, "id_token")
        .and_then(jwt::claims)
        .and_then(|c| jwt::email(&c).map(str::to_string));
    CredentialFacts {
        expires_at,
        tiebreak: None,
        has_token,
        identity: Identity::new(email.map(|e| ("account", e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_tokens_and_account() {
        let id = jwt::encode(r#"{"email":"me@gmail.com"}"#);
        let f = read(&json!({"access_token": "ya29.x", "refresh_token": "1//r",
                             "expiry_date": 1_700_000_000_123_i64, "id_token": id}));
        assert_eq!(f.expires_at.unwrap().as_millisecond(), 1_700_000_000_123);
        assert!(f.has_token);
        assert_eq!(f.identity.get("account"), Some("me@gmail.com"));
    }

    #[test]
    fn logged_out_shapes_have_no_token() {
        for cred in [
            json!({}),
            json!({"access_token": "", "refresh_token": ""}),
            json!({"access_token": "a", "refresh_token": "r", "expiry_date": 0}),
            json!({"access_token": null, "expiry_date": 1_700_000_000_000_i64}),
        ] {
            assert!(!read(&cred).has_token, "{cred}");
        }
        assert!(read(&json!({"refresh_token": "r"})).has_token);
    }
}
