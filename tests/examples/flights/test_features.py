from pathlib import Path

import numpy as np
import pandas as pd
import skops.io

from ml_project import data, features
from ml_project.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings("dev", root=ROOT)


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
        | {column: rng.normal(10, 3, n) for column in data.WEATHER_COLUMNS}
    )
    label = (frame["sched_dep_time"] > 1700) | (frame["precip"] > 13)
    return frame, label.astype(int)


def test_raw_columns_are_fixed_and_leak_free():
    columns = features.raw_columns(SETTINGS.features)
    assert columns[:3] == ["carrier", "origin", "dest"]
    assert {"year", "month", "day", "sched_dep_time", "sched_arr_time"} <= set(columns)
    assert not set(columns) & set(data.LEAKY_COLUMNS)
    assert "arr_delay" not in columns and data.LABEL not in columns
    assert columns == features.raw_columns(SETTINGS.features)


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
    out = features.build_features(
        frame,
        categorical=["carrier"],
        numeric=["day_of_week", "dep_minutes", "arr_minutes", "distance"],
    )
    assert list(out.columns) == ["carrier", "day_of_week", "dep_minutes", "arr_minutes", "distance"]
    assert out.iloc[0].tolist() == ["AA", 1.0, 930.0, 5.0, 100.0]
    assert all(out[name].dtype == "float64" for name in out.columns[1:])


def test_model_learns_and_ignores_unknown_categories():
    frame, label = raw_frame()
    model = features.build_model(features=SETTINGS.features, params=SETTINGS.model, seed=1)
    columns = features.raw_columns(SETTINGS.features)
    model.fit(frame[columns], label)
    assert (model.predict(frame[columns]) == label).mean() > 0.8
    unseen = frame[columns].head(3).assign(carrier="ZZ", dest=None)
    probability = model.predict_proba(unseen)[:, 1]
    assert np.isfinite(probability).all()


def test_threshold_lives_in_the_model():
    frame, label = raw_frame()
    columns = features.raw_columns(SETTINGS.features)
    model = features.build_model(features=SETTINGS.features, params=SETTINGS.model, seed=1)
    model.fit(frame[columns], label)
    probability = model.predict_proba(frame[columns])[:, 1]
    expected = (probability >= SETTINGS.model.threshold).astype(int)
    assert (model.predict(frame[columns]) == expected).all()


def test_skops_needs_only_the_listed_trusted_types():
    frame, label = raw_frame()
    columns = features.raw_columns(SETTINGS.features)
    model = features.build_model(features=SETTINGS.features, params=SETTINGS.model, seed=1)
    model.fit(frame[columns], label)
    dumped = skops.io.dumps(model)
    assert set(skops.io.get_untrusted_types(data=dumped)) <= set(features.SKOPS_TRUSTED_TYPES)
    loaded = skops.io.loads(dumped, trusted=features.SKOPS_TRUSTED_TYPES)
    np.testing.assert_array_equal(
        loaded.predict_proba(frame[columns]), model.predict_proba(frame[columns])
    )
