"""The flights feature step reads number columns through NumPy (a served row's cost): the same
frame, values, dtypes and index as the pandas calls it replaced, written out below."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_project.settings import load_settings
from problems.flights import problem as flights

ROOT = Path(__file__).resolve().parents[3]
FEATURES = load_settings("dev", problem="flights", root=ROOT).features


def pandas_features(frame, categorical, numeric):
    """The feature step as it was written with pandas calls (the reference)."""

    def minutes(hhmm):
        values = pd.to_numeric(hhmm, errors="coerce")
        return (values // 100) * 60 + values % 100

    out = {}
    for name in categorical:
        values = frame[name]
        out[name] = values.astype("object").where(values.notna(), np.nan)
    consumed = {column for needs in flights.DERIVED.values() for column in needs} - {"month"}
    for name in numeric:
        if name not in consumed:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    out["day_of_week"] = flights._weekdays(frame)[0].astype("float64")
    out["dep_minutes"] = minutes(frame["sched_dep_time"]).astype("float64")
    out["arr_minutes"] = minutes(frame["sched_arr_time"]).astype("float64")
    return pd.DataFrame(out, index=frame.index)


def rows(n=60, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "carrier": pd.Series(rng.choice(["AA", "UA", "DL"], n), dtype="str"),
            "origin": pd.Series(rng.choice(["EWR", "JFK"], n), dtype=object),
            "dest": pd.Series(rng.choice(["ORD", "ATL"], n), dtype="string"),
            "year": 2013,
            "month": rng.integers(1, 13, n).astype(float),
            "day": rng.integers(1, 29, n),
            "sched_dep_time": rng.integers(0, 2400, n).astype(object),
            "sched_arr_time": rng.integers(0, 2400, n) + rng.choice([0.0, 0.5], n),
            "distance": pd.array(rng.integers(100, 2500, n), dtype="Int64"),
        }
        | {column: rng.normal(10, 3, n) for column in flights.WEATHER_COLUMNS}
    )
    frame.loc[0, "carrier"] = np.nan
    frame.loc[1, "origin"] = None
    frame.loc[2, "dest"] = pd.NA
    frame.loc[3, "distance"] = pd.NA
    frame.loc[4, "sched_dep_time"] = "not a time"
    frame.loc[5, "sched_dep_time"] = -1530
    frame.loc[6, "sched_arr_time"] = np.nan
    frame.loc[7, "humid"] = np.inf
    frame["temp"] = frame["temp"].astype("float32")
    frame["precip"] = frame["precip"] > 10  # booleans read as numbers
    frame.index = frame.index * 3 + 100  # not a default index
    return frame[FEATURES.columns]


@pytest.mark.parametrize("pick", [slice(None), [7], [0], []])
def test_the_feature_step_gives_what_the_pandas_calls_gave(pick):
    frame = rows().iloc[pick]
    step = flights.FlightFeatures(tuple(FEATURES.categorical), tuple(FEATURES.numeric))
    expected = pandas_features(frame, FEATURES.categorical, FEATURES.numeric)
    got = step.transform(frame)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes)  # text stays object, numbers float64


def test_the_feature_step_does_not_write_into_its_input():
    frame = rows()
    before = frame.copy()
    flights.FlightFeatures(tuple(FEATURES.categorical), tuple(FEATURES.numeric)).transform(frame)
    pd.testing.assert_frame_equal(frame, before)
