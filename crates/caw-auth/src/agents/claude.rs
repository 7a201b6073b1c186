//! Claude Code: `~/.claude/.credentials.json` plus a cleaned `~/.claude.json`.

use serde_json::{json, Map, Value};

use super::{
    millis, non_empty, Agent, CleanContext, ConfigCandidate, ConfigFile, CredentialFacts,
    Relocation, ShellRules,
};
use crate::identity::Identity;

/// Top-level keys of `.claude.json` that carry account state the container
/// needs; everything else (history, host projects, MCP servers) stays home.
const KEPT_KEYS: &[&str] = &[
    "oauthAccount",
    "userID",
    "hasCompletedOnboarding",
    "lastOnboardingVersion",
    "numStartups",
    "installMethod",
    "firstStartTime",
    "claudeCodeFirstTokenDate",
    "s1mAccessCache",
    "passesEligibilityCache",
    "groveConfigCache",
    "sonnet45MigrationComplete",
    "opus45MigrationComplete",
    "opusProMigrationComplete",
    "thinkingMigrationComplete",
    "autoUpdates",
];

pub(super) static CLAUDE: Agent = Agent {
    name: "claude",
    credential: ".claude/.credentials.json",
    credential_src: "claude/credentials.json",
    // `CLAUDE_CONFIG_DIR` moves the credential and the config (either
    // spelling) into one directory.
    relocation: Some(Relocation {
        env: "CLAUDE_CONFIG_DIR",
        files: &[
            (".claude/.credentials.json", ".credentials.json"),
            (".claude.json", ".claude.json"),
            (".claude/.config.json", ".config.json"),
        ],
    }),
    configs: &[ConfigFile {
        // Claude reads `~/.claude/.config.json` when `~/.claude.json` is missing.
        candidates: &[
            ConfigCandidate {
                host: ".claude.json",
                src: "claude/config.json",
                target: ".claude.json",
            },
            ConfigCandidate {
                host: ".claude/.config.json",
                src: "claude/config.json",
                target: ".claude.json",
            },
        ],
        required: true,
        // The account's e-mail, organisation and user id: private.
        private: true,
    }],
    read_credential: read,
    clean_config: Some(clean),
    shell: ShellRules::Sync {
        object: "claudeAiOauth",
        expiry: "expiresAt",
        tokens: &["accessToken", "refreshToken"],
    },
    // Access tokens last 8 hours (`expires_in: 28800` in every refresh
    // answer Claude Code 2.1.332 gets); an hour more for clock skew.
    max_lifetime: jiff::SignedDuration::from_hours(9),
    refresh_tokens: |c| super::string_at_mut(c, "/claudeAiOauth/refreshToken"),
};

/// `claudeAiOauth.expiresAt` (ms); a login needs both tokens and an expiry
/// (a refused refresh leaves them empty and `expiresAt` 0). The file does not
/// say whose login it is.
fn read(cred: &Value) -> CredentialFacts {
    let oauth = cred.get("claudeAiOauth").unwrap_or(&Value::Null);
    let expires_at = millis(oauth.get("expiresAt"));
    let has_token = expires_at.is_some()
        && non_empty(oauth, "accessToken").is_some()
        && non_empty(oauth, "refreshToken").is_some();
    CredentialFacts {
        expires_at,
        tiebreak: None,
        has_token,
        identity: Identity::default(),
    }
}

/// Keep the account keys, and replace `projects` by the container's own:
/// its home and each `--trust` directory, trusted, with nothing allowed.
fn clean(
    _candidate: &ConfigCandidate,
    bytes: &[u8],
    ctx: &CleanContext<'_>,
) -> Result<Vec<u8>, String> {
    let mut cleaned = Map::new();
    for (key, v) in KEPT_KEYS.iter().zip(kept_values(bytes)?) {
        if let Some(v) = v {
            cleaned.insert((*key).to_string(), v);
        }
    }
    let mut projects = Map::new();
    for dir in ctx.trusted_dirs() {
        projects.insert(dir.to_string(), container_project());
    }
    cleaned.insert("projects".into(), Value::Object(projects));
    let mut out = serde_json::to_vec_pretty(&Value::Object(cleaned)).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// The values of [`KEPT_KEYS`] in a `.claude.json`, in that order (a repeated key: the last).
///
/// `.claude.json` grows by one entry per project ever opened and reaches
/// megabytes; building a `Value` for all of it was most of `setup`'s time. Here
/// only the kept values are built: every other value is syntax-checked and
/// skipped. The whole file must still be UTF-8 and one valid JSON object.
fn kept_values(bytes: &[u8]) -> Result<Vec<Option<Value>>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = before.len() - line_start + 1;
        format!("invalid UTF-8 at line {line} column {column}")
    })?;
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        // Not an object: bad JSON is reported in serde_json's words, as before.
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string())?;
        return Err("expected a JSON object at the top level".into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let kept =
        serde::Deserializer::deserialize_map(&mut de, KeptVisitor).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(kept)
}

