"""The GEMM floor's arithmetic: FLOP counts against hand counts, the oneDNN route's product."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.floor import floor_ms, gemm_gflops, onednn_matmul, training_flops


def test_convolution_flops_match_the_hand_count() -> None:
    """Forward: 2 x output pixels x out channels x in channels x kernel area; the weight gradient
    as much again; no input gradient for the first layer."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    flops = training_flops(model, torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
    assert flops == 2 * (2 * 6 * 6 * 4 * 3 * 9)


def test_training_flops_skip_the_first_layers_input_gradient() -> None:
    """Per image: the first layer's forward and weight gradient (2 x 2 x 10 x 6), the second's
    forward, weight and input gradients (3 x 2 x 6 x 2)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 2))
    flops = training_flops(model, torch.rand(4, 10), torch.tensor([0, 1, 1, 0]))
    assert flops == 4 * 10 * 6 + 6 * 6 * 2


def test_floor_is_flops_over_rate() -> None:
    assert floor_ms(2e9, 200.0) == pytest.approx(10.0)


def test_onednn_route_computes_the_same_product() -> None:
    a, b = torch.rand(32, 20), torch.rand(20, 10)
    torch.testing.assert_close(onednn_matmul(a, b.t().contiguous()), a @ b)
    with pytest.raises(ValueError, match="multiple of 16"):
        onednn_matmul(torch.rand(30, 20), b.t().contiguous())


def test_onednn_route_reaches_onednn_on_one_thread() -> None:
    """On one thread torch runs a 1x1 convolution of a single image with its own im2col kernel
    (`_slow_conv2d_forward`), at the BLAS rate: the route must not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.rand(64, 32), torch.rand(10, 32)
        with torch.profiler.profile() as profiler:
            onednn_matmul(a, b)
    finally:
        torch.set_num_threads(threads)
    kernels = {event.key for event in profiler.key_averages()}
    assert "aten::mkldnn_convolution" in kernels
    assert "aten::_slow_conv2d_forward" not in kernels


def test_both_gemm_routes_are_timed() -> None:
    rates = gemm_gflops(size=64, repeats=1)
    assert set(rates) == {"BLAS (torch.mm)", "oneDNN (1x1 convolution)"}
    assert all(rate > 0 for rate in rates.values())
