#!/usr/bin/env bash
# The main job on the shipped example home: a container running with the
# host's login, and a refresh going each way.
#
#   1. `caw auth setup` on a copy of examples/home, into a temp auth dir;
#   2. `caw run` starts a container (an image with no shell, built here FROM
#      scratch) with `caw auth exec` as its init and the host sync running;
#   3. a refresh on the host, written the way Claude Code writes it (temp
#      file + rename), shows up in the container's home;
#   4. a refresh in the container shows up in the host file, once the
#      provider vouches that it is the host's account (here a stand-in for
#      Claude's profile endpoint on loopback, since the tokens are made up);
#   5. `caw auth status`, then teardown.
#
# Touches neither your ~ nor your ~/.caw (nor examples/home): HOME, the host
# home and the auth dir are all in a temp dir removed at the end. Needs a
# running Docker engine and a static busybox (installed here when missing and
# running as root on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

busybox=$(scripts/busybox.sh)

cargo build --quiet -p caw-cli
caw="$PWD/target/debug/caw"
work=$(mktemp -d "${TMPDIR:-/tmp}/caw-demo.XXXXXX")
name="caw-demo-$$"
profile_pid=
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    [ -z "$profile_pid" ] || kill "$profile_pid" 2>/dev/null || true
    env -u CAW_AUTH_DIR HOME="$work/home" "$caw" auth teardown --auth-dir "$work/auth" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
cp -a examples/home "$work/home"
auth="$work/auth"

# Claude's profile endpoint, as the host sync asks it before a container's
# login reaches the host: the example account for the container's token, 401
# for anything else. On loopback, for the demo's made-up tokens only.
python3 - "$work/profile-port" <<'PY' &
import http.server, json, sys
class Profile(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("Authorization") == "Bearer sk-ant-oat01-CONTAINER-REFRESH"
        body = json.dumps({"account": {"uuid": "00000000-0000-0000-0000-000000000000"}}
                          if ok else {"error": "authentication_error"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Profile)
open(sys.argv[1] + ".tmp", "w").write(str(server.server_port))
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
PY
profile_pid=$!
for _ in $(seq 50); do [ -s "$work/profile-port" ] && break; sleep 0.1; done
profile_url="http://127.0.0.1:$(cat "$work/profile-port")/api/oauth/profile"

# A throwaway HOME and no CAW_AUTH_DIR, so nothing can fall back to your real ones.
caw() {
    echo "\$ caw $*" >&2
    env -u CAW_AUTH_DIR -u CAW_NO_SYNC -u CAW_NO_VERIFY HOME="$work/home" \
        CAW_CLAUDE_PROFILE_URL="$profile_url" "$caw" "$@"
}
say() { printf '\n# %s\n' "$*"; }
expires() { { cat; echo; } | sed -n 's/.*"expiresAt":\([0-9]*\).*/expiresAt \1/p'; }

say "1. the host's logins into a temp auth dir"
caw auth setup --source-home "$work/home" --auth-dir "$auth" --trust /workspace
caw auth status --agents claude --auth-dir "$auth"

say "2. an image with no shell at all: a static busybox and a user, built FROM scratch"
ctx="$work/image"
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/home/node" "$ctx/rootfs/tmp"
cp "$busybox" "$ctx/rootfs/bin/busybox"
echo 'root:x:0:0::/root:/bin/busybox' > "$ctx/rootfs/etc/passwd"
echo 'node:x:1000:1000::/home/node:/bin/busybox' >> "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' > "$ctx/rootfs/etc/group"
printf 'FROM scratch\nCOPY rootfs/ /\nUSER node\nCMD ["/bin/busybox", "sleep", "300"]\n' > "$ctx/Dockerfile"
docker build --quiet --tag caw-demo:busybox "$ctx" >/dev/null
echo "built caw-demo:busybox"
caw run --auth-dir "$auth" -d --name "$name" --network none caw-demo:busybox >/dev/null
in_container() { docker exec "$name" /bin/busybox "$@"; }
for _ in $(seq 50); do
    in_container test -s /home/node/.claude/.credentials.json 2>/dev/null && break
    sleep 0.1
done
echo "the container's login:"
in_container cat /home/node/.claude/.credentials.json | expires

say "3. Claude Code on the host refreshes its login (temp file + rename)"
later=$(( ($(date +%s) + 7 * 3600) * 1000 ))
host="$work/home/.claude/.credentials.json"
printf '{"claudeAiOauth":{"accessToken":"sk-ant-oat01-HOST-REFRESH","refreshToken":"sk-ant-ort01-HOST-REFRESH","expiresAt":%s,"scopes":["user:inference"],"subscriptionType":"pro"}}' "$later" > "$host.tmp.demo"
mv "$host.tmp.demo" "$host"
for _ in $(seq 50); do
    in_container cat /home/node/.claude/.credentials.json | grep -q HOST-REFRESH && break
    sleep 0.1
done
echo "the container's login now:"
in_container cat /home/node/.claude/.credentials.json | expires

say "4. the agent in the container refreshes it; the host takes it once the provider vouches for it"
latest=$(( later + 3600 * 1000 ))
in_container sh -c "printf '{\"claudeAiOauth\":{\"accessToken\":\"sk-ant-oat01-CONTAINER-REFRESH\",\"refreshToken\":\"sk-ant-ort01-CONTAINER-REFRESH\",\"expiresAt\":$latest,\"scopes\":[\"user:inference\"],\"subscriptionType\":\"pro\"}}' > /home/node/.claude/.credentials.json.tmp && /bin/busybox mv /home/node/.claude/.credentials.json.tmp /home/node/.claude/.credentials.json"
for _ in $(seq 50); do
    grep -q CONTAINER-REFRESH "$host" && break
    sleep 0.1
done
echo "the host's login now:"
expires < "$host"
grep -q CONTAINER-REFRESH "$host" || { echo "error: the container's refresh did not reach the host" >&2; exit 1; }
in_container cat /home/node/.claude/.credentials.json | grep -q HOST-REFRESH \
    && { echo "error: the host's refresh did not stay in the container" >&2; exit 1; }

say "5. status: both sides hold the same login, and the sync runs"
caw auth status --agents claude --auth-dir "$auth"
docker rm -f "$name" >/dev/null
caw auth teardown --auth-dir "$auth"
