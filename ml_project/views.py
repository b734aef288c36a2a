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
from typing import TYPE_CHECKING, Any

import click

from ml_project.settings import PROBLEMS_FOLDER, PROJECT_SETTINGS

if TYPE_CHECKING:
    from ml_project.scaffold import InitRequest, Plan
    from ml_project.validation import DataValidation

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


def next_steps(plan: "Plan", request: "InitRequest") -> str:
    """What `init` prints: what it wrote and chose, then what to do next."""
    folder, features = f"{PROBLEMS_FOLDER}/{plan.name}", plan.features
    suites = [Path(path).stem for path in plan.files if "/expectations/" in path]
    lines = [
        f"Wrote {len(plan.files)} files under {folder}/: problem.py, environments/"
        f"{{base,dev,staging,prod}}.yaml, expectations/{{{','.join(suites)}}}.yaml",
        f"Features: categorical {list(features.categorical)}, numeric {list(features.numeric)}"
        f", datetime {list(features.datetime)}",
    ]
    listed = {
        "Joined in records()": {join.table: f"on {', '.join(join.on)}" for join in plan.joins},
        "Read from the key": {column: f"({why})" for column, why in features.offered.items()},
        "Left out": {column: f"({why})" for column, why in features.dropped.items()},
    }
    for head, items in listed.items():
        if items:
            lines.append(f"{head}: " + "; ".join(f"{item} {why}" for item, why in items.items()))
    if plan.time_column:
        lines.append(
            f"Held out: the newest rows by {plan.time_column} (split.time_column), not a hash "
            "of the key: the model is judged on a period it did not see"
        )
    if plan.ignored:
        lines.append(
            f"Not drift: {', '.join(plan.ignored)} (monitor.ignore): years, each new period "
            "brings a new one"
        )
    fractions = ", ".join(f"{env} {value:g}" for env, value in plan.fractions.items())
    lines += [f"Sample fractions: {fractions}", *(f"Warning: {w}" for w in plan.warnings)]
    if plan.previous_default != plan.name:
        was = f", was {plan.previous_default}" if plan.previous_default else ""
        lines.append(
            f"Default problem: {plan.name} (`problem:` in {PROJECT_SETTINGS}{was}); "
            "--problem NAME, or PROBLEM=NAME for make, chooses another."
        )
    steps = [f"Write records() in {folder}/problem.py (it joins the tables)."]
    if len(request.tables) == 1 or plan.joins:
        steps = []
    steps += [
        f"Review {folder}/ (each expectation says what was observed).",
        f"git add {folder} {PROJECT_SETTINGS} (and the data files) && git commit",
        "ml-project train --env dev      (or: make train; committed first, the run records a "
        "commit that holds the problem, so `reproduce` can rebuild it)",
        "make train ENV=staging",
    ]
    lines += ["", "Next steps:", *(f"  {n}. {step}" for n, step in enumerate(steps, 1))]
    return "\n".join(lines)


def data_validated(result: "DataValidation") -> str:
    """What `validate-data` prints: every suite passed (ValidationReport.describe)."""
    lines = [f"Data validation passed in env {result.env}."]
    lines += [
        f"  {t.table}: {t.evaluated} expectations passed on {t.rows} rows ({t.source})"
        for t in result.tables
    ]
    return "\n".join(lines)
