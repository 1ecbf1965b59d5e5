#!/usr/bin/env bash
# Runs jq-server and one jq-worker (example tasks) in the foreground; Ctrl-C or SIGTERM
# stops both cleanly. Settings come from JQ_* variables (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export JQ_DATABASE_URL=${JQ_DATABASE_URL:-sqlite:///.jq/jobq.db}
export JQ_GRPC_PORT=${JQ_GRPC_PORT:-50051}
export JQ_HTTP_PORT=${JQ_HTTP_PORT:-8080}
export JQ_LOG_FORMAT=${JQ_LOG_FORMAT:-text}
export JQ_SERVER_ADDRESS=${JQ_SERVER_ADDRESS:-127.0.0.1:${JQ_GRPC_PORT}}
mkdir -p .jq

"$bin/jq-server" migrate >/dev/null
"$bin/jq-server" &
server=$!
# Start the worker once the server answers, so it does not begin with failed retries.
for _ in $(seq 1 100); do
  "$bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:${JQ_HTTP_PORT}/readyz', timeout=1)" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
"$bin/jq-worker" --tasks "${JQ_TASKS:-jobq.examples}" &
worker=$!

stop() {
  trap - INT TERM
  kill -TERM "$worker" 2>/dev/null || true
  wait "$worker" 2>/dev/null || true
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM

echo "jobq: gRPC on 127.0.0.1:${JQ_GRPC_PORT}, HTTP on 127.0.0.1:${JQ_HTTP_PORT} (metrics, healthz, readyz)"
echo "jobq: try  .venv/bin/jq-ctl submit echo '{\"msg\":\"hi\"}' --watch   (Ctrl-C stops)"
# Either process ending ends the run.
wait -n "$server" "$worker" || true
stop
