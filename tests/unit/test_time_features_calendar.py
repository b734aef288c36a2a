"""TimeFeatures' calendar parts by NumPy arithmetic: what pandas' `.dt` accessors gave."""

import numpy as np
import pandas as pd
import pytest

from ml_project.data import epoch_seconds, parse_times
from ml_project.time_features import SECONDS_PER_DAY, TimeFeatures, derive


def pandas_derive(values):
    """derive() as it was written with pandas' accessors (the reference)."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = values.astype("object").where(values.notna(), None)
        values = values.map(lambda value: value if value is None else str(value))
    stamps = parse_times(values)
    parts = [stamps.dt.year, stamps.dt.month, stamps.dt.day, stamps.dt.day_of_week,
             stamps.dt.hour, stamps.dt.day_of_year]  # fmt: skip
    columns = [part.to_numpy(dtype=np.float64, na_value=np.nan) for part in parts]
    columns.append(epoch_seconds(stamps) / SECONDS_PER_DAY)
    return np.column_stack(columns)


TEXT = [
    "2024-02-29T23:59:59.999999Z", "2024-03-01T01:00:00+02:00", "1969-12-31T23:30:00Z",
    "1900-03-01T00:00:00", "1970-01-01", "2000-12-31T12:00:00-11:00", "1700-01-01T05:00:00Z",
    "2262-04-11T00:00:00Z", "2100-02-28T18:45:00.5Z", None, "junk", "2024-13-01",
]  # fmt: skip


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(TEXT, dtype=object),
        pd.Series(TEXT, dtype="str"),
        pd.Series(TEXT[:1]),
        pd.Series([], dtype=object),
        pd.Series(pd.to_datetime(TEXT[:9], utc=True, format="ISO8601")),  # native, aware
        pd.Series(pd.date_range("1965-01-01", periods=400, freq="37h")),  # native, naive
        pd.Series(pd.to_datetime(["1969-06-30 10:00", None]).as_unit("s")),
    ],
)
def test_the_calendar_parts_are_what_pandas_accessors_gave(values):
    got, expected = derive(values), pandas_derive(values)
    assert got.dtype == expected.dtype == np.float64 and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()  # bit for bit, NaN where NaN


def test_a_random_spread_of_instants_agrees_to_the_bit():
    rng = np.random.default_rng(0)
    seconds = rng.integers(-4_000_000_000, 6_000_000_000, 3000)
    values = pd.Series(pd.to_datetime(seconds, unit="s", utc=True))
    assert derive(values).tobytes() == pandas_derive(values).tobytes()
    frame = pd.DataFrame({"when": values.dt.strftime("%Y-%m-%dT%H:%M:%SZ")})
    step = TimeFeatures().fit(frame)
    assert step.transform(frame).tobytes() == pandas_derive(frame["when"]).tobytes()
