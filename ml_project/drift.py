"""Drift steps (pure): a reference profile of what the model saw, and a batch compared with it.

`reference_profile` records each model feature of the training rows (numeric: quantile bins;
categorical: the most frequent categories and "other"; time: the observed range; each with its
null rate) and the model's held-out score (`metrics.Predictions.score`). `BatchCounts` counts a
batch chunk by chunk into the same bins; `assess` turns the counts into a population stability
index (PSI, shares clipped to EPSILON, non-null values only) per feature and for the score,
null-rate changes, optional live quality, and a verdict. A time feature moves by design: no
PSI, its range is shown and only its null rate is checked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml_project.data import epoch_seconds, parse_times, time_text
from ml_project.results import plain
from ml_project.settings import MonitorSettings

PROFILE_ARTIFACT = "monitoring/reference_profile.json"
PROFILE_FORMAT = 1
# The report's name for the model's score (profiles logged before it was named held the same
# number, P(positive class), under the same "prediction" key: they read unchanged).
PREDICTION = "score"
EPSILON = 1e-4  # the share an empty bin counts as


def model_features(model: Any, raw: pd.DataFrame) -> pd.DataFrame:
    """What the model's own feature step makes of the raw columns (the raw columns without one)."""
    steps = getattr(model, "named_steps", None) or {}
    step = steps.get("features")
    return step.transform(raw) if step is not None else raw


def quantile_edges(values: npt.ArrayLike, *, bins: int) -> list[float]:
    """Inner bin edges at the quantiles of the non-null `values` (ties merged)."""
    present = _present(values)
    if present.size == 0 or bins < 2:
        return []
    edges = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return [float(edge) for edge in np.unique(edges)]


def numeric_counts(values: npt.ArrayLike, edges: Sequence[float]) -> np.ndarray:
    """Non-null values per bin: (-inf, e1], (e1, e2], ..., (ek, inf)."""
    present = _present(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def category_counts(values: npt.ArrayLike, categories: Sequence[str]) -> np.ndarray:
    """Non-null values per category, in `categories` order, then the rest in one bucket."""
    codes = pd.Index(list(categories), dtype="str").get_indexer(_present_text(values))
    index = np.where(codes < 0, len(categories), codes)
    return np.bincount(index, minlength=len(categories) + 1).astype(np.int64)


def numeric_profile(values: np.ndarray | Sequence[Any], *, bins: int) -> dict[str, Any]:
    edges = quantile_edges(values, bins=bins)
    return _profile("numeric", values, numeric_counts(values, edges), edges=edges)


def categorical_profile(
    values: np.ndarray | Sequence[Any], *, max_categories: int
) -> dict[str, Any]:
    frequency = _present_text(values).value_counts()
    ordered = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))
    categories = [name for name, _ in ordered[:max_categories]]
    return _profile(
        "categorical", values, category_counts(values, categories), categories=categories
    )


def _profile(
    kind: str, values: Sized, counts: np.ndarray, **bins: list[float] | list[str]
) -> dict[str, Any]:
    total = len(values)
    present = int(counts.sum())
    return {
        "kind": kind,
        **bins,
        "proportions": _shares(counts).tolist(),
        "rows": total,
        "null_rate": (total - present) / total if total else 0.0,
    }


def time_values(values: np.ndarray | Sequence[Any]) -> tuple[np.ndarray, bool]:
    """Sortable numbers of a time feature (NaN: missing or not a time), and whether they are
    timestamps (seconds since 1970, UTC) rather than plain numbers (a year)."""
    series = pd.Series(values)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), False
    return epoch_seconds(parse_times(series)), True


def time_profile(values: np.ndarray | Sequence[Any]) -> dict[str, Any]:
    numbers, stamps = time_values(values)
    present = numbers[~np.isnan(numbers)]
    total = len(numbers)
    return {
        "kind": "time",
        "timestamps": stamps,
        "min": float(present.min()) if present.size else None,
        "max": float(present.max()) if present.size else None,
        "proportions": [],
        "rows": total,
        "null_rate": (total - present.size) / total if total else 0.0,
    }


def shown_time(value: float | None, *, timestamps: bool) -> str:
    """One end of a time range as text: ISO 8601 for a timestamp, the number otherwise."""
    if value is None or not math.isfinite(value):
        return "-"
    if timestamps:
        return time_text(pd.Timestamp(value, unit="s", tz="UTC"))
    return f"{value:g}"


