"""One metric registry per task kind, and the model's outputs on held-out rows (pure).

Each task (binary, multiclass, regression) names its metrics, whether higher is better,
whether a metric has units (then tolerances are fractions of its value), and how each is
computed from the true labels and a `Predictions` (predicted values, and for classifiers the
class probabilities). A problem adds its own in problem.py (`METRICS`, see ml_project/problem.py):
they are computed with these. The gate's floors and ceilings, `monitor`'s live quality, `show`,
the training summary and the CI summary all read this registry.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml_project.vocabulary import Task


@dataclass(frozen=True)
class Predictions:
    """What a model says about some rows: values, and for a classifier its probabilities."""

    prediction: np.ndarray
    probabilities: np.ndarray | None = None  # rows x classes, in `classes` order
    classes: np.ndarray | None = None

    @property
    def score(self) -> np.ndarray:
        """One number per row: P(positive class) for binary, else the predicted value / the
        highest class probability (what `monitor` profiles and `reproduce` compares)."""
        if self.probabilities is None:
            return np.asarray(self.prediction, dtype=np.float64)
        if self.probabilities.shape[1] == 2:
            return np.asarray(self.probabilities[:, 1], dtype=np.float64)
        return np.asarray(self.probabilities.max(axis=1), dtype=np.float64)

    def matrix(self) -> np.ndarray:
        """Every number the model gave, float64, rows x columns (for digests and diffs)."""
        if self.probabilities is not None:
            return np.ascontiguousarray(self.probabilities, dtype=np.float64)
        return np.ascontiguousarray(self.prediction, dtype=np.float64).reshape(-1, 1)


def predict(model: Any, rows: pd.DataFrame | np.ndarray, task: str) -> Predictions:
    """The model's prediction (and class probabilities for a classifier) on `rows`."""
    if task == "regression":
        return Predictions(np.asarray(model.predict(rows), dtype=np.float64))
    last, features = final_step(model, rows)  # a Pipeline's steps before the last, once
    with raw_scores_once(last):
        probabilities = np.asarray(last.predict_proba(features), dtype=np.float64)
        prediction = np.asarray(last.predict(features))
    return Predictions(
        prediction=prediction, probabilities=probabilities, classes=np.asarray(model.classes_)
    )


@contextmanager
def raw_scores_once(model: Any) -> Iterator[None]:
    """Inside: a HistGradientBoosting classifier (also behind a fixed or tuned decision
    threshold) sums its trees' scores of one rows object once. Its `predict_proba` and its
    `predict` (directly, or the threshold's through `predict_proba`) each sum them, the same
    numbers: the second call gets a copy of the first's. As scikit-learn's own early stopping
    does (`_patch_raw_predict`), on the instance, removed on the way out."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    if isinstance(model, FixedThresholdClassifier | TunedThresholdClassifierCV):
        model = model.estimator_
    if not isinstance(model, HistGradientBoostingClassifier) or "_raw_predict" in vars(model):
        yield
        return
    summed = model._raw_predict
    last: list[tuple[Any, np.ndarray]] = []

    def once(rows: Any, n_threads: int | None = None) -> np.ndarray:
        if n_threads is not None:
            return cast(np.ndarray, summed(rows, n_threads=n_threads))
        if not last or last[0][0] is not rows:
            last[:] = [(rows, summed(rows))]
        return last[0][1].copy()

    model._raw_predict = once
    try:
        yield
    finally:
        del model._raw_predict


def final_step(model: Any, rows: pd.DataFrame | np.ndarray) -> tuple[Any, Any]:
    """A Pipeline's last step and `rows` through the steps before it, transformed once (its
    `predict` and `predict_proba` each run those steps); any other model and `rows` as they
    are. `predict(*final_step(model, rows), task)` gives `predict(model, rows, task)`."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return model, rows
    return model.steps[-1][1], (model[:-1].transform(rows) if len(model) > 1 else rows)


