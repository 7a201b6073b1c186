//! Qwen Code: `~/.qwen/oauth_creds.json` plus `~/.qwen/settings.json`.

use super::{oauth_creds, Agent, ConfigCandidate, ConfigFile};

pub(super) static QWEN: Agent = Agent {
    name: "qwen",
    credential: ".qwen/oauth_creds.json",
    credential_src: "qwen/oauth_creds.json",
    relocation: None,
    configs: &[ConfigFile {
        candidates: &[ConfigCandidate {
            host: ".qwen/settings.json",
            src: "qwen/settings.json",
            target: ".qwen/settings.json",
        }],
        required: false,
        private: false,
    }],
    read_credential: oauth_creds::read,
    clean_config: None,
    shell: oauth_creds::SHELL,
    // Qwen OAuth access tokens: `expires_in` is hours at most; a day is generous.
    max_lifetime: jiff::SignedDuration::from_hours(24),
    refresh_tokens: |c| super::string_at_mut(c, "/refresh_token"),
};
