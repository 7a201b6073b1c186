//! Codex CLI: `~/.codex/auth.json` plus `~/.codex/config.toml` without host projects.

use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

use super::{
    jwt, non_empty, Agent, CleanContext, ConfigCandidate, ConfigFile, CredentialFacts, ShellRules,
};
use crate::identity::Identity;

pub(super) static CODEX: Agent = Agent {
    name: "codex",
    credential: ".codex/auth.json",
    credential_src: "codex/auth.json",
    relocation: None,
    configs: &[ConfigFile {
        candidates: &[ConfigCandidate {
            host: ".codex/config.toml",
            src: "codex/config.toml",
            target: ".codex/config.toml",
        }],
        required: false,
        private: false,
    }],
    read_credential: read,
    clean_config: Some(clean),
    shell: ShellRules::NoSync("its expiry and account are in JWTs the shell cannot read"),
    // ChatGPT access tokens (JWT `exp`) have been seen to last up to 10 days;
    // `last_refresh` is at most 8 days old before Codex refreshes. Generous:
    // a planted token would have to stay under 30 days.
    max_lifetime: jiff::SignedDuration::from_hours(30 * 24),
    refresh_tokens: |c| super::string_at_mut(c, "/tokens/refresh_token"),
};

/// Drop every trusted host project (both the `projects` and the legacy
/// `project_trust` spelling) and every MCP server (host commands, and the
/// secrets in their `env`), and trust the container home and each `--trust`
/// directory instead; everything else, comments and order included, stays
/// as written.
fn clean(
    _candidate: &ConfigCandidate,
    bytes: &[u8],
    ctx: &CleanContext<'_>,
) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        // The error's Display quotes the offending line; keep only the position.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(line) => format!("{} at line {line}", e.message().trim_end()),
            None => e.message().trim_end().to_string(),
        }
    })?;
    doc.remove("project_trust");
    doc.remove("projects");
    doc.remove("mcp_servers");

    let mut projects = Table::new();
    projects.set_implicit(true);
    for dir in ctx.trusted_dirs() {
        let mut trusted = Table::new();
        trusted.insert("trust_level", toml_edit::value("trusted"));
        projects.insert(dir, Item::Table(trusted));
    }
    doc.insert("projects", Item::Table(projects));
    Ok(doc.to_string().into_bytes())
}

/// The kind of login an `auth_mode` names. Codex 0.147 knows `apikey`,
/// `chatgpt`, `chatgptAuthTokens` and a few more; both ChatGPT spellings are
/// the same kind (a file without `auth_mode` holding tokens is one too).
fn kind_of_mode(mode: &str) -> String {
    let mode = mode.to_ascii_lowercase().replace(['_', '-'], "");
    if mode.starts_with("chatgpt") {
        "chatgpt".to_string()
    } else {
        mode
    }
}

