#!/usr/bin/env python3
"""A fake Anthropic / OpenAI API and OAuth server for the real-agent tests.

It listens with TLS on 127.0.0.1:443 inside a network namespace that has
nothing but loopback, under a certificate for every host name the real Claude
Code and Codex CLIs call (signed by a throw-away CA the clients are told to
trust). Python standard library only.

State lives in files under --state-dir, so the test (which runs in another
network namespace) reads and steers it without a socket:

  requests.jsonl  one JSON object per request: host, method, path, bearer
                  token, and for token requests the grant type and refresh
                  token sent (all tokens are fake ones the tests made)
  state.json      refresh tokens already used (rotation: a used one is
                  refused) and a counter for new token names
  refuse          present: every refresh is refused (the login is dead)
  ready           written once the server listens

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

    def update(self, change):
        with open(self.path + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(self.path) as f:
                    state = json.load(f)
            except FileNotFoundError:
                state = {"used_refresh_tokens": [], "issued": 0}
            result = change(state)
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(state, f)
            os.replace(tmp, self.path)
            return result


def record(entry: dict) -> None:
    entry["time"] = time.time()
    line = json.dumps(entry) + "\n"
    with LOCK, open(os.path.join(STATE_DIR, "requests.jsonl"), "a") as f:
        f.write(line)


def rotate(refresh_token: str):
    """New token number, or None when the refresh must be refused."""
    if os.path.exists(os.path.join(STATE_DIR, "refuse")):
        return None

    def change(state):
        if not refresh_token or refresh_token in state["used_refresh_tokens"]:
            return None
        state["used_refresh_tokens"].append(refresh_token)
        state["issued"] += 1
        return state["issued"]

    return Store(os.path.join(STATE_DIR, "state.json")).update(change)


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
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path.split("?")[0]
        raw = self.body()
        auth = self.headers.get("Authorization") or ""
        entry = {
            "host": host,
            "method": self.command,
            "path": self.path,
            "bearer": auth[7:] if auth.lower().startswith("bearer ") else None,
            "x_api_key": self.headers.get("x-api-key"),
            "user_agent": self.headers.get("User-Agent"),
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

        if host == "platform.claude.com" and path == "/v1/oauth/token":
            return self.claude_token(entry, form)
        if host == "auth.openai.com" and path == "/oauth/token":
            return self.codex_token(entry, form)
        if "revoke" in path:
            record(entry)
            return self.send(200, {})
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

    def claude_token(self, entry, form):
        n = rotate(form.get("refresh_token") or "")
        entry["refused"] = n is None
        record(entry)
        if n is None:
            return self.send(400, {"error": "invalid_grant",
                                   "error_description": "Refresh token not found or invalid"})
        return self.send(200, {
            "token_type": "Bearer",
            "access_token": f"sk-ant-oat01-fake-refreshed-{n}",
            "refresh_token": f"sk-ant-ort01-fake-refreshed-{n}",
            "expires_in": 28800,
            "scope": form.get("scope") or "user:inference user:profile",
            "account": {"uuid": "acct-uuid-real-agents", "email_address": "dev@example.com"},
            "organization": {"uuid": "org-uuid-real-agents", "name": "Dev's Organization"},
        })

    def codex_token(self, entry, form):
        n = rotate(form.get("refresh_token") or "")
        entry["refused"] = n is None
        record(entry)
        if n is None:
            return self.send(401, {"error": {
                "message": "Your refresh token has already been used to generate a new access token.",
                "type": "invalid_request_error", "param": None, "code": "refresh_token_reused"}})
        exp = int(time.time()) + 10 * 86400
        return self.send(200, {
            "id_token": jwt(codex_claims(f"id-{n}", exp)),
            "access_token": jwt(codex_claims(f"codex-fake-refreshed-{n}", exp)),
            "refresh_token": f"codex-fake-refresh-refreshed-{n}",
        })

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
