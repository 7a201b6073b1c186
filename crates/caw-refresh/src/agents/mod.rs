//! One refresh protocol per agent, each pinned from the CLI version it names.

pub(crate) mod claude;
pub(crate) mod codex;
pub(crate) mod gemini;
pub(crate) mod opencode;
pub(crate) mod qwen;

use jiff::Timestamp;
use serde_json::Value;

/// What caw-auth's own reading of `agent`'s credential says its access
/// token's expiry is, and its tie-breaker (Codex's `last_refresh`).
pub(crate) fn facts(agent: &str, cred: &Value) -> (Option<Timestamp>, Option<Timestamp>) {
    match caw_auth::agents::by_name(agent) {
        Some(a) => {
            let f = (a.read_credential)(cred);
            (f.expires_at, f.tiebreak)
        }
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::{json, Value};

    use crate::protocol;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn body(agent: &str, cred: &Value) -> String {
        let r = protocol(agent).unwrap().request(cred).unwrap();
        String::from_utf8(r.body).unwrap()
    }

    fn apply(agent: &str, cred: &Value, answer: Value) -> Value {
        let bytes = protocol(agent)
            .unwrap()
            .apply(
                &serde_json::to_vec(cred).unwrap(),
                &serde_json::to_vec(&answer).unwrap(),
                now(),
            )
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn claude_sends_its_recorded_scopes_and_keeps_other_keys() {
        let cred = json!({"claudeAiOauth": {"accessToken": "a", "refreshToken": "r1",
            "expiresAt": 1_800_000_600_000_i64, "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max"}});
        assert_eq!(
            body("claude", &cred),
            r#"{"grant_type":"refresh_token","refresh_token":"r1","client_id":"9d1c250a-e61b-44d9-88ed-5944d1962f5e","scope":"user:inference user:profile"}"#
        );
        let out = apply(
            "claude",
            &cred,
            json!({"access_token": "a2", "refresh_token": "r2", "expires_in": 28800,
                   "scope": "user:inference user:profile user:file_upload"}),
        );
        assert_eq!(
            out,
            json!({"claudeAiOauth": {"accessToken": "a2", "refreshToken": "r2",
                "expiresAt": (1_800_000_000_i64 + 28800) * 1000,
                "scopes": ["user:inference", "user:profile", "user:file_upload"],
                "subscriptionType": "max"}})
        );
        // No refresh token in the answer: the old one stays.
        let out = apply(
            "claude",
            &cred,
            json!({"access_token": "a3", "expires_in": 60}),
        );
        assert_eq!(out["claudeAiOauth"]["refreshToken"], "r1");
        // Without recorded scopes, Claude's defaults.
        let bare = json!({"claudeAiOauth": {"refreshToken": "r", "expiresAt": 1}});
        assert!(body("claude", &bare).contains("\"scope\":\"user:profile user:inference"));
    }

    #[test]
    fn codex_replaces_tokens_and_last_refresh() {
        let cred = json!({"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
            "tokens": {"id_token": "i1", "access_token": "a1", "refresh_token": "r1", "account_id": "acct"},
            "last_refresh": "2026-01-01T00:00:00Z"});
        assert_eq!(
            body("codex", &cred),
            r#"{"client_id":"app_EMoamEEZ73f0CkXaXp7hrann","grant_type":"refresh_token","refresh_token":"r1"}"#
        );
        let out = apply(
            "codex",
            &cred,
            json!({"id_token": "i2", "access_token": "a2", "refresh_token": "r2"}),
        );
        assert_eq!(
            out,
            json!({"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
                "tokens": {"id_token": "i2", "access_token": "a2", "refresh_token": "r2", "account_id": "acct"},
                "last_refresh": now().to_string()})
        );
    }

    #[test]
    fn codex_is_due_at_the_earlier_of_exp_and_eight_days() {
        use base64::Engine as _;
        let jwt = |exp: i64| {
            let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            format!("{}.{}.sig", e("{}"), e(&format!("{{\"exp\":{exp}}}")))
        };
        let p = protocol("codex").unwrap();
        let cred = |exp: i64, last: &str| json!({"tokens": {"access_token": jwt(exp), "refresh_token": "r"}, "last_refresh": last});
        let exp = 1_800_000_000;
        let due = p.due(&cred(exp, "2027-02-01T00:00:00Z")).unwrap();
        assert_eq!(due.as_second(), exp - crate::MARGIN.as_secs());
        // A last refresh long ago makes it due earlier than `exp`.
        let old = "2020-01-01T00:00:00Z";
        let due = p.due(&cred(exp, old)).unwrap();
        let eight_days = 8 * 86_400;
        assert_eq!(
            due.as_second(),
            old.parse::<Timestamp>().unwrap().as_second() + eight_days - crate::MARGIN.as_secs()
        );
        // An API key login has no refresh token: never due.
        assert_eq!(p.due(&json!({"OPENAI_API_KEY": "sk-x"})), None);
    }

    #[test]
    fn gemini_and_qwen_post_forms_and_keep_the_refresh_token() {
        let cred = json!({"access_token": "a", "refresh_token": "r/1+", "token_type": "Bearer",
            "expiry_date": 1_800_000_600_000_i64, "resource_url": "portal.qwen.ai"});
        assert_eq!(
            body("gemini", &cred),
            "refresh_token=r%2F1%2B&client_id=681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com&client_secret=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&grant_type=refresh_token"
        );
        assert_eq!(
            body("qwen", &cred),
            "grant_type=refresh_token&refresh_token=r%2F1%2B&client_id=f0304373b74a44d2b584a3fb70ca9e56"
        );
        for agent in ["gemini", "qwen"] {
            let out = apply(
                agent,
                &cred,
                json!({"access_token": "a2", "expires_in": 3600, "token_type": "Bearer"}),
            );
            assert_eq!(out["access_token"], "a2", "{agent}");
            assert_eq!(out["refresh_token"], "r/1+", "{agent}");
            assert_eq!(
                out["expiry_date"],
                (1_800_000_000_i64 + 3600) * 1000,
                "{agent}"
            );
            assert_eq!(out.get("expires_in"), None, "{agent}");
        }
        let qwen = protocol("qwen").unwrap();
        assert_eq!(
            qwen.due(&cred).unwrap().as_second(),
            1_800_000_600 - 30 - crate::MARGIN.as_secs()
        );
    }

    #[test]
    fn opencode_refreshes_only_its_anthropic_oauth_entry() {
        let cred = json!({"anthropic": {"type": "oauth", "refresh": "r", "access": "a", "expires": 1_800_000_000_000_i64},
                          "openai": {"type": "api", "key": "sk"}});
        assert_eq!(
            body("opencode", &cred),
            r#"{"grant_type":"refresh_token","refresh_token":"r","client_id":"9d1c250a-e61b-44d9-88ed-5944d1962f5e"}"#
        );
        let out = apply(
            "opencode",
            &cred,
            json!({"access_token": "a2", "refresh_token": "r2", "expires_in": 100}),
        );
        assert_eq!(
            out["anthropic"],
            json!({"type": "oauth", "refresh": "r2", "access": "a2", "expires": (1_800_000_000_i64 + 100) * 1000})
        );
        assert_eq!(out["openai"], json!({"type": "api", "key": "sk"}));
        let api_only = json!({"anthropic": {"type": "api", "key": "sk"}});
        assert!(protocol("opencode").unwrap().request(&api_only).is_none());
    }

    #[test]
    fn an_answer_without_a_token_or_expiry_is_refused_whole() {
        let cred = json!({"claudeAiOauth": {"refreshToken": "r", "expiresAt": 1}});
        let claude = protocol("claude").unwrap();
        let raw = serde_json::to_vec(&cred).unwrap();
        for answer in [
            &b"[]"[..],
            b"{\"expires_in\":5}",
            b"{\"access_token\":\"\",\"expires_in\":5}",
            b"{\"access_token\":\"a\"}",
            b"{\"access_token\":\"a\",\"expires_in\":-1}",
            b"not json",
        ] {
            assert!(
                claude.apply(&raw, answer, now()).is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }
}