class KnownAnswers:
    """A fitted model that answers rows it has already scored with the answers it gave.

    The pipeline predicts the held-out rows once; MLflow's evaluator, handed this in place of
    the model, gets those predictions instead of computing them again. Any other rows (and
    every other attribute) go to the model itself.
    """

    def __init__(self, model: Any, rows: pd.DataFrame, predictions: Predictions) -> None:
        self.model, self.rows, self.predictions = model, rows.reset_index(drop=True), predictions

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _known(self, rows: object) -> bool:
        if not isinstance(rows, pd.DataFrame) or rows.shape != self.rows.shape:
            return False
        try:
            pd.testing.assert_frame_equal(
                rows.reset_index(drop=True), self.rows, check_dtype=False, check_exact=True
            )
        except AssertionError:
            return False
        return True

    def predict(self, rows: Any) -> np.ndarray:
        return self.predictions.prediction if self._known(rows) else self.model.predict(rows)

    def predict_proba(self, rows: Any) -> np.ndarray:
        if self.predictions.probabilities is not None and self._known(rows):
            return self.predictions.probabilities
        return cast(np.ndarray, self.model.predict_proba(rows))

    def score(
        self, rows: Any, y: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
    ) -> float:
        """scikit-learn's default score (accuracy, or R² for a regressor) from the known
        predictions, as the model would compute it; a model with its own `score` computes it."""
        metric = _default_score(self.model)
        if metric is None or not self._known(rows):
            return cast(float, self.model.score(rows, y, sample_weight=sample_weight))
        return float(metric(y, self.predictions.prediction, sample_weight=sample_weight))


def _default_score(model: Any) -> Callable[..., float] | None:
    """accuracy_score or r2_score when `model.score` is scikit-learn's mixin default (a
    Pipeline's, its last step's); None when the model defines its own."""
    from sklearn.base import ClassifierMixin, RegressorMixin
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    score = getattr(type(model), "score", None)
    if score is ClassifierMixin.score:
        return cast(Callable[..., float], accuracy_score)
    if score is RegressorMixin.score:
        return cast(Callable[..., float], r2_score)
    return None


@dataclass(frozen=True)
class Metric:
    """A score of predictions against true labels: `compute(y_true, predictions) -> float`.

    `units`: the metric is an unbounded quantity (an error in the label's units, a log loss),
    so the gate's tolerance and monitor's quality drop are fractions of its value; without, a
    bounded score (AUC, accuracy, r2) whose limits are in its own terms.
    """

    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, Predictions], float]
    description: str = ""
    needs_every_class: bool = False  # a ranking metric: undefined unless all classes are present
    units: bool = False

    @property
    def perfect(self) -> float | None:
        """The best value it can take: 1 for a bounded score, 0 for a loss (None: no bound)."""
        if not self.higher_is_better:
            return 0.0
        return None if self.units else 1.0


def _binary(y: np.ndarray, p: Predictions, fn: Callable[..., float]) -> float:
    assert p.classes is not None and p.probabilities is not None  # a classifier's predictions
    positive = p.classes[1]
    return float(fn(np.asarray(y) == positive, p.probabilities[:, 1]))


