"""caw.auth.setup: defaults, arguments, what it writes and what it leaves alone."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import caw
from caw import auth
from conftest import add_claude, add_codex, add_gemini


def manifest(auth_dir: Path) -> dict:
    return json.loads((auth_dir / "manifest.json").read_text())


def test_defaults_write_every_logged_in_agent_to_home_caw_auth(home: Path) -> None:
    result = auth.setup()

    assert isinstance(result, Path)
    assert result == home / ".caw" / "auth"
    data = manifest(result)
    assert data["version"] == 1
    assert data["host_home"] == str(home)
    assert list(data["agents"]) == ["claude", "codex", "gemini"]
    assert (result / "claude/credentials.json").is_file()
    assert stat.S_IMODE(result.stat().st_mode) == 0o700


def test_agents_all_is_the_same_as_none(home: Path, auth_dir: Path) -> None:
    auth.setup(["all"], dest_dir=auth_dir)
    assert list(manifest(auth_dir)["agents"]) == ["claude", "codex", "gemini"]


def test_agents_selects_only_those(home: Path, auth_dir: Path) -> None:
    auth.setup(["gemini", "claude"], dest_dir=auth_dir)
    # Registry order, whatever the order given.
    assert list(manifest(auth_dir)["agents"]) == ["claude", "gemini"]


def test_agents_accepts_a_tuple_a_single_name_and_commas(home: Path, auth_dir: Path) -> None:
    auth.setup(("codex",), dest_dir=auth_dir)
    assert list(manifest(auth_dir)["agents"]) == ["codex"]
    auth.setup("claude", dest_dir=auth_dir)
    assert list(manifest(auth_dir)["agents"]) == ["claude"]
    auth.setup(["claude,codex"], dest_dir=auth_dir)
    assert list(manifest(auth_dir)["agents"]) == ["claude", "codex"]


def test_agents_must_be_strings(home: Path, auth_dir: Path) -> None:
    with pytest.raises(TypeError, match="agent names must be str"):
        auth.setup([1], dest_dir=auth_dir)  # type: ignore[list-item]


@pytest.mark.parametrize("kind", [str, Path, "pathlike"])
def test_dest_dir_accepts_str_and_pathlike(home: Path, tmp_path: Path, kind: object) -> None:
    target = tmp_path / "custom" / "auth"

    class PathLike:
        def __fspath__(self) -> str:
            return str(target)

    arg = PathLike() if kind == "pathlike" else kind(target)  # type: ignore[operator]
    assert auth.setup(dest_dir=arg) == target
    assert (target / "manifest.json").is_file()


def test_relative_dest_dir_is_returned_absolute(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = auth.setup(dest_dir="rel-auth")
    assert result == tmp_path / "rel-auth"
    assert result.is_absolute()


def test_dest_dir_tilde_is_expanded(home: Path) -> None:
    assert auth.setup(dest_dir="~/elsewhere") == home / "elsewhere"


def test_caw_auth_dir_set_after_import_is_honoured(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "from-env-1"
    monkeypatch.setenv("CAW_AUTH_DIR", str(first))
    assert auth.setup() == first

    # Changed again between calls: read at each call, never cached.
    second = tmp_path / "from-env-2"
    monkeypatch.setenv("CAW_AUTH_DIR", str(second))
    assert auth.setup() == second
    assert (first / "manifest.json").is_file() and (second / "manifest.json").is_file()
    assert not (home / ".caw").exists()


def test_caw_auth_dir_tilde_is_expanded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAW_AUTH_DIR", "~/via-env")
    assert auth.setup() == home / "via-env"


def test_explicit_dest_dir_wins_over_caw_auth_dir(
    home: Path, tmp_path: Path, auth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAW_AUTH_DIR", str(tmp_path / "ignored"))
    assert auth.setup(dest_dir=auth_dir) == auth_dir
    assert not (tmp_path / "ignored").exists()


def test_source_home_reads_another_home(env: Path, tmp_path: Path, auth_dir: Path) -> None:
    other = tmp_path / "other-home"
    other.mkdir()
    add_claude(other)
    # HOME (env) has no logins at all; only source_home does.
    for arg in (str(other), other):
        auth.setup(source_home=arg, dest_dir=auth_dir)
        data = manifest(auth_dir)
        assert data["host_home"] == str(other)
        assert list(data["agents"]) == ["claude"]


def test_source_home_none_reads_home_at_call_time(
    tmp_path: Path, auth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = tmp_path / "later-home"
    later.mkdir()
    add_gemini(later)
    monkeypatch.setenv("HOME", str(later))
    auth.setup(dest_dir=auth_dir)
    assert manifest(auth_dir)["host_home"] == str(later)


def test_container_home_and_mount_point_are_keyword_only_options(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude"], dest_dir=auth_dir, container_home="/home/agent", mount_point="/run/caw")
    data = manifest(auth_dir)
    assert data["container_home"] == "/home/agent"
    assert data["mount_point"] == "/run/caw"
    config = json.loads((auth_dir / "claude/config.json").read_text())
    assert list(config["projects"]) == ["/home/agent"]
    with pytest.raises(TypeError):
        auth.setup(None, None, auth_dir, "/home/agent")  # type: ignore[misc]


def test_defaults_are_documented_ones(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    data = manifest(auth_dir)
    assert data["container_home"] == "/home/playground"
    assert data["mount_point"] == "/tmp/caw_auth"


def test_configs_are_cleaned_of_host_paths(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    claude = (auth_dir / "claude/config.json").read_text()
    codex = (auth_dir / "codex/config.toml").read_text()
    assert "secret-project" not in claude
    assert "secret-project" not in codex
    assert 'model = "gpt-5-codex"' in codex


def test_host_files_are_not_modified(home: Path, auth_dir: Path) -> None:
    files = sorted(p for p in home.rglob("*") if p.is_file())

    def snapshot() -> list:
        return [(p, p.read_bytes(), os.stat(p)) for p in files]

    before = snapshot()
    auth.setup(dest_dir=auth_dir)
    for (path, data, st), (_, data2, st2) in zip(before, snapshot()):
        assert data == data2, path
        assert (st.st_mode, st.st_ino, st.st_mtime_ns) == (st2.st_mode, st2.st_ino, st2.st_mtime_ns), path


def test_rerun_replaces_the_auth_dir(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    auth.setup(["gemini"], dest_dir=auth_dir)
    assert list(manifest(auth_dir)["agents"]) == ["gemini"]
    assert not (auth_dir / "claude").exists()


def test_failed_setup_leaves_previous_auth_dir_as_it_was(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    before = {p: p.read_bytes() for p in auth_dir.rglob("*") if p.is_file()}
    (home / ".codex/auth.json").write_text("{ not json")
    with pytest.raises(auth.InvalidInputError):
        auth.setup(dest_dir=auth_dir)
    after = {p: p.read_bytes() for p in auth_dir.rglob("*") if p.is_file()}
    assert before == after


def test_top_level_alias_is_the_same_function(home: Path, auth_dir: Path) -> None:
    assert caw.auth_setup is auth.setup
    assert caw.auth_setup(dest_dir=auth_dir) == auth_dir


def test_expired_and_valid_logins_are_both_set_up(env: Path, auth_dir: Path) -> None:
    add_claude(env, expires_at_ms=1)
    add_codex(env, exp_s=1)
    auth.setup(dest_dir=auth_dir)
    assert list(manifest(auth_dir)["agents"]) == ["claude", "codex"]


def test_mode_is_keyword_only_and_recorded(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir, mode="bind")
    assert manifest(auth_dir)["mode"] == "bind"
    assert not (auth_dir / "live").exists()
    auth.setup(dest_dir=auth_dir, mode="live")
    assert manifest(auth_dir)["mode"] == "live"
    live = auth_dir / "live/claude/credentials.json"
    assert live.read_bytes() == (home / ".claude/.credentials.json").read_bytes()
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    assert stat.S_IMODE((auth_dir / "live").stat().st_mode) == 0o700
    with pytest.raises(TypeError):
        auth.setup(None, None, auth_dir, None, None, "live")  # type: ignore[misc]


def test_default_mode_is_written(home: Path, auth_dir: Path) -> None:
    auth.setup(dest_dir=auth_dir)
    assert manifest(auth_dir)["mode"] in ("live", "bind")


@pytest.mark.parametrize("mode", ["copy", "LIVE", ""])
def test_unknown_mode_is_a_value_error_naming_mode(home: Path, auth_dir: Path, mode: str) -> None:
    with pytest.raises(ValueError, match="invalid mode") as info:
        auth.setup(dest_dir=auth_dir, mode=mode)
    assert isinstance(info.value, auth.InvalidOptionError)
    assert info.value.option == "mode"
    assert not auth_dir.exists()


def test_mode_must_be_a_str(home: Path, auth_dir: Path) -> None:
    with pytest.raises(TypeError, match="mode must be a str"):
        auth.setup(dest_dir=auth_dir, mode=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("agents", [["bogus"], ["all", "bogus"], ["all,bogus"], "claude,bogus"])
def test_agents_must_be_known(home: Path, auth_dir: Path, agents: object) -> None:
    with pytest.raises(ValueError) as info:
        auth.setup(agents, dest_dir=auth_dir)  # type: ignore[arg-type]
    assert str(info.value).startswith("Unknown agent `bogus`")
    assert not auth_dir.exists()


@pytest.mark.parametrize("option", ["mount_point", "container_home"])
@pytest.mark.parametrize("value", ["/tmp/a b", "/tmp/a:b", "/tmp/a,b"])
def test_container_paths_docker_cannot_carry_are_refused(
    home: Path, auth_dir: Path, option: str, value: str
) -> None:
    with pytest.raises(auth.InvalidOptionError, match=f"invalid {option} ") as info:
        auth.setup(dest_dir=auth_dir, **{option: value})
    assert info.value.option == option
    assert not auth_dir.exists()


def test_trust_marks_more_container_dirs_trusted(home: Path, auth_dir: Path) -> None:
    auth.setup(["claude", "codex"], dest_dir=auth_dir, trust=["/workspace", "/srv/app/"])
    claude = json.loads((auth_dir / "claude/config.json").read_text())
    for d in ("/home/playground", "/workspace", "/srv/app"):
        assert claude["projects"][d]["hasTrustDialogAccepted"] is True, d
    codex = (auth_dir / "codex/config.toml").read_text()
    for d in ("/home/playground", "/workspace", "/srv/app"):
        assert f'[projects."{d}"]\ntrust_level = "trusted"' in codex, codex


def test_trust_entries_are_checked(home: Path, auth_dir: Path) -> None:
    with pytest.raises(TypeError, match="list of str"):
        auth.setup(dest_dir=auth_dir, trust="/workspace")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be str"):
        auth.setup(dest_dir=auth_dir, trust=[1])  # type: ignore[list-item]
    with pytest.raises(auth.InvalidOptionError, match="trust") as exc:
        auth.setup(dest_dir=auth_dir, trust=["relative/dir"])
    assert isinstance(exc.value, ValueError)
    assert not auth_dir.exists()
