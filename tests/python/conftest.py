"""Temp homes built like real ones, and an environment that never reaches the real `~`.

Every test gets `HOME` pointing at an empty temp directory and no `CAW_AUTH_DIR`
(the `env` fixture is autouse). `home` adds made-up logins for Claude Code,
Codex and Gemini CLI; opencode and Qwen Code are left out, so setup with all
agents skips them with a warning.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

HOUR_MS = 3600 * 1000

# Made-up tokens; tests check that none of them ever appears in an error message.
CLAUDE_ACCESS = "sk-ant-oat01-claude-access-SECRET"
CLAUDE_REFRESH = "sk-ant-ort01-claude-refresh-SECRET"
CODEX_REFRESH = "codex-refresh-SECRET"
GEMINI_ACCESS = "ya29.gemini-access-SECRET"
SECRETS = [CLAUDE_ACCESS, CLAUDE_REFRESH, CODEX_REFRESH, GEMINI_ACCESS]


def now_ms() -> int:
    return int(time.time() * 1000)


def write_json(path: Path, data: object, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    os.chmod(path, mode)
    return path


def jwt(claims: dict) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def add_claude(home: Path, expires_at_ms: int | None = None) -> None:
    write_json(
        home / ".claude.json",
        {
            "userID": "0123abcd",
            "hasCompletedOnboarding": True,
            "numStartups": 12,
            "oauthAccount": {"emailAddress": "dev@example.com"},
            "projects": {str(home / "work/secret-project"): {"allowedTools": ["Bash"]}},
        },
        mode=0o644,
    )
    write_json(
        home / ".claude/.credentials.json",
        {
            "claudeAiOauth": {
                "accessToken": CLAUDE_ACCESS,
                "refreshToken": CLAUDE_REFRESH,
                "expiresAt": expires_at_ms if expires_at_ms is not None else now_ms() + 5 * HOUR_MS,
                "scopes": ["user:inference"],
                "subscriptionType": "max",
            }
        },
    )


def add_codex(home: Path, exp_s: int | None = None) -> None:
    exp = exp_s if exp_s is not None else int(time.time()) + 10 * 24 * 3600
    write_json(
        home / ".codex/auth.json",
        {
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": jwt({"email": "dev@example.com", "exp": exp}),
                "access_token": jwt({"exp": exp, "scp": ["openid"]}),
                "refresh_token": CODEX_REFRESH,
                "account_id": "acct-123",
            },
            "last_refresh": "2026-11-01T10:00:00.000000Z",
        },
    )
    (home / ".codex/config.toml").write_text(
        'model = "gpt-5-codex"\n\n'
        f'[projects."{home}/work/secret-project"]\ntrust_level = "trusted"\n'
    )


def add_gemini(home: Path, expiry_date_ms: int | None = None) -> None:
    write_json(
        home / ".gemini/oauth_creds.json",
        {
            "access_token": GEMINI_ACCESS,
            "refresh_token": "1//gemini-refresh",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "token_type": "Bearer",
            "expiry_date": expiry_date_ms if expiry_date_ms is not None else now_ms() - 2 * HOUR_MS,
        },
    )
    write_json(home / ".gemini/settings.json", {"selectedAuthType": "oauth-personal"}, mode=0o644)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty `HOME` under tmp_path, no caw variables from the outside, and
    no host sync started by `get_docker_flags` unless a test asks for one."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("CAW_AUTH_DIR", "CAW_STATIC_BINARY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAW_NO_SYNC", "1")
    # A host sync a test starts refreshes nothing unless the test points it
    # at a loopback fake: no test may reach a real token endpoint.
    monkeypatch.setenv("CAW_NO_REFRESH", "1")
    monkeypatch.setenv("CAW_NO_VERIFY", "1")
    return home


@pytest.fixture
def home(env: Path) -> Path:
    """`HOME` with Claude Code (valid), Codex (valid) and Gemini CLI (expired) logins."""
    add_claude(env)
    add_codex(env)
    add_gemini(env)
    return env


@pytest.fixture
def auth_dir(tmp_path: Path) -> Path:
    """Where a test asks setup to write (not yet created)."""
    return tmp_path / "auth"
