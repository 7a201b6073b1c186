#!/usr/bin/env python3
"""Benchmark our `caw` (Rust) against coding-agent-wrapper 0.1.9 (Python), side by side.

Measures wall-clock time (time.perf_counter around subprocess.run) of:

  docker-flags  `caw auth docker-flags` on an auth dir set up from a normal home
  setup         `caw auth setup` on a home whose ~/.claude.json is about 5 MB

Runs alternate (ours, theirs, ours, theirs, ...) so slow drift of the machine
(other builds, thermal, page cache) hits both sides alike. It also checks that
the two are interchangeable: the same `docker-flags` line on an auth dir written
by either, and their `status` working on ours.

Everything happens under one temporary directory (HOME is pointed there for
every child); the real ~ and ~/.caw are never touched. Standard library only.

See bench/README.md. Typical use: `bench/run.sh` (builds, makes the venv, runs this).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The three agents coding-agent-wrapper 0.1.9 knows.
SHARED_AGENTS = ["claude", "codex", "opencode"]
TARGETS = {"docker-flags": 200.0, "setup": 20.0}

# Variables that would steer either tool away from the temp dirs we hand it.
SCRUBBED_ENV = ("CAW_AUTH_DIR", "CAW_LOG", "CAW_STATIC_BINARY", "XDG_CONFIG_HOME",
                "XDG_DATA_HOME", "PYTHONSTARTUP", "PYTHONPATH")


# --------------------------------------------------------------------------
# Fixture homes
# --------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(rng: random.Random, claims: dict) -> str:
    header = _b64url(json.dumps({"alg": "RS256", "kid": "k1", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64url(rng.randbytes(256))
    return f"{header}.{payload}.{sig}"


def _hex(rng: random.Random, n: int) -> str:
    return rng.randbytes(n).hex()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(bytes=rng.randbytes(16), version=4))


TOOL_POOL = [
    "Bash(npm run test:*)", "Bash(cargo build:*)", "Bash(cargo test:*)", "Bash(git status)",
    "Bash(git diff:*)", "Bash(pytest:*)", "Bash(ls:*)", "Bash(rg:*)", "Edit", "Write",
    "WebFetch(domain:docs.rs)", "WebFetch(domain:github.com)", "mcp__github__get_issue",
    "Read(//tmp/**)", "Bash(make:*)", "Bash(uv run:*)",
]


def _claude_project(rng: random.Random, i: int) -> dict:
    """One `projects` entry, with the keys Claude Code writes (kept short for most)."""
    p = {
        "allowedTools": rng.sample(TOOL_POOL, rng.randint(0, 4)),
        "mcpContextUris": [],
        "mcpServers": {},
        "enabledMcpjsonServers": [],
        "disabledMcpjsonServers": [],
        "hasTrustDialogAccepted": rng.random() < 0.8,
        "projectOnboardingSeenCount": rng.randint(0, 4),
    }
    if i % 10 == 0:
        p["mcpServers"] = {
            "github": {"type": "stdio", "command": "npx",
                       "args": ["-y", "@modelcontextprotocol/server-github"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_" + _hex(rng, 18)}},
        }
    if i % 8 == 0:
        p["lastSessionId"] = _uuid(rng)
        p["lastCost"] = round(rng.random() * 3, 6)
        p["lastTotalInputTokens"] = rng.randint(1000, 900000)
    return p


def write_home(home: Path, *, projects: int, codex_projects: int, seed: int) -> dict:
    """Write a home with claude, codex and opencode logins; return a description."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    files = {}

    def put(rel: str, text: str, mode: int = 0o600) -> None:
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        files[rel] = path.stat().st_size

    # --- claude -----------------------------------------------------------
    put(".claude/.credentials.json", json.dumps({
        "claudeAiOauth": {
            "accessToken": "sk-ant-oat01-" + _hex(rng, 48),
            "refreshToken": "sk-ant-ort01-" + _hex(rng, 48),
            "expiresAt": now_ms + 8 * 3600 * 1000,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        }
    }))
    claude = {
        "numStartups": 1873,
        "installMethod": "native",
        "autoUpdates": False,
        "tipsHistory": {f"tip-{k}": rng.randint(1, 1800) for k in range(40)},
        "promptQueueUseCount": 57,
        "firstStartTime": "2025-02-24T17:03:11.512Z",
        "userID": _hex(rng, 32),
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": "2.0.14",
        "oauthAccount": {
            "accountUuid": _uuid(rng), "emailAddress": "dev@example.com",
            "organizationUuid": _uuid(rng), "displayName": "Dev",
            "organizationRole": "admin", "workspaceRole": None,
            "organizationName": "Example Org",
        },
        "claudeCodeFirstTokenDate": "2025-02-24T17:05:40.220Z",
        "subscriptionNoticeCount": 0,
        "hasAvailableSubscription": False,
        "s1mAccessCache": {_uuid(rng): {"hasAccess": True, "timestamp": now_ms}},
        "passesEligibilityCache": {_uuid(rng): {"eligible": False, "timestamp": now_ms}},
        "groveConfigCache": {_uuid(rng): {"grove_enabled": True, "timestamp": now_ms}},
        "sonnet45MigrationComplete": True,
        "opus45MigrationComplete": True,
        "thinkingMigrationComplete": True,
        "cachedChangelog": "# Changelog\n\n" + "\n".join(
            f"## 2.0.{k}\n\n- Fixed an issue with item {k}\n- Improved performance of tool {k}"
            for k in range(200)),
        "changelogLastFetched": now_ms,
        "mcpServers": {"filesystem": {"type": "stdio", "command": "npx",
                                      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]}},
        "projects": {f"/home/dev/src/client-{i // 50:03d}/project-{i:05d}": _claude_project(rng, i)
                     for i in range(projects)},
        "feedbackSurveyState": {"lastShownTime": now_ms},
    }
    # Written without indentation so that 20,000 projects come to about 5 MB
    # (Claude Code itself indents; white space changes little for a parser).
    put(".claude.json", json.dumps(claude, separators=(",", ":")), 0o644)

    # --- codex ------------------------------------------------------------
    exp = int(time.time()) + 10 * 86400
    access = _jwt(rng, {"aud": ["https://api.openai.com/v1"], "exp": exp,
                        "iat": exp - 864000, "iss": "https://auth.openai.com",
                        "sub": "auth0|" + _hex(rng, 12),
                        "https://api.openai.com/auth": {"chatgpt_plan_type": "pro",
                                                        "chatgpt_account_id": _uuid(rng)}})
    put(".codex/auth.json", json.dumps({
        "OPENAI_API_KEY": None,
        "tokens": {"id_token": _jwt(rng, {"email": "dev@example.com", "exp": exp}),
                   "access_token": access,
                   "refresh_token": "rt_" + _hex(rng, 40),
                   "account_id": _uuid(rng)},
        "last_refresh": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
    }, indent=2))
    toml = [
        "# Codex configuration",
        'model = "gpt-5-codex"',
        'model_reasoning_effort = "high"',
        'approval_policy = "on-request"',
        'sandbox_mode = "workspace-write"',
        "",
        "[features]",
        "web_search_request = true  # enable search",
        "",
        "[mcp_servers.docs]",
        "# documentation server",
        'command = "npx"',
        'args = ["-y", "@upstash/context7-mcp"]',
        "",
        "[profiles.fast]",
        'model = "gpt-5-codex-mini"',
        "",
    ]
    for i in range(codex_projects):
        toml += [f'[projects."/home/dev/src/client-{i // 50:03d}/project-{i:05d}"]',
                 'trust_level = "trusted"', ""]
    put(".codex/config.toml", "\n".join(toml), 0o644)

    # --- opencode ---------------------------------------------------------
    put(".local/share/opencode/auth.json", json.dumps({
        "anthropic": {"type": "oauth", "refresh": "sk-ant-ort01-" + _hex(rng, 40),
                      "access": "sk-ant-oat01-" + _hex(rng, 40), "expires": now_ms + 6 * 3600 * 1000},
        "openrouter": {"type": "api", "key": "sk-or-v1-" + _hex(rng, 32)},
    }, indent=2))
    put(".config/opencode/opencode.json", json.dumps({
        "$schema": "https://opencode.ai/config.json", "theme": "opencode",
        "model": "anthropic/claude-sonnet-4-5", "autoupdate": False,
    }, indent=2), 0o644)
    return {"path": str(home), "claude_projects": projects, "codex_projects": codex_projects,
            "file_bytes": files}


