"""The result store: keys that change with what determines a result, entries that a crash or a
damaged disk cannot pass off, and a format that holds every result kind and never runs code."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from glasses.cache_files import CacheWarning, store_bytes
from glasses.config import resolve_config
from glasses.crossval import FoldOutcome
from glasses.inference import build_from_spec, model_spec, weights_digest
from glasses.models.cnn import CNN
from glasses.outer import PointPlan
from glasses.result_format import decode, encode
from glasses.results import (
    ResultStore,
    explanation_key,
    fold_seed,
    model_runtime,
    point_seed,
    rows_digest,
    training_key,
    training_settings,
    work_key,
)
from glasses.training import Check
from glasses.xai.explain import Explanation
from tasks.outer import OuterPoint
from tasks.xai import Explained


def test_keys_follow_what_determines_a_result() -> None:
    tiny = resolve_config("tiny")
    key = work_key("fold", settings=training_settings(tiny), rows=rows_digest(np.arange(4)), fold=0)
    assert key.startswith("fold-")
    same = resolve_config("tiny", {"runtime": {"workers": 1}, "xai": {"images_per_class": 3}})
    assert (
        work_key("fold", settings=training_settings(same), rows=rows_digest(np.arange(4)), fold=0)
        == key
    )  # how it runs, and what later stages do, change nothing
    for other in (
        work_key("fold", settings=training_settings(tiny), rows=rows_digest(np.arange(4)), fold=1),
        work_key("fold", settings=training_settings(tiny), rows=rows_digest(np.arange(5)), fold=0),
        work_key(
            "fold",
            settings=training_settings(resolve_config("tiny", {"cnn": {"optimiser": {"lr": 1}}})),
            rows=rows_digest(np.arange(4)),
            fold=0,
        ),
        work_key(
            "fold",
            settings=training_settings(resolve_config("tiny", {"split": {"fold_curves": False}})),
            rows=rows_digest(np.arange(4)),
            fold=0,
        ),
    ):
        assert other != key


def test_keys_are_those_of_earlier_releases(monkeypatch) -> None:
    """Cache entries stay reusable: for a pinned code version, every key rule gives the key it
    gave before the rules moved into this module (values from commit 3a3bc2e)."""
    monkeypatch.setattr("glasses.results.code_version", lambda: "pinned")
    tiny = resolve_config("tiny")
    rows, val = np.arange(10), np.arange(10, 14)
    assert training_key("fold", tiny, "imgkey", (rows, val), "cnn", fold=2) == (
        "fold-2df6295fef3ed36f294ca0b0"
    )
    assert training_key("refit", tiny, "imgkey", (rows,), "scatnet", steps=7) == (
        "refit-ea86eddb04ded0184167a563"
    )
    assert training_key("outer-point", tiny, "imgkey", (rows, val), "cnn", outer=1, repeat=3) == (
        "outer-point-b5b7867d3a891ce6fe97eb1b"
    )
    torch.manual_seed(0)
    weights = weights_digest(CNN(tiny.cnn, 32))
    # Explanation keys changed on purpose (issue 23): they now name the device, dtype and torch
    # version, and the XAI settings draw images per class; these are the new keys.
    monkeypatch.setattr("torch.__version__", "2.0.0")
    assert explanation_key("explain", tiny, weights, "ig", "imgkey", rows, "cpu", "float32") == (
        "explain-ff7b852b390d990382fd84dc"
    )
    assert (
        explanation_key("randomisation", tiny, weights, "shap", "imgkey", rows, "cpu", "float32")
        == "randomisation-b98e3ddfa5a6e09b10b14513"
    )


def test_explanation_keys_follow_the_model_method_settings_and_rows() -> None:
    tiny = resolve_config("tiny")
    where = ("cpu", "float32")
    key = explanation_key("explain", tiny, "w", "ig", "imgkey", np.arange(4), *where)
    same = resolve_config("tiny", {"cnn": {"optimiser": {"lr": 1}}})  # the weights say it
    assert explanation_key("explain", same, "w", "ig", "imgkey", np.arange(4), *where) == key
    faster = resolve_config("tiny", {"xai": {"batch_size": 7, "scattering_memory_mb": 0}})
    assert explanation_key("explain", faster, "w", "ig", "imgkey", np.arange(4), *where) == key
    for other in (
        explanation_key("randomisation", tiny, "w", "ig", "imgkey", np.arange(4), *where),
        explanation_key("explain", tiny, "v", "ig", "imgkey", np.arange(4), *where),
        explanation_key("explain", tiny, "w", "shap", "imgkey", np.arange(4), *where),
        explanation_key(
            "explain",
            resolve_config("tiny", {"seed": 1}),
            "w",
            "ig",
            "imgkey",
            np.arange(4),
            *where,
        ),  # fmt: skip
        explanation_key("explain", tiny, "w", "ig", "other", np.arange(4), *where),
        explanation_key("explain", tiny, "w", "ig", "imgkey", np.arange(5), *where),
    ):
        assert other != key


def test_explanation_keys_name_the_device_dtype_and_torch_version(monkeypatch) -> None:
    """A map computed on another device, in another precision or by another torch must not
    stand in for this one's: each changes the key."""
    tiny, rows = resolve_config("tiny"), np.arange(4)
    key = explanation_key("explain", tiny, "w", "ig", "imgkey", rows, "cpu", "float32")
    assert explanation_key("explain", tiny, "w", "ig", "imgkey", rows, "cuda", "float32") != key
    assert explanation_key("explain", tiny, "w", "ig", "imgkey", rows, "cpu", "float64") != key
    monkeypatch.setattr("torch.__version__", "0.0.1")
    assert explanation_key("explain", tiny, "w", "ig", "imgkey", rows, "cpu", "float32") != key


