"""The UIs as a newcomer opens them after a `tiny` run (`make ui-test`): MLflow's run, runs
table and registry, and Prefect's flow runs, in the system's Chromium driven by Playwright.

Out of `make test` (minutes: a stack and a run): it runs only with GLASSES_UI_TEST=1, which
`make ui-test` sets, and is skipped, saying why, without Playwright or Chromium. Screenshots, one
per assertion, go to `.ui-test/`, with the `--watch` output of the run (`watch.txt`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from test_stack import ROOT, run_deployment, stack  # noqa: F401 - the fixture

from mlflow import MlflowClient
from tasks.tracking import ui_url

SHOTS = ROOT / ".ui-test"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.environ.get("GLASSES_UI_TEST") != "1", reason="run by `make ui-test`"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `apt-get install -y chromium`"),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="no Playwright: `pip install -e '.[ui]'`"
)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def finished(stack):  # noqa: F811 - the stack fixture imported above
    """The tiny run, and what the pages are checked against."""
    watched = run_deployment(stack, "glasses/full", "profile=tiny", "data=synthetic")
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / "watch.txt").write_text(watched.stdout)  # what `make demo`'s terminal shows
    uri = stack["MLFLOW_TRACKING_URI"]
    tracking = MlflowClient(uri, registry_uri=uri)
    experiment = tracking.get_experiment_by_name("glasses").experiment_id
    runs = tracking.search_runs([experiment])
    parent = next(r for r in runs if "profile" in r.data.tags)
    return stack, tracking, experiment, parent


def _shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _sees(page, text: str | re.Pattern) -> None:
    """Waits for `text`; a screenshot of the page as it was when it did not come."""
    try:
        page.get_by_text(text).first.wait_for(state="visible", timeout=TIMEOUT_MS)
    except sync_api.TimeoutError:
        _shot(page, f"missing-{re.sub(r'[^a-z0-9]+', '-', str(text).lower())[:40]}")
        raise


def test_mlflow_parent_run_shows_verdict_and_headline_metric(browser, finished) -> None:
    servers, _, experiment, parent = finished
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(
        f"{servers['MLFLOW_TRACKING_URI']}/#/experiments/{experiment}/runs/{parent.info.run_id}"
    )
    _sees(page, "ScatNet − CNN test balanced accuracy")  # the description
    _sees(page, "cnn_test_balanced_accuracy")
    _sees(page, "prefect deployment run glasses/full")  # the Source
    _shot(page, "mlflow-parent-run")


def test_mlflow_runs_table_lists_the_run(browser, finished) -> None:
    """The runs-table link the run logs opens the model-training view, in a fresh browser, with
    the headline metrics among its columns."""
    _, tracking, experiment, parent = finished
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(ui_url(tracking, experiment))
    _sees(page, parent.info.run_name)
    assert "/runs" in page.url and "workflowType=machine_learning" in page.url
    _sees(page, "cnn_test_balanced_accuracy")  # a column only the link's view shows at first
    _shot(page, "mlflow-runs-table")


def test_mlflow_registry_version_has_its_description(browser, finished) -> None:
    servers, tracking, _, _ = finished
    version = tracking.get_model_version_by_alias("glasses-cnn", "champion").version
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{servers['MLFLOW_TRACKING_URI']}/#/models/glasses-cnn/versions/{version}")
    _sees(page, re.compile("Held-out balanced accuracy"))
    _shot(page, "mlflow-registry-version")


def test_prefect_flow_run_shows_progress_and_named_tasks(browser, finished) -> None:
    servers, _, _, parent = finished
    ui = servers["PREFECT_API_URL"].removesuffix("/api")
    study = parent.data.tags["prefect_flow_run_id"]
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{ui}/runs/flow-run/{study}")
    page.get_by_text(re.compile("^ *Task Runs")).first.click(timeout=TIMEOUT_MS)
    page.get_by_placeholder("Search by run name").fill("fold")  # the list shows the newest first
    _sees(page, "cnn-fold-1")
    _sees(page, "scatnet-folds-1-2")  # the ScatNet's folds train stacked, in one task
    _shot(page, "prefect-task-runs")
    api = servers["PREFECT_API_URL"]
    caller = httpx.get(f"{api}/flow_runs/{study}").json()["parent_task_run_id"]
    watched = httpx.get(f"{api}/task_runs/{caller}").json()["flow_run_id"]
    page.goto(f"{ui}/runs/flow-run/{watched}")  # the run `--watch` follows: its logs tab
    _sees(page, "stage load: started")
    _shot(page, "prefect-parent-logs")
