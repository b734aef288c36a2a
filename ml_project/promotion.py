"""Evaluation, the gate and alias moves: what happens to a model version after registration.

- `log_evaluation`: MLflow's evaluator for the task (classifier or regressor) on the held-out
  rows (metrics `eval_*`, curves, confusion matrix or residual plots), logged with the run.
- `gate_version`: `challenger` -> the gate (gate.py) -> tags -> `champion` if it passed.
- `promote_version` (forced, with a reason), `rollback`, `promote_copy` (the hybrid pattern:
  copy a version of one env's model into another env's model, then that env's gate), `describe`.

Never on training rows: a version is judged on held-out rows, and the champion it is compared
with is scored on the same rows minus any that the champion itself trained on (rebuilt from the
config, seed and data its run recorded, and checked against its recorded train digest). When
that cannot be established the comparison fails, and so does the gate.
"""

from __future__ import annotations

import logging
import re
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from ml_project import data, gate, lineage, loading, metrics, records, registry, tracking
from ml_project.errors import STOP_SIGNALS, ConfigError, GateFailedError, RegistryError
from ml_project.problem import Problem, load_problem
from ml_project.registry import CHALLENGER, CHAMPION, AliasChanged, Move
from ml_project.settings import Settings, deep_merge, validate_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# How often a passed version re-compares with a champion that moved while it was being judged.
MAX_GATE_ATTEMPTS = 5
# Version tags the gate writes; a copied version drops its source env's before its own gate.
GATE_TAGS = ("validation_status", "validation_reasons")
GATE_TAG_PREFIX = "gate."


class CannotCompare(Exception):
    """The rows a version trained on cannot be established, so no fair comparison exists."""


@dataclass(frozen=True)
class HeldOut:
    """An env's held-out rows, and what is needed to tell which of them a model trained on."""

    settings: Settings
    problem: Problem
    test: pd.DataFrame  # key columns, raw model columns and the label
    digest: str
    tables: dict[str, pd.DataFrame]  # the raw tables they came from
    file_digests: dict[str, str]
    source: str  # where the rows came from (for the MLflow dataset)
    baseline: metrics.Predictions  # a model that ignores the features, on the same rows

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return self.scores(self.baseline)

    def scores(self, predictions: metrics.Predictions) -> dict[str, float]:
        """The task's metrics and the problem's own of `predictions` on these rows."""
        return metrics.compute(self.settings.task, self.labels, predictions, self.problem.metrics)

    @property
    def labels(self) -> np.ndarray:
        return cast(np.ndarray, self.test[self.settings.data.label].to_numpy())

    def model_rows(self, keep: np.ndarray | None = None) -> pd.DataFrame:
        frame = self.test if keep is None else self.test.loc[keep]
        return records.model_input(self.settings, frame)

    def restrict(self, keep: np.ndarray) -> HeldOut:
        test = self.test.loc[keep].reset_index(drop=True)
        return replace(
            self, test=test, digest=data.frame_digest(test), baseline=subset(self.baseline, keep)
        )


def held_out_rows(settings: Settings, root: Path) -> HeldOut:
    """Read the env's data as training does and return its held-out split."""
    problem = load_problem(settings, root)
    paths = records.table_paths(settings, root)
    tables = records.read_tables(paths)
    prepared = records.prepare_data(settings, problem, tables)
    baseline = metrics.baseline_predictions(
        settings.task, prepared.split.train[prepared.label], len(prepared.split.test)
    )
    return HeldOut(
        settings=settings,
        problem=problem,
        test=prepared.split.test,
        digest=prepared.digests["test_digest"],
        tables=tables,
        file_digests=records.file_digests(paths),
        source=str(next(iter(paths.values()))),
        baseline=baseline,
    )


