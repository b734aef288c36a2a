"""The gate flow and the alias commands: what happens to a model version after registration.

- `gate_version`: `challenger` -> the gate (gate.py; the champion compared by champion.py) ->
  tags -> `champion` if it passed.
- `promote_version` (forced, with a reason), `rollback`, `promote_copy` (the hybrid pattern: copy
  a version of one env's model into another env's model, then that env's gate), `describe`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mlflow
import pandas as pd

from ml_project import gate, lineage, loading, metrics, recovery, registry, run_life, tracking
from ml_project.champion import CannotCompare, compare_with_champion, seen_rows
from ml_project.errors import ConfigError, GateFailedError, RegistryError, TrainingFailedError
from ml_project.evaluation import HeldOut, held_out_rows, log_evaluation
from ml_project.gate import HIDDEN
from ml_project.input_rules import unchecked
from ml_project.model_card import CARD_TAG, REVIEW_TAGS, write_card
from ml_project.registry import AliasChanged, Move
from ml_project.results import EXACT
from ml_project.settings import Settings
from ml_project.vocabulary import (
    ACTION,
    CHALLENGER,
    CHAMPION,
    CONFIG_HASH,
    COPIED_BY_RUN,
    COPIED_FROM,
    DATA_DIGEST,
    ENV,
    GIT_COMMIT,
    GIT_DIRTY,
    GIT_TAG,
    ORPHANED,
    PENDING,
    REASON,
    RUN_ID,
    SEED,
    VALIDATION_REASONS,
    VALIDATION_STATUS,
    status_of,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

R = TypeVar("R")
# How often a passed version re-compares with a champion that moved while it was being judged.
MAX_GATE_ATTEMPTS = 5
# Version tags the gate writes; a copied version drops its source env's before its own gate.
GATE_TAGS = (VALIDATION_STATUS, VALIDATION_REASONS, CARD_TAG, *REVIEW_TAGS)  # a copy drops them
GATE_TAG_PREFIX = "gate."


@dataclass(frozen=True, kw_only=True)
class GateOutcome(gate.Verdict):
    """The verdict on one version and what it did to the aliases."""

    model_name: str = field(metadata=HIDDEN)
    version: str
    promoted: bool
    champion_before: str | None
    champion_after: str | None
    attempts: int = 1
    aliases: list[str] = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "aliases", [CHAMPION] if self.promoted else [])

    @classmethod
    def of(cls, verdict: gate.Verdict, **outcome: Any) -> GateOutcome:
        judged = {item.name: getattr(verdict, item.name) for item in fields(verdict) if item.init}
        return cls(**judged, **outcome)

    def passed_or_raise(self, env: str, result: R) -> R:
        """`result` when the version passed; else GateFailedError carrying it (the run is
        logged and the version tagged before: fail closed)."""
        if not self.passed:
            raise GateFailedError(self.failure_message(env), result=result)
        return result

    def failure_message(self, env: str) -> str:
        return (
            f"{self.model_name} version {self.version} failed the {env} quality gate: "
            + "; ".join(self.reasons)
            + f". It stays registered (models:/{self.model_name}/{self.version}, tagged "
            f"validation_status=failed) but holds no alias; the champion is "
            + (f"still version {self.champion_after}." if self.champion_after else "unset.")
        )


def judge(
    client: MlflowClient,
    held: HeldOut,
    champion: str | None,
    version: str,
    predictions: metrics.Predictions,
    staged: metrics.StagedLoss | None,
) -> gate.Verdict:
    """The gate on `version`'s held-out `predictions`, next to `champion` if the env compares."""
    settings = held.settings
    compared = None
    if champion not in (None, version) and settings.gate.compare_with_champion:
        compared = compare_with_champion(client, held, champion, predictions)
    return gate.judge(
        held.scores(predictions),
        settings.gate,
        task=settings.task,
        rows=len(held.test),
        scores=predictions.score,
        staged=staged,
        baseline_metrics=held.baseline_metrics,
        champion=compared,
        extra=held.problem.metrics,
    )


