#!/usr/bin/env python3
"""A fake Anthropic / OpenAI API and OAuth server for the real-agent tests.

It listens with TLS on 127.0.0.1:443 inside a network namespace that has
nothing but loopback, under a certificate for every host name the real Claude
Code and Codex CLIs call (signed by a throw-away CA the clients are told to
trust). Python standard library only.

State lives in files under --state-dir, so the test (which runs in another
network namespace) reads and steers it without a socket:

  requests.jsonl  one JSON object per request: host, method, path, bearer
                  token, user agent, whether it came from caw (`caw/…`),
                  and for token requests the grant type, refresh token,
                  body field names and content type sent, whether they match
                  the agent's pinned refresh format, and why a refusal was
                  one (all tokens are fake ones the tests made)
  state.json      refresh tokens already used, the token family of every
                  token the server issued, the revoked families, and a
                  counter for new token names
  logins.json     written by the test: {family: [its first tokens]}, so the
                  access token a test logged in with belongs to a family too
  refuse          present: every refresh is refused (the login is dead)
  delay           present: seconds (a float) to wait before answering a
                  token request (the refresh token is spent on arrival)
  ready           written once the server listens

Like the real servers at their worst: a refresh token works once; a second
use is refused (Claude: 400 `invalid_grant`; Codex: 401
`refresh_token_reused`) and revokes its whole family, so every later
refresh of that family is refused and its access tokens get 401 from the
APIs. A revocation (logout) revokes the family too.

Only fake tokens ever reach it: nothing here is a secret.
"""

import argparse
import base64
import fcntl
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE_DIR = "."
LOCK = threading.Lock()