def test_model_runtime_reads_the_device_and_dtype_of_the_weights() -> None:
    model = CNN(resolve_config("tiny").cnn, 32)
    assert model_runtime(model) == ("cpu", "float32")
    assert model_runtime(model.double()) == ("cpu", "float64")


def test_seeds_are_those_of_earlier_releases() -> None:
    assert [fold_seed(42, fold) for fold in range(3)] == [42, 1042, 2042]
    assert point_seed(42, PointPlan(1, 20, 3, 0.5, True)) == 128548
    assert point_seed(42, PointPlan(0, None, 0)) == 42


def test_store_reuses_and_recomputes_what_is_damaged(tmp_path) -> None:
    store = ResultStore(tmp_path / "results")
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"scores": np.arange(3)}

    first, reused = store.reuse_or_compute("fold-a", compute)
    assert not reused and len(calls) == 1
    again, reused = store.reuse_or_compute("fold-a", compute)
    assert reused and len(calls) == 1
    np.testing.assert_array_equal(again["scores"], first["scores"])
    assert sorted(p.name for p in store.folder.iterdir()) == ["fold-a.npz", "fold-a.npz.sha256"]

    store.path("fold-a").write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match=r"fold-a\.npz is damaged \(checksum mismatch\)"):
        _, reused = store.reuse_or_compute("fold-a", compute)
    assert not reused and len(calls) == 2
    assert store.get("fold-a") is not None  # rewritten whole


def outer_point() -> OuterPoint:
    return OuterPoint(
        outer=1, size=20, whole=False, repeat=0, budget=1.0, model="cnn", steps=30,
        early_stopped=True, converged=False, final_train_loss=0.25, final_train_accuracy=1.0,
        accuracy=0.5, balanced_accuracy=0.5, macro_f1=float("nan"), f1=0.0,
        predictions=np.array([0, 1, 1], dtype=np.int64),
    )  # fmt: skip


