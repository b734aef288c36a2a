"""Data steps: find and read the tables, label, sample, split and digest records.

Everything here is pure but `read_table` and `resolve_table`, which look at files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_project.errors import DataError
from ml_project.paths import describe_missing

PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class Split:
    """The held-out split of one labelled frame; `cutoff`: with a time split, the oldest
    held-out time (ISO text, or the number)."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: str | None = None


def resolve_table(spec: str, root: Path) -> Path:
    """A table's file from its setting: relative to `root`, absolute, or
    `package:<package>/<path>` for a file shipped inside an installed package (never imported).
    """
    if spec.startswith(PACKAGE_PREFIX):
        package, _, inside = spec.removeprefix(PACKAGE_PREFIX).partition("/")
        found = importlib.util.find_spec(package) if package else None
        if found is None or not found.submodule_search_locations or not inside:
            raise DataError(
                f"{spec}: no installed package {package!r} holds that file (is the package "
                "installed? `pip install -e .` installs the examples' data packages)."
            )
        return Path(found.submodule_search_locations[0]) / inside
    path = Path(spec).expanduser()
    return path if path.is_absolute() else Path(root) / path


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV, zipped CSV or Parquet file as a DataFrame, or a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {describe_missing(path)}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty.")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, compression="zip" if suffixes.endswith(".zip") else "infer")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: the file is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: the archive is damaged or truncated ({exc}).") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file holds no header and no rows.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: the file is not valid CSV ({exc}).") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: the file cannot be read ({exc}).") from exc
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no rows.")
    _refuse_other_delimiters(frame, path)
    return frame


def _refuse_other_delimiters(frame: pd.DataFrame, path: Path) -> None:
    """One column whose name holds `;`, a tab or `|`: a CSV separated by something else."""
    if len(frame.columns) != 1:
        return
    header = str(frame.columns[0])
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        if separator in header:
            raise DataError(
                f"{path}: the file reads as one column {header[:40]!r}...; it looks separated "
                f"by {name}, not commas. Save it as comma-separated CSV (or Parquet)."
            )


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, table: str) -> None:
    """A DataError naming the table and each missing column."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"{table}: missing column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}."
        )


def label_rows(
    records: pd.DataFrame, labels: pd.Series, *, column: str
) -> tuple[pd.DataFrame, int]:
    """`records` with the label as `column`; rows without a label dropped and counted."""
    known = labels.notna().to_numpy()
    values = labels[known]
    numpy_dtype = getattr(values.dtype, "numpy_dtype", None)  # Int64, boolean -> int64, bool
    if numpy_dtype is not None and numpy_dtype.kind in "biuf":
        values = values.astype(numpy_dtype)
    out = records.loc[known]  # a new frame already (copy-on-write): no second copy
    out[column] = values.to_numpy()
    return out.reset_index(drop=True), int((~known).sum())


def require_unique_keys(frame: pd.DataFrame, key_columns: Sequence[str], *, table: str) -> None:
    """A DataError naming the key and an example when two records share one key."""
    duplicated = frame.duplicated(list(key_columns), keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, list(key_columns)].iloc[0].to_dict()
        raise DataError(
            f"{table}: {int(duplicated.sum())} rows share their key "
            f"({', '.join(key_columns)}; e.g. {example}). data.key_columns must name one "
            "record per row: sampling, splitting and the gate's row matching rely on it."
        )


def hash_fraction(
    frame: pd.DataFrame, key_columns: Sequence[str], *, seed: int, purpose: str
) -> np.ndarray:
    """A number in [0, 1) per row from a seeded hash of its key columns.

    It depends only on the row's key values, the seed and the purpose: not on row order,
    the machine or the numpy random generator, so a subset is the same everywhere. The seed
    and purpose are mixed into every row's hash (splitmix64's finaliser), whatever the key's
    dtypes: pandas' own `hash_key` reaches text columns only, so with a numeric key it would
    make the "sample" and the "split" draws one and the same.
    """
    require_columns(frame, key_columns, table="records")
    salt = int.from_bytes(hashlib.sha256(f"{purpose}:{seed}".encode()).digest()[:8], "little")
    hashed = pd.util.hash_pandas_object(frame[list(key_columns)], index=False)
    mixed = _mix64(hashed.to_numpy(dtype=np.uint64) ^ np.uint64(salt))
    return (mixed >> np.uint64(11)) / float(2**53)


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (uint64 wraps)."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = values ^ (values >> np.uint64(31))
    return mixed


def sample_rows(
    frame: pd.DataFrame, *, fraction: float, key_columns: Sequence[str], seed: int
) -> pd.DataFrame:
    """The seeded subset of about `fraction` of the rows, in their original order."""
    if fraction >= 1.0:
        return frame
    keep = hash_fraction(frame, key_columns, seed=seed, purpose="sample") < fraction
    return frame.loc[keep].reset_index(drop=True)


def split_rows(
    frame: pd.DataFrame,
    *,
    test_fraction: float,
    key_columns: Sequence[str],
    seed: int,
    time_column: str | None = None,
) -> Split:
    """A seeded train/test split.

    Without `time_column` a row's side depends only on its key and the seed. With it, the
    newest ceil(test_fraction * rows) rows by that column are held out, ties at the cut broken
    by the same seeded key hash: the sides depend on the rows, not their order, and on the seed
    only at ties. Rows without a time are never held out (they are not the newest).
    """
    draw = hash_fraction(frame, key_columns, seed=seed, purpose="split")
    if time_column is None:
        is_test = draw < test_fraction
        return Split(
            train=frame.loc[~is_test].reset_index(drop=True),
            test=frame.loc[is_test].reset_index(drop=True),
        )
    require_columns(frame, [time_column], table="records")
    times = time_values(frame[time_column], column=time_column)
    held = min(math.ceil(test_fraction * len(frame)), int((~np.isnan(times)).sum()))
    order = np.lexsort((draw, np.nan_to_num(times, nan=-np.inf)))  # oldest first
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[order[len(frame) - held :]] = True
    cutoff = frame[time_column].to_numpy()[order[len(frame) - held]] if held else None
    return Split(
        train=frame.loc[~is_test].reset_index(drop=True),
        test=frame.loc[is_test].reset_index(drop=True),
        cutoff=None if cutoff is None else time_text(cutoff),
    )


def time_values(values: pd.Series, *, column: str) -> np.ndarray:
    """Sortable float64 per value (NaN when missing): numbers as they are (e.g. a year),
    timestamps as seconds since 1970-01-01 UTC (naive ones read as UTC); text is parsed as ISO
    8601, and text that does not parse is a DataError naming the column and an example."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"the time column {column} holds true/false values, not times.")
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers: np.ndarray = pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)
        return numbers
    parsed = parse_times(values)
    bad = parsed.isna() & values.notna()
    if bad.any():
        raise DataError(
            f"the time column {column} holds {int(bad.sum())} value(s) that are not "
            f"ISO 8601 timestamps (e.g. {values[bad].iloc[0]!r}); write them as "
            "2024-01-31T12:00:00Z, or name another column as split.time_column."
        )
    return epoch_seconds(parsed)


