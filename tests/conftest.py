"""Shared fixtures: a tiny, clearly learnable image set on disk and a throw-away MLflow store."""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch loads: the suite must not crawl when the machine is busy

import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from glasses.config import GlassesConfig, resolve_config  # noqa: E402

if TYPE_CHECKING:
    from glasses.data.reference import DataRef
    from tasks.training import ModelRef

SIZE = 32
PER_CLASS = 16
GROUPS = 8  # persons: each has images of both classes, two of each
BAR_ROWS = slice(13, 19)  # class 1 ("glasses") carries a bright horizontal bar here


def draw(label: int, index: int, size: int = SIZE) -> np.ndarray:
    """A dark, noisy H x W x 3 uint8 image; label 1 adds a bright horizontal bar.

    Every image has its own noise, so no two files share a content hash.
    """
    rng = np.random.default_rng(10_000 * label + index)
    pixels = rng.integers(0, 60, size=(size, size, 3))
    if label == 1:
        pixels[BAR_ROWS, 3 : size - 3] = rng.integers(210, 256, size=(6, size - 6, 3))
    return pixels.astype(np.uint8)


def image_rows(per_class: int = PER_CLASS) -> list[dict]:
    """path (relative), label and group of every image of the tiny set, classes interleaved."""
    return [
        {
            "path": f"images/c{label}_{index:03d}.png",
            "label": label,
            "group": f"p{index % GROUPS:02d}",
        }
        for index in range(per_class)
        for label in (0, 1)
    ]


@dataclass(frozen=True)
class TinyData:
    root: Path
    table: pd.DataFrame  # path (relative to root), label, group

    @property
    def csv(self) -> Path:
        return self.root / "labels.csv"

    def file(self, row: int) -> Path:
        return self.root / self.table["path"].iloc[row]


def write_csv_set(root: Path, per_class: int = PER_CLASS, size: int = SIZE) -> TinyData:
    """`root/labels.csv` (path,label,group) and the PNGs under `root/images/`."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(image_rows(per_class))
    for row in table.itertuples():
        index = int(row.path.split("_")[1].split(".")[0])
        Image.fromarray(draw(row.label, index, size)).save(root / row.path)
    table.to_csv(root / "labels.csv", index=False)
    return TinyData(root, table)


def write_folder_set(root: Path, per_class: int = 6, size: int = SIZE) -> dict[str, int]:
    """ImageFolder layout (`glasses/`, `no_glasses/`); returns file name → expected label."""
    expected = {}
    for folder, label in (("glasses", 1), ("no_glasses", 0)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            name = f"{folder}_{index:02d}.png"
            Image.fromarray(draw(label, index, size)).save(root / folder / name)
            expected[name] = label
    return expected


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` (files and folders) with its size and mtime in nanoseconds."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


# The suite's longest files, then the folders of the other long ones: pytest-xdist hands out
# files in this order, so that no worker is left alone with a long file at the end. Seconds from
# a clean-clone `make test` (it prints its --durations); this order measured 467 and 469 s, and
# the same files strictly sorted by these seconds 534 s (host noise is about that large).
LONGEST_FIRST = (
    "tests/e2e/test_stack.py",  # ~220 s: the stack, a deployment run, the retrain, the kill test
    "tests/flows/test_crash_recovery.py",  # ~110 s
    "tests/flows/test_first_runs_at_once.py",  # ~65 s
    "tests/flows/test_runs_in_one_store.py",  # ~85 s
    "tests/flows/test_seed_stability.py",  # ~60 s
    "tests/flows/test_cli.py",  # ~30 s
    "tests/flows/test_full_disk.py",  # ~25 s
    "tests/flows/test_retrain_flow.py",  # ~35 s
    "tests/flows/test_full_flow.py",  # ~45 s
    "tests/flows/",
    "tests/e2e/",
    "tests/test_null_simulation.py",
    "tests/xai/",
    "tests/tasks/",
)


def first_place(nodeid: str) -> int:
    """The test's rank in `LONGEST_FIRST`; the rest after it, in file order."""
    return next(
        (rank for rank, prefix in enumerate(LONGEST_FIRST) if nodeid.startswith(prefix)),
        len(LONGEST_FIRST),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: first_place(item.nodeid))  # stable: file order within a rank


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tiny_config() -> GlassesConfig:
    return resolve_config("tiny")


@pytest.fixture
def csv_data(tmp_path: Path) -> TinyData:
    return write_csv_set(tmp_path / "csv_data")


