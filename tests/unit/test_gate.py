"""The quality gate's rules (pure): floors, ceilings, the lead over a feature-blind model, the
loss, constant predictions, training health, the champion comparison, fail-closed."""

import json
import math

import numpy as np
import pytest

from ml_project import gate, results
from ml_project.errors import ConfigError
from ml_project.metrics import Metric, StagedLoss
from ml_project.settings import GateSettings, load_settings, validate_settings

GOOD = {"roc_auc": 0.75, "pr_auc": 0.52, "brier": 0.15, "log_loss": 0.47, "f1": 0.40}
DUMMY = {"roc_auc": 0.5, "pr_auc": 0.23, "brier": 0.18, "log_loss": 0.54, "f1": 0.0}
SCORES = np.linspace(0.1, 0.9, 50)  # held-out scores that vary
HEALTHY = StagedLoss("log_loss", (0.60, 0.52, 0.48, 0.47, 0.47))


def judge(
    metrics, settings, *, baseline=None, rows=1000, dummy=DUMMY, task="binary", scores=SCORES,
    staged=None, extra=None,
):  # fmt: skip
    return gate.judge(
        metrics, settings, task=task, rows=rows, scores=scores, staged=staged,
        baseline_metrics=dummy, champion=baseline, extra=extra,
    )  # fmt: skip


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


def baseline(challenger: float, champion: float, metric: str = "roc_auc") -> gate.Champion:
    return gate.Champion(
        version="3",
        champion={metric: champion},
        challenger={metric: challenger},
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
        ("lead", "roc_auc"),
        ("loss", "log_loss"),
        ("constant", "score"),
        ("health", ""),
    ]
    assert verdict.reasons == [
        "1000 held-out rows >= gate.min_test_rows 100",
        "pr_auc 0.5200 >= floor 0.45 (gate.floors.pr_auc)",
        "roc_auc 0.7500 >= floor 0.7 (gate.floors.roc_auc)",
        "brier 0.1500 <= ceiling 0.17 (gate.ceilings.brier)",
        "roc_auc 0.7500 vs 0.5000 of a model that ignores the features: a lead of 50.0% of the "
        "room to a perfect 1, at least gate.min_lead 0.05 (>= 0.5250)",
        "log_loss 0.4700 better than 0.5400 of a model that ignores the features (always "
        "checked, no setting)",
        "50 distinct held-out scores (always checked, no setting)",
        "training health not applicable: the model does not stage its predictions "
        "(gate.max_loss_rise)",
    ]


def test_each_floor_and_ceiling_can_fail_on_its_own():
    assert failed(judge({**GOOD, "roc_auc": 0.69}, rules(), baseline=None)) == [
        ("floor", "roc_auc")
    ]
    assert failed(judge({**GOOD, "pr_auc": 0.2}, rules(), baseline=None)) == [("floor", "pr_auc")]
    verdict = judge({**GOOD, "brier": 0.18}, rules(), baseline=None)
    assert failed(verdict) == [("ceiling", "brier")]
    assert verdict.reasons == ["brier 0.1800 > ceiling 0.17 (gate.ceilings.brier)"]


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
        "roc_auc is missing or not a number (gate.floors.roc_auc)",
        "roc_auc of this version or of a model that ignores the features is missing",
    ]


def test_without_floors_the_lead_still_guards_a_fresh_problem():
    useless = {**GOOD, "roc_auc": 0.5}
    verdict = judge(useless, rules(floors={}, ceilings={}), baseline=None)
    assert not verdict.passed
    assert verdict.reasons == [
        "roc_auc 0.5000 vs 0.5000 of a model that ignores the features: a lead of 0.0% of the "
        "room to a perfect 1, less than gate.min_lead 0.05 (>= 0.5250)"
    ]
    assert judge(GOOD, rules(floors={}, ceilings={}), baseline=None).passed


@pytest.mark.parametrize(
    ("value", "passed"), [(0.52, False), (0.525, True), (0.53, True), (0.49, False)]
)
def test_the_lead_is_a_share_of_the_room_to_a_perfect_score(value, passed):
    """min_lead 0.05 over a baseline 0.5: the room to 1 is 0.5, so 0.525 at least."""
    verdict = judge({**GOOD, "roc_auc": value}, rules(floors={}, ceilings={}))
    (lead,) = [check for check in verdict.checks if check.name == "lead"]
    assert lead.passed is passed and lead.limit == pytest.approx(0.525)
    assert "gate.min_lead 0.05" in lead.message


