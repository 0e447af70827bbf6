"""`glasses`: run the flow in-process, or print the latest run's results.

For people without the local stack: `glasses run` needs no Prefect or MLflow server (Prefect
starts a temporary one; MLflow honours MLFLOW_TRACKING_URI, else a local SQLite store).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from glasses.config import PROFILES, resolve_config


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """`cnn.optimiser.epochs=3` → {"cnn": {"optimiser": {"epochs": 3}}}; values read as YAML."""
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
        help="override a configuration value, e.g. cnn.optimiser.epochs=3",
    )
    run.set_defaults(handler=_run)
    summary = commands.add_parser("summary", help="print the latest finished run's results")
    summary.set_defaults(handler=_summary)
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except (ValueError, RuntimeError) as error:
        # Bad data, bad configuration, a server that is down: the message says what and where.
        print(f"glasses: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
