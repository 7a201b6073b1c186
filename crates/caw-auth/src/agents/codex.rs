//! Codex CLI: `~/.codex/auth.json` plus `~/.codex/config.toml` without host projects.

use base64::Engine as _;
use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

use super::{Agent, CleanContext, ConfigCandidate, ConfigFile};
use crate::expiry::Freshness;

pub(super) struct Codex;

impl Agent for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn credential_host(&self) -> &'static str {
        ".codex/auth.json"
    }

    fn credential_src(&self) -> &'static str {
        "codex/auth.json"
    }

    fn required(&self) -> &'static [&'static str] {
        &[".codex/auth.json"]
    }

    fn configs(&self) -> &'static [ConfigFile] {
        &[ConfigFile {
            candidates: &[ConfigCandidate {
                host: ".codex/config.toml",
                src: "codex/config.toml",
                target: ".codex/config.toml",
            }],
        }]
    }

    /// Drop every trusted host project (both the `projects` and the legacy
    /// `project_trust` spelling) and trust the container home instead;
    /// everything else, comments and order included, stays as written.
    fn clean_config(
        &self,
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

        let mut trusted = Table::new();
        trusted.insert("trust_level", toml_edit::value("trusted"));
        let mut projects = Table::new();
        projects.set_implicit(true);
        projects.insert(ctx.container_home, Item::Table(trusted));
        doc.insert("projects", Item::Table(projects));
        Ok(doc.to_string().into_bytes())
    }

    /// The `exp` claim of the access token; `last_refresh` orders equal expiries.
    fn freshness(&self, credential: &Value) -> Freshness {
        let expires_at = credential
            .pointer("/tokens/access_token")
            .and_then(Value::as_str)
            .and_then(jwt_exp);
        let tiebreak = credential
            .get("last_refresh")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok());
        Freshness {
            expires_at,
            tiebreak,
        }
    }
}

/// The `exp` claim (seconds) of a JWT, without checking its signature.
fn jwt_exp(token: &str) -> Option<jiff::Timestamp> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    jiff::Timestamp::from_second(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clean(input: &str) -> String {
        let ctx = CleanContext {
            container_home: "/home/playground",
        };
        let cand = &Codex.configs()[0].candidates[0];
        String::from_utf8(Codex.clean_config(cand, input.as_bytes(), &ctx).unwrap()).unwrap()
    }

    pub(crate) fn jwt(claims: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", e(r#"{"alg":"RS256"}"#), e(claims))
    }

    #[test]
    fn removes_host_projects_and_trusts_the_container_home() {
        let out = clean(
            "# my codex settings\nmodel = \"gpt-5\" # favourite\n\n\
             [projects.\"/home/dev/secret\"]\ntrust_level = \"trusted\"\n\n\
             [mcp_servers.docs]\n# docs server\ncommand = \"npx\"\n\n\
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
            out.contains("[mcp_servers.docs]\n# docs server\ncommand = \"npx\"\n"),
            "{out}"
        );
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(
            doc["projects"]["/home/playground"]["trust_level"].as_str(),
            Some("trusted")
        );
        assert_eq!(doc["projects"].as_table().unwrap().len(), 1);
    }

    #[test]
    fn inline_projects_are_replaced_too() {
        let out = clean("projects = { \"/h/a\" = { trust_level = \"trusted\" } }\n");
        assert!(!out.contains("/h/a"), "{out}");
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(
            doc["projects"]["/home/playground"]["trust_level"].as_str(),
            Some("trusted")
        );
    }

    #[test]
    fn empty_config_gets_the_container_project() {
        let out = clean("");
        assert_eq!(
            out.trim(),
            "[projects.\"/home/playground\"]\ntrust_level = \"trusted\""
        );
    }

    #[test]
    fn invalid_toml_reports_a_line_without_the_text() {
        let ctx = CleanContext {
            container_home: "/h",
        };
        let cand = &Codex.configs()[0].candidates[0];
        let err = Codex
            .clean_config(cand, b"ok = 1\napi_key = \"sk-secret\n", &ctx)
            .unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("sk-secret"), "{err}");
    }

    #[test]
    fn expiry_from_the_access_token_exp_claim() {
        let cred = json!({"tokens": {"access_token": jwt(r#"{"exp":1700000000}"#)},
                          "last_refresh": "2025-01-02T03:04:05.123Z"});
        let f = Codex.freshness(&cred);
        assert_eq!(f.expires_at.unwrap().as_second(), 1_700_000_000);
        assert_eq!(f.tiebreak.unwrap().as_second(), 1_735_787_045);
    }

    #[test]
    fn api_key_alone_has_no_expiry() {
        let f = Codex.freshness(&json!({"OPENAI_API_KEY": "sk-x", "tokens": null}));
        assert_eq!(f.expires_at, None);
        let garbage = json!({"tokens": {"access_token": "not.a-jwt!.x"}});
        assert_eq!(Codex.freshness(&garbage).expires_at, None);
    }
}