def test_the_lead_of_a_loss_is_a_share_of_the_baselines_value():
    """A loss with units: the room is the baseline's value itself (perfect is 0)."""
    settings = rules(floors={}, ceilings={}, primary_metric="rmse", min_lead=0.1)
    blind = {"r2": 0.0, "rmse": 10.0, "mae": 8.0, "median_ae": 7.0}

    def lead(rmse):
        verdict = judge({**blind, "rmse": rmse}, settings, dummy=blind, task="regression")
        return next(check for check in verdict.checks if check.name == "lead")

    assert lead(9.0).passed and lead(9.0).limit == pytest.approx(9.0)
    assert not lead(9.5).passed and "a lead of 5.0% of the room to a perfect 0" in lead(9.5).message
    assert not lead(10.5).passed


def test_a_metric_without_a_perfect_value_must_only_beat_the_baseline():
    profit = Metric("profit", True, lambda y, p: 0.0, units=True)
    settings = rules(floors={}, ceilings={}, primary_metric="profit")
    extra = {"profit": profit}
    better = judge({**GOOD, "profit": 11.0}, settings, dummy={**DUMMY, "profit": 10.0}, extra=extra)
    assert better.passed
    assert "profit 11.0000 better than 10.0000" in better.reasons[1]
    worse = judge({**GOOD, "profit": 10.0}, settings, dummy={**DUMMY, "profit": 10.0}, extra=extra)
    assert failed(worse) == [("lead", "profit")]


@pytest.mark.parametrize("loss", [0.54, 0.60, math.inf, math.nan])
def test_the_loss_must_be_finite_and_better_than_the_feature_blind_models(loss):
    """A diverged model can keep its ranking (AUC) and still have a useless loss."""
    verdict = judge({**GOOD, "log_loss": loss}, rules(floors={}, ceilings={}))
    assert failed(verdict) == [("loss", "log_loss")]
    assert "(always checked, no setting)" in verdict.reasons[0]


def test_the_loss_of_a_regression_is_rmse():
    settings = rules(floors={}, ceilings={}, primary_metric="r2")
    blind = {"r2": 0.0, "rmse": 10.0, "mae": 8.0, "median_ae": 7.0}
    good = {"r2": 0.5, "rmse": 7.0, "mae": 5.0, "median_ae": 4.0}
    assert judge(good, settings, dummy=blind, task="regression").passed
    worse = judge({**good, "rmse": 12.0}, settings, dummy=blind, task="regression")
    assert failed(worse) == [("loss", "rmse")]


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (np.full(50, 0.23), "every held-out row gets the same score 0.23"),
        (np.array([0.1, np.nan, 0.3]), "1 held-out score(s) are not numbers"),
        (np.array([]), "no held-out score"),
    ],
)
def test_constant_or_missing_scores_fail(scores, message):
    verdict = judge(GOOD, rules(), scores=scores)
    assert failed(verdict) == [("constant", "score")]
    assert message in verdict.reasons[0]


def test_a_loss_that_rose_over_the_iterations_is_a_diverged_training():
    """The issue's multiclass: the staged held-out loss rose from 0.52 to 19.3."""
    staged = StagedLoss("log_loss", (0.9, 0.52, *[1.0] * 97, 19.3))
    verdict = judge(GOOD, rules(), staged=staged)
    assert failed(verdict) == [("health", "log_loss")]
    assert verdict.reasons == [
        "held-out log_loss rose from 0.52 at iteration 2 to 19.3 at iteration 100 (+3612%, more "
        "than gate.max_loss_rise 0.5): the boosting went past its best iteration, diverging or "
        "overfitting (set params.early_stopping: true, or lower params.learning_rate or "
        "params.max_iter)"
    ]


def test_a_healthy_or_slightly_overfitted_training_passes_its_health_check():
    assert judge(GOOD, rules(), staged=HEALTHY).passed
    rising = StagedLoss("log_loss", (0.6, 0.40, 0.45, 0.50))  # +25%: at the limit
    verdict = judge(GOOD, rules(), staged=rising)
    (health,) = [check for check in verdict.checks if check.name == "health"]
    assert health.passed and "25.0% above its best 0.4 (iteration 2)" in health.message
    assert not judge(GOOD, rules(max_loss_rise=0.2), staged=rising).passed
    broken = StagedLoss("log_loss", (0.6, math.nan))
    assert failed(judge(GOOD, rules(), staged=broken)) == [("health", "log_loss")]


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
    assert verdict.reasons[3].startswith("rmse 2.0000 vs 5.0000 of a model that ignores")
    worse = judge({**good, "rmse": 5.5}, settings, dummy=mean_model, task="regression")
    assert failed(worse) == [("ceiling", "rmse"), ("lead", "rmse"), ("loss", "rmse")]
    champion = baseline(2.1, 2.0, metric="rmse")  # lower is better: 2.1 is 5% worse than 2.0
    trailing = judge(good, settings, dummy=mean_model, task="regression", baseline=champion)
    assert failed(trailing) == [("champion", "rmse")]


