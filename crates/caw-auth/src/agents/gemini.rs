//! Gemini CLI: `~/.gemini/oauth_creds.json`, plus its settings and account list.

use super::{oauth_creds, Agent, ConfigCandidate, ConfigFile, ShellRules};

pub(super) static GEMINI: Agent = Agent {
    name: "gemini",
    credential: ".gemini/oauth_creds.json",
    credential_src: "gemini/oauth_creds.json",
    relocation: None,
    configs: &[
        ConfigFile {
            candidates: &[ConfigCandidate {
                host: ".gemini/settings.json",
                src: "gemini/settings.json",
                target: ".gemini/settings.json",
            }],
            required: false,
            private: false,
        },
        ConfigFile {
            // The signed-in Google accounts: private in the container.
            candidates: &[ConfigCandidate {
                host: ".gemini/google_accounts.json",
                src: "gemini/google_accounts.json",
                target: ".gemini/google_accounts.json",
            }],
            required: false,
            private: true,
        },
    ],
    read_credential: oauth_creds::read,
    clean_config: None,
    // The account is in the id_token, a JWT the shell cannot decode.
    shell: ShellRules::NoSync("its account is in a JWT the shell cannot read"),
    // Google OAuth access tokens last 1 hour (`expires_in: 3599`).
    max_lifetime: jiff::SignedDuration::from_hours(2),
    refresh_tokens: |c| super::string_at_mut(c, "/refresh_token"),
};