RESULTS = {
    "fold": FoldOutcome(
        history=pd.DataFrame([vars(Check(10, 0.7, 0.5)), vars(Check(20, 0.5, 0.75, 0.6, 0.5))]),
        steps=20,
        early_stopped=False,
        final={"final_train_loss": 0.5},
        validation={"loss": float("inf"), "accuracy": 0.5},
    ),
    "outer point": outer_point(),
    "explained": Explained(
        "scatnet",
        np.array([3, 5]),
        Explanation("ig", np.ones((2, 4, 4), np.float32), None, np.array([1e-3, 2e-3]), 1.5),
    ),
    "table with strings": pd.DataFrame(
        {"model": ["cnn", "scatnet"], "method": ["ig", None], "n": np.array([3, 4], np.int32)}
    ).set_index(["model", "method"]),
    "plain values": {
        "scalars": (np.float32(0.5), np.int64(3), np.bool_(True)),
        1: [None, True, 2, -0.0, float("nan"), "x"],
        ("tuple", "key"): np.zeros((2, 0)),
    },
}


@pytest.mark.parametrize("kind", RESULTS)
def test_every_kind_of_result_comes_back_equal(kind, tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.put("entry", RESULTS[kind])
    back = store.get("entry")
    assert type(back) is type(RESULTS[kind])
    assert encode(back) == encode(RESULTS[kind])  # same tree, kinds, dtypes and values


def test_a_stored_table_keeps_its_dtypes_and_index() -> None:
    table = RESULTS["table with strings"]
    pd.testing.assert_frame_equal(decode(encode(table)), table)
    history = RESULTS["fold"].history
    pd.testing.assert_frame_equal(decode(encode(history)), history, check_index_type=True)


def test_a_stored_model_loads_with_its_weights(tmp_path) -> None:
    torch.manual_seed(0)
    model = CNN(resolve_config("tiny").cnn, 32).eval()
    store = ResultStore(tmp_path)
    store.put("refit", {"spec": model_spec(model), "state": model.state_dict(), "final": {}})
    entry = store.get("refit")
    for name, tensor in model.state_dict().items():
        assert entry["state"][name].dtype == tensor.dtype
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            build_from_spec(entry["spec"], entry["state"])(images), model(images), rtol=0, atol=0
        )


class Hostile:
    """Unpickling it creates `marker`: what a planted pickle could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def zipped(tree: object, arrays: dict[str, bytes]) -> bytes:
    """A result file as anyone could write it: a tree and `.npy` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tree.json", json.dumps(tree))
        for name, data in arrays.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def pickled_array(marker: Path) -> bytes:
    member = io.BytesIO()
    np.lib.format.write_array(member, np.array([Hostile(marker)], dtype=object))
    return member.getvalue()


@pytest.mark.parametrize("planted", ["pickle", "pickle in an array", "unregistered class"])
def test_a_planted_entry_is_refused_without_running_it(planted, tmp_path) -> None:
    marker = tmp_path / "ran"
    store = ResultStore(tmp_path / "results")
    data = {
        "pickle": lambda: pickle.dumps(Hostile(marker)),
        "pickle in an array": lambda: zipped(
            {"$": "array", "array": "a0"}, {"a0": pickled_array(marker)}
        ),
        "unregistered class": lambda: zipped(
            {"$": "dataclass", "class": "tests.test_results.Hostile", "fields": {}}, {}
        ),
    }[planted]()
    store_bytes(store.path("fold-a"), data)  # with a valid checksum: only the format can refuse
    with pytest.warns(CacheWarning, match=r"fold-a\.npz is damaged \(not a result file|class"):
        assert store.get("fold-a") is None
    assert not marker.exists()


def test_only_registered_classes_are_stored(tmp_path) -> None:
    @dataclass
    class Unregistered:
        value: int

    with pytest.raises(TypeError, match="Unregistered cannot be stored.*result_format.stored"):
        ResultStore(tmp_path).put("entry", Unregistered(1))
    assert not list(tmp_path.iterdir())
