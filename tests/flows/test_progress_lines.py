"""Progress lines reach the flow run the operator watches (`prefect deployment run --watch`
follows the root flow run only), once each, and a quiet stage still says it is running."""

from __future__ import annotations

import logging
import time

import pytest
from prefect import flow, get_client, task
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker
from prefect.runtime import flow_run

from tasks.progress import heartbeat, report


@task
def train() -> None:
    report("cnn-fold-1 step 10/20: from a task of the sub-flow")


@flow
def inner() -> str:
    report("stage load: started")
    train()
    return str(flow_run.get_id())


@flow
def outer() -> tuple[str, str]:
    return str(flow_run.get_id()), inner()


def _messages(flow_run_id: str) -> list[str]:
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    return [log.message for log in logs]


def test_sub_flow_and_task_lines_reach_the_root_run_once() -> None:
    root, sub = outer()
    APILogWorker.drain_all(timeout=10)
    on_root = _messages(root)
    assert on_root.count("stage load: started") == 1
    assert on_root.count("cnn-fold-1 step 10/20: from a task of the sub-flow") == 1
    on_sub = _messages(sub)  # the sub-flow and its task keep their own lines
    assert "stage load: started" in on_sub
    assert "cnn-fold-1 step 10/20: from a task of the sub-flow" in on_sub


def test_root_run_lines_are_not_copied_to_itself() -> None:
    @flow
    def alone() -> str:
        report("stage load: started")
        return str(flow_run.get_id())

    run = alone()
    APILogWorker.drain_all(timeout=10)
    assert _messages(run).count("stage load: started") == 1


def test_heartbeat_speaks_only_after_silence(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="glasses"), heartbeat("stage xai", every=1.0):
        time.sleep(2.6)
    beats = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert 1 <= len(beats) <= 3
    assert beats[0].startswith("stage xai: still running, elapsed ")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="glasses"), heartbeat("stage cv", every=1.5):
        for _ in range(6):  # a progress line every 0.4 s: nothing to add
            report("cnn-fold-1 step")
            time.sleep(0.4)
    assert not [r for r in caplog.records if "still running" in r.getMessage()]


def test_the_first_task_is_timed_per_training(monkeypatch) -> None:
    """A task of three stacked trainings that took 60 s gives the whole-run estimate 20 s a
    training, not 60 (the estimate `make demo` printed was three times too long)."""
    from tasks import progress

    monkeypatch.setattr(progress, "create_progress_artifact", lambda *a, **k: None)
    monkeypatch.setattr(progress, "update_progress_artifact", lambda *a, **k: None)
    monkeypatch.setattr(progress, "report", lambda line: None)
    timed = []
    stage = progress.StageProgress("train-fold", 2, timed.append)
    stage.started -= 60  # started a minute ago
    stage.advance(trainings=3)
    assert timed == [pytest.approx(20.0, abs=0.5)]
