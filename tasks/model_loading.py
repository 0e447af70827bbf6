"""Loading a registered model: a reference (`NAME@ALIAS`, `NAME/VERSION`) to a registry entry,
and its weights to an `nn.Module`, without unpickling anything."""

from __future__ import annotations

import json
import re
import tempfile
from functools import lru_cache
from pathlib import Path

import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from torch import nn

import mlflow
from glasses.families import SPECS, Family
from glasses.inference import build_from_spec
from mlflow import MlflowClient
from tasks.tracking import client


class ModelUnavailable(ValueError):
    """A registered model that is not there, or that this version of glasses cannot load."""


_REFERENCE = re.compile(r"^(?:models:/)?(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def model_version(tracking: MlflowClient, reference: str) -> ModelVersion:
    """`NAME@ALIAS` or `NAME/VERSION` (with or without `models:/`) as a registry entry."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise ValueError(
            f"model {reference!r}: expected NAME@ALIAS or NAME/VERSION, e.g. glasses-cnn@champion"
        )
    try:
        if match["alias"]:
            return tracking.get_model_version_by_alias(match["name"], match["alias"])
        return tracking.get_model_version(match["name"], match["version"])
    except MlflowException as error:
        raise ModelUnavailable(
            f"model {reference!r} is not in the registry at {tracking.tracking_uri} "
            f"({error.message}); run the flow first, or check MLFLOW_TRACKING_URI"
        ) from None


def logged_model_id(version: ModelVersion) -> str | None:
    """The MLflow 3 logged model behind a registry version (SQLite stores leave `model_id`
    empty; the source then reads `models:/<model id>`)."""
    if version.model_id:
        return version.model_id
    source = version.source or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def load_registered_model(reference: str) -> nn.Module:
    """The registered model as an `nn.Module` on the CPU: the one loader of the project.

    Reads only the JSON description and the weights with torch's `weights_only` loader and
    rebuilds the network from this package's classes: nothing from the registry is unpickled
    or executed, so a model registered by someone else cannot run code here.
    """
    tracking = client()
    version = model_version(tracking, reference)
    source = tracking.get_model_version_download_uri(version.name, version.version)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            spec_file = mlflow.artifacts.download_artifacts(
                f"{source.rstrip('/')}/artifacts/spec.json",
                dst_path=scratch,
                tracking_uri=tracking.tracking_uri,
            )
            weights_file = mlflow.artifacts.download_artifacts(
                f"{source.rstrip('/')}/artifacts/weights.pt",
                dst_path=scratch,
                tracking_uri=tracking.tracking_uri,
            )
        except (MlflowException, OSError) as error:
            raise ModelUnavailable(
                f"{version.name} v{version.version} has no spec.json/weights.pt: it was logged by "
                "an older glasses as a pickled module, which is not unpickled; register a new "
                f"version by running the flow ({error.__class__.__name__})"
            ) from None
        spec = json.loads(Path(spec_file).read_text())
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    return build_from_spec(spec, state)


@lru_cache(maxsize=4)
def version_model(family: Family, version: str) -> nn.Module:
    """A registered version of `family`, loaded once per process: a version never changes, and
    the tasks that read it (explanations, figures) may run many times in one worker. Callers
    must not modify it (the randomisation check works on a copy)."""
    return load_registered_model(f"{SPECS[family].registered_name}/{version}")
