"""`glasses`: run the flow in-process, or print the latest run's results.

For people without the local stack: `glasses run` needs no Prefect or MLflow server (Prefect
starts a temporary one; MLflow honours MLFLOW_TRACKING_URI, else a local SQLite store).
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or MLflow load

import argparse  # noqa: E402
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
    print(result["mlflow_run_url"])
    return 0


def _summary(arguments: argparse.Namespace) -> int:
    from tasks.tracking import client, experiment_name

    tracking = client()
    experiment = tracking.get_experiment_by_name(experiment_name())
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
    """Class and probability per image, from a registered model."""
    from glasses.inference import class_probabilities, prediction_table
    from glasses.labels import CLASS_NAMES
    from tasks.model_loading import load_registered_model

    model = load_registered_model(arguments.model)
    paths = [Path(image) for image in arguments.images]
    pixels = [_read_image(path, model.image_size) for path in paths]
    table = prediction_table(class_probabilities(model, pixels), list(CLASS_NAMES))
    for path, row in zip(paths, table.itertuples(index=False), strict=True):
        print(f"{path}\t{row.label}\t{row.probability:.3f}")
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
    summary = commands.add_parser("summary", help="print the latest finished run's results")
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
