"""The expectation suites `ml-project init` writes (pure): a table's profile in, YAML text out.

Written for next month's data: every rule's comment says what was observed and whether it is
HARD (the type, the key, physics, the calendar: a break is bad data) or OBSERVED (this file's
values with headroom: widen it when the world moves). Ranges keep headroom, a year or a time
has no upper bound, a count or an amount has a floor of 0, value sets only where the model
reads the column (with `mostly` in the raw tables, exact in the model input, so serving refuses
an unknown value), and a column the model does not read gets its type and gaps only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import yaml

from ml_project.profile import ISO_8601, ZONED, ColumnProfile, TableProfile
from ml_project.validation import MODEL_INPUT

# Numeric ranges: the observed one widened by this share of it on each side (the range doubled):
# next month's extremes rarely pass it, a unit error (x100) or a sign error still does.
HEADROOM = 0.5
NULL_MARGIN = 0.05  # columns with gaps: `mostly` is the observed filled share less this
# A category the model reads, in its raw table: new values in up to this share of the rows are
# legitimate (a new team among 30 is 3%); the model input's set stays exact (serving refuses).
CATEGORY_MOSTLY = 0.95

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

# Words of a column's name that say it counts or measures an amount: never negative by nature.
AMOUNT_WORDS = frozenset(
    "count cnt num number n qty quantity total sum amount price cost fee salary wage income "
    "revenue sales spend paid pay balance size length weight height width depth area volume "
    "distance duration age minute hour second day page item view visit click population "
    "basket unit km mile kg gram meter metre".split()
)


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
    lines = [f"  # {line}" for line in wrap(comment)] if comment else []
    parts = []
    for key, value in kwargs.items():
        anchor = TYPE_ANCHORS.get(tuple(value)) if key == "type_list" else None
        parts.append(f"{key}: *{anchor}" if anchor else f"{key}: {flow(value)}")
    return [*lines, f"  - type: {kind}", f"    kwargs: {{{', '.join(parts)}}}"]


def _anchor_types(lines: list[str]) -> list[str]:
    """The first `*name` of each type list becomes `&name [types]`, defining the anchor."""
    seen, out = set(), []
    for line in lines:
        for types, anchor in TYPE_ANCHORS.items():
            if f"*{anchor}" in line and anchor not in seen:
                seen.add(anchor)
                line = line.replace(f"*{anchor}", f"&{anchor} {flow(list(types))}", 1)
        out.append(line)
    return out


def wrap(text: str, width: int = 94) -> list[str]:
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
    if column.infinite:
        return [f"  # observed: {column.infinite} infinite values in {column.rows} rows: no range"]
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
    values = [f"${v}" if isinstance(v, str) and v.startswith("$") else v for v, _ in categories]
    kwargs: dict[str, Any] = {"column": column.name, "value_set": values}  # `$$`: a `$` value
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


def model_input_suite(profile: TableProfile, columns: Sequence[str], *, source: str) -> str:
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
    for name in columns:
        lines.append("")
        lines += column_expectations(profile.column(name), role="read", model_input=True)
    return "\n".join(_anchor_types(lines)) + "\n"


def flow(value: object) -> str:
    """`value` as one line of flow-style YAML (quoted where YAML would misread it)."""
    text: str = yaml.safe_dump([value], default_flow_style=True, width=10_000)
    return text.strip()[1:-1]