# Each agent's refresh request as caw pins it (crates/caw-refresh/src/agents):
# JSON, these fields in this order, these constant values.
PINNED = {
    "claude": {
        "fields": ["grant_type", "refresh_token", "client_id", "scope"],
        "consts": {"grant_type": "refresh_token",
                   "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e"},
    },
    "codex": {
        "fields": ["client_id", "grant_type", "refresh_token"],
        "consts": {"client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
                   "grant_type": "refresh_token"},
    },
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{header}.{body}.{b64url(b'fake-signature')}"


def codex_claims(tag: str, exp: int) -> dict:
    """The claims Codex reads from its id_token and access_token."""
    return {
        "iss": "https://auth.openai.com",
        "aud": ["app_EMoamEEZ73f0CkXaXp7hrann"],
        "sub": "user-real-agents",
        "email": "dev@example.com",
        "exp": exp,
        "iat": int(time.time()),
        "jti": tag,
        "https://api.openai.com/profile": {"email": "dev@example.com", "email_verified": True},
        "https://api.openai.com/auth": {
            "chatgpt_account_id": "acct-real-agents",
            "chatgpt_plan_type": "pro",
            "chatgpt_user_id": "user-real-agents",
            "user_id": "user-real-agents",
        },
    }


class Store:
    """state.json under an flock: more than one server process may share it."""

    def __init__(self, path: str):
        self.path = path

    def load(self) -> dict:
        try:
            with open(self.path) as f:
                state = json.load(f)
        except FileNotFoundError:
            state = {}
        for key, empty in (("used_refresh_tokens", []), ("issued", 0),
                           ("family_of", {}), ("revoked_families", [])):
            state.setdefault(key, empty)
        return state

    def read(self, look):
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            return look(self.load())

    def update(self, change):
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.load()
            result = change(state)
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(state, f)
            os.replace(tmp, self.path)
            return result


def record(entry: dict) -> None:
    entry.setdefault("time", time.time())
    line = json.dumps(entry) + "\n"
    with LOCK, open(os.path.join(STATE_DIR, "requests.jsonl"), "a") as f:
        f.write(line)


def store() -> Store:
    return Store(os.path.join(STATE_DIR, "state.json"))


def declared_family(token: str):
    """The family the test declared `token` part of (logins.json)."""
    try:
        with open(os.path.join(STATE_DIR, "logins.json")) as f:
            logins = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    for family, tokens in logins.items():
        if token in tokens:
            return family
    return None


def family_in(state: dict, token: str):
    return state["family_of"].get(token) or declared_family(token)


def rotate(refresh_token: str, make_tokens):
    """(token number, None) for a refresh that works, or (None, why) when it
    is refused: `refuse` (the state file), `unknown`, `family_revoked`, or
    `reused` (which revokes the family). `make_tokens(n)` gives the new
    tokens, recorded as members of the same family."""
    if os.path.exists(os.path.join(STATE_DIR, "refuse")):
        return None, "refuse"

    def change(state):
        if not refresh_token:
            return None, "unknown"
        # A refresh token nobody declared starts its own family.
        family = family_in(state, refresh_token) or refresh_token
        if family in state["revoked_families"]:
            return None, "family_revoked"
        if refresh_token in state["used_refresh_tokens"]:
            state["revoked_families"].append(family)
            return None, "reused"
        state["used_refresh_tokens"].append(refresh_token)
        state["issued"] += 1
        n = state["issued"]
        for token in make_tokens(n).values():
            state["family_of"][token] = family
        return n, None

    return store().update(change)


def revoke(token: str) -> None:
    """Revoke the family of `token` (a logout)."""

    def change(state):
        family = family_in(state, token) or token
        if family not in state["revoked_families"]:
            state["revoked_families"].append(family)

    store().update(change)


def revoked(token) -> bool:
    """Whether `token` belongs to a revoked family."""
    if not token:
        return False

    def look(state):
        family = family_in(state, token)
        return family is not None and family in state["revoked_families"]

    return store().read(look)


def check_format(agent: str, content_type: str, body, raw: bytes) -> list:
    """How a token request differs from the agent's pinned format (empty:
    it matches)."""
    pinned = PINNED[agent]
    problems = []
    if not (content_type or "").lower().startswith("application/json"):
        problems.append(f"content type {content_type!r}, not JSON")
    try:
        json.loads(raw)
    except ValueError:
        problems.append("body is not JSON")
    fields = list(body)
    if fields != pinned["fields"]:
        problems.append(f"fields {fields}, pinned {pinned['fields']}")
    for key, value in pinned["consts"].items():
        if body.get(key) != value:
            problems.append(f"{key} is {body.get(key)!r}, pinned {value!r}")
    if not body.get("refresh_token"):
        problems.append("no refresh_token")
    if "scope" in pinned["fields"] and not (isinstance(body.get("scope"), str) and body["scope"].strip()):
        problems.append("no scope")
    return problems


def answer_delay() -> float:
    try:
        with open(os.path.join(STATE_DIR, "delay")) as f:
            return max(0.0, float(f.read().strip() or 0))
    except (FileNotFoundError, ValueError):
        return 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "caw-fake-api"

    def log_message(self, fmt, *args):  # requests.jsonl is the log
        pass

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def send(self, status: int, payload, content_type="application/json", extra=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        arrived = time.time()
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path.split("?")[0]
        raw = self.body()
        auth = self.headers.get("Authorization") or ""
        user_agent = self.headers.get("User-Agent")
        entry = {
            "time": arrived,
            "host": host,
            "method": self.command,
            "path": self.path,
            "bearer": auth[7:] if auth.lower().startswith("bearer ") else None,
            "x_api_key": self.headers.get("x-api-key"),
            "user_agent": user_agent,
            "caw": (user_agent or "").startswith("caw/"),
        }
        form = {}
        if raw:
            try:
                form = json.loads(raw)
            except ValueError:
                from urllib.parse import parse_qsl

                form = dict(parse_qsl(raw.decode(errors="replace")))
            if not isinstance(form, dict):
                form = {}
        if "grant_type" in form:
            entry["grant_type"] = form.get("grant_type")
            entry["refresh_token"] = form.get("refresh_token")
        if path.endswith("/v1/messages") or path.endswith("/codex/responses"):
            entry["model"] = form.get("model")
        if "revoke" in path:
            entry["revoked"] = form.get("token") or form.get("refresh_token")

        agent = {("platform.claude.com", "/v1/oauth/token"): "claude",
                 ("auth.openai.com", "/oauth/token"): "codex"}.get((host, path))
        if agent:
            content_type = self.headers.get("Content-Type")
            problems = check_format(agent, content_type, form, raw)
            entry.update(content_type=content_type, fields=list(form),
                         format_ok=not problems, format_problems=problems)
            return self.claude_token(entry, form) if agent == "claude" else self.codex_token(entry, form)
        if "revoke" in path:
            record(entry)
            if entry["revoked"]:
                revoke(entry["revoked"])
            return self.send(200, {})
        if revoked(entry["bearer"]):
            entry["unauthorized"] = True
            record(entry)
            return self.send_unauthorized(host)
        if host == "api.anthropic.com" and path == "/v1/messages":
            record(entry)
            return self.claude_messages(form)
        if host == "api.anthropic.com" and path == "/api/oauth/profile":
            record(entry)
            return self.send(200, {
                "account": {"uuid": "acct-uuid-real-agents", "email": "dev@example.com",
                            "display_name": "Dev", "has_claude_max": True, "has_claude_pro": False},
                "organization": {"uuid": "org-uuid-real-agents", "name": "Dev's Organization",
                                 "organization_type": "claude_max", "billing_type": "stripe_subscription",
                                 "rate_limit_tier": "default_claude_max_20x"},
            })
        if self.headers.get("Upgrade", "").lower() == "websocket":
            # No WebSocket here: the clients fall back to plain HTTPS.
            record(entry)
            return self.send(404, {"detail": "Not Found"})
        if host == "chatgpt.com" and path.endswith("/codex/responses"):
            record(entry)
            return self.codex_responses(form)
        record(entry)
        return self.send(404, {"error": {"type": "not_found", "message": "fake server: no such endpoint"}})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def send_unauthorized(self, host):
        """An access token of a revoked family, as each API answers it."""
        if host.endswith("anthropic.com") or host.endswith("claude.com") or host == "claude.ai":
            return self.send(401, {"type": "error", "error": {
                "type": "authentication_error",
                "message": "OAuth token has been revoked. Please obtain a new token or refresh your existing token."}})
        return self.send(401, {"error": {
            "message": "Your authentication token has been invalidated. Please try signing in again.",
            "type": "invalid_request_error", "param": None, "code": "token_invalidated"}})

    def token_answer(self, entry, form, make_tokens):
        """Rotate (or refuse), record, wait the `delay`: (the new tokens,
        None) or (None, why)."""
        made = {}

        def once(n):
            made.update(made or make_tokens(n))
            return made

        n, why = rotate(form.get("refresh_token") or "", once)
        entry["refused"] = n is None
        if why:
            entry["refusal"] = why
        record(entry)
        delay = answer_delay()
        if delay:
            time.sleep(delay)
        return (made if n is not None else None), why

    def claude_token(self, entry, form):
        def tokens(n):
            return {"access_token": f"sk-ant-oat01-fake-refreshed-{n}",
                    "refresh_token": f"sk-ant-ort01-fake-refreshed-{n}"}

        new, _ = self.token_answer(entry, form, tokens)
        if new is None:
            return self.send(400, {"error": "invalid_grant",
                                   "error_description": "Refresh token not found or invalid"})
        return self.send(200, dict(new, **{
            "token_type": "Bearer",
            "expires_in": 28800,
            "scope": form.get("scope") or "user:inference user:profile",
            "account": {"uuid": "acct-uuid-real-agents", "email_address": "dev@example.com"},
            "organization": {"uuid": "org-uuid-real-agents", "name": "Dev's Organization"},
        }))

    def codex_token(self, entry, form):
        exp = int(time.time()) + 10 * 86400

        def tokens(n):
            return {"id_token": jwt(codex_claims(f"id-{n}", exp)),
                    "access_token": jwt(codex_claims(f"codex-fake-refreshed-{n}", exp)),
                    "refresh_token": f"codex-fake-refresh-refreshed-{n}"}

        new, why = self.token_answer(entry, form, tokens)
        if new is None:
            code, message = {
                "family_revoked": ("refresh_token_invalidated",
                                   "Your refresh token has been invalidated. Please try signing in again."),
            }.get(why, ("refresh_token_reused",
                        "Your refresh token has already been used to generate a new access token."))
            return self.send(401, {"error": {
                "message": message, "type": "invalid_request_error", "param": None, "code": code}})
        return self.send(200, new)

    def sse(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def claude_messages(self, form):
        model = form.get("model") or "claude-sonnet-4-5"
        text = "fake-api-answer"
        usage = {"input_tokens": 1, "output_tokens": 1}
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
        if not form.get("stream"):
            message.update(content=[{"type": "text", "text": text}], stop_reason="end_turn")
            return self.send(200, message)
        self.sse([
            ("message_start", {"type": "message_start", "message": message}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": text}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"}),
        ])

    def codex_responses(self, form):
        rid = "resp_fake"
        item = {"type": "message", "id": "msg_fake", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "fake-api-answer", "annotations": []}]}
        response = {"id": rid, "object": "response", "status": "completed",
                    "model": form.get("model") or "gpt-5", "output": [item],
                    "usage": {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
                              "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
                              "total_tokens": 2}}
        created = dict(response, status="in_progress", output=[])
        self.sse([
            ("response.created", {"type": "response.created", "response": created}),
            ("response.output_item.added", {"type": "response.output_item.added",
                                            "output_index": 0, "item": dict(item, status="in_progress", content=[])}),
            ("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_fake",
                                            "output_index": 0, "content_index": 0, "delta": "fake-api-answer"}),
            ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
            ("response.completed", {"type": "response.completed", "response": response}),
        ])


class TlsServer(ThreadingHTTPServer):
    """The TLS handshake runs in the request's thread, with a timeout, so a
    client that stalls it does not block the others."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as e:
            record({"tls_error": str(e)})
            return
        self.RequestHandlerClass(tls, client_address, self)


def main() -> None:
    global STATE_DIR
    p = argparse.ArgumentParser()
    p.add_argument("--state-dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port", type=int, default=443)
    args = p.parse_args()
    STATE_DIR = args.state_dir
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    server = TlsServer(("127.0.0.1", args.port), Handler)
    server.context = ctx
    with open(os.path.join(STATE_DIR, "ready"), "w") as f:
        f.write(str(os.getpid()))
    print(f"fake server listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
