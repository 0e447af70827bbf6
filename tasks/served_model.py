"""The MLflow pyfunc model that `mlflow models serve` runs: image files in, class probabilities out.

Logged as MLflow "models from code" with the `glasses` package in `code_paths`, so serving needs
neither this repository nor any unpickling: `load_context` rebuilds the network from the logged
description and tensors-only weights (`glasses.inference`). Request: a column `image` of
base64-encoded image files (PNG, JPEG, ...); answer: `label`, `probability` and one
`p_<class>` column per class.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from glasses.inference import (
    SPEC,
    WEIGHTS,
    build_from_spec,
    class_probabilities,
    image_pixels,
    prediction_table,
)


class ImageClassifier(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        self.spec = json.loads(Path(context.artifacts[SPEC]).read_text())
        state = torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True)
        self.model = build_from_spec(self.spec, state)

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        size = self.spec["image_size"]
        pixels = [image_pixels(base64.b64decode(item), size) for item in model_input["image"]]
        return prediction_table(class_probabilities(self.model, pixels), self.spec["classes"])


set_model(ImageClassifier())
