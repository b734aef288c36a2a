"""The flights demo: will a New York flight of 2013 arrive more than 15 minutes late?

Two tables (`flights`, hourly `weather` per airport), joined on the origin and the scheduled
hour; the label is `arr_delay > params.delay_threshold_minutes`; the model derives the weekday
and clock minutes from the raw columns, then the platform's gradient boosting, behind a fixed
decision threshold. Written only against the problem interface (ml_project/problem.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from ml_project import estimators
from ml_project.errors import DataError
from ml_project.input_rules import REFUSAL, InputRuleError

WEATHER_COLUMNS = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)
JOIN_KEYS = ("origin", "time_hour")
# Raw columns the feature step turns into others: derived name -> the raw columns it needs.
DERIVED = {
    "day_of_week": ("year", "month", "day"),
    "dep_minutes": ("sched_dep_time",),
    "arr_minutes": ("sched_arr_time",),
}


class Params(BaseModel):
    """The `params:` of the flights settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    delay_threshold_minutes: float = Field(description="arr_delay above this is 'late'")
    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0)
    max_bins: int = Field(ge=2, le=255)
    threshold: float = Field(gt=0, lt=1, description="P(late) at or above which 'late'")
    time_zone: str = Field(
        default="America/New_York",
        description="the zone of the tables' year/month/day/hour (time_hour is UTC)",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise ValueError(f"{value!r} is no IANA time zone (e.g. America/New_York)") from exc
        return value


def records(tables: dict[str, pd.DataFrame], params: Params) -> pd.DataFrame:
    """Each flight with the weather at its origin at the scheduled hour (NaN where none)."""
    flights, weather = tables["flights"], tables["weather"]
    _require(flights, JOIN_KEYS, "flights")
    impossible = _weekdays(flights)[1]
    if impossible.any():
        raise DataError(
            f"flights: {_date_rule(flights, impossible)}; each flight's year, month and day "
            "must be a real calendar date."
        )
    _require(weather, (*JOIN_KEYS, *WEATHER_COLUMNS), "weather")
    left = flights.drop(columns=[c for c in WEATHER_COLUMNS if c in flights.columns])
    right = weather.loc[:, [*JOIN_KEYS, *WEATHER_COLUMNS]].copy()
    left_time = _utc(left["time_hour"], table="flights")
    right["time_hour"] = _utc(right["time_hour"], table="weather")
    _require_local_hours(flights, left_time, params.time_zone, table="flights")
    _require_local_hours(weather, right["time_hour"], params.time_zone, table="weather")
    if right.duplicated(list(JOIN_KEYS)).any():
        dupes = int(right.duplicated(list(JOIN_KEYS)).sum())
        raise DataError(
            f"weather: {dupes} duplicated (origin, time_hour) rows; keys must be unique."
        )
    joined = left.assign(time_hour=left_time).merge(
        right, on=list(JOIN_KEYS), how="left", validate="many_to_one", sort=False
    )
    joined["time_hour"] = flights["time_hour"].to_numpy()
    return joined


def label(records: pd.DataFrame, params: Params) -> pd.Series:
    """1 if the flight arrived more than the threshold late, 0 if not, NaN if it never did."""
    _require(records, ("arr_delay",), "flights")
    delay = pd.to_numeric(records["arr_delay"], errors="coerce")
    late = (delay > params.delay_threshold_minutes).astype("float64")
    return late.where(delay.notna()).astype("Int64")


def build_model(*, features, task: str, params: Params, seed: int) -> Pipeline:
    """Raw records -> derived features -> ordinal codes -> boosting -> fixed threshold."""
    categorical = list(features.categorical)
    derived = FlightFeatures(tuple(categorical), tuple(features.numeric))
    boosting = estimators.boosting(
        task,
        n_categorical=len(categorical),
        params=estimators.boosting_params(params),
        seed=seed,
    )
    return Pipeline(
        [
            ("features", derived),
            ("encode", estimators.encoder(categorical)),
            (
                "model",
                FixedThresholdClassifier(
                    boosting, threshold=params.threshold, response_method="predict_proba"
                ),
            ),
        ]
    )


TRUSTED_TYPES = ["problems.flights.problem.FlightFeatures", *estimators.TRUSTED_TYPES]


LOCAL_HOUR = ("year", "month", "day", "hour")


def _require_local_hours(frame: pd.DataFrame, utc: pd.Series, zone: str, *, table: str) -> None:
    """Each row's time_hour (UTC, the join key) must be its own year/month/day/hour in `zone`:
    a table whose timestamps are shifted (local time written as UTC) would join each flight to
    the weather of other hours, silently."""
    _require(frame, LOCAL_HOUR, table)
    local = utc.dt.tz_convert(zone)
    parts = (local.dt.year, local.dt.month, local.dt.day, local.dt.hour)
    agree = utc.isna().to_numpy().copy()  # a missing time_hour is the suites' to refuse
    same = np.ones(len(frame), dtype=bool)
    for column, part in zip(LOCAL_HOUR, parts, strict=True):
        same &= pd.to_numeric(frame[column], errors="coerce").to_numpy() == part.to_numpy()
    agree |= same
    if agree.all():
        return
    first = int(np.flatnonzero(~agree)[0])
    said = "-".join(_number(frame[column].iloc[first]) for column in LOCAL_HOUR[:3])
    raise DataError(
        f"{table}: {int((~agree).sum())} of {len(frame)} row(s) have a time_hour that is not "
        f"their year/month/day/hour in {zone} (params.time_zone), e.g. time_hour "
        f"{frame['time_hour'].iloc[first]} is {local.iloc[first]:%Y-%m-%d %H}h there but the row "
        f"says {said} {_number(frame['hour'].iloc[first])}h. Shifted timestamps would join each "
        "flight to the weather of other hours: fix the file (time_hour in UTC), or "
        "params.time_zone."
    )


def _minutes(hhmm) -> np.ndarray:
    """1530 -> 930 (minutes after midnight)."""
    values = _numbers(hhmm)
    return (values // 100) * 60 + values % 100


def _numbers(values: pd.Series) -> np.ndarray:
    """`pd.to_numeric(values, errors="coerce")` as float64 (NaN where missing); a column of a
    NumPy number type directly, without pandas' conversion machinery (a served row pays it
    per column)."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iufb":
        return values.to_numpy(dtype="float64")
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def _text(values: pd.Series) -> pd.Series:
    """The values as objects, every missing one (None, NA) as NaN."""
    objects = values.to_numpy(dtype=object, copy=True)
    missing = values.isna().to_numpy()
    if missing.any():
        objects[missing] = np.nan
    return pd.Series(objects, index=values.index, dtype=object, copy=False)


def _weekdays(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each row's weekday (Monday 0) from its year, month and day, NaN where one is missing or
    they name no calendar day, and which rows name none although all three are given
    (February 30). Calendar arithmetic in numpy: pandas' date assembly costs milliseconds a
    call, most of a served row's feature step."""
    if not all(column in frame.columns for column in DERIVED["day_of_week"]):
        nothing = pd.Series(False, index=frame.index)
        return pd.Series(np.nan, index=frame.index), nothing
    year, month, day = (_numbers(frame[name]) for name in DERIVED["day_of_week"])
    given = ~(np.isnan(year) | np.isnan(month) | np.isnan(day))
    whole = given & (year == np.round(year)) & (month == np.round(month)) & (day == np.round(day))
    valid = whole & (month >= 1) & (month <= 12) & (day >= 1) & (np.abs(year) < 10_000)
    months = np.where(valid, (year - 1970) * 12 + month - 1, 0).astype("int64")
    first = months.astype("datetime64[M]").astype("datetime64[D]")
    length = ((months + 1).astype("datetime64[M]").astype("datetime64[D]") - first).astype(int)
    valid &= day <= length
    days = (first - np.datetime64("1970-01-01", "D")).astype("int64") + np.where(valid, day, 1) - 1
    weekday = np.where(valid, (days + 3) % 7, np.nan)  # 1970-01-01 was a Thursday (3)
    return pd.Series(weekday, index=frame.index), pd.Series(given & ~valid, index=frame.index)


def _date_rule(frame: pd.DataFrame, impossible: pd.Series) -> str:
    example = frame.loc[impossible, list(DERIVED["day_of_week"])].iloc[0]
    return (
        f"{int(impossible.sum())} of {len(frame)} row(s) have a year/month/day that is no "
        f"calendar date (e.g. {'-'.join(_number(v) for v in example.tolist())})"
    )


def _number(value) -> str:
    """2.0 as 2 (scoring passes numbers as doubles), anything else as it is."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def build_features(
    frame: pd.DataFrame,
    *,
    categorical: Sequence[str],
    numeric: Sequence[str],
    weekdays: pd.Series | None = None,
) -> pd.DataFrame:
    """The feature frame: categoricals as text, then month, the weekday, the scheduled
    minutes, and every other numeric column as is (the raw ones derived from are dropped).
    `weekdays`: the rows' `_weekdays`, when the caller has them already."""
    out: dict[str, object] = {name: _text(frame[name]) for name in categorical}
    consumed = {column for needs in DERIVED.values() for column in needs} - {"month"}
    derive = {
        "day_of_week": lambda f: (_weekdays(f)[0] if weekdays is None else weekdays).to_numpy(),
        "dep_minutes": lambda f: _minutes(f["sched_dep_time"]),
        "arr_minutes": lambda f: _minutes(f["sched_arr_time"]),
    }
    for name in numeric:
        if name not in consumed:
            out[name] = _numbers(frame[name])
    for name, needs in DERIVED.items():
        if all(column in numeric for column in needs):
            out[name] = np.asarray(derive[name](frame), dtype="float64")
    return pd.DataFrame(out, index=frame.index)


class FlightFeatures(TransformerMixin, BaseEstimator):
    """Stateless step: raw flight records -> the feature frame (see `build_features`)."""

    def __init__(self, categorical: Sequence[str] = (), numeric: Sequence[str] = ()):
        self.categorical = categorical
        self.numeric = numeric

    def fit(self, X, y=None):  # noqa: N803 - sklearn's naming
        return self

    def transform(self, X):  # noqa: N803
        weekdays, impossible = _weekdays(X)
        if impossible.any():  # a weekday of February 30 would silently be NaN
            raise InputRuleError(
                f"{REFUSAL}{_date_rule(X, impossible)} (problems/flights/problem.py)."
            )
        return build_features(
            X, categorical=self.categorical, numeric=self.numeric, weekdays=weekdays
        )

    def get_feature_names_out(self, input_features=None):
        names = build_features(
            pd.DataFrame(columns=[*self.categorical, *self.numeric]),
            categorical=self.categorical,
            numeric=self.numeric,
        ).columns
        return np.asarray(names, dtype=object)


def _require(frame: pd.DataFrame, columns, table: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"{table}: missing column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}."
        )


def _utc(values: pd.Series, *, table: str) -> pd.Series:
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{table}: column time_hour holds values that are not timestamps ({exc})."
        ) from exc
