//! `caw auth status`.

use std::process::ExitCode;

use caw_auth::AuthFileStatus;
use jiff::Timestamp;
use serde_json::json;

use super::{AgentsArg, AuthDirArg};
use crate::output;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    agents: AgentsArg,
    #[command(flatten)]
    auth_dir: AuthDirArg,
    /// Print the rows as a JSON array
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = Timestamp::now();
    let rows =
        caw_auth::get_status_at(&args.agents.agents, args.auth_dir.auth_dir.as_deref(), now)?;
    if args.json {
        let json: Vec<_> = rows.iter().map(row_json).collect();
        output::stdout(&format!("{}\n", serde_json::to_string_pretty(&json)?))?;
    } else {
        output::stdout(&table(&rows, now))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row_json(r: &AuthFileStatus) -> serde_json::Value {
    json!({
        "agent": r.agent,
        "file": r.file,
        "type": r.file_type.to_string(),
        "strategy": r.strategy.to_string(),
        "exists": r.exists,
        "token_expiry": r.token_expiry,
        "source": r.source.to_string(),
        "path": r.source.path(),
        "last_modified": r.modified.map(|t| t.to_string()),
        "expires_at": r.expires_at.map(|t| t.to_string()),
    })
}

const HEADERS: [&str; 7] = [
    "AGENT",
    "FILE",
    "TYPE",
    "STRATEGY",
    "SOURCE",
    "LAST MODIFIED",
    "TOKEN",
];

/// A plain aligned table; the agent is named on its first row only.
fn table(rows: &[AuthFileStatus], now: Timestamp) -> String {
    let mut cells: Vec<[String; 7]> = Vec::with_capacity(rows.len());
    let mut previous = "";
    for r in rows {
        let agent = if r.agent == previous {
            String::new()
        } else {
            r.agent.clone()
        };
        previous = &r.agent;
        let modified = match r.modified {
            Some(t) => {
                let secs = (now.as_second() - t.as_second()).max(0).unsigned_abs();
                format!("{} ago", caw_auth::expiry::format_duration(secs))
            }
            None => "-".into(),
        };
        cells.push([
            agent,
            r.file.clone(),
            r.file_type.to_string(),
            r.strategy.to_string(),
            r.source.to_string(),
            modified,
            r.token_expiry.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |fields: &[&str]| {
        let mut text = String::new();
        for (i, (f, w)) in fields.iter().zip(widths).enumerate() {
            if i + 1 == fields.len() {
                text.push_str(f);
            } else {
                text.push_str(&format!("{f:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&HEADERS);
    for row in &cells {
        line(&row.each_ref().map(String::as_str));
    }
    out
}
