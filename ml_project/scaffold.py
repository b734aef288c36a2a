"""`ml-project init`: a new problem's files from its tables' profiles.

`plan_problem` is pure: profiles and the request in, every file's text out (or an error, before
anything is written). `run_init` is the edge: it reads the tables, plans, refuses to overwrite
(unless forced) and only then writes. What is written is the user's from then on: problem.py,
environments/{base,dev,staging,prod}.yaml and one expectation suite per table plus
model_input.yaml, each expectation with a comment saying what was observed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ml_project import data
from ml_project.errors import ConfigError, DataError
from ml_project.profile import MAX_CATEGORIES, ColumnProfile, TableProfile, profile_table
from ml_project.settings import PROBLEM_PATTERN, PROBLEMS_FOLDER

KINDS = ("binary", "multiclass", "regression")
PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
SAMPLE_TARGETS = {"dev": 20_000, "staging": 50_000}  # rows: a fast loop; well under a minute
FRACTIONS = (1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0001)
RANGE_MARGIN = 0.1  # numeric ranges: the observed one widened by this share of it on each side
NULL_MARGIN = 0.05  # columns with gaps: `mostly` is the observed filled share less this
TEXT_TYPES = ["str", "StringDtype"]
NUMBER_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64",
                "float32", "float64", "Float32", "Float64", "int", "float"]  # fmt: skip
BOOL_TYPES = ["bool", "boolean"]
TYPE_ANCHORS = {
    tuple(TEXT_TYPES): "text",
    tuple(NUMBER_TYPES): "numeric",
    tuple(BOOL_TYPES): "bool",
}
ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^(id|uuid|guid)([_\W]|$)", re.IGNORECASE)
MODEL_INPUT = "model_input"
# early_stopping: a boosting run past its best iteration fails the gate's health check
# (gate.max_loss_rise); stopping is seeded, so it reproduces bit for bit (estimators.py).
DEFAULT_PARAMS = {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31,
                  "min_samples_leaf": 20, "early_stopping": True}  # fmt: skip


@dataclass(frozen=True)
class InitRequest:
    """What `ml-project init` was asked: tables (name -> file, in order), label, key, task."""

    tables: dict[str, Path]
    label: str
    key_columns: tuple[str, ...]
    kind: str
    name: str | None = None


@dataclass(frozen=True)
class Features:
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is not read


@dataclass(frozen=True)
class ProjectDefaults:
    """What the project's environments/ set that the new problem's overlays depend on."""

    test_fraction: float = 0.2
    min_test_rows: Mapping[str, int] = field(
        default_factory=lambda: {"dev": 100, "staging": 100, "prod": 1000}
    )
    min_class_rows: int = 10
    monitor_min_rows: Mapping[str, int] = field(
        default_factory=lambda: {"dev": 500, "staging": 1000, "prod": 5000}
    )


@dataclass(frozen=True)
class Plan:
    """The problem to write: its name, its files (relative to the root -> text), its choices."""

    name: str
    files: dict[str, str]
    features: Features
    fractions: dict[str, float]
    previous_default: str | None = None  # the project's `problem:` before init changed it
    warnings: tuple[str, ...] = ()  # what training will refuse unless the user acts


# --- the request -------------------------------------------------------------------------


def parse_table(text: str) -> tuple[str, Path]:
    """`NAME=PATH` -> (name, absolute path)."""
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise ConfigError(f"--table expects NAME=PATH (e.g. orders=data/orders.csv), got {text!r}.")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) or name == MODEL_INPUT:
        raise ConfigError(
            f"--table {text!r}: a table name is letters, digits, '_', '.', '-' (and not "
            f"{MODEL_INPUT}, the model input's suite)."
        )
    return name, Path(path).expanduser().resolve()


def problem_name(request: InitRequest) -> str:
    """--name, checked, or the first table's name made a Python package name."""
    if request.name is not None:
        if not re.fullmatch(PROBLEM_PATTERN, request.name) or not request.name[0].isalpha():
            raise ConfigError(
                f"--name {request.name!r}: a problem's name is a folder of {PROBLEMS_FOLDER}/ "
                "and a Python package: a lower-case letter, then letters, digits and '_'."
            )
        return request.name
    name = re.sub(r"[^a-z0-9_]+", "_", next(iter(request.tables)).lower()).strip("_")
    return name if name[:1].isalpha() else f"problem_{name}".rstrip("_")


