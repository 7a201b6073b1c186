"""Live mode (the default): re-running setup judges what containers left in
`live/` with the sync's own rules, and keeps the live directory itself."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from caw import auth
from conftest import HOUR_MS, jwt, now_ms, write_json


def claude_login(tag: str, expires_at_ms: int) -> dict:
    return {
        "claudeAiOauth": {
            "accessToken": f"sk-ant-oat01-{tag}",
            "refreshToken": f"sk-ant-ort01-{tag}",
            "expiresAt": expires_at_ms,
            "scopes": ["user:inference"],
        }
    }


def codex_login(account: str, exp_s: int) -> dict:
    return {
        "OPENAI_API_KEY": None,
        "tokens": {
            "access_token": jwt({"exp": exp_s}),
            "refresh_token": f"codex-refresh-{account}",
            "account_id": account,
        },
    }


def test_live_holds_the_host_logins_and_keeps_its_inode(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude", "codex"], dest_dir=auth_dir)
    live = auth_dir / "live"
    assert (live / "claude/credentials.json").read_bytes() == (
        home / ".claude/.credentials.json"
    ).read_bytes()
    assert oct(os.stat(live).st_mode & 0o777) == "0o700"
    inode = os.stat(live).st_ino
    auth.setup(["claude", "codex"], dest_dir=auth_dir)
    assert os.stat(auth_dir / "live").st_ino == inode, "live/ was replaced; running containers would lose it"


def test_a_fresher_login_a_container_left_in_live_is_kept(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude"], dest_dir=auth_dir)
    live = auth_dir / "live/claude/credentials.json"
    fresher = claude_login("container-refresh", now_ms() + 5 * HOUR_MS)
    write_json(live, fresher)
    auth.setup(["claude"], dest_dir=auth_dir)
    assert json.loads(live.read_text()) == fresher


def test_a_logged_out_or_older_live_file_is_replaced_by_the_host_login(
    home: Path, auth_dir: Path
) -> None:
    host = (home / ".claude/.credentials.json").read_bytes()
    auth.setup(["claude"], dest_dir=auth_dir)
    live = auth_dir / "live/claude/credentials.json"
    for left in [
        # What Claude Code writes when a refresh is refused.
        {"claudeAiOauth": {"accessToken": "", "refreshToken": "", "expiresAt": 0}},
        {},
        # A later expiry, but no refresh token: not a usable login.
        {"claudeAiOauth": {"accessToken": "a", "expiresAt": now_ms() + 9 * HOUR_MS}},
        # A usable login that expires before the host's.
        claude_login("older", now_ms() - HOUR_MS),
        # An expiry two years ahead orders nothing.
        claude_login("poisoned", now_ms() + 2 * 365 * 24 * HOUR_MS),
    ]:
        write_json(live, left)
        auth.setup(["claude"], dest_dir=auth_dir)
        assert live.read_bytes() == host, left


def test_another_accounts_login_in_live_never_wins(home: Path, auth_dir: Path) -> None:
    write_json(home / ".codex/auth.json", codex_login("acct-host", int(time.time()) + 3600))
    auth.setup(["codex"], dest_dir=auth_dir)
    live = auth_dir / "live/codex/auth.json"
    write_json(live, codex_login("acct-other", int(time.time()) + 9 * 3600))
    auth.setup(["codex"], dest_dir=auth_dir)
    assert json.loads(live.read_text())["tokens"]["account_id"] == "acct-host"
    # The same account, fresher: kept.
    write_json(live, codex_login("acct-host", int(time.time()) + 9 * 3600))
    auth.setup(["codex"], dest_dir=auth_dir)
    assert json.loads(live.read_text())["tokens"]["refresh_token"] == "codex-refresh-acct-host"
    assert json.loads(live.read_text())["tokens"]["access_token"] != json.loads(
        (home / ".codex/auth.json").read_text()
    )["tokens"]["access_token"]


def test_bind_mode_has_no_live_directory(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude"], dest_dir=auth_dir, mode="bind")
    assert not (auth_dir / "live").exists()
    assert json.loads((auth_dir / "manifest.json").read_text())["mode"] == "bind"
    assert ":/tmp/caw_auth/claude/credentials.json:rw" in auth.get_docker_flags(auth_dir)
