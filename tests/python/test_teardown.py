"""caw.auth.teardown, including the refusal over symlinks left by caw's old design."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path

import pytest

import caw
from caw import auth
from conftest import write_json


def test_removes_the_auth_dir_and_returns_none(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    assert auth.teardown(auth_dir) is None
    assert not auth_dir.exists()
    # Host files are untouched.
    assert (home / ".claude/.credentials.json").is_file()


def test_default_auth_dir(home: Path) -> None:
    created = auth.setup()
    auth.teardown()
    assert not created.exists()


def test_caw_auth_dir_set_after_import(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = auth.setup()
    other = auth.setup(dest_dir=tmp_path / "env-auth")
    monkeypatch.setenv("CAW_AUTH_DIR", str(other))
    auth.teardown()
    assert not other.exists()
    assert default.exists()


def test_auth_dir_accepts_str(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    auth.teardown(str(auth_dir))
    assert not auth_dir.exists()


def test_missing_auth_dir_is_not_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="caw")
    auth.teardown(tmp_path / "never-created")
    assert any("nothing to remove" in r.getMessage() for r in caplog.records)


def test_legacy_symlink_is_refused_then_forced(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    # caw's old design replaced the host credential with a symlink into the auth dir.
    host = home / ".claude/.credentials.json"
    host.unlink()
    os.symlink(auth_dir / "claude/credentials.json", host)

    with pytest.raises(RuntimeError) as info:
        auth.teardown(auth_dir)
    err = info.value
    assert isinstance(err, auth.TeardownWouldOrphanSymlinksError)
    assert isinstance(err, auth.CawAuthError)
    assert str(host) in str(err)
    assert err.path == auth_dir
    assert [link for link, _ in err.links] == [host]
    assert err.links[0][1] == (auth_dir / "claude/credentials.json").resolve()
    assert "force=True" in err.hint
    assert auth_dir.is_dir() and host.is_symlink() and host.exists()

    auth.teardown(auth_dir, force=True)
    assert not auth_dir.exists()
    # The host link itself is never touched (it now dangles).
    assert host.is_symlink() and not host.exists()


def test_force_positional_like_the_documented_signature(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    host = home / ".gemini/oauth_creds.json"
    host.unlink()
    os.symlink(auth_dir / "gemini/oauth_creds.json", host)
    auth.teardown(auth_dir, True)
    assert not auth_dir.exists()


def test_never_removes_a_directory_that_is_not_an_auth_dir(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    for force in (False, True):
        with pytest.raises(auth.NotAnAuthDirError) as info:
            auth.teardown(precious, force=force)
        assert isinstance(info.value, auth.CawAuthError)
        assert str(precious) in str(info.value)
    assert (precious / "thesis.tex").read_text() == "..."


def test_top_level_alias(home: Path, auth_dir: Path) -> None:
    assert caw.auth_teardown is auth.teardown
    auth.setup(dest_dir=auth_dir)
    caw.auth_teardown(auth_dir)
    assert not auth_dir.exists()


@pytest.mark.parametrize("force", ["false", "False", 0, 1, None, "yes"])
def test_force_must_be_a_bool(home: Path, auth_dir: Path, force: object) -> None:
    auth.setup(dest_dir=auth_dir)
    with pytest.raises(TypeError, match="force must be a bool"):
        auth.teardown(auth_dir, force=force)  # type: ignore[arg-type]
    assert (auth_dir / "manifest.json").is_file(), "a refused call removed the auth dir"


def test_a_plain_manifest_json_is_not_an_auth_dir(tmp_path: Path) -> None:
    # A browser extension: `manifest.json` and its files.
    ext = tmp_path / "extension"
    ext.mkdir()
    (ext / "manifest.json").write_text('{"manifest_version": 3, "name": "x", "version": "1"}')
    (ext / "background.js").write_text("// mine")
    for force in (False, True):
        with pytest.raises(auth.NotAnAuthDirError, match="`background.js` is not something caw writes"):
            auth.teardown(ext, force=force)
    (ext / "background.js").unlink()
    with pytest.raises(auth.NotAnAuthDirError, match="`manifest.json` is not a caw manifest") as info:
        auth.teardown(ext, force=True)
    assert "dest_dir" not in info.value.hint and "`auth_dir`" in info.value.hint
    assert (ext / "manifest.json").is_file()


def test_a_newer_login_in_live_is_carried_to_the_host(home: Path, auth_dir: Path) -> None:
    # A container refreshed while no host sync ran: the newer login is only in live/.
    auth.setup(dest_dir=auth_dir)
    host = home / ".claude/.credentials.json"
    mode = host.stat().st_mode
    newer = {
        "claudeAiOauth": {
            "accessToken": "sk-ant-oat01-from-a-container",
            "refreshToken": "sk-ant-ort01-from-a-container",
            "expiresAt": int(time.time() * 1000) + 8 * 3600 * 1000,
        }
    }
    write_json(auth_dir / "live/claude/credentials.json", newer)
    codex_before = (home / ".codex/auth.json").read_bytes()
    write_json(auth_dir / "live/codex/auth.json", {})
    auth.teardown(auth_dir)
    assert not auth_dir.exists()
    assert json.loads(host.read_text()) == newer
    assert host.stat().st_mode == mode
    # A logged-out file is never carried.
    assert (home / ".codex/auth.json").read_bytes() == codex_before


def test_attached_containers_are_refused_then_forced(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    # What a container's guard does: a shared lock on live/ for as long as it runs.
    live = os.open(auth_dir / "live", os.O_RDONLY)
    try:
        fcntl.flock(live, fcntl.LOCK_SH)
        with pytest.raises(RuntimeError) as info:
            auth.teardown(auth_dir)
        err = info.value
        assert isinstance(err, auth.TeardownContainersAttachedError)
        assert isinstance(err, auth.CawAuthError)
        assert err.path == auth_dir
        holders = err.pids + [pid for pids in err.containers.values() for pid in pids]
        assert holders == [os.getpid()]
        assert f"pid {os.getpid()}" in str(err)
        assert "force=True" in err.hint
        assert auth_dir.is_dir()

        auth.teardown(auth_dir, force=True)
        assert not auth_dir.exists()
    finally:
        os.close(live)
