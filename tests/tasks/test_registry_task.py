"""Model Registry: register, test from the registry, and move `champion` only to a better version
that can be compared with it.

Five registrations in all, made once for the module: a version that always answers "glasses",
one that always answers "no glasses" (no better on the same test split), a trained CNN (better),
then two the champion cannot be compared with: one tested on images the champion trained on, and
one of another input size. Registered in that order under one registered model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import mlflow
from glasses.config import resolve_config
from glasses.data.reference import DataRef, image_set
from glasses.families import SPECS
from glasses.models.cnn import CNN
from glasses.promotion import Lineage
from glasses.training import Rows, pixels_to_input, train_steps
from mlflow import MlflowClient
from tasks.model_loading import load_registered_model, logged_model_id
from tasks.promotion import HeldOutResult, evaluate_on_test
from tasks.registry import CHAMPION, read_lineage, register_model
from tasks.runs import start_run
from tasks.tracking import client, experiment_id, open_store

TINY = resolve_config("tiny")
NAME = SPECS["cnn"].registered_name


def constant_cnn(answer: int) -> CNN:
    """A real CNN whose last layer ignores its input and always picks class `answer`."""
    torch.manual_seed(0)
    model = CNN(TINY.cnn, 32)
    last = model.head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([-5.0, 5.0] if answer == 1 else [5.0, -5.0]))
    return model.eval()


def trained_cnn(pixels: torch.Tensor, labels: torch.Tensor, size: int = 32) -> CNN:
    torch.manual_seed(2)
    model = CNN(TINY.cnn, size)
    optimiser = TINY.cnn.optimiser.model_copy(update={"steps": 12, "patience": 0})
    train_steps(
        model, model, Rows.of(pixels, labels), lambda batch, _: pixels_to_input(batch), optimiser,
        seed=2, device=torch.device("cpu"),
    )  # fmt: skip
    return model.eval()


TRAIN_HASHES = [f"train-{i}" for i in range(24)]
TEST_HASHES = [f"test-{i}" for i in range(8)]


def accuracy(model: CNN, pixels: torch.Tensor, labels: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(pixels_to_input(pixels)).argmax(1).numpy() == labels).mean())


@dataclass
class Story:
    run_id: str
    data: DataRef  # the 8 test images, with TEST_HASHES
    labels: np.ndarray
    better_accuracy: float
    results: list[HeldOutResult]
    champion_after: list[str]  # alias target after each evaluation
    version_tags: list[dict[str, str]]  # each new version's tags right after its evaluation
    run_decisions: list[str]  # the run's champion_decision tag after each evaluation
    aliases: list[list[str]]  # each new version's aliases right after its evaluation
    descriptions: list[str]  # each new version's description


@pytest.fixture(scope="module")
def story(tmp_path_factory, _empty_mlflow_db, image_arrays, references_in) -> Story:
    """`mlflow_local` for the whole module, and the three registrations."""
    folder = tmp_path_factory.mktemp("registry")
    references = references_in(folder / "references")
    shutil.copyfile(_empty_mlflow_db, folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
        patch.chdir(folder)
        open_store()
        pixels, labels = image_arrays(per_class=16)
        pixels = torch.from_numpy(pixels)
        test_pixels, test_labels = pixels[24:], labels[24:]
        assert sorted(test_labels.tolist()) == [0] * 4 + [1] * 4
        better = trained_cnn(pixels[:24], torch.from_numpy(labels[:24]))
        better_accuracy = accuracy(better, test_pixels, test_labels)
        assert better_accuracy > 0.5  # precondition: trained beats the constant answers

        tracking = client()
        run_id = start_run(tracking, experiment_id(tracking), "cnn", None, {"family": "cnn"})
        registry = MlflowClient()
        test_data = references.data(test_pixels.numpy(), test_labels, TEST_HASHES)
        story = Story(run_id, test_data, test_labels, better_accuracy, [], [], [], [], [], [])
        lineage = Lineage(32, frozenset(TRAIN_HASHES))
        small = torch.nn.functional.interpolate(test_pixels.float(), size=24).to(torch.uint8)
        evaluations = [
            (constant_cnn(1), test_pixels, TEST_HASHES),
            (constant_cnn(0), test_pixels, TEST_HASHES),
            (better, test_pixels, TEST_HASHES),
            (better, test_pixels, [*TEST_HASHES[:6], *TRAIN_HASHES[:2]]),
            (trained_cnn(small, torch.from_numpy(test_labels), size=24), small, TEST_HASHES),
        ]
        rows = np.arange(len(test_labels))
        for model, pixels_, hashes in evaluations:
            data = references.data(pixels_.numpy(), test_labels, hashes)
            version = register_model.fn(references.model(model), data, rows, run_id)
            size_lineage = Lineage(pixels_.shape[-1], lineage.training_sha256)
            story.results.append(
                evaluate_on_test.fn("cnn", version, data, rows, run_id, size_lineage)
            )
            story.champion_after.append(
                str(registry.get_model_version_by_alias(NAME, CHAMPION).version)
            )
            registered = registry.get_model_version(NAME, version)
            story.version_tags.append(dict(registered.tags))
            story.aliases.append(sorted(registered.aliases))
            story.descriptions.append(registered.description)
            story.run_decisions.append(registry.get_run(run_id).data.tags["champion_decision"])
        yield story
    mlflow.set_tracking_uri(None)


def test_first_version_takes_the_champion_alias(story) -> None:
    first = story.results[0]
    assert first.version == "1"
    # Always "glasses" on 4 + 4 images: accuracy 0.5, F1 2/3, balanced accuracy 0.5.
    assert first.accuracy == pytest.approx(0.5)
    assert first.scores["f1"] == pytest.approx(2 / 3)
    assert first.scores["balanced_accuracy"] == 0.5
    assert first.scores["macro_f1"] == pytest.approx(1 / 3)
    assert str(first.champion_version) == "1"
    assert first.decision.startswith("first version")
    assert story.champion_after[0] == "1"
    assert story.version_tags[0]["champion_decision"] == first.decision


def test_worse_version_leaves_the_champion(story) -> None:
    worse = story.results[1]
    assert worse.version == "2"
    # Always "no glasses": the same balanced accuracy and macro-F1, so v1 stays champion.
    assert worse.accuracy == pytest.approx(0.5)
    assert worse.scores["f1"] == 0.0
    assert worse.scores["balanced_accuracy"] == 0.5
    assert str(worse.champion_version) == "1"
    assert worse.decision.startswith("kept v1")
    assert story.champion_after[1] == "1"
    assert story.version_tags[1]["champion_decision"] == worse.decision
    assert story.run_decisions[1] == worse.decision


def test_better_version_takes_the_champion_alias(story) -> None:
    best = story.results[2]
    assert best.version == "3"
    assert best.accuracy == pytest.approx(story.better_accuracy)
    assert best.accuracy > story.results[0].accuracy
    assert str(best.champion_version) == "3"
    assert best.decision.startswith("promoted")
    assert "v1" in best.decision  # names the version it was compared with
    assert story.champion_after[2] == "3"
    assert story.version_tags[2]["champion_decision"] == best.decision
    assert story.run_decisions[2] == best.decision


def test_a_champion_that_trained_on_test_images_is_not_compared(story) -> None:
    overlapping = story.results[3]
    assert overlapping.champion_version == "3" and story.champion_after[3] == "3"
    assert overlapping.decision.startswith(
        "not compared: champion v3 trained on 2 of this run's 8 test images; kept it"
    )


def test_a_champion_of_another_input_size_is_not_compared(story) -> None:
    """The crash of `tiny` after `quick` in one store: the 32 px champion cannot take 24 px
    images, so it is neither scored nor replaced, and the decision says why."""
    other_size = story.results[4]
    assert other_size.champion_version == "3" and story.champion_after[4] == "3"
    assert "takes 32 px images, this run 24 px" in other_size.decision
    assert story.version_tags[4]["image_size"] == "24"


def test_every_version_records_its_lineage(story) -> None:
    registry = MlflowClient()
    version = registry.get_model_version(NAME, "3")
    assert version.tags["image_size"] == "32"
    assert version.tags["training_images"] == str(len(TRAIN_HASHES))
    lineage = read_lineage(registry, NAME, "3")
    assert lineage == Lineage(32, frozenset(TRAIN_HASHES))


def test_registry_holds_the_models_that_were_registered(story) -> None:
    registry = MlflowClient()
    assert sorted(str(v.version) for v in registry.search_model_versions(f"name='{NAME}'")) == [
        "1", "2", "3", "4", "5",
    ]  # fmt: skip
    example = pixels_to_input(torch.from_numpy(image_set(story.data).pixels[:2]))
    with torch.no_grad():
        logits = load_registered_model(f"models:/{NAME}/1")(example)
    torch.testing.assert_close(logits, torch.tensor([[-5.0, 5.0]] * 2))
    info = mlflow.models.get_model_info(f"models:/{NAME}/1")
    assert info.signature.inputs.input_names() == ["image"]
    assert info.run_id == story.run_id


def test_held_out_metrics_and_confusion_figure_are_logged(story) -> None:
    registry = MlflowClient()
    history = registry.get_metric_history(story.run_id, "holdout_accuracy")
    assert [m.value for m in history] == pytest.approx([r.accuracy for r in story.results])
    artifacts = {a.path for a in registry.list_artifacts(story.run_id, "figures")}
    assert "figures/cnn_confusion_test.png" in artifacts


def test_re_testing_the_champion_says_already_champion(story) -> None:
    # Last in this module: it adds a fourth evaluation to the run.
    again = evaluate_on_test.fn(
        "cnn", "3", story.data, np.arange(len(story.labels)), story.run_id,
        Lineage(32, frozenset(TRAIN_HASHES)),
    )  # fmt: skip
    assert again.decision == "already champion"
    assert again.champion_version == "3"


def test_held_out_metrics_are_linked_to_the_logged_model(story) -> None:
    """The model's page in MLflow shows the held-out scores it was promoted (or not) on."""
    registry = MlflowClient()
    for result in story.results:
        model_id = logged_model_id(registry.get_model_version(NAME, result.version))
        metrics = {m.key: m.value for m in registry.get_logged_model(model_id).metrics}
        assert metrics["holdout_accuracy"] == pytest.approx(result.accuracy)


def test_each_version_takes_one_alias_and_a_first_version_only_champion(story) -> None:
    assert story.aliases[0] == ["champion"]  # no `challenger` beside it
    assert story.aliases[1] == ["challenger"]  # worse: kept v1
    assert story.aliases[2] == ["champion"]  # better: promoted


def test_version_description_tells_score_interval_data_and_run(story) -> None:
    best, text = story.results[2], story.descriptions[2]
    assert f"balanced accuracy **{best.scores['balanced_accuracy']:.3f}**" in text
    assert f"accuracy {best.accuracy:.3f} (95 % interval over test images [" in text
    assert f"`{image_set(story.data).fingerprint}`" in text
    assert story.run_id in text
    assert best.decision in text