def check_request(
    request: InitRequest, frames: Mapping[str, pd.DataFrame], main: TableProfile
) -> None:
    """Refuse a label or key the first table does not hold, a label that cannot be learnt as
    the task says, and a key that does not name one row."""
    table = main.name
    columns = ", ".join(main.names)
    for option, wanted in (("--label", [request.label]), ("--key", request.key_columns)):
        missing = [column for column in wanted if column not in main.names]
        if missing:
            raise ConfigError(
                f"{option} {', '.join(missing)}: no such column in table {table} "
                f"({request.tables[table]}); its columns are {columns}."
            )
    if request.label in request.key_columns:
        raise ConfigError(f"--label {request.label} is also a --key column.")
    check_label(main.column(request.label), request.kind, table=table)
    frame = frames[table]
    for column in request.key_columns:
        if frame[column].isna().any():
            raise DataError(
                f"--key {column}: {int(frame[column].isna().sum())} rows of table {table} have "
                "no value there; a key names every row."
            )
    data.require_unique_keys(frame, request.key_columns, table=f"table {table} (--key)")


def check_label(label: ColumnProfile, kind: str, *, table: str) -> None:
    """The label's values fit the task: two classes for binary, a few for multiclass, numbers
    for regression; never a single value."""
    where = f"--label {label.name} (table {table})"
    if label.distinct == 0:
        raise DataError(f"{where}: the column is empty: there is nothing to learn.")
    if label.distinct == 1:
        value = label.categories[0][0] if label.categories else "?"
        raise DataError(
            f"{where}: every row holds the same value ({value!r}): a model needs at least two."
        )
    if kind == "regression":
        if label.kind != "numeric":
            raise ConfigError(
                f"{where}: --kind regression needs a numeric label; this one is {label.kind} "
                f"({label.dtype}). Use --kind binary or multiclass."
            )
        return
    if label.categories is None:
        raise ConfigError(
            f"{where}: {label.distinct} distinct values are too many classes for --kind {kind} "
            f"(at most {MAX_CATEGORIES}); a numeric label is --kind regression."
        )
    classes = ", ".join(f"{value!r}" for value, _ in label.categories[:10])
    if kind == "binary" and label.distinct != 2:
        raise ConfigError(
            f"{where}: --kind binary needs two classes; the label has {label.distinct} "
            f"({classes}). Use --kind multiclass."
        )
    if kind == "multiclass" and label.distinct == 2:
        raise ConfigError(f"{where}: the label has two classes ({classes}): use --kind binary.")


# --- choices -----------------------------------------------------------------------------


def choose_features(profile: TableProfile, *, key_columns: Sequence[str], label: str) -> Features:
    """Text with few values -> categorical, numbers -> numeric; never the key or the label;
    identifiers, free text, dates and constant or empty columns are left out (with why)."""
    categorical, numeric, dropped = [], [], {}
    for column in profile.columns:
        if column.name in key_columns or column.name == label:
            continue
        reason = _drop_reason(column)
        if reason:
            dropped[column.name] = reason
        elif column.kind == "text":
            categorical.append(column.name)
        else:
            numeric.append(column.name)
    if not categorical and not numeric:
        raise DataError(
            f"table {profile.name}: no column to learn from besides the key and the label "
            f"(left out: {'; '.join(f'{k}: {v}' for k, v in dropped.items()) or 'none'})."
        )
    return Features(tuple(categorical), tuple(numeric), dropped)


