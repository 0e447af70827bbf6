#!/usr/bin/env bash
# The MLflow tracking server. Artifacts are proxied by the server (mlflow-artifacts:/), so clients
# need no access to where they are kept. Defaults are the local stack's: SQLite backend store and
# artifact folder under mlflow/store/ (git-ignored), served on 127.0.0.1 only. The container stack
# (docker/compose.yaml) sets MLFLOW_BACKEND_STORE_URI (PostgreSQL), MLFLOW_STORE_DIR (a volume)
# and MLFLOW_HOST; MLFLOW_ARTIFACTS_DESTINATION may name an object store (s3://bucket/path).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
store="${MLFLOW_STORE_DIR:-$here/store}"
mkdir -p "$store"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$store/artifacts}"
case "$artifacts" in *://*) ;; *) mkdir -p "$artifacts" ;; esac
exec "${MLFLOW_BIN:-mlflow}" server \
  --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:-sqlite:///$store/mlflow.db}" \
  --serve-artifacts --artifacts-destination "$artifacts" \
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" --workers 1