# --------------------------------------------------------------------------
# Running the two CLIs
# --------------------------------------------------------------------------

class Runner:
    def __init__(self, ours: Path, theirs: Path, scratch: Path):
        self.exe = {"ours": str(ours), "theirs": str(theirs)}
        self.scratch = scratch
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(NO_COLOR="1", TERM="dumb", COLUMNS="240", LC_ALL="C.UTF-8")
        self.base_env = env

    def env(self, home: Path, **extra: str) -> dict:
        e = dict(self.base_env, HOME=str(home))
        e.update(extra)
        return e

    def run(self, who: str, args: list[str], home: Path, **extra: str):
        """Run one CLI; return (CompletedProcess, wall seconds, child CPU seconds)."""
        cmd = [self.exe[who], "auth", *args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env(home, **extra), cwd=self.scratch,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return proc, wall, cpu

    def must(self, who: str, args: list[str], home: Path, **extra: str):
        proc, wall, cpu = self.run(who, args, home, **extra)
        if proc.returncode != 0:
            raise SystemExit(f"{who} `caw auth {' '.join(args)}` failed (exit {proc.returncode}):\n"
                             f"{proc.stdout}{proc.stderr}")
        return proc, wall, cpu


def setup_args(who: str, source_home: Path, auth_dir: Path | None = None) -> list[str]:
    """`setup` for the three shared agents; theirs always writes $HOME/.caw/auth."""
    if who == "ours":
        args = ["setup", "--agents", ",".join(SHARED_AGENTS), "--source-home", str(source_home)]
        if auth_dir is not None:
            args += ["--auth-dir", str(auth_dir)]
        return args
    args = ["setup", "--source-home", str(source_home)]
    for a in SHARED_AGENTS:
        args += ["--agents", a]
    return args


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def summary(wall: list[float], cpu: list[float]) -> dict:
    ms = [x * 1000 for x in wall]
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": p90(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "mean_ms": statistics.fmean(ms),
        "stdev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "cpu_median_ms": statistics.median(x * 1000 for x in cpu),
        "samples_ms": [round(x, 4) for x in ms],
    }