@pytest.fixture
def folder_data(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    root = tmp_path / "folder_data"
    return root, write_folder_set(root)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GLASSES_CACHE_DIR", str(folder))
    return folder


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, built by `build` once per test run however many pytest-xdist workers
    ask: the first builds it under a lock in the run's shared temporary folder, the others wait
    and take it. For stores whose schema takes seconds to create and a copy no time."""
    from glasses.locking import file_lock

    shared = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-N/, above each worker's popen-gwK/
    folder = shared / name
    with file_lock(shared / f"{name}.lock", timeout=600):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def _create_mlflow_db(folder: Path) -> None:
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the Default experiment's artifact root lands here, not in the repo
        MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db").search_experiments()


def _create_prefect_db(folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    subprocess.run(
        [Path(sys.executable).parent / "prefect", "server", "database", "upgrade", "-y"],
        env={**env, "PREFECT_HOME": str(folder)},
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow SQLite store: creating the schema takes seconds, a copy not."""
    return built_once(tmp_path_factory, "mlflow_template", _create_mlflow_db) / "mlflow.db"


@pytest.fixture(scope="session")
def _empty_prefect_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty Prefect database: a server on a new `PREFECT_HOME` spends seconds on
    its migrations at every start; on a copy of this one, none."""
    return built_once(tmp_path_factory, "prefect_template", _create_prefect_db) / "prefect.db"


@pytest.fixture
def prefect_home(tmp_path: Path, _empty_prefect_db: Path) -> Path:
    """`tmp_path/prefect`, a `PREFECT_HOME` whose database is migrated and empty: for tests whose
    point is not a first start (tests/flows/test_first_runs_at_once.py is about that)."""
    home = tmp_path / "prefect"
    home.mkdir()
    shutil.copyfile(_empty_prefect_db, home / "prefect.db")
    return home


@pytest.fixture
def mlflow_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _empty_mlflow_db: Path
) -> Iterator[str]:
    """A fresh SQLite tracking store in tmp_path, opened as a flow start does; cwd is tmp_path,
    and the experiment's artifacts go beside the database (`tmp_path/mlflow-artifacts`)."""
    import mlflow
    from tasks.tracking import open_store

    shutil.copyfile(_empty_mlflow_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("GLASSES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    open_store()
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(autouse=True)
def _forget_tracking_uri() -> Iterator[None]:
    """A flow start names its store in the environment (`glasses.entrypoint.use_tracking_uri`):
    restore the variable after each test, so no test logs into another test's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)


@pytest.fixture
def unchanged() -> Callable[[Path], Callable[[], None]]:
    """`check = unchanged(folder)` before an operation; `check()` after asserts it is untouched."""

    def take(root: Path) -> Callable[[], None]:
        before = snapshot(root)

        def check() -> None:
            assert snapshot(root) == before, f"{root} was modified"

        return check

    return take


# Helpers reach test modules as fixtures: nothing imports conftest (tests/ has no packages).


def stack(per_class: int = PER_CLASS, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """In-memory twin of the CSV set: contiguous N x 3 x H x W uint8 pixels and their labels."""
    pixels = [draw(label, i, size).transpose(2, 0, 1) for i in range(per_class) for label in (0, 1)]
    labels = [label for _ in range(per_class) for label in (0, 1)]
    return np.ascontiguousarray(np.stack(pixels)), np.array(labels, dtype=np.int64)


@pytest.fixture(scope="session")
def image_arrays() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return stack


@dataclass(frozen=True)
class References:
    """Tasks take references, not arrays or modules: these put test data where they look."""

    folder: Path

    def data(
        self, pixels: np.ndarray, labels: np.ndarray, sha256: list[str] | None = None
    ) -> DataRef:
        from glasses.data.images import ImageSet
        from glasses.data.reference import store_image_set

        n = len(labels)
        manifest = pd.DataFrame(
            {
                "path": [f"image_{i}.png" for i in range(n)],
                "label": np.asarray(labels, dtype=np.int64),
                "group": [f"person_{i // 2}" for i in range(n)],
                "sha256": sha256 or [f"{i:064x}" for i in range(n)],
            }
        )
        return store_image_set(ImageSet(manifest, np.ascontiguousarray(pixels)), self.folder)

    def model(self, model) -> ModelRef:
        from glasses.families import family_of
        from glasses.inference import model_spec, weights_digest
        from glasses.results import ResultStore
        from tasks.training import ModelRef

        store = ResultStore(self.folder / "results")
        key = f"test-{weights_digest(model)}"
        store.put(key, {"spec": model_spec(model), "state": model.state_dict(), "final": {}})
        return ModelRef(family_of(model).name, str(store.folder), key, 0, {})


@pytest.fixture
def references(tmp_path: Path) -> References:
    return References(tmp_path / "references")


@pytest.fixture(scope="session")
def references_in() -> type[References]:
    """`References(folder)` for fixtures wider than a test."""
    return References


@pytest.fixture
def newest_version() -> Callable:
    """The newest version of a registered model, with its aliases (search results leave them
    out): a re-run's version holds one alias, `champion` when promoted, else `challenger`."""

    def newest(tracking, name: str):
        versions = tracking.search_model_versions(f"name = '{name}'")
        return tracking.get_model_version(name, str(max(int(v.version) for v in versions)))

    return newest
