"""examples/auth.py runs standalone and shows the documented workflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "auth.py"


def run(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "HOME": str(env_home)}
    env.pop("CAW_AUTH_DIR", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_example_on_a_home_it_builds(env: Path) -> None:
    proc = run(env_home=env)
    assert proc.returncode == 0, proc.stderr
    assert "valid (" in proc.stdout and "EXPIRED (" in proc.stdout
    assert "docker run -v " in proc.stdout
    assert "removed: True" in proc.stdout
    assert "skipping opencode" in proc.stderr
    # Nothing was written to the (empty) HOME.
    assert list(env.iterdir()) == []


def test_example_on_a_given_home(home: Path) -> None:
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    proc = run("--home", str(home), "--agents", "claude", "codex", env_home=home)
    assert proc.returncode == 0, proc.stderr
    # Live mode: the auth dir read-only, its live directory read-write.
    assert ":/tmp/caw_auth:ro -v " in proc.stdout and "/live:/tmp/caw_auth/live:rw" in proc.stdout
    assert "gemini" not in proc.stdout
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


@pytest.mark.skipif(
    not (EXAMPLE.parent / "home" / ".claude.json").is_file(), reason="no shipped example home"
)
def test_example_on_the_shipped_example_home(env: Path) -> None:
    proc = run("--home", str(EXAMPLE.parent / "home"), env_home=env)
    assert proc.returncode == 0, proc.stderr
    assert "removed: True" in proc.stdout
