"""Numbers derived from timestamp columns, inside the default model (estimators.encoder).

The model reads each `features.datetime` column as ISO 8601 text (records.model_input turns
native datetimes into it); `TimeFeatures` parses it (pandas, ISO 8601, in UTC: a naive time is
read as it is written) and derives, per column, the calendar parts and one continuous clock:
`<column>_year`, `_month`, `_day`, `_weekday` (Monday 0), `_hour`, `_dayofyear` and
`_epoch_days` (days since 1970-01-01, a float). A value that does not parse is NaT and gives
NaN, never an exception: the model-input suite and the input rules are where a bad time is
refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ml_project.data import epoch_seconds, parse_times

PARTS = ("year", "month", "day", "weekday", "hour", "dayofyear", "epoch_days")
SECONDS_PER_DAY = 86_400.0


def derived_names(columns: Iterable[str]) -> list[str]:
    """The names of the numbers derived from each of `columns`: `<column>_<part>`."""
    return [f"{name}_{part}" for name in columns for part in PARTS]


def derive(values: pd.Series) -> npt.NDArray[np.float64]:
    """The PARTS of one column of timestamps (text or native), one column each, float64."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = values.astype("object").where(values.notna(), None)
        values = values.map(lambda value: value if value is None else str(value))
    stamps = parse_times(values)
    columns = [*calendar(stamps.dt.tz_convert(None).to_numpy())]
    columns.append(epoch_seconds(stamps) / SECONDS_PER_DAY)
    return np.column_stack(columns)


def calendar(naive: npt.NDArray[np.datetime64]) -> list[npt.NDArray[np.float64]]:
    """Year, month, day, weekday (Monday 0), hour and day of the year of naive UTC datetimes,
    float64, NaN for NaT: what pandas' `.dt` accessors give, by NumPy's calendar arithmetic
    (datetime64 casts floor, also before 1970) instead of one pandas call per part (a served row
    paid ~0.5 ms a column for them)."""
    days = naive.astype("datetime64[D]")
    months = naive.astype("datetime64[M]")
    years = naive.astype("datetime64[Y]")
    parts = [
        years.astype(np.int64) + 1970,
        months.astype(np.int64) % 12 + 1,
        (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday (3)
        (naive - days).astype("timedelta64[h]").astype(np.int64),
        (days - years.astype("datetime64[D]")).astype(np.int64) + 1,
    ]
    missing = np.isnat(naive)
    return [np.where(missing, np.nan, part.astype(np.float64)) for part in parts]


class TimeFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Timestamp columns in, len(PARTS) numeric columns out per column (see the module)."""

    def fit(self, X: Any, y: object = None) -> Self:  # noqa: N803 (scikit-learn's names)
        frame = pd.DataFrame(X)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(name) for name in X.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> npt.NDArray[np.float64]:  # noqa: N803
        check_is_fitted(self, "n_features_in_")
        frame = pd.DataFrame(X).reset_index(drop=True)
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(
                f"TimeFeatures was fitted on {self.n_features_in_} column(s), got {frame.shape[1]}"
            )
        blocks = [derive(frame.iloc[:, index]) for index in range(frame.shape[1])]
        if not blocks:
            return np.empty((len(frame), 0), dtype=np.float64)
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        if input_features is None:
            input_features = [f"x{index}" for index in range(self.n_features_in_)]
        return np.asarray(derived_names(input_features), dtype=object)