def reference_profile(
    features: pd.DataFrame,
    score: npt.ArrayLike,
    *,
    categorical: Iterable[str],
    settings: MonitorSettings,
    times: Iterable[str] = (),
) -> dict[str, Any]:
    """The profile of the training rows' model features and of the held-out scores; `times`
    names the time features (a range each, no bins)."""
    categorical, times = set(categorical), set(times)
    profiled = {}
    for name in features.columns:
        values = features[name].to_numpy()
        if name in times:
            profiled[str(name)] = time_profile(values)
        elif name in categorical:
            profiled[str(name)] = categorical_profile(
                values, max_categories=settings.max_categories
            )
        else:
            profiled[str(name)] = numeric_profile(values, bins=settings.bins)
    return {
        "format": PROFILE_FORMAT,
        "features": profiled,
        "prediction": numeric_profile(np.asarray(score, dtype=np.float64), bins=settings.bins),
    }


@dataclass
class _Tally:
    counts: np.ndarray
    rows: int = 0
    present: int = 0  # non-null values
    low: float = math.inf  # a time feature's range
    high: float = -math.inf


@dataclass
class BatchCounts:
    """A batch counted into the reference profile's bins, one chunk at a time."""

    profile: dict[str, Any]
    tallies: dict[str, _Tally] = field(default_factory=dict)  # per model feature
    score: _Tally | None = None
    rows: int = 0

    def __post_init__(self) -> None:
        for name, reference in self.profile["features"].items():
            self.tallies[name] = _Tally(_empty(reference))
        self.score = _Tally(_empty(self.profile["prediction"]))

    def add(self, features: pd.DataFrame, score: npt.ArrayLike) -> None:
        """Count one chunk: its model features and the model's scores."""
        self.rows += len(features)
        for name, reference in self.profile["features"].items():
            if name in features.columns:
                _count(self.tallies[name], reference, features[name].to_numpy())
            # else: the model no longer makes this feature: nothing to compare
        assert self.score is not None  # set by __post_init__
        _count(self.score, self.profile["prediction"], np.asarray(score, dtype=np.float64))


def _empty(reference: dict[str, Any]) -> np.ndarray:
    return np.zeros(len(reference["proportions"]), dtype=np.int64)


def _count(tally: _Tally, reference: dict[str, Any], values: np.ndarray | Sequence[Any]) -> None:
    if reference["kind"] == "time":
        numbers = time_values(values)[0]
        present = numbers[~np.isnan(numbers)]
        tally.present += int(present.size)
        if present.size:
            tally.low = min(tally.low, float(present.min()))
            tally.high = max(tally.high, float(present.max()))
        tally.rows += len(values)
        return
    if reference["kind"] == "categorical":
        counts = category_counts(values, reference["categories"])
    else:
        counts = numeric_counts(values, reference["edges"])
    tally.counts += counts
    tally.present += int(counts.sum())
    tally.rows += len(values)


def psi(reference: npt.ArrayLike, batch: npt.ArrayLike, *, epsilon: float = EPSILON) -> float:
    """Population stability index of two distributions over the same bins (counts or shares)."""
    expected = _shares(np.asarray(reference, dtype=np.float64))
    actual = _shares(np.asarray(batch, dtype=np.float64))
    if expected.sum() == 0 or actual.sum() == 0:
        return 0.0  # no values on one side: the null rate tells that story
    expected = np.clip(expected, epsilon, None)
    actual = np.clip(actual, epsilon, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def bin_labels(reference: dict[str, Any]) -> list[str]:
    """Readable names of a profile's bins, for tables and plots."""
    if reference["kind"] == "categorical":
        return [*reference["categories"], "other"]
    if reference["kind"] == "time":
        return []  # a range, no bins
    edges = reference["edges"]
    if not edges:
        return ["all"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"({low:.4g}, {high:.4g}]" for low, high in zip(edges, edges[1:], strict=False)]
    return [*labels, f"> {edges[-1]:.4g}"]


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the prediction score) of a batch against its reference."""

    feature: str
    kind: str  # numeric | categorical | time | prediction
    psi: float
    reference_null_rate: float
    batch_null_rate: float
    status: str  # ok | warn | drift | ignored
    bins: tuple[str, ...]
    reference_shares: tuple[float, ...]
    batch_shares: tuple[float, ...]
    # a time feature's observed range, training and batch (informational: never a reason)
    reference_range: tuple[str, str] | None = None
    batch_range: tuple[str, str] | None = None

    @property
    def null_rate_change(self) -> float:
        return self.batch_null_rate - self.reference_null_rate

    def range_line(self) -> str:
        """A time feature's ranges in one line ('' for any other feature)."""
        if self.reference_range is None or self.batch_range is None:
            return ""
        return (
            f"time {self.feature}: training {' .. '.join(self.reference_range)}, "
            f"batch {' .. '.join(self.batch_range)} (no PSI: time moves by design)"
        )


