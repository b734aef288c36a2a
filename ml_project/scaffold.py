"""`ml-project init`: a new problem's files from its tables' profiles.

`plan_problem` is pure: profiles and the request in, every file's text out (or an error, before
anything is written). `run_init` is the edge: it reads the tables, plans, refuses to overwrite
(unless forced) and only then writes. What is written is the user's from then on: problem.py,
environments/{base,dev,staging,prod}.yaml and one expectation suite per table plus
model_input.yaml, each expectation with a comment saying what was observed and whether it is
HARD (the key, physics, the calendar, the type: a break is bad data) or OBSERVED (this file's
values with headroom: widen it when the world moves). The contracts are written for next
month's data: ranges with headroom, no upper bound on a year or a time, value sets only where
the model reads the column (with `mostly` in the raw tables, exact in the model input).
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
from ml_project.profile import (
    ISO_8601,
    MAX_CATEGORIES,
    ZONED,
    ColumnProfile,
    TableProfile,
    category_limit,
    profile_table,
)
from ml_project.settings import PROBLEM_PATTERN, PROBLEMS_FOLDER

KINDS = ("binary", "multiclass", "regression")
PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
SAMPLE_TARGETS = {"dev": 20_000, "staging": 50_000}  # rows: a fast loop; well under a minute
FRACTIONS = (1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0001)
# Numeric ranges: the observed one widened by this share of it on each side (the range doubled):
# next month's extremes rarely pass it, a unit error (x100) or a sign error still does.
HEADROOM = 0.5
NULL_MARGIN = 0.05  # columns with gaps: `mostly` is the observed filled share less this
# A category the model reads, in its raw table: new values in up to this share of the rows are
# legitimate (a new team among 30 is 3%); the model input's set stays exact (serving refuses).
CATEGORY_MOSTLY = 0.95
SUBSET = 0.5  # a small table's staging sample: a seeded half, so prod's training is no repeat
SUBSET_MARGIN = 1.5  # ... when half still holds 1.5x the held-out and class rows asked
MIN_MATCHED = 0.5  # a join fewer records find a row of is reported (a guess gone wrong?)
MATCHED = "__matched__"
TEXT_TYPES = ["str", "StringDtype"]
NUMBER_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64",
                "float32", "float64", "Float32", "Float64", "int", "float"]  # fmt: skip
BOOL_TYPES = ["bool", "boolean"]
# great-expectations 1.24 reports a native datetime column's type as the dtype's scalar type:
# Timestamp (tz-aware, any unit and zone) or datetime64 (naive); `..._to_be_of_type` matches
# that name (`..._in_type_list` cannot match a tz-aware dtype at all).
NATIVE_TIME_TYPES = {True: "Timestamp", False: "datetime64"}  # has a zone -> type_
TYPE_ANCHORS = {
    tuple(TEXT_TYPES): "text",
    tuple(NUMBER_TYPES): "numeric",
    tuple(BOOL_TYPES): "bool",
}
ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^(id|uuid|guid)([_\W]|$)", re.IGNORECASE)
ROW_NAME = re.compile(
    r"^(unnamed: ?\d+|index|idx|level_0|row|rownum|row_?(num|number|no|nr|id|index))$", re.I
)
# Words of a column's name that say it counts or measures an amount: never negative by nature.
AMOUNT_WORDS = frozenset(
    "count cnt num number n qty quantity total sum amount price cost fee salary wage income "
    "revenue sales spend paid pay balance size length weight height width depth area volume "
    "distance duration age minute hour second day page item view visit click population".split()
)
MODEL_INPUT = "model_input"
DEFAULT_PARAMS = {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31,
                  "min_samples_leaf": 20}  # fmt: skip


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
    datetime: tuple[str, ...] = ()
    offered: dict[str, str] = field(default_factory=dict)  # key column read -> why

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric, *self.datetime]


@dataclass(frozen=True)
class Join:
    """A further table joined to the records on the columns it shares with them."""

    table: str
    on: tuple[str, ...]
    rows: int


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
    joins: tuple[Join, ...] = ()  # how records() joins the further tables (none: to write)
    time_column: str | None = None  # split.time_column: the newest rows are held out
    ignored: tuple[str, ...] = ()  # monitor.ignore: year-like features


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
    if label.categories is None or label.distinct > MAX_CATEGORIES:
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


def choose_features(
    profile: TableProfile,
    *,
    key_columns: Sequence[str],
    label: str,
    own: Mapping[str, ColumnProfile] | None = None,
) -> Features:
    """Text with few values -> categorical, numbers -> numeric, timestamps -> datetime; never
    the label or a key of one column, a compound key's components when they carry information
    (not unique alone, few values); identifiers, row numbers, free text and constant or empty
    columns are left out (with why). `own`: each column as profiled in its own table (a
    dimension table's row number is not one once joined)."""
    categorical: list[str] = []
    numeric: list[str] = []
    times: list[str] = []
    dropped: dict[str, str] = {}
    offered: dict[str, str] = {}
    for column in profile.columns:
        if column.name == label:
            continue
        if column.name in key_columns:
            why = _key_component(column) if len(key_columns) > 1 else None
            if why is None:
                continue
            offered[column.name] = why
        else:
            reason = _drop_reason(column, (own or {}).get(column.name, column), profile.rows)
            if reason:
                dropped[column.name] = reason
                continue
        kinds = {"text": categorical, "datetime": times}
        kinds.get(column.kind, numeric).append(column.name)
    if not categorical and not numeric and not times:
        raise DataError(
            f"table {profile.name}: no column to learn from besides the key and the label "
            f"(left out: {'; '.join(f'{k}: {v}' for k, v in dropped.items()) or 'none'})."
        )
    return Features(tuple(categorical), tuple(numeric), dropped, tuple(times), offered)


def _key_component(column: ColumnProfile) -> str | None:
    """Why a component of a compound key is read, or None (unique alone, or too many values)."""
    if column.unique or column.distinct < 2:
        return None
    if column.kind == "datetime":
        return f"{column.distinct} times: the model reads numbers derived from them"
    if column.kind in ("text", "numeric", "boolean") and column.categories is not None:
        return f"{column.distinct} values, not unique alone: it may carry information"
    return None


def _drop_reason(column: ColumnProfile, own: ColumnProfile, rows: int) -> str | None:
    filled = column.rows - column.nulls
    if filled == 0:
        return "empty"
    if column.distinct == 1:
        return f"one value only ({column.categories[0][0]!r})" if column.categories else "constant"
    if column.kind == "other":
        return f"{column.kind} ({column.dtype}): derive numbers from it in problem.py"
    numbered = own.kind == "numeric" and own.integer and own.unique
    if own.row_number_like or (numbered and ROW_NAME.match(column.name)):
        return "a row number (whole numbers, one per row, consecutive)"
    if column.kind in ("numeric", "boolean") and ID_NAME.search(column.name) and own.unique:
        return "an identifier (unique per row)"
    if column.kind == "text":
        if column.categories is None:
            return (
                f"free text or identifier ({column.distinct} distinct values; a category has "
                f"at most {category_limit(rows)} in {rows} rows)"
            )
        if filled > 20 and column.distinct > filled / 2:
            return f"free text or identifier ({column.distinct} distinct in {filled} rows)"
    return None


def choose_time_column(main: TableProfile) -> tuple[str | None, str | None]:
    """split.time_column: the first time column of the main table with a value in every row
    (the newest rows are held out), and a note when one has gaps instead."""
    times = [column for column in main.columns if column.kind == "datetime" and column.distinct > 1]
    for column in times:
        if column.nulls == 0:
            return column.name, None
    if times:
        return None, (
            f"split.time_column not set: {times[0].name} has {times[0].nulls} empty values, and "
            "a row without a time cannot be ordered (the key's hash splits instead)"
        )
    return None, None


def sample_fraction(rows: int, target: int) -> float:
    """The largest round fraction that keeps about `target` rows at most (1.0: all of them)."""
    for fraction in FRACTIONS:
        if rows * fraction <= target:
            return fraction
    return FRACTIONS[-1]


def sample_fractions(
    rows: int,
    *,
    defaults: ProjectDefaults | None = None,
    class_rows: Sequence[int] = (),
) -> dict[str, float]:
    """dev about 20k rows, staging about 50k, prod all; a table small enough for staging to
    take it whole gets a seeded half instead (staging is a real subset of prod's rows) when half
    still leaves the gate and every class enough rows (`whole_reason`); dev never more."""
    defaults = defaults or ProjectDefaults()
    fractions = {env: sample_fraction(rows, n) for env, n in SAMPLE_TARGETS.items()}
    for env in ("staging", "dev"):
        fits = whole_reason(env, rows, defaults=defaults, class_rows=class_rows) is None
        if fractions[env] == 1.0 and fits:
            fractions[env] = SUBSET
    if fractions["dev"] > fractions["staging"]:
        fractions["dev"] = fractions["staging"]
    return {**fractions, "prod": 1.0}


def whole_reason(
    env: str, rows: int, *, defaults: ProjectDefaults, class_rows: Sequence[int] = ()
) -> str | None:
    """Why `env` cannot train on a seeded half of `rows` (None: it can): too few held-out rows
    for the gate, or too few rows of a class for split.min_class_rows (each with a margin)."""
    test_rows = rows * SUBSET * defaults.test_fraction
    asked = defaults.min_test_rows.get(env, 100)
    if test_rows < SUBSET_MARGIN * asked:
        return (
            f"half of them would hold about {int(test_rows)} held-out rows, fewer than "
            f"{SUBSET_MARGIN:g} x gate.min_test_rows ({asked})"
        )
    rarest = min(class_rows, default=None)
    if rarest is not None and rarest * SUBSET < SUBSET_MARGIN * defaults.min_class_rows:
        return (
            f"half of them would hold about {int(rarest * SUBSET)} rows of the rarest class, "
            f"fewer than {SUBSET_MARGIN:g} x split.min_class_rows ({defaults.min_class_rows})"
        )
    return None


def amount_like(column: ColumnProfile) -> bool:
    """Never negative by nature: never negative here, and named as a count or an amount (a word
    of AMOUNT_WORDS), or whole numbers from 0 (counts); never a year."""
    if column.minimum is None or column.minimum < 0 or column.year_like:
        return False
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", column.name).lower()
    words = [word for word in re.split(r"[^a-z]+", spaced) if word]
    named = any(word in AMOUNT_WORDS or word.removesuffix("s") in AMOUNT_WORDS for word in words)
    return named or (column.integer and column.minimum == 0)


def numeric_bounds(column: ColumnProfile) -> tuple[int | float | None, int | float | None]:
    """The observed range widened by HEADROOM of it on each side, rounded outwards (at a tenth
    of the margin's magnitude); the floor
    is 0 for a count or an amount (`amount_like`), and a year has no upper bound (each new
    period passes it)."""
    low, high = column.minimum, column.maximum
    if low is None or high is None:
        raise ValueError(f"column {column.name} holds no value: it has no range")
    margin = HEADROOM * (high - low) or max(abs(high) * HEADROOM, 1.0)
    step = 10.0 ** (math.floor(math.log10(margin)) - 1)  # two significant digits of the margin
    if column.integer:
        step = max(step, 1.0)
    lower = math.floor(round((low - margin) / step, 6)) * step
    upper = math.ceil(round((high + margin) / step, 6)) * step
    if amount_like(column) and lower < 0:
        lower = 0.0
    return (
        _number(lower, column.integer),
        None if column.year_like else _number(upper, column.integer),
    )


def _number(value: float, integer: bool) -> int | float:
    return int(round(value)) if integer else float(f"{value:.12g}")


def _nice(value: float, digits: int = 2) -> float:
    """`value` to `digits` significant digits."""
    return float(f"{value:.{digits}g}") if value else 0.0


# --- joins -------------------------------------------------------------------------------


def plan_joins(
    request: InitRequest, frames: Mapping[str, pd.DataFrame], profiles: Mapping[str, TableProfile]
) -> tuple[tuple[Join, ...], tuple[str, ...]]:
    """How records() can join each further table: on the columns it shares with the rows
    joined so far, when they name one row of it (unique, none empty) and hold the same kind of
    value on both sides. Either every further table joins, or none does and the reasons say
    why (records() is then the user's to write)."""
    tables = list(request.tables)
    kinds = {column.name: _join_kind(column) for column in profiles[tables[0]].columns}
    joins, problems = [], []
    for table in tables[1:]:
        frame, profile = frames[table], profiles[table]
        shared = [name for name in profile.names if name in kinds]
        if not shared:
            problems.append(f"table {table} shares no column with {' or '.join(tables[:1])}")
            continue
        on = ", ".join(shared)
        mismatched = [name for name in shared if kinds[name] != _join_kind(profile.column(name))]
        if request.label in shared or mismatched:
            why = "holds the label" if request.label in shared else (
                f"holds {mismatched[0]} as {_join_kind(profile.column(mismatched[0]))}, the "
                f"records as {kinds[mismatched[0]]}"
            )  # fmt: skip
            problems.append(f"table {table} shares {on} but {why}")
            continue
        repeated = int(frame.duplicated(shared, keep=False).sum())
        empty = int(frame[shared].isna().any(axis=1).sum())
        if repeated or empty:
            problems.append(
                f"table {table} shares {on}, which do not name one row of it "
                f"({repeated} rows repeat them, {empty} leave them empty)"
            )
            continue
        joins.append(Join(table, tuple(shared), len(frame)))
        kinds |= {
            column.name: _join_kind(column)
            for column in profile.columns
            if column.name not in kinds
        }
    return (tuple(joins), ()) if not problems else ((), tuple(problems))


def _join_kind(column: ColumnProfile) -> str:
    if column.kind == "datetime":
        return "native time" if column.native_time else "time text"
    return "number" if column.kind in ("numeric", "boolean") else column.kind


def join_tables(
    frames: Mapping[str, pd.DataFrame], main: str, joins: Sequence[Join]
) -> pd.DataFrame:
    """The records the written records() makes: `main`, left-joined with each table."""
    joined = frames[main]
    for join in joins:
        joined = joined.merge(
            frames[join.table], on=list(join.on), how="left", validate="many_to_one"
        )
    return joined


def unmatched_warnings(
    frames: Mapping[str, pd.DataFrame], main: str, joins: Sequence[Join], *, folder: str
) -> tuple[str, ...]:
    """A join most records find no row of (under MIN_MATCHED): shared columns that do not mean
    the same thing (a plane's year of make is no flight's year) join nothing."""
    warnings, joined = [], frames[main]
    for join in joins:
        keys = frames[join.table][list(join.on)].assign(**{MATCHED: True})
        matched = float(joined.merge(keys, on=list(join.on), how="left")[MATCHED].notna().mean())
        if matched < MIN_MATCHED:
            warnings.append(
                f"records() joins {join.table} on {', '.join(join.on)}, but only {matched:.0%} "
                f"of the rows of {main} find a row there: if those columns mean different "
                f"things in the two tables, join on fewer in {folder}/problem.py."
            )
        joined = joined.merge(frames[join.table], on=list(join.on), how="left")
    return tuple(warnings)


# --- suites ------------------------------------------------------------------------------

SUITE_LEGEND = [
    "# HARD rules hold by nature (the type, the key, physics, the calendar): a break is bad",
    "# data. OBSERVED rules say what this file held, with headroom: widen them when the world",
    "# moves (a new period, a new value).",
]


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


def column_expectations(
    column: ColumnProfile,
    *,
    role: str = "unread",
    model_input: bool = False,
    regression: bool = False,
) -> list[str]:
    """The rules of one column, each saying what was observed and whether it is HARD or
    OBSERVED. `role`: key (type, never empty, a timestamp's format; no range: new rows bring
    new ids), label (a regression's physical floor, a classifier's classes), read (a feature:
    ranges with headroom, categories with `mostly`) or unread (type and gaps only). In the model
    input every column is read; categories are exact (serving refuses an unknown one), a
    timestamp is ISO-8601 text and a boolean may arrive as a number."""
    lines = _type_item(column, model_input=model_input)
    lines += _null_items(column, key=role == "key")
    if column.kind == "datetime" and (role in ("key", "read") or model_input):
        lines += _time_items(column, model_input=model_input)
    if role == "label":
        if regression:
            lines += _range_items(column, label=True)
        elif column.categories:
            lines += _set_items(column, mostly=None, classes=True)
    elif role == "read" or model_input:
        if column.kind == "numeric":
            lines += _range_items(column)
        elif column.kind == "text" and column.categories:
            lines += _set_items(column, mostly=None if model_input else CATEGORY_MOSTLY)
    return lines


def _type_item(column: ColumnProfile, *, model_input: bool) -> list[str]:
    what = (
        f"HARD: {column.name} is {column.kind} ({column.dtype}), {column.distinct} distinct values"
    )
    if column.native_time and not model_input:
        type_ = NATIVE_TIME_TYPES[column.zone == "all"]
        return _item(
            "expect_column_values_to_be_of_type",
            {"column": column.name, "type_": type_},
            f"{what}; great-expectations names the type {type_}",
        )
    if column.kind == "other" and not model_input:
        return [f"  # {column.name}: values of mixed types ({column.dtype}): no type rule"]
    types = {"text": TEXT_TYPES, "datetime": TEXT_TYPES, "boolean": BOOL_TYPES}.get(
        column.kind, NUMBER_TYPES
    )
    if model_input and column.kind == "boolean":  # as recorded (training) or as a number
        types = [*BOOL_TYPES, *NUMBER_TYPES]
    if model_input and column.kind == "datetime":
        what += "; the model reads it as ISO-8601 text"
    return _item("expect_column_values_to_be_in_type_list",
                 {"column": column.name, "type_list": types}, what)  # fmt: skip


def _null_items(column: ColumnProfile, *, key: bool) -> list[str]:
    if column.nulls == 0:
        tag = "HARD (the key names every row)" if key else "OBSERVED"
        return _item(
            "expect_column_values_to_not_be_null",
            {"column": column.name},
            f"{tag}: no empty value in {column.rows} rows",
        )
    filled = 1 - column.null_share
    mostly = math.floor((filled - NULL_MARGIN) * 100) / 100
    observed = f"OBSERVED: {column.nulls} of {column.rows} rows empty ({column.null_share:.1%})"
    if mostly <= 0:
        return [f"  # {observed}: no check on gaps"]
    return _item(
        "expect_column_values_to_not_be_null",
        {"column": column.name, "mostly": mostly},
        f"{observed}; at least {mostly:.0%} filled is required",
    )


def _time_items(column: ColumnProfile, *, model_input: bool) -> list[str]:
    """A timestamp's parse rule and zone rule, where it is text (always in the model input:
    a native one arrives as ISO text, in UTC with Z when it has a zone). No bound on the time:
    each new period passes any."""
    if column.native_time and not model_input:
        return []  # the native type already says it parses and whether it has a zone
    span = f"observed {column.first} to {column.last}; no bound: each new period passes it"
    lines = _item(
        "expect_column_values_to_match_regex",
        {"column": column.name, "regex": ISO_8601},
        f"HARD (the calendar): an ISO-8601 date or time, a real month, day and clock; {span}",
    )
    if column.zone == "all":
        how = "written in UTC with Z" if column.native_time else "as observed"
        return lines + _item(
            "expect_column_values_to_match_regex",
            {"column": column.name, "regex": ZONED},
            f"HARD: every time carries its zone (Z or an offset), {how}: without it the "
            "instant is unknown",
        )
    if column.zone == "none":
        return lines + _item(
            "expect_column_values_to_not_match_regex",
            {"column": column.name, "regex": ZONED},
            "HARD: no time carries a zone, as observed: one with a zone would mix two clocks",
        )
    return lines + [
        "  # observed: some times carry a zone and some do not: no zone rule (mixed clocks",
        "  # shift times; write every one in the same way)",
    ]


def _range_items(column: ColumnProfile, *, label: bool = False) -> list[str]:
    if column.minimum is None or column.maximum is None:
        return [f"  # observed: no value in {column.rows} rows: no check on the range"]
    observed = f"observed {_show(column.minimum)} to {_show(column.maximum)}"
    if label:
        if column.minimum < 0:
            return [f"  # the label: {observed}: no range (a record value is information)"]
        return _item(
            "expect_column_values_to_be_between",
            {"column": column.name, "min_value": 0},
            f"HARD (physics): the label was never negative ({observed}); no upper bound: a "
            "record value is information, not an error",
        )
    calendar = column.calendar_field
    if calendar is not None:
        return _item(
            "expect_column_values_to_be_between",
            {"column": column.name, "min_value": calendar[0], "max_value": calendar[1]},
            f"HARD (the calendar): {calendar[0]} to {calendar[1]}; {observed}",
        )
    low, high = numeric_bounds(column)
    kwargs: dict[str, Any] = {"column": column.name, "min_value": low}
    widened = f"{observed}, widened by {HEADROOM:.0%} of the range"
    if high is None:
        why = f"OBSERVED lower bound, {widened}; a year: no upper bound, each new period passes it"
    else:
        kwargs["max_value"] = high
        floor = "HARD floor 0 (a count or an amount); " if amount_like(column) and low == 0 else ""
        why = f"{floor}OBSERVED: {widened} on each side"
    return _item("expect_column_values_to_be_between", kwargs, why)


def _set_items(column: ColumnProfile, *, mostly: float | None, classes: bool = False) -> list[str]:
    categories = column.categories or ()
    shown = ", ".join(f"{value} ({count})" for value, count in categories[:12])
    if len(categories) > 12:
        shown += f", ... and {len(categories) - 12} more"
    observed = f"observed {len(categories)} values (rows): {shown}"
    kwargs: dict[str, Any] = {"column": column.name, "value_set": [v for v, _ in categories]}
    if classes:
        why = f"OBSERVED, exact: the label's classes; {observed}. A new class is a decision: add it"
    elif mostly is not None:
        kwargs["mostly"] = mostly
        why = (
            f"OBSERVED: {observed}; new values in up to {1 - mostly:.0%} of the rows pass (the "
            "model input's set is exact)"
        )
    else:
        why = (
            f"OBSERVED, exact (the values the model knows): {observed}. Serving refuses "
            "another: add it here and retrain when it is expected"
        )
    return _item("expect_column_values_to_be_in_set", kwargs, why)


def _show(value: float) -> str:
    return f"{value:.6g}"


def _unique_item(columns: Sequence[str], why: str) -> list[str]:
    if len(columns) == 1:
        return _item("expect_column_values_to_be_unique", {"column": columns[0]}, why)
    return _item("expect_compound_columns_to_be_unique", {"column_list": list(columns)}, why)


def table_suite(
    profile: TableProfile,
    *,
    path: str,
    key_columns: Sequence[str] = (),
    label: str | None,
    min_rows: str,
    read: Sequence[str] = (),
    join_on: Sequence[str] = (),
    regression: bool = False,
) -> str:
    """The suite of one raw table: its columns, rows, key (or join key) and every column: the
    ones the model reads (`read`) and the label in full, the others by type and gaps only."""
    lines = [
        f"# The raw table {profile.name} ({path}), checked before anything is sampled or",
        f"# trained. Written by `ml-project init` from the file as it was: {profile.rows} rows,",
        f"# {len(profile.columns)} columns. Yours to review: tighten what must never change, "
        "loosen what may.",
        *SUITE_LEGEND,
        "# Format: great-expectations 1.x types and kwargs; $name = validation.parameters.",
        f"table: {profile.name}",
        "expectations:",
    ]
    lines += _item(
        "expect_table_columns_to_match_set",
        {"column_set": profile.names, "exact_match": False},
        f"OBSERVED: these {len(profile.columns)} columns; more may be added",
    )
    lines += _item(
        "expect_table_row_count_to_be_between",
        {"min_value": f"${min_rows}"},
        f"OBSERVED: {profile.rows} rows; validation.parameters.{min_rows} sets the fewest",
    )
    if key_columns:
        lines += _unique_item(
            key_columns,
            f"HARD (the key): one row per ({', '.join(key_columns)}) ({profile.rows} rows)",
        )
    if join_on:
        lines += _unique_item(
            join_on,
            f"HARD (the join key): records() joins this table on ({', '.join(join_on)}): one "
            f"row each ({profile.rows} rows), or a record would be repeated",
        )
    keys = {*key_columns, *join_on}
    for column in profile.columns:
        role = (
            "key" if column.name in keys
            else "label" if column.name == label
            else "read" if column.name in read
            else "unread"
        )  # fmt: skip
        lines.append("")
        lines += column_expectations(column, role=role, regression=regression)
    return "\n".join(_anchor_types(lines)) + "\n"


def model_input_suite(profile: TableProfile, features: Features, *, source: str) -> str:
    """The suite of the model's input: the columns its signature names, as observed in the
    records (`source` says which tables they come from)."""
    lines = [
        "# The model's input: the columns its signature names, in order ($model_columns, from",
        "# features: in the settings). Training checks the rows it fits on; predict and monitor",
        "# check each batch; the rules without `mostly` are also built into the model, so",
        f"# serving refuses a row that breaks one. Written by `ml-project init` from {source}",
        f"# ({profile.rows} rows): a new category or a value far out of range stops a batch;",
        "# widen them here when expected.",
        *SUITE_LEGEND,
        f"table: {MODEL_INPUT}",
        "expectations:",
    ]
    lines += _item("expect_table_columns_to_match_ordered_list", {"column_list": "$model_columns"})
    lines += _item("expect_table_row_count_to_be_between", {"min_value": 1})
    for name in features.columns:
        lines.append("")
        lines += column_expectations(profile.column(name), role="read", model_input=True)
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
    specs: dict[str, str], profiles: Mapping[str, TableProfile], records: TableProfile,
    joins: Sequence[Join] = (), time_column: str | None = None, time_note: str | None = None,
    ignored: Sequence[str] = (),
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
    ]
    if time_column:
        lines += [
            "",
            "split:",
            f"  time_column: {_flow(time_column)}   # the newest rows are held out (the first "
            f"time column of {main.name})",
        ]
    elif time_note:
        lines += ["", f"# {time_note}"]
    source = f"table {main.name}"
    if joins:
        joined = "; ".join(f"{join.table} on {', '.join(join.on)}" for join in joins)
        source = f"the records ({main.name} joined with {joined})"
    limit = category_limit(records.rows)
    lines += [
        "",
        f"# features: from {source}. Text with at most {limit} values is categorical (about",
        f"# {limit and records.rows // limit} rows per value at least; {records.rows} rows), "
        "numbers are numeric,",
        "# ISO-8601 or native timestamps datetime (the model derives numbers from them). The",
        "# model's signature, in this order: edit freely.",
        "features:",
        f"  categorical: {_flow(list(features.categorical))}",
        f"  numeric: {_flow(list(features.numeric))}",
        f"  datetime: {_flow(list(features.datetime))}",
    ]
    if features.offered:
        lines.append("  # read although part of the key (remove them if they should not be):")
        lines += [f"  #   {column}: {why}" for column, why in features.offered.items()]
    if features.dropped:
        lines.append("  # left out:")
        lines += [f"  #   {column}: {why}" for column, why in features.dropped.items()]
    if several and not joins:
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
    if kind == "regression":  # for a metric with units, the monitor reads a fraction of it
        drop, why = 0.1, f"10% of the recorded {primary}"
    else:
        drop, why = 0.05, f"a loss of 0.05 of {primary}"
    lines += [
        "",
        "monitor:",
        f"  max_quality_drop: {drop}   # with --labels: drift when live {primary} is worse",
        f"                           # than the recorded one by more ({why})",
    ]
    if ignored:
        lines += [
            f"  ignore: {_flow(list(ignored))}   # years: each period brings a new one,",
            "                           # so they always move (reported, never drift)",
        ]
    lines += [
        "",
        "gate:                    # always checked too: beat a model that ignores the features",
        "  floors: {}             # e.g. {" + _example_floor(kind) + "} once you know the data",
        "  ceilings: {}",
        f"  primary_metric: {primary}",
    ]
    return "\n".join(lines) + "\n"


