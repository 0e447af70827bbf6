"""The whole cascading-randomisation check as one figure (Adebayo et al. 2018, their Fig. 2 as
curves): where each method's maps stop resembling the trained model's, layer by layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

EDGES_LABEL = "dashed: the same maps vs the image's edges (control)"


def cascade_figure(table: pd.DataFrame) -> Figure:
    """One panel per model: per method, the mean rank correlation with the trained model's maps
    (solid, 95 % band over people) and with the image's edges (dashed, same colour) against the
    layers randomised so far, from the output down. The trained maps' correlation with the
    edges (the dashed line's first point) is the control a randomised map must fall below.

    `table` is `glasses.xai.correctness.randomisation_summary`'s.
    """
    models = sorted(table["model"].unique())
    figure, axes = plt.subplots(
        1, len(models), figsize=(5.5 * len(models), 4.8), squeeze=False, sharey=True,
        layout="constrained",
    )  # fmt: skip
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = list(dict.fromkeys(table["method"]))
    handles = {}
    bottom = min(-0.2, table[["spearman_low", "edge_spearman"]].min().min() - 0.05)
    for axis, model in zip(axes[0], models, strict=True):
        own = table[table["model"] == model]
        for method, group in own.groupby("method", sort=False):
            group = group.sort_values("step")
            colour = colours[methods.index(method) % len(colours)]
            axis.plot(group["step"], group["spearman"], marker="o", color=colour, label=method)
            axis.fill_between(
                group["step"],
                group["spearman_low"],
                group["spearman_high"],
                color=colour,
                alpha=0.15,
            )
            axis.plot(group["step"], group["edge_spearman"], linestyle="--", color=colour)
        steps = own.drop_duplicates("step").sort_values("step")
        axis.set_xticks(steps["step"], ["trained", *steps["layer"].iloc[1:]], rotation=45)
        axis.set(title=model, xlabel="randomised down to layer", ylim=(bottom, 1.05))
        axis.grid(alpha=0.3)
        handles.update(zip(*axis.get_legend_handles_labels()[::-1], strict=True))
    axes[0][0].set_ylabel("Spearman of |maps| (mean over images)")
    edges = Line2D([], [], color="grey", linestyle="--", label=EDGES_LABEL)
    figure.legend(
        handles=[*handles.values(), edges], loc="outside lower center", ncol=len(handles) + 1
    )
    figure.suptitle("Cascading model randomisation")
    return figure
