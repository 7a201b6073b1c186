"""``python -m caw auth sync``: the host sync that :func:`caw.auth.get_docker_flags`
starts in the background (the same one as ``caw auth sync``).

Only that command is here; the ``caw`` CLI has the others.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from caw import _caw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m caw")
    commands = parser.add_subparsers(dest="group", required=True)
    auth = commands.add_parser("auth").add_subparsers(dest="command", required=True)
    sync = auth.add_parser("sync", help="keep host credential files and the live copies equal")
    sync.add_argument("--auth-dir", default=None)
    sync.add_argument("--idle-exit", type=int, default=600, metavar="SECS")
    sync.add_argument(
        "--no-refresh",
        action="store_true",
        default=os.environ.get("CAW_NO_REFRESH", "") not in ("", "0", "false"),
    )
    sync.add_argument(
        "--no-verify",
        action="store_true",
        default=os.environ.get("CAW_NO_VERIFY", "") not in ("", "0", "false"),
        help="take containers' Claude and Codex logins without asking the provider whose they are",
    )
    sync.add_argument(
        "--store",
        default=os.environ.get("CAW_STORE") or None,
        metavar="URL",
        help="share logins with the user's other machines: etcd://HOST:PORT[,HOST:PORT...][/PREFIX]",
    )
    sync.add_argument(
        "--store-key",
        default=os.environ.get("CAW_STORE_KEY") or None,
        metavar="FILE",
        help="the store key every machine holds (caw auth store-key FILE)",
    )
    sync.add_argument(
        "--store-ca", default=os.environ.get("CAW_STORE_CA") or None, metavar="FILE"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    _caw.host_sync(
        auth_dir=args.auth_dir,
        idle_exit=max(args.idle_exit, 0),
        refresh=not args.no_refresh,
        verify=not args.no_verify,
        store=args.store,
        store_key=args.store_key,
        store_ca=args.store_ca,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