def alternate(runner: Runner, n: int, warmup: int, job) -> dict:
    """Run job(who) for ours and theirs alternately; job returns (proc, wall, cpu)."""
    for _ in range(warmup):
        for who in ("ours", "theirs"):
            job(who)
    wall = {"ours": [], "theirs": []}
    cpu = {"ours": [], "theirs": []}
    for i in range(n):
        for who in ("ours", "theirs"):
            _, w, c = job(who)
            wall[who].append(w)
            cpu[who].append(c)
        print(f"\r  run {i + 1}/{n}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    res = {who: summary(wall[who], cpu[who]) for who in ("ours", "theirs")}
    res["ratio_median"] = res["theirs"]["median_ms"] / res["ours"]["median_ms"]
    res["ratio_min"] = res["theirs"]["min_ms"] / res["ours"]["min_ms"]
    res["ratio_cpu_median"] = (res["theirs"]["cpu_median_ms"] / res["ours"]["cpu_median_ms"]
                               if res["ours"]["cpu_median_ms"] > 0 else None)
    return res


def spawn_floor(scratch: Path, n: int) -> dict:
    """What starting a trivial process costs from this harness (`true`)."""
    true = shutil.which("true") or "/bin/true"
    wall = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([true], cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wall.append(time.perf_counter() - t0)
    ms = [x * 1000 for x in wall]
    return {"n": n, "median_ms": statistics.median(ms), "min_ms": min(ms), "p90_ms": p90(ms)}


# --------------------------------------------------------------------------
# Interchangeability
# --------------------------------------------------------------------------

def interop(runner: Runner, tmp: Path, normal_kw: dict) -> dict:
    out: dict = {}

    def check(name: str, ok: bool, detail: str = "") -> None:
        out[name] = {"ok": bool(ok), "detail": detail}

    # Auth dir written by us, at $HOME/.caw/auth so theirs finds it whatever it
    # does with CAW_AUTH_DIR.
    h_ours = tmp / "interop-ours-home"
    write_home(h_ours, seed=11, **normal_kw)
    runner.must("ours", setup_args("ours", h_ours), h_ours)
    ours_line = runner.run("ours", ["docker-flags"], h_ours)[0]
    theirs_line = runner.run("theirs", ["docker-flags"], h_ours)[0]
    same = (ours_line.returncode == 0 and theirs_line.returncode == 0
            and ours_line.stdout.strip() == theirs_line.stdout.strip())
    check("docker-flags identical on auth dir written by ours", same,
          f"ours: {ours_line.stdout.strip() or ours_line.stderr.strip()}\n"
          f"theirs: {theirs_line.stdout.strip() or theirs_line.stderr.strip()[-400:]}")

    st = runner.run("theirs", ["status"], h_ours)[0]
    text = st.stdout + st.stderr
    missing_agents = [a for a in SHARED_AGENTS if a not in st.stdout]
    status_ok = (st.returncode == 0 and "Traceback" not in text and not missing_agents
                 and "missing" not in st.stdout.lower())
    check("their status works on auth dir written by ours", status_ok,
          f"exit {st.returncode}; agents not shown: {missing_agents or 'none'}; "
          f"'valid' tokens shown: {st.stdout.count('valid (')}"
          + ("" if status_ok else f"\n{text[-1500:]}"))

    st2 = runner.run("ours", ["status", "--json"], h_ours)[0]
    check("our status --json on auth dir written by ours", st2.returncode == 0,
          f"exit {st2.returncode}")

    # Does theirs honour CAW_AUTH_DIR? Point HOME at an empty home and the env at ours.
    empty = tmp / "interop-empty-home"
    empty.mkdir()
    env_run = runner.run("theirs", ["docker-flags"], empty,
                         CAW_AUTH_DIR=str(h_ours / ".caw" / "auth"))[0]
    honours = env_run.returncode == 0 and env_run.stdout.strip() == ours_line.stdout.strip()
    out["theirs_honours_CAW_AUTH_DIR"] = {
        "ok": honours, "informational": True,
        "detail": f"exit {env_run.returncode}: "
                  + (env_run.stdout.strip() or env_run.stderr.strip()[-300:])}

    # Auth dir written by them.
    h_theirs = tmp / "interop-theirs-home"
    write_home(h_theirs, seed=12, **normal_kw)
    runner.must("theirs", setup_args("theirs", h_theirs), h_theirs)
    ours_line = runner.run("ours", ["docker-flags"], h_theirs)[0]
    theirs_line = runner.run("theirs", ["docker-flags"], h_theirs)[0]
    same = (ours_line.returncode == 0 and theirs_line.returncode == 0
            and ours_line.stdout.strip() == theirs_line.stdout.strip())
    check("docker-flags identical on auth dir written by theirs", same,
          f"ours: {ours_line.stdout.strip() or ours_line.stderr.strip()}\n"
          f"theirs: {theirs_line.stdout.strip() or theirs_line.stderr.strip()[-400:]}")

    st3 = runner.run("ours", ["status", "--json"], h_theirs)[0]
    rows = []
    if st3.returncode == 0:
        try:
            rows = json.loads(st3.stdout)
        except ValueError:
            pass
    agents_seen = sorted({r.get("agent") for r in rows})
    check("our status --json on auth dir written by theirs",
          st3.returncode == 0 and agents_seen == sorted(SHARED_AGENTS),
          f"exit {st3.returncode}; agents: {agents_seen}"
          + ("" if st3.returncode == 0 else f"\n{st3.stderr.strip()}"))
    return out


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def default_ours() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    base = (ROOT / target) if target else ROOT / "target"  # ROOT / absolute == absolute
    return base / "release" / "caw"


def wait_for_quiet(max_wait: float, load: float) -> None:
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] > load and time.monotonic() < deadline:
        print(f"  waiting for 1-min load {os.getloadavg()[0]:.2f} <= {load} ...",
              file=sys.stderr)
        time.sleep(15)


def fmt_ms(x: float) -> str:
    return f"{x:9.2f}" if x < 1000 else f"{x:9.0f}"


def print_table(results: dict, floor: dict, interop_res: dict | None, meta: dict,
                fixtures: dict) -> None:
    print()
    print(f"caw benchmark — ours: {meta['ours_version']}   theirs: coding-agent-wrapper "
          f"{meta['theirs_version']}")
    print(f"load avg before {meta['load_before']}, after {meta['load_after']} "
          f"on {meta['cpus']} CPUs; spawn floor (`true`) median {floor['median_ms']:.2f} ms")
    if meta["noisy"]:
        print("NOTE: the machine was busy during the run (1-min load >= half the CPUs); "
              "times are noisy — compare the min columns and rerun when quiet.")
    print()
    head = (f"{'benchmark':<13}{'N':>4} | {'ours med':>9}{'p90':>9}{'min':>9} | "
            f"{'theirs med':>10}{'p90':>9}{'min':>9} | {'ratio med':>9}{'ratio min':>10}"
            f"{'target':>8}  met")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        o, t = r["ours"], r["theirs"]
        print(f"{name:<13}{o['n']:>4} | {fmt_ms(o['median_ms'])}{fmt_ms(o['p90_ms'])}"
              f"{fmt_ms(o['min_ms'])} | {fmt_ms(t['median_ms']):>10}{fmt_ms(t['p90_ms'])}"
              f"{fmt_ms(t['min_ms'])} | {r['ratio_median']:>8.1f}x{r['ratio_min']:>9.1f}x"
              f"{r['target']:>7.0f}x  {'yes' if r['met'] else 'NO'}")
    print("(times in ms, wall clock per process incl. spawn; ratio = theirs / ours)")
    print()
    cpu = ", ".join(f"{n}: ours {r['ours']['cpu_median_ms']:.1f} ms, theirs "
                    f"{r['theirs']['cpu_median_ms']:.1f} ms" for n, r in results.items())
    print(f"child CPU time (user+sys) medians — {cpu}")
    if "setup" in fixtures:
        f = fixtures["setup"]
        sizes = f["file_bytes"]
        print(f"setup input: ~/.claude.json {sizes['.claude.json'] / 1e6:.2f} MB "
              f"({f['claude_projects']} projects), ~/.codex/config.toml "
              f"{sizes['.codex/config.toml'] / 1e3:.0f} kB ({f['codex_projects']} projects)")
        left = "; ".join(f"{who}: {', '.join(files) or 'none'}"
                         for who, files in f["host_project_paths_left_in"].items())
        print(f"  host project paths left in the cleaned configs — {left}")
    if interop_res is not None:
        print()
        print("interchangeability:")
        for name, c in interop_res.items():
            mark = "info" if c.get("informational") else ("ok" if c["ok"] else "FAIL")
            label = name if not c.get("informational") else (
                f"{name}: {'yes' if c['ok'] else 'no'}")
            print(f"  [{mark:>4}] {label}")
            if not c["ok"] or c.get("informational"):
                for line in c["detail"].splitlines():
                    print(f"         {line}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", type=Path, default=default_ours(),
                    help="our release binary (default: $CARGO_TARGET_DIR or target/, release/caw)")
    ap.add_argument("--theirs", type=Path, default=HERE.parent / "target" / "reference-venv" / "bin" / "caw",
                    help="coding-agent-wrapper's caw script (default: target/reference-venv/bin/caw, see scripts/reference-caw.sh)")
    ap.add_argument("--flags-runs", type=int, default=30, help="docker-flags runs per side")
    ap.add_argument("--setup-runs", type=int, default=10, help="setup runs per side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs per side first")
    ap.add_argument("--projects", type=int, default=20000,
                    help="projects in the big ~/.claude.json (default 20000, ~5 MB)")
    ap.add_argument("--codex-projects", type=int, default=2000,
                    help="[projects.\"…\"] tables in the big ~/.codex/config.toml")
    ap.add_argument("--only", choices=["docker-flags", "setup"], action="append",
                    help="run only these benchmarks (repeatable)")
    ap.add_argument("--no-interop", action="store_true", help="skip the interchangeability checks")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to SECONDS for the 1-min load to drop to --quiet-load")
    ap.add_argument("--quiet-load", type=float, default=0.5)
    ap.add_argument("--json-out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args()

    for who, exe in (("ours", args.ours), ("theirs", args.theirs)):
        if not os.access(exe, os.X_OK):
            hint = ("cargo build --release -p caw-cli" if who == "ours"
                    else "bench/run.sh creates it")
            print(f"error: {who} executable `{exe}` not found ({hint})", file=sys.stderr)
            return 1
    benches = args.only or ["docker-flags", "setup"]

    wait_for_quiet(args.wait_quiet, args.quiet_load)
    tmp = Path(tempfile.mkdtemp(prefix="caw-bench-"))
    scratch = tmp / "cwd"
    scratch.mkdir()
    runner = Runner(args.ours.resolve(), args.theirs.absolute(), scratch)
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        ours_version = subprocess.run([str(args.ours), "--version"], capture_output=True,
                                      text=True).stdout.strip()
        theirs_py = args.theirs.absolute().parent / "python"
        theirs_version = subprocess.run(
            [str(theirs_py), "-c", "import importlib.metadata as m; "
             "print(m.version('coding-agent-wrapper'), m.version('mcp'))"],
            capture_output=True, text=True).stdout.split()
        normal_kw = {"projects": 40, "codex_projects": 10}
        meta = {
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "ours": str(args.ours), "ours_version": ours_version,
            "theirs": str(args.theirs),
            "theirs_version": theirs_version[0] if theirs_version else "?",
            "theirs_mcp_version": theirs_version[1] if len(theirs_version) > 1 else "?",
            "load_before": load_before, "warmup": args.warmup,
            "method": "time.perf_counter around subprocess.run, runs alternate ours/theirs; "
                      "child CPU from getrusage(RUSAGE_CHILDREN)",
        }
        print(f"temp dir {tmp}; load {load_before}", file=sys.stderr)
        floor = spawn_floor(scratch, 30)
        results: dict = {}
        fixtures: dict = {}

        if "docker-flags" in benches:
            home = tmp / "flags-home"
            fixtures["docker-flags"] = write_home(home, seed=1, **normal_kw)
            runner.must("ours", setup_args("ours", home), home)  # -> $HOME/.caw/auth
            print("docker-flags (both read the same auth dir, written by ours):",
                  file=sys.stderr)

            def flags_job(who: str):
                proc, w, c = runner.must(who, ["docker-flags"], home)
                if not proc.stdout.startswith("-v "):
                    raise SystemExit(f"{who} docker-flags printed {proc.stdout!r}")
                return proc, w, c

            results["docker-flags"] = alternate(runner, args.flags_runs, args.warmup, flags_job)

        if "setup" in benches:
            src = tmp / "big-home"
            fixtures["setup"] = write_home(src, seed=2, projects=args.projects,
                                           codex_projects=args.codex_projects)
            size = fixtures["setup"]["file_bytes"][".claude.json"]
            print(f"setup (~/.claude.json {size / 1e6:.2f} MB, {args.projects} projects; "
                  f"config.toml {args.codex_projects} projects):", file=sys.stderr)
            # Each side gets its own HOME so the two auth dirs never collide; both
            # read the same source home and, after warm-up, both replace an
            # existing auth dir every run.
            ours_home, theirs_home = tmp / "setup-ours-home", tmp / "setup-theirs-home"
            ours_home.mkdir()
            theirs_home.mkdir()
            homes = {"ours": ours_home, "theirs": theirs_home}

            def setup_job(who: str):
                return runner.must(who, setup_args(who, src), homes[who])

            results["setup"] = alternate(runner, args.setup_runs, max(1, args.warmup // 2),
                                         setup_job)
            # Sanity: no host project path survives in either cleaned config.
            leaks = {}
            for who, h in homes.items():
                leaks[who] = [rel for rel in ("claude/config.json", "codex/config.toml")
                              if "/home/dev/src" in (h / ".caw" / "auth" / rel).read_text()]
            fixtures["setup"]["host_project_paths_left_in"] = leaks

        for name, r in results.items():
            r["target"] = TARGETS[name]
            r["met"] = r["ratio_median"] >= TARGETS[name]

        interop_res = None if args.no_interop else interop(runner, tmp, normal_kw)
        load_after = [round(x, 2) for x in os.getloadavg()]
        meta["load_after"] = load_after
        meta["noisy"] = max(load_before[0], load_after[0]) >= (os.cpu_count() or 1) / 2
        report = {"meta": meta, "spawn_floor": floor, "fixtures": fixtures,
                  "results": results, "interop": interop_res}
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print_table(results, floor, interop_res, meta, fixtures)
        print(f"\nresults written to {args.json_out}")
        failed = interop_res is not None and any(
            not c["ok"] for c in interop_res.values() if not c.get("informational"))
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
