"""The quality gate (pure): metrics in, a verdict with its reasons out.

Fail-closed: a version passes only if every check passes, and a check that cannot be made (a
metric missing or NaN, a champion that could not be scored) fails. The checks:

- enough rows: at least `gate.min_test_rows` held-out rows, or no decision is made;
- floors and ceilings: the version's own held-out scores against the env's absolute limits;
- the baseline: on the primary metric, the version must beat a model that ignores the
  features (metrics.baseline_predictions), so a fresh problem is fail-closed before anyone
  tunes its floors;
- the champion: when the registered model has a `champion` (and the env compares), both
  models are scored on the same held-out rows, none of which either model trained on, and
  the new version may trail the champion on the primary metric by at most `tolerance`.

`mlflow.validate_evaluation_results` (MLflow 3.17) can only demand that a candidate *beat* its
baseline by a positive margin (`min_absolute_change > 0`); "not worse by more than a
tolerance" is not expressible with it, so the comparison is written out here, in a few lines
that the unit tests pin down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ml_project import metrics as registry
from ml_project.settings import GateSettings

PASSED, FAILED = "passed", "failed"


@dataclass(frozen=True)
class Check:
    """One rule of the gate and how the version fared."""

    name: str  # "rows", "floor", "ceiling", "baseline", "champion"
    metric: str
    passed: bool
    message: str
    value: float | None = None
    limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "passed": self.passed,
            "value": _number(self.value),
            "limit": _number(self.limit),
            "message": self.message,
        }


@dataclass(frozen=True)
class Baseline:
    """The champion scored next to the new version on the same held-out rows.

    `error` says why the comparison could not be made (then the metrics are empty).
    """

    version: str
    champion_metrics: Mapping[str, float] = field(default_factory=dict)
    challenger_metrics: Mapping[str, float] = field(default_factory=dict)
    rows: int = 0
    excluded_rows: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one version, with every check that led to it."""

    passed: bool
    checks: tuple[Check, ...]
    metrics: Mapping[str, float]
    primary_metric: str
    tolerance: float
    baseline: Baseline | None

    @property
    def status(self) -> str:
        return PASSED if self.passed else FAILED

    @property
    def reasons(self) -> list[str]:
        """Why it failed (the failed checks), or why it passed (every check)."""
        failed = [check.message for check in self.checks if not check.passed]
        return failed if failed else [check.message for check in self.checks]

    def as_dict(self) -> dict[str, Any]:
        baseline = self.baseline
        return {
            "status": self.status,
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": [check.as_dict() for check in self.checks],
            "metrics": {key: _number(value) for key, value in self.metrics.items()},
            "primary_metric": self.primary_metric,
            "tolerance": self.tolerance,
            "champion_version": baseline.version if baseline else None,
            "champion_metrics": {
                key: _number(value)
                for key, value in (baseline.champion_metrics if baseline else {}).items()
            },
            "comparison": None
            if baseline is None
            else {
                "rows": baseline.rows,
                "excluded_rows": baseline.excluded_rows,
                "champion": {k: _number(v) for k, v in baseline.champion_metrics.items()},
                "challenger": {k: _number(v) for k, v in baseline.challenger_metrics.items()},
                "error": baseline.error,
            },
        }

    def as_tags(self) -> dict[str, str]:
        """Model version tags: `validation_status`, `validation_reasons` and the numbers."""
        tags = {
            "validation_status": self.status,
            "validation_reasons": "; ".join(self.reasons),
            "gate.primary_metric": self.primary_metric,
            "gate.tolerance": str(self.tolerance),
            "gate.checks": json.dumps([check.as_dict() for check in self.checks]),
            **{f"gate.{key}": _text(value) for key, value in sorted(self.metrics.items())},
            "gate.champion_version": self.baseline.version if self.baseline else "none",
        }
        if self.baseline is not None and self.baseline.error is None:
            metric = self.primary_metric
            tags["gate.comparison_rows"] = str(self.baseline.rows)
            tags["gate.comparison_excluded_rows"] = str(self.baseline.excluded_rows)
            tags[f"gate.champion_{metric}"] = _text(self.baseline.champion_metrics.get(metric))
            tags[f"gate.challenger_{metric}"] = _text(self.baseline.challenger_metrics.get(metric))
        return tags


def judge(
    metrics: Mapping[str, float],
    settings: GateSettings,
    *,
    task: str,
    rows: int,
    baseline_metrics: Mapping[str, float] | None = None,
    baseline: Baseline | None = None,
) -> Verdict:
    """Apply the env's gate to a version's held-out `metrics` (on `rows` rows), the metrics of a
    model that ignores the features on the same rows, and, if any, its champion."""
    higher = {name: metric.higher_is_better for name, metric in registry.metrics_of(task).items()}
    checks = [_rows_check(rows, settings.min_test_rows)]
    checks += [
        _limit_check("floor", metric, metrics.get(metric), limit, True)
        for metric, limit in sorted(settings.floors.items())
    ] + [
        _limit_check("ceiling", metric, metrics.get(metric), limit, False)
        for metric, limit in sorted(settings.ceilings.items())
    ]
    checks.append(
        _baseline_check(
            settings.primary_metric,
            metrics.get(settings.primary_metric),
            (baseline_metrics or {}).get(settings.primary_metric),
            higher[settings.primary_metric],
        )
    )
    if baseline is not None:
        checks.append(_champion_check(baseline, settings, higher[settings.primary_metric]))
    return Verdict(
        passed=all(check.passed for check in checks),
        checks=tuple(checks),
        metrics=dict(metrics),
        primary_metric=settings.primary_metric,
        tolerance=settings.tolerance,
        baseline=baseline,
    )


