//! Gemini CLI: `~/.gemini/oauth_creds.json`, plus its settings and account list.

use serde_json::Value;

use super::{Agent, ConfigCandidate, ConfigFile};
use crate::expiry::{self, Freshness};

pub(super) struct Gemini;

impl Agent for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn credential_host(&self) -> &'static str {
        ".gemini/oauth_creds.json"
    }

    fn credential_src(&self) -> &'static str {
        "gemini/oauth_creds.json"
    }

    fn required(&self) -> &'static [&'static str] {
        &[".gemini/oauth_creds.json"]
    }

    fn configs(&self) -> &'static [ConfigFile] {
        &[
            ConfigFile {
                candidates: &[ConfigCandidate {
                    host: ".gemini/settings.json",
                    src: "gemini/settings.json",
                    target: ".gemini/settings.json",
                }],
            },
            ConfigFile {
                candidates: &[ConfigCandidate {
                    host: ".gemini/google_accounts.json",
                    src: "gemini/google_accounts.json",
                    target: ".gemini/google_accounts.json",
                }],
            },
        ]
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
        let f = Gemini.freshness(&serde_json::json!({"expiry_date": 1_700_000_000_123_i64}));
        assert_eq!(f.expires_at.unwrap().as_millisecond(), 1_700_000_000_123);
        assert_eq!(
            Gemini
                .freshness(&serde_json::json!({"expiry_date": null}))
                .expires_at,
            None
        );
    }
}
