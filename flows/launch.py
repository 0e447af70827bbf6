"""`python -m flows.launch COMMAND [ARGUMENTS …]`: a console command of the environment (`prefect`,
`dask`) run in a process set up like every glasses entry point.

What the container stack's Prefect worker, Prefect server and Dask scheduler and workers run
(docker/compose.yaml): the process defaults and allocator settings of `glasses.entrypoint`, which
the flow runs a worker starts inherit; for `dask`, the project's Dask settings
(`flows.concurrency.dask_settings`) too.

    python -m flows.launch prefect worker start --pool glasses --type process
    python -m flows.launch dask worker tcp://dask-scheduler:8786 --nthreads 1
"""

from __future__ import annotations

from glasses.entrypoint import prepare_process

prepare_process()  # before torch, Prefect or Dask load

import sys  # noqa: E402
from importlib.metadata import entry_points  # noqa: E402

USAGE = "usage: python -m flows.launch COMMAND [ARGUMENTS …], e.g. `dask worker ADDRESS`"


def main(argv: list[str] | None = None) -> None:
    """Run the console script `argv[0]` in this process with the rest as its arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(USAGE)
    scripts = entry_points(group="console_scripts", name=argv[0])
    if not scripts:
        raise SystemExit(f"flows.launch: no console command {argv[0]!r} here; {USAGE}")
    if argv[0] == "dask":
        import dask

        from flows.concurrency import dask_settings

        dask.config.set(dask_settings())
    sys.argv = argv
    (script,) = scripts
    sys.exit(script.load()())


if __name__ == "__main__":
    main()
