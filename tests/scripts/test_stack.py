"""`scripts/stack.sh` owns its process groups: services killed with SIGKILL are cleaned up and
restarted by `up`, `down` leaves no process behind, and a run with MLflow down says why.

The real stack on free ports, in temporary folders, as in tests/e2e.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
SERVICES = ("mlflow", "prefect", "serve")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stack_sh(env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ROOT / "scripts/stack.sh", command], env=env, capture_output=True, text=True, timeout=400
    )


def group_members(group: int) -> list[int]:
    """Running processes whose process group is `group` (what `pgrep -g` finds, less zombies:
    here PID 1 does not reap orphans, and a zombie holds neither a port nor memory)."""
    found = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split() if not zombie(int(pid))]


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True  # gone


def groups(folder: Path) -> dict[str, int]:
    return {name: int((folder / f"{name}.pid").read_text()) for name in SERVICES}


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_kill_9_each_service_then_up_status_down(tmp_path) -> None:
    folder = tmp_path / "stack"
    env = {
        **os.environ,
        "MLFLOW_PORT": str(free_port()),
        "PREFECT_PORT": str(free_port()),
        "STACK_DIR": str(folder),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "MLFLOW_STORE_DIR": str(tmp_path / "mlflow"),
        "GLASSES_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    seen: set[int] = set()
    try:
        started = stack_sh(env, "up")
        assert started.returncode == 0, started.stdout + started.stderr
        first = groups(folder)
        seen |= set(first.values())

        # Ports given to `up` are remembered for a shell that does not set them.
        fresh = {k: v for k, v in env.items() if k not in ("MLFLOW_PORT", "PREFECT_PORT")}
        assert f"127.0.0.1:{env['MLFLOW_PORT']}" in stack_sh(fresh, "env").stdout

        for name in SERVICES:  # only the leader: its workers stay behind, holding the port
            os.kill(first[name], signal.SIGKILL)
        time.sleep(1)
        assert group_members(first["mlflow"]), "precondition: MLflow's workers outlive it"
        assert "not answering" in stack_sh(env, "status").stdout

        again = stack_sh(env, "up")
        assert again.returncode == 0, again.stdout + again.stderr
        second = groups(folder)
        seen |= set(second.values())
        for name in SERVICES:
            assert second[name] != first[name]
            assert group_members(first[name]) == [], f"{name}: leftovers of the killed service"
        status = stack_sh(env, "status").stdout
        assert status.count(": running") == 3, status

        # MLflow gone entirely: the deployment run fails, and --watch shows why.
        os.killpg(second["mlflow"], signal.SIGKILL)
        watch_env = {**env, **dict(
            line.removeprefix("export ").split("=", 1)
            for line in stack_sh(env, "env").stdout.splitlines()
        )}  # fmt: skip
        watched = subprocess.run(
            [BIN / "prefect", "deployment", "run", "glasses/full", "--watch",
             "--param", "profile=tiny", "--param", "data=synthetic"],
            env=watch_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        output = watched.stdout + watched.stderr
        assert watched.returncode != 0
        assert "MLflow tracking server" in output and "not reachable" in output, output[-3000:]
    finally:
        stopped = stack_sh(env, "down")
    assert stopped.returncode == 0, stopped.stderr
    for group in seen:
        assert group_members(group) == [], f"process group {group} survived `down`"