def test_a_challenger_within_the_tolerance_of_the_champion_passes():
    verdict = judge(GOOD, rules(), baseline=baseline(0.741, 0.75))
    assert verdict.passed
    check = verdict.checks[-1]
    assert (check.name, check.metric, check.limit) == ("champion", "roc_auc", pytest.approx(0.74))
    assert check.message == (
        "roc_auc 0.7410 worse than the champion version 3 (0.7500) by 0.0090 on the same 1000 "
        "held-out rows, within the tolerance 0.01 (gate.tolerance 0.01)"
    )


def test_a_challenger_that_trails_by_more_than_the_tolerance_is_refused():
    verdict = judge(GOOD, rules(), baseline=baseline(0.735, 0.75))
    assert not verdict.passed
    assert failed(verdict) == [("champion", "roc_auc")]
    assert verdict.reasons == [
        "roc_auc 0.7350 worse than the champion version 3 (0.7500) by 0.0150 on the same 1000 "
        "held-out rows, more than the tolerance 0.01 (gate.tolerance 0.01)"
    ]


def test_the_issues_collapsed_champion_comparison_is_called_better_not_within():
    """0.84 against a 0.46 champion: plainly better."""
    settings = rules(floors={}, ceilings={}, primary_metric="accuracy")
    blind = {"accuracy": 0.30, "log_loss": 2.5}
    good = {"accuracy": 0.84, "log_loss": 0.55}
    verdict = judge(
        good, settings, dummy=blind, task="multiclass", baseline=baseline(0.84, 0.46, "accuracy")
    )
    assert verdict.passed
    assert verdict.reasons[-1] == (
        "accuracy 0.8400 better than the champion version 3 (0.4600) on the same 1000 held-out rows"
    )
    tie = judge(
        good, settings, dummy=blind, task="multiclass", baseline=baseline(0.5, 0.5, "accuracy")
    )
    assert "equal to the champion version 3 (0.5000)" in tie.reasons[-1]


def test_the_tolerance_of_a_metric_with_units_is_a_fraction_of_the_champions_value():
    """rmse 100 for the champion, tolerance 0.02: up to 102 passes, 103 does not."""
    settings = rules(floors={}, ceilings={}, primary_metric="rmse", tolerance=0.02)
    blind = {"r2": 0.0, "rmse": 500.0, "mae": 400.0, "median_ae": 300.0}
    good = {"r2": 0.9, "rmse": 100.0, "mae": 80.0, "median_ae": 60.0}

    def champion_check(challenger):
        verdict = judge(good, settings, dummy=blind, task="regression",
                        baseline=baseline(challenger, 100.0, "rmse"))  # fmt: skip
        return verdict.checks[-1]

    within = champion_check(101.5)
    assert within.passed and within.limit == pytest.approx(102.0)
    assert within.message.endswith(
        "worse than the champion version 3 (100.0000) by 1.5000 on the same 1000 held-out rows, "
        "within the tolerance 2 (gate.tolerance 0.02 of the champion's value)"
    )
    assert not champion_check(103.0).passed
    assert "more than the tolerance 2 (gate.tolerance 0.02" in champion_check(103.0).message


def test_a_better_challenger_passes_and_zero_tolerance_allows_a_tie():
    assert judge(GOOD, rules(), baseline=baseline(0.76, 0.75)).passed
    assert judge(GOOD, rules(tolerance=0.0), baseline=baseline(0.75, 0.75)).passed
    assert not judge(GOOD, rules(tolerance=0.0), baseline=baseline(0.7499, 0.75)).passed


def test_a_lower_is_better_primary_metric_compares_the_other_way():
    settings = rules(primary_metric="brier", tolerance=0.005)
    assert judge(GOOD, settings, baseline=baseline(0.154, 0.150, "brier")).passed
    refused = judge(GOOD, settings, baseline=baseline(0.156, 0.150, "brier"))
    assert failed(refused) == [("champion", "brier")]
    assert "worse than the champion version 3 (0.1500) by 0.0060" in refused.reasons[0]


def test_a_champion_that_could_not_be_compared_fails_closed():
    unknown = gate.Champion(version="2", error="its training rows cannot be rebuilt")
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
    assert len(json.loads(tags["gate.checks"])) == 9
    as_dict = json.loads(results.to_json(verdict))
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
        ({"min_lead": 1.0}, "gate.min_lead"),
        ({"max_loss_rise": -0.1}, "gate.max_loss_rise"),
    ],
)
def test_gate_settings_are_validated_with_the_key_named(project, section, message):
    config = load_settings("dev", problem="synthetic_binary", root=project).model_dump(mode="json")
    config["gate"] = {**config["gate"], **section}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate_settings(config)
