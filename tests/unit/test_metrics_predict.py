"""metrics.predict: a boosted classifier's scores summed once for its probabilities and its
classes, the same numbers as each call on its own."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_project import metrics


def rows(count: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    generator = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": generator.normal(size=count), "b": generator.normal(size=count)})
    labels = np.where(frame["a"] + generator.normal(scale=0.5, size=count) > 0, "yes", "no")
    return frame, labels


def boosting() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=15, random_state=0)


def models():
    frame, labels = rows()
    three = np.where(frame["b"] > 0.5, "maybe", labels)
    plain = boosting().fit(frame, labels)
    threshold = FixedThresholdClassifier(boosting(), threshold=0.3).fit(frame, labels)
    steps = Pipeline([("double", FunctionTransformer(lambda x: x * 2)), ("model", threshold)])
    return {
        "boosting": (plain, frame),
        "three classes": (boosting().fit(frame, three), frame),
        "fixed threshold": (threshold, frame),
        "pipeline": (steps.fit(frame, labels), frame),
    }


@pytest.mark.parametrize("kind", ["boosting", "three classes", "fixed threshold", "pipeline"])
def test_predictions_are_each_call_on_its_own_with_the_scores_summed_once(kind, monkeypatch):
    model, frame = models()[kind]
    expected = (model.predict(frame), model.predict_proba(frame))
    inner = model[-1] if isinstance(model, Pipeline) else model
    inner = getattr(inner, "estimator_", inner)
    sums = []
    summed = HistGradientBoostingClassifier._raw_predict

    def counted(self, *args, **kwargs):
        sums.append(1)
        return summed(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingClassifier, "_raw_predict", counted)
    got = metrics.predict(model, frame, "binary")
    np.testing.assert_array_equal(got.prediction, expected[0])
    np.testing.assert_array_equal(got.probabilities, expected[1])
    np.testing.assert_array_equal(got.classes, model.classes_)
    assert len(sums) == 1
    assert "_raw_predict" not in vars(inner)  # the instance is as it was


def test_other_rows_and_a_failure_inside_leave_the_model_as_it_was():
    model, frame = models()["boosting"]
    other, _ = rows(seed=1)
    expected_other = model.predict_proba(other)
    with pytest.raises(RuntimeError), metrics.raw_scores_once(model):
        first = model.predict_proba(frame)
        np.testing.assert_array_equal(model.predict_proba(other), expected_other)
        first[:] = 0  # a caller writing into what it got does not change the next answer
        assert model.predict_proba(frame).sum() > 0
        raise RuntimeError
    assert "_raw_predict" not in vars(model)
