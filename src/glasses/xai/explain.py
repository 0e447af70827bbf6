"""What every attribution method returns: an `Explanation`.

The methods, and `explain` that runs one by name, are in `glasses.xai.methods`. `Explanation`
stays in this module because the result store names a stored class by its module
(`glasses.result_format`): moved, every cached explanation would become unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glasses.config import XAIMethod
from glasses.result_format import stored


@stored
@dataclass
class Explanation:
    """One method's attributions of N images, as `MethodSpec.attribute` returns them."""

    method: XAIMethod
    maps: np.ndarray  # N x H x W, colour channels summed (signed)
    raw: np.ndarray | None  # N x 3 x H x W where the method attributes per channel, else None
    gaps: np.ndarray | None  # N: the gap of the method's axiom (`MethodSpec.gap`), else None
    seconds: float  # wall-clock time of the whole call
