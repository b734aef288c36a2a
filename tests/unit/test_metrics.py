"""The metric registry per task kind (pure: arrays in, numbers out)."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, mean_squared_error, r2_score, roc_auc_score

from ml_project import metrics
from ml_project.vocabulary import TASKS


def binary(y, p_yes):
    p_yes = np.asarray(p_yes, dtype=float)
    return metrics.Predictions(
        prediction=np.where(p_yes >= 0.5, "yes", "no"),
        probabilities=np.column_stack([1 - p_yes, p_yes]),
        classes=np.array(["no", "yes"]),
    )


def test_every_task_has_metrics_with_a_direction():
    assert set(metrics.REGISTRY) == set(TASKS)
    for task in TASKS:
        names = metrics.metrics_of(task)
        assert names and all(isinstance(m.higher_is_better, bool) for m in names.values())
    assert metrics.higher_is_better("binary", "roc_auc")
    assert not metrics.higher_is_better("regression", "rmse")


def test_binary_metrics_with_text_labels_match_scikit_learn():
    y = np.array(["no", "yes", "yes", "no", "yes", "no"])
    p = [0.1, 0.8, 0.6, 0.4, 0.3, 0.2]
    scores = metrics.compute("binary", y, binary(y, p))
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y == "yes", p))
    assert scores["log_loss"] == pytest.approx(log_loss(y == "yes", p))
    assert scores["accuracy"] == pytest.approx(5 / 6)
    assert scores["brier"] == pytest.approx(np.mean((np.array(p) - (y == "yes")) ** 2))


def test_an_undefined_metric_is_nan_not_an_error():
    y = np.array(["yes", "yes", "yes"])
    scores = metrics.compute("binary", y, binary(y, [0.9, 0.8, 0.7]))
    assert math.isnan(scores["roc_auc"]) and scores["accuracy"] == 1.0


def test_multiclass_and_regression_metrics():
    y = np.array(["a", "b", "c", "a"])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    predictions = metrics.Predictions(
        prediction=np.array(["a", "b", "c", "b"]),
        probabilities=probabilities,
        classes=np.array(["a", "b", "c"]),
    )
    scores = metrics.compute("multiclass", y, predictions)
    assert scores["accuracy"] == 0.75
    assert scores["log_loss"] == pytest.approx(log_loss(y, probabilities, labels=["a", "b", "c"]))
    assert predictions.score.tolist() == [0.7, 0.8, 0.4, 0.5]
    truth, guess = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    values = metrics.compute("regression", truth, metrics.Predictions(guess))
    assert values["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, guess)))
    assert values["r2"] == pytest.approx(r2_score(truth, guess))
    assert values["mae"] == pytest.approx(0.5)
    assert metrics.Predictions(guess).matrix().shape == (3, 1)


def test_the_baseline_ignores_the_features():
    train = np.array(["no"] * 70 + ["yes"] * 30)
    dummy = metrics.baseline_predictions("binary", train, 5)
    assert dummy.probabilities[:, 1] == pytest.approx([0.3] * 5)
    assert list(dummy.prediction) == ["no"] * 5
    mean = metrics.baseline_predictions("regression", np.array([1.0, 2.0, 6.0]), 2)
    assert mean.prediction.tolist() == [3.0, 3.0]


def test_gate_problems_name_the_key_and_the_rule():
    assert (
        metrics.gate_problems("binary", floors={"roc_auc": 0.7}, ceilings={}, primary="roc_auc")
        == []
    )
    problems = metrics.gate_problems(
        "regression", floors={"roc_auc": 0.7, "rmse": 2}, ceilings={"r2": 0.1}, primary="f1"
    )
    assert problems[0].startswith("gate.floors.roc_auc: a regression task has no metric")
    assert "gate.floors.rmse: rmse is lower is better" in problems[1]
    assert "gate.ceilings.r2: r2 is higher is better" in problems[2]
    assert problems[3].startswith("gate.primary_metric: a regression task has no metric 'f1'")


def test_a_name_no_task_knows_waits_for_the_problems_own_metrics():
    """Before the problem is loaded a name of no task may be its own metric; after, not."""
    unknown = {"floors": {"within_10pct": 0.5}, "ceilings": {}, "primary": "rmse"}
    assert metrics.gate_problems("regression", **unknown) == []
    (problem,) = metrics.gate_problems("regression", **unknown, extra={})
    assert problem.startswith("gate.floors.within_10pct: a regression task has no metric")
    own = {"within_10pct": metrics.Metric("within_10pct", True, lambda y, p: 1.0)}
    assert metrics.gate_problems("regression", **unknown, extra=own) == []
    wrong_side = {"floors": {}, "ceilings": {"within_10pct": 0.5}, "primary": "rmse"}
    (problem,) = metrics.gate_problems("regression", **wrong_side, extra=own)
    assert "within_10pct is higher is better, so it takes a limit under gate.floors" in problem


def test_rmsle_and_mape():
    truth, guess = np.array([1.0, 10.0, 100.0]), np.array([2.0, 8.0, 100.0])
    values = metrics.compute("regression", truth, metrics.Predictions(guess))
    expected = math.sqrt(np.mean((np.log1p(guess) - np.log1p(truth)) ** 2))
    assert values["rmsle"] == pytest.approx(expected)
    assert values["mape"] == pytest.approx((1.0 + 0.2 + 0.0) / 3)
    negative = metrics.compute("regression", truth, metrics.Predictions(np.array([-1.0, 8, 9])))
    assert math.isnan(negative["rmsle"]) and not math.isnan(negative["mape"])
    zero = metrics.compute("regression", np.array([0.0, 1.0]), metrics.Predictions(np.ones(2)))
    assert math.isnan(zero["mape"]) and zero["rmsle"] == pytest.approx(
        math.sqrt(np.log(2) ** 2 / 2)
    )


def test_metrics_with_units_and_their_perfect_values():
    registry = metrics.REGISTRY
    assert {name for name, m in registry["regression"].items() if m.units} == {
        "rmse", "mae", "median_ae", "rmsle", "mape"
    }  # fmt: skip
    assert registry["binary"]["log_loss"].units and not registry["binary"]["brier"].units
    assert registry["binary"]["roc_auc"].perfect == 1.0
    assert registry["regression"]["rmse"].perfect == 0.0
    assert metrics.Metric("profit", True, lambda y, p: 0.0, units=True).perfect is None
    assert set(metrics.LOSS) == set(TASKS)


def test_a_problems_metric_is_computed_with_the_tasks():
    truth = np.array([1.0, 2.0, 4.0])
    own = {"max_error": metrics.Metric(
        "max_error", False, lambda y, p: float(np.max(np.abs(y - p.prediction))), units=True
    )}  # fmt: skip
    values = metrics.compute("regression", truth, metrics.Predictions(truth + [0, 0.5, -2]), own)
    assert values["max_error"] == 2.0 and "rmse" in values
    assert metrics.higher_is_better("regression", "max_error", own) is False


def test_the_staged_loss_follows_the_boosting_iterations():
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    labels = np.where(x[:, 0] + rng.normal(0, 0.5, 400) > 0, "yes", "no")
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=12))
    model.fit(x, labels)
    staged = metrics.staged_loss(model, x, labels, "binary")
    assert staged.metric == "log_loss" and len(staged.values) == 12
    final = metrics.compute("binary", labels, metrics.predict(model, x, "binary"))["log_loss"]
    assert staged.values[-1] == pytest.approx(final) and staged.values[0] > staged.values[-1]
    regressor = HistGradientBoostingRegressor(max_iter=7).fit(x, x[:, 0])
    assert len(metrics.staged_loss(regressor, x, x[:, 0], "regression").values) == 7
    plain = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, labels)
    assert metrics.staged_loss(plain, x, labels, "binary") is None  # does not stage


def test_ranking_metrics_are_undefined_without_every_class():
    y = np.array(["yes", "yes", "yes"])
    scores = metrics.compute("binary", y, binary(y, [0.9, 0.8, 0.7]))
    assert math.isnan(scores["pr_auc"]) and math.isnan(scores["roc_auc"])
    assert not math.isnan(scores["log_loss"])


def test_known_answers_hand_back_the_predictions_made_for_the_same_rows_only():
    """The evaluator gets the pipeline's held-out predictions; other rows reach the model."""
    from sklearn.linear_model import LogisticRegression

    from ml_project.metrics import KnownAnswers, predict

    rows = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1, 0, 1, 0]}, index=[7, 3, 9, 1])
    model = LogisticRegression().fit(rows, [0, 0, 1, 1])
    made = predict(model, rows, "binary")
    answers = KnownAnswers(model, rows, made)
    # a copy with another index and dtype (what MLflow's evaluator passes) is the same rows
    same = rows.reset_index(drop=True).astype({"b": "float64"})
    assert answers.predict_proba(same) is made.probabilities
    assert answers.predict(same) is made.prediction
    assert list(answers.classes_) == [0, 1]  # anything else is the model's
    changed = same.assign(a=[0.0, 1.0, 2.0, 30.0])
    assert answers.predict_proba(changed) is not made.probabilities
    np.testing.assert_array_equal(answers.predict(changed), model.predict(changed))
    np.testing.assert_array_equal(answers.predict(rows.head(2)), model.predict(rows.head(2)))


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_known_answers_score_as_the_model_does_without_predicting_again(task, monkeypatch):
    """MLflow's evaluator also asks the sklearn model's `score`: accuracy or R², from the
    known predictions, equal to the model's own; a model with its own score keeps it."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ml_project.metrics import KnownAnswers, predict

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = (rows["a"] + rng.normal(size=40) > 0).astype(int) if task == "binary" else rows["a"] * 2
    last = LogisticRegression() if task == "binary" else LinearRegression()
    model = make_pipeline(StandardScaler(), last).fit(rows, y)
    answers = KnownAnswers(model, rows, predict(model, rows, task))
    expected = model.score(rows, y)
    monkeypatch.setattr(type(model), "predict", lambda *a, **k: pytest.fail("predicted again"))
    assert answers.score(rows.copy(), y) == expected

    class OwnScore(type(last)):
        def score(self, X, y, sample_weight=None):  # noqa: N803
            return 42.0

    own = OwnScore().fit(rows, y)
    assert KnownAnswers(own, rows, predict(own, rows, task)).score(rows, y) == 42.0