def log_evaluation(
    mlflow: ModuleType,
    model_uri: str,
    held: HeldOut,
    *,
    fitted: Any = None,
    predictions: metrics.Predictions | None = None,
) -> dict[str, float]:
    """MLflow's evaluator for the task on `held`'s rows, logged (as `eval_*`) to the active run.

    A classifier is evaluated through its sklearn flavor, so the curves and calibration use
    `predict_proba`. The rows are passed as the same MLflow dataset (name and digest) the run
    logged as its evaluation input, so MLflow records no second input for them. `fitted` (the
    model `model_uri` was logged from) and its `predictions` on `held`'s rows spare loading the
    logged files and predicting the rows again. Held-out rows that lack one of the model's
    classes are not evaluated by MLflow (its multiclass ROC AUC needs every class): the run is
    tagged `evaluation.skipped` with why.
    """
    from sklearn.exceptions import UndefinedMetricWarning

    settings = held.settings
    label = settings.data.label
    classes = held.baseline.classes  # the train rows' classes: the model's
    absent = [] if classes is None else sorted(set(classes.tolist()) - set(held.labels.tolist()))
    if absent:  # MLflow's multiclass ROC AUC needs every class in the rows: it would crash
        mlflow.set_tag(
            "evaluation.skipped",
            f"the held-out rows hold no {', '.join(map(str, absent))} (a time split's newest "
            "period may lack a class); MLflow's evaluator needs every class, the test_* "
            "metrics are computed without it",
        )
        return {}
    frame = held.model_rows().assign(**{label: held.labels})
    dataset = tracking.pandas_dataset(
        frame,
        source=held.source,
        targets=label,
        name=f"{settings.name}_evaluation",
        digest=held.digest[:36],
    )
    model_type = "regressor" if settings.task == "regression" else "classifier"
    # The evaluator guesses a model type from the label values and warns when integer labels
    # leave it unsure; the task says what it is, so that guess is noise here.
    guesser = logging.getLogger("mlflow.models.evaluation.evaluators.classifier")
    level = guesser.level
    guesser.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The specified dataset source")
            warnings.filterwarnings("ignore", category=UndefinedMetricWarning)  # class unpredicted
            tracking.log_input(mlflow, dataset, context="evaluation")
            if fitted is None:
                model = loading.pyfunc_of(model_uri, loading.trusted_types(held.problem))
            else:
                assert predictions is not None  # given with `fitted`
                answers = metrics.KnownAnswers(fitted, held.model_rows(), predictions)
                model = loading.as_pyfunc(answers, mlflow.models.Model.load(model_uri))
            result = mlflow.models.evaluate(
                model=model,
                data=dataset,
                model_type=model_type,
                evaluators="default",
                evaluator_config={"log_model_explainability": False, "metric_prefix": "eval_"},
            )
    finally:
        guesser.setLevel(level)
    return {key: float(value) for key, value in result.metrics.items()}


def recorded_config(run_id: str) -> dict[str, Any]:
    """The resolved settings a training run logged (config/settings.yaml)."""
    import mlflow.artifacts
    import yaml

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/settings.yaml")
    except Exception as exc:  # missing run or artifact: the rows it used are unknown
        raise CannotCompare(f"the config of its run {run_id} cannot be read ({exc})") from exc
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise CannotCompare(f"the config of its run {run_id} is not a mapping")
    return config