@dataclass(frozen=True)
class Quality:
    """Live quality on a labelled batch: one metric (the gate's primary one) against the value
    the training run recorded on its held-out rows, and every metric of the task.

    `max_drop` (monitor.max_quality_drop) has the gate tolerance's semantics: in the metric's
    own terms for a bounded score, a fraction of the recorded value for a metric with units
    (`units`: rmse, mae, log_loss...)."""

    metric: str
    higher_is_better: bool
    live: float
    recorded: float
    max_drop: float
    rows: int
    unlabelled_dropped: int
    live_metrics: dict[str, float]
    note: str = ""  # what limits the comparison (e.g. one class among the labelled rows)
    unknown_class_rows: int = 0  # labelled rows of a class the model never learnt: left out
    unknown_classes: tuple[str, ...] = ()  # the most frequent of those classes, as text
    units: bool = False

    @property
    def drop(self) -> float:
        """How much worse the live value is, in the metric's bad direction (< 0: better)."""
        return self.recorded - self.live if self.higher_is_better else self.live - self.recorded

    @property
    def allowed(self) -> float:
        """The largest drop that is not drift, in the metric's units."""
        return self.max_drop * abs(self.recorded) if self.units else self.max_drop

    @property
    def status(self) -> str:
        """ok | drift | undefined (the metric has no value on these rows)."""
        if math.isnan(self.drop):
            return "undefined"
        return "drift" if self.drop > self.allowed else "ok"

    def reason(self) -> str:
        """Why the live value is drift, in one line."""
        direction = "below" if self.higher_is_better else "above"
        setting = f"monitor.max_quality_drop {self.max_drop:g}" + (
            " of the recorded value" if self.units else ""
        )
        return (
            f"live {self.metric} {self.live:.4f} is {self.drop:.4f} {direction} the recorded "
            f"{self.recorded:.4f} (limit {self.allowed:.4g}: {setting}) on {self.rows} "
            "labelled rows"
        )


@dataclass(frozen=True)
class DriftReport:
    """Every feature (worst first), the score, live quality if labelled, and the verdict."""

    rows: int
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift
    quality: Quality | None
    reasons: tuple[str, ...]

    @property
    def status(self) -> str:
        if self.reasons:
            return "drift"
        checked = (*self.features, self.prediction)
        undefined = self.quality is not None and self.quality.status == "undefined"
        return "warn" if undefined or any(item.status == "warn" for item in checked) else "ok"


def feature_drift(
    name: str, reference: dict[str, Any], tally: _Tally, settings: MonitorSettings, *, kind: str
) -> FeatureDrift:
    """PSI and null rates of one tallied feature, with its status under `settings` (a time
    feature: its null rate only, and its range)."""
    batch_null_rate = (tally.rows - tally.present) / tally.rows if tally.rows else 0.0
    timed = reference["kind"] == "time"
    value = 0.0 if timed else psi(reference["proportions"], tally.counts)
    change = abs(batch_null_rate - reference["null_rate"])
    ranges: dict[str, tuple[str, str]] = {}
    if timed:
        stamps = bool(reference.get("timestamps"))
        ranges = {
            "reference_range": (
                shown_time(reference["min"], timestamps=stamps),
                shown_time(reference["max"], timestamps=stamps),
            ),
            "batch_range": (
                shown_time(tally.low, timestamps=stamps),
                shown_time(tally.high, timestamps=stamps),
            ),
        }
    if name in settings.ignore:
        status = "ignored"
    elif value >= settings.psi_alert or change > settings.null_rate_change:
        status = "drift"
    elif value >= settings.psi_warn:
        status = "warn"
    else:
        status = "ok"
    return FeatureDrift(
        feature=name,
        kind=kind,
        psi=value,
        reference_null_rate=float(reference["null_rate"]),
        batch_null_rate=batch_null_rate,
        status=status,
        bins=tuple(bin_labels(reference)),
        reference_shares=tuple(float(share) for share in reference["proportions"]),
        batch_shares=tuple(_shares(tally.counts).tolist()),
        **ranges,
    )


