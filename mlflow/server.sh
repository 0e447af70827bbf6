#!/usr/bin/env bash
# The local MLflow tracking server: SQLite backend store and a local artifact root, both under
# mlflow/store/ (git-ignored), served on 127.0.0.1 only. Artifacts are proxied by the server
# (mlflow-artifacts:/), so clients need no access to the folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
store="${MLFLOW_STORE_DIR:-$here/store}"
mkdir -p "$store/artifacts"
exec "${MLFLOW_BIN:-mlflow}" server \
  --backend-store-uri "sqlite:///$store/mlflow.db" \
  --artifacts-destination "$store/artifacts" \
  --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" --workers 1
