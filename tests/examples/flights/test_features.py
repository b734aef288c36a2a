"""The flights feature step and model (problems/flights/problem.py), on small inline frames."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io

from ml_project.errors import DataError
from ml_project.input_rules import InputRuleError
from ml_project.problem import importable, load_problem
from ml_project.settings import load_settings
from problems.flights import problem as flights

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = load_settings("dev", problem="flights", root=ROOT)
PARAMS = load_problem(SETTINGS, ROOT).params
# Known only once the flight has left or landed: never a model input.
LEAKY_COLUMNS = ("dep_time", "dep_delay", "arr_time", "air_time", "arr_delay")


def raw_frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "carrier": rng.choice(["AA", "UA", "DL"], n),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "dest": rng.choice(["ORD", "ATL", "LAX", "SFO"], n),
            "year": 2013,
            "month": rng.integers(1, 13, n),
            "day": rng.integers(1, 29, n),
            "sched_dep_time": rng.integers(500, 2300, n),
            "sched_arr_time": rng.integers(500, 2359, n),
            "distance": rng.integers(100, 2500, n),
        }
        | {column: rng.normal(10, 3, n) for column in flights.WEATHER_COLUMNS}
    )
    label = (frame["sched_dep_time"] > 1700) | (frame["precip"] > 13)
    return frame, label.astype(int)


@pytest.fixture(scope="module")
def fitted():
    """The flights model fitted once on raw_frame(): (model, rows, label)."""
    frame, label = raw_frame()
    columns = SETTINGS.features.columns
    model = flights.build_model(
        features=SETTINGS.features, task=SETTINGS.task, params=PARAMS, seed=1
    )
    model.fit(frame[columns], label)
    return model, frame[columns], label


def test_raw_columns_are_fixed_and_leak_free():
    columns = SETTINGS.features.columns
    assert columns[:3] == ["carrier", "origin", "dest"]
    assert {"year", "month", "day", "sched_dep_time", "sched_arr_time"} <= set(columns)
    assert set(flights.WEATHER_COLUMNS) <= set(columns)
    assert not set(columns) & set(LEAKY_COLUMNS)
    assert SETTINGS.data.label not in columns


def test_build_features_derives_and_orders_columns():
    frame = pd.DataFrame(
        {
            "carrier": ["AA"],
            "year": [2013],
            "month": [1],
            "day": [1],  # a Tuesday
            "sched_dep_time": [1530],
            "sched_arr_time": [5],
            "distance": [100],
        }
    )
    out = flights.build_features(
        frame,
        categorical=["carrier"],
        numeric=["month", "year", "day", "sched_dep_time", "sched_arr_time", "distance"],
    )
    assert list(out.columns) == [
        "carrier", "month", "distance", "day_of_week", "dep_minutes", "arr_minutes",
    ]  # fmt: skip
    assert out.iloc[0].tolist() == ["AA", 1.0, 100.0, 1.0, 930.0, 5.0]
    assert all(out[name].dtype == "float64" for name in out.columns[1:])


def test_a_raw_column_not_listed_derives_nothing():
    frame = pd.DataFrame({"carrier": ["AA"], "sched_dep_time": [1530], "distance": [100]})
    out = flights.build_features(frame, categorical=["carrier"], numeric=["sched_dep_time"])
    assert list(out.columns) == ["carrier", "dep_minutes"]
    assert out["dep_minutes"].tolist() == [930.0]


def test_feature_step_names_its_output_columns():
    step = flights.FlightFeatures(SETTINGS.features.categorical, SETTINGS.features.numeric)
    frame, _ = raw_frame(5)
    names = list(step.get_feature_names_out())
    assert names == list(step.fit(frame).transform(frame).columns)
    assert {"day_of_week", "dep_minutes", "arr_minutes"} <= set(names)
    assert not {"year", "day", "sched_dep_time", "sched_arr_time"} & set(names)


def test_an_impossible_date_is_refused_not_turned_into_a_missing_weekday(fitted):
    model, rows, _ = fitted
    spoilt = rows.head(3).copy()
    spoilt.loc[spoilt.index[1], ["month", "day"]] = [2, 30]
    with pytest.raises(InputRuleError) as refused:
        model.predict(spoilt)
    assert "1 of 3 row(s) have a year/month/day that is no calendar date (e.g. 2013-2-30)" in (
        refused.value.message
    )
    assert refused.value.get_http_status_code() == 400  # what the scoring server answers
    tables = {"flights": spoilt.assign(time_hour="2013-01-01T10:00:00Z"), "weather": pd.DataFrame(
        columns=["origin", "time_hour", *flights.WEATHER_COLUMNS])}  # fmt: skip
    with pytest.raises(DataError, match="flights: 1 of 3 row.* no calendar date"):
        flights.records(tables, PARAMS)


def test_model_learns_and_ignores_unknown_categories(fitted):
    model, rows, label = fitted
    assert (model.predict(rows) == label).mean() > 0.8
    unseen = rows.head(3).assign(carrier="ZZ", dest=None)
    probability = model.predict_proba(unseen)[:, 1]
    assert np.isfinite(probability).all()


def test_threshold_lives_in_the_model(fitted):
    model, rows, _ = fitted
    probability = model.predict_proba(rows)[:, 1]
    expected = (probability >= PARAMS.threshold).astype(int)
    assert (model.predict(rows) == expected).all()


def test_skops_needs_only_the_listed_trusted_types(fitted):
    model, rows, _ = fitted
    dumped = skops.io.dumps(model)
    assert set(skops.io.get_untrusted_types(data=dumped)) <= set(flights.TRUSTED_TYPES)
    # skops imports problems.flights.problem by name: bind `problems` to this project again
    # (a test of another project in this worker may have bound it to that project's folder)
    importable(ROOT)
    loaded = skops.io.loads(dumped, trusted=flights.TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))
