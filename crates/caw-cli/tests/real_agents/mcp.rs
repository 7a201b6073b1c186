//! Host MCP servers stay on the host: the container's agent lists none.

use crate::session::{text, Session};

#[test]
fn codex_mcp_list_in_container_shows_no_host_server() {
    let Some(s) = Session::new(module_path!()) else {
        return;
    };
    s.login_codex(5 * 86400, true);
    s.setup(&["--agents", "codex"]);
    let container = s.start_container("codex");

    // The host lists its server: the command does show configured servers.
    let host = s.on_host("codex", &["mcp", "list"]);
    assert!(
        host.status.success(),
        "host codex mcp list: {}",
        text(&host.stderr)
    );
    assert!(
        text(&host.stdout).contains("docs-mcp-server"),
        "the host's `codex mcp list` does not show its server: {}",
        text(&host.stdout)
    );

    let inside = container.run("codex", &["mcp", "list"]);
    assert!(
        inside.status.success(),
        "codex mcp list: {}",
        text(&inside.stderr)
    );
    let listed = text(&inside.stdout);
    assert!(
        !listed.contains("docs") && !listed.contains("docs-mcp-server"),
        "the container's codex lists the host's MCP server:\n{listed}"
    );
    let config = container
        .read(&format!("{}/.codex/config.toml", crate::session::HOME))
        .expect("config.toml in the container");
    assert!(
        !config.contains("fake-host-mcp-secret"),
        "the host MCP server's env secret is in the container's config.toml:\n{config}"
    );
}
