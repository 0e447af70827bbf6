"""The deployments both runners get: the local `serve` process and the stack's work pool."""

from __future__ import annotations

from prefect.deployments.runner import EntrypointType
from prefect.flows import load_flow_from_entrypoint

from deployments.catalog import deployments
from glasses.config import RetrainConfig


def test_module_path_entrypoints_load_the_flows_a_worker_runs():
    """A worker of the container stack imports the flows from the installed package by these
    names; a wrong one fails only there, at run time."""
    by_name = {d.name: d for d in deployments(EntrypointType.MODULE_PATH)}
    assert by_name["full"].entrypoint == "flows.full.glasses"
    for deployment in by_name.values():
        flow = load_flow_from_entrypoint(deployment.entrypoint, use_placeholder_flow=False)
        assert flow.name == deployment.flow_name


def test_both_runners_get_the_same_deployments():
    served, pooled = deployments(), deployments(EntrypointType.MODULE_PATH)
    assert [(d.name, d.parameters, d.paused) for d in served] == [
        (d.name, d.parameters, d.paused) for d in pooled
    ]
    assert {d.name: d.paused for d in served} == {"full": False, "scheduled": True}


def test_the_paused_deployment_has_its_schedule_off_too():
    """The UI shows a deployment switch and a schedule switch: both off, not one of each."""
    scheduled = {d.name: d for d in deployments()}["scheduled"]
    assert scheduled.paused
    assert [s.active for s in scheduled.schedules] == [False]
    assert scheduled.schedules[0].schedule.cron == RetrainConfig().schedule
