"""What a table holds, column by column (pure): the facts `ml-project init` writes settings and
expectation suites from.

Per column: its kind (numeric, boolean, text, datetime, other), dtype, empty share, distinct
count, numeric minimum and maximum, the categories with their counts when there are few (how
few scales with the rows: `category_limit`), and for a timestamp (a native datetime, or text
whose every value is an ISO-8601 date or time) its earliest and latest value and its zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# At most this many distinct values are always a category (their counts are kept), and a label
# may have at most this many classes. Larger tables allow more: `category_limit`.
MAX_CATEGORIES = 50
MAX_CATEGORY_LIMIT = 1000  # a value set beyond this is no contract a person can review
ROWS_PER_CATEGORY = 20  # the default model's min_samples_leaf: rarer values get no leaf anyway
SAMPLE = 200  # text values checked first, before the whole column, for a timestamp

# ISO 8601 as tables write it: a date, optionally a time (T or a space) and a zone.
# A date with a day its month has (29 February passes in every year: a regex cannot tell a
# leap year; the parse in `iso_times` does).
ISO_DATE = (
    r"\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-9]))"
)
ISO_TIME = r"[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
ISO_ZONE = r"(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)"
ISO_8601 = rf"^{ISO_DATE}(?:{ISO_TIME}{ISO_ZONE}?)?$"
# A zone written after the time (a date alone has none): Z, +02:00, -0500, +05.
ZONED = rf":\d{{2}}(?:\.\d+)?{ISO_ZONE}$"
YEAR_NAME = re.compile(r"(^|[^a-z])(year|yr)s?([^a-z]|$)|[a-z]year$", re.IGNORECASE)
TIME_NAME = re.compile(r"(^|[^a-z])(date|time|period)([^a-z]|$)", re.IGNORECASE)
FIRST_YEAR, LAST_YEAR = 1900, 2100  # integers all within: calendar years
# Calendar fields (a word of the column's name -> the values the calendar allows).
CALENDAR = {"month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59)}


def category_limit(rows: int) -> int:
    """The most distinct values a column of `rows` rows may have and still be a category: at
    least MAX_CATEGORIES, and more in a larger table as long as each value has about
    ROWS_PER_CATEGORY rows on average (an 87-value column of 3,000 rows is a category; of 200
    rows, free text), never more than MAX_CATEGORY_LIMIT."""
    return max(MAX_CATEGORIES, min(MAX_CATEGORY_LIMIT, rows // ROWS_PER_CATEGORY))


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
    infinite: int = 0  # numeric values that are inf or -inf (then no range is observed)
    first: str | None = None  # datetime: the earliest and latest value, ISO 8601
    last: str | None = None
    zone: str | None = None  # datetime: "all" values carry a zone, "none" do, or "mixed"

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def unique(self) -> bool:
        """Every row holds a value of its own (and none is empty)."""
        return self.nulls == 0 and self.distinct == self.rows

    @property
    def native_time(self) -> bool:
        """A datetime stored as one (Parquet), not as ISO text."""
        return self.kind == "datetime" and self.dtype.startswith("datetime64")

    @property
    def year_like(self) -> bool:
        """Calendar years: whole numbers all within 1900-2100, or named year/yr with values of
        four digits; or a decimal year named date/time/period within 1900-2100 (2015.5). Each
        new period brings a larger one."""
        if self.kind != "numeric" or self.minimum is None or self.maximum is None:
            return False
        if not self.integer:
            within = self.minimum >= FIRST_YEAR and self.maximum <= LAST_YEAR
            return within and bool(TIME_NAME.search(self.name))
        if self.minimum >= FIRST_YEAR and self.maximum <= LAST_YEAR:
            return True
        return bool(YEAR_NAME.search(self.name)) and 1000 <= self.minimum <= self.maximum <= 9999

    @property
    def calendar_field(self) -> tuple[int, int] | None:
        """The calendar's bounds for a whole-number month, day, hour or minute (the last word
        of its name, singular: `month`, `dep_hour`; never a duration such as `minutes_late` or
        `days_to_ship`; values within them), else None."""
        if self.kind != "numeric" or not self.integer or self.minimum is None:
            return None
        assert self.maximum is not None
        words = re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", self.name).lower())
        words = [word for word in words if word]
        bounds = CALENDAR.get(words[-1]) if words else None
        if bounds and bounds[0] <= self.minimum and self.maximum <= bounds[1]:
            return bounds
        return None

    @property
    def row_number_like(self) -> bool:
        """Whole numbers, one per row, consecutive (the row's position, from 0 or 1 or
        anywhere): an index written with the table, not a fact about the row."""
        return (
            self.kind == "numeric"
            and self.integer
            and self.unique
            and self.minimum is not None
            and self.maximum is not None
            and self.maximum - self.minimum + 1 == self.rows
        )


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
    """numeric, boolean, text, datetime or other, from the dtype (and object values); text
    whose every value is an ISO-8601 date or timestamp is datetime."""
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
            return "datetime" if iso_times(values) else "text"
    return "other"


def iso_times(values: pd.Series) -> bool:
    """Every value (text, none empty) is an ISO-8601 date or timestamp that names a real day:
    a sample first (most text columns fail there, cheaply), then the whole column."""
    if values.empty:
        return False
    text = values.astype(str)
    for part in (text.head(SAMPLE), text):
        if not part.str.fullmatch(ISO_8601).all():
            return False
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    return bool(parsed.notna().all())


def profile_column(series: pd.Series, *, max_categories: int = MAX_CATEGORIES) -> ColumnProfile:
    """The profile of one column; at most `max_categories` distinct values are a category."""
    kind = column_kind(series)
    values = series.dropna()
    distinct = int(values.nunique())
    facts: dict[str, Any] = {}
    infinite = 0
    if kind == "numeric" and len(values):
        numbers = values.astype("float64")
        infinite = int((~np.isfinite(numbers)).sum())  # no range can hold inf: none is written
    if kind == "numeric" and len(values) and not infinite:
        facts = {
            "integer": bool((numbers == numbers.round()).all()),
            "minimum": float(numbers.min()),
            "maximum": float(numbers.max()),
            "std": float(numbers.std(ddof=0)),
        }
    if kind in ("text", "boolean", "numeric") and distinct <= max_categories:
        counts = values.value_counts(sort=False)
        ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
        facts["categories"] = tuple((_plain(value), int(count)) for value, count in ordered)
    if kind == "datetime" and len(values):
        facts = _time_facts(values)
    if infinite:
        facts["infinite"] = infinite
    return ColumnProfile(
        name=str(series.name),
        kind=kind,
        dtype=str(series.dtype),
        rows=len(series),
        nulls=int(series.isna().sum()),
        distinct=distinct,
        **facts,
    )


def _time_facts(values: pd.Series) -> dict[str, Any]:
    """The earliest and latest value, and whether they carry a zone."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        zone = "all" if getattr(values.dt, "tz", None) is not None else "none"
        times = values
    else:
        text = values.astype(str)
        zoned = int(text.str.contains(ZONED, regex=True).sum())
        zone = "all" if zoned == len(text) else "none" if zoned == 0 else "mixed"
        times = pd.to_datetime(text, format="ISO8601", utc=zone != "none")
    return {"first": times.min().isoformat(), "last": times.max().isoformat(), "zone": zone}


def profile_table(frame: pd.DataFrame, name: str) -> TableProfile:
    """The profile of every column of `frame`; the category limit follows its rows."""
    limit = category_limit(len(frame))
    return TableProfile(
        name=name,
        rows=len(frame),
        columns=tuple(
            profile_column(frame[column], max_categories=limit) for column in frame.columns
        ),
    )


def _plain(value: object) -> object:
    """A numpy scalar as the Python value YAML writes."""
    return value.item() if hasattr(value, "item") else value
