"""What a table holds, column by column (pure): the facts `ml-project init` writes settings and
expectation suites from.

Per column: its kind (numeric, boolean, text, datetime, other), dtype, empty share, distinct
count, numeric minimum and maximum, and the categories with their counts when there are few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

MAX_CATEGORIES = 50  # at most this many distinct values: the counts are kept (a category)


@dataclass(frozen=True)
class ColumnProfile:
    """One column as observed."""

    name: str
    kind: str  # numeric | boolean | text | datetime | other
    dtype: str
    rows: int
    nulls: int
    distinct: int
    integer: bool = False  # numeric and every value whole
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[tuple[object, int], ...] | None = None  # most frequent first
    std: float | None = None

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def unique(self) -> bool:
        """Every row holds a value of its own (and none is empty)."""
        return self.nulls == 0 and self.distinct == self.rows


@dataclass(frozen=True)
class TableProfile:
    """A table as observed: its rows and each column's profile, in the file's order."""

    name: str
    rows: int
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        return next(column for column in self.columns if column.name == name)

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]


def column_kind(series: pd.Series) -> str:
    """numeric, boolean, text, datetime or other, from the dtype (and object values)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        values = series.dropna()
        if values.map(lambda value: isinstance(value, str)).all():
            return "text"
    return "other"


def profile_column(series: pd.Series) -> ColumnProfile:
    """The profile of one column."""
    kind = column_kind(series)
    values = series.dropna()
    distinct = int(values.nunique())
    facts: dict[str, Any] = {}
    if kind == "numeric" and len(values):
        numbers = values.astype("float64")
        facts = {
            "integer": bool((numbers == numbers.round()).all()),
            "minimum": float(numbers.min()),
            "maximum": float(numbers.max()),
            "std": float(numbers.std(ddof=0)),
        }
    if kind in ("text", "boolean", "numeric") and distinct <= MAX_CATEGORIES:
        counts = values.value_counts(sort=False)
        ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
        facts["categories"] = tuple((_plain(value), int(count)) for value, count in ordered)
    return ColumnProfile(
        name=str(series.name),
        kind=kind,
        dtype=str(series.dtype),
        rows=len(series),
        nulls=int(series.isna().sum()),
        distinct=distinct,
        **facts,
    )


def profile_table(frame: pd.DataFrame, name: str) -> TableProfile:
    """The profile of every column of `frame`."""
    return TableProfile(
        name=name,
        rows=len(frame),
        columns=tuple(profile_column(frame[column]) for column in frame.columns),
    )


def _plain(value: object) -> object:
    """A numpy scalar as the Python value YAML writes."""
    return value.item() if hasattr(value, "item") else value
