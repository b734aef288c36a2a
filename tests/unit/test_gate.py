"""The quality gate's rules (pure): floors, ceilings, the champion comparison, fail-closed."""

import json
import math

import pytest

from ml_project import gate
from ml_project.errors import ConfigError
from ml_project.settings import GateSettings, load_settings, validate_settings

GOOD = {"roc_auc": 0.75, "pr_auc": 0.52, "brier": 0.15, "log_loss": 0.47, "f1": 0.40}
DUMMY = {"roc_auc": 0.5, "pr_auc": 0.23, "brier": 0.18, "log_loss": 0.54, "f1": 0.0}


def judge(metrics, settings, *, baseline=None, rows=1000, dummy=DUMMY, task="binary"):
    return gate.judge(
        metrics, settings, task=task, rows=rows, baseline_metrics=dummy, baseline=baseline
    )


@pytest.fixture
def project(tmp_path):
    import shutil
    from pathlib import Path

    from tests.synthetic import write_problem

    shutil.copytree(Path(__file__).resolve().parents[2] / "environments", tmp_path / "environments")
    write_problem(tmp_path, "binary", rows=100)
    return tmp_path


def rules(**changes) -> GateSettings:
    values = {
        "floors": {"roc_auc": 0.70, "pr_auc": 0.45},
        "ceilings": {"brier": 0.17},
        "primary_metric": "roc_auc",
        "tolerance": 0.01,
        "compare_with_champion": True,
        "min_test_rows": 100,
    }
    return GateSettings(**{**values, **changes})


def baseline(challenger: float, champion: float, metric: str = "roc_auc") -> gate.Baseline:
    return gate.Baseline(
        version="3",
        champion_metrics={metric: champion},
        challenger_metrics={metric: challenger},
        rows=1000,
        excluded_rows=12,
    )


def failed(verdict: gate.Verdict) -> list[tuple[str, str]]:
    return [(check.name, check.metric) for check in verdict.checks if not check.passed]


def test_a_good_model_without_champion_passes_every_limit():
    verdict = judge(GOOD, rules(), baseline=None)
    assert verdict.passed and verdict.status == "passed"
    assert [(c.name, c.metric) for c in verdict.checks] == [
        ("rows", ""),
        ("floor", "pr_auc"),
        ("floor", "roc_auc"),
        ("ceiling", "brier"),
        ("baseline", "roc_auc"),
    ]
    assert verdict.reasons == [
        "1000 held-out rows >= gate.min_test_rows 100",
        "pr_auc 0.5200 >= floor 0.45",
        "roc_auc 0.7500 >= floor 0.7",
        "brier 0.1500 <= ceiling 0.17",
        "roc_auc 0.7500 beats 0.5000 of a model that ignores the features",
    ]


def test_each_floor_and_ceiling_can_fail_on_its_own():
    assert failed(judge({**GOOD, "roc_auc": 0.69}, rules(), baseline=None)) == [
        ("floor", "roc_auc")
    ]
    assert failed(judge({**GOOD, "pr_auc": 0.2}, rules(), baseline=None)) == [("floor", "pr_auc")]
    verdict = judge({**GOOD, "brier": 0.18}, rules(), baseline=None)
    assert failed(verdict) == [("ceiling", "brier")]
    assert verdict.reasons == ["brier 0.1800 > ceiling 0.17"]


def test_a_score_exactly_at_the_limit_passes():
    assert judge({**GOOD, "roc_auc": 0.70, "brier": 0.17}, rules(), baseline=None).passed


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, "0.9"])
def test_a_missing_or_non_numeric_metric_fails_closed(bad):
    metrics = {key: value for key, value in GOOD.items() if key != "roc_auc"}
    if bad is not None:
        metrics["roc_auc"] = bad
    verdict = judge(metrics, rules(), baseline=None)
    assert not verdict.passed
    assert verdict.reasons == [
        "roc_auc is missing or not a number",
        "roc_auc of this version or of the baseline is missing",
    ]


