"""Views: every command's typed result rendered to text, Markdown or JSON, and nothing else.

A result is a frozen dataclass whose field names are its JSON keys; `plain` turns one (and the
dataclasses, paths and numpy numbers inside it) into JSON-ready values, so no result writes its
own `as_dict`. A field that must not be in the JSON is declared with `metadata={"json": False}`.
"""

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="End with one JSON object of the results."
)


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses as dicts of their JSON fields, tuples as lists,
    paths as text, numpy scalars as Python numbers, non-finite floats as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(result: Any) -> str:
    """One JSON line of `result` (keys sorted, as every `--json` prints it)."""
    return json.dumps(plain(result), sort_keys=True)


def echo(result: Any, text: Callable[[Any], str] | None, *, as_json: bool) -> None:
    """A command's ending: its text for a person (when it has one), then its JSON line."""
    if text is not None:
        click.echo(text(result))
    if as_json:
        click.echo(to_json(result))


# --- training, the gate, promotion, show -------------------------------------------------------


# --- reproduce ---------------------------------------------------------------------------------


# --- batch scoring, serving, monitoring --------------------------------------------------------


# --- init, data validation ---------------------------------------------------------------------
