"""What tasks log into a run: metrics, parameters, figures, tables, files and datasets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import DatasetInput, InputTag, Metric, Param

import mlflow
from glasses.tables import FLOAT_FORMAT
from mlflow import MlflowClient


def log_metrics(
    tracking: MlflowClient,
    run_id: str,
    values: dict[str, float],
    step: int = 0,
    model_id: str | None = None,
) -> None:
    """`model_id` links the metrics to a logged model (MLflow 3), shown on the model's page."""
    timestamp = int(pd.Timestamp.now().timestamp() * 1000)
    metrics = [
        Metric(key, float(value), timestamp, step, model_id=model_id)
        for key, value in values.items()
    ]
    tracking.log_batch(run_id, metrics=metrics)


def log_params(tracking: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    """Batches of 100, MLflow's limit per call."""
    items = [Param(key, value) for key, value in params.items()]
    for start in range(0, len(items), 100):
        tracking.log_batch(run_id, params=items[start : start + 100])


def log_figure(tracking: MlflowClient, run_id: str, figure: Figure, path: str) -> None:
    tracking.log_figure(run_id, figure, path, save_kwargs={"dpi": 110})
    plt.close(figure)


def log_table(tracking: MlflowClient, run_id: str, table: pd.DataFrame, path: str) -> None:
    """As CSV, floats as every table shows them (`glasses.tables.FLOAT_FORMAT`)."""
    tracking.log_text(run_id, table.to_csv(float_format=FLOAT_FORMAT), path)


def log_file(tracking: MlflowClient, run_id: str, content: bytes | str, path: str) -> None:
    """Artifacts that exist only in memory, written to a temporary file first."""
    folder, name = os.path.split(path)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / name
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        tracking.log_artifact(run_id, str(target), folder or None)


def log_dataset(
    tracking: MlflowClient, run_id: str, manifest: pd.DataFrame, source: str, name: str
) -> None:
    dataset = mlflow.data.from_pandas(manifest, source=source, name=name, targets="label")
    entity = dataset._to_mlflow_entity()
    tracking.log_inputs(
        run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])]
    )
