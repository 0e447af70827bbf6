"""`glasses`: run the flow in-process, or print the latest run's results.

For people without the local stack: `glasses run` needs no Prefect or MLflow server (Prefect
starts a temporary one; MLflow honours MLFLOW_TRACKING_URI, else a local SQLite store).
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or MLflow load

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager, nullcontext  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, get_args  # noqa: E402

import yaml  # noqa: E402

from glasses.config import PROFILES, XAIMethod, resolve_config  # noqa: E402

if TYPE_CHECKING:
    import numpy as np


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """`cnn.optimiser.steps=3` → {"cnn": {"optimiser": {"steps": 3}}}; values read as YAML.

    A malformed assignment raises `ValueError` naming it, for `main` to print as one line."""
    tree: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        if not separator or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {assignment!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as error:
            reason = str(error).splitlines()[0]
            raise ValueError(
                f"--set {assignment!r}: the value is not valid YAML ({reason})"
            ) from None
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {assignment!r}: {part} is set to a value above")
        node[leaf] = parsed
    return tree


def _config(arguments: argparse.Namespace) -> int:
    """The resolved configuration of a profile and overrides, as YAML, with nothing run."""
    config = resolve_config(arguments.profile, parse_overrides(arguments.set))
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


class _NoErrors(logging.Filter):
    """Prefect logs a failing task's and flow's error, with tracebacks, to the console; `main`
    prints the error once, as one line, instead. The Prefect server still gets all of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        failed = "Finished in state Failed" in record.getMessage()
        return record.levelno < logging.ERROR and not failed


@contextmanager
def quiet_failures() -> Iterator[None]:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    handlers = {
        handler
        for logger in [logging.root, *loggers]
        for handler in getattr(logger, "handlers", [])
        if isinstance(handler, PrefectConsoleHandler)
    }
    quiet = _NoErrors()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def _run(arguments: argparse.Namespace) -> int:
    from tasks.tracking import require_server

    overrides = parse_overrides(arguments.set)
    # A typo fails here, before any server starts.
    limits = resolve_config(arguments.profile, overrides).runtime
    from prefect.settings import PREFECT_API_URL

    # The environment, else the active Prefect profile (`prefect config set PREFECT_API_URL=…`).
    api = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if api:
        require_server(
            "Prefect server",
            f"{api.rstrip('/')}/health",
            "start the stack with `make up`, or unset PREFECT_API_URL to run without a server",
            limits.health_timeout_seconds,
        )
    from flows.full import glasses
    from flows.temporary_server import temporary_prefect_server

    server = nullcontext() if api else temporary_prefect_server(limits.server_start_seconds)
    with server, quiet_failures():
        result = glasses(data=arguments.data, profile=arguments.profile, overrides=overrides)
    print(f"MLflow run: {result['mlflow_run_url']}\nAll runs: {result['mlflow_runs_url']}")
    return 0