struct KeptVisitor;

impl<'de> serde::de::Visitor<'de> for KeptVisitor {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object at the top level")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = vec![None; KEPT_KEYS.len()];
        while let Some(key) = map.next_key::<String>()? {
            match KEPT_KEYS.iter().position(|k| *k == key) {
                Some(i) => kept[i] = Some(map.next_value::<Value>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(kept)
    }
}

/// The one project the container knows: its home, trusted, with nothing allowed.
fn container_project() -> Value {
    json!({
        "allowedTools": [],
        "mcpContextUris": [],
        "mcpServers": {},
        "enabledMcpjsonServers": [],
        "disabledMcpjsonServers": [],
        "hasTrustDialogAccepted": true,
        "projectOnboardingSeenCount": 1,
        "hasCompletedProjectOnboarding": true,
        "hasClaudeMdExternalIncludesApproved": false,
        "hasClaudeMdExternalIncludesWarningShown": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(input: &str) -> Value {
        let ctx = CleanContext {
            container_home: "/home/playground",
            trusted: &["/workspace".to_string(), "/home/playground".to_string()],
        };
        let cand = &CLAUDE.configs[0].candidates[0];
        serde_json::from_slice(&clean(cand, input.as_bytes(), &ctx).unwrap()).unwrap()
    }

    #[test]
    fn keeps_account_keys_and_drops_the_rest() {
        let out = cleaned(
            r#"{"oauthAccount":{"emailAddress":"a@b"},"numStartups":3,"autoUpdates":false,
                "mcpServers":{"x":{}},"tipsHistory":{},"cachedChangelog":"long"}"#,
        );
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["oauthAccount", "numStartups", "autoUpdates", "projects"]
        );
        assert_eq!(out["oauthAccount"]["emailAddress"], "a@b");
    }

    #[test]
    fn replaces_host_projects_by_the_container_home() {
        let out = cleaned(
            r#"{"projects":{"/home/dev/secret":{"allowedTools":["Bash"],"mcpServers":{"s":{}}},
                "/srv/other":{}}}"#,
        );
        let projects = out["projects"].as_object().unwrap();
        assert_eq!(
            projects.keys().collect::<Vec<_>>(),
            ["/home/playground", "/workspace"]
        );
        assert_eq!(
            projects["/workspace"]["hasTrustDialogAccepted"],
            json!(true)
        );
        let p = &projects["/home/playground"];
        assert_eq!(p["allowedTools"], json!([]));
        assert_eq!(p["mcpServers"], json!({}));
        assert_eq!(p["hasCompletedProjectOnboarding"], json!(true));
        let text = out.to_string();
        assert!(!text.contains("/home/dev/secret") && !text.contains("/srv/other"));
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        let ctx = CleanContext {
            container_home: "/h",
            trusted: &[],
        };
        let cand = &CLAUDE.configs[0].candidates[0];
        assert!(clean(cand, b"[1]", &ctx).is_err());
        let err = clean(cand, b"{\"a\": ", &ctx).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        // Dropped keys are skipped, not trusted: their syntax and UTF-8 are still checked.
        let err = clean(
            cand,
            b"{\"numStartups\": 1, \"projects\": {\"/a\": [1,}}",
            &ctx,
        )
        .unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let err = clean(cand, b"{\"numStartups\": 1,\n \"tips\": \"\xff\"}", &ctx).unwrap_err();
        assert!(err.contains("line 2 column 11"), "{err}");
        assert!(clean(cand, b"{\"a\": 1} x", &ctx).is_err());
    }

    #[test]
    fn a_repeated_kept_key_keeps_its_last_value() {
        let out = cleaned(r#"{"numStartups": 1, "x": {"numStartups": 5}, "numStartups": 2}"#);
        assert_eq!(out["numStartups"], json!(2));
    }

    #[test]
    fn expiry_and_tokens_from_claude_ai_oauth() {
        let f = read(
            &json!({"claudeAiOauth": {"accessToken": "a", "refreshToken": "r",
                                               "expiresAt": 1_700_000_000_000_i64}}),
        );
        assert_eq!(f.expires_at.unwrap().as_second(), 1_700_000_000);
        assert!(f.has_token);
    }

    #[test]
    fn logged_out_shapes_have_no_token() {
        // What Claude Code writes when a refresh is refused, and other empty logins.
        for cred in [
            json!({"claudeAiOauth": {"accessToken": "", "refreshToken": "", "expiresAt": 0}}),
            json!({"claudeAiOauth": null}),
            json!({}),
            json!({"claudeAiOauth": {"accessToken": "a", "expiresAt": 1_700_000_000_000_i64}}),
            json!({"claudeAiOauth": {"accessToken": "a", "refreshToken": "r"}}),
        ] {
            assert!(!read(&cred).has_token, "{cred}");
        }
    }
}
