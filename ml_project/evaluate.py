"""Metrics on the held-out rows (pure: arrays in, numbers out)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)


def classification_metrics(y_true, probability, *, threshold: float) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier score, F1 at `threshold`, and the base rates."""
    y_true = np.asarray(y_true)
    probability = np.asarray(probability, dtype=np.float64)
    predicted = (probability >= threshold).astype(int)  # as FixedThresholdClassifier
    return {
        "roc_auc": float(roc_auc_score(y_true, probability)),
        "pr_auc": float(average_precision_score(y_true, probability)),
        "log_loss": float(log_loss(y_true, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, probability)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "positive_rate": float(y_true.mean()),
        "predicted_positive_rate": float(predicted.mean()),
    }