def _drop_reason(column: ColumnProfile) -> str | None:
    filled = column.rows - column.nulls
    if filled == 0:
        return "empty"
    if column.distinct == 1:
        return f"one value only ({column.categories[0][0]!r})" if column.categories else "constant"
    if column.kind in ("datetime", "other"):
        return f"{column.kind} ({column.dtype}): derive numbers from it in problem.py"
    if column.kind != "text" and ID_NAME.search(column.name) and column.unique:
        return "an identifier (unique per row)"
    if column.kind == "text":
        if column.categories is None:
            return f"free text or identifier ({column.distinct} distinct values)"
        if filled > 20 and column.distinct > filled / 2:
            return f"free text or identifier ({column.distinct} distinct in {filled} rows)"
    return None


def sample_fraction(rows: int, target: int) -> float:
    """The largest round fraction that keeps about `target` rows at most (1.0: all of them)."""
    for fraction in FRACTIONS:
        if rows * fraction <= target:
            return fraction
    return FRACTIONS[-1]


def sample_fractions(rows: int) -> dict[str, float]:
    return {**{env: sample_fraction(rows, n) for env, n in SAMPLE_TARGETS.items()}, "prod": 1.0}


def numeric_bounds(column: ColumnProfile) -> tuple[float, float]:
    """The observed range widened by RANGE_MARGIN of it on each side, rounded outwards; a
    column never below zero keeps zero as its floor."""
    low, high = column.minimum, column.maximum
    if low is None or high is None:
        raise ValueError(f"column {column.name} holds no value: it has no range")
    margin = RANGE_MARGIN * (high - low) or max(abs(high) * RANGE_MARGIN, 1.0)
    step = 10.0 ** math.floor(math.log10(margin))
    if column.integer:
        step = max(step, 1.0)
    lower = math.floor(round((low - margin) / step, 6)) * step
    upper = math.ceil(round((high + margin) / step, 6)) * step
    if low >= 0 > lower:
        lower = 0.0
    return _number(lower, column.integer), _number(upper, column.integer)


def _number(value: float, integer: bool) -> int | float:
    return int(round(value)) if integer else float(f"{value:.12g}")


def _nice(value: float, digits: int = 2) -> float:
    """`value` to `digits` significant digits."""
    return float(f"{value:.{digits}g}") if value else 0.0


# --- suites ------------------------------------------------------------------------------


def _item(kind: str, kwargs: dict[str, Any], comment: str | None = None) -> list[str]:
    """One expectation as YAML lines (indented under `expectations:`), its comment above.

    A type list is written as its anchor's name (`*text`); `_anchor_types` defines each anchor
    at its first use."""
    lines = [f"  # {line}" for line in _wrap(comment)] if comment else []
    parts = []
    for key, value in kwargs.items():
        anchor = TYPE_ANCHORS.get(tuple(value)) if key == "type_list" else None
        parts.append(f"{key}: *{anchor}" if anchor else f"{key}: {_flow(value)}")
    return [*lines, f"  - type: {kind}", f"    kwargs: {{{', '.join(parts)}}}"]


def _anchor_types(lines: list[str]) -> list[str]:
    """The first `*name` of each type list becomes `&name [types]`, defining the anchor."""
    seen, out = set(), []
    for line in lines:
        for types, anchor in TYPE_ANCHORS.items():
            if f"*{anchor}" in line and anchor not in seen:
                seen.add(anchor)
                line = line.replace(f"*{anchor}", f"&{anchor} {_flow(list(types))}", 1)
        out.append(line)
    return out


def _wrap(text: str, width: int = 94) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def _type_list(column: ColumnProfile) -> list[str]:
    return {"text": TEXT_TYPES, "boolean": BOOL_TYPES}.get(column.kind, NUMBER_TYPES)


