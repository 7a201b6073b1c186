"""`get_docker_flags` starts the host sync (live mode) with the auth dir's own
static `bin/caw`, and `teardown` stops it."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from caw import auth
from conftest import HOUR_MS, now_ms, write_json


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait(cond, what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_get_docker_flags_starts_the_sync_and_teardown_stops_it(
    home: Path, auth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAW_NO_SYNC")
    auth.setup(["claude"], dest_dir=auth_dir)
    assert (auth_dir / "bin/caw").is_file(), "the wheel bundles no static caw"
    flags = auth.get_docker_flags(auth_dir)
    assert flags.endswith(f"-v {auth_dir}/live:/tmp/caw_auth/live:rw")
    state = json.loads((auth_dir / "sync.json").read_text())
    pid = state["pid"]
    assert alive(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    # This interpreter and package, with the refresher: `python -m caw auth sync`.
    assert argv[1:7] == [b"-m", b"caw", b"auth", b"sync", b"--auth-dir", os.fsencode(auth_dir)]
    # It carries a container's refresh (written into live/) to the host file.
    fresher = {
        "claudeAiOauth": {
            "accessToken": "sk-ant-oat01-from-a-container",
            "refreshToken": "sk-ant-ort01-from-a-container",
            "expiresAt": now_ms() + 6 * HOUR_MS,
        }
    }
    write_json(auth_dir / "live/claude/credentials.json", fresher)
    host = home / ".claude/.credentials.json"
    wait(lambda: json.loads(host.read_text()) == fresher, "the refresh reached the host")
    # A second call finds it running.
    auth.get_docker_flags(auth_dir)
    assert json.loads((auth_dir / "sync.json").read_text())["pid"] == pid
    auth.teardown(auth_dir)
    wait(lambda: not alive(pid), "the sync stopped")
    assert not auth_dir.exists()


def test_get_docker_flags_joins_the_sync_it_starts_to_a_store(
    home: Path, auth_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAW_NO_SYNC")
    auth.setup(["claude"], dest_dir=auth_dir)
    url = "etcd://127.0.0.1:1/t"
    # A store without its key: an error, and no sync started.
    with pytest.raises(auth.CawAuthError, match="store_key"):
        auth.get_docker_flags(auth_dir, store=url)
    assert not (auth_dir / "sync.json").exists()
    # A store key as `caw auth store-key` writes it (the wheel's own caw is
    # the container build, without the store): 32 random bytes, base64, 0600.
    key = tmp_path / "store.key"
    key.write_text("# caw store key\n" + base64.b64encode(os.urandom(32)).decode() + "\n")
    key.chmod(0o600)
    auth.get_docker_flags(auth_dir, store=url, store_key=key)
    pid = json.loads((auth_dir / "sync.json").read_text())["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[7:11] == [b"--store", url.encode(), b"--store-key", os.fsencode(key)]
    # Nothing answers there: the sync says so in sync.json, and keeps going.
    wait(
        lambda: (json.loads((auth_dir / "sync.json").read_text()).get("store") or {}).get(
            "unreachable_since"
        )
        is not None,
        "the sync records the unreachable store",
        within=10,
    )
    assert alive(pid)
    auth.teardown(auth_dir, force=True)
    wait(lambda: not alive(pid), "the sync stopped")
