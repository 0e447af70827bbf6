"""`glasses`: run the flow in-process, or print the latest run's results.

For people without the local stack: `glasses run` needs no Prefect or MLflow server (Prefect
starts a temporary one; MLflow honours MLFLOW_TRACKING_URI, else a local SQLite store).
"""

from __future__ import annotations

import os

# Before torch loads: spinning OpenMP threads slow torch tens of times on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile
from pathlib import Path
from typing import Any

import yaml

from glasses.config import PROFILES, resolve_config


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """`cnn.optimiser.steps=3` → {"cnn": {"optimiser": {"steps": 3}}}; values read as YAML."""
    tree: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {assignment!r}")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return tree


def _run(arguments: argparse.Namespace) -> int:
    from tasks.tracking import require_server

    overrides = parse_overrides(arguments.set)
    resolve_config(arguments.profile, overrides)  # a typo fails here, before any server starts
    api = os.environ.get("PREFECT_API_URL")
    if api:
        require_server(
            "Prefect server",
            f"{api.rstrip('/')}/health",
            "start the stack with `make up`, or unset PREFECT_API_URL to run without a server",
        )
    from flows.full import glasses

    result = glasses(data=arguments.data, profile=arguments.profile, overrides=overrides)
    print(result["mlflow_run_url"])
    return 0


def _summary(arguments: argparse.Namespace) -> int:
    from tasks.tracking import EXPERIMENT, client

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracking = client()
    experiment = tracking.get_experiment_by_name(EXPERIMENT)
    runs = (
        []
        if experiment is None
        else tracking.search_runs(
            [experiment.experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
    )
    parents = [run for run in runs if "profile" in run.data.tags]
    if not parents:
        print(f"no finished glasses run in {tracking.tracking_uri}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        print(
            Path(
                tracking.download_artifacts(parents[0].info.run_id, "summary.md", scratch)
            ).read_text()
        )
    return 0


EXPLAIN_METHODS = {"ig": ("ig",), "ig-captum": ("ig_captum",), "lime": ("lime",), "shap": ("shap",)}
EXPLAIN_METHODS["all"] = tuple(m for ms in EXPLAIN_METHODS.values() for m in ms)


def _explain(arguments: argparse.Namespace) -> int:
    """Overlay PNG of the chosen methods for one image of the user's, for the class the
    registered model predicts."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from PIL import Image

    from glasses.config import XAIConfig
    from glasses.data.images import to_rgb
    from glasses.xai.explain import explain, predicted_targets
    from glasses.xai.overlays import method_overlays_figure
    from tasks.tracking import client

    image_path = Path(arguments.image)
    try:
        with Image.open(image_path) as opened:
            rgb = to_rgb(opened)
    except OSError as error:
        raise ValueError(f"{image_path}: not a readable image ({error})") from None
    client()
    model = mlflow.pytorch.load_model(f"models:/{arguments.model}").cpu().eval()
    size = model.image_size
    pixels = np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    images = torch.from_numpy(pixels.transpose(2, 0, 1)[None] / 255).float()
    targets = predicted_targets(model, images)
    maps = {
        method: explain(model, images, targets, method, XAIConfig(), seed=0).maps[0]
        for method in EXPLAIN_METHODS[arguments.method]
    }
    label = "glasses" if int(targets[0]) else "no glasses"
    figure = method_overlays_figure(pixels / 255, maps, f"{arguments.model}: {label}")
    output = Path(arguments.output or f"{image_path.stem}_explained.png")
    figure.savefig(output, dpi=110)
    print(output)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glasses", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the full flow in this process")
    run.add_argument("--data", default="synthetic", help="synthetic, a folder or a labels CSV")
    run.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value, e.g. cnn.optimiser.steps=3",
    )
    run.set_defaults(handler=_run)
    summary = commands.add_parser("summary", help="print the latest finished run's results")
    summary.set_defaults(handler=_summary)
    explain = commands.add_parser("explain", help="write attribution overlays for one image")
    explain.add_argument("image")
    explain.add_argument("--model", default="glasses-cnn@champion", help="registered model URI")
    explain.add_argument("--method", default="all", choices=sorted(EXPLAIN_METHODS))
    explain.add_argument("--output", help="PNG path (default: IMAGE_explained.png here)")
    explain.set_defaults(handler=_explain)
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except (ValueError, RuntimeError) as error:
        # Bad data, bad configuration, a server that is down: the message says what and where.
        print(f"glasses: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