def gate_version(
    client: MlflowClient,
    held: HeldOut,
    *,
    version: str,
    predictions: metrics.Predictions,
    staged: metrics.StagedLoss | None,
    commit: str,
    run_id: str,
    context: str = "new version",
) -> GateOutcome:
    """`challenger` -> judge -> tag -> `champion` (if passed) for one registered version.

    `predictions` are the version's on `held`'s rows, `staged` its loss there per boosting
    iteration (None: it does not stage). Before `champion` moves it is re-read (under the
    store's lock); if another process moved it since the comparison, the comparison is made
    again against the new champion. `context` heads the history's reasons.
    """
    name, version = held.settings.model_name, str(version)

    def let_go(why: str) -> None:
        move = Move("verdict", why, commit, run_id)
        registry.remove_alias_if(client, name, CHALLENGER, version, move=move)

    under = Move("registered", f"{context}, under evaluation", commit, run_id)
    registry.move_alias(client, name, CHALLENGER, version, move=under)
    for attempt in range(1, MAX_GATE_ATTEMPTS + 1):
        champion = registry.alias_version(client, name, CHAMPION)
        verdict = judge(client, held, champion, version, predictions, staged)
        recovery.require_unsettled(client, name, version)  # never a verdict on a settled one
        tags = {**verdict.as_tags(), "gate.attempt": str(attempt)}
        registry.set_version_tags(client, name, version, tags)
        write_card(client, held, version=version, verdict=verdict, run_id=run_id)
        outcome = partial(
            GateOutcome.of, verdict, model_name=name, version=version, attempts=attempt
        )
        if not verdict.passed:
            let_go(f"{context}, failed the gate: " + "; ".join(verdict.reasons))
            return outcome(promoted=False, champion_before=champion, champion_after=champion)
        reason = f"{context}, passed the gate: " + "; ".join(verdict.reasons)
        if crown(client, held.settings, version, champion, Move("gate", reason, commit, run_id)):
            let_go("became champion")
            return outcome(promoted=True, champion_before=champion, champion_after=version)
    let_go("champion kept changing during the gate")
    raise RegistryError(
        f"The champion of {name} changed {MAX_GATE_ATTEMPTS} times while version {version} was "
        "being judged, so it was not promoted (it passed its last comparison). Run fewer "
        f"trainings of one env at a time, or promote it with `ml-project promote --version "
        f"{version} --reason ...`."
    )


def crown(
    client: MlflowClient, settings: Settings, version: str, champion: str | None, move: Move
) -> bool:
    """Move `champion` to a version that passed; False when the env compares with the champion
    and it moved since it was read (the version is then judged again)."""
    expected = champion if settings.gate.compare_with_champion else registry.ANY
    try:
        registry.move_alias(
            client, settings.model_name, CHAMPION, version, move=move, expected=expected
        )
    except AliasChanged:
        return False
    give_back_if_settled(client, settings.model_name, version, champion, move)
    return True


def give_back_if_settled(
    client: MlflowClient, name: str, version: str, champion: str | None, move: Move
) -> None:
    """A settle that tagged `version` between its job's last check and the move wins:
    `champion` goes back to `champion` (unless another process moved it since), then the job
    fails with recovery.require_unsettled's error."""
    try:
        recovery.require_unsettled(client, name, version)
    except TrainingFailedError:
        why = f"version {version} was settled as it was crowned: the champion goes back"
        back = Move("verdict", why, move.commit, move.run_id)
        with contextlib.suppress(AliasChanged):
            registry.move_alias(client, name, CHAMPION, champion, move=back, expected=version)
        raise


def register(model_uri: str, name: str, *, tags: dict[str, str]) -> str:
    """Create a version of `name` from a logged model, its lineage tags set in the same call."""
    # MLflow 3 stores the model as a logged model, finds it from the runs:/ URI and warns that
    # the run has no artifact there; that is how it is meant to be.
    with tracking.quiet_logger("mlflow.tracking._model_registry.fluent"):
        return str(mlflow.register_model(model_uri, name, tags=tags).version)


@dataclass(frozen=True)
class PromotionResult:
    """What `promote` or `rollback` did, for the CLI summary and `--json`."""

    action: str
    env: str
    model_name: str
    version: str
    champion_before: str | None
    champion_after: str | None
    reason: str
    validation_status: str
    tracking_uri: str
    run_id: str = ""
    source: dict[str, str] = field(default_factory=dict)
    gate: GateOutcome | dict[str, Any] = field(default_factory=dict)


def _require_reason(reason: str | None, what: str) -> str:
    if not reason or not reason.strip():
        raise ConfigError(f"{what} needs a non-empty --reason: it is recorded in the history.")
    return reason.strip()


def promote_version(
    settings: Settings, *, version: str, reason: str | None, root: Path
) -> PromotionResult:
    """Force `champion` onto `version` (no gate), recording who, why and from which commit."""
    reason = _require_reason(reason, "A forced promotion")
    client = tracking.connect(root)
    name = settings.model_name
    found = registry.get_version(client, name, version)
    commit = lineage.git_info(root).commit
    move = Move("forced", reason, commit)
    entry = registry.move_alias(client, name, CHAMPION, str(version), move=move)
    return PromotionResult(
        action="forced",
        env=settings.env,
        model_name=name,
        version=str(version),
        champion_before=entry["from_version"],
        champion_after=str(version),
        reason=reason,
        validation_status=status_of(found.tags),
        tracking_uri=tracking.redact(client.tracking_uri),
    )