def _summary(arguments: argparse.Namespace) -> int:
    """The latest study run's results: its summary when it finished; else, marked as partial,
    the stages it finished so far and the results it published by then (the test scores are
    published before the sweep and the explanations run)."""
    from mlflow.exceptions import MlflowException

    from glasses.progress import duration
    from tasks.tracking import client, experiment_name

    tracking = client()
    experiment = tracking.get_experiment_by_name(experiment_name())
    runs = (
        []
        if experiment is None
        else tracking.search_runs(
            [experiment.experiment_id],
            filter_string="tags.profile != ''",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
    )
    if not runs:
        print(f"no glasses run in {tracking.tracking_uri}", file=sys.stderr)
        return 1
    run = runs[0]
    if run.info.status != "FINISHED":
        print(f"{run.info.status} run {run.info.run_name} ({run.info.run_id}): partial results")
        timings = [
            tracking.get_metric_history(run.info.run_id, key)[-1]
            for key in run.data.metrics
            if key.startswith("stage_") and key.endswith("_seconds")
        ]
        for timing in sorted(timings, key=lambda metric: metric.timestamp):  # in finishing order
            stage = timing.key.removeprefix("stage_").removesuffix("_seconds")
            print(f"  stage {stage}: finished in {duration(timing.value)}")
        if not timings:
            print("  no stage finished yet")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            summary = tracking.download_artifacts(run.info.run_id, "summary.md", scratch)
        except (OSError, MlflowException):
            return 0  # no results published yet: the stages say how far it got
        print(Path(summary).read_text())
    return 0


# `--method`: one method of `glasses.xai.methods`, hyphenated, or `all`, its `MAIN` methods.
# Named from the configuration's list, which the registry checks, so that not every command has
# to load torch, Captum, LIME and SHAP first.
EXPLAIN_METHODS = ("all", *(name.replace("_", "-") for name in get_args(XAIMethod)))


def _explain(arguments: argparse.Namespace) -> int:
    """Overlay PNG of the chosen methods for one image of the user's, for the class the
    registered model predicts."""
    from glasses.xai.user_image import explained_image_figure, methods_named
    from tasks.model_loading import load_registered_model

    image_path = Path(arguments.image)
    model = load_registered_model(arguments.model)
    pixels = _read_image(image_path, model.image_size)
    figure = explained_image_figure(model, pixels, methods_named(arguments.method), arguments.model)
    output = Path(arguments.output or f"{image_path.stem}_explained.png")
    figure.savefig(output, dpi=110)
    print(output)
    return 0


def _read_image(path: Path, size: int) -> np.ndarray:
    """A user's image as size x size x 3 floats in [0, 1], or one line that names it."""
    from glasses.inference import image_pixels

    try:
        return image_pixels(path, size)
    except OSError as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None


def _predict(arguments: argparse.Namespace) -> int:
    """Class and probability per image, from a registered model, under a line that names the
    model (name, version, aliases); `--format csv` or `json` for other programs, where every
    row, or the object, names it."""
    from glasses.inference import class_probabilities, prediction_table
    from glasses.labels import CLASS_NAMES
    from tasks.model_loading import load_registered_model, model_version
    from tasks.tracking import client

    version = model_version(client(), arguments.model)
    model = load_registered_model(arguments.model)
    paths = [Path(image) for image in arguments.images]
    pixels = [_read_image(path, model.image_size) for path in paths]
    table = prediction_table(class_probabilities(model, pixels), list(CLASS_NAMES))
    table.insert(0, "path", [str(path) for path in paths])
    table["probability"] = table["probability"].round(3)
    aliases = sorted(version.aliases)
    if arguments.format == "json":
        print(
            json.dumps(
                {
                    "model": version.name,
                    "version": str(version.version),
                    "aliases": aliases,
                    "predictions": table[["path", "label", "probability"]].to_dict("records"),
                },
                indent=2,
            )
        )
    elif arguments.format == "csv":
        named = table.assign(
            model=version.name, version=str(version.version), aliases=" ".join(aliases)
        )
        columns = ["model", "version", "aliases", "path", "label", "probability"]
        print(named[columns].to_csv(index=False), end="")
    else:
        shown = " ".join(f"@{alias}" for alias in aliases)
        print(f"model {version.name} v{version.version} {shown}".rstrip())
        for row in table.itertuples(index=False):
            print(f"{row.path}\t{row.label}\t{row.probability:.3f}")
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
    show = commands.add_parser("config", help="print the resolved configuration")
    show.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    show.set_defaults(handler=_config)
    summary = commands.add_parser(
        "summary", help="print the latest run's results (partial while it runs or if it failed)"
    )
    summary.set_defaults(handler=_summary)
    explain = commands.add_parser("explain", help="write attribution overlays for one image")
    explain.add_argument("image")
    explain.add_argument("--model", default="glasses-cnn@champion", help="registered model URI")
    explain.add_argument("--method", default="all", choices=EXPLAIN_METHODS)
    explain.add_argument("--output", help="PNG path (default: IMAGE_explained.png here)")
    explain.set_defaults(handler=_explain)
    predict = commands.add_parser("predict", help="print class and probability per image")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model", default="glasses-cnn@champion", help="registered model URI")
    predict.add_argument("--format", default="table", choices=("table", "csv", "json"))
    predict.set_defaults(handler=_predict)
    arguments = parser.parse_args(argv)
    from tasks.tracking import open_store

    open_store()
    try:
        return arguments.handler(arguments)
    except (ValueError, RuntimeError, OSError) as error:
        # Bad data, bad configuration, a server that is down, a folder it cannot write: the
        # message says what and where.
        print(f"glasses: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
