"""The exception hierarchy, and what each failure of setup raises."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from caw import auth
from conftest import SECRETS, add_claude

# (class, built-in bases a caller may catch instead)
HIERARCHY = [
    (auth.NoManifestError, (FileNotFoundError,)),
    (auth.UnknownAgentError, (ValueError,)),
    (auth.NoUsableAgentError, ()),
    (auth.TeardownWouldOrphanSymlinksError, (RuntimeError,)),
    (auth.TeardownContainersAttachedError, (RuntimeError,)),
    (auth.InvalidManifestError, (ValueError,)),
    (auth.InvalidInputError, (ValueError,)),
    (auth.NotAnAuthDirError, ()),
    (auth.MissingBindSourceError, (FileNotFoundError,)),
    (auth.UnsafeMountPathError, (ValueError,)),
    (auth.InvalidOptionError, (ValueError,)),
]


@pytest.mark.parametrize("cls,bases", HIERARCHY, ids=lambda v: getattr(v, "__name__", ""))
def test_every_error_is_a_caw_auth_error_and_its_builtin(cls: type, bases: tuple) -> None:
    assert issubclass(cls, auth.CawAuthError)
    assert issubclass(cls, Exception) and not issubclass(cls, SystemExit)
    for base in bases:
        assert issubclass(cls, base)
    assert cls.__module__ == "caw.auth"
    assert cls.__name__ in auth.__all__


def test_errors_pickle(tmp_path: Path) -> None:
    with pytest.raises(auth.NoManifestError) as info:
        auth.get_status(auth_dir=tmp_path)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is auth.NoManifestError
    assert str(copy) == str(info.value)
    assert copy.path == info.value.path


def test_unknown_agent_in_setup(home: Path, auth_dir: Path) -> None:
    with pytest.raises(ValueError) as info:
        auth.setup(["claude", "cursor"], dest_dir=auth_dir)
    err = info.value
    assert str(err).startswith("Unknown agent")
    assert isinstance(err, auth.UnknownAgentError)
    assert err.agent == "cursor"
    assert err.known == ["claude", "codex", "opencode", "gemini", "qwen"]
    assert not auth_dir.exists()


def test_no_usable_agent_names_what_is_missing(env: Path, auth_dir: Path) -> None:
    with pytest.raises(auth.NoUsableAgentError) as info:
        auth.setup(dest_dir=auth_dir)
    err = info.value
    message = str(err)
    assert str(env) in message
    for missing in (".claude/.credentials.json", ".codex/auth.json", ".gemini/oauth_creds.json",
                    ".qwen/oauth_creds.json", ".local/share/opencode/auth.json"):
        assert missing in message
    assert err.path == env
    # Claude reads `.claude/.config.json` when `.claude.json` is missing.
    assert err.missing["claude"] == [
        ".claude/.credentials.json",
        ".claude.json or .claude/.config.json",
    ]
    assert list(err.missing) == ["claude", "codex", "opencode", "gemini", "qwen"]
    assert "source_home" in err.hint
    assert not auth_dir.exists()


def test_no_usable_agent_for_a_selected_agent(home: Path, auth_dir: Path) -> None:
    with pytest.raises(auth.NoUsableAgentError, match="qwen is missing .qwen/oauth_creds.json"):
        auth.setup(["qwen"], dest_dir=auth_dir)


def test_claude_needs_both_files(env: Path, auth_dir: Path) -> None:
    add_claude(env)
    (env / ".claude.json").unlink()
    with pytest.raises(auth.NoUsableAgentError, match=r"claude is missing \.claude\.json"):
        auth.setup(["claude"], dest_dir=auth_dir)


def test_unparsable_credential_names_the_file_and_not_its_contents(home: Path, auth_dir: Path) -> None:
    cred = home / ".claude/.credentials.json"
    text = cred.read_text()
    cred.write_text(text[: len(text) // 2])  # a half-written refresh
    with pytest.raises(ValueError) as info:
        auth.setup(dest_dir=auth_dir)
    err = info.value
    assert isinstance(err, auth.InvalidInputError)
    assert str(cred) in str(err)
    assert err.path == cred
    rendered = "\n".join([str(err), repr(err), err.hint or "", *getattr(err, "__notes__", [])])
    for secret in SECRETS:
        assert secret not in rendered


def test_source_home_that_is_not_a_directory(tmp_path: Path, auth_dir: Path) -> None:
    missing = tmp_path / "no-such-home"
    with pytest.raises(ValueError) as info:
        auth.setup(source_home=missing, dest_dir=auth_dir)
    err = info.value
    assert isinstance(err, auth.InvalidOptionError)
    assert str(err) == f"invalid source_home `{missing}`: is not a directory"
    assert err.option == "source_home"
    assert err.value == str(missing)


def test_relative_container_home_is_refused(home: Path, auth_dir: Path) -> None:
    with pytest.raises(auth.InvalidOptionError, match="container_home"):
        auth.setup(dest_dir=auth_dir, container_home="relative/home")


def test_setup_refuses_to_replace_a_foreign_directory(home: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(auth.NotAnAuthDirError, match="not a caw auth dir") as info:
        auth.setup(dest_dir=foreign)
    assert info.value.path == foreign
    assert (foreign / "notes.txt").read_text() == "mine"


def test_hint_is_an_attribute_and_shown_with_the_error(tmp_path: Path) -> None:
    with pytest.raises(auth.NoManifestError) as info:
        auth.get_status(auth_dir=tmp_path)
    err = info.value
    assert err.hint == "run `caw.auth.setup()` (or `caw auth setup`) first"
    if sys.version_info >= (3, 11):
        assert err.__notes__ == [f"hint: {err.hint}"]
        assert str(err) == f"no manifest at `{tmp_path / 'manifest.json'}`"
    else:
        assert str(err).endswith(f"\nhint: {err.hint}")


def test_os_errors_are_builtin_os_errors_with_the_path(home: Path, tmp_path: Path) -> None:
    # A file where the auth dir's parent should be: creating it fails in the OS.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(OSError) as info:
        auth.setup(dest_dir=blocker / "auth")
    assert not isinstance(info.value, auth.CawAuthError)
    assert str(blocker) in str(info.value)


def test_hints_speak_python_not_the_command_line(home: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "project"
    (foreign / "node_modules").mkdir(parents=True)
    hints = []
    with pytest.raises(auth.NotAnAuthDirError, match="`node_modules` is not something caw writes") as info:
        auth.setup(dest_dir=foreign)
    assert "`dest_dir`" in info.value.hint
    hints.append(info.value.hint)
    with pytest.raises(auth.NotAnAuthDirError) as info:
        auth.teardown(foreign, force=True)
    assert "`auth_dir`" in info.value.hint
    hints.append(info.value.hint)
    with pytest.raises(auth.NoUsableAgentError) as info:
        auth.setup(source_home=tmp_path, dest_dir=tmp_path / "auth")
    assert "`source_home`" in info.value.hint
    hints.append(info.value.hint)
    spaced = tmp_path / "my auth"
    auth.setup(dest_dir=spaced)
    with pytest.raises(auth.UnsafeMountPathError) as info:
        auth.get_docker_flags(spaced)
    # Python has no `format` option: the hint does not offer one.
    assert "format" not in info.value.hint
    hints.append(info.value.hint)
    for hint in hints:
        assert "--" not in hint, hint
        assert "caw auth setup`" not in hint or "caw.auth.setup()" in hint, hint


def test_invalid_option_names_the_keyword(home: Path, auth_dir: Path) -> None:
    with pytest.raises(auth.InvalidOptionError) as info:
        auth.setup(dest_dir=auth_dir, mount_point="/tmp/a b")
    assert str(info.value) == "invalid mount_point `/tmp/a b`: must not contain white space"
    assert info.value.option == "mount_point"
    assert info.value.value == "/tmp/a b"
