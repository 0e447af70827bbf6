"""Registered models people can serve and load without trusting the registry.

One tiny CNN registered as the pipeline does; `mlflow models serve` answers a request with class
probabilities, `glasses predict` prints them, and the project's loader never unpickles.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import mlflow
from flows.cli import main
from glasses.config import resolve_config
from glasses.families import SPECS
from glasses.models.cnn import CNN
from glasses.training import pixels_to_input
from mlflow import MlflowClient
from tasks.model_loading import ModelUnavailable, load_registered_model
from tasks.registry import register_model
from tasks.runs import start_run
from tasks.tracking import client, experiment_id

NAME = SPECS["cnn"].registered_name
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def registered(mlflow_local, image_arrays, references) -> tuple[CNN, str]:
    torch.manual_seed(0)
    model = CNN(resolve_config("tiny").cnn, 32).eval()
    pixels, _ = image_arrays(per_class=2)
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "cnn", None, {})
    data = references.data(pixels, np.zeros(len(pixels), dtype=np.int64))
    version = register_model.fn(references.model(model), data, np.arange(2), run_id)
    return model, version


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def expected_probabilities(model: CNN, pixels: np.ndarray) -> np.ndarray:
    images = pixels_to_input(torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()))
    with torch.no_grad():
        return torch.softmax(model(images), 1).numpy()


def test_loader_gives_back_the_module(registered, image_arrays) -> None:
    model, version = registered
    loaded = load_registered_model(f"{NAME}/{version}")
    assert isinstance(loaded, CNN) and loaded.image_size == 32 and not loaded.training
    pixels, _ = image_arrays(per_class=2)
    images = pixels_to_input(torch.from_numpy(pixels))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_requirements_have_no_local_build_tags(registered, tmp_path) -> None:
    _, version = registered
    folder = mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}", dst_path=tmp_path)
    requirements = (Path(folder) / "requirements.txt").read_text().split()
    assert any(line.startswith("torch==") for line in requirements)
    assert not [line for line in requirements if "+" in line], requirements
    assert (Path(folder) / "code" / "glasses" / "inference.py").is_file()


def test_mlflow_models_serve_answers_with_probabilities(registered, image_arrays, tmp_path):
    model, version = registered
    port = free_port()
    # As a user runs it: the venv's bin on PATH (MLflow starts `uvicorn`), no repository on
    # PYTHONPATH, another folder: the logged model must bring its own code.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    server = subprocess.Popen(
        [BIN / "mlflow", "models", "serve", "-m", f"models:/{NAME}/{version}",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        pixels, _ = image_arrays(per_class=2)
        images = pixels.transpose(0, 2, 3, 1)
        request = {
            "dataframe_split": {
                "columns": ["image"],
                "data": [[base64.b64encode(png(image)).decode()] for image in images],
            }
        }
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=request, timeout=60)
        assert answer.status_code == 200, answer.text
        rows = answer.json()["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(rows) == 4
    probabilities = np.array([[row["p_no_glasses"], row["p_glasses"]] for row in rows])
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probabilities, expected_probabilities(model, images), atol=1e-5)
    assert [row["label"] for row in rows] == [
        ("no glasses", "glasses")[int(p.argmax())] for p in probabilities
    ]


def test_glasses_predict_prints_class_and_probability(registered, tmp_path, capsys) -> None:
    model, version = registered
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(2, 32, 32, 3), dtype=np.uint8)
    paths = []
    for index, image in enumerate(pixels):
        paths.append(tmp_path / f"face{index}.png")
        paths[-1].write_bytes(png(image))
    assert main(["predict", *map(str, paths), "--model", f"{NAME}/{version}"]) == 0
    header, *lines = capsys.readouterr().out.strip().splitlines()
    expected = expected_probabilities(model, pixels)
    registered_version = MlflowClient().get_model_version(NAME, version)
    aliases = "".join(f" @{alias}" for alias in sorted(registered_version.aliases))
    assert header == f"model {NAME} v{version}{aliases}"
    assert len(lines) == 2
    for line, path, row in zip(lines, paths, expected, strict=True):
        shown_path, label, probability = line.split("\t")
        assert shown_path == str(path)
        assert label == ("no glasses", "glasses")[int(row.argmax())]
        assert float(probability) == pytest.approx(row.max(), abs=1e-3)


def test_glasses_predict_csv_and_json_name_the_model(registered, tmp_path, capsys) -> None:
    model, version = registered
    image = np.random.default_rng(1).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    path = tmp_path / "face.png"
    path.write_bytes(png(image))
    expected = expected_probabilities(model, image[None])[0]
    label = ("no glasses", "glasses")[int(expected.argmax())]
    assert main(["predict", str(path), "--model", f"{NAME}/{version}", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["model"], r["version"], r["path"], r["label"]) for r in rows] == [
        (NAME, str(version), str(path), label)
    ]
    assert float(rows[0]["probability"]) == pytest.approx(expected.max(), abs=1e-3)
    assert main(["predict", str(path), "--model", f"{NAME}/{version}", "--format", "json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["model"], answer["version"]) == (NAME, str(version))
    assert answer["predictions"][0]["label"] == label


def test_glasses_predict_names_an_unreadable_image(registered, tmp_path, capsys) -> None:
    _, version = registered
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert main(["predict", str(broken), "--model", f"{NAME}/{version}"]) == 1
    assert f"{broken}: not a readable image" in capsys.readouterr().err
    assert main(["predict", str(broken), "--model", f"{NAME}@nobody"]) == 1
    assert f"model '{NAME}@nobody' is not in the registry" in capsys.readouterr().err


class _Payload:
    """Unpickling this creates `marker`: what a hostile registered model could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_model_is_refused_without_unpickling(mlflow_local, tmp_path) -> None:
    """A model registered by someone else as a pickle never runs code in the project's loader."""
    marker = tmp_path / "unpickled"
    hostile = torch.nn.Linear(2, 2)
    hostile.payload = _Payload(marker)
    tracking = client()
    run_id = start_run(tracking, experiment_id(tracking), "other", None, {})
    with mlflow.start_run(run_id=run_id):
        mlflow.pytorch.log_model(
            hostile, name="model", registered_model_name=NAME, serialization_format="pickle",
            pip_requirements=["torch"],
        )  # fmt: skip
    with pytest.raises(ModelUnavailable, match=f"{NAME} v1 .*not unpickled"):
        load_registered_model(f"{NAME}/1")
    assert not marker.exists()
