"""caw.auth.get_status and AuthFileStatus."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

import caw
from caw import auth
from caw.auth import AuthFileStatus
from conftest import HOUR_MS, add_claude, now_ms, write_json


def by_file(rows: list[AuthFileStatus]) -> dict[str, AuthFileStatus]:
    return {r.file: r for r in rows}


def test_auth_file_status_is_a_frozen_dataclass_with_documented_fields() -> None:
    assert dataclasses.is_dataclass(AuthFileStatus)
    fields = dataclasses.fields(AuthFileStatus)
    # The documented six first, in order; caw's extras after them, with defaults.
    assert [f.name for f in fields] == [
        "agent",
        "file",
        "type",
        "strategy",
        "exists",
        "token_expiry",
        "source",
        "modified",
        "expires_at",
        "newest",
        "next_refresh",
        "last_refresh",
        "last_refresh_result",
        "refresh_token_held",
    ]
    row = AuthFileStatus("claude", ".claude.json", "config", "copy", True, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.exists = False  # type: ignore[misc]
    assert row == AuthFileStatus(
        agent="claude", file=".claude.json", type="config", strategy="copy", exists=True, token_expiry=None
    )
    assert hash(row) == hash(AuthFileStatus("claude", ".claude.json", "config", "copy", True, None))


def test_rows_for_every_managed_file(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    rows = auth.get_status(auth_dir=auth_dir)

    assert all(type(r) is AuthFileStatus for r in rows)
    assert [(r.agent, r.file, r.type, r.strategy) for r in rows] == [
        ("claude", ".claude/.credentials.json", "credential", "bind"),
        ("claude", ".claude.json", "config", "copy"),
        ("codex", ".codex/auth.json", "credential", "bind"),
        ("codex", ".codex/config.toml", "config", "copy"),
        ("gemini", ".gemini/oauth_creds.json", "credential", "bind"),
        ("gemini", ".gemini/settings.json", "config", "copy"),
    ]
    for r in rows:
        assert isinstance(r.agent, str) and isinstance(r.file, str)
        assert r.exists is True


def test_token_expiry_valid_expired_and_none(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    rows = by_file(auth.get_status(auth_dir=auth_dir))

    assert re.fullmatch(r"valid \((4h 5\dm|5h 0m) remaining\)", rows[".claude/.credentials.json"].token_expiry)
    assert re.fullmatch(r"valid \((9d 23h|10d 0h) remaining\)", rows[".codex/auth.json"].token_expiry)
    assert re.fullmatch(r"EXPIRED \((1h 59m|2h 0m) ago\)", rows[".gemini/oauth_creds.json"].token_expiry)
    for config in (".claude.json", ".codex/config.toml", ".gemini/settings.json"):
        assert rows[config].token_expiry is None


def test_freshness_is_read_from_the_host_file(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude"], dest_dir=auth_dir)
    # The host refreshes its login after setup; the staged snapshot is older.
    add_claude(home, expires_at_ms=now_ms() + 30 * 24 * HOUR_MS)
    row = by_file(auth.get_status(auth_dir=auth_dir))[".claude/.credentials.json"]
    assert row.token_expiry.startswith("valid (29d") or row.token_expiry.startswith("valid (30d")


def test_missing_host_credential_is_reported_not_raised(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    (home / ".gemini/oauth_creds.json").unlink()
    row = by_file(auth.get_status(auth_dir=auth_dir))[".gemini/oauth_creds.json"]
    assert row.exists is False
    assert row.token_expiry is None


def test_agents_filter(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    assert {r.agent for r in auth.get_status(["codex"], auth_dir)} == {"codex"}
    assert {r.agent for r in auth.get_status(["all"], auth_dir)} == {"claude", "codex", "gemini"}
    assert {r.agent for r in auth.get_status(None, auth_dir)} == {"claude", "codex", "gemini"}
    # A known agent that was not set up has no rows.
    assert auth.get_status(["qwen"], auth_dir) == []


def test_unknown_agent_is_a_value_error(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    with pytest.raises(ValueError, match=r"^Unknown agent `cursor`") as info:
        auth.get_status(["cursor"], auth_dir)
    assert isinstance(info.value, auth.UnknownAgentError)
    assert "claude, codex, opencode, gemini, qwen" in str(info.value)


def test_default_auth_dir_and_caw_auth_dir_at_call_time(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.setup()
    assert len(auth.get_status()) == 6

    other = tmp_path / "env-auth"
    auth.setup(["claude"], dest_dir=other)
    monkeypatch.setenv("CAW_AUTH_DIR", str(other))
    assert {r.agent for r in auth.get_status()} == {"claude"}


def test_auth_dir_accepts_str_and_pathlike(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    assert auth.get_status(auth_dir=str(auth_dir)) == auth.get_status(auth_dir=auth_dir)


def test_no_manifest_is_file_not_found_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError) as info:
        auth.get_status(auth_dir=missing)
    assert isinstance(info.value, auth.NoManifestError)
    assert str(missing / "manifest.json") in str(info.value)
    assert info.value.path == missing / "manifest.json"
    assert "setup" in info.value.hint


def test_no_manifest_at_default_location(home: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(home / ".caw/auth")):
        auth.get_status()


def test_invalid_manifest_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad-auth"
    write_json(bad / "manifest.json", {"version": 2, "agents": {}})
    with pytest.raises(ValueError, match="version") as info:
        auth.get_status(auth_dir=bad)
    assert isinstance(info.value, auth.InvalidManifestError)
    assert info.value.field == "version"


def test_top_level_alias(home: Path, auth_dir: Path) -> None:
    assert caw.auth_get_status is auth.get_status
    auth.setup(dest_dir=auth_dir)
    assert caw.auth_get_status(auth_dir=auth_dir) == auth.get_status(auth_dir=auth_dir)


def test_rows_carry_the_cli_s_detail(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    rows = by_file(auth.get_status(auth_dir=auth_dir))
    cred = rows[".claude/.credentials.json"]
    assert cred.source == f"host {home / '.claude/.credentials.json'}"
    assert cred.modified is not None and cred.modified.tzinfo is not None
    assert cred.expires_at is not None and cred.expires_at.tzinfo is not None
    assert cred.newest == "same"
    # No host sync runs here: no refresher record.
    assert cred.next_refresh is None and cred.last_refresh is None
    assert cred.last_refresh_result is None and cred.refresh_token_held is False
    config = rows[".claude.json"]
    assert config.source.startswith("staged ") and config.expires_at is None and config.newest is None


def test_hold_refresh_token_keeps_refresh_tokens_out_of_the_auth_dir(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir, hold_refresh_token=True)
    manifest = json.loads((auth_dir / "manifest.json").read_text())
    assert manifest["hold_refresh_token"] is True
    secret = json.loads((home / ".claude/.credentials.json").read_text())["claudeAiOauth"]["refreshToken"]
    for path in auth_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    with pytest.raises(TypeError):
        auth.setup(dest_dir=auth_dir, hold_refresh_token="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hold_refresh_token"):
        auth.setup(dest_dir=auth_dir, mode="bind", hold_refresh_token=True)
