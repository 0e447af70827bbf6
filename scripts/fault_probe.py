"""Bad inputs and faults, met the way a new user meets them (issue 20): is every refusal one
line, does every run end, and is the data left as it was?

Each case runs `glasses run` from this checkout in a fresh temporary folder with its own MLflow
store (SQLite), Prefect home (so each run starts its own temporary server) and cache, and records
the exit status, any raw traceback in the output, the MLflow runs still RUNNING once the case is
over, and the input files (the data folder, and the files outside it that links point to) that
changed. One row per case, then the totals; exits 1 when a case went otherwise than expected.

    python scripts/fault_probe.py [--only NAME ...] [--keep] [--with-disk-full]

About 25 minutes on a 2-core machine; `--only` picks cases, `--keep` leaves their folders.
`--with-disk-full` adds a case that mounts a small tmpfs as the cache (root only).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TRACEBACK = "Traceback (most recent call last)"
# The least work that still runs every stage that touches a store or the cache (as
# tests/flows/test_first_runs_at_once.py).
SMALL = {
    "sweep.enabled": "false",
    "xai.enabled": "false",
    "cnn.optimiser.steps": "4",
    "scatnet.optimiser.steps": "4",
}
# Still training when it is killed (as tests/flows/test_crash_recovery.py).
LONG = SMALL | {
    "cnn.optimiser.steps": "100000",
    "scatnet.optimiser.steps": "100000",
    "cnn.optimiser.patience": "0",
    "scatnet.optimiser.patience": "0",
}
COMMAND_SECONDS = 900
KILL_AFTER_SECONDS = 5  # after the first RUNNING MLflow run appears: mid-run, not at its start
TIMED_OUT = -1000  # the exit status shown for a run stopped after COMMAND_SECONDS
NOTHING_KILLED = -1001  # ... for a kill -9 case whose run ended before it was killed


@dataclass(frozen=True)
class Finished:
    """One `glasses run` that ended; `judged` is False for one the case killed on purpose."""

    code: int
    stdout: str
    stderr: str
    judged: bool = True

    @property
    def message(self) -> str:
        """What `glasses` said last: from its last line that names it (`glasses: …`, argparse's
        `glasses run: error: …`) to the end; '' when no line does."""
        lines = self.stderr.rstrip().splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("glasses")]
        return "\n".join(lines[starts[-1] :]) if starts else ""


@dataclass
class Sandbox:
    """One case's folder: `inputs/data` (what `--data` names) and `inputs/outside` (what links
    point to), `store/` (MLflow), `prefect/`, `cache/`, `logs/`; commands run in `work/`."""

    root: Path
    env: dict[str, str]

    @classmethod
    def create(cls, root: Path) -> Sandbox:
        for name in ("inputs/data", "inputs/outside", "logs", "work"):
            (root / name).mkdir(parents=True)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{root}/store/mlflow.db",
            "PREFECT_HOME": str(root / "prefect"),
            "GLASSES_CACHE_DIR": str(root / "cache"),
            # This checkout's code, whichever copy the interpreter has installed.
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        env.pop("PREFECT_API_URL", None)  # so `glasses run` starts its own server
        return cls(root, env)

    @property
    def data(self) -> Path:
        return self.root / "inputs" / "data"

    @property
    def outside(self) -> Path:
        return self.root / "inputs" / "outside"

    @property
    def database(self) -> Path:
        return self.root / "store" / "mlflow.db"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def start(self, arguments: list[str], log: str, env: dict[str, str] | None = None):
        """`glasses run ARGUMENTS` in the background, its output in `logs/LOG.out|err`, in a
        session of its own so that whatever it leaves behind can be stopped."""
        with (
            open(self.root / "logs" / f"{log}.out", "w") as out,
            open(self.root / "logs" / f"{log}.err", "w") as err,
        ):
            return subprocess.Popen(
                [sys.executable, "-m", "flows.cli", "run", *arguments],
                env={**self.env, **(env or {})},
                cwd=self.root / "work",
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def finish(self, process: subprocess.Popen, log: str, judged: bool = True) -> Finished:
        try:
            code = process.wait(COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            code = TIMED_OUT
        finally:
            with_leftovers_stopped(process.pid)
        logs = self.root / "logs"
        return Finished(
            code, (logs / f"{log}.out").read_text(), (logs / f"{log}.err").read_text(), judged
        )

    def glasses(
        self, arguments: list[str], log: str = "run", env: dict[str, str] | None = None
    ) -> Finished:
        return self.finish(self.start(arguments, log, env), log)


def with_leftovers_stopped(session: int) -> None:
    """SIGKILL whatever is left of a command's session (a server it failed to stop)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGKILL)