def test_without_floors_the_baseline_still_guards_a_fresh_problem():
    useless = {**GOOD, "roc_auc": 0.5}
    verdict = judge(useless, rules(floors={}, ceilings={}), baseline=None)
    assert not verdict.passed
    assert verdict.reasons == [
        "roc_auc 0.5000 does not beat 0.5000 of a model that ignores the features"
    ]
    assert judge(GOOD, rules(floors={}, ceilings={}), baseline=None).passed


def test_too_few_held_out_rows_is_no_decision():
    verdict = judge(GOOD, rules(min_test_rows=500), rows=499, baseline=None)
    assert failed(verdict) == [("rows", "")]
    assert "only 499 held-out rows, fewer than gate.min_test_rows 500" in verdict.reasons[0]


def test_a_regression_gate_reads_directions_from_the_registry():
    settings = rules(floors={"r2": 0.5}, ceilings={"rmse": 3.0}, primary_metric="rmse")
    good = {"r2": 0.8, "rmse": 2.0, "mae": 1.5, "median_ae": 1.0}
    mean_model = {"r2": 0.0, "rmse": 5.0, "mae": 4.0, "median_ae": 3.5}
    verdict = judge(good, settings, dummy=mean_model, task="regression")
    assert verdict.passed
    assert verdict.reasons[-1] == "rmse 2.0000 beats 5.0000 of a model that ignores the features"
    worse = judge({**good, "rmse": 5.5}, settings, dummy=mean_model, task="regression")
    assert failed(worse) == [("ceiling", "rmse"), ("baseline", "rmse")]
    champion = baseline(2.1, 2.0, metric="rmse")  # lower is better: 2.1 trails 2.0 by 0.1
    trailing = judge(good, settings, dummy=mean_model, task="regression", baseline=champion)
    assert failed(trailing) == [("champion", "rmse")]


def test_a_challenger_within_the_tolerance_of_the_champion_passes():
    verdict = judge(GOOD, rules(), baseline=baseline(0.741, 0.75))
    assert verdict.passed
    check = verdict.checks[-1]
    assert (check.name, check.metric, check.limit) == ("champion", "roc_auc", pytest.approx(0.74))
    assert "within the tolerance 0.01" in check.message and "1000 held-out rows" in check.message


def test_a_challenger_that_trails_by_more_than_the_tolerance_is_refused():
    verdict = judge(GOOD, rules(), baseline=baseline(0.735, 0.75))
    assert not verdict.passed
    assert failed(verdict) == [("champion", "roc_auc")]
    assert verdict.reasons == [
        "roc_auc 0.7350 trails the champion version 3 (0.7500) by 0.0150 on the same 1000 "
        "held-out rows, more than the tolerance 0.01"
    ]


def test_a_better_challenger_passes_and_zero_tolerance_allows_a_tie():
    assert judge(GOOD, rules(), baseline=baseline(0.76, 0.75)).passed
    assert judge(GOOD, rules(tolerance=0.0), baseline=baseline(0.75, 0.75)).passed
    assert not judge(GOOD, rules(tolerance=0.0), baseline=baseline(0.7499, 0.75)).passed


def test_a_lower_is_better_primary_metric_compares_the_other_way():
    settings = rules(primary_metric="brier", tolerance=0.005)
    assert judge(GOOD, settings, baseline=baseline(0.154, 0.150, "brier")).passed
    refused = judge(GOOD, settings, baseline=baseline(0.156, 0.150, "brier"))
    assert failed(refused) == [("champion", "brier")]
    assert "trails the champion version 3 (0.1500) by 0.0060" in refused.reasons[0]


def test_a_champion_that_could_not_be_compared_fails_closed():
    unknown = gate.Baseline(version="2", error="its training rows cannot be rebuilt")
    verdict = judge(GOOD, rules(), baseline=unknown)
    assert not verdict.passed
    assert verdict.reasons == [
        "champion version 2 could not be compared: its training rows cannot be rebuilt"
    ]
    assert verdict.as_tags()["gate.champion_version"] == "2"
    assert "gate.comparison_rows" not in verdict.as_tags()


