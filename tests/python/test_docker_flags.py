"""caw.auth.get_docker_flags."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

import caw
from caw import auth


def test_flags_mount_the_auth_dir_and_each_host_credential(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir, mode="bind")
    flags = auth.get_docker_flags(auth_dir)
    assert flags == " ".join(
        [
            f"-v {auth_dir}:/tmp/caw_auth:ro",
            f"-v {home}/.claude/.credentials.json:/tmp/caw_auth/claude/credentials.json:rw",
            f"-v {home}/.codex/auth.json:/tmp/caw_auth/codex/auth.json:rw",
            f"-v {home}/.gemini/oauth_creds.json:/tmp/caw_auth/gemini/oauth_creds.json:rw",
        ]
    )
    assert "\n" not in flags


def test_default_auth_dir_and_caw_auth_dir_at_call_time(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.setup()
    assert auth.get_docker_flags().startswith(f"-v {home}/.caw/auth:/tmp/caw_auth:ro ")

    other = tmp_path / "env-auth"
    auth.setup(["gemini"], dest_dir=other, mode="bind")
    monkeypatch.setenv("CAW_AUTH_DIR", str(other))
    assert auth.get_docker_flags() == (
        f"-v {other}:/tmp/caw_auth:ro -v {home}/.gemini/oauth_creds.json:/tmp/caw_auth/gemini/oauth_creds.json:rw"
    )


def test_auth_dir_accepts_str_and_pathlike(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    assert auth.get_docker_flags(str(auth_dir)) == auth.get_docker_flags(auth_dir)


def test_custom_mount_point_is_used(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude"], dest_dir=auth_dir, mount_point="/run/caw", mode="bind")
    assert auth.get_docker_flags(auth_dir) == (
        f"-v {auth_dir}:/run/caw:ro -v {home}/.claude/.credentials.json:/run/caw/claude/credentials.json:rw"
    )


def test_no_manifest_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no manifest") as info:
        auth.get_docker_flags(tmp_path / "none")
    assert isinstance(info.value, auth.NoManifestError)


def test_missing_bind_source_is_refused(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir, mode="bind")
    cred = home / ".codex/auth.json"
    cred.unlink()
    with pytest.raises(FileNotFoundError) as info:
        auth.get_docker_flags(auth_dir)
    err = info.value
    assert isinstance(err, auth.MissingBindSourceError)
    assert str(cred) in str(err)
    assert err.path == cred
    assert err.agent == "codex"
    assert "root-owned" in err.hint


def test_path_with_white_space_is_refused(home: Path, tmp_path: Path) -> None:
    spaced = tmp_path / "my auth"
    auth.setup(dest_dir=spaced)
    with pytest.raises(ValueError, match="white space") as info:
        auth.get_docker_flags(spaced)
    assert isinstance(info.value, auth.UnsafeMountPathError)
    assert info.value.path == spaced


def test_top_level_alias(home: Path, auth_dir: Path) -> None:
    assert caw.auth_get_docker_flags is auth.get_docker_flags
    auth.setup(dest_dir=auth_dir)
    assert caw.auth_get_docker_flags(auth_dir) == auth.get_docker_flags(auth_dir)


def test_live_mode_mounts_the_auth_dir_read_only_and_live_read_write(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir, mode="live")
    assert auth.get_docker_flags(auth_dir) == (
        f"-v {auth_dir}:/tmp/caw_auth:ro -v {auth_dir}/live:/tmp/caw_auth/live:rw"
    )


def test_a_manifest_naming_another_host_file_is_refused(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir, mode="bind")
    path = auth_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["agents"]["claude"]["files"][0]["host_original"] = ".ssh/id_ed25519"
    path.write_text(json.dumps(data))
    with pytest.raises(auth.InvalidManifestError) as info:
        auth.get_docker_flags(auth_dir)
    assert info.value.field == "agents.claude.files[0].host_original"
    assert ".claude/.credentials.json" in str(info.value)


class _TokenEndpoint(BaseHTTPRequestHandler):
    """Claude's token endpoint, on loopback: a refresh token works once."""

    used: set[str] = set()
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        token = body.get("refresh_token", "")
        if token in type(self).used or body.get("client_id") != "9d1c250a-e61b-44d9-88ed-5944d1962f5e":
            status, answer = 400, {"error": "invalid_grant"}
        else:
            type(self).used.add(token)
            status, answer = 200, {"access_token": "at-python-2", "refresh_token": "rt-python-2", "expires_in": 28800}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_the_sync_python_starts_refreshes_logins(
    env: Path, auth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import add_claude, now_ms

    # Due for caw's refresh (10 min before expiry), not yet for Claude's.
    add_claude(env, expires_at_ms=now_ms() + 8 * 60 * 1000)
    server = HTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CAW_CLAUDE_TOKEN_URL", f"http://127.0.0.1:{server.server_port}/v1/oauth/token")
    monkeypatch.delenv("CAW_NO_SYNC")
    monkeypatch.delenv("CAW_NO_REFRESH")
    auth.setup(["claude"], dest_dir=auth_dir)
    try:
        auth.get_docker_flags(auth_dir)
        state = json.loads((auth_dir / "sync.json").read_text())
        cmdline = Path(f"/proc/{state['pid']}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:5] == [b"-m", b"caw", b"auth", b"sync"], cmdline
        host = env / ".claude/.credentials.json"
        deadline = time.monotonic() + 15
        while "at-python-2" not in host.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        cred = json.loads(host.read_text())["claudeAiOauth"]
        assert cred["accessToken"] == "at-python-2" and cred["refreshToken"] == "rt-python-2"
        assert cred["subscriptionType"] == "max"
        live = auth_dir / "live/claude/credentials.json"
        while live.read_bytes() != host.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.read_bytes() == host.read_bytes()
        assert len(_TokenEndpoint.requests) == 1
    finally:
        auth.teardown(auth_dir=auth_dir, force=True)
        server.shutdown()