def settings(values: dict[str, str]) -> list[str]:
    return [part for key, value in values.items() for part in ("--set", f"{key}={value}")]


def closed_port() -> int:
    """A loopback port nothing listens on: a server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Inputs -------------------------------------------------------------------------------------


def write_faces(folder: Path, count: int = 60, with_glasses: int = 34) -> pd.DataFrame:
    """A valid `tiny` set, as a user would bring it: the product's synthetic faces (32 px PNGs,
    several per person) under `folder/images/`, listed in `folder/labels.csv` (path,label,group).
    Returns the table, for cases to spoil."""
    from glasses.data.synthetic import generate_synthetic

    with tempfile.TemporaryDirectory() as scratch:
        labels = generate_synthetic(Path(scratch) / "set", count, with_glasses, 32, seed=0)
        shutil.copytree(labels.parent / "images", folder / "images")
        table = pd.read_csv(labels)[["path", "label", "group"]]
    table.to_csv(folder / "labels.csv", index=False)
    return table


def csv_set(box: Sandbox, spoil: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> list[str]:
    """`--data` of the faces' labels.csv, rewritten by `spoil` first when given."""
    table = write_faces(box.data)
    if spoil is not None:
        spoil(table).to_csv(box.data / "labels.csv", index=False)
    return ["--data", str(box.data / "labels.csv")]


def outside_face(box: Sandbox) -> Path:
    """An image outside the data folder, for links and `..` paths to reach."""
    write_faces(box.outside, count=8, with_glasses=4)
    return next((box.outside / "images").glob("*.png"))


def folder_set(box: Sandbox) -> None:
    """The class-folder layout (`glasses/`, `no_glasses/`) of the same faces."""
    table = write_faces(box.root / "staging")
    for row in table.itertuples():
        target = box.data / ("glasses" if row.label else "no_glasses")
        target.mkdir(exist_ok=True)
        shutil.copy2(box.root / "staging" / row.path, target)
    shutil.rmtree(box.root / "staging")


def kaggle_set(box: Sandbox) -> pd.DataFrame:
    """Kaggle's layout: `train.csv` (id,glasses) and `faces/face-<id>.png`."""
    table = write_faces(box.root / "staging")
    (box.data / "faces").mkdir()
    for face_id, row in enumerate(table.itertuples(), start=1):
        shutil.copy2(box.root / "staging" / row.path, box.data / "faces" / f"face-{face_id}.png")
    shutil.rmtree(box.root / "staging")
    kaggle = pd.DataFrame({"id": range(1, len(table) + 1), "glasses": table["label"]})
    kaggle.to_csv(box.data / "train.csv", index=False)
    return kaggle


