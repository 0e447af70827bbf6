"""What the operator sees while a run works: log lines through Prefect's run logger (the UI and
the console of `glasses run`), copied to the flow run the operator watches, and a progress
artifact for stages made of many tasks.

Why the copy: `prefect deployment run glasses/full --watch` (`make demo`) and the flow run page
its URL opens follow that one flow run, while the work happens in its `glasses-study` sub-flow
and that sub-flow's tasks. Each progress line therefore goes to the run that logs it (the task's
own page keeps its lines) and, API only so the console shows it once, to the root flow run.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler, APILogWorker
from prefect.runtime import flow_run

from glasses.progress import (
    CheckScores,
    TrainingClock,
    duration,
    remaining,
    study_estimate,
)

Logger = logging.Logger | logging.LoggerAdapter
_last_line = time.monotonic()  # when this process last reported progress (for `heartbeat`)


def run_logger() -> Logger:
    """Prefect's logger for the current flow or task run; a plain logger when a task's function
    is called directly (`task.fn`, in tests)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("glasses")


@functools.cache
def _root_of(current: str) -> str:
    """The root flow run of the flow run `current` (the one this context runs in): one lookup
    per flow run and process; `current` itself when the API cannot say (progress lines never
    stop a training)."""
    try:
        return str(flow_run.get_root_flow_run_id())
    except Exception:  # noqa: BLE001 - any API trouble: the line stays in this run's log
        return current


@functools.cache
def _api_only() -> logging.Logger:
    """A logger that sends to the Prefect API and nowhere else (no console, no propagation)."""
    logger = logging.getLogger("glasses.watched")
    logger.addHandler(APILogHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


@dataclass(frozen=True)
class Reporter:
    """Where progress lines go: `here` (this run's log) and, when it is another flow run, the
    root flow run `watched`. Bound once, so a helper thread can use it outside Prefect's
    context."""

    here: Logger
    watched: str | None = None

    def line(self, message: str) -> None:
        global _last_line
        _last_line = time.monotonic()
        self.here.info(message)
        if self.watched is not None:
            _api_only().info(message, extra={"flow_run_id": self.watched})


def reporter() -> Reporter:
    """The `Reporter` of the current flow or task run."""
    here = run_logger()
    current = flow_run.get_id()
    if current is None or not isinstance(here, logging.LoggerAdapter):
        return Reporter(here)
    watched = _root_of(str(current))
    return Reporter(here, watched if watched != str(current) else None)


def report(message: str) -> None:
    """One progress line in this run's log and in the watched flow run's (see the module)."""
    reporter().line(message)


def training_lines(training: str, steps: int) -> Callable[[CheckScores], None]:
    """A progress line per check of one training of `steps` steps, named `training` as its task
    run is (`cnn-fold-1`, `scatnet-refit`)."""
    clock = TrainingClock(steps)
    return lambda check: report(clock.line(training, check))


def whole_run_estimate(trainings: int, at_once: int) -> Callable[[float], None]:
    """What to report once the first task of a study's `trainings` (`at_once` in parallel) is
    timed, given its seconds per training: the estimate of the rest
    (`glasses.progress.study_estimate`)."""

    def estimate(each: float) -> None:
        left = study_estimate(each, trainings - 1, at_once)
        report(
            f"whole run: about {duration(left)} left for {trainings - 1} more trainings "
            f"({at_once} at once, {duration(each)} each so far; explanations not counted)"
        )

    return estimate


@contextmanager
def heartbeat(what: str, every: float) -> Iterator[None]:
    """While the block runs, `<what>: still running, elapsed …` whenever no progress line was
    reported in this process for `every` seconds: a stage with no step lines of its own (the
    scattering coefficients, the registry, the explanations) is not mistaken for a hang."""
    out, started, stop = reporter(), time.monotonic(), threading.Event()

    def beat() -> None:
        while not stop.wait(max(1.0, every - (time.monotonic() - _last_line))):
            if time.monotonic() - _last_line >= every:
                out.line(f"{what}: still running, elapsed {duration(time.monotonic() - started)}")

    beating = threading.Thread(target=beat, name=f"heartbeat-{what}", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()


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
    """A Prefect progress artifact (key `<stage>-progress`) and one progress line per finished
    task; `on_first` is called with the seconds the first one took per training in it (a task
    of three stacked ScatNet folds is three trainings: counted as one, the whole-run estimate
    of `make demo` came out three times too long)."""

    def __init__(self, stage: str, total: int, on_first: Callable[[float], None] | None = None):
        self.stage, self.total, self.done = stage, total, 0
        self.on_first = on_first
        self.started = time.monotonic()
        self.artifact = create_progress_artifact(
            0.0, key=f"{stage}-progress", description=f"{stage}: 0/{total} done"
        )

    def advance(self, trainings: float = 1) -> None:
        """One more task finished, of `trainings` trainings."""
        self.done += 1
        elapsed = time.monotonic() - self.started
        line = (
            f"{self.stage}: {self.done}/{self.total} done, elapsed {duration(elapsed)}, "
            f"ETA {duration(remaining(elapsed, self.done, self.total))}"
        )
        update_progress_artifact(self.artifact, 100 * self.done / self.total, description=line)
        report(line)
        if self.done == 1 and self.on_first is not None:
            self.on_first(elapsed / max(trainings, 1))