def assess(
    counts: BatchCounts, settings: MonitorSettings, *, quality: Quality | None = None
) -> DriftReport:
    """The drift report of a counted batch: a reason for each threshold crossed."""
    profile = counts.profile
    features = [
        feature_drift(name, reference, counts.tallies[name], settings, kind=reference["kind"])
        for name, reference in profile["features"].items()
        if counts.tallies[name].rows
    ]
    features.sort(key=lambda item: (-item.psi, item.feature))
    assert counts.score is not None  # set by BatchCounts.__post_init__
    prediction = feature_drift(
        PREDICTION, profile["prediction"], counts.score, settings, kind="prediction"
    )
    reasons = []
    for item in (*features, prediction):
        if item.status != "drift":
            continue
        if item.psi >= settings.psi_alert:
            reasons.append(f"PSI of {item.feature} {item.psi:.3f} >= {settings.psi_alert}")
        if abs(item.null_rate_change) > settings.null_rate_change:
            reasons.append(
                f"null rate of {item.feature} {item.reference_null_rate:.1%} -> "
                f"{item.batch_null_rate:.1%} (limit {settings.null_rate_change:.1%})"
            )
    if quality is not None and quality.status == "drift":
        reasons.append(quality.reason())
    if quality is not None and quality.unknown_class_rows:
        labelled = quality.rows + quality.unknown_class_rows
        share = quality.unknown_class_rows / labelled
        if share > settings.max_unknown_classes:
            reasons.append(
                f"{quality.unknown_class_rows} of {labelled} labelled rows ({share:.1%}) hold "
                f"classes the model never learnt ({', '.join(quality.unknown_classes)}), more "
                f"than monitor.max_unknown_classes {settings.max_unknown_classes:.1%}"
            )
    return DriftReport(
        rows=counts.rows,
        features=tuple(features),
        prediction=prediction,
        quality=quality,
        reasons=tuple(reasons),
    )


def _present(values: npt.ArrayLike) -> np.ndarray:
    series = pd.to_numeric(pd.Series(values), errors="coerce")
    array: npt.NDArray[np.float64] = series.to_numpy(dtype=np.float64)
    return array[~np.isnan(array)]


def _present_text(values: npt.ArrayLike) -> pd.Series:
    """The non-null `values` as text (vectorised: no Python object per value)."""
    series = pd.Series(values)
    return series[series.notna()].astype("str")


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts)


ALERTING = ("warn", "drift")
TOP_FEATURES = 10  # the table and the plot show these worst by PSI, and every one that alerts


def drift_row(item: FeatureDrift) -> dict[str, Any]:
    """A feature's row of the drift table; the ranges and the note are '' but for a time one."""
    ranges = (item.reference_range, item.batch_range)
    return {
        "feature": item.feature,
        "kind": item.kind,
        "psi": item.psi,
        "reference_null_rate": item.reference_null_rate,
        "batch_null_rate": item.batch_null_rate,
        "null_rate_change": item.null_rate_change,
        "status": item.status,
        "reference_range": " .. ".join(ranges[0]) if ranges[0] else "",
        "batch_range": " .. ".join(ranges[1]) if ranges[1] else "",
        "note": item.range_line(),
    }


def quality_data(quality: Quality) -> dict[str, Any]:
    """Live quality as JSON data (an undefined value is None)."""
    computed = {"drop": quality.drop, "allowed": quality.allowed, "relative": quality.units}
    data: dict[str, Any] = {**plain(quality), **plain(computed), "status": quality.status}
    del data["units"]
    return data


def report_data(report: DriftReport) -> dict[str, Any]:
    """A drift report as JSON data (the run's monitoring/report.json)."""
    return {
        "status": report.status,
        "rows": report.rows,
        "reasons": list(report.reasons),
        "features": [drift_row(item) for item in report.features],
        "prediction": drift_row(report.prediction),
        "quality": quality_data(report.quality) if report.quality else None,
    }


def shown(statuses: Sequence[str], *, top: int) -> list[int]:
    """Positions of the features a summary shows, in the report's order (worst PSI first): the
    `top` worst, and every other one that warns or drifts (a null-rate move drifts at any PSI)."""
    return [at for at, status in enumerate(statuses) if at < top or status in ALERTING]
