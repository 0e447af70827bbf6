"""Prefect flows: wiring of tasks, nothing else.

The Prefect layers are installed as the top-level packages `tasks`, `flows` and `deployments`
(why these names: docs/decisions/0012-pipeline-package-names.md). A module of the user's with one
of these names, earlier on `sys.path` (a `tasks.py` in the folder Python was started from), would
hide ours and fail deep inside a run; this says so in one line when `flows` is imported, before
any flow runs.
"""

from importlib.util import find_spec
from pathlib import Path

_HOME = Path(__file__).resolve().parent.parent
for _name in ("tasks", "deployments"):
    _spec = find_spec(_name)
    _found = Path(_spec.origin).resolve() if _spec and _spec.origin else None
    if _found is None or _found != _HOME / _name / "__init__.py":
        raise ImportError(
            f"glasses: the module {_name!r} at {_found} hides glasses' package {_name} "
            f"({_HOME / _name}); rename yours, or start Python from another folder"
        )
