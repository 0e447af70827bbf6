"""Many ScatNet trainings as one stack (`glasses.heads`): each ends where its own training with
`train_steps` (autograd, torch's SGD) ends, to float rounding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glasses.config import resolve_config
from glasses.fitting import Job, build_model, fit, fit_many, in_stacks, train_many
from glasses.heads import HeadTraining, heads_per_stack, train_heads
from glasses.inference import build_from_spec, model_spec
from glasses.models.scatnet import ScatNet, coefficient_count
from glasses.training import Rows, Trained, resolve_device, train_steps

CPU = torch.device("cpu")
ROWS = 60


def settings(**optimiser):
    """`tiny` with dropout and momentum (the draws and buffers a stack must keep apart)."""
    base = {"steps": 23, "check_every": 5, "patience": 0, "batch_size": 8, "lr": 0.05}
    return resolve_config(
        "tiny",
        {"scatnet": {"head": {"dropout": 0.3}, "optimiser": base | {"momentum": 0.9} | optimiser}},
    )


def coefficients(config, rows: int = ROWS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random coefficients whose first path carries the label."""
    generator = torch.Generator().manual_seed(seed)
    side = config.data.image_size // 2**config.scatnet.J
    shape = (rows, 3, coefficient_count(config.scatnet.J, config.scatnet.L), side, side)
    labels = torch.arange(rows) % 2
    inputs = torch.randn(shape, generator=generator) * 3 + 1
    inputs[:, :, 0] += labels.view(-1, 1, 1, 1) * 2
    return inputs, labels


# (training rows, seed, steps, validation rows): unequal sizes, so passes end at different
# steps and short batches are padded; one budget shorter than the others.
JOBS = [
    (np.arange(0, 30), 1, None, None),
    (np.arange(10, 47), 2, None, None),
    (np.arange(20, 60, 2), 3, 11, None),
]


def model(config, seed: int, inputs: torch.Tensor, train: Rows) -> ScatNet:
    built = build_model("scatnet", config, seed)
    built.fit_standardisation(inputs, train.index)
    return built


def separately(config, inputs, labels, jobs) -> list[tuple[ScatNet, Trained]]:
    """The one-at-a-time path: autograd and torch's SGD, each training alone."""
    done = []
    for rows, seed, steps, validation in jobs:
        train = Rows.of(inputs, labels, rows)
        alone = model(config, seed, inputs, train)
        watched = None if validation is None else Rows.of(inputs, labels, validation)
        trained = train_steps(
            alone, alone.classify, train, lambda batch, _: batch, config.scatnet.optimiser, seed,
            steps=steps, validation=watched, device=CPU,
        )  # fmt: skip
        done.append((alone, trained))
    return done


def together(config, inputs, labels, jobs, precision="float32") -> list[tuple[ScatNet, Trained]]:
    trainings = []
    for rows, seed, steps, validation in jobs:
        train = Rows.of(inputs, labels, rows)
        watched = None if validation is None else Rows.of(inputs, labels, validation)
        trainings.append(
            HeadTraining(model(config, seed, inputs, train), train, seed, steps, watched)
        )
    trained = train_heads(trainings, config.scatnet.optimiser, CPU, precision)
    return [(t.model, result) for t, result in zip(trainings, trained, strict=True)]


