#!/usr/bin/env bash
# Start, stop and inspect the local stack: MLflow server, Prefect server, deployment server.
# Each process writes a PID file and a log under $STACK_DIR (default .stack/, git-ignored);
# `up` reuses processes that are still alive, `down` stops all of them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
stack="${STACK_DIR:-$root/.stack}"
bin="$root/.venv/bin"
mkdir -p "$stack"

export MLFLOW_PORT="${MLFLOW_PORT:-5000}" PREFECT_PORT="${PREFECT_PORT:-4200}"
export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export PREFECT_HOME="${PREFECT_HOME:-$stack/prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_API_URL="$PREFECT_API_URL"
export GLASSES_CACHE_DIR="${GLASSES_CACHE_DIR:-$root/.cache/glasses}"
export PATH="$bin:$PATH"
# OpenMP threads that spin while waiting make torch up to 50x slower when any other process
# wants the cores (seen here: scattering of 2 images 0.05 s alone, 3.8 s next to one busy core).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

alive() { [ -f "$stack/$1.pid" ] && kill -0 "$(cat "$stack/$1.pid")" 2>/dev/null; }

start() {  # name, command...
  local name=$1; shift
  if alive "$name"; then echo "$name: running (pid $(cat "$stack/$name.pid"))"; return; fi
  setsid "$@" >"$stack/$name.log" 2>&1 < /dev/null &
  echo $! >"$stack/$name.pid"
  echo "$name: started (pid $!, log $stack/$name.log)"
}

wait_for() {  # name, check command..., within 180 s
  local name=$1; shift
  for _ in $(seq 1 180); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! alive "$name"; then echo "$name: exited; last lines of its log:" >&2; tail -n 20 "$stack/$name.log" >&2; return 1; fi
    sleep 1
  done
  echo "$name: not ready after 180 s (see $stack/$name.log)" >&2; return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  for pair in "mlflow:$MLFLOW_PORT" "prefect:$PREFECT_PORT"; do
    local name=${pair%%:*} port=${pair##*:}
    if ! alive "$name" && ! port_free "$port"; then
      echo "port $port (for $name) is taken by another program; set ${name^^}_PORT to a free port" >&2
      exit 1
    fi
  done
  start mlflow "$root/mlflow/server.sh"
  start prefect prefect server start --host 127.0.0.1 --port "$PREFECT_PORT"
  wait_for mlflow curl -sf "$MLFLOW_TRACKING_URI/health"
  wait_for prefect curl -sf "$PREFECT_API_URL/health"
  start serve python -m deployments.serve
  wait_for serve prefect deployment inspect glasses/full
  echo "MLflow UI:  $MLFLOW_TRACKING_URI"
  echo "Prefect UI: http://127.0.0.1:$PREFECT_PORT"
}

down() {
  for name in serve prefect mlflow; do
    if alive "$name"; then
      local pid; pid=$(cat "$stack/$name.pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "$name: stopped"
    fi
    rm -f "$stack/$name.pid"
  done
}

status() { for name in mlflow prefect serve; do alive "$name" && echo "$name: running" || echo "$name: stopped"; done; }

env_() {  # the stack's environment, for `eval "$(scripts/stack.sh env)"`
  for var in MLFLOW_TRACKING_URI PREFECT_API_URL PREFECT_HOME GLASSES_CACHE_DIR; do echo "export $var=${!var}"; done
}

case "${1:-}" in
  up) up ;; down) down ;; status) status ;; env) env_ ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
