//! opencode: `~/.local/share/opencode/auth.json` (one entry per provider) and its config.

use serde_json::Value;

use super::{Agent, ConfigCandidate, ConfigFile};
use crate::expiry::{self, Freshness};

pub(super) struct Opencode;

impl Agent for Opencode {
    fn name(&self) -> &'static str {
        "opencode"
    }

    fn credential_host(&self) -> &'static str {
        ".local/share/opencode/auth.json"
    }

    fn credential_src(&self) -> &'static str {
        "opencode/auth.json"
    }

    fn required(&self) -> &'static [&'static str] {
        &[".local/share/opencode/auth.json"]
    }

    fn configs(&self) -> &'static [ConfigFile] {
        &[ConfigFile {
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
        }]
    }

    /// The earliest expiry among OAuth providers: the first login to lapse.
    fn freshness(&self, credential: &Value) -> Freshness {
        let earliest = credential.as_object().and_then(|providers| {
            providers
                .values()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("oauth"))
                .filter_map(|p| p.get("expires").and_then(expiry::from_millis))
                .min()
        });
        Freshness::expiring(earliest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::CleanContext;
    use serde_json::json;

    #[test]
    fn earliest_positive_oauth_expiry_wins() {
        let f = Opencode.freshness(&json!({
            "anthropic": {"type": "oauth", "expires": 2_000_000_000_000_i64},
            "github": {"type": "oauth", "expires": 1_800_000_000_000_i64},
            "broken": {"type": "oauth", "expires": 0},
            "openai": {"type": "api", "key": "k", "expires": 1_000}
        }));
        assert_eq!(f.expires_at.unwrap().as_second(), 1_800_000_000);
    }

    #[test]
    fn api_keys_alone_have_no_expiry() {
        let f = Opencode.freshness(&json!({"openai": {"type": "api", "key": "k"}}));
        assert_eq!(f.expires_at, None);
    }

    #[test]
    fn jsonc_is_copied_unchecked_but_json_must_parse() {
        let ctx = CleanContext {
            container_home: "/h",
        };
        let [jsonc, json] = Opencode.configs()[0].candidates else {
            panic!("opencode has two config spellings")
        };
        let text = b"{ // comment\n \"a\": 1 }";
        assert_eq!(Opencode.clean_config(jsonc, text, &ctx).unwrap(), text);
        assert!(Opencode.clean_config(json, text, &ctx).is_err());
    }
}
