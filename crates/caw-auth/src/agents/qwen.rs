//! Qwen Code: `~/.qwen/oauth_creds.json` plus `~/.qwen/settings.json`.

use serde_json::Value;

use super::{Agent, ConfigCandidate, ConfigFile};
use crate::expiry::{self, Freshness};

pub(super) struct Qwen;

impl Agent for Qwen {
    fn name(&self) -> &'static str {
        "qwen"
    }

    fn credential_host(&self) -> &'static str {
        ".qwen/oauth_creds.json"
    }

    fn credential_src(&self) -> &'static str {
        "qwen/oauth_creds.json"
    }

    fn required(&self) -> &'static [&'static str] {
        &[".qwen/oauth_creds.json"]
    }

    fn configs(&self) -> &'static [ConfigFile] {
        &[ConfigFile {
            candidates: &[ConfigCandidate {
                host: ".qwen/settings.json",
                src: "qwen/settings.json",
                target: ".qwen/settings.json",
            }],
        }]
    }

    fn freshness(&self, credential: &Value) -> Freshness {
        Freshness::expiring(credential.get("expiry_date").and_then(expiry::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_from_expiry_date() {
        let f = Qwen.freshness(&serde_json::json!({"expiry_date": 1_700_000_000_000_i64}));
        assert_eq!(f.expires_at.unwrap().as_second(), 1_700_000_000);
        assert_eq!(Qwen.freshness(&serde_json::json!({})).expires_at, None);
    }
}
