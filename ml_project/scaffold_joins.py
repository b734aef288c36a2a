"""`ml-project init`'s join guess (pure): how records() joins each further table to the first.

A further table joins on the fewest columns it shares with the rows joined so far that name one
of its rows (unique, none empty; identifiers first) and hold the same kind of value on both
sides; the records keep their own value of any other shared column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import pandas as pd

from ml_project.profile import ColumnProfile, TableProfile

ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^(id|uuid|guid)([_\W]|$)", re.IGNORECASE)
MAX_KEY_COLUMNS = 4  # a join key of more shared columns than this is not guessed
MIN_MATCHED = 0.5  # a join fewer records find a row of is reported (a guess gone wrong?)
MATCHED = "__matched__"


@dataclass(frozen=True)
class Join:
    """A further table joined to the records on the columns it shares with them."""

    table: str
    on: tuple[str, ...]
    rows: int


def plan_joins(
    tables: Sequence[str],
    label: str,
    frames: Mapping[str, pd.DataFrame],
    profiles: Mapping[str, TableProfile],
) -> tuple[tuple[Join, ...], tuple[str, ...]]:
    """Every further table's join, or none and the reasons why (records() is then the user's to
    write)."""
    kinds = {column.name: _join_kind(column) for column in profiles[tables[0]].columns}
    joins, problems = [], []
    for table in tables[1:]:
        frame, profile = frames[table], profiles[table]
        shared = [name for name in profile.names if name in kinds and name != label]
        key = _join_key(frame, shared)
        mismatched = [name for name in key or () if kinds[name] != _join_kind(profile.column(name))]
        if not shared:
            problems.append(f"table {table} shares no column with {tables[0]}")
        elif key is None:
            repeated = int(frame.duplicated(shared, keep=False).sum())
            empty = int(frame[shared].isna().any(axis=1).sum())
            problems.append(
                f"table {table} shares {', '.join(shared)}, which do not name one row of it "
                f"({repeated} rows repeat them, {empty} leave them empty)"
            )
        elif mismatched:
            problems.append(
                f"table {table} shares {', '.join(key)} but holds {mismatched[0]} as "
                f"{_join_kind(profile.column(mismatched[0]))}, the records as "
                f"{kinds[mismatched[0]]}"
            )
        else:
            joins.append(Join(table, key, len(frame)))
            kinds = {c.name: _join_kind(c) for c in profile.columns} | kinds
    return (tuple(joins), ()) if not problems else ((), tuple(problems))


def _join_key(frame: pd.DataFrame, shared: Sequence[str]) -> tuple[str, ...] | None:
    """The fewest shared columns (identifiers first, then in the table's order) whose values
    name one row of `frame` with none empty, or None."""
    ordered = sorted(shared, key=lambda name: (not ID_NAME.search(name), shared.index(name)))
    for size in range(1, min(len(ordered), MAX_KEY_COLUMNS) + 1):
        for columns in combinations(ordered, size):
            values = frame[list(columns)]
            if values.notna().all(axis=None) and not values.duplicated().any():
                return tuple(columns)
    return None


def _join_kind(column: ColumnProfile) -> str:
    if column.kind == "datetime":
        return "native time" if column.native_time else "time text"
    return "number" if column.kind in ("numeric", "boolean") else column.kind


def _joined(left: pd.DataFrame, right: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    """`left` left-joined with `right`, keeping its own value of a column both hold but `on`."""
    right = right.drop(columns=[c for c in right.columns if c in left.columns and c not in on])
    return left.merge(right, on=list(on), how="left", validate="many_to_one")


def join_tables(
    frames: Mapping[str, pd.DataFrame], main: str, joins: Sequence[Join]
) -> pd.DataFrame:
    """The records the written records() makes: `main`, left-joined with each table."""
    joined = frames[main]
    for join in joins:
        joined = _joined(joined, frames[join.table], join.on)
    return joined


def unmatched_warnings(
    frames: Mapping[str, pd.DataFrame], main: str, joins: Sequence[Join], *, folder: str
) -> tuple[str, ...]:
    """A join most records find no row of (under MIN_MATCHED): shared columns that do not mean
    the same thing (a product's year of make is no order's year) join nothing."""
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
        joined = _joined(joined, frames[join.table], join.on)
    return tuple(warnings)
