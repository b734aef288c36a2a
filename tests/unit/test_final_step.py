"""metrics.final_step: a Pipeline's transforming steps run once give the numbers its own
predict and predict_proba (and the staged loss) give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_project import metrics


def rows(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return frame, (frame["a"] + rng.normal(scale=0.5, size=n) > 0).astype(int).to_numpy()


def steps(last: object) -> Pipeline:
    square = FunctionTransformer(lambda frame: frame.assign(c=frame["a"] * frame["b"]))
    return Pipeline([("derive", square), ("scale", StandardScaler()), ("model", last)])


def same(left: metrics.Predictions, right: metrics.Predictions) -> None:
    assert np.array_equal(left.prediction, right.prediction)
    assert (left.probabilities is None) == (right.probabilities is None)
    if left.probabilities is not None:
        assert np.array_equal(left.probabilities, right.probabilities)
        assert np.array_equal(left.classes, right.classes)


@pytest.mark.parametrize(
    "last", [HistGradientBoostingClassifier(max_iter=20, random_state=0), LogisticRegression()]
)
def test_classifier_same_predictions(last: object) -> None:
    frame, labels = rows()
    model = steps(last).fit(frame, labels)
    test, _ = rows(seed=1)
    same(
        metrics.predict(*metrics.final_step(model, test), "binary"),
        metrics.predict(model, test, "binary"),
    )


def test_regressor_and_staged_loss_same() -> None:
    frame, labels = rows()
    model = steps(HistGradientBoostingRegressor(max_iter=20, random_state=0))
    model.fit(frame, frame["a"] * 2.0)
    test, _ = rows(seed=2)
    truth = test["a"].to_numpy() * 2.0
    same(
        metrics.predict(*metrics.final_step(model, test), "regression"),
        metrics.predict(model, test, "regression"),
    )
    last, features = metrics.final_step(model, test)
    assert metrics.staged_loss(last, features, truth, "regression") == metrics.staged_loss(
        model, test, truth, "regression"
    )


def test_not_a_pipeline_passes_through() -> None:
    frame, labels = rows()
    model = LogisticRegression().fit(frame, labels)
    last, features = metrics.final_step(model, frame)
    assert last is model and features is frame
    one = Pipeline([("model", LogisticRegression())]).fit(frame, labels)
    last, features = metrics.final_step(one, frame)
    assert last is one.steps[-1][1] and features is frame
