# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for the local (Docker-free) stack scripts.
# Sourced, never executed: kafka.sh, postgres.sh, up.sh and down.sh all read the
# same environment so that tests restarting one server mid-stream talk about
# exactly the instance up.sh started.

# --- settings (the same DISPATCH_* names the application reads) -------------
DISPATCH_KAFKA_BOOTSTRAP="${DISPATCH_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
DISPATCH_KAFKA_CONTROLLER_PORT="${DISPATCH_KAFKA_CONTROLLER_PORT:-9093}"
DISPATCH_KAFKA_HEAP="${DISPATCH_KAFKA_HEAP:-512m}"
DISPATCH_PG_HOST="${DISPATCH_PG_HOST:-127.0.0.1}"
DISPATCH_PG_PORT="${DISPATCH_PG_PORT:-5432}"
DISPATCH_PG_USER="${DISPATCH_PG_USER:-dispatch}"
DISPATCH_PG_PASSWORD="${DISPATCH_PG_PASSWORD:-dispatch}"
DISPATCH_PG_DATABASE="${DISPATCH_PG_DATABASE:-dispatch}"
DISPATCH_PG_TEST_DATABASE="${DISPATCH_PG_TEST_DATABASE:-dispatch_test}"
DISPATCH_STACK_DIR="${DISPATCH_STACK_DIR:-/tmp/dispatch-stack}"
DISPATCH_CACHE_DIR="${DISPATCH_CACHE_DIR:-${HOME:-/root}/.cache/dispatch}"
# Seconds to wait for a server to answer / to exit before escalating.
DISPATCH_START_TIMEOUT="${DISPATCH_START_TIMEOUT:-120}"
DISPATCH_STOP_TIMEOUT="${DISPATCH_STOP_TIMEOUT:-60}"

# Only the first bootstrap entry is ours to serve; the broker listens there.
_first_bootstrap="${DISPATCH_KAFKA_BOOTSTRAP%%,*}"
KAFKA_HOST="${_first_bootstrap%:*}"
KAFKA_PORT="${_first_bootstrap##*:}"
unset _first_bootstrap

DEPLOY_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG_DIR="$DISPATCH_STACK_DIR/logs"
RUN_DIR="$DISPATCH_STACK_DIR/run"

export DISPATCH_KAFKA_BOOTSTRAP DISPATCH_KAFKA_CONTROLLER_PORT DISPATCH_KAFKA_HEAP \
  DISPATCH_PG_HOST DISPATCH_PG_PORT DISPATCH_PG_USER DISPATCH_PG_PASSWORD \
  DISPATCH_PG_DATABASE DISPATCH_PG_TEST_DATABASE DISPATCH_STACK_DIR DISPATCH_CACHE_DIR

# --- output ------------------------------------------------------------------
# Every script says what it does: CI logs are the only record of a failed run.
say()  { printf '[%s] %s\n' "${SCRIPT_TAG:-stack}" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "${SCRIPT_TAG:-stack}" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "${SCRIPT_TAG:-stack}" "$*" >&2; exit 1; }

# Print the end of a log so a failure explains itself without a second run.
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -s "$file" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2
    printf -- '----- end of %s -----\n' "$file" >&2
  else
    printf -- '(log %s is empty or missing)\n' "$file" >&2
  fi
}

# --- processes and ports -----------------------------------------------------
# True if something accepts TCP connections on host:port. Uses bash's /dev/tcp
# so that no netcat flavour is needed; timeout guards against a black-holed host.
port_open() {
  timeout 2 bash -c ">/dev/tcp/$1/$2" 2>/dev/null
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# A pid file can outlive its process and the pid can be reused by something
# else; only trust it if the live process's command line mentions $2.
pid_matches() {
  local pid="$1" needle="$2"
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle"
}

# Wait up to $1 seconds for the command "$2..." to succeed.
wait_until() {
  local timeout="$1"; shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# apt-get update at most once per process tree: it is slow and needs network.
apt_install() {
  is_root || die "need root to install Debian packages: $*"
  command -v apt-get >/dev/null || die "no apt-get; install these yourself: $*"
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "${DISPATCH_APT_UPDATED:-}" ]]; then
    say "apt-get update"
    apt-get update -qq
    export DISPATCH_APT_UPDATED=1
  fi
  say "apt-get install -y $*"
  # Keep any config file we pre-seeded (createcluster.conf) without a prompt.
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

ensure_state_dirs() {
  mkdir -p "$DISPATCH_STACK_DIR" "$LOG_DIR" "$RUN_DIR"
  # PostgreSQL runs as the unprivileged postgres user, which must be able to
  # traverse into the state dir even when the caller's umask is strict.
  chmod 755 "$DISPATCH_STACK_DIR" "$LOG_DIR" "$RUN_DIR"
}