def column_expectations(
    column: ColumnProfile, *, classes: bool = False, model_input: bool = False, key: bool = False
) -> list[str]:
    """Type, gaps, range and categories of one column, each saying what was observed (in the
    model input, every non-text column is a number; a boolean one is also checked as recorded,
    True/False, on the rows training uses). A key
    column gets no range: new rows bring new ids."""
    types = NUMBER_TYPES if model_input and column.kind != "text" else _type_list(column)
    if model_input and column.kind == "boolean":  # as recorded (training) or as a number
        types = [*BOOL_TYPES, *NUMBER_TYPES]
    lines = _item(
        "expect_column_values_to_be_in_type_list",
        {"column": column.name, "type_list": types},
        f"{column.name}: {column.kind} ({column.dtype}), {column.distinct} distinct values",
    )
    filled = 1 - column.null_share
    if column.nulls == 0:
        lines += _item(
            "expect_column_values_to_not_be_null",
            {"column": column.name},
            f"observed: no empty value in {column.rows} rows",
        )
    else:
        mostly = math.floor((filled - NULL_MARGIN) * 100) / 100
        observed = f"observed: {column.nulls} of {column.rows} rows empty ({column.null_share:.1%})"
        if mostly > 0:
            lines += _item(
                "expect_column_values_to_not_be_null",
                {"column": column.name, "mostly": mostly},
                f"{observed}; at least {mostly:.0%} filled is required",
            )
        else:
            lines.append(f"  # {observed}: no check on gaps")
    if column.kind == "numeric" and not key:
        if column.minimum is None or column.maximum is None:
            lines.append(f"  # observed: no value in {column.rows} rows: no check on the range")
        else:
            low, high = numeric_bounds(column)
            lines += _item(
                "expect_column_values_to_be_between",
                {"column": column.name, "min_value": low, "max_value": high},
                f"observed {_show(column.minimum)} to {_show(column.maximum)}; the range is "
                f"widened by {RANGE_MARGIN:.0%} of it on each side"
                + (" (never below 0)" if column.minimum >= 0 else ""),
            )
    if column.categories and (column.kind == "text" or classes):
        counts = ", ".join(f"{value} ({count})" for value, count in column.categories)
        lines += _item(
            "expect_column_values_to_be_in_set",
            {"column": column.name, "value_set": [value for value, _ in column.categories]},
            f"observed {len(column.categories)} values (rows): {counts}",
        )
    return lines


def _show(value: float) -> str:
    return f"{value:.6g}"


def table_suite(
    profile: TableProfile,
    *,
    path: str,
    key_columns: Sequence[str] = (),
    label: str | None,
    min_rows: str,
) -> str:
    """The suite of one raw table: its columns, rows, key and every column as observed."""
    lines = [
        f"# The raw table {profile.name} ({path}), checked before anything is sampled or",
        f"# trained. Written by `ml-project init` from the file as it was: {profile.rows} rows,",
        f"# {len(profile.columns)} columns. Yours to review: tighten what must never change, "
        "loosen what may.",
        "# Format: great-expectations 1.x types and kwargs; $name = validation.parameters.",
        f"table: {profile.name}",
        "expectations:",
    ]
    lines += _item(
        "expect_table_columns_to_match_set",
        {"column_set": profile.names, "exact_match": False},
        f"observed these {len(profile.columns)} columns; more may be added",
    )
    lines += _item(
        "expect_table_row_count_to_be_between",
        {"min_value": f"${min_rows}"},
        f"observed {profile.rows} rows; validation.parameters.{min_rows} sets the fewest",
    )
    if len(key_columns) == 1:
        lines += _item(
            "expect_column_values_to_be_unique",
            {"column": key_columns[0]},
            f"the key: observed one row per {key_columns[0]} ({profile.rows} rows)",
        )
    elif key_columns:
        lines += _item(
            "expect_compound_columns_to_be_unique",
            {"column_list": list(key_columns)},
            f"the key: observed one row per ({', '.join(key_columns)}) ({profile.rows} rows)",
        )
    for column in profile.columns:
        lines.append("")
        lines += column_expectations(
            column, classes=column.name == label, key=column.name in key_columns
        )
    return "\n".join(_anchor_types(lines)) + "\n"


