"""The GEMM floor: how fast a training image could possibly go on this machine.

floor ms/image = training FLOPs per image / the fastest dense float32 GEMM rate torch reaches
here. Two GEMM routes are timed because they differ by up to 2x on one CPU: torch.mm goes to the
BLAS (MKL, which runs its AVX2 kernels on AMD processors), convolutions go to oneDNN (AVX-512).
A 1x1 convolution over a channels-last M x 1 image is the same M x K x N product, so timing it
gives oneDNN's GEMM rate; the floor takes the faster of the two.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` timed calls after one untimed warm-up: on a shared machine the
    minimum is the run least disturbed by other processes."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


# Images of the 1x1 convolution: torch sends a 1x1 convolution of fewer than 16 images to its
# own im2col + BLAS kernel when it runs on one thread, and only larger batches to oneDNN.
ONEDNN_IMAGES = 16


def onednn_matmul(a: torch.Tensor, b_transposed: torch.Tensor) -> torch.Tensor:
    """a @ b (M x K times K x N) as a 1x1 convolution, which torch hands to oneDNN: the rows of
    `a` are the pixels of `ONEDNN_IMAGES` channels-last (M / images) x 1 images, `b_transposed`
    (N x K) the kernel. M must be a multiple of `ONEDNN_IMAGES`."""
    (m, k), n = a.shape, b_transposed.shape[0]
    if m % ONEDNN_IMAGES:
        raise ValueError(f"rows {m} must be a multiple of {ONEDNN_IMAGES}")
    images = a.view(ONEDNN_IMAGES, m // ONEDNN_IMAGES, 1, k).permute(0, 3, 1, 2)
    output = F.conv2d(images, b_transposed.view(n, k, 1, 1))  # channels-last, memory as a @ b
    return output.permute(0, 2, 3, 1).reshape(m, n)


def gemm_gflops(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a size x size x size float32 product through the BLAS (torch.mm) and through
    oneDNN (`onednn_matmul`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    b_transposed = b.t().contiguous()
    flops = 2 * size**3
    return {
        "BLAS (torch.mm)": flops / best_seconds(lambda: torch.mm(a, b), repeats) / 1e9,
        "oneDNN (1x1 convolution)": flops
        / best_seconds(lambda: onednn_matmul(a, b_transposed), repeats)
        / 1e9,
    }


def training_flops(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, labels: torch.Tensor
) -> float:
    """FLOPs per image of one forward and backward pass (convolutions and matrix products).

    Counted by torch's `FlopCounterMode` on the real autograd graph, so the backward pass is
    exactly what runs: about twice the forward pass, less the input gradient of the first layer,
    which inputs that need no gradient never get.
    """
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(forward(inputs), labels).backward()
    return counter.get_total_flops() / len(inputs)


def floor_ms(flops_per_image: float, gflops: float) -> float:
    """Milliseconds per image if every FLOP ran at the GEMM rate."""
    return flops_per_image / (gflops * 1e9) * 1e3
