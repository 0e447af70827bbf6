"""Creates the `process` work pool and registers the deployments with it: what a Prefect worker
of the container stack runs before `prefect worker start` (docker/compose.yaml). Idempotent: a
restarted worker runs it again harmlessly.

The flows are referenced by module path, which the worker imports from the installed image: no
source storage, no image build step. The pool's name comes from GLASSES_WORK_POOL (default
"glasses").
"""

from __future__ import annotations

import os

from prefect import deploy
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import EntrypointType
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from deployments.catalog import deployments


def ensure_pool(name: str) -> None:
    """A `process` pool with Prefect's default job template, unless one of that name exists."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )


def main() -> None:
    pool = os.environ.get("GLASSES_WORK_POOL", "glasses")
    ensure_pool(pool)
    deploy(
        *deployments(EntrypointType.MODULE_PATH),
        work_pool_name=pool,
        build=False,
        push=False,
        print_next_steps_message=False,
        ignore_warnings=True,
    )


if __name__ == "__main__":
    main()
