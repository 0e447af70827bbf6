"""The process that serves the deployments to the Prefect server (`make up` starts it).

`prefect deployment run glasses/full` only schedules a run; this process picks it up and runs the
flow in-process, with the stack's environment (MLflow URI, cache folder) inherited from `make up`.
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or MLflow load

from prefect import serve  # noqa: E402

from flows.full import glasses  # noqa: E402
from flows.retrain import retrain  # noqa: E402
from glasses.config import RetrainConfig  # noqa: E402


def main() -> None:
    full = glasses.to_deployment(
        name="full",
        description="Data → validation → CNN and ScatNet cross-validation → registry → test.",
        parameters={"data": "synthetic", "profile": "quick"},
        tags=["glasses"],
    )
    scheduled = retrain.to_deployment(
        name="scheduled",
        description="New data in incoming/ → validation → drift → retrain → champion or not.",
        parameters={"incoming": "incoming", "data": "synthetic", "profile": "quick"},
        cron=RetrainConfig().schedule,
        paused=True,  # shipped paused: resume it in the UI or with `prefect deployment resume`
        tags=["glasses"],
    )
    serve(full, scheduled, limit=1)


if __name__ == "__main__":
    main()
