"""Synthetic scale-up of the real flights: k shuffled copies of every row, with jitter.

Documented as synthetic: copy 0 is the real data; copy k > 0 is a seeded permutation of the
real rows with the flight number rotated within 1-9999 (the expectation suite's range), the
scheduled minute moved within its hour (so the weather join still matches), distance
jittered by up to 1% and arrival delay by a few minutes. The few rows whose key then collides
with an earlier row are dropped, so keys stay unique. Used only by the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def scale_flights(flights: pd.DataFrame, *, factor: int, seed: int = 0) -> pd.DataFrame:
    """`factor` times the rows of `flights` (copy 0 unchanged)."""
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
    keys = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]
    scaled = pd.concat(copies, ignore_index=True)
    return scaled.loc[~scaled.duplicated(keys)].reset_index(drop=True)


def write_scaled(flights_path: Path, folder: Path, factor: int) -> Path:
    """The scaled flights as Parquet in `folder` (made once, reused)."""
    target = folder / f"flights_x{factor}.parquet"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        flights = pd.read_csv(flights_path)
        scale_flights(flights, factor=factor).to_parquet(target, index=False)
    return target