def test_tags_and_dict_carry_the_verdict_the_versions_and_the_numbers():
    verdict = judge({**GOOD, "roc_auc": 0.72}, rules(), baseline=baseline(0.72, 0.75))
    tags = verdict.as_tags()
    assert tags["validation_status"] == "failed"
    assert tags["validation_reasons"] == verdict.reasons[0]
    assert tags["gate.champion_version"] == "3"
    assert float(tags["gate.champion_roc_auc"]) == 0.75
    assert float(tags["gate.challenger_roc_auc"]) == 0.72
    assert (tags["gate.comparison_rows"], tags["gate.comparison_excluded_rows"]) == ("1000", "12")
    assert float(tags["gate.roc_auc"]) == 0.72 and tags["gate.primary_metric"] == "roc_auc"
    assert all(isinstance(value, str) for value in tags.values())
    assert len(json.loads(tags["gate.checks"])) == 6
    as_dict = json.loads(json.dumps(verdict.as_dict()))
    assert as_dict["comparison"]["champion"] == {"roc_auc": 0.75}
    assert as_dict["champion_metrics"] == {"roc_auc": 0.75}  # what the CI job summary shows
    assert as_dict["champion_version"] == "3" and as_dict["passed"] is False


def test_refuse_is_a_failed_verdict_with_the_reason():
    verdict = gate.refuse("the rows it trained on cannot be established", rules())
    assert not verdict.passed and verdict.reasons == [
        "the rows it trained on cannot be established"
    ]
    assert verdict.as_tags()["validation_status"] == "failed"


def test_split_rule_differences_name_what_decides_a_rows_side():
    config = {"seed": 42, "split": {"test_fraction": 0.2}, "data": {"key_columns": ["a", "b"]}}
    assert gate.split_rule_differences(config, config) == []
    other = {
        "seed": 7,
        "split": {"test_fraction": 0.2},
        "data": {"key_columns": ["a", "b"], "sample_fraction": 0.1},
    }
    assert gate.split_rule_differences(config, other) == ["seed 42 != 7"]
    assert gate.split_rule_differences(config, {}) == [
        "seed 42 != None",
        "split.test_fraction 0.2 != None",
        "data.key_columns ['a', 'b'] != []",
    ]


def test_a_time_split_counts_its_column_and_the_rows_sampled():
    config = {"seed": 42, "split": {"test_fraction": 0.2, "time_column": None},
              "data": {"key_columns": ["a"], "sample_fraction": 1.0}}  # fmt: skip
    timed = {**config, "split": {"test_fraction": 0.2, "time_column": "when"}}
    assert gate.split_rule_differences(config, timed) == ["split.time_column None != 'when'"]
    sampled = {**timed, "data": {"key_columns": ["a"], "sample_fraction": 0.5}}
    assert gate.split_rule_differences(timed, sampled) == ["data.sample_fraction 1.0 != 0.5"]
    hashed_sampled = {**config, "data": {"key_columns": ["a"], "sample_fraction": 0.5}}
    assert gate.split_rule_differences(config, hashed_sampled) == []  # a row's hash side


@pytest.mark.parametrize(
    "section, message",
    [
        ({"tolerance": -0.1}, "gate.tolerance"),
        ({"primary_metric": "r2"}, "gate.primary_metric"),
        ({"floors": {"log_loss": 0.2}}, "gate.floors.log_loss"),
        ({"ceilings": {"roc_auc": 0.2}}, "gate.ceilings.roc_auc"),
        ({"floors": {"roc_auc": "high"}}, "gate.floors.roc_auc"),
        ({"min_test_rows": 0}, "gate.min_test_rows"),
    ],
)
def test_gate_settings_are_validated_with_the_key_named(project, section, message):
    config = load_settings("dev", problem="synthetic_binary", root=project).model_dump(mode="json")
    config["gate"] = {**config["gate"], **section}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate_settings(config)
