#!/usr/bin/env bash
# Bring up the local stack: a single-node KRaft Kafka broker and a private
# PostgreSQL cluster, both on 127.0.0.1, with state under $DISPATCH_STACK_DIR.
# Idempotent: running servers are left alone and only checked, cached jars and
# formatted storage are reused, so a second run takes seconds.
#
#   deploy/local/up.sh            # then: deploy/local/down.sh [--purge]
#
# Settings (env, defaults in common.sh): DISPATCH_KAFKA_BOOTSTRAP,
# DISPATCH_KAFKA_CONTROLLER_PORT, DISPATCH_KAFKA_HEAP, DISPATCH_PG_HOST,
# DISPATCH_PG_PORT, DISPATCH_PG_USER, DISPATCH_PG_PASSWORD,
# DISPATCH_PG_DATABASE, DISPATCH_PG_TEST_DATABASE, DISPATCH_STACK_DIR,
# DISPATCH_CACHE_DIR, DISPATCH_START_TIMEOUT.
set -euo pipefail
SCRIPT_TAG=up
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

t0=$SECONDS
say "state dir $DISPATCH_STACK_DIR, jar cache $DISPATCH_CACHE_DIR"
ensure_state_dirs

# PostgreSQL first: it is quick, and Kafka's first start may spend a while in
# Maven, so a broken database is reported without that wait.
t=$SECONDS
"$here/postgres.sh" start
say "PostgreSQL up in $((SECONDS - t))s"

t=$SECONDS
"$here/kafka.sh" start
say "Kafka up in $((SECONDS - t))s"

pg_url() {
  printf 'postgresql://%s:%s@%s:%s/%s' "$DISPATCH_PG_USER" "$DISPATCH_PG_PASSWORD" \
    "$DISPATCH_PG_HOST" "$DISPATCH_PG_PORT" "$1"
}

# Also written to a file so tests and shells can `source` it.
cat >"$DISPATCH_STACK_DIR/env" <<ENV
DISPATCH_KAFKA_BOOTSTRAP=$DISPATCH_KAFKA_BOOTSTRAP
DISPATCH_PG_HOST=$DISPATCH_PG_HOST
DISPATCH_PG_PORT=$DISPATCH_PG_PORT
DISPATCH_PG_USER=$DISPATCH_PG_USER
DISPATCH_PG_PASSWORD=$DISPATCH_PG_PASSWORD
DISPATCH_PG_DATABASE=$DISPATCH_PG_DATABASE
DISPATCH_PG_TEST_DATABASE=$DISPATCH_PG_TEST_DATABASE
DISPATCH_PG_DSN=$(pg_url "$DISPATCH_PG_DATABASE")
DISPATCH_TEST_PG_DSN=$(pg_url "$DISPATCH_PG_TEST_DATABASE")
ENV

say "stack is up in $((SECONDS - t0))s; settings (also in $DISPATCH_STACK_DIR/env):"
echo "DISPATCH_KAFKA_BOOTSTRAP=$DISPATCH_KAFKA_BOOTSTRAP"
echo "DISPATCH_PG_DSN=$(pg_url "$DISPATCH_PG_DATABASE")"
echo "DISPATCH_TEST_PG_DSN=$(pg_url "$DISPATCH_PG_TEST_DATABASE")"
say "logs: $LOG_DIR   stop: $here/down.sh [--purge]"
