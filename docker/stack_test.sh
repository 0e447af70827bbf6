#!/usr/bin/env bash
# `make stack-test`: the container stack for real. Builds the images, starts docker/compose.yaml
# with host networking (compose.host.yaml), runs `glasses/full` (synthetic data, tiny profile)
# through the Prefect worker and its tasks on the two Dask workers, from this machine's Prefect
# CLI, and checks the registry and artifacts over HTTP (stack_check.py). Then twice more: trained
# anew beside a busy loop on every core, and with a Dask worker container killed during
# cross-validation (the flow must finish, or fail with one line and finish when run again,
# reusing what was done). Prints the image's size, the build, start and run times, and removes
# every container and volume it made, also on failure.
#
# Engine: Docker Compose, else podman + podman-compose (podman's settings for machines without
# systemd are written under $STACK_TEST_DIR). Without either it says why and exits 0 (skipped).
# BASE_IMAGE (default python:3.12-slim): when it can be neither found nor pulled, a Debian
# bookworm image is built with debootstrap and kept as localhost/debian:bookworm.
# TORCH_FLAVOUR (default cpu; cuda) is the image's torch. Wheels of it that this machine keeps on
# disk (STACK_TEST_WHEEL_DIRS) are handed to the build instead of downloading them: for cpu the
# newest CPU build of torch in the project's range (here its index cannot be reached), for cuda
# the torch stack of .venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/.venv/bin"
state="${STACK_TEST_DIR:-$root/.stack/containers}"
project="${STACK_TEST_PROJECT:-glasses-stacktest}"
base="${BASE_IMAGE:-python:3.12-slim}"
flavour="${TORCH_FLAVOUR:-cpu}"
wheel_dirs="${STACK_TEST_WHEEL_DIRS:-/opt/wheels /opt/pypi-more/files}"
export GLASSES_PG_PORT="${GLASSES_PG_PORT:-15432}" GLASSES_MLFLOW_PORT="${GLASSES_MLFLOW_PORT:-15000}"
export GLASSES_PREFECT_PORT="${GLASSES_PREFECT_PORT:-14200}" GLASSES_DASK_PORT="${GLASSES_DASK_PORT:-18786}"
export GLASSES_DASK_DASHBOARD_PORT="${GLASSES_DASK_DASHBOARD_PORT:-18787}"
export GLASSES_WORKER_HEALTH_PORT="${GLASSES_WORKER_HEALTH_PORT:-18080}"
mkdir -p "$state"

skip() { echo "stack-test SKIPPED: $*"; exit 0; }
now() { date +%s; }

find_engine() {
  if command -v docker >/dev/null && docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker compose=(docker compose); build_net=(); return
  fi
  if ! command -v podman >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
     && [ -z "${STACK_TEST_NO_INSTALL:-}" ]; then
    echo "no container engine: installing podman, runc and debootstrap with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap
  fi
  command -v podman >/dev/null || skip "neither Docker Compose (docker compose + a running engine)
  nor podman is available. Install one: apt-get install -y podman runc debootstrap"
  engine=podman build_net=(--network host)
  podman_settings
  if ! command -v podman-compose >/dev/null && [ ! -x "$bin/podman-compose" ]; then
    local spec
    spec=$("$bin/python" -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['containers'])")
    echo "installing $spec into .venv (the 'containers' extra)"
    "$bin/python" -m pip install --quiet "$spec"
  fi
  compose=("$(command -v podman-compose || echo "$bin/podman-compose")")
}

podman_settings() {  # runc, cgroupfs, file logs and ulimits that this kind of host allows
  [ -n "${CONTAINERS_CONF:-}" ] || {
    export CONTAINERS_CONF="$state/containers.conf"
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$state/events.log"
runtime = "runc"
EOF
  }
  [ -n "${CONTAINERS_STORAGE_CONF:-}" ] || {
    export CONTAINERS_STORAGE_CONF="$state/storage.conf"
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$state/storage"
runroot = "$state/run"
EOF
  }
}

image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }

choose_base() {  # the base image, built from the Debian mirror when no registry can provide one
  if image_exists "$base" || timeout 60 "$engine" pull -q "$base" >/dev/null 2>&1; then return; fi
  echo "base image $base: neither local nor pullable; using localhost/debian:bookworm"
  base=localhost/debian:bookworm
  image_exists "$base" && return
  command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
  local mirror rootfs="$state/rootfs"
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -oE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' | grep -oE 'https?://[^ ]+' | head -n1 || true)
  echo "debootstrap bookworm from ${mirror:=http://deb.debian.org/debian}"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$state/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed; see $state/debootstrap.log" >&2; exit 1; }
  tar -C "$rootfs" -c . | "$engine" import - "$base" >/dev/null
  rm -rf "$rootfs"
}

