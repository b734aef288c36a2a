"""The default estimator: raw input columns -> ordinal codes -> histogram gradient boosting.

A problem without its own `build_model` gets `tabular_model`; a problem with one may still use
it as its last steps, after a feature step of its own. Categorical
columns are read as text and encoded in the model, and timestamp columns (ISO text) become
numbers in it (time_features.TimeFeatures), so the logged Pipeline takes raw records.

Early stopping (`params.early_stopping: true`, off by default) is reproducible bit for bit:
HistGradientBoosting draws its validation rows with `random_state` (the settings' seed) from
the train rows, and the pipeline always hands it the same rows in the same order (the records
in their order, split by the seeded key hash: the run's `data.train_digest` covers the order),
so the same commit, config, seed and data stop at the same iteration with the same trees.
`params.log_target: true` (regression) fits the boosting on log1p(label) and answers
expm1(prediction), for a skewed non-negative label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from sklearn.utils.validation import check_is_fitted

from ml_project.errors import DataError
from ml_project.settings import FeatureSettings
from ml_project.time_features import TimeFeatures, derived_names
from ml_project.vocabulary import Task

# What skops must trust to load a fitted tabular_model (HistGradientBoosting's trees and the
# `partial(check_array, ...)` of its categorical passthrough). Checked by a unit test.
TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "ml_project.time_features.TimeFeatures",
    "ml_project.estimators.TabularEncoder",  # the encoding step (an OrdinalEncoder inside)
    "ml_project.estimators.log1p_label",  # params.log_target: the label's transform and back
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
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
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
    early_stopping: bool | None = Field(
        default=None,
        description="stop when the loss on a seeded validation share of the train rows stops "
        "improving (reproducible: drawn with the seed from rows in a fixed order); unset: off",
    )
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    n_iter_no_change: int | None = Field(default=None, ge=1)
    tol: float | None = Field(default=None, ge=0)
    log_target: bool = Field(
        default=False,
        description="regression: fit on log1p(label), answer expm1 (a skewed label >= 0)",
    )


def boosting_params(params: Any) -> dict[str, Any]:
    """The gradient-boosting hyper-parameters found in `params` (a dict or a pydantic model)."""
    values = params.model_dump() if hasattr(params, "model_dump") else dict(params or {})
    return {key: values[key] for key in BOOSTING_PARAMS if values.get(key) is not None}


def log1p_label(label: Any) -> np.ndarray:
    """log1p of a label that must be >= 0 (`params.log_target`); DataError otherwise."""
    values = np.asarray(label, dtype=np.float64)
    negative = values < 0
    if negative.any():
        raise DataError(
            f"params.log_target fits log1p(label), so the label must be >= 0, but "
            f"{int(negative.sum())} train label(s) are negative (smallest {values.min():g}): "
            "turn params.log_target off, or shift the label in the problem's label()."
        )
    return np.log1p(values)


def log_target(regressor: Any) -> TransformedTargetRegressor:
    """`regressor` fitted on log1p(label), answering expm1 of its prediction."""
    return TransformedTargetRegressor(
        regressor=regressor, func=log1p_label, inverse_func=np.expm1, check_inverse=False
    )


def encoder(categorical: Sequence[str], datetime: Sequence[str] = ()) -> TabularEncoder:
    """Ordinal codes for the text columns (unknown and missing -> NaN), then the numbers derived
    from each timestamp column (TimeFeatures), then the rest passed on: the categorical columns
    stay the first outputs."""
    return TabularEncoder(list(categorical), list(datetime))


class TabularEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """The default model's encoding in one step: `categorical`'s ordinal codes (an OrdinalEncoder
    fitted as before; unknown and missing -> NaN), then TimeFeatures of `datetime`, then every
    other column as it is, in the frame's order. The same numbers in the same order and dtype as
    the ColumnTransformer of those steps with `remainder="passthrough"` that it replaces, without
    that one's per-call machinery (a frame rebuilt per transformer, joblib, checks per step): a
    served row pays per column, not per transformer. Text categories are looked up in a dict
    built once a process (the codes OrdinalEncoder gives, its Python equality); any other
    category type goes through the fitted OrdinalEncoder itself."""

    def __init__(self, categorical: Sequence[str] = (), datetime: Sequence[str] = ()):
        self.categorical = categorical
        self.datetime = datetime

    def fit(self, X: Any, y: object = None) -> Self:  # noqa: N803 (scikit-learn's names)
        frame = _frame(X)
        chosen = [*self.categorical, *self.datetime]
        absent = [name for name in chosen if name not in frame.columns]
        if absent:
            raise ValueError(f"columns are missing: {set(absent)}")
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.remainder_ = [name for name in frame.columns if name not in chosen]
        self.ordinal_ = (
            OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                dtype=np.float64,
            ).fit(frame[list(self.categorical)])
            if len(self.categorical)
            else None
        )
        self.times_ = TimeFeatures().fit(frame[list(self.datetime)]) if len(self.datetime) else None
        return self

    def transform(self, X: Any) -> npt.NDArray[Any]:  # noqa: N803
        check_is_fitted(self, "n_features_in_")
        frame = _frame(X)
        absent = [name for name in self.feature_names_in_ if name not in frame.columns]
        if absent:
            raise ValueError(f"columns are missing: {set(absent)}")
        parts: list[Any] = []
        if self.ordinal_ is not None:
            parts.append(self._codes(frame))
        if self.times_ is not None:
            parts.append(self.times_.transform(frame[list(self.datetime)]))
        if self.remainder_:
            parts.append(frame[self.remainder_])  # np.hstack: its dtype, as before
        if not parts:
            return np.zeros((len(frame), 0))
        return np.hstack(parts)

    def _codes(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        lookups = self.__dict__.get("_lookups")
        if lookups is None:  # once a process: not saved with the model (__getstate__)
            assert self.ordinal_ is not None
            lookups = self._lookups = [text_codes(c) for c in self.ordinal_.categories_]
        columns = list(self.categorical)
        if not all(lookup is not None for lookup in lookups):
            assert self.ordinal_ is not None
            codes: npt.NDArray[np.float64] = self.ordinal_.transform(frame[columns])
            return codes
        codes = np.empty((len(frame), len(columns)), dtype=np.float64)
        for index, (name, lookup) in enumerate(zip(columns, lookups, strict=True)):
            get = cast(dict[Any, float], lookup).get
            codes[:, index] = [get(value, np.nan) for value in frame[name].to_numpy(object)]
        return codes

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_lookups", None)
        return state

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        check_is_fitted(self, "n_features_in_")
        names = [*self.categorical, *derived_names(self.datetime), *self.remainder_]
        return np.asarray(names, dtype=object)


def text_codes(categories: npt.NDArray[Any]) -> dict[Any, float] | None:
    """Category -> its code (its position, as OrdinalEncoder numbers them), when every category
    is text (or None, which OrdinalEncoder encodes as a category of its own); None otherwise
    (numbers compare otherwise than by dict lookup: OrdinalEncoder's own way then). A NaN
    category is left out: NaN encodes as missing (NaN), as anything not in the dict does."""
    values = categories.tolist()
    nan = [isinstance(value, float) and np.isnan(value) for value in values]
    if not all(isinstance(v, str) or v is None or n for v, n in zip(values, nan, strict=True)):
        return None
    return {v: float(code) for code, (v, n) in enumerate(zip(values, nan, strict=True)) if not n}


def _frame(X: Any) -> pd.DataFrame:  # noqa: N803
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"the encoder selects columns by name, so it needs a DataFrame, got {type(X).__name__}"
        )
    return X


def boosting(
    task: Task, *, n_categorical: int, params: Mapping[str, Any], seed: int
) -> HistGradientBoostingClassifier | HistGradientBoostingRegressor:
    """HistGradientBoostingClassifier or -Regressor; the first `n_categorical` inputs are
    categorical. Early stopping only when `params` turns it on (`early_stopping: true`): its
    validation rows are a draw seeded by `seed` (reproducible, see the module's docstring)."""
    estimator = (
        HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    )
    chosen = {key: value for key, value in params.items() if key in BOOSTING_PARAMS}
    chosen["early_stopping"] = bool(chosen.get("early_stopping", False))
    return estimator(
        categorical_features=list(range(n_categorical)) or None,
        random_state=seed,
        **chosen,
    )


def tabular_model(*, features: FeatureSettings, task: Task, params: Any, seed: int) -> Pipeline:
    """Pipeline(encode, boosting) over `features.categorical`, the numbers derived from
    `features.datetime`, then `features.numeric`; the boosting behind `log_target` when a
    regression's `params.log_target` is true."""
    categorical = list(features.categorical)
    model: Any = boosting(
        task, n_categorical=len(categorical), params=boosting_params(params), seed=seed
    )
    if task == "regression" and _wants_log_target(params):
        model = log_target(model)
    encode = encoder(categorical, getattr(features, "datetime", ()))
    return Pipeline([("encode", encode), ("model", model)])


def _wants_log_target(params: Any) -> bool:
    values = params.model_dump() if hasattr(params, "model_dump") else dict(params or {})
    return bool(values.get("log_target"))
