#!/bin/sh
# The entrypoint of docs/docker.md: as root, let caw put the logins into the
# agent's home and start the guard, then drop to the agent user.
#
#   entrypoint.sh serve   keep running as the agent; the tests drive it with
#                         `docker exec --user playground`
#   entrypoint.sh CMD…    run CMD as the agent
set -u
/tmp/caw_auth/setup-container.sh /tmp/caw_auth /home/playground playground
rc=$?
echo "caw-real-agents: setup-container.sh exited $rc"
# A container the harness failed to remove stops by itself.
[ "$rc" = 0 ] || exec sleep 600
[ "${1:-serve}" = serve ] && set -- sleep 900
exec env HOME=/home/playground USER=playground setpriv --reuid=playground --regid=agents --init-groups "$@"
