"""Native functions behind :mod:`caw.auth` (built from crates/caw-python).

Private: use :mod:`caw.auth`. Every option is keyword-only; ``None`` means the
library default, read from the environment at call time. Failures raise the
exceptions in :mod:`caw.auth` (see ``caw/auth/_errors.py``).
"""

from os import PathLike
from pathlib import Path
from typing import Literal, Optional, Sequence, Tuple, Union

_Path = Union[str, "PathLike[str]"]

__version__: str

def setup(
    *,
    agents: Sequence[str],
    source_home: Optional[_Path] = None,
    auth_dir: Optional[_Path] = None,
    container_home: Optional[str] = None,
    mount_point: Optional[str] = None,
    mode: Optional[Literal["live", "bind"]] = None,
    trust: Sequence[str] = (),
    hold_refresh_token: bool = False,
) -> Path:
    """Write a new auth dir; returns its absolute path."""

def get_status(
    *,
    agents: Sequence[str],
    auth_dir: Optional[_Path] = None,
) -> list[
    Tuple[
        Tuple[str, str, str, str, bool, Optional[str]],
        Tuple[
            str, Optional[int], Optional[int], Optional[str], Optional[int],
            Optional[int], Optional[str], bool,
        ],
    ]
]:
    """One pair of tuples per managed file: ``(agent, file, type, strategy,
    exists, token_expiry)`` and ``(source, modified_ms, expires_at_ms, newest,
    next_refresh_ms, last_refresh_ms, last_refresh_result, refresh_token_held)``."""

def get_docker_flags(
    *,
    auth_dir: Optional[_Path] = None,
    sync_command: Sequence[str] = (),
    store: Optional[str] = None,
    store_key: Optional[_Path] = None,
) -> str:
    """The ``docker run`` ``-v`` flags for an auth dir, on one line; starts the
    host sync with ``sync_command`` when none runs."""

def host_sync(
    *,
    auth_dir: Optional[_Path] = None,
    idle_exit: int = 600,
    refresh: bool = True,
    verify: bool = True,
    store: Optional[str] = None,
    store_key: Optional[_Path] = None,
    store_ca: Optional[_Path] = None,
) -> str:
    """The host sync in the foreground until stopped; returns why it ended."""

def teardown(
    *,
    auth_dir: Optional[_Path] = None,
    force: bool = False,
) -> Tuple[Literal["removed", "missing", "would_remove", "done"], Optional[Path]]:
    """Remove an auth dir; returns what happened and the path."""