def _example_floor(kind: str) -> str:
    return {"binary": "roc_auc: 0.7", "multiclass": "accuracy: 0.6", "regression": "r2: 0.5"}[kind]


def env_overlay(
    env: str,
    *,
    rows: int,
    fraction: float,
    defaults: ProjectDefaults,
    whole: str | None = None,
) -> str:
    """environments/<env>.yaml: the sample fraction (and, when a small table's staging takes
    every row, `whole`: why not half), fewer trees in dev, a gate that can decide on the
    held-out rows this table has, and a monitor that accepts batches its size allows."""
    used = max(1, round(rows * fraction))
    header = {
        "dev": "dev: the fast loop",
        "staging": "staging: CI retrains here; sized to train well under a minute",
        "prod": "prod: every labelled row",
    }[env]
    what = "every row" if fraction == 1.0 else f"a seeded {fraction:g} of them"
    lines = [f"# {header}.", f"# Observed {rows} labelled rows: {what} (about {used})."]
    if fraction == SUBSET:
        lines.append(
            "# A seeded half: a real subset of prod's rows, so prod's training is no repeat."
        )
    if whole and env != "prod" and fraction == 1.0:
        lines += [f"# {line}" for line in _wrap(f"Not a subset of prod's rows: {whole}.")]
    lines += ["data:", f"  sample_fraction: {fraction}"]
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


