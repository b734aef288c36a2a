"""The drift steps on tiny arrays and frames: PSI, bins, profiles, counts and the verdict."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_project import drift
from ml_project.errors import ConfigError
from ml_project.monitor import summary_text
from ml_project.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings("dev", root=ROOT).monitor


def test_psi_of_identical_distributions_is_zero():
    assert drift.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert drift.psi([2, 3, 5], [20, 30, 50]) == pytest.approx(0.0, abs=1e-15)  # counts or shares


def test_psi_of_a_known_shift():
    expected = 0.25 * math.log(0.25 / 0.5) * -1 + 0.25 * math.log(0.75 / 0.5)
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert drift.psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(expected)  # symmetric


def test_an_empty_bin_counts_as_epsilon():
    eps = drift.EPSILON
    assert drift.psi([1, 0], [0, 1]) == pytest.approx(2 * (1 - eps) * math.log(1 / eps))
    assert drift.psi([1, 0], [0, 1], epsilon=0.01) == pytest.approx(2 * 0.99 * math.log(100))


def test_psi_is_zero_when_one_side_has_no_values():
    assert drift.psi([0, 0], [3, 4]) == 0.0


def test_quantile_edges_merge_ties_and_ignore_nulls():
    assert drift.quantile_edges(np.arange(1, 101), bins=4) == [25.75, 50.5, 75.25]
    assert drift.quantile_edges([1, 1, 1, 1, 2, np.nan], bins=4) == [1.0]
    assert drift.quantile_edges([np.nan, np.nan], bins=4) == []


def test_numeric_bins_are_closed_on_the_right():
    counts = drift.numeric_counts([0, 1, 1.5, 2, 3, np.nan], [1.0, 2.0])
    assert counts.tolist() == [2, 2, 1]


def test_categories_not_in_the_reference_go_to_other():
    counts = drift.category_counts(["AA", "UA", None, "ZZ", "AA", np.nan], ["AA", "UA"])
    assert counts.tolist() == [2, 1, 1]


def test_categorical_profile_keeps_the_most_frequent_with_ties_by_name():
    profile = drift.categorical_profile(["b", "a", "c", "a", "b", "c", "d", None], max_categories=2)
    assert profile["categories"] == ["a", "b"]
    assert profile["proportions"] == pytest.approx([2 / 7, 2 / 7, 3 / 7])
    assert profile["null_rate"] == pytest.approx(1 / 8)


def frame(rows: int, *, seed: int = 0, **changes) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "carrier": generator.choice(["AA", "B6", "UA"], size=rows, p=[0.5, 0.3, 0.2]),
            "distance": generator.gamma(2.0, 500.0, size=rows),
            "temp": generator.normal(60.0, 15.0, size=rows),
        }
    )
    for name, change in changes.items():
        data[name] = change(data)
    return data


def profile_of(features: pd.DataFrame, probability=None) -> dict:
    probability = np.linspace(0, 1, len(features)) if probability is None else probability
    return drift.reference_profile(
        features, probability, categorical=["carrier"], settings=SETTINGS
    )


def assess(profile, features, probability=None, settings=SETTINGS, quality=None):
    counts = drift.BatchCounts(profile)
    probability = np.linspace(0, 1, len(features)) if probability is None else probability
    counts.add(features, probability)
    return drift.assess(counts, settings, quality=quality)


def test_the_profile_is_json_and_describes_every_feature():
    profile = profile_of(frame(2000))
    assert json.loads(json.dumps(profile)) == profile
    assert set(profile["features"]) == {"carrier", "distance", "temp"}
    assert profile["features"]["carrier"]["categories"] == ["AA", "B6", "UA"]
    assert len(profile["features"]["temp"]["edges"]) == SETTINGS.bins - 1
    assert sum(profile["features"]["temp"]["proportions"]) == pytest.approx(1.0)
    assert profile["prediction"]["kind"] == "numeric"


def test_a_batch_from_the_same_distribution_does_not_drift():
    report = assess(profile_of(frame(5000)), frame(3000, seed=1))
    assert report.status == "ok" and report.reasons == ()
    assert max(item.psi for item in report.features) < SETTINGS.psi_warn


def test_the_same_rows_give_zero_psi():
    features = frame(1000)
    report = assess(profile_of(features), features)
    assert [item.psi for item in report.features] == [0.0, 0.0, 0.0]
    assert report.prediction.psi == 0.0


@pytest.mark.parametrize(
    "change, feature",
    [
        ({"distance": lambda f: f["distance"] * 3}, "distance"),
        ({"temp": lambda f: f["temp"] - 30}, "temp"),
        ({"carrier": lambda f: f["carrier"].replace("UA", "AA")}, "carrier"),
        ({"carrier": lambda f: f["carrier"].replace("UA", "XX")}, "carrier"),  # a new carrier
    ],
)
def test_an_injected_shift_is_named(change, feature):
    report = assess(profile_of(frame(5000)), frame(3000, seed=1, **change))
    assert report.status == "drift"
    assert report.features[0].feature == feature
    assert [item.feature for item in report.features if item.status == "drift"] == [feature]
    assert report.reasons[0].startswith(f"PSI of {feature} ")


def test_a_null_rate_change_is_drift_even_without_psi():
    nulls = {"temp": lambda f: f["temp"].where(np.arange(len(f)) % 4 != 0)}
    report = assess(profile_of(frame(5000)), frame(3000, seed=1, **nulls))
    temp = next(item for item in report.features if item.feature == "temp")
    assert temp.status == "drift" and temp.psi < SETTINGS.psi_warn
    assert temp.null_rate_change == pytest.approx(0.25)
    assert report.reasons == ("null rate of temp 0.0% -> 25.0% (limit 10.0%)",)


def test_prediction_drift_is_a_reason():
    report = assess(profile_of(frame(5000)), frame(3000, seed=1), probability=np.full(3000, 0.9))
    assert report.prediction.status == "drift"
    assert report.reasons[0].startswith("PSI of probability ")


def test_ignored_features_are_reported_but_never_drift():
    settings = SETTINGS.model_copy(update={"ignore": ("distance",)})
    shifted = frame(3000, seed=1, distance=lambda f: f["distance"] * 3)
    report = assess(profile_of(frame(5000)), shifted, settings=settings)
    assert report.features[0].feature == "distance" and report.features[0].status == "ignored"
    assert report.status == "ok" and report.reasons == ()


def test_counting_in_chunks_equals_counting_at_once():
    profile, batch = profile_of(frame(5000)), frame(3001, seed=2)
    probability = np.linspace(0, 1, len(batch))
    whole, chunked = drift.BatchCounts(profile), drift.BatchCounts(profile)
    whole.add(batch, probability)
    for start in range(0, len(batch), 700):
        chunked.add(batch.iloc[start : start + 700], probability[start : start + 700])
    assert chunked.rows == whole.rows == 3001
    for name, tally in whole.tallies.items():
        assert chunked.tallies[name].counts.tolist() == tally.counts.tolist()


def test_a_quality_drop_beyond_the_limit_is_drift():
    def quality(live):
        return drift.Quality(live, 0.74, SETTINGS.max_roc_auc_drop, 100, 3, {"roc_auc": live})

    features = frame(2000)
    assert assess(profile_of(features), features, quality=quality(0.72)).status == "ok"
    report = assess(profile_of(features), features, quality=quality(0.60))
    assert report.status == "drift"
    assert report.reasons == (
        "live ROC AUC 0.6000 is 0.1400 below the recorded 0.7400 (limit 0.05)",
    )


def test_bin_labels_name_the_edges():
    numeric = {"kind": "numeric", "edges": [1.0, 2.5]}
    assert drift.bin_labels(numeric) == ["<= 1", "(1, 2.5]", "> 2.5"]
    assert drift.bin_labels({"kind": "categorical", "categories": ["AA"]}) == ["AA", "other"]


def test_warn_above_alert_is_a_configuration_error():
    with pytest.raises(ConfigError, match="psi_warn 0.5 is above psi_alert 0.25"):
        load_settings("dev", overrides=("monitor.psi_warn=0.5",), root=ROOT)


def test_the_summary_table_as_text_and_markdown():
    features = frame(1000)
    report = assess(profile_of(features), frame(1000, seed=1, temp=lambda f: f["temp"] + 40))
    result = {
        "rows": 1000,
        "input": "batch.parquet",
        "model_name": "m",
        "model_version": "3",
        "env": "dev",
        "run_id": "abc",
        "experiment_id": "2",
        **report.as_dict(),
    }
    text = summary_text(result)
    assert text.splitlines()[0].endswith("(env dev): DRIFT")
    assert text.splitlines()[2].split()[:2] == ["temp", "numeric"]
    markdown = summary_text(result, markdown=True)
    assert "| temp | numeric |" in markdown and markdown.startswith("### Monitored 1000 rows")
