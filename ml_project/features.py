"""Feature building and the model: one sklearn Pipeline from raw flight records to a decision.

The Pipeline is what gets logged, so training, batch scoring and online serving share one code
path: a client sends the raw record (the flight's scheduled columns and the origin's weather at
the scheduled hour) and the model builds its own features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from ml_project.settings import FeatureSettings, ModelSettings


def _minutes(hhmm: pd.Series) -> pd.Series:
    """1530 -> 930 (minutes after midnight)."""
    values = pd.to_numeric(hhmm, errors="coerce")
    return (values // 100) * 60 + values % 100


def _day_of_week(frame: pd.DataFrame) -> pd.Series:
    dates = pd.to_datetime(
        {"year": frame["year"], "month": frame["month"], "day": frame["day"]}, errors="coerce"
    )
    return dates.dt.day_of_week.astype("float64")


# Derived feature -> (raw columns it needs, how to compute it). Any other feature name is a raw
# column passed through as is.
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[pd.DataFrame], pd.Series]]] = {
    "day_of_week": (("year", "month", "day"), _day_of_week),
    "dep_minutes": (("sched_dep_time",), lambda f: _minutes(f["sched_dep_time"])),
    "arr_minutes": (("sched_arr_time",), lambda f: _minutes(f["sched_arr_time"])),
}


def raw_columns(features: FeatureSettings) -> list[str]:
    """The raw input columns the model needs, in a fixed order (its signature)."""
    columns: list[str] = []
    for name in (*features.categorical, *features.numeric):
        for column in DERIVED[name][0] if name in DERIVED else (name,):
            if column not in columns:
                columns.append(column)
    return columns


def build_features(
    frame: pd.DataFrame, *, categorical: Sequence[str], numeric: Sequence[str]
) -> pd.DataFrame:
    """The model's feature frame: categoricals as strings, numerics as float64, config order."""
    out = {}
    for name in categorical:
        values = frame[name]
        out[name] = values.astype("object").where(values.notna(), np.nan)
    for name in numeric:
        if name in DERIVED:
            out[name] = DERIVED[name][1](frame).astype("float64")
        else:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


class FlightFeatures(TransformerMixin, BaseEstimator):
    """Stateless step: raw flight records -> the feature frame (see `build_features`)."""

    def __init__(self, categorical: Sequence[str] = (), numeric: Sequence[str] = ()):
        self.categorical = categorical
        self.numeric = numeric

    def fit(self, X, y=None):  # noqa: N803 - sklearn's naming
        return self

    def transform(self, X):  # noqa: N803
        return build_features(X, categorical=self.categorical, numeric=self.numeric)

    def get_feature_names_out(self, input_features=None):
        return np.asarray([*self.categorical, *self.numeric], dtype=object)


def build_model(*, features: FeatureSettings, params: ModelSettings, seed: int) -> Pipeline:
    """An unfitted Pipeline: features -> ordinal codes -> gradient boosting -> threshold."""
    categorical = list(features.categorical)
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    dtype=np.float64,
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    boosting = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        max_bins=params.max_bins,
        categorical_features=list(range(len(categorical))),
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline(
        [
            ("features", FlightFeatures(tuple(categorical), tuple(features.numeric))),
            ("encode", encode),
            (
                "classifier",
                FixedThresholdClassifier(
                    boosting, threshold=params.threshold, response_method="predict_proba"
                ),
            ),
        ]
    )


# Types skops must be told to trust when loading the model: our feature step, and what
# HistGradientBoosting stores when it has categorical features (its trees, and the
# `partial(check_array, ...)` of its internal passthrough). Listed here, checked by a test.
SKOPS_TRUSTED_TYPES = [
    "ml_project.features.FlightFeatures",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
]
