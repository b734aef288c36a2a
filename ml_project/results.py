"""How a typed result becomes JSON data: shared by the modules that log results and the views.

A result is a frozen dataclass whose field names are its JSON keys. A field's metadata may say
`json=False` (left out), `json=EXACT` (already JSON-ready: written as is, NaN kept), `key=NAME`
(a JSON key that is not a Python name, e.g. `class`) or `omit_none=True` (left out when None).
"""

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXACT = "exact"


def plain(value: Any, *, keep_nan: bool = False) -> Any:
    """`value` as JSON-ready data: dataclasses as dicts of their JSON fields, tuples as lists,
    paths as text, numpy scalars as Python numbers, non-finite floats as None (kept with
    `keep_nan`, as json writes them: NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {}
        for f in dataclasses.fields(value):
            item, shown = getattr(value, f.name), f.metadata.get("json", True)
            if not shown or (f.metadata.get("omit_none") and item is None):
                continue
            data[f.metadata.get("key", f.name)] = (
                item if shown == EXACT else plain(item, keep_nan=keep_nan)
            )
        return data
    if isinstance(value, Mapping):
        return {str(key): plain(item, keep_nan=keep_nan) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item, keep_nan=keep_nan) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value) and not keep_nan:
        return None
    return value


def to_json(result: Any) -> str:
    """One JSON line of `result` (keys sorted, as every `--json` prints it)."""
    return json.dumps(plain(result), sort_keys=True)
