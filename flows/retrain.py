"""`glasses-retrain/scheduled`: new data → validation → drift → retrain → challenger vs champion.

Every run ends in one recorded decision (`glasses.retrain.decide`). The dataset's HEAD moves
last, after training and registration, so a run killed half-way leaves the dataset as it was and
the next run redoes the work (the staged version id is derived from content).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow

from flows.concurrency import cores_divided, on_task_runner
from flows.stages import Stage, cache_dir, open_run, train_and_register
from glasses.config import GlassesConfig, Overrides, ProfileName, resolve_config
from glasses.retrain import Decision, Facts, Outcome, decide, notes
from glasses.store import DatasetLockedError, DatasetStore
from mlflow import MlflowClient
from tasks.features import scattering_coefficients
from tasks.retrain import (
    champions_training_images,
    check_drift,
    discover_batch,
    publish_version,
    quarantine_batch,
    record_decision,
    reference_version,
    retrain_split,
    stage_version,
    tag_models,
    validate_batch,
)
from tasks.runs import run_outcome


@flow(name="glasses-retrain", log_prints=True)
def retrain(
    incoming: str = "incoming",
    data: str = "synthetic",
    profile: ProfileName = "quick",
    overrides: Overrides | None = None,
    store: str = "datasets",
    quarantine: str = "quarantine",
) -> dict[str, Any]:
    """Import what is new in `incoming` into the versioned dataset `store` and retrain when it
    matters. `data` seeds the dataset on the very first run (the champion's training data)."""
    config = resolve_config(profile, overrides)
    with cores_divided(config.runtime):
        return on_task_runner(retrain_run, config)(incoming, data, config, store, quarantine)


@flow(name="glasses-retrain-run", log_prints=True)
def retrain_run(
    incoming: str, data: str, config: GlassesConfig, store: str, quarantine: str
) -> dict[str, Any]:
    """The re-run under one MLflow run, its tasks on this flow's task runner."""
    profile = config.profile
    tracking, experiment, run_id, url, stage = open_run(
        config, f"retrain-{profile}", {"flow": "retrain", "incoming": incoming, "data": data}
    )
    dataset = DatasetStore(Path(store).resolve(), Path(quarantine).resolve())
    with run_outcome(tracking, run_id):
        try:
            with dataset.lock():
                facts, decision = _steps(
                    config, dataset, Path(incoming), data, tracking, experiment, run_id, stage
                )
            lines = notes(facts)
        except DatasetLockedError as error:
            decision, lines = Decision(Outcome.SKIPPED, str(error)), []
        summary = record_decision(run_id, decision, [f"MLflow run: {url}", *lines])
    print(summary)
    return {"decision": str(decision.outcome), "detail": decision.reason, "mlflow_run_id": run_id}


def _steps(
    config: GlassesConfig,
    dataset: DatasetStore,
    incoming: Path,
    data: str,
    tracking: MlflowClient,
    experiment: str,
    run_id: str,
    stage: Stage,
) -> tuple[Facts, Decision]:
    """The steps in order, each followed by the question whether the facts settle the run."""
    min_share = config.retrain.min_new_share
    with stage("discover"):
        reference = reference_version(dataset, data, config, cache_dir(), run_id)
        found = discover_batch(dataset, incoming, reference, run_id)
    facts = Facts(
        str(incoming),
        reference,
        batch=found.batch.id if found else None,
        batch_files=len(found.batch.table) if found else 0,
    )
    if decision := decide(facts, min_share):
        return facts, decision

    with stage("validate"):
        batch_images, report = validate_batch(found, config, cache_dir(), run_id)
    facts = replace(facts, problems=tuple(report.failures))
    if decision := decide(facts, min_share):
        quarantine_batch(found, report, decision.reason, run_id)
        return facts, decision

    with stage("stage_version"):
        staged = stage_version(found, config, cache_dir(), run_id)
    with stage("drift"):
        trained = champions_training_images()
        drift = check_drift(staged, batch_images, trained, config, cache_dir(), run_id)
    facts = replace(
        facts,
        version=staged.id,
        reference_images=int(staged.in_reference.sum()),
        new_images=int((~staged.in_reference).sum()),
        drift=drift,
    )
    if decision := decide(facts, min_share):
        publish_version(dataset, staged.id)
        return facts, decision

    with stage("scattering"):
        data = scattering_coefficients(staged.data, config, run_id)
    _, tests = train_and_register(
        config,
        data,
        retrain_split(staged, config, trained),
        tracking,
        experiment,
        run_id,
        config.retrain.margin,
        stage,
    )
    tag_models(tests, staged.id)
    publish_version(dataset, staged.id)
    facts = replace(facts, tests=tests)
    return facts, decide(facts, min_share)
