"""The classes every model predicts, in the order of its output columns (label 0, label 1).

Kept apart from `glasses.plots` so that serving and `glasses predict` name them without
loading matplotlib.
"""

from __future__ import annotations

CLASS_NAMES = ("no glasses", "glasses")