def problem_module(request: InitRequest, *, name: str, joins: Sequence[Join] = ()) -> str:
    """problems/<name>/problem.py: a docstring for one table; for several, a records() that
    joins them (`joins`), or one to write when no join could be guessed."""
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
    if joins:
        return _joining_module(request, name=name, joins=joins)
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


def _joining_module(request: InitRequest, *, name: str, joins: Sequence[Join]) -> str:
    tables = list(request.tables)
    keys = ", ".join(request.key_columns)
    entries = "\n".join(
        f"    {join.table!r}: {list(join.on)!r},  # joined on {', '.join(join.on)}: one row "
        f"each in {join.table} ({join.rows} rows)"
        for join in joins
    )
    return f'''"""{name}: {request.kind} on `{request.label}`, from the tables {", ".join(tables)}
(written by `ml-project init`; yours).

records() makes one row per prediction ({keys}): each row of {tables[0]} with the columns the
other tables add, matched on the columns they share (init saw them name one row of each
table; their suites keep it so). A row without a match keeps empty values. Edit it freely:
problems/flights/problem.py joins on a derived column.
"""

from __future__ import annotations

import pandas as pd

# table -> the columns it is joined on (shared with the rows joined before it)
JOINS = {{
{entries}
}}


def records(tables: dict[str, pd.DataFrame], params) -> pd.DataFrame:
    """One row per {keys}: {tables[0]}, left-joined with each table of JOINS in turn."""
    joined = tables[{tables[0]!r}]
    for table, on in JOINS.items():
        joined = joined.merge(tables[table], on=on, how="left", validate="many_to_one")
    return joined
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
    several = len(frames) > 1
    joins, unjoined = plan_joins(request, frames, profiles) if several else ((), ())
    records = main
    own = {column.name: column for column in main.columns}
    if joins:
        records = profile_table(join_tables(frames, main.name, joins), main.name)
        for join in joins:
            own |= {c.name: c for c in profiles[join.table].columns if c.name not in own}
    features = choose_features(
        records, key_columns=request.key_columns, label=request.label, own=own
    )
    label = main.column(request.label)
    labelled = main.rows - label.nulls
    class_rows = (
        [count for _, count in label.categories or ()] if request.kind != "regression" else []
    )
    fractions = sample_fractions(labelled, defaults=defaults, class_rows=class_rows)
    time_column, time_note = choose_time_column(main)
    ignored = tuple(n for n in features.numeric if records.column(n).year_like)
    specs = {table: table_spec(path, root) for table, path in request.tables.items()}
    folder = f"{PROBLEMS_FOLDER}/{name}"
    files = {
        f"{folder}/__init__.py": "",
        f"{folder}/problem.py": problem_module(request, name=name, joins=joins),
        f"{folder}/environments/base.yaml": base_settings(
            request,
            name=name,
            main=main,
            features=features,
            specs=specs,
            profiles=profiles,
            records=records,
            joins=joins,
            time_column=time_column,
            time_note=time_note,
            ignored=ignored,
        ),  # fmt: skip
    }
    for env, fraction in fractions.items():
        whole = whole_reason(env, labelled, defaults=defaults, class_rows=class_rows)
        files[f"{folder}/environments/{env}.yaml"] = env_overlay(
            env, rows=labelled, fraction=fraction, defaults=defaults, whole=whole
        )
    join_on = {join.table: join.on for join in joins}
    for table, profile in profiles.items():
        files[f"{folder}/expectations/{table}.yaml"] = table_suite(
            profile,
            path=specs[table],
            key_columns=request.key_columns if profile is main else (),
            label=request.label if profile is main else None,
            min_rows=min_rows_parameter(table, several),
            read=features.columns,
            join_on=join_on.get(table, ()),
            regression=request.kind == "regression",
        )
    source = f"table {main.name}"
    if joins:
        source = f"the records ({main.name} joined with {', '.join(join_on)})"
    files[f"{folder}/expectations/{MODEL_INPUT}.yaml"] = model_input_suite(
        records, features, source=source
    )
    warnings = rare_class_warnings(label, request.kind, fractions, defaults.min_class_rows, folder)
    warnings += unmatched_warnings(frames, main.name, joins, folder=folder)
    if unjoined:
        warnings += (
            "no join guessed for records() ("
            + "; ".join(unjoined)
            + f"): write records() in {folder}/problem.py; the features come from table "
            f"{main.name} alone until it joins the others.",
        )
    return Plan(
        name=name, files=files, features=features, fractions=fractions, warnings=warnings,
        joins=joins, time_column=time_column, ignored=ignored,
    )  # fmt: skip


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
        f"Features: categorical {list(features.categorical)}, numeric {list(features.numeric)}"
        f", datetime {list(features.datetime)}",
    ]
    if plan.joins:
        lines.append(
            "Joined in records(): "
            + "; ".join(f"{join.table} on {', '.join(join.on)}" for join in plan.joins)
        )
    if features.offered:
        lines.append(
            "Read from the key: "
            + "; ".join(f"{column} ({why})" for column, why in features.offered.items())
        )
    if features.dropped:
        lines.append(
            "Left out: "
            + "; ".join(f"{column} ({why})" for column, why in features.dropped.items())
        )
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
    if len(request.tables) > 1 and not plan.joins:
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
