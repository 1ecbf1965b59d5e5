#!/usr/bin/env bash
# Runs jq-server and one jq-worker (example tasks) in the foreground. Settings come from JQ_*
# variables (see README); JQ_TASKS names the worker's task modules.
#
# Ctrl-C or SIGTERM stops the worker first (it finishes and reports its jobs), then the
# server. Each child runs in its own session (setsid) so the terminal's SIGINT reaches only
# this script: were it to reach both, the server could be gone before the worker reported,
# and the finished jobs would run again once their leases expired. A second Ctrl-C tells the
# worker to stop at once. When either cannot start, the script exits non-zero and the
# child's one-line cause is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export JQ_DATABASE_URL=${JQ_DATABASE_URL:-sqlite:///.jq/jobq.db}
export JQ_GRPC_PORT=${JQ_GRPC_PORT:-50051}
export JQ_HTTP_PORT=${JQ_HTTP_PORT:-8080}
export JQ_WORKER_HTTP_PORT=${JQ_WORKER_HTTP_PORT:-8081}
export JQ_LOG_FORMAT=${JQ_LOG_FORMAT:-text}
export JQ_SERVER_ADDRESS=${JQ_SERVER_ADDRESS:-127.0.0.1:${JQ_GRPC_PORT}}
export JQ_TASKS=${JQ_TASKS:-jobq.examples}
# Local development: with no credentials configured, every call runs unauthenticated (the
# server says so in one line at start). Set JQ_AUTH_BOOTSTRAP_KEYS to try auth locally.
if [[ -z ${JQ_AUTH_BOOTSTRAP_KEYS:-}${JQ_AUTH_JWT_JWKS:-}${JQ_AUTH_MTLS_SUBJECTS:-} ]]; then
  export JQ_AUTH_UNAUTHENTICATED=${JQ_AUTH_UNAUTHENTICATED:-true}
fi
START_WAIT=${JQ_RUN_START_WAIT:-30} # seconds each process gets to become ready
mkdir -p .jq

server=""
worker=""

# Stop one child and wait until it is gone; a signal that interrupts the wait is handled
# by the trap in force, and the wait goes on.
stop_child() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    wait "$pid" 2>/dev/null || true
  done
}

stop() {
  # While the worker drains, another Ctrl-C is passed on: its second signal means "now".
  trap '[[ -n $worker ]] && kill -TERM "$worker" 2>/dev/null || true' INT TERM HUP
  stop_child "$worker"
  trap '' INT TERM HUP # the server stops within JQ_SHUTDOWN_GRACE
  stop_child "$server"
}
trap 'stop; exit 0' INT TERM HUP

# Exit with a child's status; its stderr already said why.
fail() {
  local rc=$1
  stop
  exit "$((rc == 0 ? 1 : rc))"
}

# Wait for a process's /readyz; return non-zero if it ended first or never became ready.
await_ready() {
  local pid=$1 port=$2 name=$3 deadline=$((SECONDS + START_WAIT))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if "$bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:${port}/readyz', timeout=1)" 2>/dev/null; then
      kill -0 "$pid" 2>/dev/null && return 0 # answered by it, not by whoever holds the port
      return 1
    fi
    sleep 0.2
  done
  echo "jobq: $name not ready after ${START_WAIT}s: see http://127.0.0.1:${port}/readyz" >&2
  return 1
}

"$bin/jq-server" migrate >/dev/null

setsid "$bin/jq-server" &
server=$!
if ! await_ready "$server" "$JQ_HTTP_PORT" jq-server; then
  rc=0
  kill -0 "$server" 2>/dev/null || wait "$server" || rc=$?
  fail "$rc"
fi

setsid "$bin/jq-worker" &
worker=$!
if ! await_ready "$worker" "$JQ_WORKER_HTTP_PORT" jq-worker; then
  rc=0
  kill -0 "$worker" 2>/dev/null || wait "$worker" || rc=$?
  fail "$rc"
fi

echo "jobq: gRPC on 127.0.0.1:${JQ_GRPC_PORT}, HTTP on 127.0.0.1:${JQ_HTTP_PORT} (metrics, healthz, readyz)"
echo "jobq: try  .venv/bin/jq-ctl submit echo '{\"msg\":\"hi\"}' --watch   (Ctrl-C stops)"
# Either process ending on its own ends the run, with its status.
rc=0
wait -n "$server" "$worker" || rc=$?
fail "$rc"