def model_input_suite(profile: TableProfile, features: Features) -> str:
    """The suite of the model's input: the raw columns its signature names, as observed."""
    lines = [
        "# The model's input: the raw columns its signature names, in order ($model_columns,",
        "# from features: in the settings). Training checks the rows it fits on; predict checks",
        f"# each batch. Written by `ml-project init` from table {profile.name} "
        f"({profile.rows} rows): a new",
        "# category or a value far out of range stops a batch; widen them here when expected.",
        f"table: {MODEL_INPUT}",
        "expectations:",
    ]
    lines += _item("expect_table_columns_to_match_ordered_list", {"column_list": "$model_columns"})
    lines += _item("expect_table_row_count_to_be_between", {"min_value": 1})
    for name in (*features.categorical, *features.numeric):
        lines.append("")
        lines += column_expectations(profile.column(name), model_input=True)
    return "\n".join(_anchor_types(lines)) + "\n"


# --- settings ----------------------------------------------------------------------------


def _flow(value: object) -> str:
    """`value` as one line of flow-style YAML (quoted where YAML would misread it)."""
    text: str = yaml.safe_dump([value], default_flow_style=True, width=10_000)
    return text.strip()[1:-1]


def table_spec(path: Path, root: Path) -> str:
    """A table's setting: relative to the project root when inside it, else absolute."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def min_rows_parameter(table: str, several: bool) -> str:
    return "min_rows_" + re.sub(r"\W", "_", table) if several else "min_rows"


def base_settings(
    request: InitRequest, *, name: str, main: TableProfile, features: Features,
    specs: dict[str, str], profiles: Mapping[str, TableProfile],
) -> str:  # fmt: skip
    """environments/base.yaml of the new problem."""
    kind, label = request.kind, main.column(request.label)
    several = len(request.tables) > 1
    lines = [
        f"# Written by `ml-project init` from {', '.join(request.tables)}: yours to edit.",
        f"name: {name}          # experiments and registered models: {name}_<env>",
        f"task: {kind}",
        "",
        "data:",
        "  tables:                # relative to the project root, absolute, or package:...",
        *[f"    {table}: {_flow(spec)}" for table, spec in specs.items()],
        f"  key_columns: {_flow(list(request.key_columns))}",
        f"  label: {_flow(request.label)}"
        + (f"          # {label.distinct} classes" if kind != "regression" else ""),
        "  sample_fraction: 1.0   # every labelled row; the env overlays sample the larger ones",
        "",
        f"# features: from table {main.name}; text with at most {MAX_CATEGORIES} values is "
        "categorical,",
        "# numbers are numeric. The model's signature, in this order: edit freely.",
        "features:",
        f"  categorical: {_flow(list(features.categorical))}",
        f"  numeric: {_flow(list(features.numeric))}",
    ]
    if features.dropped:
        lines.append("  # left out:")
        lines += [f"  #   {column}: {why}" for column, why in features.dropped.items()]
    if several:
        lines.append("  # columns of the other tables can be added once records() joins them")
    lines += [
        "",
        "params:                  # the default model's gradient-boosting hyper-parameters",
    ]
    lines += [f"  {key}: {value}" for key, value in DEFAULT_PARAMS.items()]
    lines += [
        "",
        "validation:",
        "  parameters:            # the suites in expectations/ read $name",
    ]
    for table, profile in profiles.items():
        lines.append(
            f"    {min_rows_parameter(table, several)}: {max(1, profile.rows // 2)}"
            f"          # fewest rows in {table} (observed {profile.rows}; half of it)"
        )
    primary = PRIMARY[kind]
    if kind == "regression":
        drop, why = 0.1, f"a fraction: 10% of the recorded {primary}, a metric with units"
    else:
        drop, why = 0.05, f"a loss of 0.05 of {primary}"
    lines += [
        "",
        "monitor:",
        f"  max_quality_drop: {drop}   # with --labels: drift when live {primary} is worse",
        f"                           # than the recorded one by more ({why})",
        "",
        "gate:                    # always checked too: beat a model that ignores the features",
        "  floors: {}             # e.g. {" + _example_floor(kind) + "} once you know the data",
        "  ceilings: {}",
        f"  primary_metric: {primary}",
    ]
    return "\n".join(lines) + "\n"


def _example_floor(kind: str) -> str:
    return {"binary": "roc_auc: 0.7", "multiclass": "accuracy: 0.6", "regression": "r2: 0.5"}[kind]


def env_overlay(env: str, *, rows: int, fraction: float, defaults: ProjectDefaults) -> str:
    """environments/<env>.yaml: the sample fraction, fewer trees in dev, a gate that can decide
    on the held-out rows this table has, and a monitor that accepts batches its size allows."""
    used = max(1, round(rows * fraction))
    header = {
        "dev": "dev: the fast loop",
        "staging": "staging: CI retrains here; sized to train well under a minute",
        "prod": "prod: every labelled row",
    }[env]
    what = "every row" if fraction == 1.0 else f"a seeded {fraction:g} of them"
    lines = [
        f"# {header}.",
        f"# Observed {rows} labelled rows: {what} (about {used}).",
        "data:",
        f"  sample_fraction: {fraction}",
    ]
    if env == "dev" and fraction < 1.0:
        lines += ["", "params:                  # fewer boosting rounds for the fast loop",
                  "  max_iter: 100"]  # fmt: skip
    test_rows = used * defaults.test_fraction
    project_min = defaults.min_test_rows.get(env, 100)
    if test_rows < 1.5 * project_min:
        lines += _lowered(
            "gate", "min_test_rows", max(1, int(test_rows / 2)), project_min,
            f"about {int(test_rows)} held-out rows",
        )  # fmt: skip
    monitor_min = defaults.monitor_min_rows.get(env, 1000)
    if rows < 2 * monitor_min:
        lines += _lowered(
            "monitor", "min_rows", max(1, rows // 4), monitor_min,
            f"{rows} rows (smaller batches give noisier drift figures)",
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def _lowered(section: str, key: str, value: int, asked: int, holds: str) -> list[str]:
    """A section lowering one of the project's minimums to what this table can meet."""
    return [
        "",
        f"{section}:",
        f"  {key}: {value}   # the project asks {asked}; this table holds {holds}",
    ]