def seen_rows(client: MlflowClient, version: ModelVersion, held: HeldOut) -> np.ndarray:
    """Which of `held`'s rows `version` trained on (a boolean mask).

    No row, without any work, when its recorded split rule (seed, test fraction, key columns)
    and data files equal the current ones: a row's side depends only on those. Otherwise its
    training rows are rebuilt from its recorded config and data, checked against its recorded
    train digest, and matched to `held`'s rows by their key columns.
    """
    tags = registry.lineage_of(client, version)
    label = f"version {version.version}"
    run_id = tags.get("run_id") or version.run_id
    if not run_id:
        raise CannotCompare(f"{label} records no training run, so its training rows are unknown")
    recorded = recorded_config(run_id)
    current = held.settings.model_dump(mode="json")
    differences = gate.split_rule_differences(recorded, current)
    if (
        tags.get("ml_project.rebuild_protocol") != lineage.REBUILD_PROTOCOL
    ):  # an older sampling rule
        differences.append("trained by an older ml-project (sampling and split rule)")
    same_files = all(
        tags.get(f"data.table.{name}.sha256") == digest
        for name, digest in held.file_digests.items()
    )
    if not differences and same_files:
        return np.zeros(len(held.test), dtype=bool)
    if same_files:
        tables = held.tables
    else:
        tables = _recorded_tables(tags, label)
    picked: dict[str, Any] = {
        key: recorded[key]
        for key in ("seed", "data", "split", "features", "params")
        if key in recorded
    }
    try:
        source_settings = validate_settings(deep_merge(current, picked))
    except ConfigError as exc:
        raise CannotCompare(f"the config {label} recorded no longer validates ({exc})") from exc
    prepared = records.prepare_data(source_settings, held.problem, tables)
    expected = tags.get("data.train_digest")
    if expected is None or prepared.digests["train_digest"] != expected:
        raise CannotCompare(
            f"rebuilding the rows {label} trained on does not reproduce its recorded "
            "data.train_digest"
        )
    keys = list(held.settings.data.key_columns)
    missing = [key for key in keys if key not in prepared.split.train.columns]
    if missing:
        raise CannotCompare(f"{label}'s training rows lack the key columns {missing}")
    trained = prepared.split.train[keys].astype(str).drop_duplicates()
    merged = held.test[keys].astype(str).merge(trained, how="left", on=keys, indicator=True)
    return cast(np.ndarray, merged["_merge"].eq("both").to_numpy())


def _recorded_tables(tags: dict[str, str], label: str) -> dict[str, pd.DataFrame]:
    """The data files a version's run read, if they still exist unchanged."""
    tables = {}
    names = [name for name in (tags.get("data.tables") or "").split(",") if name]
    if not names:
        raise CannotCompare(f"{label} records no data.tables, so its training rows are unknown")
    for name in names:
        path, digest = tags.get(f"data.table.{name}.path"), tags.get(f"data.table.{name}.sha256")
        if not path or not Path(path).is_file() or data.file_digest(path) != digest:
            raise CannotCompare(
                f"the {name} table {label} trained on ({path}) is gone or changed, so its "
                "training rows cannot be rebuilt"
            )
        tables[name] = data.read_table(path)
    return tables


def compare_with_champion(
    client: MlflowClient, held: HeldOut, champion: str, predictions: metrics.Predictions
) -> gate.Baseline:
    """Score the champion and the new version on the same held-out rows neither trained on."""

    task = held.settings.task
    name = held.settings.model_name
    try:
        version = registry.get_version(client, name, champion)
        their_task = version.tags.get("ml_project.task", task)
        if their_task != task:
            raise CannotCompare(
                f"it is a {their_task} model and this version a {task} one: their metrics do not "
                "compare (if the change is meant, review it and `ml-project promote` by hand)"
            )
        seen = seen_rows(client, version, held)
    except (CannotCompare, RegistryError) as exc:
        return gate.Baseline(champion, error=str(exc))
    keep = ~seen
    if not keep.any():
        return gate.Baseline(champion, error="it trained on every one of these held-out rows")
    try:
        from ml_project.input_rules import unchecked

        model = unchecked(
            loading.load_sklearn(f"models:/{name}/{champion}", loading.trusted_types(held.problem))
        )
        theirs = metrics.predict(model, held.model_rows(keep), task)
    except Exception as exc:  # fail closed, and say why: the verdict carries the message
        return gate.Baseline(champion, error=f"it could not score the rows ({exc})")
    labels, own = held.labels[keep], held.problem.metrics
    return gate.Baseline(
        version=champion,
        champion_metrics=metrics.compute(task, labels, theirs, own),
        challenger_metrics=metrics.compute(task, labels, subset(predictions, keep), own),
        rows=int(keep.sum()),
        excluded_rows=int(seen.sum()),
    )


