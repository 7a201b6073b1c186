"""The documented API surface: names, signatures, docstrings, type information."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import caw
from caw import _caw, auth


def params(fn: object) -> list[tuple[str, object, str]]:
    return [(p.name, p.default, p.kind.name) for p in inspect.signature(fn).parameters.values()]


def test_documented_signatures() -> None:
    pk = "POSITIONAL_OR_KEYWORD"
    kw = "KEYWORD_ONLY"
    assert params(auth.setup) == [
        ("agents", None, pk),
        ("source_home", None, pk),
        ("dest_dir", None, pk),
        ("container_home", None, kw),
        ("mount_point", None, kw),
        ("mode", None, kw),
        ("trust", None, kw),
        ("hold_refresh_token", False, kw),
    ]
    assert params(auth.get_status) == [("agents", None, pk), ("auth_dir", None, pk)]
    # The documented `auth_dir`, then caw's keyword-only additions.
    assert params(auth.get_docker_flags) == [
        ("auth_dir", None, pk),
        ("store", None, kw),
        ("store_key", None, kw),
    ]
    assert params(auth.teardown) == [("auth_dir", None, pk), ("force", False, pk)]


def test_top_level_re_exports() -> None:
    assert caw.auth is auth
    assert caw.auth_setup is auth.setup
    assert caw.auth_get_status is auth.get_status
    assert caw.auth_get_docker_flags is auth.get_docker_flags
    assert caw.auth_teardown is auth.teardown
    for name in caw.__all__:
        assert hasattr(caw, name)
    for name in auth.__all__:
        assert hasattr(auth, name)


def test_docstrings_match_the_documented_ones() -> None:
    assert inspect.getdoc(auth.setup).startswith(
        "Snapshot credentials and cleaned configs into an auth directory.\n\n"
        "Host credential files are read but not modified."
    )
    assert inspect.getdoc(auth.get_status).startswith("Return structured status of all managed auth files.")
    assert "Credential freshness is read from the host file directly" in inspect.getdoc(auth.get_status)
    assert inspect.getdoc(auth.get_docker_flags).startswith(
        "Return the Docker -v flags for mounting the auth directory and credentials."
    )
    assert inspect.getdoc(auth.teardown).startswith("Remove the auth directory.")
    assert inspect.getdoc(auth.AuthFileStatus).startswith("Status of a single managed auth file.")
    for fn, sections in [
        (auth.setup, ["Args:", "Returns:", "Raises:"]),
        (auth.get_status, ["Args:", "Returns:", "Raises:"]),
        (auth.get_docker_flags, ["Args:", "Returns:", "Raises:"]),
        (auth.teardown, ["Args:", "Raises:"]),
    ]:
        for section in sections:
            assert section in inspect.getdoc(fn), (fn.__name__, section)
    assert "TeardownWouldOrphanSymlinksError" in inspect.getdoc(auth.teardown)
    assert "TeardownContainersAttachedError" in inspect.getdoc(auth.teardown)
    assert "FileNotFoundError: If the manifest.json doesn't exist in auth_dir" in inspect.getdoc(auth.get_status)


def workspace_version() -> str:
    """`[workspace.package] version` of the Cargo.toml at the repository root."""
    text = (Path(__file__).parents[2] / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', section, re.MULTILINE)
    assert match, "no version in [workspace.package] of Cargo.toml"
    return match.group(1)


def test_version_is_the_crate_version() -> None:
    assert caw.__version__ == workspace_version()
    assert _caw.__version__ == workspace_version()


def test_typing_files_ship_with_the_package() -> None:
    pkg = Path(caw.__file__).parent
    assert (pkg / "py.typed").is_file()
    stub = (pkg / "_caw.pyi").read_text()
    # Every native function is in the stub, keyword-only.
    names = ("setup", "get_status", "get_docker_flags", "teardown", "host_sync")
    for name in names:
        assert callable(getattr(_caw, name))
        assert f"def {name}(" in stub
    assert stub.count("*,") == len(names)


def test_native_functions_are_keyword_only() -> None:
    import pytest

    with pytest.raises(TypeError):
        _caw.get_docker_flags("/tmp/x")  # type: ignore[misc]


def test_caw_auth_dir_is_read_at_call_time_not_import(tmp_path: Path) -> None:
    # In a fresh interpreter: import first, then set the variable.
    code = (
        "import os, caw\n"
        f"os.environ['CAW_AUTH_DIR'] = {str(tmp_path / 'set-later')!r}\n"
        "try:\n"
        "    caw.auth_get_status()\n"
        "except FileNotFoundError as e:\n"
        "    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith(f"no manifest at `{tmp_path / 'set-later' / 'manifest.json'}`")
