"""What the operator sees while a run works: log lines through Prefect's run logger (the UI and
the console of `glasses run`), and a progress artifact for stages made of many tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogWorker

from glasses.progress import duration, remaining


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's logger for the current flow or task run; a plain logger when a task's function
    is called directly (`task.fn`, in tests)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("glasses")


@contextmanager
def failures_reported() -> Iterator[None]:
    """A flow's error as one line in its run log, sent before the run turns Failed.

    `prefect deployment run --watch` stops at the Failed state and shows only the log lines
    that reached the server by then; Prefect's own error log line is sent after it.
    """
    try:
        yield
    except Exception as error:
        run_logger().error("%s: %s", type(error).__name__, error)
        APILogWorker.drain_all(timeout=5)
        raise


class StageProgress:
    """A Prefect progress artifact (key `<stage>-progress`) and one log line per finished task."""

    def __init__(self, stage: str, total: int):
        self.stage, self.total, self.done = stage, total, 0
        self.started = time.monotonic()
        self.artifact = create_progress_artifact(
            0.0, key=f"{stage}-progress", description=f"{stage}: 0/{total} done"
        )

    def advance(self) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        line = (
            f"{self.stage}: {self.done}/{self.total} done, elapsed {duration(elapsed)}, "
            f"ETA {duration(remaining(elapsed, self.done, self.total))}"
        )
        update_progress_artifact(self.artifact, 100 * self.done / self.total, description=line)
        run_logger().info(line)
