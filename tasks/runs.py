"""The end state of an MLflow run that a flow opened itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlflow import MlflowClient


@contextmanager
def ends_run(tracking: MlflowClient, run_id: str) -> Iterator[None]:
    """FINISHED when the block ends, FAILED when it raises (and the error goes on), so no run
    is left RUNNING by a flow that stopped."""
    try:
        yield
    except BaseException:
        tracking.set_terminated(run_id, "FAILED")
        raise
    tracking.set_terminated(run_id, "FINISHED")
