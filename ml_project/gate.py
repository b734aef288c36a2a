"""The quality gate (pure): metrics in, a verdict with its reasons out.

Fail-closed: a version passes only if every check passes, and a check that cannot be made fails.
Each message names its setting. The checks: `rows` (gate.min_test_rows), `floor`/`ceiling`
(absolute limits), `lead` (the primary metric beats a feature-blind model by gate.min_lead of
the room to a perfect value), `loss` (finite and better than that model's), `constant` (the
scores vary), `health` (the staged held-out loss ends within gate.max_loss_rise of its best),
`champion` (on the same rows neither trained on, at most gate.tolerance worse: in the metric's
own terms, or a fraction of the champion's value for a metric with units).

MLflow's `validate_evaluation_results` can only demand that a candidate beat its baseline by a
positive margin; "not worse by more than a tolerance" is written out here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from ml_project import metrics as registry
from ml_project.settings import GateSettings
from ml_project.vocabulary import VALIDATION_REASONS, VALIDATION_STATUS, Task

PASSED, FAILED = "passed", "failed"


HIDDEN = {"json": False}  # a field left out of the JSON (results.plain)
CHECK_KEYS = ("name", "metric", "passed", "value", "limit", "message")  # tag gate.checks


@dataclass(frozen=True)
class Check:
    """One rule of the gate and how the version fared."""

    name: str  # rows, floor, ceiling, lead, loss, constant, health, champion
    metric: str
    passed: bool
    message: str
    value: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class Champion:
    """The champion scored next to the new version on the same held-out rows: `champion` and
    `challenger` are their metrics there. `error` says why no comparison could be made (then
    the metrics are empty)."""

    version: str = field(metadata=HIDDEN)
    champion: Mapping[str, float] = field(default_factory=dict)
    challenger: Mapping[str, float] = field(default_factory=dict)
    rows: int = 0
    excluded_rows: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one version, with every check that led to it.

    `reasons`: why it failed (the failed checks), or why it passed (every check); `comparison`:
    the champion it was compared with, if any.
    """

    passed: bool
    checks: tuple[Check, ...]
    metrics: Mapping[str, float]
    primary_metric: str
    tolerance: float
    comparison: Champion | None
    status: str = field(init=False)
    reasons: list[str] = field(init=False)
    champion_version: str | None = field(init=False)
    champion_metrics: Mapping[str, float] = field(init=False)

    def __post_init__(self) -> None:
        failed = [check.message for check in self.checks if not check.passed]
        champion = self.comparison
        derived = {
            "status": PASSED if self.passed else FAILED,
            "reasons": failed or [check.message for check in self.checks],
            "champion_version": champion.version if champion else None,
            "champion_metrics": champion.champion if champion else {},
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def as_tags(self) -> dict[str, str]:
        """Model version tags: `validation_status`, `validation_reasons` and the numbers."""
        tags = {
            VALIDATION_STATUS: self.status,
            VALIDATION_REASONS: "; ".join(self.reasons),
            "gate.primary_metric": self.primary_metric,
            "gate.tolerance": str(self.tolerance),
            "gate.checks": json.dumps([_check_data(check) for check in self.checks]),
            **{f"gate.{key}": _text(value) for key, value in sorted(self.metrics.items())},
            "gate.champion_version": self.champion_version or "none",
        }
        champion = self.comparison
        if champion is not None and champion.error is None:
            metric = self.primary_metric
            tags["gate.comparison_rows"] = str(champion.rows)
            tags["gate.comparison_excluded_rows"] = str(champion.excluded_rows)
            tags[f"gate.champion_{metric}"] = _text(champion.champion.get(metric))
            tags[f"gate.challenger_{metric}"] = _text(champion.challenger.get(metric))
        return tags


def judge(
    metrics: Mapping[str, float],
    settings: GateSettings,
    *,
    task: Task,
    rows: int,
    scores: npt.ArrayLike,
    staged: registry.StagedLoss | None,
    baseline_metrics: Mapping[str, float] | None = None,
    champion: Champion | None = None,
    extra: Mapping[str, registry.Metric] | None = None,
) -> Verdict:
    """Apply the env's gate to a version's held-out `metrics` (on `rows` rows), its `scores`
    there (`Predictions.score`), its `staged` held-out loss per boosting iteration (None: the
    model does not stage its predictions), the metrics of a model that ignores the features on
    the same rows, and, if any, its champion. `extra`: the problem's own metrics."""
    known = registry.metrics_of(task, extra)
    primary = known.get(settings.primary_metric)
    blind = baseline_metrics or {}
    loss = registry.LOSS[task]
    checks = [_rows_check(rows, settings.min_test_rows)]
    checks += [
        _limit_check("floor", metric, metrics.get(metric), limit, True)
        for metric, limit in sorted(settings.floors.items())
    ] + [
        _limit_check("ceiling", metric, metrics.get(metric), limit, False)
        for metric, limit in sorted(settings.ceilings.items())
    ]
    metric = settings.primary_metric
    if primary is None:
        checks.append(Check("lead", metric, False, f"{metric} is no metric of a {task} task"))
    else:
        checks.append(_lead_check(primary, metrics.get(metric), blind.get(metric), settings))
    checks.append(_loss_check(loss, metrics.get(loss), blind.get(loss)))
    checks.append(_constant_check(scores))
    checks.append(_health_check(staged, settings.max_loss_rise))
    if champion is not None:
        units = primary.units if primary is not None else False
        higher = primary.higher_is_better if primary is not None else True
        checks.append(_champion_check(champion, settings, higher, units))
    return Verdict(
        passed=all(check.passed for check in checks),
        checks=tuple(checks),
        metrics=dict(metrics),
        primary_metric=settings.primary_metric,
        tolerance=settings.tolerance,
        comparison=champion,
    )


def _rows_check(rows: int, minimum: int) -> Check:
    if rows >= minimum:
        return Check("rows", "", True, f"{rows} held-out rows >= gate.min_test_rows {minimum}")
    return Check(
        "rows",
        "",
        False,
        f"only {rows} held-out rows, fewer than gate.min_test_rows {minimum}: too few to decide",
        float(rows),
        float(minimum),
    )


BLIND = "a model that ignores the features"
ALWAYS = "(always checked, no setting)"


def _lead_check(
    metric: registry.Metric, value: float | None, blind: float | None, settings: GateSettings
) -> Check:
    """The primary metric beats the feature-blind model's by `min_lead` of the room between
    that model's value and a perfect one (strictly, when the metric has no perfect value)."""
    name, higher, minimum = metric.name, metric.higher_is_better, settings.min_lead
    if not (_is_number(value) and _is_number(blind)):
        return Check("lead", name, False, f"{name} of this version or of {BLIND} is missing")
    gain = value - blind if higher else blind - value
    versus = f"{name} {value:.4f} vs {blind:.4f} of {BLIND}"
    perfect = metric.perfect
    if perfect is None:  # no perfect value to measure the room against: beat it, strictly
        ok = gain > 0
        word = "better than" if ok else "not better than"
        message = f"{name} {value:.4f} {word} {blind:.4f} of {BLIND} (gate.min_lead: no bound)"
        return Check("lead", name, ok, message, value, blind)
    room = abs(perfect - blind)
    needed = blind + minimum * room if higher else blind - minimum * room
    ok = gain > 0 and (value >= needed if higher else value <= needed)
    if room == 0:
        message = f"{versus}: that model is already perfect, so nothing can lead it"
    else:
        share = gain / room
        relation = "at least" if ok else "less than"
        message = (
            f"{versus}: a lead of {share:.1%} of the room to a perfect {perfect:g}, "
            f"{relation} gate.min_lead {minimum:g} ({'>=' if higher else '<='} {needed:.4f})"
        )
    return Check("lead", name, ok, message, value, needed)


def _loss_check(loss: str, value: float | None, blind: float | None) -> Check:
    """The task's loss is finite and strictly better than the feature-blind model's."""
    if not _is_number(value):
        return Check("loss", loss, False, f"{loss} is missing or not a finite number {ALWAYS}")
    if not _is_number(blind):
        return Check("loss", loss, False, f"{loss} of {BLIND} is missing {ALWAYS}", value)
    ok = value < blind
    word = "better than" if ok else "not better than"
    return Check(
        "loss", loss, ok, f"{loss} {value:.4f} {word} {blind:.4f} of {BLIND} {ALWAYS}", value, blind
    )


def _constant_check(scores: npt.ArrayLike) -> Check:
    """The held-out scores are numbers and not all the same (a collapsed model)."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        return Check("constant", "score", False, f"no held-out score to look at {ALWAYS}")
    bad = int((~np.isfinite(values)).sum())
    if bad:
        return Check(
            "constant", "score", False, f"{bad} held-out score(s) are not numbers {ALWAYS}"
        )
    distinct = int(np.unique(values).size)
    if distinct == 1:
        return Check(
            "constant",
            "score",
            False,
            f"every held-out row gets the same score {values[0]:.4g}: the predictions are "
            f"constant, the model ignores its input {ALWAYS}",
            float(distinct),
        )
    return Check(
        "constant", "score", True, f"{distinct} distinct held-out scores {ALWAYS}", float(distinct)
    )


def _health_check(staged: registry.StagedLoss | None, max_rise: float) -> Check:
    """Training health: the held-out loss at the last iteration is within `max_rise` (a
    fraction) of its best over the iterations; not applicable to a model without stages."""
    if staged is None or not staged.values:
        return Check(
            "health",
            "",
            True,
            "training health not applicable: the model does not stage its predictions "
            "(gate.max_loss_rise)",
        )
    values = np.asarray(staged.values, dtype=np.float64)
    metric, last = staged.metric, len(values)
    final = float(values[-1])
    finite = np.isfinite(values)
    if not finite.any() or not math.isfinite(final):
        return Check(
            "health",
            metric,
            False,
            f"held-out {metric} is not a finite number at the last iteration {last}: the "
            "training diverged (gate.max_loss_rise)",
        )
    at = int(np.argmin(np.where(finite, values, np.inf)))
    best = float(values[at])
    limit = best * (1 + max_rise)
    rise = (final - best) / best if best > 0 else (math.inf if final > best else 0.0)
    if final <= limit:
        return Check(
            "health",
            metric,
            True,
            f"held-out {metric} {final:.4g} at the last iteration {last}, {rise:.1%} above its "
            f"best {best:.4g} (iteration {at + 1}), within gate.max_loss_rise {max_rise:g}",
            final,
            limit,
        )
    return Check(
        "health",
        metric,
        False,
        f"held-out {metric} rose from {best:.4g} at iteration {at + 1} to {final:.4g} at "
        f"iteration {last} (+{rise:.0%}, more than gate.max_loss_rise {max_rise:g}): the "
        "boosting went past its best iteration, diverging or overfitting (set "
        "params.early_stopping: true, or lower params.learning_rate or params.max_iter)",
        final,
        limit,
    )


def refuse(message: str, settings: GateSettings) -> Verdict:
    """A failed verdict for a version that could not even be judged (fail closed)."""
    return Verdict(
        passed=False,
        checks=(Check("rows", "", False, message),),
        metrics={},
        primary_metric=settings.primary_metric,
        tolerance=settings.tolerance,
        comparison=None,
    )


def _limit_check(name: str, metric: str, value: float | None, limit: float, higher: bool) -> Check:
    setting = f"gate.{name}s.{metric}"
    if not _is_number(value):
        message = f"{metric} is missing or not a number ({setting})"
        return Check(name, metric, False, message, None, limit)
    ok = value >= limit if higher else value <= limit
    relation = (">=" if ok else "<") if higher else ("<=" if ok else ">")
    message = f"{metric} {value:.4f} {relation} {name} {limit:g} ({setting})"
    return Check(name, metric, ok, message, value, limit)


def _champion_check(compared: Champion, settings: GateSettings, higher: bool, units: bool) -> Check:
    """The primary metric against the champion's on the same rows: at most `tolerance` worse,
    in the metric's own terms for a bounded score, a fraction of the champion's value for a
    metric with units."""
    metric, tolerance = settings.primary_metric, settings.tolerance
    champion = f"champion version {compared.version}"
    if compared.error is not None:
        return Check(
            "champion", metric, False, f"{champion} could not be compared: {compared.error}"
        )
    new, old = compared.challenger.get(metric), compared.champion.get(metric)
    if not (_is_number(new) and _is_number(old)):
        return Check(
            "champion", metric, False, f"{metric} of this version or the {champion} is missing"
        )
    allowed = tolerance * abs(old) if units else tolerance
    limit = old - allowed if higher else old + allowed
    trails = (old - new) if higher else (new - old)
    on_rows = f"on the same {compared.rows} held-out rows"
    setting = f"gate.tolerance {tolerance:g}" + (" of the champion's value" if units else "")
    head = f"{metric} {new:.4f}"
    if trails < 0:
        return Check(
            "champion", metric, True, f"{head} better than the {champion} ({old:.4f}) {on_rows}",
            new, limit,
        )  # fmt: skip
    if trails == 0:
        return Check(
            "champion", metric, True, f"{head} equal to the {champion} ({old:.4f}) {on_rows}",
            new, limit,
        )  # fmt: skip
    ok = trails <= allowed
    within = "within" if ok else "more than"
    message = (
        f"{head} worse than the {champion} ({old:.4f}) by {trails:.4f} {on_rows}, {within} "
        f"the tolerance {allowed:.4g} ({setting})"
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


def _check_data(check: Check) -> dict[str, Any]:
    """A check in the `gate.checks` tag: its fields, value and limit as floats (None if not)."""
    data = {key: getattr(check, key) for key in CHECK_KEYS}
    return data | {"value": _number(check.value), "limit": _number(check.limit)}


def _number(value: object) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: object) -> str:
    return repr(float(value)) if _is_number(value) else "nan"
