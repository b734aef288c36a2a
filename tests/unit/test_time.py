"""Time as a column kind: the time-ordered split, the model's ISO text, the derived numbers,
and drift on a time feature (tiny frames)."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml_project import data, drift, estimators, records
from ml_project.errors import DataError
from ml_project.settings import FeatureSettings, MonitorSettings
from ml_project.time_features import PARTS, TimeFeatures

KEYS = ["id"]


def timed(n=20, *, start="2024-01-01"):
    """n rows a day apart, ISO text, ids scrambled so that key order is not time order."""
    days = pd.date_range(start, periods=n, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "id": (np.arange(n) * 7919) % 1009,
            "when": days.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x": np.arange(n, dtype=float),
        }
    )


def split(frame, *, seed=1, fraction=0.25, column="when"):
    return data.split_rows(
        frame, test_fraction=fraction, key_columns=KEYS, seed=seed, time_column=column
    )


def test_a_time_split_holds_out_the_newest_rows():
    frame = timed(20)
    parts = split(frame)
    assert len(parts.test) == 5 and len(parts.train) == 15
    assert sorted(parts.test["x"]) == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert parts.cutoff == "2024-01-16T00:00:00Z"
    assert parts.train["when"].max() < parts.test["when"].min()


def test_the_held_out_count_is_rounded_up():
    assert len(split(timed(10), fraction=0.21).test) == 3  # ceil(2.1)


def test_a_time_split_does_not_depend_on_row_order():
    frame = timed(30)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert set(split(frame).test["id"]) == set(split(shuffled).test["id"])


def test_ties_at_the_cut_are_broken_by_the_seeded_key_hash():
    frame = pd.DataFrame({"id": np.arange(40), "when": ["2024-01-01"] * 20 + ["2024-02-01"] * 20})
    held = {seed: set(split(frame, seed=seed, fraction=0.25).test["id"]) for seed in range(6)}
    assert all(ids <= set(range(20, 40)) and len(ids) == 10 for ids in held.values())
    assert held[1] == set(split(frame, seed=1, fraction=0.25).test["id"])  # deterministic
    assert len({frozenset(ids) for ids in held.values()}) > 1  # the seed picks among ties
    draw = data.hash_fraction(frame, KEYS, seed=1, purpose="split")
    newest = np.argsort(draw[20:])[-10:] + 20  # the ties with the highest draw
    assert held[1] == set(frame["id"][newest])


def test_without_ties_the_seed_does_not_matter():
    frame = timed(25)
    assert {frozenset(split(frame, seed=seed).test["id"]) for seed in range(5)} == {
        frozenset(split(frame, seed=0).test["id"])
    }


def test_a_time_split_reads_native_datetimes_and_numbers():
    frame = timed(12)
    native = frame.assign(when=pd.to_datetime(frame["when"]))  # tz-aware
    naive = frame.assign(when=pd.to_datetime(frame["when"]).dt.tz_localize(None))
    years = frame.assign(when=2000 + frame["x"].astype(int))
    expected = set(split(frame).test["id"])
    for other in (native, naive, years):
        assert set(split(other).test["id"]) == expected
    assert split(native).cutoff == split(frame).cutoff == "2024-01-10T00:00:00Z"
    assert split(naive).cutoff == "2024-01-10T00:00:00"
    assert split(years).cutoff == "2009"


def test_offsets_are_compared_as_instants():
    frame = pd.DataFrame(
        {"id": [1, 2, 3, 4], "when": ["2024-01-01T10:00:00+05:00", "2024-01-01T06:00:00Z",
                                     "2024-01-01T07:00:00+00:00", "2024-01-01T01:00:00-08:00"]}
    )  # fmt: skip  # instants 05:00, 06:00, 07:00, 09:00 UTC
    assert list(split(frame, fraction=0.5).test["id"].sort_values()) == [3, 4]


def test_rows_without_a_time_stay_in_training():
    frame = timed(8)
    frame.loc[[6, 7], "when"] = None
    parts = split(frame, fraction=0.25)
    assert sorted(parts.test["x"]) == [4.0, 5.0]


def test_text_that_is_not_a_time_is_refused_naming_the_column():
    frame = timed(6)
    frame.loc[3, "when"] = "last tuesday"
    with pytest.raises(DataError, match=r"time column when .*'last tuesday'"):
        split(frame)


def test_without_a_time_column_the_hash_split_is_unchanged():
    frame = timed(50)
    plain = data.split_rows(frame, test_fraction=0.3, key_columns=KEYS, seed=4)
    named = data.split_rows(frame, test_fraction=0.3, key_columns=KEYS, seed=4, time_column=None)
    pd.testing.assert_frame_equal(plain.test, named.test)
    assert plain.cutoff is None


def features_only(**features):
    """Settings holding only their features: all that records.model_input reads."""
    kinds = {"categorical": (), "numeric": (), **features}
    return SimpleNamespace(features=FeatureSettings(**kinds))


def test_model_input_turns_timestamps_into_iso_text():
    aware = pd.Series(pd.to_datetime(["2024-03-01T12:30:00+02:00", None], utc=True))
    frame = pd.DataFrame(
        {
            "aware": aware.dt.tz_convert("Europe/Paris"),
            "naive": pd.to_datetime(["2024-03-01 12:30:05", None]),
            "text": ["2024-03-01T10:00:00+01:00", None],
            "n": [1, 2],
        }
    )
    settings = features_only(numeric=("n",), datetime=("aware", "naive", "text"))
    typed = records.model_input(settings, frame)
    assert typed["aware"].tolist() == ["2024-03-01T10:30:00Z", None]
    assert typed["naive"].tolist() == ["2024-03-01T12:30:05", None]
    assert typed["text"].tolist() == ["2024-03-01T10:00:00+01:00", None]
    assert typed["n"].dtype == "float64"
    assert list(typed.columns) == ["n", "aware", "naive", "text"]


def test_typed_input_reads_native_datetimes_as_the_model_does():
    from ml_project.predict import typed_input

    frame = pd.DataFrame({"when": pd.to_datetime(["2024-03-01 12:30:00", None], utc=True)})
    typed = typed_input(frame, {"when": "string"}, source="batch.parquet")
    assert typed["when"].tolist() == ["2024-03-01T12:30:00Z", None]


def test_time_features_derive_calendar_parts_and_days_since_1970():
    frame = pd.DataFrame({"when": ["2024-03-01T13:00:00Z", "1970-01-02T12:00:00", None, "x"]})
    step = TimeFeatures().fit(frame)
    out = step.transform(frame)
    assert out.shape == (4, len(PARTS)) and out.dtype == np.float64
    assert out[0].tolist() == [2024, 3, 1, 4, 13, 61, pytest.approx(19783 + 13 / 24)]
    assert out[1].tolist() == [1970, 1, 2, 4, 12, 2, 1.5]
    assert np.isnan(out[2]).all() and np.isnan(out[3]).all()  # missing, unparseable: NaN
    assert list(step.get_feature_names_out())[:2] == ["when_year", "when_month"]
    assert list(step.get_feature_names_out())[-1] == "when_epoch_days"


def test_time_features_read_native_datetimes_and_offsets_as_utc():
    text = pd.DataFrame({"when": ["2024-03-01T01:00:00+02:00"]})
    native = pd.DataFrame({"when": pd.to_datetime(["2024-02-29T23:00:00Z"])})
    step = TimeFeatures().fit(text)
    assert step.transform(text).tolist() == step.transform(native).tolist()
    assert step.transform(text)[0][:3].tolist() == [2024, 2, 29]


def test_the_encoder_keeps_categoricals_first_and_names_the_derived_features():
    frame = pd.DataFrame(
        {"c": ["a", "b", "a"], "n": [1.0, 2.0, 3.0], "t": ["2024-01-01", "2025-06-30", None]}
    )
    step = estimators.encoder(["c"], ["t"]).fit(frame)
    names = list(step.get_feature_names_out())
    assert names == ["c", *[f"t_{part}" for part in PARTS], "n"]
    out = step.transform(frame)
    assert out[:, 0].tolist() == [0.0, 1.0, 0.0] and out[:, -1].tolist() == [1.0, 2.0, 3.0]
    assert out[1, 1] == 2025.0


def test_the_default_model_learns_from_a_timestamp_and_loads_with_skops():
    import skops.io

    from ml_project import loading

    rng = np.random.default_rng(0)
    days = pd.date_range("2020-01-01", periods=300, freq="D")
    frame = pd.DataFrame(
        {"c": rng.choice(["a", "b"], 300), "n": rng.normal(size=300),
         "t": days.strftime("%Y-%m-%dT%H:%M:%S")}
    )  # fmt: skip
    target = (days.month.to_numpy() >= 6).astype(float) * 5 + frame["n"]
    features = FeatureSettings(categorical=("c",), numeric=("n",), datetime=("t",))
    model = estimators.tabular_model(
        features=features, task="regression", params={"max_iter": 30}, seed=0
    ).fit(frame[features.columns], target)
    assert np.corrcoef(model.predict(frame[features.columns]), target)[0, 1] > 0.9
    trusted = loading.trusted_types(SimpleNamespace(trusted_types=[]))
    loaded = skops.io.loads(skops.io.dumps(model), trusted=trusted)
    assert np.array_equal(
        loaded.predict(frame[features.columns]), model.predict(frame[features.columns])
    )


def monitor_settings():
    return MonitorSettings.model_validate(
        {"bins": 4, "max_categories": 5, "psi_warn": 0.1, "psi_alert": 0.2,
         "null_rate_change": 0.1, "max_quality_drop": 0.1, "min_rows": 1, "ignore": []}
    )  # fmt: skip


def test_a_time_feature_gets_a_range_no_psi_and_never_drifts_by_its_values():
    train = pd.DataFrame(
        {"when": pd.date_range("2023-01-01", periods=50, freq="D").strftime("%Y-%m-%dT%H:%M:%SZ"),
         "when_year": 2023.0, "x": np.linspace(0, 1, 50)}
    )  # fmt: skip
    settings = monitor_settings()
    profile = drift.reference_profile(
        train, np.linspace(0, 1, 50), categorical=[], settings=settings,
        times=["when", "when_year"],
    )  # fmt: skip
    assert profile["features"]["when"]["kind"] == "time"
    batch = pd.DataFrame(
        {"when": pd.date_range("2025-06-01", periods=20, freq="D").strftime("%Y-%m-%dT%H:%M:%SZ"),
         "when_year": 2025.0, "x": np.linspace(0, 1, 20)}
    )  # fmt: skip
    counts = drift.BatchCounts(profile)
    counts.add(batch, np.linspace(0, 1, 20))
    report = drift.assess(counts, settings)
    rows = {item.feature: item for item in report.features}
    assert rows["when"].status == "ok" and rows["when"].psi == 0.0
    assert rows["when"].reference_range == ("2023-01-01T00:00:00Z", "2023-02-19T00:00:00Z")
    assert rows["when"].batch_range == ("2025-06-01T00:00:00Z", "2025-06-20T00:00:00Z")
    assert rows["when_year"].batch_range == ("2025", "2025") and rows["when_year"].status == "ok"
    assert report.status == "ok" and not report.reasons
    notes = [row["note"] for row in drift.report_data(report)["features"]]
    assert drift.report_data(report)["prediction"]["note"] == ""
    assert any("batch 2025-06-01T00:00:00Z .. 2025-06-20T00:00:00Z" in note for note in notes)


def test_a_time_feature_that_goes_missing_still_raises_its_null_rate():
    train = pd.DataFrame({"when": ["2024-01-01T00:00:00Z"] * 20})
    settings = monitor_settings()
    profile = drift.reference_profile(
        train, np.zeros(20), categorical=[], settings=settings, times=["when"]
    )
    counts = drift.BatchCounts(profile)
    counts.add(pd.DataFrame({"when": [None] * 10}), np.zeros(10))
    report = drift.assess(counts, settings)
    assert report.features[0].status == "drift" and report.features[0].batch_range == ("-", "-")
    assert any("null rate of when" in reason for reason in report.reasons)
    assert not math.isnan(report.features[0].psi)


def _split_settings(task="multiclass"):
    """Just what records.check_split reads."""
    return SimpleNamespace(
        env="dev",
        task=task,
        data=SimpleNamespace(label="y", sample_fraction=1.0),
        split=SimpleNamespace(test_fraction=0.25, min_class_rows=1, time_column="when"),
    )


def test_a_time_split_may_hold_out_a_period_without_a_class():
    """Snow falls in the older winters only: the newest quarter lacks it, and that is a fact of
    the period, not a bad split. A class only in the newest rows is still refused: the model
    never saw it."""
    frame = timed(40).assign(y=["snow"] * 8 + ["sun", "rain"] * 16)
    cut = split(frame, fraction=0.25)
    records.check_split(_split_settings(), cut, labelled=len(frame))
    late = timed(40).assign(y=["sun", "rain"] * 16 + ["snow"] * 8)
    with pytest.raises(DataError, match="snow of the label y are missing from the train rows"):
        records.check_split(_split_settings(), split(late, fraction=0.25), labelled=40)


def test_a_class_with_one_train_row_is_refused_before_fitting():
    """Under a time split a class may be nearly all in the newest rows: one train row cannot be
    learnt (nor stratified into early stopping's validation rows)."""
    frame = timed(40).assign(y=["sun", "rain"] * 14 + ["snow", "sun", "rain", "sun"] + ["snow"] * 8)
    with pytest.raises(DataError, match=r"snow \(1 row\) of the label y have fewer than 2"):
        records.check_split(_split_settings(), split(frame, fraction=0.25), labelled=40)