def problem_module(request: InitRequest, *, name: str) -> str:
    """problems/<name>/problem.py: a docstring for one table; a records() to write for several."""
    tables = list(request.tables)
    if len(tables) == 1:
        return (
            f'"""{name}: {request.kind} on `{request.label}`, from the table {tables[0]} '
            "(written by\n`ml-project init`; yours).\n\n"
            "One table and the platform's default model (ordinal codes and gradient boosting "
            "over the\ncolumns of `features:` in environments/base.yaml): no code is needed. "
            "Define, when needed\n(ml_project/problem.py says how; problems/flights/problem.py "
            "shows each):\n\n"
            "    records(tables, params) -> DataFrame   reshape the table: one row per "
            "prediction\n"
            f"    label(records, params) -> Series       derive the label (default: column "
            f"{request.label})\n"
            "    build_model(*, features, task, params, seed) -> an unfitted sklearn "
            "estimator\n"
            "    class Params(pydantic.BaseModel)       check the settings' params:\n"
            '"""\n'
        )
    keys = ", ".join(request.key_columns)
    return f'''"""{name}: {request.kind} on `{request.label}`, from the tables {", ".join(tables)}
(written by `ml-project init`; yours).

records() joins the tables into one row per prediction: the key ({keys}), the model's
input columns (features: in environments/base.yaml) and the label. It is yours to write:
problems/flights/problem.py is the example (it joins the hourly weather to each flight).
"""

from __future__ import annotations

import pandas as pd


def records(tables: dict[str, pd.DataFrame], params) -> pd.DataFrame:
    """One row per {keys}: {tables[0]} with what the other tables add."""
    raise NotImplementedError(
        "records() is yours to write in problems/{name}/problem.py: join the tables "
        "{", ".join(tables)} into one frame with one row per ({keys}), as "
        "problems/flights/problem.py joins weather to flights"
    )
'''