def rollback(settings: Settings, *, root: Path, reason: str = "rollback") -> PromotionResult:
    """Move `champion` back to the champion before the current one, as the history says."""
    client = tracking.connect(root)
    name = settings.model_name
    stack = registry.champion_stack(registry.history(client, name))
    current = registry.alias_version(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back.")
    if not stack or stack[-1] != current:
        raise RegistryError(
            f"The champion of {name} is version {current}, but its promotion history says "
            f"{stack[-1] if stack else 'nothing'}: the alias was moved outside ml-project. Set "
            "it explicitly with `ml-project promote --version N --reason ...`."
        )
    if len(stack) < 2:
        raise RegistryError(
            f"{name} has no earlier champion than version {current} to roll back to."
        )
    target = stack[-2]
    found = registry.get_version(client, name, target)
    move = Move(registry.ROLLBACK, reason or "rollback", lineage.git_info(root).commit)
    try:
        registry.move_alias(client, name, CHAMPION, target, move=move, expected=current)
    except AliasChanged as exc:
        raise RegistryError(
            f"The champion of {name} moved to version {exc.current} during the rollback; "
            "nothing was changed. Check `ml-project show` and try again."
        ) from exc
    return PromotionResult(
        action="rollback",
        env=settings.env,
        model_name=name,
        version=target,
        champion_before=current,
        champion_after=target,
        reason=reason,
        validation_status=status_of(found.tags),
        tracking_uri=tracking.redact(client.tracking_uri),
    )


def promote_copy(
    source: Settings, target: Settings, *, version: str, root: Path, reason: str = ""
) -> PromotionResult:
    """The hybrid pattern: copy a version that passed `source`'s gate into `target`'s model
    (lineage tags kept, `copied_from.*` added, the source verdict dropped), then `target`'s gate
    on its held-out rows minus any row the original trained on."""
    if source.env == target.env:
        raise ConfigError("--from-env and --to-env must name two different envs.")
    client = tracking.connect(root)
    original = registry.get_version(client, source.model_name, version)
    status = status_of(original.tags)
    if status != gate.PASSED:
        raise GateFailedError(
            f"{source.model_name} version {version} has validation_status={status}: only "
            f"a version that passed the {source.env} gate is copied to {target.env}."
        )
    git = lineage.git_info(root)
    held = held_out_rows(target, root)
    experiment_id = tracking.ensure_experiment(client, target.experiment_name)
    copied_from = {
        f"{COPIED_FROM}env": source.env,
        f"{COPIED_FROM}model": source.model_name,
        f"{COPIED_FROM}version": str(version),
        f"{COPIED_FROM}run_id": original.run_id or original.tags.get(RUN_ID, ""),
        f"{COPIED_FROM}validation_status": status,
    }
    context = f"copied from {source.model_name} version {version}"
    context += f" ({reason})" if reason else ""
    tags = {ENV: target.env, ACTION: "promote-copy", **copied_from, **git.as_tags()}
    with run_life.training_run(
        client,
        target,
        experiment_id=experiment_id,
        run_name=tracking.run_name("promote", source.env, f"v{version}", "to", target.env),
        tags={**tags, REASON: context},
        commit=git.commit,
        explain=False,
    ) as life:
        mlflow.log_text(target.to_yaml(), "config/settings.yaml")
        life.version = copy_version(client, source, target, version, copied_from, life.run_id)
        outcome = gate_copy(client, held, life.version, git.commit, life.run_id, context)
        life.verdict = outcome.status
    result = PromotionResult(
        action="copy",
        env=target.env,
        model_name=target.model_name,
        version=outcome.version,
        champion_before=outcome.champion_before,
        champion_after=outcome.champion_after,
        reason=context,
        validation_status=outcome.status,
        tracking_uri=tracking.redact(client.tracking_uri),
        run_id=life.run_id,
        source={"env": source.env, "model_name": source.model_name, "version": str(version)},
        gate=outcome,
    )
    return outcome.passed_or_raise(target.env, result)


def copy_version(
    client: MlflowClient,
    source: Settings,
    target: Settings,
    version: str,
    copied_from: dict[str, str],
    run_id: str,
) -> str:
    """Copy `source`'s version into `target`'s model, without the source env's verdict."""
    name = target.model_name
    copy = tracking.retry_locked(
        client.copy_model_version, f"models:/{source.model_name}/{version}", name
    )
    new = str(copy.version)
    verdict_tags = [key for key in copy.tags if key in GATE_TAGS or key.startswith(GATE_TAG_PREFIX)]
    registry.delete_version_tags(client, name, new, verdict_tags)
    registry.set_version_tags(
        client,
        name,
        new,
        {**copied_from, COPIED_BY_RUN: run_id, VALIDATION_STATUS: PENDING},
    )
    return new


def gate_copy(
    client: MlflowClient, held: HeldOut, new: str, commit: str, run_id: str, why: str
) -> GateOutcome:
    """The target env's gate on a copied version, on its held-out rows the original never saw."""
    target, name = held.settings, held.settings.model_name
    try:
        seen = seen_rows(client, registry.get_version(client, name, new), held)
    except CannotCompare as exc:
        verdict = gate.refuse(f"the rows it trained on cannot be established: {exc}", target.gate)
        registry.set_version_tags(client, name, new, verdict.as_tags())
        champion = registry.alias_version(client, name, CHAMPION)
        return GateOutcome.of(
            verdict,
            model_name=name,
            version=new,
            promoted=False,
            champion_before=champion,
            champion_after=champion,
        )
    rows = held.restrict(~seen)
    model = unchecked(
        loading.load_sklearn(f"models:/{name}/{new}", loading.trusted_types(held.problem))
    )
    predictions = metrics.predict(model, rows.model_rows(), target.task)
    mlflow.log_metrics({f"test_{key}": value for key, value in rows.scores(predictions).items()})
    mlflow.log_metrics({"rows_test": len(rows.test), "rows_test_seen_excluded": int(seen.sum())})
    log_evaluation(f"models:/{name}/{new}", rows)
    return gate_version(
        client,
        rows,
        version=new,
        predictions=predictions,
        staged=metrics.staged_loss(model, rows.model_rows(), rows.labels, target.task),
        commit=commit,
        run_id=run_id,
        context=why,
    )


# Version tags shown by `describe` as the version's lineage at a glance.
LINEAGE_KEYS = (
    GIT_COMMIT,
    GIT_DIRTY,
    GIT_TAG,
    CONFIG_HASH,
    SEED,
    DATA_DIGEST,
    "data.rows_train",
    "data.rows_test",
    ENV,
    RUN_ID,
)


@dataclass(frozen=True)
class VersionView:
    """One version as `show` lists it."""

    version: str
    aliases: list[str]
    validation_status: str
    validation_reasons: str
    metrics: dict[str, float | None] = field(metadata={"json": EXACT})  # NaN kept
    compared_with: str
    created: str
    lineage: dict[str, str]
    copied_from: dict[str, str]


@dataclass(frozen=True)
class Description:
    """The env's registered model: versions, aliases, gate results, lineage and history."""

    env: str
    problem: str
    task: str
    primary_metric: str
    model_name: str
    tracking_uri: str
    aliases: dict[str, str]
    versions: list[VersionView]
    history: list[dict[str, Any]]


def describe(settings: Settings, *, root: Path) -> Description:
    """The env's registered model: versions, aliases, gate results, lineage and history."""
    client = tracking.connect(root, write=False)  # works on a read-only store
    name = settings.model_name
    model = registry.registered_model(client, name)
    if model is None:
        raise RegistryError(
            f"There is no registered model {name} in the store "
            f"{tracking.redact(client.tracking_uri)}: "
            f"train one with `ml-project train --env {settings.env}`."
        )
    aliases_of: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases_of.setdefault(str(version), []).append(alias)
    found = tracking.retry_locked(client.search_model_versions, f"name='{name}'")
    versions = [
        version_view(client, settings, version, sorted(aliases_of.get(str(version.version), [])))
        for version in sorted(found, key=lambda item: int(item.version), reverse=True)
    ]
    return Description(
        env=settings.env,
        problem=settings.problem,
        task=settings.task,
        primary_metric=settings.gate.primary_metric,
        model_name=name,
        tracking_uri=tracking.redact(client.tracking_uri),
        aliases={alias: str(version) for alias, version in sorted(model.aliases.items())},
        versions=versions,
        history=registry.read_history(model.tags),
    )


def version_view(
    client: MlflowClient, settings: Settings, version: ModelVersion, aliases: list[str]
) -> VersionView:
    tags = version.tags
    lineage_tags = registry.lineage_of(client, version)
    orphaned = recovery.orphan_reason(client, version)
    return VersionView(
        version=str(version.version),
        aliases=aliases,
        validation_status=ORPHANED if orphaned else status_of(tags),
        validation_reasons=orphaned or tags.get(VALIDATION_REASONS, ""),
        metrics={
            metric: _float(tags[f"gate.{metric}"])
            for metric in metrics.metrics_of(settings.task)
            if f"gate.{metric}" in tags
        },
        compared_with=tags.get("gate.champion_version", ""),
        created=pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC").isoformat(),
        lineage={key: lineage_tags[key] for key in LINEAGE_KEYS if key in lineage_tags},
        copied_from={k: v for k, v in tags.items() if k.startswith(COPIED_FROM)},
    )


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
