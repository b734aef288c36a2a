"""The default estimator: raw input columns -> ordinal codes -> histogram gradient boosting.

A problem without its own `build_model` gets `tabular_model`; a problem with one may still use
it as its last steps, after a feature step of its own. Categorical
columns are read as text and encoded in the model, and timestamp columns (ISO text) become
numbers in it (time_features.TimeFeatures), so the logged Pipeline takes raw records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    from ml_project.settings import FeatureSettings

# What skops must trust to load a fitted tabular_model (HistGradientBoosting's trees and the
# `partial(check_array, ...)` of its categorical passthrough). Checked by a unit test.
TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "ml_project.time_features.TimeFeatures",
]
# Hyper-parameters of HistGradientBoosting* that `params` may set; other params keys are the
# problem's own and are ignored here.
BOOSTING_PARAMS = (
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "max_depth",
    "min_samples_leaf",
    "l2_regularization",
    "max_bins",
    "max_features",
)


class DefaultParams(BaseModel):
    """What `params:` may hold for the default model: its hyper-parameters, checked when the
    settings load. Any other key is refused (a typo would be ignored silently): a problem with
    knobs of its own declares its own `Params`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    learning_rate: float | None = Field(default=None, gt=0)
    max_iter: int | None = Field(default=None, ge=1)
    max_leaf_nodes: int | None = Field(default=None, ge=2)
    max_depth: int | None = Field(default=None, ge=1)
    min_samples_leaf: int | None = Field(default=None, ge=1)
    l2_regularization: float | None = Field(default=None, ge=0)
    max_bins: int | None = Field(default=None, ge=2, le=255)
    max_features: float | None = Field(default=None, gt=0, le=1)


def boosting_params(params: Any) -> dict[str, Any]:
    """The gradient-boosting hyper-parameters found in `params` (a dict or a pydantic model)."""
    values = params.model_dump() if hasattr(params, "model_dump") else dict(params or {})
    return {key: values[key] for key in BOOSTING_PARAMS if values.get(key) is not None}


def encoder(categorical: Sequence[str], datetime: Sequence[str] = ()) -> ColumnTransformer:
    """Ordinal codes for the text columns (unknown and missing -> NaN), then the numbers derived
    from each timestamp column (TimeFeatures), then the rest passed on: the categorical columns
    stay the first outputs."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    from ml_project.time_features import TimeFeatures

    steps: list[tuple[str, Any, list[str]]] = [
        (
            "categorical",
            OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                dtype=np.float64,
            ),
            list(categorical),
        )
    ]
    if datetime:  # none: the same transformer as before times were known
        steps.append(("datetime", TimeFeatures(), list(datetime)))
    return ColumnTransformer(steps, remainder="passthrough", verbose_feature_names_out=False)


def boosting(
    task: str, *, n_categorical: int, params: Mapping[str, Any], seed: int
) -> HistGradientBoostingClassifier | HistGradientBoostingRegressor:
    """HistGradientBoostingClassifier or -Regressor; the first `n_categorical` inputs are
    categorical. No early stopping: it would hold out rows by a draw of its own."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    estimator = (
        HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    )
    return estimator(
        categorical_features=list(range(n_categorical)) or None,
        early_stopping=False,
        random_state=seed,
        **params,
    )


def tabular_model(*, features: FeatureSettings, task: str, params: Any, seed: int) -> Pipeline:
    """Pipeline(encode, boosting) over `features.categorical`, the numbers derived from
    `features.datetime`, then `features.numeric`."""
    from sklearn.pipeline import Pipeline

    categorical = list(features.categorical)
    return Pipeline(
        [
            ("encode", encoder(categorical, getattr(features, "datetime", ()))),
            (
                "model",
                boosting(
                    task, n_categorical=len(categorical), params=boosting_params(params), seed=seed
                ),
            ),
        ]
    )
