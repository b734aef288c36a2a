"""Synthetic scale-up of the flights demo's `flights` table: k shuffled copies of every row.

Documented as synthetic: copy 0 is the real table; copy k > 0 is a seeded permutation of the
real rows with the flight number rotated within 1-9999 (the expectation suite's range), the
scheduled minute moved within its hour (so `time_hour`, and with it the weather join, still
matches), distance jittered by up to 1% and arrival delay by a few minutes. The few rows whose
key (the settings' `data.key_columns`) then collides with an earlier row are dropped, so keys
stay unique. Used only by the benchmarks, which pass the result as `--table flights=PATH`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def scale_flights(
    flights: pd.DataFrame, *, factor: int, key_columns: Sequence[str], seed: int = 0
) -> pd.DataFrame:
    """`factor` times the rows of `flights` (copy 0 unchanged), unique on `key_columns`."""
    rng = np.random.default_rng(seed)
    copies = [flights]
    for k in range(1, factor):
        copy = flights.iloc[rng.permutation(len(flights))].reset_index(drop=True)
        minute = np.clip(copy["minute"] + rng.integers(-5, 6, len(copy)), 0, 59)
        copy["minute"] = minute
        copy["sched_dep_time"] = copy["hour"] * 100 + minute
        copy["flight"] = (copy["flight"] - 1 + 1_009 * k) % 9_999 + 1
        copy["distance"] = (copy["distance"] * rng.uniform(0.99, 1.01, len(copy))).round()
        copy["distance"] = copy["distance"].astype("int64")
        copy["arr_delay"] = copy["arr_delay"] + rng.normal(0, 3, len(copy)).round()
        copies.append(copy)
    scaled = pd.concat(copies, ignore_index=True)
    return scaled.loc[~scaled.duplicated(list(key_columns))].reset_index(drop=True)


def read_frame(path: Path) -> pd.DataFrame:
    """A Parquet, CSV or zipped CSV file (the compression from its name)."""
    if Path(path).suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def write_scaled(
    flights_path: Path, folder: Path, factor: int, *, key_columns: Sequence[str]
) -> Path:
    """The scaled flights as Parquet in `folder`, made once per source file, factor and key."""
    source = hashlib.sha256(Path(flights_path).read_bytes())
    source.update(",".join(key_columns).encode())
    target = folder / f"flights_x{factor}_{source.hexdigest()[:12]}.parquet"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        flights = read_frame(flights_path)
        scaled = scale_flights(flights, factor=factor, key_columns=key_columns)
        partial = target.with_name(f".{target.name}.partial")
        scaled.to_parquet(partial, index=False)
        partial.replace(target)
    return target
