"""How the result store writes a finished result: JSON for its structure, NumPy's `.npy` format
for its arrays, in one zip file. Never a pickle, so reading a cache entry cannot run code.

The JSON tree holds None, bool, int, float (NaN and infinities included), str and lists as
themselves; every other value is an object whose "$" names its kind: a dict (keys of any stored
kind), a tuple, an array, a NumPy scalar or a tensor (its values in a `.npy` member, read with
`allow_pickle=False`), a DataFrame (columns, dtypes, index) or a dataclass. Dataclasses are
rebuilt only from the classes registered with `@stored`, looked up by name, never imported: a
file that names another class, or anything else unknown, is `NotAResult`.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch

C = TypeVar("C", bound=type)
TREE = "tree.json"
_STORED: dict[str, type] = {}


class NotAResult(ValueError):
    """The bytes are not a result this code wrote; the message says what is wrong."""


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def stored(cls: C) -> C:
    """Registers a dataclass whose instances the result store may hold."""
    _STORED[_name(cls)] = cls
    return cls


def encode(value: Any) -> bytes:
    """`value` as a result file; `TypeError` names a value of a kind it cannot hold."""
    arrays: dict[str, np.ndarray] = {}
    tree = _Encoder(arrays).node(value)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # members dated 1980: equal values, equal bytes
        archive.writestr(zipfile.ZipInfo(TREE), json.dumps(tree))
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy"), "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def decode(data: bytes) -> Any:
    """The value `encode` wrote; `NotAResult` for anything else."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _Decoder(archive).node(json.loads(archive.read(TREE)))
    except NotAResult:
        raise
    except (
        zipfile.BadZipFile, ValueError, TypeError, KeyError, IndexError, OSError, RecursionError
    ) as error:  # fmt: skip
        raise NotAResult(f"not a result file ({type(error).__name__}: {error})") from None


class _Encoder:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def member(self, array: np.ndarray) -> str:
        if array.dtype.hasobject:
            raise TypeError("an array of Python objects cannot be stored; store a list")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        return name

    def node(self, value: Any) -> Any:
        if isinstance(value, np.generic):  # before float: np.float64 is one
            return {"$": "scalar", "array": self.member(np.asarray(value))}
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [self.node(item) for item in value]
        if isinstance(value, tuple):
            return {"$": "tuple", "items": [self.node(item) for item in value]}
        if isinstance(value, dict):
            return {"$": "dict", "items": [[self.node(k), self.node(v)] for k, v in value.items()]}
        if isinstance(value, np.ndarray):
            return {"$": "array", "array": self.member(value)}
        if isinstance(value, torch.Tensor):
            return {"$": "tensor", "array": self.member(value.detach().cpu().numpy())}
        if isinstance(value, pd.DataFrame):
            return {
                "$": "frame",
                "columns": self.index(value.columns),
                "index": self.index(value.index),
                "data": [self.values(value.iloc[:, i]) for i in range(value.shape[1])],
            }
        if is_dataclass(value) and _STORED.get(_name(type(value))) is type(value):
            return {
                "$": "dataclass",
                "class": _name(type(value)),
                "fields": {f.name: self.node(getattr(value, f.name)) for f in fields(value)},
            }
        raise TypeError(
            f"a {_name(type(value))} cannot be stored as a result; "
            "register a dataclass with glasses.result_format.stored"
        )

    def values(self, values: pd.Series | pd.Index) -> Any:
        """A column or index level: an array, or its items and dtype where NumPy has no
        plain dtype for them (strings, mixed objects, pandas' own dtypes)."""
        if isinstance(values.dtype, np.dtype) and not values.dtype.hasobject:
            return {"$": "array", "array": self.member(values.to_numpy())}
        items = [self.node(item) for item in values.tolist()]
        return {"$": "values", "dtype": str(values.dtype), "items": items}

    def index(self, index: pd.Index) -> Any:
        if isinstance(index, pd.RangeIndex):
            return {
                "$": "range",
                "range": [index.start, index.stop, index.step],
                "name": self.node(index.name),
            }
        return {
            "$": "index",
            "names": [self.node(name) for name in index.names],
            "levels": [self.values(index.get_level_values(i)) for i in range(index.nlevels)],
        }


class _Decoder:
    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive

    def array(self, node: dict) -> np.ndarray:
        with self.archive.open(f"{node['array']}.npy") as member:
            return np.lib.format.read_array(member, allow_pickle=False)

    def node(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return [self.node(item) for item in node] if isinstance(node, list) else node
        kind = node["$"]
        if kind == "scalar":
            return self.array(node)[()]
        if kind == "tuple":
            return tuple(self.node(item) for item in node["items"])
        if kind == "dict":
            return {self.node(k): self.node(v) for k, v in node["items"]}
        if kind == "array":
            return self.array(node)
        if kind == "tensor":
            return torch.from_numpy(self.array(node))
        if kind == "frame":
            columns = [self.values(column) for column in node["data"]]
            frame = pd.DataFrame(dict(enumerate(columns)), index=self.index(node["index"]))
            frame.columns = self.index(node["columns"])
            return frame
        if kind == "dataclass":
            cls = _STORED.get(node["class"])
            if cls is None:
                raise NotAResult(f"class {node['class']} is not registered as a stored result")
            return cls(**{name: self.node(value) for name, value in node["fields"].items()})
        raise NotAResult(f"unknown kind of value {kind!r}")

    def values(self, node: dict) -> Any:
        if node["$"] == "array":
            return self.array(node)
        return pd.array([self.node(item) for item in node["items"]], dtype=node["dtype"])

    def index(self, node: dict) -> pd.Index:
        if node["$"] == "range":
            return pd.RangeIndex(*node["range"], name=self.node(node["name"]))
        names = [self.node(name) for name in node["names"]]
        levels = [self.values(level) for level in node["levels"]]
        if len(levels) == 1:
            return pd.Index(levels[0], name=names[0])
        return pd.MultiIndex.from_arrays(levels, names=names)
