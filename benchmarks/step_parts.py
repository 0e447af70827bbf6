"""Where one training step's time goes, at the flow profile's sizes and on one thread: how each
of the flow's concurrent trainings runs (`glasses.cores`), and so what bounds the stages'
measured / floor ratios.

The step is the project's own training call (`glasses.fitting.train_on`), run under torch's
profiler: the self time of its convolutions and matrix products (the only work the GEMM floor
counts) is set apart from everything else a step does, and the CNN's augmentation is timed on
its own. Each part is given in ms per step and as a multiple of the floor at the one-thread
GEMM rate, so the table says both how fast the products themselves run and how much of the step
is work the floor does not count (pooling, ReLU, augmentation, the update, batch gathering).

    python -m benchmarks.step_parts [--profile quick]
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch loads

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.floor import best_seconds, floor_ms, gemm_gflops  # noqa: E402
from benchmarks.training_cost import PlainLoop, random_inputs  # noqa: E402
from glasses.augment import augment  # noqa: E402
from glasses.config import GlassesConfig, resolve_config  # noqa: E402
from glasses.entrypoint import torch_threads  # noqa: E402
from glasses.families import FAMILIES, SPECS, Family  # noqa: E402
from glasses.fitting import train_on  # noqa: E402
from glasses.tables import markdown_table  # noqa: E402
from glasses.training import pixels_to_input  # noqa: E402

# The operators whose FLOPs the floor counts: convolutions and matrix products, forward and
# backward, as torch's CPU profiler names them.
PRODUCTS = frozenset(
    {
        "aten::mkldnn_convolution",
        "aten::convolution_backward",
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::baddbmm",
        "aten::baddbmm_",  # the ScatNet head's weight gradient, added into its momentum
        "aten::addbmm",
    }
)
STEPS = 40  # the difference between trainings of 2 x STEPS and STEPS steps is what is timed


@dataclass(frozen=True)
class StepParts:
    family: Family
    floor_ms: float  # the step's FLOPs at the one-thread GEMM rate
    step_ms: float  # the whole step, unprofiled
    products_ms: float  # convolutions and matrix products, profiled self time
    augmentation_ms: float  # 0 for a family that does not augment

    @property
    def other_ms(self) -> float:
        """The rest of the step: pooling, activations, loss, update, gathering, scores."""
        return self.step_ms - self.products_ms - self.augmentation_ms


Inputs = tuple[torch.Tensor, torch.Tensor]  # what the family trains on, and labels


def _inputs(family: Family, config: GlassesConfig) -> Inputs:
    """Random inputs of the family's kind, four batches of them (`random_inputs`)."""
    return random_inputs(family, config, rows=4 * SPECS[family].optimiser(config).batch_size)


def _training(family: Family, config: GlassesConfig, data: Inputs, steps: int) -> float:
    """Seconds of one training call of `steps` steps on `data`."""
    inputs, labels = data
    started = time.perf_counter()
    train_on(family, config, inputs, labels, np.arange(len(inputs)), seed=0, steps=steps)
    return time.perf_counter() - started


def _products_seconds(family: Family, config: GlassesConfig, data: Inputs, steps: int) -> float:
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        _training(family, config, data, steps)
    return sum(e.self_cpu_time_total for e in profiler.key_averages() if e.key in PRODUCTS) / 1e6


def per_step_ms(seconds: Callable[[int], float]) -> float:
    """ms per step of a training whose `seconds(steps)` also pays for a set-up (the model
    built, the final scores), which the difference between 2 x `STEPS` and `STEPS` steps
    leaves out; each the faster of two calls, after one untimed call of `STEPS`."""
    seconds(STEPS)
    single, double = (min(seconds(n) for _ in range(2)) for n in (STEPS, 2 * STEPS))
    return (double - single) / STEPS * 1e3


def products_ms(family: Family, config: GlassesConfig, data: Inputs) -> float:
    """Profiled self time of `PRODUCTS` per step of the project's training."""
    return per_step_ms(lambda steps: _products_seconds(family, config, data, steps))


def step_ms(family: Family, config: GlassesConfig, data: Inputs) -> float:
    """Wall ms per step of the project's training."""
    return per_step_ms(lambda steps: _training(family, config, data, steps))


def augmentation_ms(family: Family, config: GlassesConfig, data: Inputs) -> float:
    """ms of the augmentation of one batch of `data`, where the family augments."""
    if not SPECS[family].augments_batches:
        return 0.0
    batch = SPECS[family].optimiser(config).batch_size
    images, generator = pixels_to_input(data[0][:batch]), torch.Generator().manual_seed(0)
    return best_seconds(lambda: augment(images, config.augment, generator), repeats=20) * 1e3


def measure(family: Family, config: GlassesConfig, gflops: float) -> StepParts:
    """The parts of one step of `family` at the current thread count; `gflops` is the GEMM rate
    at that thread count."""
    batch = SPECS[family].optimiser(config).batch_size
    flops_per_image = PlainLoop.build(family, config).flops_per_image()
    data = _inputs(family, config)
    return StepParts(
        family,
        floor_ms(flops_per_image, gflops) * batch,
        step_ms(family, config, data),
        products_ms(family, config, data),
        augmentation_ms(family, config, data),
    )


def parts_table(parts: list[StepParts]) -> pd.DataFrame:
    """Per family and part: ms per step and that as a multiple of the floor."""
    rows = []
    for p in parts:
        for part, ms in (
            ("floor (FLOPs at the GEMM rate)", p.floor_ms),
            ("convolutions and matrix products", p.products_ms),
            ("augmentation", p.augmentation_ms),
            ("everything else", p.other_ms),
            ("whole step", p.step_ms),
        ):
            rows.append({"family": p.family, "part": part, "ms / step": ms,
                         "x floor": ms / p.floor_ms})  # fmt: skip
    return pd.DataFrame(rows).set_index(["family", "part"])


def one_thread_parts(profile_name: str) -> tuple[float, pd.DataFrame]:
    """The one-thread GEMM rate and `parts_table` of both families at `profile_name`'s sizes."""
    config = resolve_config(profile_name)
    with torch_threads(1):
        rate = max(gemm_gflops().values())
        return rate, parts_table([measure(family, config, rate) for family in FAMILIES])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    arguments = parser.parse_args()
    rate, table = one_thread_parts(arguments.profile)
    print(f"One training step, `{arguments.profile}` sizes, 1 thread ({rate:.0f} GFLOP/s)\n")
    print(markdown_table(table))


if __name__ == "__main__":
    main()
