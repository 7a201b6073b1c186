#!/bin/sh
# The e2e image's entrypoint, wired the way docs/docker.md tells users to:
# as root, let caw put the logins into the agent's home and start the guard,
# then drop to the agent user.
#
#   entrypoint.sh serve   keep running as the agent (the tests drive it with
#                         `docker exec`); on a setup failure keep running too,
#                         so the test can still read the logs
#   entrypoint.sh once    exit with setup-container.sh's status
set -u
/tmp/caw_auth/setup-container.sh /tmp/caw_auth /home/playground playground
rc=$?
echo "caw-e2e: setup-container.sh exited $rc"
case "${1:-serve}" in
once) exit "$rc" ;;
esac
# A container the harness failed to remove stops by itself.
[ "$rc" = 0 ] || exec sleep 600
# The busybox form from docs/docker.md; "$@" would be the agent's command.
exec su -s /bin/sh -c 'exec "$0" "$@"' playground -- \
    sh -c 'echo "caw-e2e: agent running as $(id -un)"; exec sleep 600'
