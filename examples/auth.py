#!/usr/bin/env python3
"""The documented `caw.auth` workflow, end to end, without touching your real auth dir.

    python examples/auth.py                      # on a made-up home it builds itself
    python examples/auth.py --home examples/home # on the shipped example home
    python examples/auth.py --home ~             # on your own logins (read only)

It snapshots the home's logins into a temporary auth directory, prints the
status of each managed file and the `docker run` flags, and removes the auth
directory again. Files in the home are only read. Needs the package installed
(`pip install .` from the repository root).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import caw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="home to read logins from (default: a made-up one)")
    parser.add_argument("--agents", nargs="*", help="agent names (default: all that are logged in)")
    args = parser.parse_args()

    # caw reports progress and skipped agents on the `caw` logger.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="caw-example-") as tmp:
        home = args.home.expanduser() if args.home else make_home(Path(tmp) / "home")
        auth_dir = caw.auth_setup(args.agents, source_home=home, dest_dir=Path(tmp) / "auth")
        print(f"auth dir: {auth_dir}")

        print("\nstatus:")
        for row in caw.auth_get_status(auth_dir=auth_dir):
            token = row.token_expiry or "-"
            print(f"  {row.agent:<9} {row.file:<36} {row.type:<10} {row.strategy:<5} {token}")

        try:
            flags = caw.auth_get_docker_flags(auth_dir)
        except caw.auth.CawAuthError as e:
            print(f"\nno docker flags: {e}", file=sys.stderr)
        else:
            print(f"\ndocker run {flags} IMAGE")

        caw.auth_teardown(auth_dir)
        print(f"\nremoved: {not auth_dir.exists()}")
    return 0


def make_home(home: Path) -> Path:
    """A home with made-up Claude Code, Codex and Gemini CLI logins (no real tokens)."""
    now_ms = int(time.time() * 1000)
    write(home / ".claude.json", {"userID": "example-user", "hasCompletedOnboarding": True, "projects": {}})
    write(
        home / ".claude/.credentials.json",
        {
            "claudeAiOauth": {
                "accessToken": "sk-ant-oat01-example",
                "refreshToken": "sk-ant-ort01-example",
                "expiresAt": now_ms + 8 * 3600 * 1000,
            }
        },
    )
    write(
        home / ".codex/auth.json",
        {
            "OPENAI_API_KEY": None,
            "tokens": {
                "access_token": jwt({"exp": now_ms // 1000 + 10 * 24 * 3600}),
                "refresh_token": "rt-example",
                "account_id": "example-account",
            },
            "last_refresh": "2026-01-01T00:00:00Z",
        },
    )
    write(
        home / ".gemini/oauth_creds.json",
        {
            "access_token": "ya29.example",
            "refresh_token": "1//example",
            "token_type": "Bearer",
            "expiry_date": now_ms - 3600 * 1000,  # expired, to show both states
        },
    )
    return home


def jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT carrying `claims`: enough for reading its expiry."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    os.chmod(path, 0o600)


if __name__ == "__main__":
    sys.exit(main())
