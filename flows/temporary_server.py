"""The temporary Prefect server of `glasses run`, tied to the life of the process that starts it.

Prefect starts its own temporary server when `PREFECT_API_URL` is unset, but as a plain child
process: a `glasses run` killed with SIGKILL leaves it running, parented to init. This one is the
same server (Prefect's API app under uvicorn, UI off) started with Linux's parent-death signal,
so the kernel stops it whenever its parent dies, however it dies.

Several first runs at once would each migrate the same new database (`PREFECT_HOME`'s SQLite
file) and break it; a lock in `PREFECT_HOME` lets one server start at a time, and the next
finds the database ready.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from glasses.locking import file_lock

PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """Runs in the child between fork and exec; the signal setting survives the exec."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serves(process: subprocess.Popen, port: int) -> bool:
    """Whether `process` itself listens on `port`: between choosing a free port and binding it,
    another process may take it, and its health check would answer for ours."""
    try:
        connections = psutil.Process(process.pid).net_connections("tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def _wait_until_healthy(process: subprocess.Popen, api: str, deadline: float, limit: float) -> None:
    port = int(api.rsplit(":", 1)[1].split("/")[0])
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the temporary Prefect server exited with code {process.returncode}; "
                "set PREFECT_API_URL to a running server (`make up`) instead"
            )
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200 and _serves(process, port):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"the temporary Prefect server at {api} did not start in {limit:.0f} s; raise "
        "runtime.server_start_seconds, or set PREFECT_API_URL to a running server (`make up`)"
    )


def _other_start(path: Path, holder: str) -> Exception:
    return RuntimeError(
        f"another temporary Prefect server is still starting ({path} held by {holder}); raise "
        "runtime.server_start_seconds, or set PREFECT_API_URL to a running server (`make up`)"
    )


@contextmanager
def temporary_prefect_server(timeout: float) -> Iterator[str]:
    """A Prefect API on a free loopback port for the duration of the block; yields its URL.
    `timeout` bounds the wait for the start lock and the start together."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    # The same settings as Prefect's own temporary server (`SubprocessASGIServer`).
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    parent, deadline = os.getpid(), time.monotonic() + timeout
    with file_lock(Path(PREFECT_HOME.value()) / "glasses-server-start.lock", timeout, _other_start):
        process = subprocess.Popen(command, env=env, preexec_fn=lambda: _die_with(parent))
        try:
            _wait_until_healthy(process, api, deadline, timeout)
        except BaseException:
            _stop(process)
            raise
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            try:
                yield api
            finally:
                # Logs and events still queued go out now: once the server is gone, Prefect's
                # workers would retry them for minutes at interpreter exit.
                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
