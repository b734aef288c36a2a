"""The drift steps on tiny arrays and frames: PSI, bins, profiles, counts and the verdict."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ml_project import drift, metrics
from ml_project.drift import report_data, shown
from ml_project.errors import ConfigError, DataError
from ml_project.monitor import Outcomes, class_index, class_note, live_quality
from ml_project.settings import MonitorSettings, deep_merge, read_yaml
from ml_project.views import quality_line, summary_text

ROOT = Path(__file__).resolve().parents[2]
# The project's own monitor settings (environments/base.yaml under dev.yaml) and a quality limit,
# which each problem sets in its metric's units: no problem needed.
MONITOR = deep_merge(
    read_yaml(ROOT / "environments" / "base.yaml")["monitor"],
    read_yaml(ROOT / "environments" / "dev.yaml").get("monitor", {}),
) | {"max_quality_drop": 0.05}
SETTINGS = MonitorSettings.model_validate(MONITOR)


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
    counts = drift.category_counts(["red", "blue", None, "pink", "red", np.nan], ["red", "blue"])
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
            "colour": generator.choice(["red", "green", "blue"], size=rows, p=[0.5, 0.3, 0.2]),
            "size": generator.gamma(2.0, 500.0, size=rows),
            "weight": generator.normal(60.0, 15.0, size=rows),
        }
    )
    for name, change in changes.items():
        data[name] = change(data)
    return data


def profile_of(features: pd.DataFrame, score=None) -> dict:
    score = np.linspace(0, 1, len(features)) if score is None else score
    return drift.reference_profile(features, score, categorical=["colour"], settings=SETTINGS)


def assess(profile, features, score=None, settings=SETTINGS, quality=None):
    counts = drift.BatchCounts(profile)
    score = np.linspace(0, 1, len(features)) if score is None else score
    counts.add(features, score)
    return drift.assess(counts, settings, quality=quality)


def test_the_profile_is_json_and_describes_every_feature():
    profile = profile_of(frame(2000))
    assert json.loads(json.dumps(profile)) == profile
    assert set(profile["features"]) == {"colour", "size", "weight"}
    assert profile["features"]["colour"]["categories"] == ["red", "green", "blue"]
    assert len(profile["features"]["weight"]["edges"]) == SETTINGS.bins - 1
    assert sum(profile["features"]["weight"]["proportions"]) == pytest.approx(1.0)
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
        ({"size": lambda f: f["size"] * 3}, "size"),
        ({"weight": lambda f: f["weight"] - 30}, "weight"),
        ({"colour": lambda f: f["colour"].replace("blue", "red")}, "colour"),
        ({"colour": lambda f: f["colour"].replace("blue", "pink")}, "colour"),  # a new category
    ],
)
def test_an_injected_shift_is_named(change, feature):
    report = assess(profile_of(frame(5000)), frame(3000, seed=1, **change))
    assert report.status == "drift"
    assert report.features[0].feature == feature
    assert [item.feature for item in report.features if item.status == "drift"] == [feature]
    assert report.reasons[0].startswith(f"PSI of {feature} ")


def test_a_null_rate_change_is_drift_even_without_psi():
    nulls = {"weight": lambda f: f["weight"].where(np.arange(len(f)) % 4 != 0)}
    report = assess(profile_of(frame(5000)), frame(3000, seed=1, **nulls))
    weight = next(item for item in report.features if item.feature == "weight")
    assert weight.status == "drift" and weight.psi < SETTINGS.psi_warn
    assert weight.null_rate_change == pytest.approx(0.25)
    assert report.reasons == ("null rate of weight 0.0% -> 25.0% (limit 10.0%)",)


def test_score_drift_is_a_reason():
    report = assess(profile_of(frame(5000)), frame(3000, seed=1), score=np.full(3000, 0.9))
    assert report.prediction.status == "drift" and report.prediction.feature == "score"
    assert report.reasons[0].startswith("PSI of score ")


def test_a_feature_named_like_the_score_is_counted_apart():
    features = frame(2000).rename(columns={"size": drift.PREDICTION})
    profile = profile_of(features, score=np.linspace(0, 1, 2000))
    report = assess(profile, features.assign(score=features["score"] * 3))
    assert report.features[0].feature == "score" and report.features[0].status == "drift"
    assert report.prediction.psi == 0.0  # the model's score did not move


def test_regression_scores_are_profiled_as_values():
    values = np.random.default_rng(0).normal(150.0, 40.0, 2000)  # a regressor's predictions
    profile = profile_of(frame(2000), score=values)
    assert profile["prediction"]["edges"][0] > 50  # the value's own quantiles, not [0, 1]
    assert assess(profile, frame(2000), score=values).prediction.psi == 0.0
    assert assess(profile, frame(2000), score=values + 80).prediction.status == "drift"


def test_ignored_features_are_reported_but_never_drift():
    settings = SETTINGS.model_copy(update={"ignore": ("size",)})
    shifted = frame(3000, seed=1, size=lambda f: f["size"] * 3)
    report = assess(profile_of(frame(5000)), shifted, settings=settings)
    assert report.features[0].feature == "size" and report.features[0].status == "ignored"
    assert report.status == "ok" and report.reasons == ()


def test_counting_in_chunks_equals_counting_at_once():
    profile, batch = profile_of(frame(5000)), frame(3001, seed=2)
    score = np.linspace(0, 1, len(batch))
    whole, chunked = drift.BatchCounts(profile), drift.BatchCounts(profile)
    whole.add(batch, score)
    for start in range(0, len(batch), 700):
        chunked.add(batch.iloc[start : start + 700], score[start : start + 700])
    assert chunked.rows == whole.rows == 3001
    for name, tally in whole.tallies.items():
        assert chunked.tallies[name].counts.tolist() == tally.counts.tolist()
    assert chunked.score.counts.tolist() == whole.score.counts.tolist()
    assert whole.score.rows == 3001


def quality(live, *, metric="roc_auc", recorded=0.74, higher=True, note="", units=False):
    return drift.Quality(
        metric=metric,
        higher_is_better=higher,
        live=live,
        recorded=recorded,
        max_drop=SETTINGS.max_quality_drop,
        rows=100,
        unlabelled_dropped=3,
        live_metrics={metric: live},
        note=note,
        units=units,
    )


def test_a_quality_drop_beyond_the_limit_is_drift():
    features = frame(2000)
    assert assess(profile_of(features), features, quality=quality(0.72)).status == "ok"
    assert assess(profile_of(features), features, quality=quality(0.90)).status == "ok"
    report = assess(profile_of(features), features, quality=quality(0.60))
    assert report.status == "drift"
    assert report.reasons == (
        "live roc_auc 0.6000 is 0.1400 below the recorded 0.7400 (limit 0.05: "
        "monitor.max_quality_drop 0.05) on 100 labelled rows",
    )


def test_a_lower_is_better_metric_drops_upwards():
    rising = quality(1.30, metric="rmse", recorded=1.20, higher=False)
    assert rising.drop == pytest.approx(0.10) and rising.status == "drift"
    assert "1.3000 is 0.1000 above the recorded 1.2000" in rising.reason()
    falling = quality(1.00, metric="rmse", recorded=1.20, higher=False)
    assert falling.drop == pytest.approx(-0.20) and falling.status == "ok"


def test_the_quality_drop_of_a_metric_with_units_is_a_fraction_of_the_recorded_value():
    """max_quality_drop 0.05 of a recorded rmse of 200: up to 210 is no drift."""
    within = quality(209.0, metric="rmse", recorded=200.0, higher=False, units=True)
    assert within.allowed == pytest.approx(10.0) and within.status == "ok"
    beyond = quality(211.0, metric="rmse", recorded=200.0, higher=False, units=True)
    assert beyond.status == "drift"
    assert "(limit 10: monitor.max_quality_drop 0.05 of the recorded value)" in beyond.reason()
    assert (
        drift.quality_data(beyond)["relative"] is True
        and drift.quality_data(beyond)["allowed"] == 10.0
    )


def test_an_undefined_live_metric_is_a_warning_not_drift():
    undefined = quality(math.nan, note="the labelled rows hold one class (yes)")
    assert undefined.status == "undefined"
    report = assess(profile_of(frame(2000)), frame(2000), quality=undefined)
    assert report.status == "warn" and report.reasons == ()
    as_dict = report_data(report)["quality"]
    assert as_dict["live"] is None and as_dict["drop"] is None
    assert as_dict["live_metrics"] == {"roc_auc": None}
    assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict  # strict JSON
    line = quality_line(as_dict)
    assert line.startswith("live roc_auc undefined on 100 labelled rows (3 without a label")
    assert line.endswith("; the labelled rows hold one class (yes)")


def test_the_class_note_names_one_class_and_unknown_classes():
    none = pd.Series(dtype="int64")
    assert class_note("binary", np.array(["yes", "no", "yes"]), none) == ""
    assert "one class (yes)" in class_note("binary", np.array(["yes", "yes"]), none)
    note = class_note("binary", np.array(["yes", "no"]), pd.Series({"maybe": 2}))
    assert note == (
        "2 labelled rows hold classes the model never learnt (maybe): left out of the live metrics"
    )
    many = pd.Series({f"c{n}": 1 for n in range(12)})
    assert "(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 and 2 more)" in class_note(
        "multiclass", np.array(["a", "b"]), many
    )
    assert class_note("regression", np.array([1.0, 1.0]), none) == ""


def test_a_label_is_its_class_by_value_or_by_text():
    assert class_index(np.array([1.0, 0.0, 2.0]), np.array([0, 1])).tolist() == [1, 0, -1]
    as_text = np.array(["1", "0", "x"], dtype=object)  # a chunk that read the labels as text
    assert class_index(as_text, np.array([0, 1])).tolist() == [1, 0, -1]
    named = np.array(["yes", "maybe", "no"], dtype=object)
    assert class_index(named, np.array(["no", "yes"])).tolist() == [1, -1, 0]


LABELLED = SimpleNamespace(  # what live_quality reads of the settings
    gate=SimpleNamespace(primary_metric="accuracy"),
    data=SimpleNamespace(label="target"),
    monitor=SETTINGS,
)


def outcomes_of(labels, predicted, classes):
    probabilities = np.array([[float(p == c) for c in classes] for p in predicted])
    said = metrics.Predictions(np.array(predicted), probabilities, np.array(classes))
    return Outcomes(np.array(labels, dtype=object), said, unlabelled=1)


def test_labels_of_unknown_classes_are_counted_apart_and_left_out():
    outcomes = outcomes_of(
        ["a", "b", "x", "a", "y", "x"], ["a", "b", "a", "b", "a", "b"], ["a", "b"]
    )
    quality = live_quality(
        outcomes, {"test_accuracy": 0.8}, task="multiclass", settings=LABELLED,
        source="batch.csv", model_uri="models:/m/1",
    )  # fmt: skip
    assert quality.rows == 3 and quality.unlabelled_dropped == 1
    assert quality.live == pytest.approx(2 / 3)  # a, b right, a wrong; x and y not counted
    assert quality.unknown_class_rows == 3 and quality.unknown_classes == ("x", "y")
    assert drift.quality_data(quality)["unknown_classes"] == ["x", "y"]
    assert quality.note == (
        "3 labelled rows hold classes the model never learnt (x, y): left out of the live metrics"
    )
    assert "left out of the live metrics" in quality_line(drift.quality_data(quality))


def test_many_labels_of_unknown_classes_are_drift():
    """45% of the labelled rows in a class the model never learnt: the live metrics cannot see
    them, so their share is a drift reason of its own (monitor.max_unknown_classes)."""
    few = live_quality(
        outcomes_of(["a"] * 19 + ["x"], ["a"] * 20, ["a", "b"]), {"test_accuracy": 0.9},
        task="multiclass", settings=LABELLED, source="b.csv", model_uri="models:/m/1",
    )  # fmt: skip
    many = live_quality(
        outcomes_of(["a"] * 11 + ["x"] * 9, ["a"] * 20, ["a", "b"]), {"test_accuracy": 0.9},
        task="multiclass", settings=LABELLED, source="b.csv", model_uri="models:/m/1",
    )  # fmt: skip
    assert few.status == many.status == "ok"  # the known rows are all right
    reference = profile_of(frame(2000))
    assert assess(reference, frame(2000, seed=1), quality=few).reasons == ()
    (reason,) = assess(reference, frame(2000, seed=1), quality=many).reasons
    assert reason == (
        "9 of 20 labelled rows (45.0%) hold classes the model never learnt (x), more than "
        "monitor.max_unknown_classes 5.0%"
    )


def test_labels_all_of_unknown_classes_are_refused():
    outcomes = outcomes_of(["x", "y"], ["a", "b"], ["a", "b"])
    with pytest.raises(DataError, match=r"none of its 2 labelled rows holds a class the model"):
        live_quality(
            outcomes, {"test_accuracy": 0.8}, task="multiclass", settings=LABELLED,
            source="batch.csv", model_uri="models:/m/1",
        )  # fmt: skip


def test_a_regression_label_is_never_an_unknown_class():
    said = metrics.Predictions(np.array([1.0, 2.0, 50.0]))
    outcomes = Outcomes(np.array([1.0, 2.0, 99.0]), said, unlabelled=0)
    settings = SimpleNamespace(**{**vars(LABELLED), "gate": SimpleNamespace(primary_metric="mae")})
    quality = live_quality(
        outcomes, {"test_mae": 1.0}, task="regression", settings=settings,
        source="batch.csv", model_uri="models:/m/1",
    )  # fmt: skip
    assert quality.rows == 3 and quality.unknown_class_rows == 0
    assert quality.live == pytest.approx(49 / 3)


def test_bin_labels_name_the_edges():
    numeric = {"kind": "numeric", "edges": [1.0, 2.5]}
    assert drift.bin_labels(numeric) == ["<= 1", "(1, 2.5]", "> 2.5"]
    assert drift.bin_labels({"kind": "categorical", "categories": ["AA"]}) == ["AA", "other"]


def test_warn_above_alert_is_a_configuration_error():
    with pytest.raises(ValidationError, match="psi_warn 0.5 is above psi_alert 0.25"):
        MonitorSettings.model_validate({**MONITOR, "psi_warn": 0.5})


def test_the_summary_table_as_text_and_markdown():
    features = frame(1000)
    shifted = frame(1000, seed=1, weight=lambda f: f["weight"] + 40)
    report = assess(profile_of(features), shifted, quality=quality(0.80))
    result = {
        "rows": 1000,
        "input": "batch.parquet",
        "model_name": "m",
        "model_version": "3",
        "env": "dev",
        "run_id": "abc",
        "experiment_id": "2",
        **report_data(report),
    }
    text = summary_text(result)
    assert text.splitlines()[0].endswith("(env dev): DRIFT")
    assert text.splitlines()[2].split()[:2] == ["weight", "numeric"]
    assert "  score    prediction" in text
    assert (
        "live roc_auc 0.8000 on 100 labelled rows (3 without a label dropped) vs recorded "
        "0.7400 (better by 0.0600, limit 0.05): ok"
    ) in text
    markdown = summary_text(result, markdown=True)
    assert "| weight | numeric |" in markdown and markdown.startswith("### Monitored 1000 rows")


def test_the_table_shows_the_worst_features_and_every_one_that_alerts():
    statuses = ["drift", "warn", "ok", "ok", "ok", "drift", "ignored", "warn"]
    assert shown(statuses, top=3) == [0, 1, 2, 5, 7]
    assert shown(statuses, top=10) == list(range(8))
    assert shown(["ok", "ok"], top=0) == []


def test_a_feature_drifting_on_nulls_alone_is_in_the_summary_past_the_top():
    """Thirteen features shifted a little (PSI under psi_warn), one whose null rate jumped at an
    unchanged distribution: its PSI ranks last, its status is drift, the summary shows it."""
    rng = np.random.default_rng(0)
    names = [f"n{index:02d}" for index in range(13)]
    training = pd.DataFrame({name: rng.normal(0, 1, 4000) for name in [*names, "gappy"]})
    batch = pd.DataFrame({name: rng.normal(0.25, 1, 3000) for name in names})
    batch["gappy"] = np.where(rng.random(3000) < 0.3, np.nan, rng.normal(0, 1, 3000))
    report = assess(profile_of(training), batch)
    rows = {item.feature: item for item in report.features}
    assert all(SETTINGS.psi_warn > rows[name].psi > rows["gappy"].psi for name in names)
    assert report.features[-1].feature == "gappy" and rows["gappy"].status == "drift"
    result = {
        "rows": 3000, "input": "batch.parquet", "model_name": "m", "model_version": "3",
        "env": "dev", "run_id": "abc", "experiment_id": "2", **report_data(report),
    }  # fmt: skip
    text = summary_text(result)
    table = [line.split()[0] for line in text.splitlines()[2:] if line.startswith("  n")]
    assert len(table) == 10  # the top ten by PSI ...
    assert any(line.split()[:2] == ["gappy", "numeric"] for line in text.splitlines())  # + it
    assert "3 more features with a lower PSI, none of them warning or drifting" in text
    assert "| gappy | numeric |" in summary_text(result, markdown=True)


def test_the_summary_counts_repeated_keys():
    features = frame(1000)
    report = assess(profile_of(features), features)
    result = {
        "rows": 1000, "input": "batch.parquet", "model_name": "m", "model_version": "3",
        "env": "dev", "run_id": "abc", "experiment_id": "2", **report_data(report),
        "duplicate_keys": {"columns": ["id"], "rows": 4, "example": "id=7"},
    }  # fmt: skip
    assert "4 rows repeat the key of an earlier row (id; e.g. id=7): every row is counted" in (
        summary_text(result)
    )
    result["duplicate_keys"]["rows"] = 0
    assert "repeat the key" not in summary_text(result)


def test_a_primary_metric_of_the_problems_own_is_measured_live():
    """gate.primary_metric may be a problem's METRICS entry: monitor measures it too, with its
    units (a fraction of the recorded value) and direction."""
    hits = metrics.Metric(
        "first_class_hits", higher_is_better=True,
        compute=lambda y, p: float(np.mean((np.asarray(y) == "a") & (p.prediction == "a"))),
    )  # fmt: skip
    settings = SimpleNamespace(
        gate=SimpleNamespace(primary_metric="first_class_hits"),
        data=LABELLED.data,
        monitor=SETTINGS,
    )
    outcomes = outcomes_of(["a", "b", "a", "a"], ["a", "b", "b", "a"], ["a", "b"])
    quality = live_quality(
        outcomes, {"test_first_class_hits": 0.75}, task="multiclass", settings=settings,
        source="batch.csv", model_uri="models:/m/1", extra={"first_class_hits": hits},
    )  # fmt: skip
    assert quality.metric == "first_class_hits" and quality.live == pytest.approx(0.5)
    assert quality.live_metrics["accuracy"] == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="has no value of"):
        live_quality(
            outcomes, {"test_first_class_hits": 0.75}, task="multiclass", settings=settings,
            source="batch.csv", model_uri="models:/m/1",
        )  # fmt: skip