def subset(predictions: metrics.Predictions, keep: np.ndarray) -> metrics.Predictions:
    """The predictions of the rows `keep` selects."""
    return metrics.Predictions(
        prediction=predictions.prediction[keep],
        probabilities=None
        if predictions.probabilities is None
        else predictions.probabilities[keep],
        classes=predictions.classes,
    )


@dataclass(frozen=True)
class GateOutcome:
    """The verdict on one version and what it did to the aliases."""

    model_name: str
    version: str
    verdict: gate.Verdict
    promoted: bool
    champion_before: str | None
    champion_after: str | None
    attempts: int = 1

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.verdict.as_dict(),
            "version": self.version,
            "aliases": [CHAMPION] if self.promoted else [],
            "promoted": self.promoted,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "attempts": self.attempts,
        }

    def failure_message(self, env: str) -> str:
        return (
            f"{self.model_name} version {self.version} failed the {env} quality gate: "
            + "; ".join(self.verdict.reasons)
            + f". It stays registered (models:/{self.model_name}/{self.version}, tagged "
            f"validation_status=failed) but holds no alias; the champion is "
            + (f"still version {self.champion_after}." if self.champion_after else "unset.")
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
    iteration (metrics.staged_loss; None: it does not stage). Before `champion` moves it is
    re-read (under the store's lock); if another process moved it since the comparison, the
    comparison is made again against the new champion. `context` heads the history's reasons.
    """
    settings = held.settings
    name = settings.model_name
    version = str(version)
    scores = held.scores(predictions)
    registry.move_alias(
        client,
        name,
        CHALLENGER,
        version,
        move=Move("registered", f"{context}, under evaluation", commit, run_id),
    )
    champion = None
    for attempt in range(1, MAX_GATE_ATTEMPTS + 1):
        champion = registry.alias_version(client, name, CHAMPION)
        baseline = None
        if champion not in (None, version) and settings.gate.compare_with_champion:
            baseline = compare_with_champion(client, held, champion, predictions)
        verdict = gate.judge(
            scores,
            settings.gate,
            task=settings.task,
            rows=len(held.test),
            scores=predictions.score,
            staged=staged,
            baseline_metrics=held.baseline_metrics,
            baseline=baseline,
            extra=held.problem.metrics,
        )
        registry.set_version_tags(
            client, name, version, {**verdict.as_tags(), "gate.attempt": str(attempt)}
        )
        if not verdict.passed:
            registry.remove_alias_if(
                client,
                name,
                CHALLENGER,
                version,
                move=Move(
                    "verdict",
                    f"{context}, failed the gate: " + "; ".join(verdict.reasons),
                    commit,
                    run_id,
                ),
            )
            return GateOutcome(name, version, verdict, False, champion, champion, attempt)
        reason = f"{context}, passed the gate: " + "; ".join(verdict.reasons)
        try:
            registry.move_alias(
                client,
                name,
                CHAMPION,
                version,
                move=Move("gate", reason, commit, run_id),
                expected=champion if settings.gate.compare_with_champion else registry.ANY,
            )
        except AliasChanged:
            continue  # judged against a champion that is no longer in place: judge again
        registry.remove_alias_if(
            client,
            name,
            CHALLENGER,
            version,
            move=Move("verdict", "became champion", commit, run_id),
        )
        return GateOutcome(name, version, verdict, True, champion, version, attempt)
    registry.remove_alias_if(
        client,
        name,
        CHALLENGER,
        version,
        move=Move("verdict", "champion kept changing during the gate", commit, run_id),
    )
    raise RegistryError(
        f"The champion of {name} changed {MAX_GATE_ATTEMPTS} times while version {version} was "
        "being judged, so it was not promoted (it passed its last comparison). Run fewer "
        f"trainings of one env at a time, or promote it with `ml-project promote --version "
        f"{version} --reason ...`."
    )


def register(model_uri: str, name: str, *, tags: dict[str, str]) -> str:
    """Create a version of `name` from a logged model, its lineage tags set in the same call."""
    import mlflow

    # MLflow 3 stores the model as a logged model, finds it from the runs:/ URI and warns that
    # the run has no artifact there; that is how it is meant to be.
    quiet = logging.getLogger("mlflow.tracking._model_registry.fluent")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return str(mlflow.register_model(model_uri, name, tags=tags).version)
    finally:
        quiet.setLevel(level)


REASON_CHARACTERS = 1000  # of a failure's message in tags and the history (failure/traceback.txt)


def failure_reason(exc: BaseException) -> str:
    """What stopped a command, in one line without credentials."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted ({getattr(exc, 'signal_name', 'SIGINT')})"
    text = " ".join(str(exc).split())
    if len(text) > REASON_CHARACTERS:  # cut between words, and said: the traceback has it all
        text = text[:REASON_CHARACTERS].rsplit(" ", 1)[0] + " [...]"
    return tracking.redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def abandon(
    client: MlflowClient,
    settings: Settings,
    version: str | None,
    run_id: str,
    exc: BaseException,
    *,
    commit: str,
) -> bool:
    """A training stopped after its run started: the version it registered (if any, and if not
    judged yet) is tagged failed with the reason and loses `challenger`; the run ends FAILED
    (KILLED when interrupted). Best effort, as the store may be what failed: False when some of
    it could not be written (the next training settles what is left)."""
    import signal

    import mlflow

    reason = f"training did not finish: {failure_reason(exc)}"
    saved = {}
    recorded = False
    try:  # a second Ctrl-C must not cut the cleanup short
        for signal_name in STOP_SIGNALS:
            saved[signal_name] = signal.signal(getattr(signal, signal_name), signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    try:
        recorded = _record_failure(client, settings, version, run_id, exc, reason, commit)
    finally:
        try:
            mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception:  # noqa: BLE001 - a later command settles a run left RUNNING
            recorded = False
        for signal_name, handler in saved.items():
            signal.signal(getattr(signal, signal_name), handler)
    return recorded


def _record_failure(
    client: MlflowClient,
    settings: Settings,
    version: str | None,
    run_id: str,
    exc: BaseException,
    reason: str,
    commit: str,
) -> bool:
    """`abandon`'s writes before the run ends: the version's verdict and alias, the run's tag
    and traceback. False when the store refused them (the traceback artifact is optional)."""
    import mlflow

    try:
        if version is not None:
            name = settings.model_name
            found = registry.get_version(client, name, version)
            if found.tags.get("validation_status") not in (gate.PASSED, gate.FAILED):
                registry.set_version_tags(
                    client,
                    name,
                    version,
                    {"validation_status": gate.FAILED, "validation_reasons": reason},
                )
            registry.remove_alias_if(
                client, name, CHALLENGER, version, move=Move("verdict", reason, commit, run_id)
            )
        mlflow.set_tag("ml_project.failure", reason)
    except Exception:  # noqa: BLE001 - the original error is what the user must see
        return False
    try:  # the artifact store may be what failed; the run's tags say enough without it
        mlflow.log_text("".join(traceback.format_exception(exc)), "failure/traceback.txt")
    except Exception:  # noqa: BLE001,S110
        pass
    return True


def process_alive(host: str, pid: str) -> bool | None:
    """Whether process `pid` of `host` still runs; None when that cannot be told from here."""
    import os
    import socket

    if not host or not pid.isdigit() or host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LOGGED_MODEL_URI = re.compile(r"^models:/m-[0-9a-f]+$")


def orphan_reason(client: MlflowClient, version: ModelVersion) -> str | None:
    """Why `version` will never get a verdict (its run ended, or its process is gone), or None
    when it has one, or is still being judged (or that cannot be told)."""
    tags = version.tags
    if tags.get("validation_status") not in (None, "", "pending"):
        return None
    run_id = tags.get("copied_by.run_id") or tags.get("run_id") or version.run_id
    source = str(version.source or "")
    # a copy (copy_model_version: models:/NAME/N) not tagged yet; a training registers its
    # logged model (models:/m-<id>), which is no copy
    copying = source.startswith("models:/") and not LOGGED_MODEL_URI.match(source)
    if not run_id or (copying and not tags.get("copied_by.run_id")):
        return None  # a copy being set up: its run is not known yet
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 - a deleted run never gives a verdict
        return f"its run {run_id} is gone"
    status = run.info.status
    if status != "RUNNING":
        return f"its run {run_id} ended {status} before a verdict"
    host, pid = run.data.tags.get("ml_project.host", ""), run.data.tags.get("ml_project.pid", "")
    if process_alive(host, pid) is False:
        return f"its run {run_id} is RUNNING but its process {pid} on {host} is gone"
    return None


def orphans(client: MlflowClient, name: str) -> dict[str, str]:
    """{version: why} for the versions of `name` left without a verdict by a stopped run."""
    from mlflow.exceptions import MlflowException

    try:
        found = registry.retry_locked(client.search_model_versions, f"name='{name}'")
    except MlflowException:
        return {}
    out = {}
    for version in found:
        reason = orphan_reason(client, version)
        if reason:
            out[str(version.version)] = reason
    return out


def dead_runs(client: MlflowClient, experiment: str) -> dict[str, str]:
    """{run id: why} for the runs of `experiment` still RUNNING whose process is known to be
    gone (killed before it registered anything: no version points at them)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    out = {}
    for run in client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        host, pid = tags.get("ml_project.host", ""), tags.get("ml_project.pid", "")
        if process_alive(host, pid) is False:
            out[run.info.run_id] = f"its process {pid} on {host} is gone"
    return out


def settle_orphans(client: MlflowClient, name: str, *, experiment: str | None = None) -> list[str]:
    """Before a training: each version a stopped run left without a verdict is tagged failed
    with the reason, loses `challenger`, and its run (if still RUNNING) ends KILLED; so does
    each run of `experiment` left RUNNING by a process that is gone."""
    settled = []
    for version, reason in sorted(orphans(client, name).items(), key=lambda item: int(item[0])):
        why = f"no verdict: {reason} (settled by a later training)"
        found = registry.get_version(client, name, version)
        registry.set_version_tags(
            client, name, version, {"validation_status": gate.FAILED, "validation_reasons": why}
        )
        registry.remove_alias_if(client, name, CHALLENGER, version, move=Move("verdict", why))
        run_id = found.tags.get("copied_by.run_id") or found.tags.get("run_id") or found.run_id
        if run_id and client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
        settled.append(f"version {version}: {reason}")
    stale = registry.alias_version(client, name, CHALLENGER)
    if stale is not None:  # judged, but its run stopped before it let go of `challenger`
        found = registry.get_version(client, name, stale)
        verdict = found.tags.get("validation_status")
        run_id = found.tags.get("copied_by.run_id") or found.tags.get("run_id") or found.run_id
        if verdict in (gate.PASSED, gate.FAILED) and run_id and not run_is_live(client, run_id):
            why = f"its run {run_id} stopped after the verdict ({verdict})"
            registry.remove_alias_if(client, name, CHALLENGER, stale, move=Move("verdict", why))
            settled.append(f"version {stale}: challenger cleared, {why}")
    for run_id, reason in dead_runs(client, experiment).items() if experiment else ():
        client.set_tag(run_id, "ml_project.settled", f"ended KILLED by a later training: {reason}")
        client.set_terminated(run_id, status="KILLED")
        settled.append(f"run {run_id}: RUNNING, but {reason}; ended KILLED")
    return settled


def run_is_live(client: MlflowClient, run_id: str) -> bool:
    """Whether run `run_id` may still be working (RUNNING, its process not known to be gone)."""
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 - a deleted run is not working
        return False
    if run.info.status != "RUNNING":
        return False
    tags = run.data.tags
    return (
        process_alive(tags.get("ml_project.host", ""), tags.get("ml_project.pid", "")) is not False
    )


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
    gate: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "env": self.env,
            "model_name": self.model_name,
            "version": self.version,
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "reason": self.reason,
            "validation_status": self.validation_status,
            "tracking_uri": self.tracking_uri,
            "run_id": self.run_id,
            "source": self.source,
            "gate": self.gate,
        }


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
    entry = registry.move_alias(
        client, name, CHAMPION, str(version), move=Move("forced", reason, commit)
    )
    return PromotionResult(
        action="forced",
        env=settings.env,
        model_name=name,
        version=str(version),
        champion_before=entry["from_version"],
        champion_after=str(version),
        reason=reason,
        validation_status=found.tags.get("validation_status", "none"),
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
    commit = lineage.git_info(root).commit
    try:
        registry.move_alias(
            client,
            name,
            CHAMPION,
            target,
            move=Move(registry.ROLLBACK, reason or "rollback", commit),
            expected=current,
        )
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
        validation_status=found.tags.get("validation_status", "none"),
        tracking_uri=tracking.redact(client.tracking_uri),
    )


def promote_copy(
    source: Settings, target: Settings, *, version: str, root: Path, reason: str = ""
) -> PromotionResult:
    """The hybrid pattern: copy a version of `source`'s model into `target`'s, then gate it.

    Only a version that passed its own env's gate is copied. The copy keeps every lineage tag
    of the original (MLflow copies them), gets `copied_from.*` tags, loses the source env's
    gate verdict, and is judged by the target env's gate on the target env's held-out rows,
    minus any row the original trained on.
    """
    import mlflow
    import mlflow.sklearn

    if source.env == target.env:
        raise ConfigError("--from-env and --to-env must name two different envs.")
    client = tracking.connect(root)
    source_name, target_name = source.model_name, target.model_name
    original = registry.get_version(client, source_name, version)
    status = original.tags.get("validation_status")
    if status != gate.PASSED:
        raise GateFailedError(
            f"{source_name} version {version} has validation_status={status or 'none'}: only "
            f"a version that passed the {source.env} gate is copied to {target.env}."
        )
    git = lineage.git_info(root)
    held = held_out_rows(target, root)
    experiment_id = tracking.ensure_experiment(client, target.experiment_name)
    copied_from = {
        "copied_from.env": source.env,
        "copied_from.model": source_name,
        "copied_from.version": str(version),
        "copied_from.run_id": original.run_id or original.tags.get("run_id", ""),
        "copied_from.validation_status": status,
    }
    run_tags = {
        "ml_project.env": target.env,
        "ml_project.action": "promote-copy",
        **copied_from,
        **git.as_tags(),
    }
    context = f"copied from {source_name} version {version}" + (f" ({reason})" if reason else "")
    run_tags["ml_project.reason"] = context
    run_tags.update(tracking.process_tags())
    run_name = tracking.run_name("promote", source.env, f"v{version}", "to", target.env)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        mlflow.log_text(target.to_yaml(), "config/settings.yaml")
        copy = registry.retry_locked(
            client.copy_model_version, f"models:/{source_name}/{version}", target_name
        )
        new = str(copy.version)
        registry.delete_version_tags(
            client,
            target_name,
            new,
            [key for key in copy.tags if key in GATE_TAGS or key.startswith(GATE_TAG_PREFIX)],
        )
        registry.set_version_tags(
            client,
            target_name,
            new,
            {**copied_from, "copied_by.run_id": run.info.run_id, "validation_status": "pending"},
        )
        copy = registry.get_version(client, target_name, new)
        try:
            seen = seen_rows(client, copy, held)
        except CannotCompare as exc:
            verdict = gate.refuse(
                f"the rows it trained on cannot be established: {exc}", target.gate
            )
            registry.set_version_tags(client, target_name, new, verdict.as_tags())
            champion = registry.alias_version(client, target_name, CHAMPION)
            outcome = GateOutcome(target_name, new, verdict, False, champion, champion)
        else:
            rows = held.restrict(~seen)
            from ml_project.input_rules import unchecked

            model = unchecked(
                loading.load_sklearn(
                    f"models:/{target_name}/{new}", loading.trusted_types(held.problem)
                )
            )
            predictions = metrics.predict(model, rows.model_rows(), target.task)
            scores = rows.scores(predictions)
            staged = metrics.staged_loss(model, rows.model_rows(), rows.labels, target.task)
            mlflow.log_metrics({f"test_{key}": value for key, value in scores.items()})
            mlflow.log_metrics(
                {"rows_test": len(rows.test), "rows_test_seen_excluded": int(seen.sum())}
            )
            log_evaluation(mlflow, f"models:/{target_name}/{new}", rows)
            outcome = gate_version(
                client,
                rows,
                version=new,
                predictions=predictions,
                staged=staged,
                commit=git.commit,
                run_id=run.info.run_id,
                context=context,
            )
        mlflow.set_tags({"validation_status": outcome.verdict.status, "model_version": new})
    result = PromotionResult(
        action="copy",
        env=target.env,
        model_name=target_name,
        version=new,
        champion_before=outcome.champion_before,
        champion_after=outcome.champion_after,
        reason=context,
        validation_status=outcome.verdict.status,
        tracking_uri=tracking.redact(client.tracking_uri),
        run_id=run.info.run_id,
        source={"env": source.env, "model_name": source_name, "version": str(version)},
        gate=outcome.as_dict(),
    )
    if not outcome.passed:
        raise GateFailedError(outcome.failure_message(target.env), result=result)
    return result


# Version tags shown by `describe` as the version's lineage at a glance.
LINEAGE_KEYS = (
    "git.commit",
    "git.dirty",
    "git.tag",
    "config.hash",
    "seed",
    "data.digest",
    "data.rows_train",
    "data.rows_test",
    "ml_project.env",
    "run_id",
)


def describe(settings: Settings, *, root: Path) -> dict[str, Any]:
    """The env's registered model: versions, aliases, gate results, lineage and history."""
    from mlflow.exceptions import MlflowException

    client = tracking.connect(root, write=False)  # works on a read-only store
    name = settings.model_name
    try:
        model = registry.retry_locked(client.get_registered_model, name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(
                f"There is no registered model {name} in the store "
                f"{tracking.redact(client.tracking_uri)}: "
                f"train one with `ml-project train --env {settings.env}`."
            ) from exc
        raise
    aliases_of: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        aliases_of.setdefault(str(version), []).append(alias)
    found = registry.retry_locked(client.search_model_versions, f"name='{name}'")
    versions = []
    for version in sorted(found, key=lambda item: int(item.version), reverse=True):
        tags = version.tags
        lineage_tags = registry.lineage_of(client, version)
        orphaned = orphan_reason(client, version)
        status = "orphaned" if orphaned else tags.get("validation_status", "none")
        versions.append(
            {
                "version": str(version.version),
                "aliases": sorted(aliases_of.get(str(version.version), [])),
                "validation_status": status,
                "validation_reasons": orphaned or tags.get("validation_reasons", ""),
                "metrics": {
                    metric: _float(tags.get(f"gate.{metric}"))
                    for metric in metrics.metrics_of(settings.task)
                    if f"gate.{metric}" in tags
                },
                "compared_with": tags.get("gate.champion_version", ""),
                "created": pd.Timestamp(
                    version.creation_timestamp, unit="ms", tz="UTC"
                ).isoformat(),
                "lineage": {key: lineage_tags[key] for key in LINEAGE_KEYS if key in lineage_tags},
                "copied_from": {k: v for k, v in tags.items() if k.startswith("copied_from.")},
            }
        )
    return {
        "env": settings.env,
        "problem": settings.problem,
        "task": settings.task,
        "primary_metric": settings.gate.primary_metric,
        "model_name": name,
        "tracking_uri": tracking.redact(client.tracking_uri),
        "aliases": {alias: str(version) for alias, version in sorted(model.aliases.items())},
        "versions": versions,
        "history": registry.read_history(model.tags),
    }


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
