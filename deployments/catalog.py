"""The deployments, defined once for both ways of running them: `serve.py` serves them from one
process (the local stack, `make up`); `work_pool.py` registers them with a work pool for Prefect
workers (the container stack, docker/compose.yaml)."""

from __future__ import annotations

from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from flows.full import glasses
from flows.retrain import retrain
from glasses.config import RetrainConfig


def deployments(entrypoint: EntrypointType = EntrypointType.FILE_PATH) -> list[RunnerDeployment]:
    """`glasses/full` and `retrain/scheduled`. A worker imports the flows by `entrypoint`:
    MODULE_PATH (`flows.full.glasses`) needs only the installed package, no source checkout."""
    full = glasses.to_deployment(
        name="full",
        description="Data → validation → CNN and ScatNet cross-validation → registry → test.",
        parameters={"data": "synthetic", "profile": "quick"},
        tags=["glasses"],
        entrypoint_type=entrypoint,
    )
    scheduled = retrain.to_deployment(
        name="scheduled",
        description="New data in incoming/ → validation → drift → retrain → champion or not.",
        parameters={"incoming": "incoming", "data": "synthetic", "profile": "quick"},
        # Shipped paused, its schedule inactive too, so both of the UI's switches say off:
        # resume it in the UI or with `prefect deployment resume`, then turn the schedule on.
        schedules=[Cron(RetrainConfig().schedule, active=False)],
        paused=True,
        tags=["glasses"],
        entrypoint_type=entrypoint,
    )
    return [full, scheduled]
