import pytest

from ml_project.evaluate import classification_metrics


def test_metrics_on_a_known_case():
    metrics = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["f1"] == pytest.approx(0.5)
    assert metrics["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert metrics["positive_rate"] == 0.5 and metrics["predicted_positive_rate"] == 0.5


def test_threshold_is_inclusive_like_the_model():
    assert classification_metrics([0, 1], [0.2, 0.5], threshold=0.5)["f1"] == 1.0