/// Expiry from the access token's `exp` claim, `last_refresh` for ties.
///
/// A ChatGPT login needs its access and refresh tokens; an API-key login its
/// key. The kind is `chatgpt` or `apikey` (`auth_mode` when the file states
/// it); the account is `tokens.account_id`, else the `id_token`'s e-mail.
fn read(cred: &Value) -> CredentialFacts {
    let tokens = cred.get("tokens").unwrap_or(&Value::Null);
    let access = non_empty(tokens, "access_token");
    let chatgpt = access.is_some() && non_empty(tokens, "refresh_token").is_some();
    let api_key = non_empty(cred, "OPENAI_API_KEY").is_some();
    let kind = match non_empty(cred, "auth_mode").map(kind_of_mode) {
        Some(kind) => Some(kind),
        None if chatgpt => Some("chatgpt".to_string()),
        None if api_key => Some("apikey".to_string()),
        None => None,
    };
    let account = non_empty(tokens, "account_id")
        .map(str::to_string)
        .or_else(|| {
            non_empty(tokens, "id_token")
                .and_then(jwt::claims)
                .and_then(|c| jwt::email(&c).map(str::to_string))
        });
    CredentialFacts {
        expires_at: access.and_then(jwt::claims).and_then(|c| jwt::exp(&c)),
        tiebreak: cred
            .get("last_refresh")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok()),
        has_token: chatgpt || api_key,
        identity: Identity::new(
            [("account", account), ("kind", kind)]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cleaned(input: &str) -> String {
        let ctx = CleanContext {
            container_home: "/home/playground",
            trusted: &["/workspace".to_string()],
        };
        let cand = &CODEX.configs[0].candidates[0];
        String::from_utf8(clean(cand, input.as_bytes(), &ctx).unwrap()).unwrap()
    }

    #[test]
    fn removes_host_projects_and_mcp_servers_and_trusts_the_container_dirs() {
        let out = cleaned(
            "# my codex settings\nmodel = \"gpt-5\" # favourite\n\n\
             [projects.\"/home/dev/secret\"]\ntrust_level = \"trusted\"\n\n\
             [mcp_servers.docs]\n# docs server\ncommand = \"npx\"\n\n\
             [mcp_servers.docs.env]\nDOCS_TOKEN = \"tok-SECRET\"\n\n\
             [profiles.fast]\nmodel = \"gpt-5-mini\"\n\n\
             [project_trust.\"/home/dev/old\"]\ntrust_mode = \"full\"\n\n\
             [projects.'/srv/x']\ntrust_level = \"untrusted\"\n",
        );
        assert!(
            !out.contains("/home/dev") && !out.contains("/srv/x"),
            "{out}"
        );
        assert!(!out.contains("project_trust"), "{out}");
        assert!(
            out.starts_with("# my codex settings\nmodel = \"gpt-5\" # favourite\n"),
            "{out}"
        );
        assert!(
            !out.contains("mcp_servers") && !out.contains("npx") && !out.contains("tok-SECRET"),
            "{out}"
        );
        assert!(
            out.contains("[profiles.fast]\nmodel = \"gpt-5-mini\"\n"),
            "{out}"
        );
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        for dir in ["/home/playground", "/workspace"] {
            assert_eq!(
                doc["projects"][dir]["trust_level"].as_str(),
                Some("trusted"),
                "{dir}"
            );
        }
        assert_eq!(doc["projects"].as_table().unwrap().len(), 2);
    }

    #[test]
    fn inline_projects_and_servers_are_removed_too() {
        let out = cleaned(
            "projects = { \"/h/a\" = { trust_level = \"trusted\" } }\n\
             mcp_servers = { s = { command = \"host-cmd\" } }\n",
        );
        assert!(!out.contains("/h/a") && !out.contains("host-cmd"), "{out}");
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(
            doc["projects"]["/home/playground"]["trust_level"].as_str(),
            Some("trusted")
        );
    }

    #[test]
    fn empty_config_gets_the_container_projects() {
        let out = cleaned("");
        assert_eq!(
            out.trim(),
            "[projects.\"/home/playground\"]\ntrust_level = \"trusted\"\n\n\
             [projects.\"/workspace\"]\ntrust_level = \"trusted\""
        );
    }

    #[test]
    fn invalid_toml_reports_a_line_without_the_text() {
        let ctx = CleanContext {
            container_home: "/h",
            trusted: &[],
        };
        let cand = &CODEX.configs[0].candidates[0];
        let err = clean(cand, b"ok = 1\napi_key = \"sk-secret\n", &ctx).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("sk-secret"), "{err}");
    }

    #[test]
    fn expiry_from_the_access_token_exp_claim() {
        let token = jwt::encode(r#"{"exp":1700000000}"#);
        let cred = json!({"tokens": {"access_token": token, "refresh_token": "r"},
                          "last_refresh": "2025-01-02T03:04:05.123Z"});
        let f = read(&cred);
        assert_eq!(f.expires_at.unwrap().as_second(), 1_700_000_000);
        assert_eq!(f.tiebreak.unwrap().as_second(), 1_735_787_045);
        assert!(f.has_token);
        assert_eq!(f.identity.get("kind"), Some("chatgpt"));
    }

    #[test]
    fn api_key_alone_has_no_expiry_and_is_another_kind() {
        let f = read(&json!({"OPENAI_API_KEY": "sk-x", "tokens": null}));
        assert_eq!(f.expires_at, None);
        assert!(f.has_token);
        assert_eq!(f.identity.get("kind"), Some("apikey"));
        let garbage = json!({"tokens": {"access_token": "not.a-jwt!.x", "refresh_token": "r"}});
        assert_eq!(read(&garbage).expires_at, None);
    }

    #[test]
    fn the_account_comes_from_account_id_or_the_id_token_email() {
        let id = jwt::encode(r#"{"email":"dev@example.com"}"#);
        let with_id = json!({"tokens": {"access_token": "a", "refresh_token": "r",
                                        "account_id": "acct-1", "id_token": id}});
        assert_eq!(read(&with_id).identity.get("account"), Some("acct-1"));
        let email_only =
            json!({"tokens": {"access_token": "a", "refresh_token": "r", "id_token": id}});
        assert_eq!(
            read(&email_only).identity.get("account"),
            Some("dev@example.com")
        );
        let stated = json!({"auth_mode": "ApiKey", "OPENAI_API_KEY": "sk"});
        assert_eq!(read(&stated).identity.get("kind"), Some("apikey"));
        // What `codex login --with-api-key` writes, against a ChatGPT login without `auth_mode`.
        let api = read(&json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-x"}));
        let chatgpt = read(&json!({"tokens": {"access_token": "a", "refresh_token": "r"}}));
        assert!(api.identity.conflicts_with(&chatgpt.identity));
        let tokens_mode = read(
            &json!({"auth_mode": "chatgptAuthTokens", "tokens": {"access_token": "a", "refresh_token": "r"}}),
        );
        assert!(!tokens_mode.identity.conflicts_with(&chatgpt.identity));
    }

    #[test]
    fn logged_out_shapes_have_no_token() {
        for cred in [
            json!({}),
            json!({"OPENAI_API_KEY": null, "tokens": null}),
            json!({"OPENAI_API_KEY": "", "tokens": {"access_token": "", "refresh_token": ""}}),
            json!({"tokens": {"access_token": "a"}}),
        ] {
            assert!(!read(&cred).has_token, "{cred}");
        }
    }
}
