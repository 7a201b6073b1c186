"""caw: carry coding agents' OAuth logins into Docker containers.

The credential functions live in :mod:`caw.auth`; the documented ones are also
re-exported here as ``auth_setup``, ``auth_get_status``, ``auth_get_docker_flags``
and ``auth_teardown``.
"""

from caw import auth
from caw._caw import __version__
from caw.auth import get_docker_flags as auth_get_docker_flags
from caw.auth import get_status as auth_get_status
from caw.auth import setup as auth_setup
from caw.auth import teardown as auth_teardown

__all__ = [
    "__version__",
    "auth",
    "auth_get_docker_flags",
    "auth_get_status",
    "auth_setup",
    "auth_teardown",
]