# --- the plan and the edge ---------------------------------------------------------------


def plan_problem(
    request: InitRequest,
    frames: Mapping[str, pd.DataFrame],
    *,
    root: Path,
    defaults: ProjectDefaults | None = None,
) -> Plan:
    """Every file of the new problem (path relative to `root` -> text), or an error."""
    if request.kind not in KINDS:
        raise ConfigError(f"--kind {request.kind!r}: choose one of {', '.join(KINDS)}.")
    defaults = defaults or ProjectDefaults()
    name = problem_name(request)
    profiles = {table: profile_table(frame, table) for table, frame in frames.items()}
    main = profiles[next(iter(request.tables))]
    check_request(request, frames, main)
    features = choose_features(main, key_columns=request.key_columns, label=request.label)
    labelled = main.rows - main.column(request.label).nulls
    fractions = sample_fractions(labelled)
    specs = {table: table_spec(path, root) for table, path in request.tables.items()}
    several = len(frames) > 1
    folder = f"{PROBLEMS_FOLDER}/{name}"
    files = {
        f"{folder}/__init__.py": "",
        f"{folder}/problem.py": problem_module(request, name=name),
        f"{folder}/environments/base.yaml": base_settings(
            request, name=name, main=main, features=features, specs=specs, profiles=profiles
        ),
    }
    for env, fraction in fractions.items():
        files[f"{folder}/environments/{env}.yaml"] = env_overlay(
            env, rows=labelled, fraction=fraction, defaults=defaults
        )
    for table, profile in profiles.items():
        files[f"{folder}/expectations/{table}.yaml"] = table_suite(
            profile,
            path=specs[table],
            key_columns=request.key_columns if profile is main else (),
            label=request.label if profile is main else None,
            min_rows=min_rows_parameter(table, several),
        )
    files[f"{folder}/expectations/{MODEL_INPUT}.yaml"] = model_input_suite(main, features)
    warnings = rare_class_warnings(
        main.column(request.label), request.kind, fractions, defaults.min_class_rows, folder
    )
    return Plan(name=name, files=files, features=features, fractions=fractions, warnings=warnings)


def rare_class_warnings(
    label: ColumnProfile, kind: str, fractions: Mapping[str, float], min_rows: int, folder: str
) -> tuple[str, ...]:
    """Classes training will refuse: fewer than split.min_class_rows rows in an env's sample
    (about the class's rows times the env's fraction)."""
    if kind == "regression" or not label.categories:
        return ()
    warnings = []
    for value, count in label.categories:
        envs = [env for env, fraction in fractions.items() if count * fraction < min_rows]
        if envs:
            where = "every env" if len(envs) == len(fractions) else ", ".join(envs)
            warnings.append(
                f"class {value!r} of --label {label.name} has {count} rows, about "
                f"{min(count * fractions[env] for env in envs):.0f} in the smallest sample: "
                f"fewer than split.min_class_rows={min_rows}, so training in {where} will "
                "refuse it. Merge or drop the class, raise that env's data.sample_fraction in "
                f"{folder}/environments/, or lower split.min_class_rows."
            )
    return tuple(warnings)


def project_defaults(root: Path) -> ProjectDefaults:
    """The project's test fraction, split.min_class_rows, and each env's gate.min_test_rows and
    monitor.min_rows (environments/)."""
    from ml_project.settings import ENVS, deep_merge, read_yaml

    folder = Path(root) / "environments"
    base = read_yaml(folder / "base.yaml")
    merged = {env: deep_merge(base, _optional_yaml(folder / f"{env}.yaml")) for env in ENVS}
    fallback = ProjectDefaults()
    return ProjectDefaults(
        test_fraction=float(base.get("split", {}).get("test_fraction", fallback.test_fraction)),
        min_class_rows=int(base.get("split", {}).get("min_class_rows", fallback.min_class_rows)),
        min_test_rows={
            env: int(merged[env].get("gate", {}).get("min_test_rows", 100)) for env in ENVS
        },
        monitor_min_rows={
            env: int(merged[env].get("monitor", {}).get("min_rows", 1000)) for env in ENVS
        },
    )


