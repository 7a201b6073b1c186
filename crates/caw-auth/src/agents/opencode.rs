//! opencode: `~/.local/share/opencode/auth.json` (one entry per provider) and its config.

use serde_json::Value;

use super::{millis, non_empty, Agent, ConfigCandidate, ConfigFile, CredentialFacts, ShellRules};
use crate::identity::Identity;

pub(super) static OPENCODE: Agent = Agent {
    name: "opencode",
    credential: ".local/share/opencode/auth.json",
    credential_src: "opencode/auth.json",
    relocation: None,
    configs: &[ConfigFile {
        candidates: &[
            ConfigCandidate {
                host: ".config/opencode/opencode.jsonc",
                src: "opencode/opencode.jsonc",
                target: ".config/opencode/opencode.jsonc",
            },
            ConfigCandidate {
                host: ".config/opencode/opencode.json",
                src: "opencode/opencode.json",
                target: ".config/opencode/opencode.json",
            },
        ],
        required: false,
        private: false,
    }],
    read_credential: read,
    clean_config: None,
    shell: ShellRules::NoSync("it holds one login per provider, which the shell cannot compare"),
    // One OAuth login per provider, each with its refresh token.
    // Its Anthropic OAuth login is Claude's: 8-hour access tokens.
    max_lifetime: jiff::SignedDuration::from_hours(9),
    refresh_tokens: |c| {
        c.as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("oauth"))
            .filter_map(|e| e.get_mut("refresh"))
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .collect()
    },
};

/// One entry per provider. The expiry is the earliest among OAuth entries
/// (the first login to lapse); a login needs one entry with a non-empty
/// token or key; each provider's entry `type` is part of the identity.
fn read(cred: &Value) -> CredentialFacts {
    let Some(providers) = cred.as_object() else {
        return CredentialFacts::default();
    };
    let oauth = |p: &&Value| p.get("type").and_then(Value::as_str) == Some("oauth");
    let has_secret = |p: &Value| {
        ["refresh", "access", "key", "token"]
            .iter()
            .any(|k| non_empty(p, k).is_some())
    };
    CredentialFacts {
        expires_at: providers
            .values()
            .filter(oauth)
            .filter_map(|p| millis(p.get("expires")))
            .min(),
        tiebreak: None,
        has_token: providers.values().any(has_secret),
        identity: Identity::new(providers.iter().filter_map(|(name, p)| {
            let kind = p.get("type")?.as_str()?;
            Some((format!("provider:{name}"), kind.to_string()))
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::CleanContext;
    use serde_json::json;

    #[test]
    fn earliest_positive_oauth_expiry_wins() {
        let f = read(&json!({
            "anthropic": {"type": "oauth", "refresh": "r", "expires": 2_000_000_000_000_i64},
            "github": {"type": "oauth", "refresh": "r", "expires": 1_800_000_000_000_i64},
            "broken": {"type": "oauth", "expires": 0},
            "openai": {"type": "api", "key": "k", "expires": 1_000}
        }));
        assert_eq!(f.expires_at.unwrap().as_second(), 1_800_000_000);
        assert!(f.has_token);
        assert_eq!(f.identity.get("provider:openai"), Some("api"));
    }

    #[test]
    fn api_keys_alone_have_no_expiry() {
        let f = read(&json!({"openai": {"type": "api", "key": "k"}}));
        assert_eq!(f.expires_at, None);
        assert!(f.has_token);
    }

    #[test]
    fn a_provider_changing_type_is_another_login() {
        let oauth = read(&json!({"anthropic": {"type": "oauth", "refresh": "r"}}));
        let api = read(&json!({"anthropic": {"type": "api", "key": "k"}}));
        let other = read(&json!({"openai": {"type": "api", "key": "k"}}));
        assert!(oauth.identity.conflicts_with(&api.identity));
        assert!(!oauth.identity.conflicts_with(&other.identity));
    }

    #[test]
    fn logged_out_shapes_have_no_token() {
        for cred in [
            json!({}),
            json!({"anthropic": {"type": "oauth", "refresh": "", "access": ""}}),
        ] {
            assert!(!read(&cred).has_token, "{cred}");
        }
    }

    #[test]
    fn jsonc_is_copied_unchecked_but_json_must_parse() {
        let ctx = CleanContext {
            container_home: "/h",
            trusted: &[],
        };
        let [jsonc, json] = OPENCODE.configs[0].candidates else {
            panic!("opencode has two config spellings")
        };
        let text = b"{ // comment\n \"a\": 1 }";
        assert_eq!(OPENCODE.clean(jsonc, text, &ctx).unwrap(), text);
        assert!(OPENCODE.clean(json, text, &ctx).is_err());
    }
}