def assert_same(expected, actual) -> None:
    for (one, one_trained), (stacked, stacked_trained) in zip(expected, actual, strict=True):
        assert not stacked.training
        assert one.state_dict().keys() == stacked.state_dict().keys()
        for name, tensor in one.state_dict().items():
            torch.testing.assert_close(stacked.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
        assert stacked_trained.steps == one_trained.steps
        assert stacked_trained.early_stopped == one_trained.early_stopped
        pd.testing.assert_frame_equal(stacked_trained.history, one_trained.history, rtol=1e-4)


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_a_stack_ends_where_each_training_alone_ends(momentum: float) -> None:
    config = settings(momentum=momentum)
    inputs, labels = coefficients(config)
    expected = separately(config, inputs, labels, JOBS)
    actual = together(config, inputs, labels, JOBS)
    assert_same(expected, actual)
    assert actual[2][1].history["step"].iloc[-1] == 11  # its own, shorter budget
    # Different seeds and rows gave different models: the stack kept them apart.
    first, second = (m.head.layers[0].weight for m, _ in actual[:2])
    assert not torch.allclose(first, second)


def test_early_stopping_in_a_stack_stops_and_restores_each_training_alone() -> None:
    config = settings(patience=1, steps=60, check_every=3, lr=0.3)
    inputs, labels = coefficients(config)
    jobs = [
        (np.arange(0, 40), 5, None, np.arange(40, 60)),
        (np.arange(20, 60), 6, None, np.arange(0, 20)),
    ]
    expected = separately(config, inputs, labels, jobs)
    assert any(trained.early_stopped for _, trained in expected)  # the case under test
    assert_same(expected, together(config, inputs, labels, jobs))


def test_bf16_products_train_within_noise_of_float32() -> None:
    config = settings(steps=40)
    inputs, labels = coefficients(config)
    exact = together(config, inputs, labels, JOBS[:2])
    rounded = together(config, inputs, labels, JOBS[:2], precision="bfloat16")
    for (one, one_trained), (other, other_trained) in zip(exact, rounded, strict=True):
        assert not torch.equal(one.head.layers[0].weight, other.head.layers[0].weight)
        last = one_trained.history["train_loss"].iloc[-1]
        assert other_trained.history["train_loss"].iloc[-1] == pytest.approx(last, abs=0.1)


def test_fit_many_equals_fitting_one_at_a_time() -> None:
    """Through `glasses.fitting`: the same models, steps and final scores as separate `fit`s,
    with early stopping on inner splits (probes stacked, then refits stacked, three at a time)."""
    config = settings(patience=2, steps=20, check_every=4)
    config = config.model_copy(
        update={"runtime": config.runtime.model_copy(update={"stack_memory_mb": 1})}
    )
    inputs, labels = coefficients(config, rows=32)
    people = [f"p{i // 2}" for i in range(32)]
    manifest = pd.DataFrame({"label": labels.numpy(), "group": people, "sha256": range(32)})
    assert heads_per_stack(config) == 3  # 1 MB of 300 kB heads: the last job a stack alone
    jobs = [Job(np.arange(0, 16), 7), Job(np.arange(4, 20), 8), Job(np.arange(2, 30), 10)]
    jobs.append(Job(np.arange(8, 32), 9, 6))
    alone = [
        fit("scatnet", config, inputs, labels, manifest, job.rows, job.seed, job.steps)
        for job in jobs
    ]
    stacked = fit_many("scatnet", config, inputs, labels, manifest, jobs)
    for one, other in zip(alone, stacked, strict=True):
        assert other.trained.steps == one.trained.steps and other.images == one.images
        assert other.final == pytest.approx(one.final, rel=1e-4)
        for name, tensor in one.model.state_dict().items():
            torch.testing.assert_close(other.model.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
    assert stacked[3].trained.steps == 6


def test_trainings_that_stack_must_share_their_inputs() -> None:
    config = settings()
    inputs, labels = coefficients(config)
    jobs = [Job(np.arange(10), 1), Job(np.arange(10), 2)]
    trained = train_many("scatnet", config, inputs, labels, jobs)
    assert len(trained) == 2
    train = Rows.of(inputs, labels, np.arange(10))
    other = Rows.of(inputs.clone(), labels, np.arange(10))
    with pytest.raises(ValueError, match="one coefficient tensor"):
        train_heads(
            [
                HeadTraining(model(config, 1, inputs, train), train, 1),
                HeadTraining(model(config, 2, inputs, other), other, 2),
            ],
            config.scatnet.optimiser,
            CPU,
        )


def test_device_setting_resolves_and_names_the_fix() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="set runtime.device to 'auto' or 'cpu'"):
            resolve_device("cuda")


def test_a_stacked_training_registers_and_loads_as_before() -> None:
    """The stack's transposed weights go back in nn.Linear's layout: the model's description
    and state dict rebuild it (as the registry loads it) with the same logits."""
    config = settings()
    inputs, labels = coefficients(config)
    (trained, _), _ = together(config, inputs, labels, JOBS[:2])
    rebuilt = build_from_spec(model_spec(trained), trained.state_dict())
    assert rebuilt.head.layers[0].weight.shape == (16, inputs[0].numel())  # out x in
    torch.testing.assert_close(rebuilt.classify(inputs[:5]), trained.classify(inputs[:5]))


def test_stacks_hold_as_many_heads_as_their_memory_allows() -> None:
    quick = resolve_config("quick")  # 62,208 features x 128 units: 30.4 MB a head
    assert heads_per_stack(quick) == 2048 // 30.375 // 1
    one_at_a_time = resolve_config("quick", {"runtime": {"stack_memory_mb": 0}})
    assert heads_per_stack(one_at_a_time) == 1
    assert heads_per_stack(resolve_config("paper")) == 2  # 1 GB heads, 2 GB


def test_tasks_get_stacks_of_scatnet_trainings_and_single_cnn_trainings() -> None:
    quick = resolve_config("quick", {"runtime": {"stack_memory_mb": 70}})  # 2 heads a stack
    assert in_stacks("scatnet", quick, range(5)) == [[0, 1], [2, 3], [4]]
    assert in_stacks("cnn", quick, ["a", "b"]) == [["a"], ["b"]]