def _optional_yaml(path: Path) -> dict[str, Any]:
    from ml_project.settings import read_yaml

    return read_yaml(path) if path.is_file() else {}


PROJECT_SETTINGS = "environments/base.yaml"
_DEFAULT_PROBLEM = re.compile(r"^problem:[ \t]*([^\s#]*)", re.MULTILINE)


def with_default_problem(text: str, name: str) -> tuple[str, str | None]:
    """The project's base.yaml with `problem: name` (its comment kept), and the previous value."""
    found = _DEFAULT_PROBLEM.search(text)
    if found is None:
        return f"problem: {name}\n{text}", None
    return text[: found.start()] + f"problem: {name}" + text[found.end() :], found.group(1)


def run_init(request: InitRequest, *, root: Path, force: bool = False) -> Plan:
    """Read the tables, plan the problem, write it and make it the project's default problem
    (`problem:` in environments/base.yaml); nothing is written on any error."""
    frames = {table: data.read_table(path) for table, path in request.tables.items()}
    plan = plan_problem(request, frames, root=root, defaults=project_defaults(root))
    existing = [path for path in plan.files if (Path(root) / path).exists()]
    if existing and not force:
        raise ConfigError(
            f"problem {plan.name} would overwrite {len(existing)} file(s): "
            f"{', '.join(existing)}. Choose another --name, or pass --force to overwrite them."
        )
    settings_path = Path(root) / PROJECT_SETTINGS
    settings_text, previous = with_default_problem(
        settings_path.read_text(encoding="utf-8"), plan.name
    )
    for relative, text in plan.files.items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    settings_path.write_text(settings_text, encoding="utf-8")
    return replace(plan, previous_default=previous)


def next_steps(plan: Plan, request: InitRequest) -> str:
    """What `init` prints: what it wrote and chose, then what to do next."""
    folder = f"{PROBLEMS_FOLDER}/{plan.name}"
    features = plan.features
    lines = [
        f"Wrote {len(plan.files)} files under {folder}/: problem.py, environments/"
        "{base,dev,staging,prod}.yaml, expectations/"
        f"{{{','.join([*request.tables, MODEL_INPUT])}}}.yaml",
        f"Features: categorical {list(features.categorical)}, numeric {list(features.numeric)}",
    ]
    if features.dropped:
        lines.append(
            "Left out: "
            + "; ".join(f"{column} ({why})" for column, why in features.dropped.items())
        )
    lines.append(
        "Sample fractions: "
        + ", ".join(f"{env} {value:g}" for env, value in plan.fractions.items())
    )
    lines += [f"Warning: {warning}" for warning in plan.warnings]
    if plan.previous_default != plan.name:
        was = f", was {plan.previous_default}" if plan.previous_default else ""
        lines.append(
            f"Default problem: {plan.name} (`problem:` in {PROJECT_SETTINGS}{was}); "
            "--problem NAME, or PROBLEM=NAME for make, chooses another."
        )
    lines += ["", "Next steps:"]
    step = 1
    if len(request.tables) > 1:
        lines.append(f"  {step}. Write records() in {folder}/problem.py (it joins the tables).")
        step += 1
    lines += [
        f"  {step}. Review {folder}/ (each expectation says what was observed).",
        f"  {step + 1}. git add {folder} {PROJECT_SETTINGS} (and the data files) && git commit",
        f"  {step + 2}. ml-project train --env dev      (or: make train; committed first, the "
        "run records a commit that holds the problem, so `reproduce` can rebuild it)",
        f"  {step + 3}. make train ENV=staging",
    ]
    return "\n".join(lines)
