"""Programmatic credential management for Docker containers.

Each agent's OAuth login stays in one file on the host. :func:`setup` stages
cleaned configs and a manifest in an auth directory; at ``docker run`` time
the host credential files are bind-mounted into the container
(:func:`get_docker_flags`), where a guard keeps the agent's copy and the host
file in sync, so a token refresh on either side does not log the other out.

These functions are re-exported at the top level of caw (as ``auth_setup``,
``auth_get_status``, ``auth_get_docker_flags`` and ``auth_teardown``) and also
live in ``caw.auth``.

The auth directory defaults to ``$CAW_AUTH_DIR`` when set (read at each call),
else ``~/.caw/auth/``. Progress and warnings go to the ``caw`` logger
(:mod:`logging`); nothing is printed. Failures raise the exceptions below,
all subclasses of :class:`CawAuthError`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

from caw import _caw
from caw.auth import _errors
from caw.auth._errors import *  # noqa: F403 (the exceptions: their one list is `_errors.__all__`)

__all__ = [
    "AuthFileStatus",
    "get_docker_flags",
    "get_status",
    "setup",
    "teardown",
]
__all__ += _errors.__all__

StrPath = Union[str, "os.PathLike[str]"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthFileStatus:
    """Status of a single managed auth file.

    Attributes:
        agent: Agent name, e.g. ``"claude"``.
        file: The file's path relative to the host home, e.g. ``".claude/.credentials.json"``.
        type: ``"credential"`` or ``"config"``.
        strategy: ``"bind"`` (bind-mounted from the host file) or ``"copy"``
            (staged in the auth directory and copied into the container).
        exists: Whether the authoritative copy exists: the host file for a
            credential, the staged file for a config.
        token_expiry: ``"valid (3h 5m remaining)"`` or ``"EXPIRED (2d 4h ago)"``,
            read from the host file; None for configs or when the expiry is unknown.
        source: Where the authoritative copy is, as ``caw auth status``
            shows it (``"host /home/me/.claude/.credentials.json"``).
        modified: Its modification time (timezone-aware), if it exists.
        expires_at: When the token expires (timezone-aware), if known.
        newest: Live mode, credentials: which of the host file and the
            live copy holds the newest login (``"same"``, ``"host"``,
            ``"live"``, ``"unknown"``).
        next_refresh: While the host sync refreshes this login: when it will
            next (timezone-aware); None when none is planned.
        last_refresh: When it last tried (timezone-aware).
        last_refresh_result: ``"ok"``, or why not (``"refresh refused
            (invalid_grant): log in again on the host"``).
        refresh_token_held: Whether containers get this login without its
            refresh token (``setup(hold_refresh_token=True)``).
    """

    agent: str
    file: str
    type: str
    strategy: str
    exists: bool
    token_expiry: Optional[str]
    source: Optional[str] = None
    modified: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    newest: Optional[str] = None
    next_refresh: Optional[datetime] = None
    last_refresh: Optional[datetime] = None
    last_refresh_result: Optional[str] = None
    refresh_token_held: bool = False


def _when(ms: Optional[int]) -> Optional[datetime]:
    """Milliseconds since the epoch as an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def setup(
    agents: Optional[List[str]] = None,
    source_home: Optional[StrPath] = None,
    dest_dir: Optional[StrPath] = None,
    *,
    container_home: Optional[str] = None,
    mount_point: Optional[str] = None,
    mode: Optional[str] = None,
    trust: Optional[Sequence[str]] = None,
    hold_refresh_token: bool = False,
) -> Path:
    """Snapshot credentials and cleaned configs into an auth directory.

    Host credential files are read but not modified. At container run time
    they are bind-mounted into the same paths under the mount point — see
    caw.auth.get_docker_flags.

    With every agent selected, agents that are not logged in on this machine
    are skipped with a warning on the ``caw`` logger. A new directory is
    built beside its path and renamed into place when complete. An existing
    one is updated in place, so that running containers keep their mounts:
    each new file replaces its old one whole, ``manifest.json`` last, and
    what it no longer lists is removed after it; a failure leaves the
    previous auth directory working. When ``dest_dir`` is None,
    ``$CAW_AUTH_DIR`` is used if set.

    Args:
        agents: List of agent names, or None / ["all"] for all agents.
        source_home: Home directory to read credentials from.
        dest_dir: Custom destination directory. Defaults to ~/.caw/auth/.
        container_home: The agent user's home in the container. Defaults to
            ``/home/playground``.
        mount_point: Where the auth directory is mounted in the container.
            Defaults to ``/tmp/caw_auth``.
        mode: How credentials reach containers: ``"live"`` (a live directory
            in the auth directory, shared by every container) or ``"bind"``
            (each host credential file bind-mounted). Defaults to caw's
            default mode. Either way the auth directory itself is mounted
            read-only.
        trust: More container directories (absolute paths, e.g.
            ``["/workspace"]``) to mark trusted for Claude and Codex, so
            neither asks whether to trust the folder there. The container
            home is always trusted.
        hold_refresh_token: Keep refresh tokens on the host: containers get
            each login with a marker in place of its refresh token, and only
            the host sync refreshes (live mode only). A compromised container
            then leaks only an access token that expires within hours; with
            the host sync stopped, containers lose the login at its next expiry.

    Returns:
        Path to the auth directory.

    Raises:
        UnknownAgentError: If an agent name is unknown (a ValueError whose
            message starts with ``Unknown agent``).
        NoUsableAgentError: If none of the selected agents has its required
            files; the message names what is missing.
        InvalidInputError: If a credential or config file cannot be parsed.
        NotAnAuthDirError: If dest_dir is a non-empty directory that is not
            a caw auth directory.
        InvalidOptionError: If mode is not ``"live"`` or ``"bind"``, or a
            path option is out of range (a ValueError).
    """
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    trusted = _strings("trust", trust)
    if not isinstance(hold_refresh_token, bool):
        raise TypeError(
            f"hold_refresh_token must be a bool, not {type(hold_refresh_token).__name__}"
        )
    return _caw.setup(
        agents=_agent_names(agents),
        source_home=_path_or_none(source_home),
        auth_dir=_path_or_none(dest_dir),
        container_home=container_home,
        mount_point=mount_point,
        mode=mode,
        trust=trusted,
        hold_refresh_token=hold_refresh_token,
    )


def get_status(
    agents: Optional[List[str]] = None,
    auth_dir: Optional[StrPath] = None,
) -> List[AuthFileStatus]:
    """Return structured status of all managed auth files.

    Credential freshness is read from the host file directly (the source of
    truth), not from the staged snapshot under auth_dir.

    Args:
        agents: Agent names to include, or None for all.
        auth_dir: Custom auth directory. Defaults to ~/.caw/auth/.

    Returns:
        List of AuthFileStatus for each managed file.

    Raises:
        FileNotFoundError: If the manifest.json doesn't exist in auth_dir
            (a NoManifestError).
        UnknownAgentError: If an agent name is unknown (a ValueError).
    """
    rows = _caw.get_status(agents=_agent_names(agents), auth_dir=_path_or_none(auth_dir))
    return [
        AuthFileStatus(
            *documented,
            source=source,
            modified=_when(modified),
            expires_at=_when(expires_at),
            newest=newest,
            next_refresh=_when(next_refresh),
            last_refresh=_when(last_refresh),
            last_refresh_result=last_result,
            refresh_token_held=held,
        )
        for documented, (
            source,
            modified,
            expires_at,
            newest,
            next_refresh,
            last_refresh,
            last_result,
            held,
        ) in rows
    ]


def get_docker_flags(
    auth_dir: Optional[StrPath] = None,
    *,
    store: Optional[str] = None,
    store_key: Optional[StrPath] = None,
) -> str:
    """Return the Docker -v flags for mounting the auth directory and credentials.

    Emits one directory bind mount for the staging area plus one file bind
    mount per credential, pointing directly at the host's original file. The
    credentials are never copied out of their original location.

    The auth directory is always mounted read-only (``:ro``). In live mode
    the second and last mount is its live directory (``:rw``) instead of the
    host credential files. Host paths come only from caw's list of agents,
    whatever the manifest says.

    Side effect, live mode: when no host sync runs for the auth directory,
    one is started in the background (``python -m caw auth sync``, which
    keeps the host files and the live directory equal and refreshes each
    login ahead of its agents) and outlives this call; it exits by itself
    after 10 minutes without a container. ``CAW_NO_SYNC=1`` opts out.

    Args:
        auth_dir: Custom auth directory. Defaults to ~/.caw/auth/.
        store: Join the host sync it starts to the store shared by your
            machines (``etcd://HOST:PORT[,HOST:PORT...][/PREFIX]``; see the
            README's *Several machines*). Needs ``store_key``.
        store_key: The store key file (``caw auth store-key FILE``).

    Returns:
        A space-separated string of Docker ``-v`` flags (each with ``,z``
        added on a host where SELinux enforces, as ``caw auth docker-flags``
        does), e.g.
        ``-v /.../.caw/auth:/tmp/caw_auth:ro -v /.../.claude/.credentials.json:/tmp/caw_auth/claude/credentials.json:rw``

    Raises:
        FileNotFoundError: If the manifest.json doesn't exist in auth_dir
            (a NoManifestError), or a credential it names no longer exists
            on the host (a MissingBindSourceError).
        UnsafeMountPathError: If a path contains white space or ``:`` and
            cannot be passed in a ``-v`` flag (a ValueError).
        InvalidManifestError: If the manifest names a file that is not the
            credential caw knows for that agent (a ValueError).
    """
    # The host sync runs as this interpreter with this package (`python -m
    # caw auth sync`), so it has the refresher: the auth dir's bin/caw is
    # the container build, which has none.
    return _caw.get_docker_flags(
        auth_dir=_path_or_none(auth_dir),
        sync_command=[sys.executable, "-m", "caw"],
        store=store,
        store_key=_path_or_none(store_key),
    )


def teardown(auth_dir: Optional[StrPath] = None, force: bool = False) -> None:
    """Remove the auth directory. Host credential files are left alone, but
    for one thing: a newer login that only the live directory holds (a
    container refreshed while no host sync ran) is first carried to the host
    file it belongs to, by temp file and rename, keeping its mode and owner.
    Nothing older, logged out or of another account is ever carried, and a
    missing host file is not created.

    Refuses to run if any host credential file is still a symlink into
    auth_dir (legacy state from the old symlink-based design), since
    removing the directory would leave dangling symlinks with no backup,
    and while containers are attached to the auth directory (their guards
    hold a lock on its ``live/``), since they would be cut off from every
    refresh. Pass force=True to override both.

    A missing auth directory is not an error. A directory that is not a caw
    auth directory (its ``manifest.json`` is missing or not caw's, or it
    holds anything caw does not write) is never removed, ``force`` or not.

    Args:
        auth_dir: Custom auth directory. Defaults to ~/.caw/auth/.
        force: Delete even if host symlinks point into auth_dir or
            containers are attached. Must be a bool: ``force="false"`` is a
            TypeError, not a forced teardown.

    Raises:
        TeardownWouldOrphanSymlinksError: If host symlinks point into the
            auth directory and force is False.
        TeardownContainersAttachedError: If containers are attached to the
            auth directory and force is False (a RuntimeError; it names them).
        NotAnAuthDirError: If auth_dir is not a caw auth directory.
        TypeError: If force is not a bool.
    """
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, not {type(force).__name__}")
    outcome, path = _caw.teardown(auth_dir=_path_or_none(auth_dir), force=force)
    if outcome == "missing":
        _log.info("no auth dir at `%s`; nothing to remove", path)
    elif outcome == "removed":
        _log.info("removed auth dir `%s`", path)


def _agent_names(agents: Optional[Iterable[str]]) -> List[str]:
    """The names as a list; a single string is one name (or a comma-separated list)."""
    if agents is None:
        return []
    if isinstance(agents, str):
        return [agents]
    names = list(agents)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"agent names must be str, not {type(name).__name__}")
    return names


def _strings(name: str, values: Optional[Iterable[str]]) -> List[str]:
    """A list of str (a single str is refused: it would be a list of characters)."""
    if values is None:
        return []
    if isinstance(values, str):
        raise TypeError(f"{name} must be a list of str, not a str")
    out = list(values)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"{name} entries must be str, not {type(v).__name__}")
    return out


def _path_or_none(path: Optional[StrPath]) -> Optional[str]:
    """``str`` or ``os.PathLike`` (of str or bytes) as a str; None stays None."""
    if path is None:
        return None
    return os.fsdecode(os.fspath(path))
