"""The temporary Prefect server is accepted only when it is `glasses run`'s own child that
answers: another process that took the chosen port in between must not stand in for it."""

from __future__ import annotations

import socket
import subprocess
import sys

from flows.temporary_server import _serves

LISTEN = """
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(60)
"""


def test_only_the_child_that_listens_on_the_port_counts_as_the_server() -> None:
    with socket.socket() as other:  # another process's server on the port ours was to take
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        ours = subprocess.Popen([sys.executable, "-c", LISTEN], stdout=subprocess.PIPE, text=True)
        try:
            own_port = int(ours.stdout.readline())
            assert not _serves(ours, taken)
            assert _serves(ours, own_port)
        finally:
            ours.kill()
            ours.wait()
    assert not _serves(ours, own_port)  # gone
