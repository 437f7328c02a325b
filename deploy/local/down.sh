#!/usr/bin/env bash
# Stop the local stack started by up.sh. Idempotent; servers that up.sh merely
# reused (not started by us) are left running.
#
#   deploy/local/down.sh            # stop, keep data
#   deploy/local/down.sh --purge    # stop and delete $DISPATCH_STACK_DIR
#                                   # (the jar cache in $DISPATCH_CACHE_DIR stays)
set -euo pipefail
SCRIPT_TAG=down
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

purge=false
for arg in "$@"; do
  case "$arg" in
    --purge) purge=true ;;
    *) die "usage: $0 [--purge]" ;;
  esac
done

# Keep going if one server fails to stop: the other should still go down.
rc=0
"$here/kafka.sh" stop || rc=1
"$here/postgres.sh" stop || rc=1

if $purge; then
  # Guard against an env var pointing somewhere precious.
  case "$(realpath -m "$DISPATCH_STACK_DIR")" in
    / | /tmp | /root | /home | "$(realpath -m "${HOME:-/}")")
      die "refusing to delete DISPATCH_STACK_DIR=$DISPATCH_STACK_DIR" ;;
  esac
  if ((rc != 0)); then
    die "not purging $DISPATCH_STACK_DIR: a server may still be running"
  fi
  if [[ -e "$DISPATCH_STACK_DIR" ]]; then
    say "deleting $DISPATCH_STACK_DIR"
    rm -rf "$DISPATCH_STACK_DIR"
  else
    say "nothing to purge ($DISPATCH_STACK_DIR does not exist)"
  fi
fi
exit "$rc"
