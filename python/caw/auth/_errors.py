"""Exceptions raised by :mod:`caw.auth`.

Every failure of a caw operation raises a :class:`CawAuthError`. Each specific
class also derives from the built-in exception a caller would naturally catch,
so ``except FileNotFoundError`` (no manifest), ``except ValueError`` (unknown
agent) and ``except RuntimeError`` (teardown refused) keep working.

Messages name the path or name involved and never contain the contents of a
credential. Where there is an obvious next step it is in ``hint`` (and shown
as a note in tracebacks on Python 3.11+, a second message line before that).

Failures of the operating system itself (permission denied, disk full) are
raised as the built-in :class:`OSError` subclass for them, with the path in
the message, as from any Python file function.

The native module (crates/caw-python/src/errors.rs) creates these; that is the
one place where library errors are mapped to classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

__all__ = [
    "CawAuthError",
    "InvalidInputError",
    "InvalidManifestError",
    "InvalidOptionError",
    "MissingBindSourceError",
    "NoManifestError",
    "NoUsableAgentError",
    "NotAnAuthDirError",
    "TeardownContainersAttachedError",
    "TeardownWouldOrphanSymlinksError",
    "UnknownAgentError",
    "UnsafeMountPathError",
]


class CawAuthError(Exception):
    """Base class of every failed ``caw.auth`` operation.

    Attributes:
        hint: A one-line suggestion for what to do next, or None.
        path: The file or directory involved, where there is one.
    """

    hint: Optional[str] = None
    path: Optional[Path] = None


class NoManifestError(CawAuthError, FileNotFoundError):
    """The auth directory has no ``manifest.json``: run ``setup`` first."""


class UnknownAgentError(CawAuthError, ValueError):
    """An agent name that is neither ``"all"`` nor a known agent.

    The message starts with ``Unknown agent`` and lists the known agents.

    Attributes:
        agent: The name as given.
        known: Every name that would have been accepted.
    """

    agent: str
    known: List[str]


class NoUsableAgentError(CawAuthError):
    """None of the selected agents has its required files in the source home.

    Attributes:
        path: The home that was searched.
        missing: For each selected agent, the missing files relative to ``path``.
    """

    missing: Dict[str, List[str]]


class TeardownWouldOrphanSymlinksError(CawAuthError, RuntimeError):
    """Teardown refused: host files are symlinks into the auth directory.

    caw's older design replaced host credential files with symlinks into the
    auth directory; removing it would leave them dangling with no copy left.
    Replace each link with a copy of its target, or pass ``force=True``.

    Attributes:
        path: The auth directory.
        links: ``(link, resolved target)`` pairs.
    """

    links: List[Tuple[Path, Path]]


class TeardownContainersAttachedError(CawAuthError, RuntimeError):
    """Teardown refused: containers are attached to the auth directory.

    Each running container's guard holds a lock on the auth directory's
    ``live/``; removing it would cut them off from every refresh. Stop them,
    or pass ``force=True`` (a newer login in ``live/`` is still carried to
    the host first; the containers keep the login they have).

    Attributes:
        path: The auth directory.
        containers: Short Docker container id -> the pids holding the lock in it.
        pids: Holders of no known container.
    """

    containers: Dict[str, List[int]]
    pids: List[int]


class InvalidManifestError(CawAuthError, ValueError):
    """``manifest.json`` exists but is not a valid version 1 manifest.

    Attributes:
        path: The manifest file.
        field: The offending field, e.g. ``agents.claude.files[0].src``.
    """

    field: str


class InvalidInputError(CawAuthError, ValueError):
    """A host credential or config file could not be parsed (``path`` names it)."""


class NotAnAuthDirError(CawAuthError):
    """A directory caw would replace or remove is not a caw auth directory.

    An auth directory has a valid caw ``manifest.json`` and holds only what
    caw writes. caw never replaces or removes anything else (a project, a
    browser extension's ``manifest.json``), ``force`` or not; the message
    says what was found.
    """


class MissingBindSourceError(CawAuthError, FileNotFoundError):
    """A credential named by the manifest no longer exists on the host.

    Docker would create a root-owned directory in its place.

    Attributes:
        path: The missing host file.
        agent: The agent it belongs to.
    """

    agent: str


class UnsafeMountPathError(CawAuthError, ValueError):
    """A path that cannot be passed safely in a ``docker run -v`` flag."""


class InvalidOptionError(CawAuthError, ValueError):
    """An argument value caw cannot use, e.g. a ``source_home`` that is not a directory.

    Attributes:
        option: The argument's name.
        value: The value given.
    """

    option: str
    value: str


# Shown (and pickled) as `caw.auth.NoManifestError`, where users import them from.
for _name in __all__:
    _cls = globals()[_name]
    _cls.__module__ = "caw.auth"
del _cls, _name
