"""The process that serves the deployments to the Prefect server (`make up` starts it).

`prefect deployment run glasses/full` only schedules a run; this process picks it up and runs the
flow in-process, with the stack's environment (MLflow URI, cache folder) inherited from `make up`.
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or MLflow load

from prefect import serve  # noqa: E402

from deployments.catalog import deployments  # noqa: E402


def main() -> None:
    serve(*deployments(), limit=1)


if __name__ == "__main__":
    main()