def parse_times(values: pd.Series) -> pd.Series:
    """Timestamps (UTC) from ISO 8601 text or native datetimes; what does not parse is NaT."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        aware = isinstance(values.dtype, pd.DatetimeTZDtype)
        return values.dt.tz_convert("UTC") if aware else values.dt.tz_localize("UTC")
    text = values.astype("object").where(values.notna(), None)
    return pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")


def epoch_seconds(stamps: pd.Series) -> np.ndarray:
    """Seconds since 1970-01-01 UTC of UTC timestamps, float64 (NaN for NaT)."""
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    result: np.ndarray = seconds.to_numpy(dtype=np.float64, na_value=np.nan)
    return result


def time_text(value: object) -> str:
    """A time value as text: a timestamp in ISO 8601 (aware ones in UTC, with Z), text as it is,
    a number as written."""
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(iso_text(pd.Series([value])).iloc[0])
    return str(value)


def with_iso_times(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`frame` with each of `columns` it holds as ISO 8601 text (`iso_text`)."""
    present = [name for name in columns if name in frame.columns]
    if not present:
        return frame
    return frame.assign(**{name: iso_text(frame[name]) for name in present})


def iso_text(values: pd.Series) -> pd.Series:
    """A column as the model reads a timestamp: native tz-aware datetimes in UTC as
    "%Y-%m-%dT%H:%M:%SZ", naive ones as "%Y-%m-%dT%H:%M:%S", text as it is; missing stays
    missing (None)."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "datetime":
        values = pd.Series(pd.to_datetime(values.to_numpy()), index=values.index)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            text = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            text = values.dt.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        text = values
    return text.astype("object").where(text.notna(), None)


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of every row and column (names, dtypes, values, order) of `frame`."""
    digest = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        digest.update(f"{name}:{dtype};".encode())
    values = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest.update(values.tobytes())
    return digest.hexdigest()


def file_digest(path: Path | str) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