stage_wheels() {  # hard links to local wheels of the image's torch (see above); prints their names
  rm -rf "$state/wheels" && mkdir -p "$state/wheels"
  "$bin/python" - "$flavour" "$state/wheels" $wheel_dirs <<'EOF'
import os, re, shutil, sys, tomllib
from importlib.metadata import distributions

from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

flavour, dest, *folders = sys.argv[1:]
found = {f: os.path.join(d, f) for d in filter(os.path.isdir, folders) for f in sorted(os.listdir(d))}
wheels = {f: parse_wheel_filename(f)[:2] for f in found if f.endswith(".whl")}
if flavour == "cpu":  # per Python tag (the build takes the one that fits) the newest in range
    deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
    torch = next(r for r in map(Requirement, deps) if r.name == "torch")
    newest = {}
    for wheel, (name, version) in wheels.items():
        if name == "torch" and version.local == "cpu" and torch.specifier.contains(version):
            tag = wheel.split("-")[2]
            if tag not in newest or version > wheels[newest[tag]][1]:
                newest[tag] = wheel
    chosen = list(newest.values())
else:  # the wheels of .venv's torch and of the CUDA libraries it installed
    stack = {
        (re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower(), dist.version)
        for dist in distributions()
        if re.match(r"(torch|triton|nvidia|cuda)([-_.]|$)", dist.metadata["Name"].lower())
    }
    chosen = {wheels[f]: f for f in wheels if (wheels[f][0], str(wheels[f][1])) in stack}.values()
for wheel in chosen:
    try:
        os.link(found[wheel], os.path.join(dest, wheel))
    except OSError:
        shutil.copy(found[wheel], dest)
    print(wheel)
EOF
}

