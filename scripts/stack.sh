#!/usr/bin/env bash
# Start, stop and inspect the local stack: MLflow server, Prefect server, deployment server.
# Each service runs in its own process group (setsid), whose id is kept in $STACK_DIR/NAME.pid
# (default .stack/, git-ignored) with its log beside it: `down` stops whole groups, so no worker
# of a service survives it; `up` restarts a service that died or stopped answering, after
# cleaning what is left of its group, and remembers the ports it was given in ports.env.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
stack="${STACK_DIR:-$root/.stack}"
bin="$root/.venv/bin"
mkdir -p "$stack"

# Ports: given in the environment, else those of the last `up`, else the defaults.
remembered="$stack/ports.env"
if [ -f "$remembered" ]; then
  # shellcheck source=/dev/null
  saved_mlflow=$(. "$remembered"; echo "${MLFLOW_PORT:-}")
  saved_prefect=$(. "$remembered"; echo "${PREFECT_PORT:-}")
fi
export MLFLOW_PORT="${MLFLOW_PORT:-${saved_mlflow:-5000}}"
export PREFECT_PORT="${PREFECT_PORT:-${saved_prefect:-4200}}"
export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export PREFECT_HOME="${PREFECT_HOME:-$stack/prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_API_URL="$PREFECT_API_URL"
# The server streams flow-run logs, so `prefect deployment run --watch` shows them (progress, and
# why a run failed), not only state changes.
export PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED=true PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED=true
export GLASSES_CACHE_DIR="${GLASSES_CACHE_DIR:-$root/.cache/glasses}"
export PATH="$bin:$PATH"

SERVICES=(mlflow prefect serve)

group() { [ -f "$stack/$1.pid" ] && cat "$stack/$1.pid"; }
# Processes of group $1 that still run (zombies, dead but not yet reaped, do not count).
members() { ps -eo pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ {print $1}'; }
# Any process of the service's group still runs (the leader or a worker it left behind).
group_alive() { local g; g=$(group "$1") && [ -n "$(members "$g")" ]; }
leader_alive() { local g; g=$(group "$1") && members "$g" | grep -qx "$g"; }

healthy() {  # the service answers, checked on the service itself (serve: its deployment is
  # registered; by HTTP, since a `prefect` CLI call costs seconds of CPU at every poll)
  case $1 in
    mlflow) curl -sf --max-time 5 "$MLFLOW_TRACKING_URI/health" ;;
    prefect) curl -sf --max-time 5 "$PREFECT_API_URL/health" ;;
    serve) leader_alive serve && curl -sf --max-time 5 "$PREFECT_API_URL/deployments/name/glasses/full" ;;
  esac >/dev/null 2>&1
}

stop() {  # name: TERM the whole group, KILL what is left after 30 s
  local name=$1 g
  g=$(group "$name") || return 0
  if [ -n "$(members "$g")" ]; then
    kill -TERM -- "-$g" 2>/dev/null || true
    for _ in $(seq 1 30); do [ -n "$(members "$g")" ] || break; sleep 1; done
    kill -KILL -- "-$g" 2>/dev/null || true
    for _ in $(seq 1 10); do [ -n "$(members "$g")" ] || break; sleep 0.5; done
    echo "$name: stopped (process group $g)"
  fi
  rm -f "$stack/$name.pid"
}

start() {  # name, command...: in a new session, so the group id is the leader's pid
  local name=$1; shift
  setsid "$@" >"$stack/$name.log" 2>&1 </dev/null &
  echo $! >"$stack/$name.pid"
  echo "$name: started (process group $!, log $stack/$name.log)"
}

wait_for() {  # name, within 180 s
  local name=$1
  for _ in $(seq 1 180); do
    if healthy "$name"; then return 0; fi
    if ! leader_alive "$name"; then
      echo "$name: exited; last lines of its log:" >&2; tail -n 20 "$stack/$name.log" >&2; return 1
    fi
    sleep 1
  done
  echo "$name: not ready after 180 s (see $stack/$name.log)" >&2; return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure() {  # name, port (or ""), command...: keep a healthy service, else clean up and start
  local name=$1 port=$2; shift 2
  if leader_alive "$name" && healthy "$name"; then
    echo "$name: running (process group $(group "$name"))"; return 0
  fi
  if group_alive "$name"; then
    echo "$name: not answering; stopping what is left of process group $(group "$name")"
  fi
  stop "$name" >/dev/null
  if [ -n "$port" ] && ! port_free "$port"; then
    echo "port $port (for $name) is taken by another program; set ${name^^}_PORT to a free port" >&2
    exit 1
  fi
  start "$name" "$@"
}

up() {
  command -v curl >/dev/null || { echo "stack.sh needs curl: install it (apt-get install curl)" >&2; exit 1; }
  printf 'MLFLOW_PORT=%s\nPREFECT_PORT=%s\n' "$MLFLOW_PORT" "$PREFECT_PORT" >"$remembered"
  ensure mlflow "$MLFLOW_PORT" "$root/mlflow/server.sh"
  ensure prefect "$PREFECT_PORT" prefect server start --host 127.0.0.1 --port "$PREFECT_PORT"
  wait_for mlflow
  wait_for prefect
  ensure serve "" python -m deployments.serve
  wait_for serve
  echo "MLflow UI:  $MLFLOW_TRACKING_URI"
  echo "Prefect UI: http://127.0.0.1:$PREFECT_PORT"
}

down() { for name in serve prefect mlflow; do stop "$name"; done; }

status() {
  local name
  for name in "${SERVICES[@]}"; do
    if leader_alive "$name" && healthy "$name"; then echo "$name: running (process group $(group "$name"))"
    elif group_alive "$name"; then echo "$name: not answering (process group $(group "$name")); run \`make up\`"
    else echo "$name: stopped"; fi
  done
}

env_() {  # the stack's environment, for `eval "$(scripts/stack.sh env)"`
  for var in MLFLOW_TRACKING_URI PREFECT_API_URL PREFECT_HOME GLASSES_CACHE_DIR; do echo "export $var=${!var}"; done
}

case "${1:-}" in
  up) up ;; down) down ;; status) status ;; env) env_ ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