def input_state(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder`, links not followed: a file's SHA-256 and mtime, a link's
    target, a folder's existence."""
    state: dict[str, tuple] = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent, name)
            key = str(path.relative_to(folder))
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            elif path.is_dir():
                state[key] = ("folder",)
            else:
                with path.open("rb") as stream:
                    digest = hashlib.file_digest(stream, "sha256").hexdigest()
                state[key] = (digest, path.stat().st_mtime_ns)
    return state


def changed_entries(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


# The store --------------------------------------------------------------------------------


def running_runs(database: Path) -> int:
    """MLflow runs RUNNING in the store, in every experiment (none when there is no store)."""
    if not database.exists():
        return 0
    from mlflow.entities import ViewType

    from mlflow import MlflowClient

    uri = f"sqlite:///{database}"
    tracking = MlflowClient(tracking_uri=uri, registry_uri=uri)
    ids = [e.experiment_id for e in tracking.search_experiments(view_type=ViewType.ALL)]
    if not ids:
        return 0
    runs = tracking.search_runs(
        ids, "attributes.status = 'RUNNING'", run_view_type=ViewType.ALL, max_results=1000
    )
    return len(runs)


def runs_with_status(database: Path, status: str) -> int:
    """Runs in `status`, read with plain SQLite: an MLflow client would create or migrate a store
    that another process may be creating. 0 while there is no store, or no tables yet."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as store:
            query = "SELECT count(*) FROM runs WHERE status = ?"
            (count,) = store.execute(query, (status,)).fetchone()
    except sqlite3.Error:
        return 0
    return count


# Cases ------------------------------------------------------------------------------------


def once(box: Sandbox, arguments: list[str]) -> list[Finished]:
    return [box.glasses(arguments)]


@dataclass(frozen=True)
class Case:
    """`prepare` writes the inputs (and may change the sandbox's environment) and returns the
    arguments of `glasses run`; `drive` runs it (`once`, by default). The case went as expected
    when every judged run exits with `code` and, where `says` is given, the last run's refusal
    message (exit 1 or 2) or output (exit 0) contains it."""

    name: str
    code: int
    says: str
    prepare: Callable[[Sandbox], list[str]]
    drive: Callable[[Sandbox, list[str]], list[Finished]] = once


def tiny(box: Sandbox, *extra: str) -> list[str]:
    """The valid faces with the tiny profile and `extra` arguments."""
    return ["--profile", "tiny", *csv_set(box), *extra]


def spoilt(spoil: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Sandbox], list[str]]:
    return lambda box: ["--profile", "tiny", *csv_set(box, spoil)]


def first_row(column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def spoil(table: pd.DataFrame) -> pd.DataFrame:
        table[column] = table[column].astype(object)
        table.loc[0, column] = value
        return table

    return spoil


def only_label_0(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["label"] == 0]


def one_person(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(group="p0000")


def missing_file(table: pd.DataFrame) -> pd.DataFrame:
    gone = pd.DataFrame([{"path": "images/gone.png", "label": 1, "group": "p0000"}])
    return pd.concat([table, gone])


def prefect_down(box: Sandbox) -> list[str]:
    box.env["PREFECT_API_URL"] = f"http://127.0.0.1:{closed_port()}/api"
    return tiny(box)


def mlflow_down(box: Sandbox) -> list[str]:
    box.env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{closed_port()}"
    return tiny(box)


def no_such_path(box: Sandbox) -> list[str]:
    return ["--profile", "tiny", "--data", str(box.data / "faces.csv")]


def no_layout(box: Sandbox) -> list[str]:
    (box.data / "notes.txt").write_text("my photos are somewhere else\n")
    return ["--profile", "tiny", "--data", str(box.data)]


def empty_class_folders(box: Sandbox) -> list[str]:
    for name in ("glasses", "no_glasses"):
        (box.data / name).mkdir()
    return ["--profile", "tiny", "--data", str(box.data)]


def not_an_image(box: Sandbox) -> list[str]:
    arguments = tiny(box)
    first = pd.read_csv(box.data / "labels.csv")["path"][0]
    (box.data / first).write_text("this is a text file, renamed .png\n")
    return arguments


def dot_dot_path(box: Sandbox) -> list[str]:
    escape = os.path.relpath(outside_face(box), box.data)
    return ["--profile", "tiny", *csv_set(box, first_row("path", escape))]


def folder_with_link(box: Sandbox) -> list[str]:
    folder_set(box)
    (box.data / "glasses" / "linked.png").symlink_to(outside_face(box))
    return ["--profile", "tiny", "--data", str(box.data)]


def kaggle_with_link(box: Sandbox) -> list[str]:
    kaggle = kaggle_set(box)
    linked = box.data / "faces" / f"face-{kaggle['id'].iloc[0]}.png"
    linked.unlink()
    linked.symlink_to(outside_face(box))
    return ["--profile", "tiny", "--data", str(box.data)]


def cache_is_a_file(box: Sandbox) -> list[str]:
    box.cache.write_text("GLASSES_CACHE_DIR names this file, not a folder\n")
    return tiny(box, *settings(SMALL))


def damaged_cache(box: Sandbox, arguments: list[str]) -> list[Finished]:
    """A run fills the cache; every scattering entry is then cut to half, and a second run must
    recompute them."""
    first = box.glasses(arguments, "first")
    for entry in (box.cache / "scattering").glob("*.npy"):
        content = entry.read_bytes()
        entry.write_bytes(content[: len(content) // 2])
    return [first, box.glasses(arguments, "again")]


def killed_then_again(box: Sandbox, arguments: list[str]) -> list[Finished]:
    """`kill -9` of a run mid-training, then a run on the same store: it ends the orphan (KILLED),
    finishes, and leaves nothing RUNNING."""
    process = box.start(arguments + settings(LONG), "killed")
    deadline = time.monotonic() + COMMAND_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        if runs_with_status(box.database, "RUNNING"):
            break
        time.sleep(1)
    time.sleep(KILL_AFTER_SECONDS)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    killed = box.finish(process, "killed", judged=False)
    again = box.glasses(arguments + settings(SMALL), "again")
    if again.code == 0 and runs_with_status(box.database, "KILLED") == 0:
        # No run was killed mid-way: the case did not test what it says.
        again = dataclasses.replace(again, code=NOTHING_KILLED)
    return [killed, again]


def three_at_once(box: Sandbox, arguments: list[str]) -> list[Finished]:
    """Three first runs on a store and a Prefect home that do not exist yet."""
    processes = [box.start(arguments, f"run{i}") for i in range(3)]
    return [box.finish(process, f"run{i}") for i, process in enumerate(processes)]


def disk_full(box: Sandbox, arguments: list[str]) -> list[Finished]:
    """The cache on an 8 MB tmpfs: 128 px scattering coefficients of 60 images need about 18."""
    box.cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", box.cache], check=True)
    try:
        return [box.glasses(arguments + settings(SMALL | {"data.image_size": "128"}))]
    finally:
        subprocess.run(["umount", box.cache], check=False)


CASES = [
    # Refused before any server starts.
    Case("unknown-profile", 2, "invalid choice", lambda box: [*tiny(box), "--profile", "huge"]),
    Case(
        "unknown-key", 1, "cnn.optimizer", lambda box: tiny(box, "--set", "cnn.optimizer.steps=3")
    ),
    Case("wrong-type", 1, "seed", lambda box: tiny(box, "--set", "seed=abc")),
    Case("prefect-down", 1, "Prefect server", prefect_down),
    # Refused once the flow runs.
    Case("mlflow-down", 1, "MLflow tracking server", mlflow_down),
    Case("no-such-path", 1, "does not exist", no_such_path),
    Case("no-layout", 1, "none of the accepted layouts", no_layout),
    Case("empty-class-folders", 1, "no images found", empty_class_folders),
    Case("no-label-column", 1, "column(s) label", spoilt(lambda t: t.drop(columns="label"))),
    Case("header-only", 1, "lists no images", spoilt(lambda table: table.iloc[:0])),
    Case("label-word", 1, "unknown label", spoilt(first_row("label", "yes"))),
    Case("label-2", 1, "labels must be 0 or 1", spoilt(first_row("label", 2))),
    Case("missing-file", 1, "do not exist", spoilt(missing_file)),
    Case("not-an-image", 1, "do not decode as images", not_an_image),
    Case("one-class", 1, "class", spoilt(only_label_0)),
    Case("one-person", 1, "independent unit", spoilt(one_person)),
    Case("dot-dot-path", 1, "outside the data folder", dot_dot_path),
    Case("folder-symlink", 1, "symlink", folder_with_link),
    Case("kaggle-symlink", 1, "symlink", kaggle_with_link),
    Case("cache-is-a-file", 1, "is a file; set GLASSES_CACHE_DIR", cache_is_a_file),
    # Faults that a run must get through.
    Case(
        "damaged-cache", 0, "CacheWarning", lambda box: tiny(box, *settings(SMALL)), damaged_cache
    ),
    Case("kill-9-then-again", 0, "", tiny, killed_then_again),
    Case("three-at-once", 0, "", lambda box: tiny(box, *settings(SMALL)), three_at_once),
]
DISK_FULL = Case("disk-full", 1, "cache folder", tiny, disk_full)


# Probing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    name: str
    expected: int
    code: int
    traceback: bool
    running: int
    changed: list[str]
    seconds: float
    last_line: str
    as_expected: bool


def probe(case: Case, folder: Path) -> Outcome:
    """Run one case in `folder` (made here, must not exist yet) and judge it."""
    box = Sandbox.create(folder)
    started = time.monotonic()
    arguments = case.prepare(box)
    before = input_state(box.root / "inputs")
    runs = case.drive(box, arguments)
    seconds = time.monotonic() - started
    judged = [run for run in runs if run.judged]
    code = next((run.code for run in judged if run.code != case.code), case.code)
    last = runs[-1]
    said = case.says in (last.message if last.code else last.stdout + last.stderr)
    lines = last.stderr.rstrip().splitlines()
    return Outcome(
        name=case.name,
        expected=case.code,
        code=code,
        traceback=any(TRACEBACK in run.stdout + run.stderr for run in runs),
        running=running_runs(box.database),
        changed=changed_entries(before, input_state(box.root / "inputs")),
        seconds=seconds,
        last_line=lines[-1] if lines else "",
        as_expected=code == case.code and said,
    )


COLUMNS = (
    "case",
    "expect",
    "exit",
    "traceback",
    "RUNNING",
    "inputs changed",
    "s",
    "ok",
    "last line",
)
WIDTHS = (20, 6, 5, 9, 7, 14, 5, 3, 0)


def row(values: tuple) -> str:
    return "  ".join(str(v).ljust(w) if w else str(v) for v, w in zip(values, WIDTHS, strict=True))


def table_row(outcome: Outcome) -> str:
    yes = {True: "yes", False: "no"}
    return row(
        (
            outcome.name,
            f"exit {outcome.expected}",
            outcome.code,
            yes[outcome.traceback],
            outcome.running,
            yes[bool(outcome.changed)],
            f"{outcome.seconds:.0f}",
            yes[outcome.as_expected],
            outcome.last_line[:160],
        )
    )


def summary(outcomes: list[Outcome]) -> str:
    tracebacks = sum(outcome.traceback for outcome in outcomes)
    running = sum(outcome.running for outcome in outcomes)
    changed = sum(len(outcome.changed) for outcome in outcomes)
    return (
        f"{len(outcomes)} cases: {tracebacks} raw tracebacks, {running} stuck RUNNING runs, "
        f"{changed} input files changed"
    )


def passed(outcomes: list[Outcome]) -> bool:
    return all(
        o.as_expected and not o.traceback and not o.running and not o.changed for o in outcomes
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this case (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep each case's folder")
    parser.add_argument(
        "--with-disk-full", action="store_true", help="add the full-cache case (mounts a tmpfs)"
    )
    arguments = parser.parse_args()
    cases = CASES + ([DISK_FULL] if arguments.with_disk_full else [])
    known = {case.name for case in cases}
    unknown = set(arguments.only or ()) - known
    if unknown:
        parser.error(
            f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    chosen = [case for case in cases if not arguments.only or case.name in arguments.only]
    root = Path(tempfile.mkdtemp(prefix="glasses-fault-probe-"))
    print(row(COLUMNS), flush=True)
    outcomes = []
    try:
        for case in chosen:
            outcomes.append(probe(case, root / case.name))
            print(table_row(outcomes[-1]), flush=True)
    finally:
        if arguments.keep:
            print(f"case folders kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(summary(outcomes))
    for outcome in outcomes:
        if outcome.changed:
            print(f"{outcome.name}: changed {', '.join(outcome.changed)}")
    return 0 if passed(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