build() {
  local ca=() wheels
  # A CA bundle pip must trust (networks that re-sign TLS): mounted for the build, not copied.
  if [ "$engine" = podman ] && [ -f "${PIP_CERT:-}" ]; then
    ca=(-v "$PIP_CERT:/etc/ssl/pip-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/pip-ca.crt)
  fi
  wheels=$(stage_wheels | sort | tr '\n' ' ')
  echo "torch: $flavour; local wheels: ${wheels:-none}"
  "$engine" build "${build_net[@]}" --build-arg BASE_IMAGE="$base" \
    -f docker/postgres.Dockerfile -t glasses-postgres .
  "$engine" build "${build_net[@]}" "${ca[@]}" --build-arg BASE_IMAGE="$base" \
    --build-arg TORCH_FLAVOUR="$flavour" \
    --build-context wheels="$state/wheels" --build-arg LOCAL_WHEELS="$wheels" \
    -f docker/Dockerfile -t glasses .
  size="$(image_size glasses) (torch $flavour; glasses-postgres $(image_size glasses-postgres))"
  echo "image glasses: $size"
}

image_size() {  # in GB (10^9 bytes), as `docker images` and `podman images` count
  "$engine" image inspect -f '{{.Size}}' "$1" | awk '{printf "%.2f GB", $1 / 1e9}'
}

stack() { "${compose[@]}" -p "$project" -f docker/compose.yaml -f docker/compose.host.yaml "$@"; }

containers() { "$engine" ps -a -q --filter "label=com.docker.compose.project=$project"; }

teardown() {
  local status=$?
  trap - EXIT INT TERM
  stress_stop
  if [ "$status" != 0 ]; then
    mkdir -p "$state/logs"
    for id in $(containers); do
      "$engine" logs "$id" >"$state/logs/$("$engine" inspect -f '{{.Name}}' "$id" | tr -d /).log" 2>&1 || true
    done
    echo "stack-test FAILED; container logs in $state/logs/" >&2
  fi
  stack down -v -t 5 >/dev/null 2>&1 || true
  for id in $(containers); do "$engine" rm -f "$id" >/dev/null 2>&1 || true; done
  for volume in pgdata artifacts cache; do
    "$engine" volume rm -f "${project}_$volume" >/dev/null 2>&1 || true
  done
  exit "$status"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() {  # the service's own health check, run now (podman without systemd runs none itself)
  local id=$1
  if [ "$engine" = podman ]; then
    podman healthcheck run "$id" >/dev/null 2>&1
  else
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ]
  fi
}

wait_healthy() {  # service..., within 300 s
  local service id
  for service in "$@"; do
    id=$(containers_of "$service")
    for _ in $(seq 1 300); do
      healthy "$id" && continue 2
      [ "$("$engine" inspect -f '{{.State.Status}}' "$id")" = exited ] && [ "$("$engine" inspect -f '{{.RestartCount}}' "$id")" -gt 5 ] \
        && { echo "$service keeps exiting" >&2; return 1; }
      sleep 1
    done
    echo "$service: not healthy after 300 s" >&2; return 1
  done
}

containers_of() {
  "$engine" ps -a -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" | head -n1
}

main() {
  find_engine
  echo "engine: $engine (${compose[*]})"
  for var in GLASSES_PG_PORT GLASSES_MLFLOW_PORT GLASSES_PREFECT_PORT GLASSES_DASK_PORT \
             GLASSES_DASK_DASHBOARD_PORT GLASSES_WORKER_HEALTH_PORT; do
    port_free "${!var}" || { echo "port ${!var} is taken; set $var to a free port" >&2; exit 1; }
  done
  trap teardown EXIT INT TERM

  local t0 t1 t2 t3
  t0=$(now)
  choose_base
  build
  t1=$(now)
  # Start in dependency order: podman-compose before podman 4.6 ignores `service_healthy`.
  stack up -d --no-build postgres && wait_healthy postgres
  stack up -d --no-build --no-deps mlflow prefect && wait_healthy mlflow prefect
  stack up -d --no-build --no-deps prefect-worker dask-scheduler && wait_healthy prefect-worker dask-scheduler
  stack up -d --no-build --no-deps dask-worker-1 dask-worker-2
  t2=$(now)

  export PREFECT_API_URL="http://127.0.0.1:$GLASSES_PREFECT_PORT/api"
  export MLFLOW_TRACKING_URI="http://127.0.0.1:$GLASSES_MLFLOW_PORT"
  export PREFECT_HOME="$state/prefect-home"
  run_flow plain "$(on_dask)"
  t3=$(now)
  "$bin/python" docker/stack_check.py "$MLFLOW_TRACKING_URI" "http://127.0.0.1:$GLASSES_DASK_DASHBOARD_PORT"

  # The same run again, trained anew (resume off), beside a busy loop on every core.
  stress_start
  run_flow stressed "$(on_dask ', "resume": false')"
  stress_stop
  t4=$(now)
  "$bin/python" docker/stack_check.py "$MLFLOW_TRACKING_URI" "http://127.0.0.1:$GLASSES_DASK_DASHBOARD_PORT" --later

  kill_a_worker_mid_cv
  t5=$(now)

  echo "stack-test PASSED: image glasses $size, build $((t1 - t0)) s, start $((t2 - t1)) s, tiny run $((t3 - t2)) s," \
    "under stress $((t4 - t3)) s, with a worker killed $((t5 - t4)) s"
}

on_dask() {  # the flow's overrides: its tasks on the stack's Dask cluster, plus runtime members $1
  echo "{\"runtime\": {\"task_runner\": \"dask\", \"dask_address\": \"tcp://127.0.0.1:$GLASSES_DASK_PORT\"${1:-}}${2:+, $2}}"
}

run_flow() {  # NAME OVERRIDES: glasses/full (synthetic, tiny) through the stack, watched to its end
  local status=0
  echo "--- run $1: $2"
  "$bin/prefect" deployment run glasses/full --param data=synthetic --param profile=tiny \
    --param overrides="$2" --watch >"$state/run-$1.log" 2>&1 || status=$?
  tail -n 3 "$state/run-$1.log"
  [ "$status" = 0 ] && grep -q "Completed" "$state/run-$1.log"
}

stress_start() {  # busy loops, STACK_TEST_STRESS per core (default 1), for as long as the run
  local loop
  for loop in $(seq $(( $(nproc) * ${STACK_TEST_STRESS:-1} ))); do
    bash -c 'while :; do :; done' &
    stressors+=("$!")
  done
  echo "stress: ${#stressors[@]} busy loops (load before: $(cut -d' ' -f1 /proc/loadavg))"
}

stress_stop() {  # `return 0`: a bare return in the EXIT trap would return the failed command's status
  [ "${#stressors[@]}" = 0 ] && return 0
  echo "stress: load at the end $(cut -d' ' -f1 /proc/loadavg)"
  kill "${stressors[@]}" 2>/dev/null || true
  wait "${stressors[@]}" 2>/dev/null || true
  stressors=()
}

container_listening_on() {  # PORT: the container whose process listens there (host networking)
  local pid id
  pid=$(ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
  id=$(grep -o '[0-9a-f]\{64\}' "/proc/$pid/cgroup" | head -n1)
  [ -n "$id" ] || { echo "no container listens on port $1" >&2; return 1; }
  echo "$id"
}

kill_a_worker_mid_cv() {  # new, longer trainings (another seed); the worker of a fold killed
  local overrides since watcher address container
  # tiny's 12 steps end before the kill lands: CNN folds of 1500 steps (some 20 s each).
  overrides=$(on_dask '' '"seed": 11, "cnn": {"optimiser": {"steps": 1500, "check_every": 100, "patience": 0}}')
  since=$(date +%s%3N)
  run_flow killed "$overrides" &
  watcher=$!
  address=$("$bin/python" docker/stack_check.py --wait-for-fold "$MLFLOW_TRACKING_URI" "$since")
  container=$(container_listening_on "${address##*:}")
  "$engine" kill "$container" >/dev/null
  echo "killed the Dask worker at $address (container ${container:0:12}) while its fold ran"
  sleep 5
  echo "workers at the scheduler: $(curl -s "http://127.0.0.1:$GLASSES_DASK_DASHBOARD_PORT/json/counts.json")"
  if wait "$watcher"; then
    echo "worker killed mid-CV: the flow finished (Dask ran the fold again on the other worker)"
    "$bin/python" docker/stack_check.py --folds "$MLFLOW_TRACKING_URI"
    return
  fi
  # Else it must have said why in one line, and the same run again reuses what finished.
  grep -E "glasses: |Finished in state Failed" "$state/run-killed.log" | tail -n 2
  run_flow rerun "$overrides"
  "$bin/python" docker/stack_check.py --reused "$MLFLOW_TRACKING_URI"
}

stressors=()
main "$@"
