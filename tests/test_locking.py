"""`glasses.locking`: one holder at a time, named when another waits too long, and no stale
lock when a holder dies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from glasses.locking import LockTimeout, file_lock


def test_a_second_holder_waits_then_is_told_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "store.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        expected = rf"{path} is held by pid {holder.pid} since"
        with pytest.raises(LockTimeout, match=expected), file_lock(path, timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()
    with file_lock(path, timeout=5):  # the kernel dropped the dead holder's lock
        assert path.read_text().startswith("pid ")


def test_the_caller_chooses_the_error(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.lock"  # its folder is made
    refused = pytest.raises(KeyError, match="b.lock")
    with file_lock(path, timeout=0), refused, file_lock(path, 0, lambda p, _: KeyError(p.name)):
        pass
    assert path.read_text() == ""  # released, no holder named


HOLD = """
import sys, time
from pathlib import Path
from glasses.locking import file_lock
with file_lock(Path(sys.argv[1]), timeout=5):
    print("held", flush=True)
    time.sleep(60)
"""