def _roc_auc(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import roc_auc_score

    return _binary(y, p, roc_auc_score)


def _pr_auc(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import average_precision_score

    return _binary(y, p, average_precision_score)


def _brier(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import brier_score_loss

    return _binary(y, p, brier_score_loss)


def _log_loss(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import log_loss

    assert p.classes is not None  # a classifier's predictions
    return float(log_loss(y, p.probabilities, labels=list(p.classes)))


def _f1(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import f1_score

    assert p.classes is not None  # a classifier's predictions
    return float(f1_score(y, p.prediction, pos_label=p.classes[1], zero_division=0))


def _f1_macro(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, p.prediction, average="macro", zero_division=0))


def _accuracy(y: np.ndarray, p: Predictions) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(p.prediction)))


def _balanced_accuracy(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, p.prediction))


def _roc_auc_ovr(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import roc_auc_score

    return float(
        roc_auc_score(y, p.probabilities, multi_class="ovr", average="macro", labels=p.classes)
    )


def _rmse(y: np.ndarray, p: Predictions) -> float:
    error = np.asarray(y, dtype=np.float64) - p.prediction
    return float(np.sqrt(np.mean(error**2)))


def _mae(y: np.ndarray, p: Predictions) -> float:
    return float(np.mean(np.abs(np.asarray(y, dtype=np.float64) - p.prediction)))


def _r2(y: np.ndarray, p: Predictions) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(np.asarray(y, dtype=np.float64), p.prediction))


def _median_ae(y: np.ndarray, p: Predictions) -> float:
    return float(np.median(np.abs(np.asarray(y, dtype=np.float64) - p.prediction)))


def _rmsle(y: np.ndarray, p: Predictions) -> float:
    """NaN unless every label and prediction is >= 0 (log1p of a negative is no error)."""
    truth, guess = np.asarray(y, dtype=np.float64), np.asarray(p.prediction, dtype=np.float64)
    if not (truth >= 0).all() or not (guess >= 0).all():
        return math.nan
    return float(np.sqrt(np.mean((np.log1p(guess) - np.log1p(truth)) ** 2)))


def _mape(y: np.ndarray, p: Predictions) -> float:
    """NaN when a label is 0 (its percentage error has no value)."""
    truth = np.asarray(y, dtype=np.float64)
    if (truth == 0).any():
        return math.nan
    return float(np.mean(np.abs((truth - p.prediction) / truth)))


REGISTRY: dict[str, dict[str, Metric]] = {
    "binary": {
        m.name: m
        for m in (
            Metric("roc_auc", True, _roc_auc, "area under the ROC curve", True),
            Metric("pr_auc", True, _pr_auc, "average precision (area under the PR curve)", True),
            Metric("f1", True, _f1, "F1 of the positive class at the model's threshold"),
            Metric("accuracy", True, _accuracy, "share of rows predicted right"),
            Metric("log_loss", False, _log_loss, "cross-entropy of the probabilities", units=True),
            Metric("brier", False, _brier, "mean squared error of P(positive)"),
        )
    },
    "multiclass": {
        m.name: m
        for m in (
            Metric("accuracy", True, _accuracy, "share of rows predicted right"),
            Metric("balanced_accuracy", True, _balanced_accuracy, "mean recall over classes"),
            Metric("f1_macro", True, _f1_macro, "F1 averaged over classes"),
            Metric("roc_auc_ovr", True, _roc_auc_ovr, "one-vs-rest ROC AUC, macro average", True),
            Metric("log_loss", False, _log_loss, "cross-entropy of the probabilities", units=True),
        )
    },
    "regression": {
        m.name: m
        for m in (
            Metric("r2", True, _r2, "coefficient of determination"),
            Metric("rmse", False, _rmse, "root mean squared error", units=True),
            Metric("mae", False, _mae, "mean absolute error", units=True),
            Metric("median_ae", False, _median_ae, "median absolute error", units=True),
            Metric("rmsle", False, _rmsle, "root mean squared log1p error", units=True),
            Metric("mape", False, _mape, "mean absolute error / |label|", units=True),
        )
    },
}


# The loss the gate requires to be finite and better than the feature-blind model's, and whose
# staged values tell whether the boosting diverged.
LOSS: dict[Task, str] = {"binary": "log_loss", "multiclass": "log_loss", "regression": "rmse"}


def metrics_of(task: str, extra: Mapping[str, Metric] | None = None) -> dict[str, Metric]:
    """The task's metrics, then a problem's own (`extra`, by name)."""
    return {**REGISTRY[task], **(extra or {})}


def higher_is_better(task: str, metric: str, extra: Mapping[str, Metric] | None = None) -> bool:
    return metrics_of(task, extra)[metric].higher_is_better


def compute(
    task: str,
    y_true: npt.ArrayLike,
    predictions: Predictions,
    extra: Mapping[str, Metric] | None = None,
) -> dict[str, float]:
    """Every metric of the task (and the problem's own, `extra`) on these rows (NaN where one is
    undefined, e.g. one class present, or a label rmsle or mape cannot take)."""
    from sklearn.exceptions import UndefinedMetricWarning

    y_true = np.asarray(y_true)
    missing = predictions.classes is not None and len(
        set(np.unique(y_true)) & set(predictions.classes)
    ) < len(predictions.classes)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # NaN says it
        for name, metric in metrics_of(task, extra).items():
            if metric.needs_every_class and missing:
                out[name] = math.nan
                continue
            try:
                value = float(metric.compute(y_true, predictions))
            except ValueError:  # e.g. ROC AUC with one class present: undefined, not an error
                value = math.nan
            out[name] = value
    return out


def gate_problems(
    task: Task,
    *,
    floors: Mapping[str, float],
    ceilings: Mapping[str, float],
    primary: str,
    extra: Mapping[str, Metric] | None = None,
) -> list[str]:
    """What is wrong with a gate's metric names for `task` (empty: nothing).

    `extra` None: the problem is not loaded yet, so a name no task knows may still be one of
    its own metrics (checked again with `extra` once it is); a name of another task's metric is
    wrong already. With `extra` (the problem's metrics, maybe empty): every name must be known.
    """
    known = metrics_of(task, extra)
    builtin = {name for metrics in REGISTRY.values() for name in metrics}
    names = ", ".join(known)

    def unknown(metric: str) -> bool:
        return metric not in known and (extra is not None or metric in builtin)

    problems = []
    for key, limits, higher in (("floors", floors, True), ("ceilings", ceilings, False)):
        for metric in limits:
            if unknown(metric):
                problems.append(
                    f"gate.{key}.{metric}: a {task} task has no metric {metric!r} "
                    f"(its metrics: {names})"
                )
            elif metric in known and known[metric].higher_is_better != higher:
                other = "ceilings" if higher else "floors"
                problems.append(
                    f"gate.{key}.{metric}: {metric} is {'lower' if higher else 'higher'} is "
                    f"better, so it takes a limit under gate.{other}"
                )
    if unknown(primary):
        problems.append(
            f"gate.primary_metric: a {task} task has no metric {primary!r} (its metrics: {names})"
        )
    return problems


def baseline_predictions(
    task: Task, train_labels: pd.Series | np.ndarray, rows: int
) -> Predictions:
    """A model that ignores the features, fitted on the train labels: the class shares for a
    classifier (most frequent class predicted), the mean for a regressor."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    features = np.zeros((len(train_labels), 1))
    test = np.zeros((rows, 1))
    if task == "regression":
        dummy = DummyRegressor(strategy="mean").fit(features, np.asarray(train_labels, float))
        return Predictions(np.asarray(dummy.predict(test), dtype=np.float64))
    dummy = DummyClassifier(strategy="prior").fit(features, np.asarray(train_labels))
    return predict(dummy, test, task)


@dataclass(frozen=True)
class StagedLoss:
    """The held-out loss (LOSS of the task) after each boosting iteration: 1, 2, ..."""

    metric: str
    values: tuple[float, ...]


def staged_loss(
    model: Any, rows: pd.DataFrame, labels: npt.ArrayLike, task: Task
) -> StagedLoss | None:
    """The task's loss on `rows` after each iteration of a fitted model whose last step stages
    its predictions (HistGradientBoosting*, also behind a fixed decision threshold or a target
    transform); None for any other model. One staged pass over the rows."""
    from sklearn.pipeline import Pipeline

    features: Any = rows
    last = model
    if isinstance(model, Pipeline):
        features = model[:-1].transform(rows) if len(model) > 1 else rows
        last = model.steps[-1][1]
    staged = _stages(last, task)
    if staged is None:
        return None
    y = np.asarray(labels)
    if task == "regression":
        truth = y.astype(np.float64)
        values = [float(np.sqrt(np.mean((truth - guess) ** 2))) for guess in staged(features)]
    else:
        classes = list(np.asarray(last.classes_))
        index = {label: i for i, label in enumerate(classes)}
        known = np.array([label in index for label in y.tolist()], dtype=bool)
        if not known.any():
            return None
        columns = np.array([index[label] for label in y[known].tolist()])
        rows_at = np.flatnonzero(known)  # each known row's P(its class), without copying p
        eps = np.finfo(np.float64).eps
        values = [
            float(-np.mean(np.log(np.clip(np.asarray(p)[rows_at, columns], eps, 1.0))))
            for p in staged(features)
        ]
    return StagedLoss(LOSS[task], tuple(values)) if values else None


def _stages(last: Any, task: Task) -> Callable[[Any], Iterator[np.ndarray]] | None:
    """How to stage the predictions of a fitted last step (None: it cannot)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    if task == "regression":
        if isinstance(last, TransformedTargetRegressor):
            inner, back = last.regressor_, last.transformer_
            if not hasattr(inner, "staged_predict"):
                return None

            def inverse(features: Any) -> Iterator[np.ndarray]:
                for guess in inner.staged_predict(features):
                    yield np.asarray(back.inverse_transform(guess.reshape(-1, 1))).ravel()

            return inverse
        return last.staged_predict if hasattr(last, "staged_predict") else None
    if isinstance(last, FixedThresholdClassifier | TunedThresholdClassifierCV):
        last = last.estimator_  # its probabilities are the inner model's
    return last.staged_predict_proba if hasattr(last, "staged_predict_proba") else None
