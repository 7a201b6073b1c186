//! `caw auth status`.

use std::process::ExitCode;

use caw_auth::host_sync::SyncStatus;
use caw_auth::manifest::AuthMode;
use caw_auth::{AuthFileStatus, StatusReport};
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
    let report =
        caw_auth::status_report(&args.agents.agents, args.auth_dir.auth_dir.as_deref(), now)?;
    if args.json {
        let json: Vec<_> = report
            .rows
            .iter()
            .map(|r| row_json(r, report.sync.as_ref()))
            .collect();
        output::stdout(&format!("{}\n", serde_json::to_string_pretty(&json)?))?;
    } else {
        let mut text = table(&report, now);
        if let Some(sync) = &report.sync {
            text.push_str(&sync_line(sync, now));
            text.push_str(&refresh_lines(&report, sync, now));
            text.push_str(&store_lines(sync, now));
        }
        output::stdout(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row_json(r: &AuthFileStatus, sync: Option<&SyncStatus>) -> serde_json::Value {
    let mut row = json!({
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
    });
    if let Some(refresh) = &r.refresh {
        row["refresh"] = json!({
            "next_at": refresh.next_at.map(|t| t.to_string()),
            "last_at": refresh.last_at.map(|t| t.to_string()),
            "last": refresh.last,
            "ok": refresh.ok,
            "refresh_token_held": refresh.held,
            "waiting": refresh.waiting,
        });
    }
    if let (Some(newest), Some(sync)) = (r.newest, sync) {
        row["newest"] = newest.to_string().into();
        row["sync"] = match sync {
            SyncStatus::Running(state) => json!({
                "running": true,
                "pid": state.as_ref().map(|s| s.pid),
                "started_at": state.as_ref().map(|s| s.started_at.to_string()),
                "last_sync": state.as_ref().and_then(|s| s.last_sync).map(|t| t.to_string()),
                "store": state.as_ref().and_then(|s| s.store.as_ref()).map(|st| json!({
                    "url": st.url,
                    "unreachable_since": st.unreachable_since.map(|t| t.to_string()),
                    "refresher_of": st.refresher_of,
                    "outcome_unknown": st.outcome_unknown,
                    "problem": st.problem,
                })),
            }),
            SyncStatus::Stopped => json!({"running": false}),
        };
    }
    row
}

/// `sync: running (pid 12, last sync 3s ago)`, or how to start it.
fn sync_line(sync: &SyncStatus, now: Timestamp) -> String {
    let ago = |t: Timestamp| {
        let secs = (now.as_second() - t.as_second()).max(0).unsigned_abs();
        format!("{} ago", caw_auth::expiry::format_duration(secs))
    };
    match sync {
        SyncStatus::Running(Some(state)) => format!(
            "\nsync: running (pid {}, started {}, last sync {})\n",
            state.pid,
            ago(state.started_at),
            state.last_sync.map_or_else(|| "none yet".to_string(), ago)
        ),
        SyncStatus::Running(None) => "\nsync: running\n".to_string(),
        SyncStatus::Stopped => "\nsync: not running (`caw auth docker-flags` starts it; or run \
             `caw auth sync`)\n"
            .to_string(),
    }
}

/// One line per login the running sync refreshes: when next, how the last
/// one went; or that it does not refresh.
fn refresh_lines(report: &StatusReport, sync: &SyncStatus, now: Timestamp) -> String {
    let SyncStatus::Running(Some(state)) = sync else {
        return String::new();
    };
    if state.refresh.is_none() {
        return "refresh: off (the agents refresh their logins themselves)\n".into();
    }
    let span = |t: Timestamp| {
        let secs = (t.as_second() - now.as_second()).unsigned_abs();
        caw_auth::expiry::format_duration(secs)
    };
    let mut out = String::new();
    for r in report.rows.iter() {
        let Some(refresh) = &r.refresh else { continue };
        let next = match refresh.next_at {
            Some(t) if t > now => format!("next in {}", span(t)),
            Some(_) => "next now".to_string(),
            None => "no refresh planned".to_string(),
        };
        let last = match (&refresh.last, refresh.last_at) {
            (Some(what), Some(at)) => format!("; last {} ago: {what}", span(at)),
            _ => String::new(),
        };
        let waiting = refresh
            .waiting
            .as_ref()
            .map_or_else(String::new, |w| format!("; waiting: {w}"));
        let held = if refresh.held {
            " (refresh token held on the host)"
        } else {
            ""
        };
        out.push_str(&format!(
            "refresh: {}: {next}{last}{waiting}{held}\n",
            r.agent
        ));
    }
    out
}

/// The store the running sync joins this machine's logins to: reachable or
/// since when not, what this machine refreshes, what is unknown.
fn store_lines(sync: &SyncStatus, now: Timestamp) -> String {
    let SyncStatus::Running(Some(state)) = sync else {
        return String::new();
    };
    let Some(store) = &state.store else {
        return String::new();
    };
    let mut out = match store.unreachable_since {
        Some(t) => format!(
            "store: {}: store unreachable since {t} ({} ago): this machine keeps its logins and refreshes none\n",
            store.url,
            caw_auth::expiry::format_duration((now.as_second() - t.as_second()).max(0).unsigned_abs())
        ),
        None if store.refresher_of.is_empty() => format!(
            "store: {}: reachable; another machine refreshes the logins\n",
            store.url
        ),
        None => format!(
            "store: {}: reachable; this machine refreshes {}\n",
            store.url,
            store.refresher_of.join(", ")
        ),
    };
    for agent in &store.outcome_unknown {
        out.push_str(&format!(
            "store: {agent}: refresh outcome unknown (begun and never finished); waiting for a login from any side\n"
        ));
    }
    if let Some(problem) = &store.problem {
        out.push_str(&format!("store: error: {problem}\n"));
    }
    out
}

/// A plain aligned table; the agent is named on its first row only. In
/// live mode a NEWEST column says which side of a credential is newer.
fn table(report: &StatusReport, now: Timestamp) -> String {
    let live = report.mode == AuthMode::Live;
    let mut headers = vec![
        "AGENT",
        "FILE",
        "TYPE",
        "STRATEGY",
        "SOURCE",
        "LAST MODIFIED",
    ];
    if live {
        headers.push("NEWEST");
    }
    headers.push("TOKEN");
    let mut cells: Vec<Vec<String>> = Vec::with_capacity(report.rows.len());
    let mut previous = "";
    for r in &report.rows {
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
        let mut row = vec![
            agent,
            r.file.clone(),
            r.file_type.to_string(),
            r.strategy.to_string(),
            r.source.to_string(),
            modified,
        ];
        if live {
            row.push(r.newest.map_or_else(|| "-".to_string(), |n| n.to_string()));
        }
        row.push(r.token_expiry.clone().unwrap_or_default());
        cells.push(row);
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |fields: &[&str]| {
        let mut text = String::new();
        for (i, (f, w)) in fields.iter().zip(&widths).enumerate() {
            if i + 1 == fields.len() {
                text.push_str(f);
            } else {
                text.push_str(&format!("{f:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers);
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}
