"""Nothing on stdout; progress and warnings on the `caw` logger."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from caw import auth


def caw_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records
        if (r.name == "caw" or r.name.startswith("caw.")) and r.levelno == level
    ]


def test_setup_prints_nothing_to_stdout(home: Path, auth_dir: Path, capfd: pytest.CaptureFixture) -> None:
    auth.setup(dest_dir=auth_dir)
    auth.get_status(auth_dir=auth_dir)
    auth.get_docker_flags(auth_dir)
    auth.teardown(auth_dir)
    out, _ = capfd.readouterr()
    assert out == ""


def test_skipped_agents_warn_on_the_caw_logger(
    home: Path, auth_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="caw")
    auth.setup(dest_dir=auth_dir)

    warnings = caw_records(caplog, logging.WARNING)
    messages = [r.getMessage() for r in warnings]
    assert messages == [
        f"skipping opencode: missing `{home / '.local/share/opencode/auth.json'}`",
        f"skipping qwen: missing `{home / '.qwen/oauth_creds.json'}`",
    ]
    assert all(r.name == "caw.auth.setup" for r in warnings)
    infos = [r.getMessage() for r in caw_records(caplog, logging.INFO)]
    assert f"auth dir written to `{auth_dir}`" in infos


def test_logger_level_is_respected(home: Path, auth_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="caw")
    auth.setup(dest_dir=auth_dir)
    assert caw_records(caplog, logging.WARNING) == []
    assert caw_records(caplog, logging.INFO) == []


def test_logging_from_other_threads(home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The library runs with the GIL released and re-attaches to log; two
    # threads doing so while the main thread also calls in must not deadlock.
    caplog.set_level(logging.INFO, logger="caw")
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            for _ in range(5):
                auth.setup(dest_dir=tmp_path / f"auth-{n}")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for _ in range(5):
        auth.setup(dest_dir=tmp_path / "auth-main")
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    # 3 callers x 5 setups x 2 skipped agents
    assert len(caw_records(caplog, logging.WARNING)) == 3 * 5 * 2


def test_unconfigured_logging_warns_on_stderr_never_stdout(home: Path, auth_dir: Path) -> None:
    # A fresh interpreter with no logging configuration, as in a user's script.
    proc = subprocess.run(
        [sys.executable, "-c", f"import caw; caw.auth_setup(dest_dir={str(auth_dir)!r})"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == ""
    assert "skipping opencode" in proc.stderr
    assert (auth_dir / "manifest.json").is_file()