def _rows_check(rows: int, minimum: int) -> Check:
    if rows >= minimum:
        return Check("rows", "", True, f"{rows} held-out rows >= gate.min_test_rows {minimum}")
    return Check(
        "rows",
        "",
        False,
        f"only {rows} held-out rows, fewer than gate.min_test_rows {minimum}: too few to decide",
        rows,
        minimum,
    )


def _baseline_check(
    metric: str, value: float | None, baseline: float | None, higher: bool
) -> Check:
    if not (_is_number(value) and _is_number(baseline)):
        return Check(
            "baseline", metric, False, f"{metric} of this version or of the baseline is missing"
        )
    ok = value > baseline if higher else value < baseline
    relation = "beats" if ok else "does not beat"
    return Check(
        "baseline",
        metric,
        ok,
        f"{metric} {value:.4f} {relation} {baseline:.4f} of a model that ignores the features",
        value,
        baseline,
    )


def refuse(message: str, settings: GateSettings) -> Verdict:
    """A failed verdict for a version that could not even be judged (fail closed)."""
    return Verdict(
        passed=False,
        checks=(Check("rows", "", False, message),),
        metrics={},
        primary_metric=settings.primary_metric,
        tolerance=settings.tolerance,
        baseline=None,
    )


def _limit_check(name: str, metric: str, value: float | None, limit: float, higher: bool) -> Check:
    if not _is_number(value):
        return Check(name, metric, False, f"{metric} is missing or not a number", None, limit)
    ok = value >= limit if higher else value <= limit
    relation = (">=" if ok else "<") if higher else ("<=" if ok else ">")
    kind = "floor" if higher else "ceiling"
    return Check(
        name, metric, ok, f"{metric} {value:.4f} {relation} {kind} {limit:g}", value, limit
    )


def _champion_check(baseline: Baseline, settings: GateSettings, higher: bool) -> Check:
    metric, tolerance = settings.primary_metric, settings.tolerance
    champion = f"champion version {baseline.version}"
    if baseline.error is not None:
        return Check(
            "champion", metric, False, f"{champion} could not be compared: {baseline.error}"
        )
    new, old = baseline.challenger_metrics.get(metric), baseline.champion_metrics.get(metric)
    if not (_is_number(new) and _is_number(old)):
        return Check(
            "champion", metric, False, f"{metric} of this version or the {champion} is missing"
        )
    limit = old - tolerance if higher else old + tolerance
    ok = new >= limit if higher else new <= limit
    trails = (old - new) if higher else (new - old)
    on_rows = f"on the same {baseline.rows} held-out rows"
    if ok:
        message = (
            f"{metric} {new:.4f} vs {champion} {old:.4f} {on_rows}: "
            f"within the tolerance {tolerance:g}"
        )
    else:
        message = (
            f"{metric} {new:.4f} trails the {champion} ({old:.4f}) by {trails:.4f} {on_rows}, "
            f"more than the tolerance {tolerance:g}"
        )
    return Check("champion", metric, ok, message, new, limit)


def split_rule_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """How two resolved configs differ in what decides a row's train/test side.

    With a hash split a row's side depends only on its key columns, the seed and the test
    fraction (data.split_rows); with a time split (split.time_column) it depends on the rows
    used too, so the sample fraction counts as well. When these agree (and the data files are
    the same) the rows one config holds out are rows the other never trained on.
    """

    def split(config: Mapping[str, Any]) -> Mapping[str, Any]:
        return config.get("split") or {}

    rules: dict[str, Callable[[Mapping[str, Any]], Any]] = {
        "seed": lambda config: config.get("seed"),
        "split.test_fraction": lambda config: split(config).get("test_fraction"),
        "split.time_column": lambda config: split(config).get("time_column"),
        "data.key_columns": lambda config: list(config.get("data", {}).get("key_columns") or []),
    }
    if split(recorded).get("time_column") or split(current).get("time_column"):
        rules["data.sample_fraction"] = lambda config: config.get("data", {}).get("sample_fraction")
    return [
        f"{name} {get(recorded)!r} != {get(current)!r}"
        for name, get in rules.items()
        if get(recorded) != get(current)
    ]


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object) -> float | None:
    return float(value) if _is_number(value) else None


def _text(value: object) -> str:
    return repr(float(value)) if _is_number(value) else "nan"
